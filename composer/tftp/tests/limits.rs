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

/// Sends `p` from `sock` to `to`.
async fn send(sock: &UdpSocket, to: SocketAddr, p: &Packet) {
    sock.send_to(&packet::encode(p).unwrap(), to).await.unwrap();
}

/// Waits (5 s at most) for DATA `block` from `tid`, skipping retransmits.
async fn next_block(sock: &UdpSocket, tid: SocketAddr, block: u16) {
    let mut buf = vec![0; 2048];
    for _ in 0..10 {
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
            .await
            .expect("no DATA within 5 s")
            .unwrap();
        if from == tid
            && matches!(packet::parse(&buf[..n]), Ok(Packet::Data { block: b, .. }) if b == block)
        {
            return;
        }
    }
    panic!("no DATA {block} from {tid}");
}

#[tokio::test]
async fn caps_per_address_evicts_the_unacked_then_refuses() {
    let mut h = Harness::start_with(|c| {
        c.max_per_peer = 3;
        c.max_transfers = 5;
        // Long enough that no held transfer ends by itself during the test.
        c.default_timeout = Duration::from_secs(10);
        c.retries = 1;
        c.retries_before_ack = 1;
    });
    let bind = |ip: &'static str| async move {
        UdpSocket::bind((ip.parse::<std::net::IpAddr>().unwrap(), 0))
            .await
            .unwrap()
    };
    // 127.0.0.1 holds three transfers it never ACKs; a fourth is refused.
    let mut silent = Vec::new();
    for i in 0..4 {
        let sock = bind("127.0.0.1").await;
        let (p, from) = ask(&sock, h.addr, "pxelinux.0").await;
        if i < 3 {
            assert!(matches!(p, Packet::Data { block: 1, .. }), "#{i}: {p:?}");
            silent.push((sock, from));
        } else {
            assert!(is_busy(&p), "#{i}: want server busy, got {p:?}");
            // Refused cheaply: from the server port, no transfer socket.
            assert_eq!(from, h.addr);
        }
    }
    let ev = h.wait_event(|e| matches!(e, TftpEvent::Refused { .. }));
    assert!(
        matches!(&ev, TftpEvent::Refused { reason, .. } if reason == "too many transfers from this address"),
        "{ev:?}"
    );
    // 127.0.0.2 takes the last two slots and ACKs: a real client.
    let mut real = Vec::new();
    for _ in 0..2 {
        let sock = bind("127.0.0.2").await;
        let (p, tid) = ask(&sock, h.addr, "pxelinux.0").await;
        assert!(matches!(p, Packet::Data { block: 1, .. }), "{p:?}");
        send(&sock, tid, &Packet::Ack { block: 1 }).await;
        real.push((sock, tid));
    }
    // All five taken: a newcomer evicts the oldest never-ACKed transfer...
    let newcomer = bind("127.0.0.3").await;
    let (p, tid) = ask(&newcomer, h.addr, "pxelinux.0").await;
    assert!(matches!(p, Packet::Data { block: 1, .. }), "{p:?}");
    send(&newcomer, tid, &Packet::Ack { block: 1 }).await;
    let ev = h.wait_event(|e| matches!(e, TftpEvent::Failed { .. }));
    let first_silent = silent[0].0.local_addr().unwrap();
    assert!(
        matches!(&ev, TftpEvent::Failed { peer, reason, .. } if *peer == first_silent && reason.contains("evicted")),
        "{ev:?}"
    );
    // ...and the ACKing ones were left alone: their next block comes.
    for (sock, tid) in &real {
        next_block(sock, *tid, 2).await;
    }
    // Once every running transfer has ACKed (seen by the server: it sent
    // the next block), there is nobody to evict.
    for (sock, tid) in &silent[1..] {
        send(sock, *tid, &Packet::Ack { block: 1 }).await;
        next_block(sock, *tid, 2).await;
    }
    let late = bind("127.0.0.4").await;
    let (p, _) = ask(&late, h.addr, "pxelinux.0").await;
    assert!(is_busy(&p), "want server busy, got {p:?}");
    let ev = h.wait_event(|e| matches!(e, TftpEvent::Refused { .. }));
    assert!(
        matches!(&ev, TftpEvent::Refused { reason, .. } if reason == "too many transfers"),
        "{ev:?}"
    );
    // Clients that abort give their slots back at once: served in full again.
    let abort = Packet::Error {
        code: ErrorCode::UNDEFINED,
        message: "bye".into(),
    };
    for (sock, tid) in silent[1..].iter().chain(&real) {
        send(sock, *tid, &abort).await;
    }
    for _ in 0..4 {
        h.wait_event(|e| matches!(e, TftpEvent::Failed { reason, .. } if reason.contains("bye")));
    }
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
