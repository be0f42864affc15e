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
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
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

/// Chunk buffers a transfer may reuse. A fresh 256 KiB allocation costs a
/// page fault per 4 KiB on first touch (most of the read time when we
/// allocated per chunk); a buffer hyper has finished with comes back here.
type Spares = Arc<Mutex<Vec<Vec<u8>>>>;

/// A chunk's buffer that returns to its transfer's spares when hyper drops
/// the `Bytes` made from it.
struct Recycled {
    buf: Vec<u8>,
    len: usize,
    spares: Spares,
}

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        // Two spares cover the chunk being written and the one read ahead.
        if let Ok(mut spares) = self.spares.lock() {
            if spares.len() < 2 {
                spares.push(std::mem::take(&mut self.buf));
            }
        }
    }
}

/// A byte range of an open file, read chunk by chunk.
pub struct FileStream {
    file: Arc<File>,
    pos: u64,
    end: u64,
    chunk: usize,
    next: Option<Chunk>,
    spares: Spares,
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
            spares: Spares::default(),
            sent: 0,
            report: Some(report),
        }
    }

    /// A buffer for the next chunk: a spare one hyper gave back, else new.
    fn buffer(spares: &Spares, size: usize) -> Vec<u8> {
        let spare = spares.lock().ok().and_then(|mut s| s.pop());
        spare.unwrap_or_else(|| vec![0u8; size])
    }

    /// The next chunk straight from the page cache, if it is all there.
    fn read_cached(&self, len: usize) -> Option<Bytes> {
        let mut buf = Self::buffer(&self.spares, self.chunk);
        if !read_cached(&self.file, &mut buf[..len], self.pos) {
            let _ = self.spares.lock().map(|mut s| s.push(buf));
            return None;
        }
        let spares = self.spares.clone();
        Some(Bytes::from_owner(Recycled { buf, len, spares }))
    }

    /// The next chunk from the blocking pool, which may wait for the disk.
    fn read_blocking(&self, len: usize) -> Chunk {
        let (file, spares, size, pos) =
            (self.file.clone(), self.spares.clone(), self.chunk, self.pos);
        tokio::task::spawn_blocking(move || {
            let mut buf = Self::buffer(&spares, size);
            file.read_exact_at(&mut buf[..len], pos).map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    std::io::Error::new(e.kind(), "file shrank while being sent")
                } else {
                    e
                }
            })?;
            Ok(Bytes::from_owner(Recycled { buf, len, spares }))
        })
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
    let result = match f.next.as_mut() {
        Some(handle) => match Pin::new(handle).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => {
                f.next = None;
                r.unwrap_or_else(|join| Err(std::io::Error::other(join)))
            }
        },
        None if f.pos >= f.end => {
            f.finish(None);
            return Poll::Ready(None);
        }
        None => {
            let len = (f.end - f.pos).min(f.chunk as u64) as usize;
            match f.read_cached(len) {
                Some(bytes) => Ok(bytes),
                None => {
                    f.next = Some(f.read_blocking(len));
                    return poll_file(f, cx);
                }
            }
        }
    };
    match result {
        Ok(bytes) => {
            let n = bytes.len() as u64;
            f.pos += n;
            f.sent += n;
            if let Some(r) = &f.report {
                r.metrics.add_bytes(n);
            }
            // After the last chunk hyper sees is_end_stream and polls no
            // more, so report now.
            if f.pos >= f.end {
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

/// Fills `buf` from `file` at `pos` only if the page cache holds every
/// byte: preadv2(RWF_NOWAIT) fails with EAGAIN (or reads short) rather than
/// wait for the disk, so this may run on the connection's task. Saves a
/// thread hop per chunk for the common case, boot files many nodes fetch.
fn read_cached(file: &File, buf: &mut [u8], pos: u64) -> bool {
    use nix::libc;
    use std::os::fd::AsRawFd;
    let Ok(offset) = libc::off_t::try_from(pos) else {
        return false;
    };
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: `iov` describes `buf`, valid for writes of its whole length
    // and exclusively borrowed for the duration of the call; the count (1)
    // matches the one iovec; the descriptor is open, borrowed from `file`.
    let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, offset, libc::RWF_NOWAIT) };
    usize::try_from(n).is_ok_and(|n| n == buf.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn stream(
        data: &[u8],
        start: u64,
        end: u64,
    ) -> (FileStream, tokio::sync::mpsc::UnboundedReceiver<HttpEvent>) {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(data).unwrap();
        let (events, rx) = tokio::sync::mpsc::unbounded_channel();
        let report = Report {
            peer: "127.0.0.1:1".parse().unwrap(),
            path: "/f".into(),
            status: 206,
            started: Instant::now(),
            events,
            metrics: Arc::default(),
        };
        (FileStream::new(f, start, end, 4096, report), rx)
    }

    /// Both read paths give the same bytes: the page-cache one (what a hot
    /// file takes through poll_frame) and the blocking-pool one (a cold file).
    #[tokio::test]
    async fn cached_and_blocking_reads_agree() {
        let data: Vec<u8> = (0..40_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let (start, end) = (100u64, 39_993u64);
        let (mut s, mut rx) = stream(&data, start, end);
        let mut body = ResponseBody::File(Box::new(s));
        let mut got = Vec::new();
        // Bounded: each frame moves at least one byte of a 40 KB range.
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            got.extend_from_slice(frame.unwrap().data_ref().unwrap());
        }
        assert_eq!(got, data[start as usize..end as usize]);
        let e = rx.recv().await.unwrap();
        assert!(
            matches!(e, HttpEvent::Finished { bytes, status: 206, .. } if bytes == end - start),
            "{e:?}"
        );

        (s, _) = stream(&data, start, end);
        let mut got = Vec::new();
        while s.pos < s.end {
            let len = (s.end - s.pos).min(s.chunk as u64) as usize;
            let chunk = s.read_blocking(len).await.unwrap().unwrap();
            s.pos += chunk.len() as u64;
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got, data[start as usize..end as usize]);
        // A file that shrank under us is an error, not a short body.
        s.pos = 39_000;
        s.end = 41_000;
        let err = s.read_blocking(2000).await.unwrap().unwrap_err();
        assert!(err.to_string().contains("shrank"), "{err}");
    }
}
