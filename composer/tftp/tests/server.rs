//! The server driven by a hand-written client over loopback UDP.

mod common;

use std::time::{Duration, Instant};

use common::{is_error, pattern, rrq, Client, Harness};
use compose_tftp::packet::{Packet, Request};
use compose_tftp::{ErrorCode, Mode, TftpEvent};

fn s(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn option_negotiation_table() {
    let h = Harness::start();
    let size = "42000";
    type Case<'a> = (&'a [(&'a str, &'a str)], Option<Vec<(String, String)>>);
    let cases: Vec<Case> = vec![
        (&[], None),
        (&[("blksize", "1024")], Some(s(&[("blksize", "1024")]))),
        (&[("BLKSIZE", "65464")], Some(s(&[("BLKSIZE", "1468")]))),
        (&[("tsize", "0")], Some(s(&[("tsize", size)]))),
        (
            &[("timeout", "2"), ("windowsize", "100")],
            Some(s(&[("timeout", "2"), ("windowsize", "16")])),
        ),
        (&[("multicast", ""), ("blksize", "4")], None),
        (
            &[("blksize", "8"), ("tsize", "0"), ("windowsize", "3")],
            Some(s(&[("blksize", "8"), ("tsize", size), ("windowsize", "3")])),
        ),
    ];
    for (opts, want) in cases {
        let mut c = Client::new(h.addr).await;
        let got = c.get("pxelinux.0", opts).await.unwrap();
        assert_eq!(got.oack, want, "{opts:?}");
        assert_eq!(got.data, pattern(42_000), "{opts:?}");
    }
}

#[tokio::test]
async fn windowsize_and_final_blocks() {
    let h = Harness::start();
    type Opts<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(&str, Opts, &[usize])] = &[
        // A size that is a multiple of blksize ends with a 0-length block.
        ("exact1024", &[], &[512, 512, 0]),
        ("exact1024", &[("windowsize", "2")], &[512, 512, 0]),
        ("exact1024", &[("blksize", "1024")], &[1024, 0]),
        ("empty", &[], &[0]),
        ("empty", &[("windowsize", "4")], &[0]),
    ];
    for (name, opts, lens) in cases {
        let mut c = Client::new(h.addr).await;
        let got = c.get(name, opts).await.unwrap();
        let seen: Vec<usize> = got.blocks.iter().map(|b| b.1).collect();
        assert_eq!(&seen, lens, "{name} {opts:?}");
    }
    for window in ["1", "4", "7", "16"] {
        let mut c = Client::new(h.addr).await;
        let got = c
            .get(
                "images/x/gen/1/vmlinuz",
                &[("windowsize", window), ("blksize", "1000")],
            )
            .await
            .unwrap();
        assert_eq!(got.data, pattern(70_000), "window {window}");
    }
}

