//! compose's DHCP server: static leases, PXE options, proxyDHCP (RFC 2131/2132, 4578).
//!
//! Layers: [`packet`] is the pure wire codec, [`reply`] the pure decision
//! (request in, reply and event out), [`server`] the thin tokio loop that
//! moves datagrams between sockets and those two; [`ra`] answers IPv6
//! router solicitations so iPXE does not wait for its IPv6 timeout. The
//! library never prints; it reports events on a channel and the caller
//! logs them.

pub mod config;
pub mod event;
pub mod packet;
pub mod ra;
pub mod reply;
pub mod server;

pub use config::{mac_string, BootFiles, ConfigError, DhcpConfig, StaticLease};
pub use event::{DhcpEvent, IgnoreReason, NakReason, ProxyStage};
pub use packet::{DhcpOption, MessageType, Op, Packet, ParseError};
pub use ra::{serve_ra, RaEvent};
pub use reply::{respond, Destination, Port, Reply};
pub use server::{bind, bind_udp, serve, serve_on, DhcpError, Sockets};
