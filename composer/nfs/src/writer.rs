//! Writes a connection's replies, record-marked, in the order they are
//! ready. Small replies that are ready together go out in one write; a big
//! one is never copied behind its record mark: a framed reply (fast.rs)
//! carries its mark already, another gets its mark sent first with
//! MSG_MORE (held back, so both leave in the same segment).

use std::io::{Error, ErrorKind};

use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc::Receiver;

use crate::fast::Reply;
use crate::sys;

/// Replies of at least this size are not copied into the batch.
const BIG_REPLY: usize = 64 * 1024;
/// Small replies are batched into one write up to this size.
const BATCH: usize = 64 * 1024;

/// Writes every reply `rx` yields until all senders are gone or a write
/// fails. `Some`: a failure worth reporting (a client that went away is
/// not one).
pub async fn write_replies(mut wr: OwnedWriteHalf, mut rx: Receiver<Reply>) -> Option<String> {
    let mut batch: Vec<u8> = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(reply) = next.take() {
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
                    let r = match send_all(wr.as_ref(), &batch, true).await {
                        Ok(()) => wr.write_all(b).await,
                        Err(e) => Err(e),
                    };
                    batch.clear();
                    r
                }
                Reply::Framed(b) => {
                    let r = match send_all(wr.as_ref(), &batch, true).await {
                        Ok(()) => wr.write_all(b).await,
                        Err(e) => Err(e),
                    };
                    batch.clear();
                    r
                }
            };
            if let Err(e) = sent {
                return problem(e);
            }
            if batch.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            if let Err(e) = wr.write_all(&batch).await {
                return problem(e);
            }
            batch.clear();
        }
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
async fn send_all(sock: &TcpStream, mut buf: &[u8], more: bool) -> std::io::Result<()> {
    while !buf.is_empty() {
        sock.writable().await?;
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
    use tokio::io::AsyncReadExt;

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
            let (tx, rx) = tokio::sync::mpsc::channel(8);
            for r in replies {
                tx.send(r).await.unwrap();
            }
            drop(tx);
            let outcome = write_replies(wr, rx).await;
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