#[tokio::test]
async fn paths_and_refusals_table() {
    let mut h = Harness::start();
    let ok: &[(&str, Vec<u8>)] = &[
        ("/pxelinux.0", pattern(42_000)),
        ("pxelinux.cfg/default", b"DEFAULT x\n".to_vec()),
        ("\\images\\x\\current\\vmlinuz", pattern(70_000)),
    ];
    for (name, want) in ok {
        let mut c = Client::new(h.addr).await;
        assert_eq!(&c.get(name, &[]).await.unwrap().data, want, "{name}");
    }
    let refused: &[(&str, Mode, ErrorCode)] = &[
        ("missing", Mode::Octet, ErrorCode::FILE_NOT_FOUND),
        (
            "pxelinux.cfg/01-aa-bb-cc-dd-ee-ff",
            Mode::Octet,
            ErrorCode::FILE_NOT_FOUND,
        ),
        (
            "pxelinux.cfg/C0A80001",
            Mode::Octet,
            ErrorCode::FILE_NOT_FOUND,
        ),
        ("../secret", Mode::Octet, ErrorCode::ACCESS_VIOLATION),
        (
            "images/../../secret",
            Mode::Octet,
            ErrorCode::ACCESS_VIOLATION,
        ),
        ("//etc/passwd", Mode::Octet, ErrorCode::ACCESS_VIOLATION),
        ("evil", Mode::Octet, ErrorCode::ACCESS_VIOLATION),
        ("up/etc/passwd", Mode::Octet, ErrorCode::ACCESS_VIOLATION),
        ("deep", Mode::Octet, ErrorCode::ACCESS_VIOLATION),
        ("dir", Mode::Octet, ErrorCode::ACCESS_VIOLATION),
        ("images", Mode::Octet, ErrorCode::ACCESS_VIOLATION),
        ("pxelinux.0", Mode::Mail, ErrorCode::ILLEGAL_OPERATION),
    ];
    for (name, mode, code) in refused {
        let mut c = Client::new(h.addr).await;
        let (p, _) = c.request(&rrq(name, *mode, &[])).await;
        assert!(is_error(&p, *code), "{name}: {p:?}");
        let ev = h.wait_event(|e| matches!(e, TftpEvent::Refused { .. }));
        assert!(matches!(ev, TftpEvent::Refused { path, .. } if path == *name));
    }
    // Writes are refused whatever the name.
    let mut c = Client::new(h.addr).await;
    let wrq = Packet::Wrq(Request {
        filename: "new".into(),
        mode: Mode::Octet,
        options: vec![],
    });
    let (p, _) = c.request(&wrq).await;
    assert!(is_error(&p, ErrorCode::ACCESS_VIOLATION), "{p:?}");
    assert!(!h.root.join("new").exists());
    // A malformed request gets ERROR 4 and a Malformed event.
    c.sock
        .send_to(b"\0\x01name-without-mode", h.addr)
        .await
        .unwrap();
    let (p, _) = c.recv(Duration::from_secs(5)).await.unwrap();
    assert!(is_error(&p, ErrorCode::ILLEGAL_OPERATION), "{p:?}");
    h.wait_event(|e| matches!(e, TftpEvent::Malformed { .. }));
    // Junk that is not a request gets no answer.
    c.sock.send_to(b"\x47\x45\x54 /", h.addr).await.unwrap();
    assert!(c.recv(Duration::from_millis(200)).await.is_none());
}

#[tokio::test]
async fn netascii_is_converted() {
    let h = Harness::start();
    let mut c = Client::new(h.addr).await;
    let got = c
        .get_mode("text", Mode::Netascii, &[("tsize", "0")])
        .await
        .unwrap();
    assert_eq!(got.data, b"line one\r\nline two\r\0\r\nCR\r\0end\r\n");
    assert_eq!(got.oack, None, "tsize is not offered for netascii");
}

#[tokio::test]
async fn events_for_a_transfer() {
    let mut h = Harness::start();
    let mut c = Client::new(h.addr).await;
    c.get("pxelinux.0", &[("blksize", "1400")]).await.unwrap();
    let started = h.wait_event(|e| matches!(e, TftpEvent::Started { .. }));
    assert!(
        matches!(started, TftpEvent::Started { size: 42_000, blksize: 1400, windowsize: 1, ref path, .. } if path == "pxelinux.0")
    );
    let done = h.wait_event(|e| matches!(e, TftpEvent::Finished { .. }));
    assert!(
        matches!(done, TftpEvent::Finished { bytes: 42_000, ref peer, .. } if *peer == c.sock.local_addr().unwrap())
    );
}

#[tokio::test]
async fn retransmits_when_an_ack_is_lost_and_ignores_duplicates() {
    let mut h = Harness::start_with(|c| c.default_timeout = Duration::from_secs(1));
    let mut c = Client::new(h.addr).await;
    let (p, tid) = c.request(&rrq("exact1024", Mode::Octet, &[])).await;
    assert!(matches!(p, Packet::Data { block: 1, .. }));
    // Drop our ACK: the server must send block 1 again after its timeout.
    let t0 = Instant::now();
    let p = c.next_from(tid).await.unwrap();
    assert!(matches!(p, Packet::Data { block: 1, .. }), "{p:?}");
    assert!(t0.elapsed() >= Duration::from_millis(800));
    c.send(tid, &Packet::Ack { block: 1 }).await;
    assert!(matches!(
        c.next_from(tid).await.unwrap(),
        Packet::Data { block: 2, .. }
    ));
    // A duplicate of an old ACK must not trigger a resend (Sorcerer's Apprentice).
    c.send(tid, &Packet::Ack { block: 1 }).await;
    assert!(c.recv(Duration::from_millis(300)).await.is_none());
    c.send(tid, &Packet::Ack { block: 2 }).await;
    assert!(
        matches!(c.next_from(tid).await.unwrap(), Packet::Data { block: 3, ref data } if data.is_empty())
    );
    c.send(tid, &Packet::Ack { block: 3 }).await;
    h.wait_event(|e| matches!(e, TftpEvent::Finished { .. }));
}

