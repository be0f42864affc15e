//! The async loop: receive, parse, decide (see `reply`), send. Everything
//! interesting happens in the pure modules; this file only moves datagrams.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::UnboundedSender;

use crate::config::{ConfigError, DhcpConfig};
use crate::event::DhcpEvent;
use crate::packet::Packet;
use crate::reply::{respond, Destination, Port};

pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;
/// PXE boot server port (proxyDHCP REQUEST/ACK).
pub const PXE_PORT: u16 = 4011;

#[derive(Debug, thiserror::Error)]
pub enum DhcpError {
    #[error("invalid DHCP configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("DHCP socket on {interface} port {port}: {what}: {source}")]
    Socket {
        interface: String,
        port: u16,
        what: &'static str,
        source: io::Error,
    },
    #[error("receiving DHCP on {interface} port {port}: {source}")]
    Recv {
        interface: String,
        port: u16,
        source: io::Error,
    },
}

/// Bound sockets and where replies go. `bind` fills in the standard ports;
/// tests on loopback can point `broadcast`/`client_port` elsewhere.
#[derive(Debug)]
pub struct Sockets {
    /// Port 67.
    pub dhcp: UdpSocket,
    /// Port 4011 (PXE boot-server requests).
    pub pxe: Option<UdpSocket>,
    /// Where `Destination::Broadcast` goes: 255.255.255.255:68.
    pub broadcast: SocketAddrV4,
    /// Port of configured clients (68).
    pub client_port: u16,
    /// Port of relay agents (67).
    pub server_port: u16,
}

/// A UDP socket on 0.0.0.0:`port` that sees and sends only on `interface`.
/// Clients without an address send from 0.0.0.0 to 255.255.255.255, so the
/// socket must listen on the wildcard; SO_BINDTODEVICE, set before bind(),
/// confines it to one link and lets servers on other interfaces bind the
/// same port, while a second server on the same interface fails loudly with
/// EADDRINUSE (no SO_REUSEADDR on purpose).
pub fn bind_udp(interface: &str, port: u16) -> Result<std::net::UdpSocket, DhcpError> {
    let err = |what| {
        let interface = interface.to_string();
        move |source| DhcpError::Socket {
            interface,
            port,
            what,
            source,
        }
    };
    let sock =
        Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(err("socket"))?;
    sock.set_broadcast(true).map_err(err("SO_BROADCAST"))?;
    sock.bind_device(Some(interface.as_bytes()))
        .map_err(err("SO_BINDTODEVICE"))?;
    sock.set_nonblocking(true).map_err(err("O_NONBLOCK"))?;
    let addr = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
    sock.bind(&SocketAddr::V4(addr).into())
        .map_err(err("bind"))?;
    Ok(sock.into())
}

/// Bind the sockets `cfg` needs (port 67, and 4011 for PXE boot-server
/// requests). Must be called inside a tokio runtime.
pub fn bind(cfg: &DhcpConfig) -> Result<Sockets, DhcpError> {
    let tokio_sock = |port| {
        let s = bind_udp(&cfg.interface, port)?;
        UdpSocket::from_std(s).map_err(|source| DhcpError::Socket {
            interface: cfg.interface.clone(),
            port,
            what: "register with tokio",
            source,
        })
    };
    Ok(Sockets {
        dhcp: tokio_sock(SERVER_PORT)?,
        pxe: Some(tokio_sock(PXE_PORT)?),
        broadcast: SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT),
        client_port: CLIENT_PORT,
        server_port: SERVER_PORT,
    })
}

/// Validate, bind and serve until `shutdown` completes.
pub async fn serve(
    cfg: DhcpConfig,
    events: UnboundedSender<DhcpEvent>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DhcpError> {
    cfg.validate()?;
    // Bind here so a bad interface or a busy port is reported at once.
    let sockets = bind_std(&cfg)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let interface = cfg.interface.clone();
    // Why a thread and runtime of its own: each request is one wake-up, and
    // on the caller's multi-threaded runtime a wake-up often hops between
    // worker threads. On a loaded 2-core host that cost 14 ms of average
    // latency and 4 % drops at 1000 DORA/s, where dnsmasq answered in
    // 0.5 ms (ci/bench/serve.sh, BENCHMARKS.md).
    std::thread::Builder::new()
        .name("dhcp".into())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| DhcpError::Socket {
                    interface: cfg.interface.clone(),
                    port: SERVER_PORT,
                    what: "start the DHCP runtime",
                    source,
                })
                .and_then(|rt| {
                    rt.block_on(async move {
                        let sockets = sockets.into_tokio(&cfg.interface)?;
                        serve_on(cfg, sockets, events, async {
                            let _ = stopped.await;
                        })
                        .await
                    })
                });
            let _ = done_tx.send(result);
        })
        .map_err(|source| DhcpError::Socket {
            interface,
            port: SERVER_PORT,
            what: "start the DHCP thread",
            source,
        })?;
    // Dropping `stop` (here, or with this future) ends the thread's loop.
    let mut done_rx = std::pin::pin!(done_rx);
    tokio::select! {
        _ = shutdown => {
            drop(stop);
            done_rx.await.unwrap_or(Ok(()))
        }
        r = &mut done_rx => r.unwrap_or(Ok(())),
    }
}

