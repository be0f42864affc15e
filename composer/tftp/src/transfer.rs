//! One read transfer: option negotiation, windowed sending, retransmission.
//!
//! Runs in its own task on its own socket (the server's TID for this peer).
//! The socket is not connect()ed so a datagram from another address can be
//! answered with ERROR 5 without disturbing the transfer (RFC 1350 sec. 4).

use std::collections::VecDeque;
use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::{timeout_at, Instant};

use crate::confine::{self, sanitize, Refusal};
use crate::packet::{self, encode, error_packet, ErrorCode, Mode, Packet, Request};
use crate::server::Shared;
use crate::TftpEvent;

/// Smallest and largest block sizes RFC 2348 allows.
pub(crate) const MIN_BLKSIZE: u16 = 8;
pub(crate) const MAX_BLKSIZE: u16 = 65464;
/// Bytes read from disk per blocking read: large enough that a windowed
/// transfer of big blocks does not go to the blocking pool for every block.
const CHUNK: usize = 256 * 1024;

/// The outcome of negotiation (RFC 2347-2349, 7440).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Params {
    pub blksize: u16,
    pub window: u16,
    pub timeout: Duration,
    /// Options to acknowledge; empty means no OACK, DATA 1 goes first.
    pub oack: Vec<(String, String)>,
}

/// The server's limits on what a client may negotiate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_blksize: u16,
    pub max_window: u16,
    pub default_timeout: Duration,
    pub max_timeout: Duration,
}

/// Picks the options we accept. Invalid or unknown options are left out of
/// the OACK, which RFC 2347 lets a server do; blksize and windowsize above
/// our limits are clamped (and the clamped value is what the OACK tells the
/// client). A `timeout` above `max_timeout` is left out instead: RFC 2349
/// has the server echo the client's value or nothing.
///
/// One pass over the options, with a flag per known option for "first
/// occurrence wins": linear in the option count.
pub(crate) fn negotiate(req: &Request, size: u64, lim: Limits) -> Params {
    let mut p = Params {
        blksize: 512,
        window: 1,
        timeout: lim.default_timeout,
        oack: Vec::new(),
    };
    let max_timeout = lim.max_timeout.as_secs().min(255);
    // blksize, windowsize, timeout, tsize: seen already?
    let mut seen = [false; 4];
    for (name, value) in &req.options {
        let known = ["blksize", "windowsize", "timeout", "tsize"]
            .iter()
            .position(|k| name.eq_ignore_ascii_case(k));
        let Some(i) = known else { continue };
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        let num = value.trim().parse::<u64>().ok();
        let accepted = match (i, num) {
            (0, Some(v)) if v >= u64::from(MIN_BLKSIZE) => {
                p.blksize = v.min(u64::from(lim.max_blksize)) as u16;
                Some(p.blksize.to_string())
            }
            (1, Some(v)) if (1..=65535).contains(&v) => {
                p.window = v.min(u64::from(lim.max_window)) as u16;
                Some(p.window.to_string())
            }
            (2, Some(v)) if (1..=max_timeout).contains(&v) => {
                p.timeout = Duration::from_secs(v);
                Some(v.to_string())
            }
            // The netascii size is only known after converting the whole
            // file, so tsize is answered for octet only. Not for an empty
            // file either: curl (7.88) aborts on "tsize 0" in an OACK, and
            // leaving an option out is always allowed (RFC 2347).
            (3, Some(_)) if req.mode == Mode::Octet && size > 0 => Some(size.to_string()),
            _ => None,
        };
        if let Some(v) = accepted {
            p.oack.push((name.clone(), v));
        }
    }
    p
}

/// Sequential reader of the file's payload, refilled off the async runtime.
struct Source {
    file: Arc<File>,
    offset: u64,
    eof: bool,
    buf: Vec<u8>,
    pos: usize,
    netascii: bool,
}

impl Source {
    /// The next `n` payload bytes; fewer only at the end of the file.
    async fn block(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        // Each pass reads at least one byte or sets eof: bounded by file size.
        while self.buf.len() - self.pos < n && !self.eof {
            self.buf.drain(..self.pos);
            self.pos = 0;
            let (file, offset) = (self.file.clone(), self.offset);
            let chunk = tokio::task::spawn_blocking(move || {
                let mut v = vec![0; CHUNK];
                let k = file.read_at(&mut v, offset)?;
                v.truncate(k);
                Ok::<_, std::io::Error>(v)
            })
            .await
            .map_err(std::io::Error::other)??;
            if chunk.is_empty() {
                self.eof = true;
            }
            self.offset += chunk.len() as u64;
            if self.netascii {
                to_netascii(&chunk, &mut self.buf);
            } else {
                self.buf.extend_from_slice(&chunk);
            }
        }
        let take = n.min(self.buf.len() - self.pos);
        let out = self.buf[self.pos..self.pos + take].to_vec();
        self.pos += take;
        Ok(out)
    }
}

