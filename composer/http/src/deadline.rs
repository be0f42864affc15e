//! A socket wrapper that fails reads on an idle connection and writes to a
//! client that stopped reading, so neither holds a descriptor forever.
//!
//! hyper's own header read timeout bounds a slow request head (slowloris);
//! this bounds the rest: the wait for the next request on a kept-alive
//! connection (`idle`) and a write that makes no progress (`write`). Any
//! byte moved in either direction counts as progress, because hyper may keep
//! a read pending while it streams a long response.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

pub struct DeadlineIo {
    inner: TcpStream,
    idle: Duration,
    write: Duration,
    read_timer: Pin<Box<Sleep>>,
    write_timer: Pin<Box<Sleep>>,
    /// Whether a write is waiting (its timer armed).
    write_waiting: bool,
}

impl DeadlineIo {
    pub fn new(inner: TcpStream, idle: Duration, write: Duration) -> DeadlineIo {
        let now = Instant::now();
        DeadlineIo {
            inner,
            idle,
            write,
            read_timer: Box::pin(tokio::time::sleep_until(now + idle)),
            write_timer: Box::pin(tokio::time::sleep_until(now + write)),
            write_waiting: false,
        }
    }

    fn progress(&mut self) {
        self.read_timer.as_mut().reset(Instant::now() + self.idle);
        self.write_waiting = false;
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_owned())
}

impl AsyncRead for DeadlineIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.progress();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.read_timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(timed_out("idle connection"))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for DeadlineIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, data);
        this.wrote(r, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl DeadlineIo {
    /// Notes progress after a write, or arms the write timer on Pending.
    fn wrote(
        &mut self,
        r: Poll<io::Result<usize>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        match r {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.progress();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.write_pending(cx),
        }
    }

    fn write_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if !self.write_waiting {
            self.write_waiting = true;
            self.write_timer.as_mut().reset(Instant::now() + self.write);
        }
        match self.write_timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(timed_out("client stopped reading"))),
            Poll::Pending => Poll::Pending,
        }
    }
}