/// Port 67 (and 4011) bound but not yet registered with a runtime.
struct StdSockets {
    dhcp: std::net::UdpSocket,
    pxe: Option<std::net::UdpSocket>,
}

fn bind_std(cfg: &DhcpConfig) -> Result<StdSockets, DhcpError> {
    Ok(StdSockets {
        dhcp: bind_udp(&cfg.interface, SERVER_PORT)?,
        pxe: if cfg.proxy {
            Some(bind_udp(&cfg.interface, PXE_PORT)?)
        } else {
            None
        },
    })
}

impl StdSockets {
    /// Registers with the current runtime (call inside it).
    fn into_tokio(self, interface: &str) -> Result<Sockets, DhcpError> {
        let reg = |s, port| {
            UdpSocket::from_std(s).map_err(|source| DhcpError::Socket {
                interface: interface.to_string(),
                port,
                what: "register with tokio",
                source,
            })
        };
        Ok(Sockets {
            dhcp: reg(self.dhcp, SERVER_PORT)?,
            pxe: match self.pxe {
                Some(s) => Some(reg(s, PXE_PORT)?),
                None => None,
            },
            broadcast: SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT),
            client_port: CLIENT_PORT,
            server_port: SERVER_PORT,
        })
    }
}

async fn recv_opt(sock: Option<&UdpSocket>, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    match sock {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// Errors a UDP receive can report for an earlier datagram (ICMP) or a
/// signal; the socket is still fine.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
    )
}

/// Serve on already-bound sockets until `shutdown` completes. Malformed or
/// unanswerable datagrams become events; only a broken socket ends it early.
/// A dropped event receiver is not an error: events are advisory.
pub async fn serve_on(
    cfg: DhcpConfig,
    sockets: Sockets,
    events: UnboundedSender<DhcpEvent>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DhcpError> {
    cfg.validate()?;
    let mut shutdown = std::pin::pin!(shutdown);
    // 64 KiB: never truncate, so a datagram is judged on what was sent.
    let mut buf = vec![0u8; 65536];
    let mut pxe_buf = vec![0u8; 65536];
    loop {
        let (port, received) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            r = sockets.dhcp.recv_from(&mut buf) => (Port::Dhcp, r.map(|(n, a)| (&buf[..n], a))),
            r = recv_opt(sockets.pxe.as_ref(), &mut pxe_buf) => {
                (Port::Pxe, r.map(|(n, a)| (&pxe_buf[..n], a)))
            }
        };
        let (data, from) = match received {
            Ok(x) => x,
            Err(e) if transient(&e) => continue,
            Err(source) => {
                let p = if port == Port::Dhcp {
                    SERVER_PORT
                } else {
                    PXE_PORT
                };
                return Err(DhcpError::Recv {
                    interface: cfg.interface.clone(),
                    port: p,
                    source,
                });
            }
        };
        let SocketAddr::V4(from4) = from else {
            continue;
        };
        let req = match Packet::parse(data) {
            Ok(p) => p,
            Err(error) => {
                let _ = events.send(DhcpEvent::Malformed { from, error });
                continue;
            }
        };
        let (reply, event) = respond(&cfg, port, from4, &req);
        if let Some(reply) = reply {
            let to = match reply.to {
                Destination::Broadcast => sockets.broadcast,
                Destination::Client(ip) => SocketAddrV4::new(ip, sockets.client_port),
                Destination::Relay(ip) => SocketAddrV4::new(ip, sockets.server_port),
                Destination::Source(a) => a,
            };
            // Answer from the socket the request came in on: PXE clients
            // expect the 4011 ACK to come from port 4011.
            let sock = match port {
                Port::Pxe => sockets.pxe.as_ref().unwrap_or(&sockets.dhcp),
                Port::Dhcp => &sockets.dhcp,
            };
            if let Err(e) = sock.send_to(&reply.packet.encode(), to).await {
                let to = SocketAddr::V4(to);
                let _ = events.send(DhcpEvent::SendFailed {
                    to,
                    error: e.to_string(),
                });
            }
        }
        let _ = events.send(event);
    }
}
