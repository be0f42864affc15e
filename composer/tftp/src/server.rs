//! The server loop: receive requests on the well-known socket, hand each to
//! its own task and socket, stop when the shutdown future resolves.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;

use compose_confine::Confinement;
use compose_netrt::Pool;

use crate::confine;
use crate::packet::{self, error_packet, ErrorCode, Packet};
use crate::slots::{Busy, Slots};
use crate::transfer::{self, MAX_BLKSIZE, MIN_BLKSIZE};
use crate::{TftpError, TftpEvent};

#[derive(Debug, Clone)]
pub struct TftpConfig {
    /// The directory request names are relative to, e.g. /srv/compose/tftp.
    pub root: PathBuf,
    /// The boundary no resolved path (symlinks included) may leave, e.g.
    /// /srv/compose. Must contain `root` (or be it).
    pub confine: PathBuf,
    /// Directories, relative to `confine`, that a requested file must lie
    /// in once every symlink is resolved (e.g. `tftp` and `images` of a
    /// publish tree); empty: anywhere under `confine`.
    pub subtrees: Vec<PathBuf>,
    /// Serve only world-readable files (o+r), like tftpd-hpa without
    /// `--permissive`.
    pub world_readable_only: bool,
    /// 0.0.0.0:69 in production; 127.0.0.1:0 in tests.
    pub bind: SocketAddr,
    /// Largest blksize granted (8..=65464); 1468 fits a 1500-byte MTU.
    pub max_blksize: u16,
    /// Retransmission interval unless the client negotiates `timeout`.
    pub default_timeout: Duration,
    /// Retransmissions of one packet/window before the transfer fails.
    pub retries: u32,
    /// Largest windowsize granted (>= 1).
    pub max_window: u16,
    /// Retransmissions before the client has acknowledged anything (the
    /// OACK or DATA 1). A spoofed request makes us send to a victim that
    /// never asked: this bounds what it receives to `1 + retries_before_ack`
    /// packets. After the first ACK the peer is known to be real and
    /// `retries` applies.
    pub retries_before_ack: u32,
    /// Transfers running at once. Each holds two descriptors, so this
    /// bounds the descriptors a request flood can take. When all are taken,
    /// a new request evicts the oldest transfer whose client never ACKed
    /// (a flood's); if every one has ACKed, it gets ERROR 0 "server busy"
    /// without a file or socket being opened.
    pub max_transfers: usize,
    /// Transfers running at once for one client address (all its ports).
    pub max_per_peer: usize,
    /// Largest `timeout` option accepted (RFC 2349). A request asking for
    /// more gets no `timeout` in the OACK, so both sides use their own
    /// default: RFC 2349 lets the server only echo the client's value or
    /// leave it out, and a changed value would be rejected by strict clients.
    pub max_timeout: Duration,
    /// A transfer still running after this long ends (Failed), however the
    /// client paces its ACKs.
    pub max_lifetime: Duration,
}

impl TftpConfig {
    /// Defaults suited to PXE on an Ethernet LAN, confined to `root` itself.
    pub fn new(root: impl Into<PathBuf>, bind: SocketAddr) -> TftpConfig {
        let root = root.into();
        TftpConfig {
            confine: root.clone(),
            subtrees: Vec::new(),
            world_readable_only: true,
            root,
            bind,
            max_blksize: 1468,
            default_timeout: Duration::from_secs(1),
            retries: 5,
            max_window: 64,
            retries_before_ack: 2,
            // Hundreds of nodes booting at once each fetch a few files in a
            // row, most of them small; 256 running transfers (512
            // descriptors) keeps half of a 1024 limit for NFS and the rest.
            max_transfers: 256,
            // pxelinux.0, ldlinux, config probes, kernel and initrd, with
            // some in parallel and a retried RRQ or two on top.
            max_per_peer: 8,
            max_timeout: Duration::from_secs(10),
            // A 1 GB initrd at 512-byte lock-step blocks and 1 ms RTT takes
            // about half an hour; boot files are tens of MB, seconds on a LAN.
            max_lifetime: Duration::from_secs(600),
        }
    }

