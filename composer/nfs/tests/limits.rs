//! Resource limits (src/limit.rs) against real sockets: connections capped
//! per client address, idle connections closed, and clients that never
//! read their replies held to their reply budget and then dropped, while
//! another client is served throughout.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use compose_nfs::rpc::{encode_call, Cred};
use compose_nfs::xdr::Enc;
use compose_nfs::{Export, Limits, NfsEvent};

const EXPORT: &str = "/srv/compose/roots/abc123";

/// One test at a time in this binary (some count the process's threads):
/// the turn, the test tree, its root, and a server with `limits` on it.
fn serial_server(
    limits: Limits,
) -> (
    std::sync::MutexGuard<'static, ()>,
    tempfile::TempDir,
    std::path::PathBuf,
    Running,
) {
    let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path());
    let r = Running::start_with(
        Arc::new(vec![Export::new(EXPORT, &root).insecure()]),
        Some(limits),
    );
    (serial, t, root, r)
}

/// Whether the server closes `s` (end of stream or reset) within 20 s.
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
    false
}

/// A NULL call answered on `s`.
fn null_answered(s: &mut TcpStream) -> bool {
    let rec = encode_call(9, 100_003, 3, 0, None, &[]);
    let mut out = ((rec.len() as u32) | 0x8000_0000).to_be_bytes().to_vec();
    out.extend_from_slice(&rec);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut mark = [0u8; 4];
    s.write_all(&out).is_ok() && s.read_exact(&mut mark).is_ok()
}

