//! IPv6 Router Advertisements that configure nothing, sent in answer to
//! Router Solicitations on the boot interface.
//!
//! Why: iPXE configures a NIC with every configurator at once (DHCPv4 and
//! IPv6 autoconfiguration) and waits for all of them. On a boot network
//! without an IPv6 router its router solicitations go unanswered and it
//! waits for their retry timer to give up: about 15 s of every boot, between
//! the DHCP ACK and the first TFTP request (measured, BENCHMARKS.md). An RA
//! with neither the managed nor the other-config flag ends that wait at
//! once. It carries no prefix and a router lifetime of 0 ("not a default
//! router"), so hosts that hear it change nothing; it is sent to the
//! soliciting host's link-local address, not to all nodes, unless the
//! solicitation came from the unspecified address. `compose serve` runs this
//! only where it owns the boot network (not in proxyDHCP mode).
//!
//! Pure codec ([`parse_solicit`], [`advert`]) apart from the socket loop
//! ([`serve_ra`]).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::UnboundedSender;

/// ICMPv6 types (RFC 4861 §4.1, §4.2).
pub const ROUTER_SOLICIT: u8 = 133;
pub const ROUTER_ADVERT: u8 = 134;
/// NDP option: source link-layer address.
const OPT_SOURCE_LL: u8 = 1;
/// All routers on the link: where solicitations go.
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// RFC 4861 §6.2.6: at most one multicast RA per MIN_DELAY_BETWEEN_RAS.
const MULTICAST_GAP: Duration = Duration::from_secs(3);
/// One answer per soliciting host per second is plenty (iPXE retries after
/// 1 s at the earliest); more would let a flood of solicitations make us
/// flood back.
const UNICAST_GAP: Duration = Duration::from_secs(1);
/// Bound on the per-host memory of the rate limit.
const MAX_TRACKED: usize = 4096;

/// What the responder did, for the caller's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RaEvent {
    /// The responder is listening on `interface`.
    Started {
        interface: String,
    },
    /// A solicitation answered; `mac` from its source link-layer option.
    Advertised {
        to: Ipv6Addr,
        mac: Option<[u8; 6]>,
    },
    /// No IPv6 on the interface (or no permission): nothing is answered,
    /// iPXE clients just wait for their own timeout. Serving goes on.
    Unavailable {
        interface: String,
        error: String,
    },
    SendFailed {
        to: Ipv6Addr,
        error: String,
    },
}

/// A Router Solicitation: its sender's link-layer address if it gave one.
/// `None` for anything else (other ICMPv6 types, malformed options).
pub fn parse_solicit(msg: &[u8]) -> Option<Option<[u8; 6]>> {
    // type, code, checksum (2), reserved (4), options.
    if msg.len() < 8 || msg[0] != ROUTER_SOLICIT || msg[1] != 0 {
        return None;
    }
    let mut mac = None;
    let mut opts = &msg[8..];
    while !opts.is_empty() {
        // Each option: type, length in units of 8 bytes (0 is invalid).
        let len = usize::from(*opts.get(1)?) * 8;
        if len == 0 || len > opts.len() {
            return None;
        }
        if opts[0] == OPT_SOURCE_LL && len >= 8 {
            mac = Some(opts[2..8].try_into().ok()?);
        }
        opts = &opts[len..];
    }
    Some(mac)
}

/// The Router Advertisement we send: no hop limit, no flags, lifetime 0,
/// no timers, no prefixes; only our link-layer address (so the host need
/// not resolve it). The kernel fills in the checksum of raw ICMPv6 sockets.
pub fn advert(our_mac: Option<[u8; 6]>) -> Vec<u8> {
    let mut m = vec![ROUTER_ADVERT, 0, 0, 0];
    m.extend_from_slice(&[0, 0]); // cur hop limit, flags (M=0, O=0)
    m.extend_from_slice(&0u16.to_be_bytes()); // router lifetime
    m.extend_from_slice(&0u32.to_be_bytes()); // reachable time
    m.extend_from_slice(&0u32.to_be_bytes()); // retrans timer
    if let Some(mac) = our_mac {
        m.extend_from_slice(&[OPT_SOURCE_LL, 1]);
        m.extend_from_slice(&mac);
    }
    m
}

