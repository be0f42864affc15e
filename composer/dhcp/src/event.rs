//! What the server reports. The library never prints: the caller decides
//! how to log these.

use std::net::{Ipv4Addr, SocketAddr};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhcpEvent {
    Offer {
        mac: [u8; 6],
        ip: Ipv4Addr,
    },
    Ack {
        mac: [u8; 6],
        ip: Ipv4Addr,
        hostname: String,
    },
    /// An INFORM answered (the client configured `ip` itself).
    Inform {
        mac: [u8; 6],
        ip: Ipv4Addr,
    },
    Nak {
        mac: [u8; 6],
        requested: Option<Ipv4Addr>,
        reason: NakReason,
    },
    Ignored {
        mac: Option<[u8; 6]>,
        reason: IgnoreReason,
    },
    /// proxyDHCP boot information sent (OFFER on port 67, ACK on 4011).
    ProxyBoot {
        mac: [u8; 6],
        file: String,
        stage: ProxyStage,
    },
    /// A datagram that is not a DHCP packet; dropped.
    Malformed {
        from: SocketAddr,
        error: crate::ParseError,
    },
    /// Sending a reply failed; the server carries on.
    SendFailed {
        to: SocketAddr,
        error: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyStage {
    Offer,
    Ack,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NakReason {
    /// The client asked for an address that is not its static lease.
    WrongAddress,
    /// The requested address is not on our subnet.
    WrongSubnet,
    /// A REQUEST naming no address (no option 50, no ciaddr).
    NoAddress,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IgnoreReason {
    /// The MAC is not in the inventory.
    UnknownMac,
    /// A BOOTREPLY or a message type a server does not answer.
    NotARequest,
    /// No usable option 53 (plain BOOTP is not served).
    NoMessageType,
    /// Not Ethernet (htype 1 / hlen 6).
    UnsupportedHardware { htype: u8, hlen: u8 },
    /// The REQUEST selected another server (option 54).
    OtherServer(Ipv4Addr),
    /// Proxy mode answers PXE clients only.
    NotPxe,
    /// Proxy mode hands out no addresses, so it leaves this to the site server.
    ProxyNoAddress,
    /// PXE client whose architecture has no boot file configured.
    NoBootFile { arch: Option<u16> },
    /// RELEASE: leases are static, nothing to free.
    Release,
    /// DECLINE: the client found `ip` already in use on the network.
    Decline { ip: Option<Ipv4Addr> },
}
