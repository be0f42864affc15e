//! Deciding what to answer: a pure function from (config, request) to an
//! optional reply and exactly one event, so every rule is table-testable.

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::config::{DhcpConfig, StaticLease};
use crate::event::{DhcpEvent, IgnoreReason, NakReason, ProxyStage};
use crate::packet::{code, MessageType, Op, Packet, FLAG_BROADCAST};

/// The port a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// 67: DHCP (and the proxyDHCP OFFER).
    Dhcp,
    /// 4011: PXE boot server REQUESTs in proxy mode.
    Pxe,
}

/// Where a reply goes; the server maps these onto socket addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// 255.255.255.255, client port.
    Broadcast,
    /// A configured client: its address, client port.
    Client(Ipv4Addr),
    /// A relay agent: giaddr, server port.
    Relay(Ipv4Addr),
    /// Exactly where the request came from (PXE port 4011 exchanges).
    Source(SocketAddrV4),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub packet: Packet,
    pub to: Destination,
}

/// PXE option 43: sub-option 6 (discovery control) = 8, "download the boot
/// file from the offer, skip boot server discovery"; then end.
const PXE_VENDOR_OPTIONS: [u8; 4] = [6, 1, 8, 255];

/// RFC 2131 §4.1: relay first; a NAK is broadcast (the client's address is
/// in doubt); a client with an address gets unicast. A client without one
/// is broadcast to even when it cleared the broadcast flag: unicasting to
/// yiaddr would need an ARP entry planted by hand, and every client must
/// accept broadcasts anyway.
fn destination(req: &Packet, nak: bool) -> Destination {
    if !req.giaddr.is_unspecified() {
        Destination::Relay(req.giaddr)
    } else if nak || req.ciaddr.is_unspecified() {
        Destination::Broadcast
    } else {
        Destination::Client(req.ciaddr)
    }
}

fn ignored(mac: Option<[u8; 6]>, reason: IgnoreReason) -> (Option<Reply>, DhcpEvent) {
    (None, DhcpEvent::Ignored { mac, reason })
}

/// The boot file for this client: iPXE gets its script, then by option 93
/// (RFC 4578 §2.1; absent means an old BIOS ROM).
pub fn boot_file<'a>(cfg: &'a DhcpConfig, req: &Packet) -> Option<&'a str> {
    if req.has_user_class(b"iPXE") {
        if let Some(f) = &cfg.boot.ipxe {
            return Some(f);
        }
    }
    match req.client_arch() {
        None | Some(0) => Some(&cfg.boot.bios),
        Some(7) | Some(9) => cfg.boot.efi_x64.as_deref(),
        Some(_) => None,
    }
}

fn base(cfg: &DhcpConfig, req: &Packet, mt: MessageType) -> Packet {
    let mut p = Packet::new(Op::BootReply, req.xid, [0; 6]);
    p.htype = req.htype;
    p.hlen = req.hlen;
    p.chaddr = req.chaddr;
    p.flags = req.flags;
    p.giaddr = req.giaddr;
    p.set_option(code::MESSAGE_TYPE, [mt as u8]);
    p.set_option(code::SERVER_ID, cfg.server_ip.octets());
    p
}

fn add_network(cfg: &DhcpConfig, p: &mut Packet, lease: &StaticLease, with_lease_time: bool) {
    if with_lease_time {
        p.set_option(code::LEASE_TIME, cfg.lease_secs.to_be_bytes());
    }
    p.set_option(code::SUBNET_MASK, cfg.netmask.octets());
    if let Some(r) = cfg.router {
        p.set_option(code::ROUTER, r.octets());
    }
    if !cfg.dns.is_empty() {
        p.set_option(
            code::DNS,
            cfg.dns.iter().flat_map(|d| d.octets()).collect::<Vec<_>>(),
        );
    }
    if let Some(d) = &cfg.domain {
        p.set_option(code::DOMAIN, d.as_bytes());
    }
    p.set_option(code::HOSTNAME, lease.hostname.as_bytes());
}

/// siaddr + file, and the PXE options a PXE ROM looks for.
fn add_pxe(cfg: &DhcpConfig, req: &Packet, p: &mut Packet, file: &str) {
    p.siaddr = cfg.next_server;
    p.file = file.as_bytes().to_vec();
    p.set_option(code::VENDOR_CLASS, b"PXEClient".as_slice());
    p.set_option(code::VENDOR_SPECIFIC, PXE_VENDOR_OPTIONS);
    // RFC 4578 §2.3 asks servers to echo the client's UUID. Only its one
    // valid form (type 0 + 16 bytes) is echoed: anything else, above all a
    // long option (RFC 3396 concatenation allows ~60 KB), would turn a
    // spoofed DISCOVER into a large broadcast reply.
    if let Some(uuid) = req.client_uuid() {
        let mut v = Vec::with_capacity(17);
        v.push(0);
        v.extend_from_slice(&uuid);
        p.set_option(code::CLIENT_UUID, v);
    }
    let prl = req.parameter_request_list().unwrap_or_default();
    if prl.contains(&code::TFTP_SERVER) {
        p.set_option(code::TFTP_SERVER, cfg.next_server.to_string());
    }
    // Option 67 always, not only when asked for: some PXE stacks read the
    // option and not the `file` field.
    p.set_option(code::BOOTFILE, file);
}

