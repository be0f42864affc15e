use super::*;
use crate::config::BootFiles;
use crate::packet::DhcpOption;
use proptest::prelude::*;

const NODE: [u8; 6] = [2, 0, 0, 0, 0, 1];
const STRANGER: [u8; 6] = [2, 0, 0, 0, 0, 0x99];
const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 11);
const NEXT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn cfg(proxy: bool, leases: bool) -> DhcpConfig {
    DhcpConfig {
        interface: "eth0".into(),
        server_ip: US,
        netmask: Ipv4Addr::new(255, 255, 255, 0),
        router: Some(Ipv4Addr::new(10, 0, 0, 254)),
        dns: vec![US, Ipv4Addr::new(10, 0, 0, 3)],
        domain: Some("cluster".into()),
        lease_secs: 3600,
        leases: if leases {
            vec![StaticLease {
                mac: NODE,
                ip: NODE_IP,
                hostname: "node1".into(),
            }]
        } else {
            vec![]
        },
        boot: BootFiles {
            bios: "pxelinux.0".into(),
            efi_x64: Some("grubx64.efi".into()),
            ipxe: Some("boot.ipxe".into()),
        },
        next_server: NEXT,
        proxy,
    }
}

/// A request builder: message type plus (code, bytes) options.
fn req(mac: [u8; 6], mt: MessageType, opts: &[(u8, &[u8])]) -> Packet {
    let mut p = Packet::new(Op::BootRequest, 0x1234, mac);
    p.set_option(code::MESSAGE_TYPE, [mt as u8]);
    for (c, d) in opts {
        p.set_option(*c, *d);
    }
    p
}

const PXE: (u8, &[u8]) = (code::VENDOR_CLASS, b"PXEClient:Arch:00000:UNDI:002001");
const BIOS: (u8, &[u8]) = (code::CLIENT_ARCH, &[0, 0]);
const EFI7: (u8, &[u8]) = (code::CLIENT_ARCH, &[0, 7]);
const EFI9: (u8, &[u8]) = (code::CLIENT_ARCH, &[0, 9]);
const IA32: (u8, &[u8]) = (code::CLIENT_ARCH, &[0, 6]);
const IPXE: (u8, &[u8]) = (code::USER_CLASS, b"iPXE");
const SEL_US: (u8, &[u8]) = (code::SERVER_ID, &[10, 0, 0, 1]);
const SEL_OTHER: (u8, &[u8]) = (code::SERVER_ID, &[10, 0, 0, 9]);
const WANT_NODE: (u8, &[u8]) = (code::REQUESTED_IP, &[10, 0, 0, 11]);
const WANT_12: (u8, &[u8]) = (code::REQUESTED_IP, &[10, 0, 0, 12]);
const WANT_FAR: (u8, &[u8]) = (code::REQUESTED_IP, &[192, 168, 1, 5]);

fn with(mut p: Packet, f: impl FnOnce(&mut Packet)) -> Packet {
    f(&mut p);
    p
}

struct Case {
    name: &'static str,
    proxy: bool,
    leases: bool,
    port: Port,
    req: Packet,
    /// (reply type, yiaddr, siaddr, file, destination) or None for silence.
    want: Option<(MessageType, Ipv4Addr, Ipv4Addr, &'static str, Destination)>,
    event: DhcpEvent,
}

const FROM: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 50), 68);
const Z: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

fn ack_event() -> DhcpEvent {
    DhcpEvent::Ack {
        mac: NODE,
        ip: NODE_IP,
        hostname: "node1".into(),
    }
}

fn ign(mac: Option<[u8; 6]>, reason: IgnoreReason) -> DhcpEvent {
    DhcpEvent::Ignored { mac, reason }
}

