use super::*;
use proptest::prelude::*;

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

/// A request as a client would put it on the wire, built byte by byte
/// (independently of `encode`): header, cookie, then `opts` verbatim.
fn raw(xid: u32, flags: u16, ciaddr: [u8; 4], opts: &[u8]) -> Vec<u8> {
    let mut b = vec![1, 1, 6, 0];
    b.extend_from_slice(&xid.to_be_bytes());
    b.extend_from_slice(&[0, 4]); // secs
    b.extend_from_slice(&flags.to_be_bytes());
    b.extend_from_slice(&ciaddr);
    b.extend_from_slice(&[0; 12]); // yiaddr, siaddr, giaddr
    b.extend_from_slice(&MAC);
    b.extend_from_slice(&[0; 10 + 64 + 128]);
    b.extend_from_slice(&MAGIC_COOKIE);
    b.extend_from_slice(opts);
    b
}

/// busybox udhcpc 1.35 DISCOVER with -V PXEClient -x 0x5d:0000 -O hostname.
fn udhcpc_discover() -> Vec<u8> {
    let mut o = vec![53, 1, 1, 61, 7, 1];
    o.extend_from_slice(&MAC);
    o.extend_from_slice(&[57, 2, 0x02, 0x40]);
    o.extend_from_slice(&[60, 9]);
    o.extend_from_slice(b"PXEClient");
    o.extend_from_slice(&[93, 2, 0, 0]);
    o.extend_from_slice(&[55, 8, 1, 3, 6, 12, 15, 28, 42, 67]);
    o.push(255);
    let mut b = raw(0xdead_beef, 0, [0; 4], &o);
    b.resize(300, 0);
    b
}

/// A BIOS PXE ROM DISCOVER (Intel UNDI style): broadcast flag, UUID, big
/// max message size, the long PXE parameter list.
fn pxe_rom_discover() -> Vec<u8> {
    let mut o = vec![53, 1, 1, 57, 2, 0x04, 0xec, 93, 2, 0, 0, 94, 3, 1, 2, 1];
    o.extend_from_slice(&[97, 17, 0]);
    o.extend_from_slice(&[0x11; 16]);
    let vc = b"PXEClient:Arch:00000:UNDI:002001";
    o.extend_from_slice(&[60, vc.len() as u8]);
    o.extend_from_slice(vc);
    o.extend_from_slice(&[55, 13, 1, 2, 3, 5, 6, 11, 12, 13, 15, 16, 17, 18, 43]);
    o.push(255);
    let mut b = raw(0x0102_0304, FLAG_BROADCAST, [0; 4], &o);
    b.resize(548, 0);
    b
}

/// ISC dhclient REQUEST in SELECTING state.
fn dhclient_request() -> Vec<u8> {
    let mut o = vec![53, 1, 3, 54, 4, 10, 0, 0, 1, 50, 4, 10, 0, 0, 11, 12, 5];
    o.extend_from_slice(b"node1");
    o.extend_from_slice(&[55, 4, 1, 28, 2, 3, 255]);
    let mut b = raw(7, 0, [0; 4], &o);
    b.resize(300, 0);
    b
}