/// The answer to one request, and the one event describing it.
pub fn respond(
    cfg: &DhcpConfig,
    port: Port,
    from: SocketAddrV4,
    req: &Packet,
) -> (Option<Reply>, DhcpEvent) {
    if req.op != Op::BootRequest {
        return ignored(req.mac(), IgnoreReason::NotARequest);
    }
    let Some(mac) = req.mac() else {
        let reason = IgnoreReason::UnsupportedHardware {
            htype: req.htype,
            hlen: req.hlen,
        };
        return ignored(None, reason);
    };
    let Some(mt) = req.message_type() else {
        return ignored(Some(mac), IgnoreReason::NoMessageType);
    };
    match mt {
        MessageType::Release => return ignored(Some(mac), IgnoreReason::Release),
        MessageType::Decline => {
            return ignored(
                Some(mac),
                IgnoreReason::Decline {
                    ip: req.requested_ip(),
                },
            )
        }
        _ => {}
    }
    // Port 4011 answers PXE clients' boot-server REQUESTs in both modes: a
    // PXE ROM that got PXEClient from the DHCP server itself may still send
    // one there (current iPXE does, then waits 1+2+4+8 s for the answer).
    if cfg.proxy || port == Port::Pxe {
        return respond_proxy(cfg, port, from, req, mac, mt);
    }
    if let (MessageType::Request, Some(sid)) = (mt, req.server_id()) {
        if sid != cfg.server_ip {
            return ignored(Some(mac), IgnoreReason::OtherServer(sid));
        }
    }
    let Some(lease) = cfg.lease_for(&mac) else {
        return ignored(Some(mac), IgnoreReason::UnknownMac);
    };
    let pxe_file = req.is_pxe_client().then(|| boot_file(cfg, req)).flatten();
    let (reply_type, yiaddr, event) = match mt {
        MessageType::Discover => (
            MessageType::Offer,
            lease.ip,
            DhcpEvent::Offer { mac, ip: lease.ip },
        ),
        MessageType::Request => {
            let requested = req
                .requested_ip()
                .or((!req.ciaddr.is_unspecified()).then_some(req.ciaddr));
            let nak = match requested {
                None => Some(NakReason::NoAddress),
                Some(ip) if !cfg.in_subnet(ip) => Some(NakReason::WrongSubnet),
                Some(ip) if ip != lease.ip => Some(NakReason::WrongAddress),
                Some(_) => None,
            };
            if let Some(reason) = nak {
                let mut p = base(cfg, req, MessageType::Nak);
                if !req.giaddr.is_unspecified() {
                    p.flags |= FLAG_BROADCAST; // §4.3.2: the relay must broadcast it
                }
                let to = destination(req, true);
                let event = DhcpEvent::Nak {
                    mac,
                    requested,
                    reason,
                };
                return (Some(Reply { packet: p, to }), event);
            }
            let event = DhcpEvent::Ack {
                mac,
                ip: lease.ip,
                hostname: lease.hostname.clone(),
            };
            (MessageType::Ack, lease.ip, event)
        }
        MessageType::Inform => {
            // §3.4: no yiaddr and no lease time; the client keeps its address.
            let event = DhcpEvent::Inform {
                mac,
                ip: req.ciaddr,
            };
            (MessageType::Ack, Ipv4Addr::UNSPECIFIED, event)
        }
        _ => return ignored(Some(mac), IgnoreReason::NotARequest),
    };
    let mut p = base(cfg, req, reply_type);
    p.yiaddr = yiaddr;
    add_network(cfg, &mut p, lease, mt != MessageType::Inform);
    if let Some(file) = pxe_file {
        add_pxe(cfg, req, &mut p, file);
    }
    (
        Some(Reply {
            packet: p,
            to: destination(req, false),
        }),
        event,
    )
}

/// proxyDHCP (PXE spec 2.1 §2.2.3): boot information only, never an address.
fn respond_proxy(
    cfg: &DhcpConfig,
    port: Port,
    from: SocketAddrV4,
    req: &Packet,
    mac: [u8; 6],
    mt: MessageType,
) -> (Option<Reply>, DhcpEvent) {
    if !req.is_pxe_client() {
        return ignored(Some(mac), IgnoreReason::NotPxe);
    }
    if !cfg.leases.is_empty() && cfg.lease_for(&mac).is_none() {
        return ignored(Some(mac), IgnoreReason::UnknownMac);
    }
    let (reply_type, stage, to) = match (port, mt) {
        (Port::Dhcp, MessageType::Discover) => (
            MessageType::Offer,
            ProxyStage::Offer,
            destination(req, false),
        ),
        (Port::Pxe, MessageType::Request | MessageType::Inform) => {
            (MessageType::Ack, ProxyStage::Ack, Destination::Source(from))
        }
        (Port::Dhcp, MessageType::Request | MessageType::Inform) => {
            return ignored(Some(mac), IgnoreReason::ProxyNoAddress)
        }
        _ => return ignored(Some(mac), IgnoreReason::NotARequest),
    };
    let Some(file) = boot_file(cfg, req) else {
        return ignored(
            Some(mac),
            IgnoreReason::NoBootFile {
                arch: req.client_arch(),
            },
        );
    };
    let mut p = base(cfg, req, reply_type);
    add_pxe(cfg, req, &mut p, file);
    let event = DhcpEvent::ProxyBoot {
        mac,
        file: file.to_string(),
        stage,
    };
    (Some(Reply { packet: p, to }), event)
}

#[cfg(test)]
#[path = "reply_tests.rs"]
mod tests;