/// One row per case; kept unformatted so the table stays a table.
#[rustfmt::skip]
fn cases() -> Vec<Case> {
    use Destination::*;
    use MessageType::*;
    let c = |name, proxy, port, req, want, event| Case { name, proxy, leases: true, port, req, want, event };
    let offer = DhcpEvent::Offer { mac: NODE, ip: NODE_IP };
    let nak = |requested, reason| DhcpEvent::Nak { mac: NODE, requested, reason };
    let proxy_boot = |file: &str, stage| DhcpEvent::ProxyBoot { mac: NODE, file: file.into(), stage };
    let far = Ipv4Addr::new(192, 168, 1, 5);
    let ten12 = Ipv4Addr::new(10, 0, 0, 12);
    let relay = Ipv4Addr::new(10, 0, 0, 254);
    vec![
        c("discover known", false, Port::Dhcp, req(NODE, Discover, &[]), Some((Offer, NODE_IP, Z, "", Broadcast)), offer.clone()),
        c("discover unknown", false, Port::Dhcp, req(STRANGER, Discover, &[]), None, ign(Some(STRANGER), IgnoreReason::UnknownMac)),
        c("pxe bios", false, Port::Dhcp, req(NODE, Discover, &[PXE, BIOS]), Some((Offer, NODE_IP, NEXT, "pxelinux.0", Broadcast)), offer.clone()),
        c("pxe without arch is bios", false, Port::Dhcp, req(NODE, Discover, &[PXE]), Some((Offer, NODE_IP, NEXT, "pxelinux.0", Broadcast)), offer.clone()),
        c("pxe efi 7", false, Port::Dhcp, req(NODE, Discover, &[PXE, EFI7]), Some((Offer, NODE_IP, NEXT, "grubx64.efi", Broadcast)), offer.clone()),
        c("pxe efi 9", false, Port::Dhcp, req(NODE, Discover, &[PXE, EFI9]), Some((Offer, NODE_IP, NEXT, "grubx64.efi", Broadcast)), offer.clone()),
        c("pxe ia32: address, no file", false, Port::Dhcp, req(NODE, Discover, &[PXE, IA32]), Some((Offer, NODE_IP, Z, "", Broadcast)), offer.clone()),
        c("ipxe gets its script", false, Port::Dhcp, req(NODE, Discover, &[PXE, EFI7, IPXE]), Some((Offer, NODE_IP, NEXT, "boot.ipxe", Broadcast)), offer.clone()),
        c("arch without PXEClient: no file", false, Port::Dhcp, req(NODE, Discover, &[BIOS]), Some((Offer, NODE_IP, Z, "", Broadcast)), offer.clone()),
        c("request selecting us", false, Port::Dhcp, req(NODE, Request, &[SEL_US, WANT_NODE]), Some((Ack, NODE_IP, Z, "", Broadcast)), ack_event()),
        c("request pxe", false, Port::Dhcp, req(NODE, Request, &[SEL_US, WANT_NODE, PXE, BIOS]), Some((Ack, NODE_IP, NEXT, "pxelinux.0", Broadcast)), ack_event()),
        c("request init-reboot", false, Port::Dhcp, req(NODE, Request, &[WANT_NODE]), Some((Ack, NODE_IP, Z, "", Broadcast)), ack_event()),
        c("request other server", false, Port::Dhcp, req(NODE, Request, &[SEL_OTHER, WANT_NODE]), None, ign(Some(NODE), IgnoreReason::OtherServer(Ipv4Addr::new(10, 0, 0, 9)))),
        c("request unknown mac", false, Port::Dhcp, req(STRANGER, Request, &[SEL_US, WANT_NODE]), None, ign(Some(STRANGER), IgnoreReason::UnknownMac)),
        c("request wrong address", false, Port::Dhcp, req(NODE, Request, &[WANT_12]), Some((Nak, Z, Z, "", Broadcast)), nak(Some(ten12), NakReason::WrongAddress)),
        c("request other subnet", false, Port::Dhcp, req(NODE, Request, &[WANT_FAR]), Some((Nak, Z, Z, "", Broadcast)), nak(Some(far), NakReason::WrongSubnet)),
        c("request no address", false, Port::Dhcp, req(NODE, Request, &[SEL_US]), Some((Nak, Z, Z, "", Broadcast)), nak(None, NakReason::NoAddress)),
        c("nak with ciaddr still broadcast", false, Port::Dhcp, with(req(NODE, Request, &[]), |p| p.ciaddr = ten12), Some((Nak, Z, Z, "", Broadcast)), nak(Some(ten12), NakReason::WrongAddress)),
        c("renewing unicast to ciaddr", false, Port::Dhcp, with(req(NODE, Request, &[]), |p| p.ciaddr = NODE_IP), Some((Ack, NODE_IP, Z, "", Client(NODE_IP))), ack_event()),
        c("relayed goes to giaddr", false, Port::Dhcp, with(req(NODE, Discover, &[]), |p| p.giaddr = relay), Some((Offer, NODE_IP, Z, "", Relay(relay))), offer.clone()),
        c("broadcast flag", false, Port::Dhcp, with(req(NODE, Discover, &[]), |p| p.flags = FLAG_BROADCAST), Some((Offer, NODE_IP, Z, "", Broadcast)), offer.clone()),
        c("inform", false, Port::Dhcp, with(req(NODE, Inform, &[]), |p| p.ciaddr = NODE_IP), Some((Ack, Z, Z, "", Client(NODE_IP))), DhcpEvent::Inform { mac: NODE, ip: NODE_IP }),
        c("release", false, Port::Dhcp, req(NODE, Release, &[]), None, ign(Some(NODE), IgnoreReason::Release)),
        c("decline", false, Port::Dhcp, req(NODE, Decline, &[WANT_NODE]), None, ign(Some(NODE), IgnoreReason::Decline { ip: Some(NODE_IP) })),
        c("server message", false, Port::Dhcp, req(NODE, Offer, &[]), None, ign(Some(NODE), IgnoreReason::NotARequest)),
        c("bootreply", false, Port::Dhcp, with(req(NODE, Discover, &[]), |p| p.op = Op::BootReply), None, ign(Some(NODE), IgnoreReason::NotARequest)),
        c("plain bootp", false, Port::Dhcp, with(req(NODE, Discover, &[]), |p| p.options.clear()), None, ign(Some(NODE), IgnoreReason::NoMessageType)),
        c("not ethernet", false, Port::Dhcp, with(req(NODE, Discover, &[]), |p| p.htype = 6), None, ign(None, IgnoreReason::UnsupportedHardware { htype: 6, hlen: 6 })),
        c("normal mode answers pxe on 4011", false, Port::Pxe, req(NODE, Request, &[PXE, WANT_NODE]), Some((Ack, Z, NEXT, "pxelinux.0", Source(FROM))), proxy_boot("pxelinux.0", ProxyStage::Ack)),
        c("normal mode: 4011 is for pxe", false, Port::Pxe, req(NODE, Request, &[WANT_NODE]), None, ign(Some(NODE), IgnoreReason::NotPxe)),
        c("proxy refuses non-pxe", true, Port::Dhcp, req(NODE, Discover, &[]), None, ign(Some(NODE), IgnoreReason::NotPxe)),
        c("proxy offer: boot, no address", true, Port::Dhcp, req(NODE, Discover, &[PXE, BIOS]), Some((Offer, Z, NEXT, "pxelinux.0", Broadcast)), proxy_boot("pxelinux.0", ProxyStage::Offer)),
        c("proxy efi", true, Port::Dhcp, req(NODE, Discover, &[PXE, EFI7]), Some((Offer, Z, NEXT, "grubx64.efi", Broadcast)), proxy_boot("grubx64.efi", ProxyStage::Offer)),
        c("proxy unlisted mac", true, Port::Dhcp, req(STRANGER, Discover, &[PXE, BIOS]), None, ign(Some(STRANGER), IgnoreReason::UnknownMac)),
        c("proxy request on 4011", true, Port::Pxe, with(req(NODE, Request, &[PXE, BIOS]), |p| p.ciaddr = *FROM.ip()), Some((Ack, Z, NEXT, "pxelinux.0", Source(FROM))), proxy_boot("pxelinux.0", ProxyStage::Ack)),
        c("proxy request on 67", true, Port::Dhcp, req(NODE, Request, &[PXE, BIOS, WANT_NODE]), None, ign(Some(NODE), IgnoreReason::ProxyNoAddress)),
        c("proxy discover on 4011", true, Port::Pxe, req(NODE, Discover, &[PXE, BIOS]), None, ign(Some(NODE), IgnoreReason::NotARequest)),
        c("proxy ia32", true, Port::Dhcp, req(NODE, Discover, &[PXE, IA32]), None, ign(Some(NODE), IgnoreReason::NoBootFile { arch: Some(6) })),
        c("proxy release", true, Port::Dhcp, req(NODE, Release, &[PXE]), None, ign(Some(NODE), IgnoreReason::Release)),
        Case { leases: false, ..c("proxy, no inventory: any pxe", true, Port::Dhcp, req(STRANGER, Discover, &[PXE, BIOS]), Some((Offer, Z, NEXT, "pxelinux.0", Broadcast)), DhcpEvent::ProxyBoot { mac: STRANGER, file: "pxelinux.0".into(), stage: ProxyStage::Offer }) },
    ]
}