#[test]
fn captured_packets_parse_with_typed_accessors() {
    let p = Packet::parse(&udhcpc_discover()).unwrap();
    assert_eq!(
        (p.op, p.xid, p.mac()),
        (Op::BootRequest, 0xdead_beef, Some(MAC))
    );
    assert_eq!(p.message_type(), Some(MessageType::Discover));
    assert_eq!(p.client_id().unwrap()[1..], MAC);
    assert_eq!(p.max_message_size(), Some(576));
    assert!(p.is_pxe_client());
    assert_eq!(p.client_arch(), Some(0));
    assert_eq!(
        p.parameter_request_list(),
        Some(&[1, 3, 6, 12, 15, 28, 42, 67][..])
    );
    assert!(!p.broadcast_flag());

    let p = Packet::parse(&pxe_rom_discover()).unwrap();
    assert!(p.broadcast_flag() && p.is_pxe_client());
    assert_eq!(p.max_message_size(), Some(1260));
    assert_eq!(p.client_uuid(), Some([0x11; 16]));
    assert_eq!(p.secs, 4);

    let p = Packet::parse(&dhclient_request()).unwrap();
    assert_eq!(p.message_type(), Some(MessageType::Request));
    assert_eq!(p.server_id(), Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(p.requested_ip(), Some(Ipv4Addr::new(10, 0, 0, 11)));
    assert_eq!(p.hostname(), Some(&b"node1"[..]));
    assert!(!p.is_pxe_client());
    assert_eq!(p.client_arch(), None);
}

#[test]
fn captured_packets_reencode_byte_exact() {
    for (name, bytes) in [
        ("udhcpc", udhcpc_discover()),
        ("pxe rom", pxe_rom_discover()),
        ("dhclient", dhclient_request()),
    ] {
        let enc = Packet::parse(&bytes).unwrap().encode();
        // encode pads to 300 only; the ROM padded to 548.
        assert_eq!(enc[..], bytes[..enc.len()], "{name}");
        assert!(bytes[enc.len()..].iter().all(|&b| b == 0), "{name}");
    }
}

/// Parsed options as (code, data) pairs.
type Options = Vec<(u8, Vec<u8>)>;

#[test]
fn option_edge_cases() {
    let mt = [53, 1, 1];
    let cases: &[(&str, Vec<u8>, Options)] = &[
        (
            "pads between options",
            [&[0, 0][..], &mt, &[0, 12, 1, b'a', 0, 255]].concat(),
            vec![(53, vec![1]), (12, b"a".to_vec())],
        ),
        (
            "missing end tolerated",
            [&mt[..], &[12, 1, b'a']].concat(),
            vec![(53, vec![1]), (12, b"a".to_vec())],
        ),
        (
            "zero-length option",
            [&mt[..], &[77, 0, 255]].concat(),
            vec![(53, vec![1]), (77, vec![])],
        ),
        (
            "rfc3396 split joined",
            [
                &mt[..],
                &[12, 2, b'a', b'b', 3, 4, 1, 2, 3, 4, 12, 1, b'c', 255],
            ]
            .concat(),
            vec![(53, vec![1]), (12, b"abc".to_vec()), (3, vec![1, 2, 3, 4])],
        ),
        (
            "bytes after end ignored",
            [&mt[..], &[255, 12, 200]].concat(),
            vec![(53, vec![1])],
        ),
        (
            "unknown option kept raw",
            [&mt[..], &[224, 3, 9, 8, 7, 255]].concat(),
            vec![(53, vec![1]), (224, vec![9, 8, 7])],
        ),
        ("no options at all", vec![], vec![]),
    ];
    for (name, opts, want) in cases {
        let p = Packet::parse(&raw(1, 0, [0; 4], opts)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got: Vec<(u8, Vec<u8>)> = p.options.iter().map(|o| (o.code, o.data.clone())).collect();
        assert_eq!(&got, want, "{name}");
    }
}

/// Overload (option 52): 1 = file, 2 = sname, 3 = both; RFC 3396 order is
/// options, file, sname; the consumed fields read back empty.
#[test]
fn overload_reads_file_then_sname() {
    for (which, want_file, want_sname, want) in [
        (
            1u8,
            "",
            "srv",
            vec![(53, vec![1]), (12, b"ab".to_vec()), (15, b"f".to_vec())],
        ),
        (
            2,
            "boot",
            "",
            vec![(53, vec![1]), (12, b"as".to_vec()), (66, b"s".to_vec())],
        ),
        (
            3,
            "",
            "",
            vec![
                (53, vec![1]),
                (12, b"abs".to_vec()),
                (15, b"f".to_vec()),
                (66, b"s".to_vec()),
            ],
        ),
    ] {
        let mut b = raw(1, 0, [0; 4], &[53, 1, 1, 52, 1, which, 12, 1, b'a', 255]);
        let sname: &[u8] = if which & 2 != 0 {
            &[12, 1, b's', 66, 1, b's', 255]
        } else {
            b"srv"
        };
        let file: &[u8] = if which & 1 != 0 {
            &[12, 1, b'b', 15, 1, b'f', 255]
        } else {
            b"boot"
        };
        b[44..44 + sname.len()].copy_from_slice(sname);
        b[108..108 + file.len()].copy_from_slice(file);
        let p = Packet::parse(&b).unwrap();
        let got: Vec<(u8, Vec<u8>)> = p.options.iter().map(|o| (o.code, o.data.clone())).collect();
        assert_eq!(got, want, "overload {which}");
        assert_eq!(
            (p.file.as_slice(), p.sname.as_slice()),
            (want_file.as_bytes(), want_sname.as_bytes())
        );
        // Re-encoding drops the overload: same meaning, one option area.
        assert_eq!(Packet::parse(&p.encode()).unwrap(), p);
    }
}

#[test]
fn file_field_without_overload_is_a_string() {
    let mut b = raw(1, 0, [0; 4], &[53, 1, 1, 255]);
    b[108..118].copy_from_slice(b"pxelinux.0");
    b[120] = b'x'; // junk after the NUL is not part of the name
    assert_eq!(Packet::parse(&b).unwrap().file, b"pxelinux.0");
}

#[test]
fn every_malformed_class_is_an_error() {
    let ok = raw(1, 0, [0; 4], &[53, 1, 1, 255]);
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = ok.clone();
        f(&mut b);
        b
    };
    let overload = |v: &[u8], file: &[u8]| {
        let mut b = raw(
            1,
            0,
            [0; 4],
            &[&[52, v.len() as u8][..], v, &[255]].concat(),
        );
        b[108..108 + file.len()].copy_from_slice(file);
        b
    };
    let cases: Vec<(&str, Vec<u8>, ParseError)> = vec![
        ("empty", vec![], ParseError::TooShort { len: 0, min: 240 }),
        (
            "header only",
            ok[..236].to_vec(),
            ParseError::TooShort { len: 236, min: 240 },
        ),
        ("op 0", with(&|b| b[0] = 0), ParseError::BadOp(0)),
        ("op 3", with(&|b| b[0] = 3), ParseError::BadOp(3)),
        ("hlen 17", with(&|b| b[2] = 17), ParseError::BadHlen(17)),
        (
            "bad cookie",
            with(&|b| b[236] = 0),
            ParseError::BadCookie([0, 130, 83, 99]),
        ),
        (
            "bootp vendor area",
            with(&|b| b[236..240].copy_from_slice(&[0; 4])),
            ParseError::BadCookie([0; 4]),
        ),
        (
            "length past end",
            raw(1, 0, [0; 4], &[53, 1, 1, 12, 9, b'a']),
            ParseError::OptionTruncated {
                code: 12,
                area: Area::Options,
                at: 3,
            },
        ),
        (
            "code without length",
            raw(1, 0, [0; 4], &[53, 1, 1, 12]),
            ParseError::OptionTruncated {
                code: 12,
                area: Area::Options,
                at: 3,
            },
        ),
        (
            "overload 0",
            overload(&[0], b""),
            ParseError::BadOverload(vec![0]),
        ),
        (
            "overload 4",
            overload(&[4], b""),
            ParseError::BadOverload(vec![4]),
        ),
        (
            "overload two bytes",
            overload(&[1, 1], b""),
            ParseError::BadOverload(vec![1, 1]),
        ),
        (
            "overload empty",
            overload(&[], b""),
            ParseError::BadOverload(vec![]),
        ),
        (
            "overloaded file truncated",
            overload(&[1], &[12, 200, b'a']),
            ParseError::OptionTruncated {
                code: 12,
                area: Area::File,
                at: 0,
            },
        ),
    ];
    for (name, bytes, want) in cases {
        assert_eq!(Packet::parse(&bytes), Err(want), "{name}");
    }
}

#[test]
fn accessors_reject_malformed_option_payloads() {
    let p = |opts: &[u8]| Packet::parse(&raw(1, 0, [0; 4], opts)).unwrap();
    assert_eq!(p(&[53, 2, 1, 1]).message_type(), None);
    assert_eq!(p(&[53, 1, 9]).message_type(), None);
    assert_eq!(p(&[50, 3, 1, 2, 3]).requested_ip(), None);
    assert_eq!(p(&[54, 5, 1, 2, 3, 4, 5]).server_id(), None);
    assert_eq!(p(&[93, 1, 0]).client_arch(), None);
    assert_eq!(p(&[93, 4, 0, 7, 0, 0]).client_arch(), Some(7));
    assert_eq!(
        p(&[97, 17, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).client_uuid(),
        None
    );
    assert_eq!(p(&[97, 3, 0, 1, 2]).client_uuid(), None);
    assert_eq!(p(&[57, 1, 2]).max_message_size(), None);
    assert!(!p(&[60, 3, b'P', b'X', b'E']).is_pxe_client());
    assert!(p(&[77, 4, b'i', b'P', b'X', b'E']).has_user_class(b"iPXE"));
    assert!(p(&[77, 8, 2, b'x', b'y', 4, b'i', b'P', b'X', b'E']).has_user_class(b"iPXE"));
    assert!(!p(&[77, 3, 9, b'i', b'P']).has_user_class(b"iPXE"));
    let mut p = p(&[]);
    p.htype = 6;
    assert_eq!(p.mac(), None);
}

#[test]
fn encode_splits_long_options_and_truncates_fields() {
    let mut p = Packet::new(Op::BootReply, 9, MAC);
    p.set_option(43, vec![7u8; 600]);
    p.set_option(code::PAD, [1]);
    p.sname = vec![b's'; 100];
    p.file = vec![b'f'; 200];
    let b = p.encode();
    assert_eq!(&b[240..242], &[43, 255]);
    assert_eq!(&b[240 + 257..240 + 259], &[43, 255]);
    assert_eq!(&b[240 + 514..240 + 516], &[43, 90]);
    let q = Packet::parse(&b).unwrap();
    assert_eq!(q.option(43), Some(&[7u8; 600][..]));
    assert_eq!(q.option(code::PAD), None);
    assert_eq!((q.sname.len(), q.file.len()), (63, 127));
}

fn arb_packet() -> impl Strategy<Value = Packet> {
    let name = |max| proptest::collection::vec(1u8..=255, 0..=max);
    let opt = (1u8..=254)
        .prop_filter("overload is consumed by parse", |c| *c != code::OVERLOAD)
        .prop_flat_map(|c| (Just(c), proptest::collection::vec(any::<u8>(), 0..600)));
    (
        (
            any::<bool>(),
            any::<u8>(),
            0u8..=16,
            any::<u8>(),
            any::<u32>(),
            any::<u16>(),
            any::<u16>(),
        ),
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<[u8; 16]>(),
        ),
        (name(63), name(127), proptest::collection::vec(opt, 0..8)),
    )
        .prop_map(
            |(
                (req, htype, hlen, hops, xid, secs, flags),
                (c, y, s, g, chaddr),
                (sname, file, opts),
            )| {
                let mut p = Packet::new(
                    if req { Op::BootRequest } else { Op::BootReply },
                    xid,
                    [0; 6],
                );
                (p.htype, p.hlen, p.hops, p.secs, p.flags, p.chaddr) =
                    (htype, hlen, hops, secs, flags, chaddr);
                (p.ciaddr, p.yiaddr, p.siaddr, p.giaddr) = (c.into(), y.into(), s.into(), g.into());
                (p.sname, p.file) = (sname, file);
                for (code, data) in opts {
                    if p.option(code).is_none() {
                        p.set_option(code, data);
                    }
                }
                p
            },
        )
}

proptest! {
    #[test]
    fn roundtrip_generated_packets(p in arb_packet()) {
        prop_assert_eq!(Packet::parse(&p.encode()), Ok(p));
    }
}

/// The CI fuzz tier: many cases (bounded in count and size, about a second
/// in a debug build); raise with PROPTEST_CASES for a longer local run.
fn fuzz_config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok());
    ProptestConfig::with_cases(cases.unwrap_or(20_000))
}

proptest! {
    #![proptest_config(fuzz_config())]

    #[test]
    fn fuzz_arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..700)) {
        let _ = Packet::parse(&b);
    }

    /// Random bytes behind a valid header and cookie, so the option and
    /// overload parsers see them (arbitrary bytes rarely get that far).
    #[test]
    fn fuzz_arbitrary_options_never_panic(
        opts in proptest::collection::vec(any::<u8>(), 0..400),
        sname in any::<[u8; 64]>(),
        file in proptest::collection::vec(any::<u8>(), 128),
        overload in 0u8..=4,
    ) {
        let mut b = raw(1, 0, [0; 4], &[&[52, 1, overload][..], &opts].concat());
        b[44..108].copy_from_slice(&sname);
        b[108..236].copy_from_slice(&file);
        if let Ok(p) = Packet::parse(&b) {
            // Whatever parsed must survive its own encoding.
            let again = Packet::parse(&p.encode());
            prop_assert!(again.is_ok());
        }
    }
}