#[test]
fn connections_capped_per_address() {
    let limits = Limits {
        max_per_peer: 4,
        ..Limits::default()
    };
    let (_serial, _t, _, r) = serial_server(limits);
    let mut held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(r.addr).unwrap())
        .collect();
    for s in &mut held {
        assert!(null_answered(s), "within the cap: served");
    }
    let mut over = TcpStream::connect(r.addr).unwrap();
    assert!(closed_by_server(&mut over), "the fifth is closed at once");
    for s in &mut held {
        assert!(null_answered(s), "the admitted ones are untouched");
    }
    // A place given back is free again (the server sees the close a
    // moment later: bounded retries).
    held.pop();
    let mut again = None;
    for _ in 0..100 {
        let mut s = TcpStream::connect(r.addr).unwrap();
        if null_answered(&mut s) {
            again = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(again.is_some(), "a freed place was never given out again");
    // Events travel through a channel: wait for it (bounded).
    let mut events = Vec::new();
    let mut refused = false;
    for _ in 0..100 {
        events.extend(r.events());
        refused = events.iter().any(|e| {
            matches!(e, NfsEvent::Error { message, .. } if message.contains("refusing connections"))
        });
        if refused {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(refused, "the refusal was reported: {events:?}");
}

#[test]
fn idle_connections_closed() {
    let limits = Limits {
        idle_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let (_serial, _t, _, r) = serial_server(limits);
    let mut idle = TcpStream::connect(r.addr).unwrap();
    assert!(null_answered(&mut idle));
    assert!(closed_by_server(&mut idle), "an idle connection is closed");
    // A half-sent record is no call either.
    let mut partial = TcpStream::connect(r.addr).unwrap();
    partial.write_all(&0x8000_1000u32.to_be_bytes()).unwrap();
    partial.write_all(&[0; 100]).unwrap();
    assert!(closed_by_server(&mut partial), "a stalled record is closed");
    // The next client is served as ever.
    let mut c = Client::connect(r.addr);
    assert!(c.mnt(EXPORT).is_ok());
}

fn read_call(xid: u32, fh: &[u8], offset: u64) -> Vec<u8> {
    let mut a = Enc::new();
    a.opaque(fh).u64(offset).u32(1 << 20);
    let rec = encode_call(xid, 100_003, 3, 6, Some(&Cred::root()), &a.buf);
    let mut out = ((rec.len() as u32) | 0x8000_0000).to_be_bytes().to_vec();
    out.extend_from_slice(&rec);
    out
}

/// Calls written by a client that never reads a reply.
const CALLS: u32 = 200_000;

/// A client that pipelines 1 MiB READs of `fh` and never reads a reply:
/// its thread writes until the server stops reading (a write blocks for
/// `patience`) or closes the connection, and returns the calls it sent.
/// A small receive buffer: the kernel takes few replies for it.
fn stalled_client(
    addr: std::net::SocketAddr,
    fh: &[u8],
    patience: Duration,
) -> (TcpStream, std::thread::JoinHandle<u32>) {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(64 * 1024).unwrap();
    sock.connect(&addr.into()).unwrap();
    let s: TcpStream = sock.into();
    let mut w = s.try_clone().unwrap();
    w.set_write_timeout(Some(patience)).unwrap();
    let fh = fh.to_vec();
    let writer = std::thread::spawn(move || {
        let mut sent = 0;
        for i in 0..CALLS {
            if w.write_all(&read_call(i, &fh, u64::from(i % 5) << 20))
                .is_err()
            {
                break;
            }
            sent += 1;
        }
        sent
    });
    (s, writer)
}

fn threads_of_this_process() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// Connections that pipeline 1 MiB READs and never read a byte: the
/// server stops reading them at their reply budget (no thread waits for
/// them), another client reads the whole file meanwhile, and each of them
/// is closed once its replies are not taken for the write timeout.
#[test]
fn clients_that_never_read_hold_no_threads() {
    stalled_clients_against_a_reader(Limits::default(), 16);
}

/// The same with a server-wide reply budget the stalled clients fill: the
/// reader's one call in flight never waits for it. (A stalled client
/// waiting for that budget has no reply to time out on; it is dropped once
/// the others' time out and free it, one after the other: few of them.)
#[test]
fn clients_that_never_read_cannot_starve_another() {
    let limits = Limits {
        total_reply_budget: 2 << 20,
        ..Limits::default()
    };
    stalled_clients_against_a_reader(limits, 5);
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn stalled_clients_against_a_reader(limits: Limits, clients: usize) {
    let limits = Limits {
        max_per_peer: 64,
        write_timeout: Duration::from_secs(2),
        ..limits
    };
    let (_serial, _t, root, r) = serial_server(limits);
    let mut c = Client::connect(r.addr);
    let root_fh = c.mnt(EXPORT).unwrap();
    let big = c.walk(&root_fh, "big.bin");
    let before = threads_of_this_process();
    let mut stalled = Vec::new();
    for _ in 0..clients {
        stalled.push(stalled_client(r.addr, &big, Duration::from_secs(5)));
    }
    // Meanwhile a legitimate client reads the whole file.
    let data = std::fs::read(root.join("big.bin")).unwrap();
    let mut got = Vec::new();
    while got.len() < data.len() {
        let mut a = Enc::new();
        a.opaque(&big).u64(got.len() as u64).u32(1 << 20);
        let reply = c.call(100_003, 3, 6, &a.buf);
        let mut d = compose_nfs::xdr::Dec::new(&reply);
        assert_eq!(d.u32().unwrap(), 0);
        assert!(d.bool().unwrap());
        for _ in 0..21 {
            d.u32().unwrap();
        }
        d.u32().unwrap();
        d.bool().unwrap();
        got.extend_from_slice(d.opaque(1 << 20).unwrap());
    }
    assert!(got == data, "the legitimate read is whole and right");
    let during = threads_of_this_process();
    // Never having read, each is given up on (bounded wait).
    let mut timed_out = 0;
    for _ in 0..300 {
        timed_out += r
            .events()
            .into_iter()
            .filter(|e| matches!(e, NfsEvent::Error { message, .. } if message.contains("took no reply data")))
            .count();
        if timed_out >= clients {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(timed_out, clients, "every never-reading client was dropped");
    let sent: Vec<u32> = stalled
        .into_iter()
        .map(|(_, w)| w.join().unwrap())
        .collect();
    assert!(
        sent.iter().all(|n| *n < CALLS),
        "the server read every call of a client that took no reply: {sent:?}"
    );
    // The test's own writer threads, plus the server's bounded pool.
    assert!(
        during <= before + clients + 24,
        "threads grew from {before} to {during}"
    );
    println!("threads {before} -> {during} with {clients} stalled clients; calls sent {sent:?}");
}

/// A client pipelining READs while stalled clients hold the whole shared
/// reply budget (and will for the minute of their write timeout): its
/// calls beyond the first wait for the shared budget or for the calls
/// before them, whichever comes first, so every reply arrives within the
/// client's read timeout.
#[test]
fn pipelining_client_not_stalled_by_a_full_shared_budget() {
    let limits = Limits {
        total_reply_budget: 2 << 20,
        write_timeout: Duration::from_secs(60),
        ..Limits::default()
    };
    let (_serial, _t, _, r) = serial_server(limits);
    let mut c = Client::connect(r.addr);
    let root_fh = c.mnt(EXPORT).unwrap();
    let big = c.walk(&root_fh, "big.bin");
    let stalled: Vec<_> = (0..4)
        .map(|_| stalled_client(r.addr, &big, Duration::from_secs(3)))
        .collect();
    // Once their writes block, the server has stopped reading them: they
    // hold their budgets, the shared one among them.
    let stalled: Vec<TcpStream> = stalled
        .into_iter()
        .map(|(s, w)| {
            w.join().unwrap();
            s
        })
        .collect();
    let mut s = TcpStream::connect(r.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut calls = Vec::new();
    for i in 0..8u32 {
        calls.extend(read_call(i, &big, u64::from(i % 5) << 20));
    }
    s.write_all(&calls).unwrap();
    for _ in 0..8 {
        let mut mark = [0u8; 4];
        s.read_exact(&mut mark).expect("a pipelined reply");
        let mut body = vec![0u8; (u32::from_be_bytes(mark) & 0x7fff_ffff) as usize];
        s.read_exact(&mut body).expect("a pipelined reply");
        assert!(body.len() > 1 << 20, "a whole 1 MiB READ");
    }
    drop(stalled);
}
