//! Writes a connection's replies, record-marked, in the order they are
//! ready. Small replies that are ready together go out in one write; a big
//! one is never copied behind its record mark: a framed reply (fast.rs)
//! carries its mark already, another gets its mark sent first with
//! MSG_MORE (held back, so both leave in the same segment).

use std::io::{Error, ErrorKind};
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::OwnedSemaphorePermit;

use crate::fast::Reply;
use crate::sys;

/// Replies of at least this size are not copied into the batch.
const BIG_REPLY: usize = 64 * 1024;
/// Small replies are batched into one write up to this size.
const BATCH: usize = 64 * 1024;

/// A reply with its share of the connection's reply budget, given back
/// once the reply is written (server.rs).
#[derive(Debug)]
pub struct Queued {
    reply: Reply,
    budget: Budget,
}

/// The connection's share, and the server-wide one if it took one.
pub type Budget = (OwnedSemaphorePermit, Option<OwnedSemaphorePermit>);

impl Queued {
    pub fn new(reply: Reply, budget: Budget) -> Queued {
        Queued { reply, budget }
    }
}

/// Writes every reply `rx` yields until all senders are gone or a write
/// fails or makes no progress for `timeout`. `Some`: a failure worth
/// reporting (a client that went away is not one).
pub async fn write_replies(
    wr: OwnedWriteHalf,
    mut rx: UnboundedReceiver<Queued>,
    timeout: Duration,
) -> Option<String> {
    let sock: &TcpStream = wr.as_ref();
    let mut batch: Vec<u8> = Vec::with_capacity(BATCH);
    // The budget of the replies in `batch`, given back once it is sent.
    let mut held: Vec<Budget> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(Queued { reply, budget }) = next.take() {
            let sent = match &reply {
                Reply::Bytes(b) if b.len() < BIG_REPLY => {
                    batch.extend_from_slice(&mark(b.len()));
                    batch.extend_from_slice(b);
                    Ok(())
                }
                Reply::Framed(b) if b.len() < BIG_REPLY => {
                    batch.extend_from_slice(b);
                    Ok(())
                }
                Reply::Bytes(b) => {
                    batch.extend_from_slice(&mark(b.len()));
                    let r = match send_all(sock, &batch, true, timeout).await {
                        Ok(()) => send_all(sock, b, false, timeout).await,
                        Err(e) => Err(e),
                    };
                    batch.clear();
                    held.clear();
                    r
                }
                Reply::Framed(b) => {
                    let r = match send_all(sock, &batch, true, timeout).await {
                        Ok(()) => send_all(sock, b, false, timeout).await,
                        Err(e) => Err(e),
                    };
                    batch.clear();
                    held.clear();
                    r
                }
            };
            held.push(budget);
            drop(reply);
            if let Err(e) = sent {
                return problem(e);
            }
            if batch.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            if let Err(e) = send_all(sock, &batch, false, timeout).await {
                return problem(e);
            }
            batch.clear();
        }
        held.clear();
    }
    None
}

/// The record mark of a one-fragment record.
fn mark(len: usize) -> [u8; 4] {
    (0x8000_0000 | len as u32).to_be_bytes()
}

/// A write error worth reporting; `None` for a client that left.
fn problem(e: Error) -> Option<String> {
    match e.kind() {
        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset => None,
        _ => Some(format!("write: {e}")),
    }
}

/// Sends all of `buf`; `more`: hold it back for what follows (MSG_MORE).
/// Fails with TimedOut when the socket takes nothing for `timeout`.
async fn send_all(
    sock: &TcpStream,
    mut buf: &[u8],
    more: bool,
    timeout: Duration,
) -> std::io::Result<()> {
    while !buf.is_empty() {
        match tokio::time::timeout(timeout, sock.writable()).await {
            Ok(r) => r?,
            Err(_) => {
                let msg = format!("the client took no reply data for {timeout:?}");
                return Err(Error::new(ErrorKind::TimedOut, msg));
            }
        }
        match sock.try_io(Interest::WRITABLE, || sys::send(sock, buf, more)) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;
    use tokio::sync::Semaphore;

    /// Replies through a real socket pair: what the client receives, and
    /// what the writer reported.
    fn run(replies: Vec<Reply>) -> (Vec<u8>, Option<String>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let mut client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
            let (server, _) = l.accept().await.unwrap();
            let (rd, wr) = server.into_split();
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let budget = Arc::new(Semaphore::new(1 << 20));
            for r in replies {
                let permit = Arc::clone(&budget).acquire_many_owned(1000).await.unwrap();
                tx.send(Queued::new(r, (permit, None))).unwrap();
            }
            drop(tx);
            let outcome = write_replies(wr, rx, Duration::from_secs(10)).await;
            assert_eq!(budget.available_permits(), 1 << 20, "budget given back");
            drop(rd);
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            (got, outcome)
        })
    }

    #[test]
    fn records_are_marked_and_in_order() {
        let mut framed = mark(5).to_vec();
        framed.extend_from_slice(b"fives");
        let mut big_framed = mark(80_000).to_vec();
        big_framed.extend_from_slice(&[8; 80_000]);
        let (got, outcome) = run(vec![
            Reply::Bytes(b"abcd".to_vec()),
            Reply::Framed(framed),
            Reply::Bytes(vec![9; 70_000]),
            Reply::Framed(big_framed),
            Reply::Bytes(b"end!".to_vec()),
        ]);
        assert_eq!(outcome, None);
        let mut want = Vec::new();
        let records: [&[u8]; 5] = [b"abcd", b"fives", &[9; 70_000], &[8; 80_000], b"end!"];
        for r in records {
            want.extend_from_slice(&mark(r.len()));
            want.extend_from_slice(r);
        }
        assert!(
            got == want,
            "{} bytes received, {} wanted",
            got.len(),
            want.len()
        );
    }
}