#[test]
fn reply_table() {
    for case in cases() {
        let cfg = cfg(case.proxy, case.leases);
        let (reply, event) = respond(&cfg, case.port, FROM, &case.req);
        assert_eq!(event, case.event, "{}: event", case.name);
        let got = reply.map(|r| {
            let p = &r.packet;
            assert_eq!(
                (p.op, p.xid, p.chaddr),
                (Op::BootReply, case.req.xid, case.req.chaddr),
                "{}",
                case.name
            );
            assert_eq!(p.server_id(), Some(US), "{}: server id", case.name);
            let file = String::from_utf8(p.file.clone()).unwrap();
            (p.message_type().unwrap(), p.yiaddr, p.siaddr, file, r.to)
        });
        let want = case
            .want
            .map(|(t, y, s, f, to)| (t, y, s, f.to_string(), to));
        assert_eq!(got, want, "{}", case.name);
    }
}

fn opt(p: &Packet, c: u8) -> Option<Vec<u8>> {
    p.option(c).map(<[u8]>::to_vec)
}

#[test]
fn offer_carries_inventory_and_network_options() {
    let r = req(NODE, MessageType::Discover, &[]);
    let p = respond(&cfg(false, true), Port::Dhcp, FROM, &r)
        .0
        .unwrap()
        .packet;
    assert_eq!(opt(&p, code::SUBNET_MASK), Some(vec![255, 255, 255, 0]));
    assert_eq!(opt(&p, code::ROUTER), Some(vec![10, 0, 0, 254]));
    assert_eq!(opt(&p, code::DNS), Some(vec![10, 0, 0, 1, 10, 0, 0, 3]));
    assert_eq!(opt(&p, code::DOMAIN), Some(b"cluster".to_vec()));
    assert_eq!(opt(&p, code::HOSTNAME), Some(b"node1".to_vec()));
    assert_eq!(
        opt(&p, code::LEASE_TIME),
        Some(3600u32.to_be_bytes().to_vec())
    );
    assert_eq!(
        opt(&p, code::VENDOR_CLASS),
        None,
        "no PXE options for non-PXE clients"
    );
    let mut c = cfg(false, true);
    (c.router, c.dns, c.domain) = (None, vec![], None);
    let p = respond(&c, Port::Dhcp, FROM, &r).0.unwrap().packet;
    assert!(
        p.option(code::ROUTER).is_none()
            && p.option(code::DNS).is_none()
            && p.option(code::DOMAIN).is_none()
    );
}

