//! Property tests and a bounded fuzz run of the codec and the server loop.

mod common;

use std::time::Duration;

use common::{pattern, Client, Harness};
use compose_tftp::packet::{
    encode, parse, ErrorCode, Mode, Packet, PacketError, Request, MAX_OPTIONS, MAX_REQUEST,
};
use proptest::prelude::*;

fn text(min: usize, max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        any::<char>().prop_filter("no NUL", |c| *c != '\0'),
        min..max,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn options() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec((text(1, 12), text(0, 12)), 0..5)
}

fn request() -> impl Strategy<Value = Request> {
    let mode = prop_oneof![Just(Mode::Octet), Just(Mode::Netascii), Just(Mode::Mail)];
    (text(1, 40), mode, options()).prop_map(|(filename, mode, options)| Request {
        filename,
        mode,
        options,
    })
}

fn packet() -> impl Strategy<Value = Packet> {
    prop_oneof![
        request().prop_map(Packet::Rrq),
        request().prop_map(Packet::Wrq),
        (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..700))
            .prop_map(|(block, data)| Packet::Data { block, data }),
        any::<u16>().prop_map(|block| Packet::Ack { block }),
        (any::<u16>(), text(0, 40)).prop_map(|(c, message)| Packet::Error {
            code: ErrorCode(c),
            message
        }),
        options().prop_map(|options| Packet::Oack { options }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn roundtrip(p in packet()) {
        let bytes = encode(&p).unwrap();
        let is_request = matches!(p, Packet::Rrq(_) | Packet::Wrq(_));
        if is_request && bytes.len() - 2 > MAX_REQUEST {
            prop_assert_eq!(parse(&bytes), Err(PacketError::RequestTooLong(bytes.len() - 2)));
        } else {
            prop_assert_eq!(parse(&bytes), Ok(p));
        }
    }

    /// Any number of options: at most MAX_OPTIONS parse, more are refused
    /// (never a panic, and never more than MAX_OPTIONS kept).
    #[test]
    fn option_count_is_capped(opts in proptest::collection::vec((text(1, 6), text(0, 6)), 0..200)) {
        let p = Packet::Rrq(Request { filename: "f".into(), mode: Mode::Octet, options: opts.clone() });
        let bytes = encode(&p).unwrap();
        match parse(&bytes) {
            Ok(q) => {
                prop_assert!(opts.len() <= MAX_OPTIONS && bytes.len() - 2 <= MAX_REQUEST);
                prop_assert_eq!(q, p);
            }
            Err(PacketError::TooManyOptions) => prop_assert!(opts.len() > MAX_OPTIONS),
            Err(PacketError::RequestTooLong(n)) => prop_assert!(n > MAX_REQUEST),
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }

    #[test]
    fn mutated_packets_never_panic(p in packet(), cut in any::<prop::sample::Index>(),
                                   flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4)) {
        let mut bytes = encode(&p).unwrap();
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        let n = cut.index(bytes.len() + 1);
        let _ = parse(&bytes[..n]);
    }
}

proptest! {
    // The bounded fuzz run: many arbitrary datagrams, some with a valid opcode.
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn arbitrary_bytes_never_panic(op in 0u8..8, body in prop_oneof![proptest::collection::vec(any::<u8>(), 0..80), proptest::collection::vec(any::<u8>(), 400..1200)], raw in any::<bool>()) {
        let mut bytes = if raw { Vec::new() } else { vec![0, op] };
        bytes.extend(body);
        // Whatever parses must re-encode to something that parses the same.
        if let Ok(p) = parse(&bytes) {
            if let Ok(again) = encode(&p) {
                prop_assert_eq!(parse(&again), Ok(p));
            }
        }
    }
}

/// Junk at the server port and at a live transfer's port must neither kill
/// the server nor corrupt the transfer.
#[tokio::test]
async fn server_survives_junk() {
    let h = Harness::start();
    let junk = Client::new(h.addr).await;
    let mut state: u64 = 0x9e3779b97f4a7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut c = Client::new(h.addr).await;
    let (first, tid) = c
        .request(&common::rrq(
            "pxelinux.0",
            Mode::Octet,
            &[("blksize", "1024")],
        ))
        .await;
    assert!(matches!(first, Packet::Oack { .. }));
    for i in 0..500 {
        let len = (next() % 64) as usize;
        let mut d: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 2 == 0 && d.len() >= 2 {
            d[0] = 0;
            d[1] = (next() % 7) as u8;
        }
        let to = if i % 3 == 0 { tid } else { h.addr };
        junk.sock.send_to(&d, to).await.unwrap();
    }
    // The live transfer still completes correctly...
    c.send(tid, &Packet::Ack { block: 0 }).await;
    let mut data = Vec::new();
    for block in 1..=42u16 {
        match c.next_from(tid).await.unwrap() {
            Packet::Data { block: b, data: d } if b == block => {
                data.extend(d);
                c.send(tid, &Packet::Ack { block }).await;
            }
            other => panic!("block {block}: {other:?}"),
        }
    }
    assert_eq!(data, pattern(42_000));
    // ...and new requests are still served.
    let mut c2 = Client::new(h.addr).await;
    let got = tokio::time::timeout(Duration::from_secs(20), c2.get("exact1024", &[]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.data, pattern(1024));
}