/// Per-destination rate limit, bounded in memory.
#[derive(Default)]
pub struct Limiter {
    last: HashMap<Ipv6Addr, Instant>,
}

impl Limiter {
    /// Whether an RA to `to` may go now (and if so, records it).
    pub fn allow(&mut self, to: Ipv6Addr, now: Instant) -> bool {
        let gap = if to.is_multicast() {
            MULTICAST_GAP
        } else {
            UNICAST_GAP
        };
        if let Some(t) = self.last.get(&to) {
            if now.duration_since(*t) < gap {
                return false;
            }
        }
        if self.last.len() >= MAX_TRACKED {
            self.last
                .retain(|_, t| now.duration_since(*t) < MULTICAST_GAP);
            if self.last.len() >= MAX_TRACKED {
                return false;
            }
        }
        self.last.insert(to, now);
        true
    }
}

/// The interface's MAC, asked of the kernel (netlink, via getifaddrs) rather
/// than /sys, which shows the namespace sysfs was mounted in.
fn interface_mac(interface: &str) -> Option<[u8; 6]> {
    nix::ifaddrs::getifaddrs()
        .ok()?
        .filter(|a| a.interface_name == interface)
        .find_map(|a| a.address?.as_link_addr()?.addr())
}

/// A raw ICMPv6 socket on `interface` that hears the all-routers group and
/// sends with hop limit 255 (receivers drop NDP messages with any other).
/// tokio has no raw socket type; recvfrom/sendto on a raw ICMPv6 socket take
/// the same sockaddr_in6 as on a UDP one, so tokio's UdpSocket drives it.
fn open(interface: &str) -> io::Result<(UdpSocket, u32)> {
    let index = nix::net::if_::if_nametoindex(interface).map_err(io::Error::from)?;
    let sock = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    sock.bind_device(Some(interface.as_bytes()))?;
    sock.join_multicast_v6(&ALL_ROUTERS, index)?;
    sock.set_multicast_if_v6(index)?;
    sock.set_multicast_hops_v6(255)?;
    sock.set_unicast_hops_v6(255)?;
    sock.set_multicast_loop_v6(false)?;
    sock.set_nonblocking(true)?;
    Ok((UdpSocket::from_std(std::net::UdpSocket::from(sock))?, index))
}

