//! Bounds under abuse: connection caps, idle and slow clients, a client that
//! stops reading. Real sockets on loopback; every wait is bounded.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{curl, start, tree};
use compose_http::{HttpConfig, HttpEvent};

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Reads until EOF, an error or 5 s: what the server said before closing.
fn read_until_closed(s: &mut TcpStream) -> (Vec<u8>, Duration) {
    let t = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // Bounded by the 5 s read timeout per call and the deadline.
    while t.elapsed() < Duration::from_secs(5) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    (out, t.elapsed())
}

/// Retries `f` every 50 ms for at most 5 s.
fn eventually(what: &str, f: impl Fn() -> bool) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what}: not within 5 s");
}

#[test]
fn connection_cap_refuses_extras_then_recovers() {
    let t = tree();
    let s = start(&t, |c| {
        c.max_connections = 8;
        c.max_per_peer = 8;
    });
    // A flood of idle connections, three times the cap.
    let idle: Vec<TcpStream> = (0..24).map(|_| connect(s.addr)).collect();
    for _ in 0..16 {
        s.wait_event(|e| matches!(e, HttpEvent::Refused { status: 503, .. }));
    }
    // The extras were answered and closed at once: 8 stay open.
    let mut closed = 0;
    for mut c in idle.iter() {
        c.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 256];
        match c.read(&mut buf) {
            Ok(n) => {
                assert!(n == 0 || buf.starts_with(b"HTTP/1.1 503"));
                closed += 1;
            }
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}"),
        }
    }
    assert_eq!(closed, 16);
    assert_eq!(curl(&[&s.url("/pxelinux.0")]).status, 503);
    drop(idle);
    eventually("a request after the flood", || {
        curl(&[&s.url("/pxelinux.0")]).status == 200
    });
}

#[test]
fn per_peer_cap_leaves_other_clients_alone() {
    let t = tree();
    let s = start(&t, |c| c.max_per_peer = 2);
    let _hogs: Vec<TcpStream> = (0..2).map(|_| connect(s.addr)).collect();
    // Wait until both are counted: a third from the same address is refused.
    eventually("the per-peer cap", || {
        curl(&["--interface", "127.0.0.1", &s.url("/pxelinux.0")]).status == 503
    });
    let g = curl(&["--interface", "127.0.0.2", &s.url("/pxelinux.0")]);
    assert_eq!(g.status, 200);
}

fn timeouts(c: &mut HttpConfig, header_ms: u64, idle_ms: u64) {
    c.header_timeout = Duration::from_millis(header_ms);
    c.idle_timeout = Duration::from_millis(idle_ms);
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let t = tree();
    // hyper's header timeout starts as soon as it waits for a request head,
    // so it bounds a kept-alive connection between requests.
    let s = start(&t, |c| timeouts(c, 800, 30_000));
    let mut c = connect(s.addr);
    c.write_all(b"GET /pxelinux.0 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (got, took) = read_until_closed(&mut c);
    assert!(got.starts_with(b"HTTP/1.1 200"), "{got:?}");
    assert!(got.ends_with(b"loader"));
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    // A connection that never sends a byte, with the idle bound the shorter.
    let s = start(&t, |c| timeouts(c, 30_000, 800));
    let mut silent = connect(s.addr);
    let (got, took) = read_until_closed(&mut silent);
    assert!(
        got.is_empty() && took < Duration::from_secs(3),
        "after {took:?}: {got:?}"
    );
}

#[test]
fn slowloris_headers_are_cut_off() {
    let t = tree();
    let s = start(&t, |c| timeouts(c, 800, 30_000));
    let mut c = connect(s.addr);
    c.write_all(b"GET /pxelinux.0 HTTP/1.1\r\n").unwrap();
    let t0 = Instant::now();
    // One header line every 100 ms, for at most 5 s; progress on the socket
    // must not extend the header deadline.
    let mut cut = false;
    for i in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        if c.write_all(format!("X-{i}: y\r\n").as_bytes()).is_err() {
            cut = true;
            break;
        }
        c.set_nonblocking(true).unwrap();
        let mut b = [0u8; 64];
        let r = c.read(&mut b);
        c.set_nonblocking(false).unwrap();
        if !matches!(r, Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock) {
            cut = true;
            break;
        }
    }
    assert!(cut, "still open after 5 s of trickled headers");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

#[test]
fn a_client_that_stops_reading_is_dropped() {
    let t = tree();
    // Larger than every socket buffer on the way, sparse so it costs nothing.
    let big = std::fs::File::create(t.top().join("images/img/gen/1/initrd.img")).unwrap();
    big.set_len(256 << 20).unwrap();
    let s = start(&t, |c| c.write_timeout = Duration::from_millis(800));
    let mut c = connect(s.addr);
    c.write_all(b"GET /images/img/gen/1/initrd.img HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let e = s.wait_event(|e| matches!(e, HttpEvent::Failed { .. }));
    let HttpEvent::Failed { bytes, .. } = e else {
        unreachable!()
    };
    assert!(bytes < 256 << 20, "{bytes}");
    drop(c);
}

#[test]
fn bind_to_device_names_the_interface() {
    let t = tree();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cfg = HttpConfig::new(t.top().join("tftp"), "127.0.0.1:0".parse().unwrap());
    let (server, _) = rt.block_on(compose_http::HttpServer::bind(cfg)).unwrap();
    let err = server.bind_to_device("nosuchif0").unwrap_err();
    assert!(err.to_string().contains("nosuchif0"), "{err}");
    // SO_BINDTODEVICE needs CAP_NET_RAW: as root, serve on `lo` only.
    if nix::unistd::geteuid().is_root() {
        let s = common::start_on(&t, |_| {}, Some("lo"));
        assert_eq!(curl(&[&s.url("/pxelinux.0")]).status, 200);
    } else {
        let err = server.bind_to_device("lo").unwrap_err();
        assert!(err.to_string().contains("interface lo"), "{err}");
    }
}

#[test]
fn an_oversized_request_head_is_refused() {
    let t = tree();
    let s = start(&t, |_| {});
    let mut c = connect(s.addr);
    let filler = "a".repeat(32 * 1024);
    // The server may stop reading before all of it is written.
    let _ = c.write_all(format!("GET /pxelinux.0 HTTP/1.1\r\nX-Big: {filler}\r\n\r\n").as_bytes());
    let (got, took) = read_until_closed(&mut c);
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
}
