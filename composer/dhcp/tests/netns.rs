//! Real clients against the server, each test in its own pair of network
//! namespaces. Needs root; fails (does not skip) without it.

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use common::*;
use compose_dhcp::{DhcpEvent, IgnoreReason, MessageType, Packet, ProxyStage};

fn is_ignored(mac: [u8; 6], reason: IgnoreReason) -> impl Fn(&DhcpEvent) -> bool {
    move |e| matches!(e, DhcpEvent::Ignored { mac: Some(m), reason: r } if *m == mac && *r == reason)
}

#[test]
#[ignore = "netns tier: needs root; run `sudo cargo test -p compose-dhcp -- --ignored` (ci/test does)"]
fn netns_udhcpc_gets_static_lease_hostname_and_network_options() {
    require_root();
    let net = Net::new(NODE_MAC);
    let mut server = Server::start(&net, config(&net, false));
    let r = udhcpc(&net, 3, &[]);
    assert!(r.ok, "udhcpc got no lease:\n{}", r.log);
    let want = [
        ("ip", "10.77.0.11"),
        ("subnet", "255.255.255.0"),
        ("router", "10.77.0.254"),
        ("dns", "10.77.0.1"),
        ("domain", "cluster.test"),
        ("hostname", "node11"),
        ("serverid", "10.77.0.1"),
        ("lease", "3600"),
    ];
    for (k, v) in want {
        assert_eq!(
            r.env.get(k).map(String::as_str),
            Some(v),
            "{k}; env {:#?}",
            r.env
        );
    }
    assert!(
        !r.env.contains_key("boot_file"),
        "no boot file for a non-PXE client"
    );
    let ip = NODE_IP;
    server.wait_for("offer", |e| *e == DhcpEvent::Offer { mac: NODE_MAC, ip });
    let hostname = "node11".to_string();
    server.wait_for("ack", |e| {
        *e == DhcpEvent::Ack {
            mac: NODE_MAC,
            ip,
            hostname: hostname.clone(),
        }
    });
}

/// PXE by architecture: udhcpc announcing PXEClient and option 93 (and
/// iPXE's user class) gets siaddr and the matching boot file.
#[test]
#[ignore = "netns tier: needs root; run `sudo cargo test -p compose-dhcp -- --ignored` (ci/test does)"]
fn netns_udhcpc_pxe_gets_boot_file_by_arch() {
    require_root();
    let net = Net::new(NODE_MAC);
    let _server = Server::start(&net, config(&net, false));
    let cases: &[(&str, &[&str], &str)] = &[
        ("bios", &["-x", "0x5d:0000"], "pxelinux.0"),
        ("efi x64 (7)", &["-x", "0x5d:0007"], "grubx64.efi"),
        ("efi bc (9)", &["-x", "0x5d:0009"], "grubx64.efi"),
        (
            "ipxe user class",
            &["-x", "0x5d:0007", "-x", "0x4d:69505845"],
            "boot.ipxe",
        ),
    ];
    for (name, extra, file) in cases {
        let mut args = vec!["-V", "PXEClient"];
        args.extend_from_slice(extra);
        let r = udhcpc(&net, 3, &args);
        assert!(r.ok, "{name}: no lease:\n{}", r.log);
        let get = |k: &str| r.env.get(k).map(String::as_str);
        assert_eq!(get("ip"), Some("10.77.0.11"), "{name}");
        assert_eq!(
            get("boot_file"),
            Some(*file),
            "{name}: file field; env {:#?}",
            r.env
        );
        assert_eq!(get("bootfile"), Some(*file), "{name}: option 67");
        assert_eq!(get("siaddr"), Some("10.77.0.2"), "{name}");
        assert_eq!(get("hostname"), Some("node11"), "{name}");
    }
}