#[test]
fn client_uuid_is_echoed_only_in_its_rfc_4578_form() {
    let mut long = vec![0u8];
    long.extend(std::iter::repeat_n(0xab, 16));
    let cases: Vec<(Vec<u8>, Option<Vec<u8>>)> = vec![
        (long.clone(), Some(long.clone())),
        // Wrong type, short, one byte over, and a 254-byte option.
        ([&[1u8][..], &long[1..]].concat(), None),
        (vec![0, 1, 2], None),
        ([&long[..], &[0]].concat(), None),
        (vec![0; 254], None),
        // A long option (RFC 3396): 60 KB in must not mean 60 KB out.
        (vec![0; 60_000], None),
    ];
    for (uuid, want) in cases {
        for proxy in [false, true] {
            let r = req(
                NODE,
                MessageType::Discover,
                &[PXE, BIOS, (code::CLIENT_UUID, &uuid)],
            );
            let p = respond(&cfg(proxy, true), Port::Dhcp, FROM, &r)
                .0
                .unwrap()
                .packet;
            assert_eq!(opt(&p, code::CLIENT_UUID), want, "{} bytes", uuid.len());
        }
    }
}

#[test]
fn pxe_replies_echo_vendor_class_uuid_and_requested_boot_options() {
    let uuid: &[u8] = &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
    let prl: &[u8] = &[1, 3, 66, 67];
    for proxy in [false, true] {
        let r = req(
            NODE,
            MessageType::Discover,
            &[
                PXE,
                BIOS,
                (code::CLIENT_UUID, uuid),
                (code::PARAMETER_REQUEST_LIST, prl),
            ],
        );
        let p = respond(&cfg(proxy, true), Port::Dhcp, FROM, &r)
            .0
            .unwrap()
            .packet;
        assert_eq!(
            opt(&p, code::VENDOR_CLASS),
            Some(b"PXEClient".to_vec()),
            "proxy={proxy}"
        );
        assert_eq!(opt(&p, code::VENDOR_SPECIFIC), Some(vec![6, 1, 8, 255]));
        assert_eq!(opt(&p, code::CLIENT_UUID), Some(uuid.to_vec()));
        assert_eq!(opt(&p, code::TFTP_SERVER), Some(b"10.0.0.2".to_vec()));
        assert_eq!(opt(&p, code::BOOTFILE), Some(b"pxelinux.0".to_vec()));
        // proxyDHCP must not look like an address offer.
        assert_eq!(p.option(code::LEASE_TIME).is_none(), proxy);
        assert_eq!(p.option(code::SUBNET_MASK).is_none(), proxy);
        // iPXE needs option 67 even unasked, or it waits 15 s for a
        // ProxyDHCP answer on port 4011 (see add_pxe).
        let unasked = req(
            NODE,
            MessageType::Discover,
            &[PXE, BIOS, (code::PARAMETER_REQUEST_LIST, &[1, 3])],
        );
        let p = respond(&cfg(proxy, true), Port::Dhcp, FROM, &unasked)
            .0
            .unwrap()
            .packet;
        assert_eq!(opt(&p, code::BOOTFILE), Some(b"pxelinux.0".to_vec()));
    }
}