/// RFC 764 netascii from a Unix file: LF -> CR LF, CR -> CR NUL. Each byte
/// maps independently, so chunk boundaries need no carried state.
pub(crate) fn to_netascii(input: &[u8], out: &mut Vec<u8>) {
    for &b in input {
        match b {
            b'\n' => out.extend_from_slice(b"\r\n"),
            b'\r' => out.extend_from_slice(b"\r\0"),
            b => out.push(b),
        }
    }
}

/// What arrived while waiting for an acknowledgement.
enum Reply {
    Ack(u16),
    Error(ErrorCode, String),
    Timeout,
}

struct Session<'a> {
    sock: UdpSocket,
    peer: SocketAddr,
    shared: &'a Shared,
    buf: Vec<u8>,
    acked: Arc<AtomicBool>,
}

impl Session<'_> {
    async fn send(&self, bytes: &[u8]) -> std::io::Result<()> {
        self.sock.send_to(bytes, self.peer).await.map(|_| ())
    }

    /// Waits until `deadline` for an ACK or ERROR from the peer. Stray
    /// datagrams never extend the deadline, so the wait is bounded in time.
    async fn wait(&mut self, deadline: Instant) -> std::io::Result<Reply> {
        loop {
            let Ok(r) = timeout_at(deadline, self.sock.recv_from(&mut self.buf)).await else {
                return Ok(Reply::Timeout);
            };
            let (n, from) = r?;
            if from != self.peer {
                // Best effort: a lost ERROR 5 changes nothing for us.
                let e = error_packet(ErrorCode::UNKNOWN_TID, "unknown transfer ID");
                let _ = self.sock.send_to(&e, from).await;
                continue;
            }
            match packet::parse(&self.buf[..n]) {
                Ok(Packet::Ack { block }) => {
                    self.acked.store(true, Ordering::Relaxed);
                    return Ok(Reply::Ack(block));
                }
                Ok(Packet::Error { code, message }) => return Ok(Reply::Error(code, message)),
                // Anything else from the peer (a repeated RRQ, garbage) is
                // ignored; the retransmission timer covers real loss.
                _ => continue,
            }
        }
    }
}

/// Handles one request from `peer` on the fresh socket `sock`.
/// `acked` is set at the client's first ACK (the transfer is then no longer
/// evictable, see slots.rs).
pub(crate) async fn run(
    shared: Arc<Shared>,
    sock: UdpSocket,
    peer: SocketAddr,
    pkt: Packet,
    acked: Arc<AtomicBool>,
) {
    let events = &shared.events;
    let (req, is_write) = match pkt {
        Packet::Rrq(r) => (r, false),
        Packet::Wrq(r) => (r, true),
        _ => return,
    };
    let path = req.filename.clone();
    let refuse = |r: Refusal| {
        let e = error_packet(r.code, &r.reason);
        let sock = &sock;
        let reason = r.reason;
        let path = path.clone();
        async move {
            let _ = sock.send_to(&e, peer).await;
            let _ = events.send(TftpEvent::Refused { peer, path, reason });
        }
    };
    let refusal = |code, reason: &str| Refusal {
        code,
        reason: reason.to_owned(),
    };
    if is_write {
        return refuse(refusal(ErrorCode::ACCESS_VIOLATION, "read-only server")).await;
    }
    if req.mode == Mode::Mail {
        return refuse(refusal(
            ErrorCode::ILLEGAL_OPERATION,
            "mail mode not supported",
        ))
        .await;
    }
    let opened =
        sanitize(&req.filename).and_then(|rel| confine::open_file(&shared.confinement, &rel));
    let (file, size) = match opened {
        Ok(x) => x,
        Err(r) => return refuse(r).await,
    };
    let cfg = &shared.cfg;
    let limits = Limits {
        max_blksize: cfg.max_blksize,
        max_window: cfg.max_window,
        default_timeout: cfg.default_timeout,
        max_timeout: cfg.max_timeout,
    };
    let params = negotiate(&req, size, limits);
    let _ = events.send(TftpEvent::Started {
        peer,
        path: path.clone(),
        size,
        blksize: params.blksize,
        windowsize: params.window,
    });
    let started = Instant::now();
    let mut session = Session {
        sock,
        peer,
        shared: &shared,
        // ACK and ERROR only: anything longer is truncated and ignored, and
        // 256 transfers of a flood hold 1 MB, not 16.
        buf: vec![0; 4096],
        acked,
    };
    let source = Source {
        file: Arc::new(file),
        offset: 0,
        eof: false,
        buf: Vec::new(),
        pos: 0,
        netascii: req.mode == Mode::Netascii,
    };
    // Bounds the transfer however the client paces its ACKs (each one just
    // before our timeout would otherwise keep it alive indefinitely).
    let lifetime = cfg.max_lifetime;
    let sent = tokio::time::timeout(lifetime, send_file(&mut session, &params, source))
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "transfer exceeded its maximum lifetime of {} s",
                lifetime.as_secs()
            ))
        });
    let event = match sent {
        Ok(bytes) => TftpEvent::Finished {
            peer,
            path,
            bytes,
            elapsed: started.elapsed(),
        },
        Err(reason) => TftpEvent::Failed { peer, path, reason },
    };
    let _ = events.send(event);
}