#[test]
#[ignore = "netns tier: needs root; run `sudo cargo test -p compose-dhcp -- --ignored` (ci/test does)"]
fn netns_dhclient_gets_lease_and_its_release_is_ignored() {
    require_root();
    let net = Net::new(NODE_MAC);
    let mut server = Server::start(&net, config(&net, false));
    let (env, log) = dhclient(&net);
    let get = |k: &str| env.get(k).map(String::as_str);
    assert_eq!(
        get("new_ip_address"),
        Some("10.77.0.11"),
        "log:\n{log}\nenv {env:#?}"
    );
    assert_eq!(get("new_host_name"), Some("node11"));
    assert_eq!(get("new_routers"), Some("10.77.0.254"));
    assert_eq!(get("new_subnet_mask"), Some("255.255.255.0"));
    assert_eq!(get("new_domain_name"), Some("cluster.test"));
    assert_eq!(get("new_dhcp_lease_time"), Some("3600"));
    server.wait_for(
        "ack",
        |e| matches!(e, DhcpEvent::Ack { mac, .. } if *mac == NODE_MAC),
    );
    server.wait_for("release", is_ignored(NODE_MAC, IgnoreReason::Release));
}

#[test]
#[ignore = "netns tier: needs root; run `sudo cargo test -p compose-dhcp -- --ignored` (ci/test does)"]
fn netns_unknown_mac_gets_nothing() {
    require_root();
    let net = Net::new(STRANGER_MAC);
    let mut server = Server::start(&net, config(&net, false));
    let r = udhcpc(&net, 2, &[]);
    assert!(
        !r.ok && r.env.is_empty(),
        "a stranger got a lease: {:#?}\n{}",
        r.env,
        r.log
    );
    server.wait_for(
        "ignored",
        is_ignored(STRANGER_MAC, IgnoreReason::UnknownMac),
    );
    let answered = server
        .events()
        .iter()
        .any(|e| matches!(e, DhcpEvent::Offer { .. }));
    assert!(!answered, "{:#?}", server.events());
}

#[test]
#[ignore = "netns tier: needs root; run `sudo cargo test -p compose-dhcp -- --ignored` (ci/test does)"]
fn netns_proxy_ignores_non_pxe_client() {
    require_root();
    let net = Net::new(NODE_MAC);
    let mut server = Server::start(&net, config(&net, true));
    let r = udhcpc(&net, 2, &[]);
    assert!(
        !r.ok && r.env.is_empty(),
        "proxy mode handed out a lease: {:#?}",
        r.env
    );
    server.wait_for("not-pxe", is_ignored(NODE_MAC, IgnoreReason::NotPxe));
}

/// A BIOS PXE ROM's DISCOVER and port-4011 REQUEST, byte by byte (udhcpc
/// cannot take an offer without an address, so it cannot play this part).
fn pxe_request(msg: u8, xid: u32, ciaddr: Ipv4Addr) -> Vec<u8> {
    let mut b = vec![1, 1, 6, 0];
    b.extend_from_slice(&xid.to_be_bytes());
    b.extend_from_slice(&[0, 0, 0x80, 0]); // secs, broadcast flag
    b.extend_from_slice(&ciaddr.octets());
    b.extend_from_slice(&[0; 12]);
    b.extend_from_slice(&NODE_MAC);
    b.extend_from_slice(&[0; 10 + 64 + 128]);
    b.extend_from_slice(&[99, 130, 83, 99, 53, 1, msg, 93, 2, 0, 0, 97, 17, 0]);
    b.extend_from_slice(&[0x5a; 16]);
    let vc = b"PXEClient:Arch:00000:UNDI:002001";
    b.extend_from_slice(&[60, vc.len() as u8]);
    b.extend_from_slice(vc);
    b.extend_from_slice(&[55, 5, 1, 3, 43, 60, 67, 255]);
    b
}