#[tokio::test]
async fn gives_up_after_bounded_retries() {
    let mut h = Harness::start_with(|c| {
        c.default_timeout = Duration::from_millis(50);
        c.retries = 2;
    });
    let mut c = Client::new(h.addr).await;
    let (_, tid) = c
        .request(&rrq("pxelinux.0", Mode::Octet, &[("blksize", "1024")]))
        .await;
    let mut oacks = 1;
    while let Some((p, from)) = c.recv(Duration::from_millis(500)).await {
        assert_eq!(from, tid);
        assert!(matches!(p, Packet::Oack { .. }));
        oacks += 1;
    }
    assert_eq!(oacks, 3, "first send + 2 retries");
    let ev = h.wait_event(|e| matches!(e, TftpEvent::Failed { .. }));
    assert!(matches!(ev, TftpEvent::Failed { reason, .. } if reason.contains("retries")));
}

#[tokio::test]
async fn client_error_aborts() {
    let mut h = Harness::start();
    let mut c = Client::new(h.addr).await;
    let (p, tid) = c
        .request(&rrq("pxelinux.0", Mode::Octet, &[("blksize", "99999")]))
        .await;
    assert!(matches!(p, Packet::Oack { .. }));
    let refuse = Packet::Error {
        code: ErrorCode::OPTION_REFUSED,
        message: "no thanks".into(),
    };
    c.send(tid, &refuse).await;
    let ev = h.wait_event(|e| matches!(e, TftpEvent::Failed { .. }));
    assert!(matches!(ev, TftpEvent::Failed { reason, .. } if reason.contains("ERROR 8")));
    assert!(
        c.recv(Duration::from_millis(700)).await.is_none(),
        "no retransmission after abort"
    );
}

#[tokio::test]
async fn wrong_tid_gets_error_5_and_transfer_continues() {
    let h = Harness::start();
    let mut c = Client::new(h.addr).await;
    let mut intruder = Client::new(h.addr).await;
    let (p, tid) = c.request(&rrq("exact1024", Mode::Octet, &[])).await;
    assert!(matches!(p, Packet::Data { block: 1, .. }));
    intruder.send(tid, &Packet::Ack { block: 1 }).await;
    let (err, from) = intruder.recv(Duration::from_secs(5)).await.unwrap();
    assert_eq!(from, tid);
    assert!(is_error(&err, ErrorCode::UNKNOWN_TID), "{err:?}");
    // The intruder's ACK did not advance the real transfer.
    assert!(c.recv(Duration::from_millis(100)).await.is_none());
    let mut data = match p {
        Packet::Data { data, .. } => data,
        _ => unreachable!(),
    };
    for want in 2..=3u16 {
        c.send(tid, &Packet::Ack { block: want - 1 }).await;
        data.extend(p_data(&mut c, tid, want).await);
    }
    c.send(tid, &Packet::Ack { block: 3 }).await;
    assert_eq!(data, pattern(1024));
}

async fn p_data(c: &mut Client, tid: std::net::SocketAddr, want: u16) -> Vec<u8> {
    match c.next_from(tid).await.unwrap() {
        Packet::Data { block, data } if block == want => data,
        other => panic!("want DATA {want}, got {other:?}"),
    }
}

#[tokio::test]
async fn block_numbers_roll_over() {
    let h = Harness::start();
    // Sparse: 32 MiB + 700 bytes at blksize 512 is 65538 blocks, so the
    // block number wraps 65535 -> 0 -> 1 inside one transfer.
    let size = 32 * 1024 * 1024 + 700;
    let f = std::fs::File::create(h.root.join("big")).unwrap();
    f.set_len(size).unwrap();
    for window in ["1", "8"] {
        let mut c = Client::new(h.addr).await;
        let got = c.get("big", &[("windowsize", window)]).await.unwrap();
        assert_eq!(got.data.len() as u64, size, "window {window}");
        assert!(got.data.iter().all(|&b| b == 0));
        let n = got.blocks.len();
        assert_eq!(n, 65538);
        let tail: Vec<u16> = got.blocks[65534..].iter().map(|b| b.0).collect();
        assert_eq!(tail, [65535, 0, 1, 2]);
        assert_eq!(got.blocks[n - 1].1, 188);
    }
}