/// A PXE ROM that got PXEClient from the DHCP server itself still asks
/// port 4011 for its boot server: answered (boot file, no address) for
/// inventory MACs, in plain DHCP mode too.
#[test]
fn port_4011_answers_pxe_requests_without_proxy_mode() {
    let request = req(NODE, MessageType::Request, &[PXE, BIOS]);
    let pxe_from: SocketAddrV4 = "10.0.0.50:4011".parse().unwrap();
    let (reply, event) = respond(&cfg(false, true), Port::Pxe, pxe_from, &request);
    let reply = reply.expect("an ACK on 4011");
    assert_eq!(reply.to, Destination::Source(pxe_from));
    assert_eq!(reply.packet.message_type(), Some(MessageType::Ack));
    assert!(reply.packet.yiaddr.is_unspecified(), "no address from 4011");
    assert_eq!(
        opt(&reply.packet, code::BOOTFILE),
        Some(b"pxelinux.0".to_vec())
    );
    assert!(matches!(event, DhcpEvent::ProxyBoot { .. }), "{event:?}");
    let stranger = req([2, 0, 0, 0, 0, 9], MessageType::Request, &[PXE, BIOS]);
    assert!(respond(&cfg(false, true), Port::Pxe, pxe_from, &stranger)
        .0
        .is_none());
    let not_pxe = req(NODE, MessageType::Request, &[]);
    assert!(respond(&cfg(false, true), Port::Pxe, pxe_from, &not_pxe)
        .0
        .is_none());
}

#[test]
fn inform_and_nak_carry_no_lease() {
    let r = with(req(NODE, MessageType::Inform, &[]), |p| p.ciaddr = NODE_IP);
    let p = respond(&cfg(false, true), Port::Dhcp, FROM, &r)
        .0
        .unwrap()
        .packet;
    assert!(p.option(code::LEASE_TIME).is_none());
    assert_eq!(opt(&p, code::HOSTNAME), Some(b"node1".to_vec()));
    let r = with(req(NODE, MessageType::Request, &[WANT_12]), |p| {
        p.giaddr = Ipv4Addr::new(10, 0, 0, 254)
    });
    let (reply, _) = respond(&cfg(false, true), Port::Dhcp, FROM, &r);
    let reply = reply.unwrap();
    assert_eq!(reply.to, Destination::Relay(Ipv4Addr::new(10, 0, 0, 254)));
    assert!(
        reply.packet.broadcast_flag(),
        "a relayed NAK asks the relay to broadcast"
    );
    let only: Vec<u8> = reply
        .packet
        .options
        .iter()
        .map(|o: &DhcpOption| o.code)
        .collect();
    assert_eq!(only, vec![code::MESSAGE_TYPE, code::SERVER_ID]);
}