/// Sends `pkt` and waits for the reply with `xid`, retransmitting as a real
/// client does (5 tries, 3 s apart): on a loaded host the server's first
/// wake-up can come late.
fn exchange(
    sock: &std::net::UdpSocket,
    pkt: &[u8],
    to: SocketAddrV4,
    xid: u32,
) -> (Packet, SocketAddr) {
    let mut buf = [0u8; 1500];
    for _ in 0..5 {
        sock.send_to(pkt, to).unwrap();
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            if let Ok(p) = Packet::parse(&buf[..n]) {
                if p.xid == xid {
                    return (p, from);
                }
            }
        }
    }
    panic!("no reply with xid {xid:#x} to 5 tries, 3 s apart");
}

#[test]
#[ignore = "netns tier: needs root; run `sudo cargo test -p compose-dhcp -- --ignored` (ci/test does)"]
fn netns_proxy_offers_boot_file_without_address_and_acks_on_4011() {
    require_root();
    let net = Net::new(NODE_MAC);
    // As on a site network: the site server already gave the client an address.
    let client_ip = Ipv4Addr::new(10, 77, 0, 50);
    net.client_addr(client_ip);
    let mut server = Server::start(&net, config(&net, true));
    let sock = client_socket(&net);

    let bcast = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
    let (offer, from) = exchange(
        &sock,
        &pxe_request(1, 0xabc1, Ipv4Addr::UNSPECIFIED),
        bcast,
        0xabc1,
    );
    assert_eq!(offer.message_type(), Some(MessageType::Offer));
    assert_eq!(
        offer.yiaddr,
        Ipv4Addr::UNSPECIFIED,
        "proxyDHCP offers no address"
    );
    assert_eq!(
        (offer.siaddr, offer.file.as_slice()),
        (NEXT_SERVER, &b"pxelinux.0"[..])
    );
    assert_eq!(offer.vendor_class(), Some(&b"PXEClient"[..]));
    assert_eq!(offer.client_uuid(), Some([0x5a; 16]));
    assert_eq!(offer.server_id(), Some(SERVER_IP));
    assert!(
        offer.option(51).is_none() && offer.option(1).is_none(),
        "no lease options"
    );
    assert_eq!(from.port(), 67);

    let boot_server = SocketAddrV4::new(SERVER_IP, 4011);
    let (ack, from) = exchange(
        &sock,
        &pxe_request(3, 0xabc2, client_ip),
        boot_server,
        0xabc2,
    );
    assert_eq!(ack.message_type(), Some(MessageType::Ack));
    assert_eq!(ack.file, b"pxelinux.0");
    assert_eq!(
        from,
        SocketAddr::V4(boot_server),
        "the ACK comes from the boot server port"
    );

    for stage in [ProxyStage::Offer, ProxyStage::Ack] {
        server.wait_for("proxy boot", |e| {
            matches!(e, DhcpEvent::ProxyBoot { mac, file, stage: s } if *mac == NODE_MAC && file == "pxelinux.0" && *s == stage)
        });
    }
}

#[test]
#[ignore = "netns tier: needs root; run `sudo cargo test -p compose-dhcp -- --ignored` (ci/test does)"]
fn netns_malformed_packets_are_dropped_and_service_continues() {
    require_root();
    let net = Net::new(NODE_MAC);
    net.client_addr(Ipv4Addr::new(10, 77, 0, 50));
    let mut server = Server::start(&net, config(&net, false));
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        b"GET / HTTP/1.0\r\n\r\n".to_vec(),
        vec![0xff; 600],
        {
            let mut b = pxe_request(1, 1, Ipv4Addr::UNSPECIFIED);
            b[236] = 0; // bad magic cookie
            b
        },
        {
            let mut b = pxe_request(1, 2, Ipv4Addr::UNSPECIFIED);
            b.truncate(b.len() - 3); // option 55 runs off the end
            b
        },
    ];
    {
        let sock = client_socket(&net);
        for g in &garbage {
            sock.send_to(g, SocketAddrV4::new(Ipv4Addr::BROADCAST, 67))
                .unwrap();
        }
    }
    let mut malformed = 0;
    for _ in 0..100 {
        malformed = server
            .events()
            .iter()
            .filter(|e| matches!(e, DhcpEvent::Malformed { .. }))
            .count();
        if malformed == garbage.len() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(malformed, garbage.len(), "{:#?}", server.events());
    let r = udhcpc(&net, 3, &[]);
    assert!(r.ok, "udhcpc failed after garbage:\n{}", r.log);
    assert_eq!(r.env.get("ip").map(String::as_str), Some("10.77.0.11"));
}