/// Sends OACK (if any) then the file; returns payload bytes sent or why not.
async fn send_file(s: &mut Session<'_>, p: &Params, mut src: Source) -> Result<u64, String> {
    let cfg = &s.shared.cfg;
    // Until the first ACK the peer may be a spoofed victim: retransmit less.
    let mut retries = cfg.retries_before_ack.min(cfg.retries);
    let after_ack = cfg.retries;
    let io = |e: std::io::Error| format!("I/O error: {e}");
    if !p.oack.is_empty() {
        let oack = encode(&Packet::Oack {
            options: p.oack.clone(),
        })
        .map_err(|e| e.to_string())?;
        let mut tries = 0;
        'oack: loop {
            s.send(&oack).await.map_err(io)?;
            let deadline = Instant::now() + p.timeout;
            loop {
                match s.wait(deadline).await.map_err(io)? {
                    Reply::Ack(0) => {
                        retries = after_ack;
                        break 'oack;
                    }
                    // A stray ACK gets no answer (no Sorcerer's Apprentice).
                    Reply::Ack(_) => {}
                    Reply::Error(code, msg) => return Err(client_error(code, &msg)),
                    Reply::Timeout => break,
                }
            }
            tries += 1;
            if tries > retries {
                return Err(format!("no ACK for OACK after {retries} retries"));
            }
        }
    }
    let blksize = usize::from(p.blksize);
    let window = usize::from(p.window);
    // Unacknowledged DATA packets, oldest first; `base` is the sequence
    // number (1-based, never wrapping) of the front one.
    let mut inflight: VecDeque<(Vec<u8>, usize)> = VecDeque::with_capacity(window);
    let mut base: u64 = 1;
    let mut last_queued = false;
    let mut bytes: u64 = 0;
    let mut tries = 0;
    loop {
        while inflight.len() < window && !last_queued {
            let data = src.block(blksize).await.map_err(io)?;
            last_queued = data.len() < blksize;
            let seq = base + inflight.len() as u64;
            // Block numbers wrap 65535 -> 0 (what tftp-hpa, iPXE and
            // pxelinux expect for files over 32 MB at 512-byte blocks).
            let mut pkt = Vec::new();
            packet::encode_data(&mut pkt, seq as u16, &data);
            inflight.push_back((pkt, data.len()));
        }
        if inflight.is_empty() {
            return Ok(bytes);
        }
        // (Re)send the whole window: after a timeout, or after a partial ACK
        // that says the client lost the blocks following it (RFC 7440).
        for (pkt, _) in &inflight {
            s.send(pkt).await.map_err(io)?;
        }
        let deadline = Instant::now() + p.timeout;
        let advanced = loop {
            match s.wait(deadline).await.map_err(io)? {
                Reply::Ack(block) => {
                    // Position of the acknowledged block in the window. An
                    // old or duplicate ACK falls outside and is ignored:
                    // answering it would start the Sorcerer's Apprentice.
                    let off = usize::from(block.wrapping_sub(base as u16));
                    if off < inflight.len() {
                        for (_, n) in inflight.drain(..=off) {
                            bytes += n as u64;
                        }
                        base += off as u64 + 1;
                        break true;
                    }
                }
                Reply::Error(code, msg) => return Err(client_error(code, &msg)),
                Reply::Timeout => break false,
            }
        };
        if advanced {
            tries = 0;
            retries = after_ack;
        } else {
            tries += 1;
            if tries > retries {
                return Err(format!(
                    "timeout: no ACK for block {} after {retries} retries",
                    base as u16
                ));
            }
        }
    }
}