    fn validate(&self) -> Result<(), TftpError> {
        let bad = |m: String| Err(TftpError::Config(m));
        if !(MIN_BLKSIZE..=MAX_BLKSIZE).contains(&self.max_blksize) {
            return bad(format!(
                "max_blksize {} not in {MIN_BLKSIZE}..={MAX_BLKSIZE}",
                self.max_blksize
            ));
        }
        if self.max_window == 0 {
            return bad("max_window must be at least 1".into());
        }
        if self.default_timeout.is_zero() {
            return bad("default_timeout must be positive".into());
        }
        if self.max_transfers == 0 || self.max_per_peer == 0 {
            return bad("max_transfers and max_per_peer must be at least 1".into());
        }
        if self.max_lifetime.is_zero() {
            return bad("max_lifetime must be positive".into());
        }
        Ok(())
    }
}

/// State every transfer task shares.
pub(crate) struct Shared {
    pub cfg: TftpConfig,
    pub confinement: Confinement,
    pub events: UnboundedSender<TftpEvent>,
    pub slots: Arc<Slots>,
}

/// A bound server that has not started serving yet; binding first lets a
/// caller (or a test) learn the port before any request can arrive.
#[derive(Debug)]
pub struct TftpServer {
    cfg: TftpConfig,
    confinement: Confinement,
    socket: UdpSocket,
}

impl TftpServer {
    /// Validates `cfg`, opens the confinement directory and binds the socket.
    pub async fn bind(cfg: TftpConfig) -> Result<(TftpServer, SocketAddr), TftpError> {
        cfg.validate()?;
        let confinement = confine::open_confinement(
            &cfg.root,
            &cfg.confine,
            &cfg.subtrees,
            cfg.world_readable_only,
        )
        .map_err(|source| TftpError::Io {
            context: format!(
                "opening TFTP root {} (confined to {})",
                cfg.root.display(),
                cfg.confine.display()
            ),
            source,
        })?;
        let socket = UdpSocket::bind(cfg.bind)
            .await
            .map_err(|source| TftpError::Io {
                context: format!("binding TFTP socket {}", cfg.bind),
                source,
            })?;
        let addr = socket.local_addr().map_err(|source| TftpError::Io {
            context: "reading the TFTP socket address".into(),
            source,
        })?;
        Ok((
            TftpServer {
                cfg,
                confinement,
                socket,
            },
            addr,
        ))
    }

    /// Accepts requests that arrive on `interface` only (SO_BINDTODEVICE).
    /// Binding the address alone is not enough on a dual-homed server:
    /// Linux delivers a packet for any local address whatever interface it
    /// came in on, so a host on another network could route requests to the
    /// boot address through its own interface.
    pub fn bind_to_device(&self, interface: &str) -> Result<(), TftpError> {
        compose_netrt::bind_to_device(&self.socket, interface).map_err(|source| TftpError::Io {
            context: format!("binding the TFTP socket to interface {interface}"),
            source,
        })
    }

    /// Serves until `shutdown` resolves; transfers still running then are
    /// aborted (clients retry, and a half-sent boot file is worthless).
    pub async fn run(
        self,
        events: UnboundedSender<TftpEvent>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), TftpError> {
        let TftpServer {
            cfg,
            confinement,
            socket,
        } = self;
        let shared = Arc::new(Shared {
            slots: Slots::new(cfg.max_transfers, cfg.max_per_peer),
            cfg,
            confinement,
            events,
        });
        let pool = Pool::start("tftp", None).map_err(|source| TftpError::Io {
            context: "starting the TFTP transfer threads".into(),
            source,
        })?;
        let mut tasks = JoinSet::new();
        let mut buf = vec![0u8; 65536];
        tokio::pin!(shutdown);
        // Runs once per datagram until shutdown; each pass is bounded.
        loop {
            while tasks.try_join_next().is_some() {}
            let (n, peer) = tokio::select! {
                _ = &mut shutdown => break,
                r = socket.recv_from(&mut buf) => match r {
                    Ok(x) => x,
                    // An ICMP error for an earlier reply can surface here; it
                    // concerns that peer, not the server.
                    Err(e) if is_transient(&e) => continue,
                    Err(source) => {
                        tasks.shutdown().await;
                        return Err(TftpError::Io { context: "receiving on the TFTP socket".into(), source });
                    }
                },
            };
            dispatch(&shared, &pool, &socket, &buf[..n], peer, &mut tasks).await;
        }
        tasks.shutdown().await;
        Ok(())
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionReset | Interrupted | WouldBlock
    )
}