/// No SO_REUSEADDR: a second server on the same interface fails to bind
/// instead of silently sharing the port.
#[test]
#[ignore = "netns tier: needs root; run `sudo cargo test -p compose-dhcp -- --ignored` (ci/test does)"]
fn netns_second_server_on_same_interface_fails_to_bind() {
    require_root();
    let net = Net::new(NODE_MAC);
    let _server = Server::start(&net, config(&net, false));
    let ifname = net.server_if.clone();
    let err = Net::in_ns(&net.server_ns, move || {
        compose_dhcp::bind_udp(&ifname, 67).map(|_| ())
    });
    let err = err.expect_err("second bind succeeded");
    assert!(err.to_string().contains("bind"), "{err}");
}

/// A PXE DISCOVER whose option 97 is `uuid_len` bytes, split into 255-byte
/// instances as RFC 3396 long options are.
fn discover_with_uuid(xid: u32, uuid_len: usize) -> Vec<u8> {
    let mut b = pxe_request(1, xid, Ipv4Addr::UNSPECIFIED);
    // Drop End and the 17-byte option 97 pxe_request carries (it starts
    // right after the magic cookie and option 53 and 93).
    b.pop();
    let at = 236 + 4 + 3 + 4;
    assert_eq!(&b[at..at + 3], &[97, 17, 0]);
    b.drain(at..at + 2 + 17);
    let mut uuid = vec![0u8];
    uuid.resize(uuid_len, 0x77);
    for chunk in uuid.chunks(255) {
        b.extend_from_slice(&[97, chunk.len() as u8]);
        b.extend_from_slice(chunk);
    }
    b.push(255);
    b
}

/// The attack: a spoofed DISCOVER with a 60 KB option 97 once made the
/// server broadcast a 60 KB OFFER. Now an option 97 not of the RFC 4578
/// form (type 0 + 16 bytes) is not echoed, and the proper one still is.
#[test]
#[ignore = "netns tier: needs root; run `sudo cargo test -p compose-dhcp -- --ignored` (ci/test does)"]
fn netns_oversized_client_uuid_is_not_echoed() {
    require_root();
    let net = Net::new(NODE_MAC);
    let _server = Server::start(&net, config(&net, false));
    let sock = client_socket(&net);
    let bcast = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
    let mut buf = vec![0u8; 65536];
    // Bounded: 5 tries of at most 3 s each per case.
    let mut ask = |pkt: &[u8], xid: u32| -> (Packet, usize) {
        for _ in 0..5 {
            sock.send_to(pkt, bcast).unwrap();
            while let Ok((n, _)) = sock.recv_from(&mut buf) {
                if let Ok(p) = Packet::parse(&buf[..n]) {
                    if p.xid == xid {
                        return (p, n);
                    }
                }
            }
        }
        panic!("no reply with xid {xid:#x}");
    };
    for (xid, len) in [(0x9701, 60_000usize), (0x9702, 255), (0x9703, 18)] {
        let pkt = discover_with_uuid(xid, len);
        let (offer, size) = ask(&pkt, xid);
        assert_eq!(offer.message_type(), Some(MessageType::Offer), "{len}");
        assert!(
            offer.option(97).is_none(),
            "option 97 of {len} bytes echoed"
        );
        assert!(size < 600, "a {size}-byte OFFER for a {len}-byte option 97");
    }
    let (offer, _) = ask(&discover_with_uuid(0x9704, 17), 0x9704);
    let want = [0x77; 16];
    assert_eq!(offer.client_uuid(), Some(want));
}
