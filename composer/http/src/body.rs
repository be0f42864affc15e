//! Response bodies: nothing, a small buffer, or a file range streamed in
//! chunks without loading it.
//!
//! hyper owns the socket and writes `Bytes` frames, so sendfile(2) is out of
//! reach; instead each chunk is one pread(2) on tokio's blocking pool, and
//! the next chunk is read while hyper writes the current one (one chunk of
//! read-ahead per transfer, so memory is bounded by 2 x chunk per transfer).
//! The file is never read in the async task: a cold page cache must not
//! stall every other connection on the worker.

use std::fs::File;
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use hyper::body::{Body, Bytes, Frame, SizeHint};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use crate::metrics::Metrics;
use crate::HttpEvent;

/// Who to tell when a file transfer ends, and what to tell them.
pub struct Report {
    pub peer: SocketAddr,
    pub path: String,
    pub status: u16,
    pub started: Instant,
    pub events: UnboundedSender<HttpEvent>,
    pub metrics: Arc<Metrics>,
}

type Chunk = JoinHandle<std::io::Result<Bytes>>;

/// A byte range of an open file, read chunk by chunk.
pub struct FileStream {
    file: Arc<File>,
    pos: u64,
    end: u64,
    chunk: usize,
    next: Option<Chunk>,
    sent: u64,
    report: Option<Report>,
}

impl FileStream {
    pub fn new(file: File, start: u64, end: u64, chunk: usize, report: Report) -> FileStream {
        report.metrics.transfer_started();
        FileStream {
            file: Arc::new(file),
            pos: start,
            end,
            chunk,
            next: None,
            sent: 0,
            report: Some(report),
        }
    }

    fn read_at(&self, pos: u64) -> Option<Chunk> {
        if pos >= self.end {
            return None;
        }
        let len = (self.end - pos).min(self.chunk as u64) as usize;
        let file = self.file.clone();
        Some(tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; len];
            let mut got = 0;
            // Each pass reads more or stops: bounded by `len`.
            while got < len {
                match file.read_at(&mut buf[got..], pos + got as u64) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if got < len {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "file shrank while being sent",
                ));
            }
            Ok(Bytes::from(buf))
        }))
    }

    /// Reports the end once: Finished when every byte went out, Failed else.
    fn finish(&mut self, failure: Option<String>) {
        let Some(r) = self.report.take() else { return };
        r.metrics.transfer_ended();
        let (peer, path, bytes) = (r.peer, r.path, self.sent);
        let event = match failure {
            None => HttpEvent::Finished {
                peer,
                path,
                bytes,
                status: r.status,
                elapsed: r.started.elapsed(),
            },
            Some(reason) => HttpEvent::Failed {
                peer,
                path,
                bytes,
                reason,
            },
        };
        let _ = r.events.send(event);
    }
}

impl Drop for FileStream {
    fn drop(&mut self) {
        if let Some(h) = self.next.take() {
            h.abort();
        }
        if self.report.is_some() {
            self.finish(Some("connection closed before the end".into()));
        }
    }
}

/// What a response carries.
pub enum ResponseBody {
    Empty,
    Bytes(Option<Bytes>),
    File(Box<FileStream>),
}

impl ResponseBody {
    pub fn bytes(b: impl Into<Bytes>) -> ResponseBody {
        ResponseBody::Bytes(Some(b.into()))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            ResponseBody::Empty => Poll::Ready(None),
            ResponseBody::Bytes(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::File(f) => poll_file(f, cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Empty => true,
            ResponseBody::Bytes(b) => b.is_none(),
            ResponseBody::File(f) => f.pos >= f.end && f.next.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Empty => SizeHint::with_exact(0),
            ResponseBody::Bytes(b) => {
                SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64))
            }
            ResponseBody::File(f) => SizeHint::with_exact(f.end - f.pos),
        }
    }
}

fn poll_file(
    f: &mut FileStream,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
    if f.next.is_none() {
        f.next = f.read_at(f.pos);
    }
    let Some(handle) = f.next.as_mut() else {
        f.finish(None);
        return Poll::Ready(None);
    };
    let result = match Pin::new(handle).poll(cx) {
        Poll::Pending => return Poll::Pending,
        Poll::Ready(Ok(r)) => r,
        Poll::Ready(Err(join)) => Err(std::io::Error::other(join)),
    };
    f.next = None;
    match result {
        Ok(bytes) => {
            let n = bytes.len() as u64;
            f.pos += n;
            f.sent += n;
            if let Some(r) = &f.report {
                r.metrics.add_bytes(n);
            }
            // Read ahead while hyper writes this chunk; after the last one
            // hyper sees is_end_stream and polls no more, so report now.
            f.next = f.read_at(f.pos);
            if f.next.is_none() {
                f.finish(None);
            }
            Poll::Ready(Some(Ok(Frame::data(bytes))))
        }
        Err(e) => {
            f.finish(Some(format!("reading the file: {e}")));
            Poll::Ready(Some(Err(e)))
        }
    }
}