#[tokio::test]
async fn twenty_parallel_transfers() {
    // All from 127.0.0.1: lift the per-address cap (limits.rs tests it).
    let mut h = Harness::start_with(|c| c.max_per_peer = 20);
    for i in 0..20 {
        std::fs::write(h.root.join(format!("f{i}")), pattern(50_000 + i * 333)).unwrap();
    }
    let addr = h.addr;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20usize {
        tasks.spawn(async move {
            let mut c = Client::new(addr).await;
            let blk = ["512", "1024", "1468"][i % 3];
            let got = c
                .get(&format!("f{i}"), &[("blksize", blk), ("windowsize", "4")])
                .await;
            (i, got)
        });
    }
    let res = tokio::time::timeout(Duration::from_secs(60), tasks.join_all())
        .await
        .unwrap();
    for (i, got) in res {
        assert_eq!(got.unwrap().data, pattern(50_000 + i * 333), "f{i}");
    }
    for _ in 0..20 {
        h.wait_event(|e| matches!(e, TftpEvent::Finished { .. }));
    }
}

#[tokio::test]
async fn partial_window_ack_resends_from_there() {
    let h = Harness::start_with(|c| c.default_timeout = Duration::from_secs(2));
    let mut c = Client::new(h.addr).await;
    let (p, tid) = c
        .request(&rrq("pxelinux.0", Mode::Octet, &[("windowsize", "4")]))
        .await;
    assert!(matches!(p, Packet::Oack { .. }));
    c.send(tid, &Packet::Ack { block: 0 }).await;
    let mut window = Vec::new();
    for _ in 0..4 {
        window.push(p_block(&mut c, tid).await);
    }
    assert_eq!(window, [1, 2, 3, 4]);
    // "Got up to 2": blocks 3 and 4 come again, followed by 5 and 6.
    c.send(tid, &Packet::Ack { block: 2 }).await;
    let mut again = Vec::new();
    for _ in 0..4 {
        again.push(p_block(&mut c, tid).await);
    }
    assert_eq!(again, [3, 4, 5, 6]);
}

async fn p_block(c: &mut Client, tid: std::net::SocketAddr) -> u16 {
    match c.next_from(tid).await.unwrap() {
        Packet::Data { block, .. } => block,
        other => panic!("want DATA, got {other:?}"),
    }
}

#[tokio::test]
async fn bind_validates_and_serve_stops_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tftp");
    std::fs::create_dir(&root).unwrap();
    let cfg = common::config(&root, dir.path());
    let bad: Vec<(&str, compose_tftp::TftpConfig)> = vec![
        (
            "blksize",
            compose_tftp::TftpConfig {
                max_blksize: 4,
                ..cfg.clone()
            },
        ),
        (
            "window",
            compose_tftp::TftpConfig {
                max_window: 0,
                ..cfg.clone()
            },
        ),
        (
            "timeout",
            compose_tftp::TftpConfig {
                default_timeout: Duration::ZERO,
                ..cfg.clone()
            },
        ),
        (
            "transfers",
            compose_tftp::TftpConfig {
                max_transfers: 0,
                ..cfg.clone()
            },
        ),
        (
            "lifetime",
            compose_tftp::TftpConfig {
                max_lifetime: Duration::ZERO,
                ..cfg.clone()
            },
        ),
        (
            "outside",
            compose_tftp::TftpConfig {
                confine: root.join("x"),
                ..cfg.clone()
            },
        ),
        (
            "not inside",
            compose_tftp::TftpConfig {
                root: dir.path().to_path_buf(),
                confine: root.clone(),
                ..cfg.clone()
            },
        ),
    ];
    for (what, c) in bad {
        assert!(compose_tftp::TftpServer::bind(c).await.is_err(), "{what}");
    }
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        compose_tftp::serve(cfg, tx, async {}),
    )
    .await;
    assert!(matches!(r, Ok(Ok(()))));
}