/// Answers router solicitations on `interface` until `shutdown`. Never
/// fails the caller: without IPv6 it reports [`RaEvent::Unavailable`] and
/// waits for shutdown. Call inside a tokio runtime.
pub async fn serve_ra(
    interface: String,
    events: UnboundedSender<RaEvent>,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let (sock, index) = match open(&interface) {
        Ok(s) => s,
        Err(e) => {
            let _ = events.send(RaEvent::Unavailable {
                interface,
                error: e.to_string(),
            });
            shutdown.await;
            return;
        }
    };
    let _ = events.send(RaEvent::Started {
        interface: interface.clone(),
    });
    let reply = advert(interface_mac(&interface));
    let mut limiter = Limiter::default();
    let mut buf = vec![0u8; 2048];
    loop {
        let (n, from) = tokio::select! {
            _ = &mut shutdown => return,
            r = sock.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = events.send(RaEvent::Unavailable { interface, error: format!("receive: {e}") });
                    shutdown.await;
                    return;
                }
            },
        };
        let Some(mac) = parse_solicit(&buf[..n]) else {
            continue;
        };
        let SocketAddr::V6(from) = from else {
            continue;
        };
        let to = if from.ip().is_unspecified() {
            ALL_NODES
        } else {
            *from.ip()
        };
        if !limiter.allow(to, Instant::now()) {
            continue;
        }
        let dest = SocketAddrV6::new(to, 0, 0, index);
        match sock.send_to(&reply, dest).await {
            Ok(_) => {
                let _ = events.send(RaEvent::Advertised { to, mac });
            }
            Err(e) => {
                let _ = events.send(RaEvent::SendFailed {
                    to,
                    error: e.to_string(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0xc0, 0, 1];

    fn solicit(opts: &[u8]) -> Vec<u8> {
        let mut m = vec![ROUTER_SOLICIT, 0, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(opts);
        m
    }

    #[test]
    fn solicitations_are_recognised_with_and_without_their_address() {
        assert_eq!(parse_solicit(&solicit(&[])), Some(None));
        let with = solicit(&[1, 1, 0x52, 0x54, 0, 0xc0, 0, 1]);
        assert_eq!(parse_solicit(&with), Some(Some(MAC)));
        // An unknown option before it is skipped by its length.
        let mut two = vec![14, 2];
        two.extend_from_slice(&[0; 14]);
        two.extend_from_slice(&[1, 1, 0x52, 0x54, 0, 0xc0, 0, 1]);
        assert_eq!(parse_solicit(&solicit(&two)), Some(Some(MAC)));
    }

    #[test]
    fn other_messages_and_bad_options_are_not_solicitations() {
        assert_eq!(parse_solicit(&[ROUTER_SOLICIT, 0, 0, 0]), None);
        assert_eq!(parse_solicit(&advert(Some(MAC))), None);
        let mut echo = solicit(&[]);
        echo[0] = 128;
        assert_eq!(parse_solicit(&echo), None);
        let mut code = solicit(&[]);
        code[1] = 1;
        assert_eq!(parse_solicit(&code), None);
        // Zero-length and overlong options (RFC 4861 §4.6: discard).
        assert_eq!(parse_solicit(&solicit(&[1, 0, 0, 0, 0, 0, 0, 0])), None);
        assert_eq!(parse_solicit(&solicit(&[1, 2, 0, 0, 0, 0, 0, 0])), None);
    }

    #[test]
    fn the_advert_configures_nothing() {
        let m = advert(Some(MAC));
        assert_eq!(m.len(), 24);
        assert_eq!(m[0], ROUTER_ADVERT);
        assert_eq!(m[4], 0, "no hop limit");
        assert_eq!(m[5], 0, "neither managed nor other-config");
        assert_eq!(&m[6..8], &[0, 0], "router lifetime 0: not a default router");
        assert_eq!(&m[16..], &[1, 1, 0x52, 0x54, 0, 0xc0, 0, 1]);
        assert_eq!(advert(None).len(), 16);
    }

    #[test]
    fn rate_limit_per_host_and_stricter_for_multicast() {
        let mut l = Limiter::default();
        let t = Instant::now();
        let host: Ipv6Addr = "fe80::5054:ff:fec0:1".parse().unwrap();
        assert!(l.allow(host, t));
        assert!(!l.allow(host, t + Duration::from_millis(500)));
        assert!(l.allow(host, t + Duration::from_millis(1100)));
        assert!(l.allow(ALL_NODES, t));
        assert!(!l.allow(ALL_NODES, t + Duration::from_secs(2)));
        assert!(l.allow(ALL_NODES, t + Duration::from_secs(4)));
    }

    #[test]
    fn rate_limit_memory_is_bounded() {
        let mut l = Limiter::default();
        let t = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 10) {
            let a = Ipv6Addr::from(0xfe80_0000_0000_0000_0000_0000_0000_0000u128 | u128::from(i));
            l.allow(a, t);
        }
        assert!(l.last.len() <= MAX_TRACKED);
    }

    proptest! {
        #[test]
        fn parse_never_panics(msg in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_solicit(&msg);
        }

        #[test]
        fn solicit_options_round_trip(mac in any::<[u8; 6]>(), pad in 0usize..4) {
            let mut opts = Vec::new();
            for _ in 0..pad {
                opts.extend_from_slice(&[14, 1, 0, 0, 0, 0, 0, 0]);
            }
            opts.extend_from_slice(&[1, 1]);
            opts.extend_from_slice(&mac);
            prop_assert_eq!(parse_solicit(&solicit(&opts)), Some(Some(mac)));
        }
    }
}
