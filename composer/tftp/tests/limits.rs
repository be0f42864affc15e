//! Admission and retransmission limits against a real server on loopback:
//! per-address and global transfer caps, few retransmits to a peer that
//! never ACKed (reflection), the transfer lifetime.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{pattern, rrq, Client, Harness};
use compose_tftp::packet::{self, Packet};
use compose_tftp::{ErrorCode, Mode, TftpEvent};
use tokio::net::UdpSocket;

/// Sends an RRQ from `sock` and returns the first reply and its source.
async fn ask(sock: &UdpSocket, server: SocketAddr, name: &str) -> (Packet, SocketAddr) {
    let req = packet::encode(&rrq(name, Mode::Octet, &[])).unwrap();
    sock.send_to(&req, server).await.unwrap();
    let mut buf = vec![0; 2048];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("no reply within 5 s")
        .unwrap();
    (packet::parse(&buf[..n]).unwrap(), from)
}

fn is_busy(p: &Packet) -> bool {
    matches!(p, Packet::Error { code, message } if *code == ErrorCode::UNDEFINED && message == "server busy")
}

#[tokio::test]
async fn caps_per_address_and_overall_then_serves_again() {
    let mut h = Harness::start_with(|c| {
        c.max_per_peer = 3;
        c.max_transfers = 5;
        c.default_timeout = Duration::from_millis(300);
        c.retries = 1;
        c.retries_before_ack = 1;
    });
    // Held transfers: requests that are answered with DATA 1 and never ACKed.
    let mut held = Vec::new();
    for (ip, ok, refused) in [("127.0.0.1", 3, 1), ("127.0.0.2", 2, 1)] {
        for i in 0..ok + refused {
            let sock = UdpSocket::bind((ip.parse::<std::net::IpAddr>().unwrap(), 0))
                .await
                .unwrap();
            let (p, from) = ask(&sock, h.addr, "pxelinux.0").await;
            if i < ok {
                assert!(
                    matches!(p, Packet::Data { block: 1, .. }),
                    "{ip} #{i}: {p:?}"
                );
                assert_ne!(from, h.addr, "a transfer answers from its own port");
            } else {
                assert!(is_busy(&p), "{ip} #{i}: want server busy, got {p:?}");
                // Refused cheaply: from the server port, no transfer socket.
                assert_eq!(from, h.addr);
            }
            held.push(sock);
        }
    }
    let mut refused = Vec::new();
    for _ in 0..2 {
        if let TftpEvent::Refused { reason, .. } =
            h.wait_event(|e| matches!(e, TftpEvent::Refused { .. }))
        {
            refused.push(reason);
        }
    }
    refused.sort();
    assert_eq!(
        refused,
        ["too many transfers", "too many transfers from this address"]
    );
    // The held transfers time out and give their slots back...
    for _ in 0..5 {
        h.wait_event(|e| matches!(e, TftpEvent::Failed { .. }));
    }
    // ...so the same address is served in full again.
    let mut c = Client::new(h.addr).await;
    let got = c.get("pxelinux.0", &[("blksize", "1468")]).await.unwrap();
    assert_eq!(got.data, pattern(42_000));
}

/// Counts the packets that arrive at `sock` from `from` until `quiet`
/// passes without one (bounded: at most 100).
async fn count_from(sock: &UdpSocket, from: SocketAddr, quiet: Duration) -> (usize, Vec<u16>) {
    let mut buf = vec![0; 2048];
    let mut blocks = Vec::new();
    for _ in 0..100 {
        match tokio::time::timeout(quiet, sock.recv_from(&mut buf)).await {
            Ok(Ok((n, src))) if src == from => {
                if let Ok(Packet::Data { block, .. }) = packet::parse(&buf[..n]) {
                    blocks.push(block);
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    (blocks.len(), blocks)
}

#[tokio::test]
async fn few_retransmits_until_the_first_ack_then_the_normal_count() {
    let mut h = Harness::start_with(|c| {
        c.default_timeout = Duration::from_millis(100);
        c.retries = 4;
        c.retries_before_ack = 1;
    });
    // A "victim" that never asked: DATA 1 arrives once plus one retransmit.
    let victim = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (first, tid) = ask(&victim, h.addr, "pxelinux.0").await;
    assert!(matches!(first, Packet::Data { block: 1, .. }));
    let (more, blocks) = count_from(&victim, tid, Duration::from_secs(1)).await;
    assert_eq!(1 + more, 2, "DATA 1 sent {} times: {blocks:?}", 1 + more);
    let ev = h.wait_event(|e| matches!(e, TftpEvent::Failed { .. }));
    assert!(
        matches!(&ev, TftpEvent::Failed { reason, .. } if reason.contains("1 retries")),
        "{ev:?}"
    );
    // The same with options: the OACK is what gets retransmitted.
    let (first, tid) = {
        let req = packet::encode(&rrq("pxelinux.0", Mode::Octet, &[("blksize", "1024")])).unwrap();
        victim.send_to(&req, h.addr).await.unwrap();
        let mut buf = vec![0; 2048];
        let (n, from) = victim.recv_from(&mut buf).await.unwrap();
        (packet::parse(&buf[..n]).unwrap(), from)
    };
    assert!(matches!(first, Packet::Oack { .. }));
    let mut buf = vec![0; 2048];
    let mut oacks = 1;
    while let Ok(Ok((_, src))) =
        tokio::time::timeout(Duration::from_secs(1), victim.recv_from(&mut buf)).await
    {
        assert_eq!(src, tid);
        oacks += 1;
        assert!(oacks < 10);
    }
    assert_eq!(oacks, 2, "OACK first send + 1 retry");
    // A real client that ACKs block 1 then goes silent gets the full count.
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (first, tid) = ask(&c, h.addr, "pxelinux.0").await;
    assert!(matches!(first, Packet::Data { block: 1, .. }));
    let ack = packet::encode(&Packet::Ack { block: 1 }).unwrap();
    c.send_to(&ack, tid).await.unwrap();
    let (n, blocks) = count_from(&c, tid, Duration::from_secs(1)).await;
    assert_eq!(n, 5, "block 2: first send + 4 retries, got {blocks:?}");
    assert!(blocks.iter().all(|b| *b == 2), "{blocks:?}");
}

#[tokio::test]
async fn a_slow_client_is_cut_off_at_the_lifetime() {
    let mut h = Harness::start_with(|c| {
        c.default_timeout = Duration::from_secs(2);
        c.max_lifetime = Duration::from_secs(1);
    });
    // 8-byte blocks of a 42 KB file, each ACKed 300 ms later: 5250 blocks
    // would take 26 min, each ACK well inside the retransmission timeout.
    let mut c = Client::new(h.addr).await;
    let (p, tid) = c
        .request(&rrq("pxelinux.0", Mode::Octet, &[("blksize", "8")]))
        .await;
    assert!(matches!(p, Packet::Oack { .. }));
    c.send(tid, &Packet::Ack { block: 0 }).await;
    let mut acked = 0u16;
    // Bounded: 40 rounds of at most 2.3 s.
    for _ in 0..40 {
        match c.recv(Duration::from_secs(2)).await {
            Some((Packet::Data { block, .. }, from)) if from == tid => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                c.send(tid, &Packet::Ack { block }).await;
                acked = block;
            }
            Some(_) => {}
            None => break,
        }
    }
    assert!((1..40).contains(&acked), "acked up to block {acked}");
    let ev = h.wait_event(|e| matches!(e, TftpEvent::Failed { .. }));
    assert!(
        matches!(&ev, TftpEvent::Failed { reason, .. } if reason.contains("maximum lifetime")),
        "{ev:?}"
    );
}