fn client_error(code: ErrorCode, msg: &str) -> String {
    format!("client sent ERROR {}: {msg}", code.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(mode: Mode, opts: &[(&str, &str)]) -> Request {
        Request {
            filename: "f".into(),
            mode,
            options: opts
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    #[test]
    fn negotiate_table() {
        let d = Duration::from_secs(2);
        let s = |secs| Duration::from_secs(secs);
        type Case<'a> = (
            Mode,
            &'a [(&'a str, &'a str)],
            (u16, u16, Duration),
            &'a [(&'a str, &'a str)],
        );
        let cases: &[Case] = &[
            (Mode::Octet, &[], (512, 1, d), &[]),
            (
                Mode::Octet,
                &[("blksize", "1428")],
                (1428, 1, d),
                &[("blksize", "1428")],
            ),
            (
                Mode::Octet,
                &[("BLKSIZE", "65464")],
                (1468, 1, d),
                &[("BLKSIZE", "1468")],
            ),
            (Mode::Octet, &[("blksize", "7")], (512, 1, d), &[]),
            (Mode::Octet, &[("blksize", "x")], (512, 1, d), &[]),
            (
                Mode::Octet,
                &[("tsize", "0")],
                (512, 1, d),
                &[("tsize", "1000")],
            ),
            (Mode::Netascii, &[("tsize", "0")], (512, 1, d), &[]),
            (
                Mode::Octet,
                &[("timeout", "3")],
                (512, 1, s(3)),
                &[("timeout", "3")],
            ),
            (Mode::Octet, &[("timeout", "0")], (512, 1, d), &[]),
            (Mode::Octet, &[("timeout", "256")], (512, 1, d), &[]),
            // Above max_timeout: left out, not clamped (RFC 2349).
            (
                Mode::Octet,
                &[("timeout", "10")],
                (512, 1, s(10)),
                &[("timeout", "10")],
            ),
            (Mode::Octet, &[("timeout", "11")], (512, 1, d), &[]),
            (Mode::Octet, &[("timeout", "255")], (512, 1, d), &[]),
            (
                Mode::Octet,
                &[("windowsize", "4")],
                (512, 4, d),
                &[("windowsize", "4")],
            ),
            (
                Mode::Octet,
                &[("windowsize", "100")],
                (512, 16, d),
                &[("windowsize", "16")],
            ),
            (Mode::Octet, &[("windowsize", "0")], (512, 1, d), &[]),
            (
                Mode::Octet,
                &[("multicast", ""), ("blksize", "1024")],
                (1024, 1, d),
                &[("blksize", "1024")],
            ),
            (
                Mode::Octet,
                &[("blksize", "1024"), ("BlkSize", "2048")],
                (1024, 1, d),
                &[("blksize", "1024")],
            ),
        ];
        let lim = Limits {
            max_blksize: 1468,
            max_window: 16,
            default_timeout: d,
            max_timeout: Duration::from_secs(10),
        };
        for (mode, opts, (blk, win, to), oack) in cases {
            let p = negotiate(&req(*mode, opts), 1000, lim);
            assert_eq!(
                (p.blksize, p.window, p.timeout),
                (*blk, *win, *to),
                "{opts:?}"
            );
            let want: Vec<(String, String)> = oack
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            assert_eq!(p.oack, want, "{opts:?}");
        }
        // An empty file: tsize is left out (curl rejects "tsize 0").
        let p = negotiate(&req(Mode::Octet, &[("tsize", "0")]), 0, lim);
        assert!(p.oack.is_empty());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5_000))]

        /// Whatever options arrive, the negotiated values stay inside the
        /// server's limits and the OACK names each known option at most once.
        #[test]
        fn negotiate_stays_in_limits(
            opts in proptest::collection::vec(
                (proptest::sample::select(vec!["blksize", "BLKSIZE", "windowsize", "timeout", "tsize", "x"]),
                 proptest::prop_oneof![proptest::strategy::Just("0".to_owned()), "[0-9]{1,6}", ".{0,4}"]),
                0..40),
        ) {
            let owned: Vec<(&str, &str)> = opts.iter().map(|(a, b)| (*a, b.as_str())).collect();
            let lim = Limits {
                max_blksize: 1468,
                max_window: 16,
                default_timeout: Duration::from_secs(1),
                max_timeout: Duration::from_secs(10),
            };
            let p = negotiate(&req(Mode::Octet, &owned), 1000, lim);
            proptest::prop_assert!((8..=1468).contains(&p.blksize) || p.blksize == 512);
            proptest::prop_assert!((1..=16).contains(&p.window));
            proptest::prop_assert!(p.timeout >= Duration::from_secs(1) && p.timeout <= Duration::from_secs(10));
            proptest::prop_assert!(p.oack.len() <= 4);
            let mut names: Vec<String> = p.oack.iter().map(|(n, _)| n.to_ascii_lowercase()).collect();
            names.sort();
            names.dedup();
            proptest::prop_assert_eq!(names.len(), p.oack.len());
        }
    }

    #[test]
    fn netascii_table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"abc", b"abc"),
            (b"a\nb", b"a\r\nb"),
            (b"a\r\nb", b"a\r\0\r\nb"),
            (b"\r", b"\r\0"),
        ];
        for (input, want) in cases {
            let mut out = Vec::new();
            to_netascii(input, &mut out);
            assert_eq!(&out, want);
        }
    }
}