async fn dispatch(
    shared: &Arc<Shared>,
    pool: &Pool,
    socket: &UdpSocket,
    bytes: &[u8],
    peer: SocketAddr,
    tasks: &mut JoinSet<()>,
) {
    let events = &shared.events;
    let pkt = match packet::parse(bytes) {
        Ok(p @ (Packet::Rrq(_) | Packet::Wrq(_))) => p,
        // DATA/ACK/ERROR/OACK on the server port belong to no transfer; say
        // nothing, so two servers can never ping-pong errors.
        Ok(_) => return,
        Err(error) => {
            // Answer only what claims to be a request; replying to random
            // UDP junk would make us a reflector.
            if matches!(bytes, [0, 1 | 2, ..]) {
                let e = error_packet(ErrorCode::ILLEGAL_OPERATION, &error.to_string());
                let _ = socket.send_to(&e, peer).await;
            }
            let _ = events.send(TftpEvent::Malformed { peer, error });
            return;
        }
    };
    let path = match &pkt {
        Packet::Rrq(r) | Packet::Wrq(r) => r.filename.clone(),
        _ => String::new(),
    };
    let busy = |reason: &str| {
        let reason = reason.to_owned();
        let path = path.clone();
        async move {
            let _ = socket
                .send_to(&error_packet(ErrorCode::UNDEFINED, "server busy"), peer)
                .await;
            let _ = events.send(TftpEvent::Refused { peer, path, reason });
        }
    };
    let slot = match shared.slots.acquire(peer, &path) {
        Ok((slot, evicted)) => {
            if let Some((peer, path)) = evicted {
                let reason = "evicted: never ACKed, and all transfer slots were taken".into();
                let _ = events.send(TftpEvent::Failed { peer, path, reason });
            }
            slot
        }
        Err(Busy::Server) => return busy("too many transfers").await,
        Err(Busy::Peer) => return busy("too many transfers from this address").await,
    };
    // The transfer's own socket: same local address, kernel-chosen port.
    // Bound here so a failure is reported at once; registered with tokio on
    // the pool worker that runs the transfer.
    let local = SocketAddr::new(shared.cfg.bind.ip(), 0);
    let sock = match std::net::UdpSocket::bind(local).and_then(|s| {
        s.set_nonblocking(true)?;
        Ok(s)
    }) {
        Ok(s) => s,
        // EMFILE/ENFILE above all: answer from the server socket (which
        // needs no new descriptor) so the client knows, and keep serving.
        Err(e) => return busy(&format!("cannot open a transfer socket: {e}")).await,
    };
    let slots = shared.slots.clone();
    let shared = shared.clone();
    let acked = slot.acked_flag();
    let id = slot.id();
    let abort = pool.spawn(tasks, async move {
        let _slot = slot;
        match UdpSocket::from_std(sock) {
            Ok(sock) => transfer::run(shared, sock, peer, pkt, acked).await,
            Err(e) => {
                let reason = format!("cannot register the transfer socket: {e}");
                let _ = shared.events.send(TftpEvent::Failed { peer, path, reason });
            }
        }
    });
    slots.set_abort(id, abort);
}

/// Binds and serves in one call (production: nobody needs the port first).
pub async fn serve(
    cfg: TftpConfig,
    events: UnboundedSender<TftpEvent>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), TftpError> {
    let (server, _) = TftpServer::bind(cfg).await?;
    server.run(events, shutdown).await
}