type Edit = Box<dyn Fn(&mut DhcpConfig)>;

#[test]
fn config_validation_table() {
    let base = cfg(false, true);
    let cases: Vec<(&str, Edit, bool)> = vec![
        ("valid", Box::new(|_| {}), true),
        ("empty interface", Box::new(|c| c.interface.clear()), false),
        (
            "long interface",
            Box::new(|c| c.interface = "x".repeat(16)),
            false,
        ),
        ("server 0.0.0.0", Box::new(|c| c.server_ip = Z), false),
        (
            "long boot file",
            Box::new(|c| c.boot.bios = "f".repeat(128)),
            false,
        ),
        (
            "empty efi file",
            Box::new(|c| c.boot.efi_x64 = Some(String::new())),
            false,
        ),
        (
            "empty hostname",
            Box::new(|c| c.leases[0].hostname.clear()),
            false,
        ),
        (
            "long domain",
            Box::new(|c| c.domain = Some("d".repeat(256))),
            false,
        ),
        (
            "duplicate mac",
            Box::new(|c| c.leases.push(c.leases[0].clone())),
            false,
        ),
        (
            "lease off subnet",
            Box::new(|c| c.leases[0].ip = Ipv4Addr::new(10, 0, 1, 1)),
            false,
        ),
    ];
    for (name, edit, ok) in cases {
        let mut c = base.clone();
        edit(&mut c);
        assert_eq!(c.validate().is_ok(), ok, "{name}: {:?}", c.validate());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5_000))]

    /// Any parseable datagram, in any mode and on either port, yields a
    /// decision without panicking, and any reply encodes and parses back.
    #[test]
    fn fuzz_respond_never_panics(
        b in proptest::collection::vec(any::<u8>(), 0..400),
        mt in 0u8..=9, proxy in any::<bool>(), pxe_port in any::<bool>(), pxe in any::<bool>(),
    ) {
        let mut raw = req(NODE, MessageType::Discover, &[]).encode();
        raw.truncate(240);
        raw.extend_from_slice(&[53, 1, mt]);
        if pxe {
            raw.extend_from_slice(&[60, 9]);
            raw.extend_from_slice(b"PXEClient");
        }
        raw.extend_from_slice(&b);
        if let Ok(p) = Packet::parse(&raw) {
            let port = if pxe_port { Port::Pxe } else { Port::Dhcp };
            if let (Some(r), _) = respond(&cfg(proxy, true), port, FROM, &p) {
                prop_assert!(Packet::parse(&r.packet.encode()).is_ok());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5_000))]

    /// Whatever option 97 a client sends (any length up to 4 KB, split into
    /// RFC 3396 instances), the reply echoes it only in the 17-byte RFC 4578
    /// form and never grows with it.
    #[test]
    fn fuzz_client_uuid_is_echoed_only_when_valid(
        uuid in prop_oneof![
            proptest::collection::vec(any::<u8>(), 17),
            proptest::collection::vec(any::<u8>(), 0..4096),
        ],
        proxy in any::<bool>(),
    ) {
        let r = req(NODE, MessageType::Discover, &[PXE, BIOS, (code::CLIENT_UUID, &uuid)]);
        let r = Packet::parse(&r.encode()).unwrap();
        let p = respond(&cfg(proxy, true), Port::Dhcp, FROM, &r).0.unwrap().packet;
        let valid = uuid.len() == 17 && uuid[0] == 0;
        prop_assert_eq!(opt(&p, code::CLIENT_UUID), valid.then(|| uuid.clone()));
        prop_assert!(p.encode().len() < 600);
    }
}
