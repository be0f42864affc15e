//! compose's read-only userspace NFSv3 server (RFC 1813) with MOUNT v3 and a
//! portmapper (PMAP v2 GETPORT) on the same TCP port, as the initramfs's
//! klibc `nfsmount` needs (see README.md).
//!
//! - [`xdr`], [`rpc`]: the pure codec (ONC RPC, AUTH_UNIX, record marking).
//! - [`perm`]: mode bits against the caller's credential.
//! - `fs`: exports, stable file handles, the inode -> path index;
//!   `exports`: the exports open now, kept through shortages.
//! - `proto`: the procedures; `fast`: READ answered without a thread
//!   hop, from kept descriptors (`files`) and the page cache (`sys`).
//! - `server`: the TCP loop, connections on per-CPU threads (`pool`),
//!   replies written by `writer`, within `limit`'s [`Limits`].
//!
//! The library never prints: it reports [`NfsEvent`]s through a channel.

mod exports;
mod fast;
mod files;
mod fs;
#[cfg(test)]
mod fuzz;
mod limit;
pub mod perm;
mod proto;
pub mod rpc;
mod server;
mod sys;
mod writer;
pub mod xdr;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use limit::Limits;
pub use server::{serve, serve_dynamic, NfsServer};

/// RPC program numbers served.
pub const PMAP_PROG: u32 = 100_000;
pub const NFS_PROG: u32 = 100_003;
pub const MOUNT_PROG: u32 = 100_005;
/// NFSACL v3 (the Linux client's POSIX ACL side protocol), see proto.rs.
pub const NFSACL_PROG: u32 = 100_227;

/// One exported directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The path clients mount, e.g. `/srv/compose/roots/<hex>`.
    pub path: String,
    /// The directory served.
    pub dir: PathBuf,
    /// The only client addresses allowed to mount it and use its handles
    /// (a node's private files); empty: every client.
    pub clients: Vec<std::net::IpAddr>,
    /// Serve calls from unprivileged source ports (>= 1024) too, as knfsd's
    /// `insecure`. Off by default: the AUTH_UNIX credential is whatever the
    /// client writes, so only a port below 1024 (which only root on the
    /// client can bind) vouches for it; with this on, any user on any
    /// machine that reaches the server reads every root-only file. Tests
    /// running unprivileged clients only.
    pub insecure: bool,
}

impl Export {
    /// An export open to every client, from privileged ports only.
    pub fn new(path: impl Into<String>, dir: impl Into<PathBuf>) -> Export {
        Export {
            path: path.into(),
            dir: dir.into(),
            clients: Vec::new(),
            insecure: false,
        }
    }

    /// The same export, open to unprivileged ports (see [`Export::insecure`]).
    pub fn insecure(self) -> Export {
        Export {
            insecure: true,
            ..self
        }
    }

    /// Whether a call from `peer` passes the source port check.
    pub fn port_ok(&self, peer: SocketAddr) -> bool {
        self.insecure || privileged(peer)
    }

    pub fn allows(&self, client: std::net::IpAddr) -> bool {
        self.clients.is_empty() || self.clients.contains(&client)
    }
}

/// Whether `peer` speaks from a reserved port (below 1024), which only root
/// (CAP_NET_BIND_SERVICE) on the client can bind.
pub fn privileged(peer: SocketAddr) -> bool {
    peer.port() < 1024
}

/// Static configuration.
#[derive(Debug, Clone)]
pub struct NfsConfig {
    /// `0.0.0.0:111` in production: PMAP, MOUNT and NFS share this socket.
    pub bind: SocketAddr,
    pub exports: Vec<Export>,
}

/// Where the export list comes from; asked again on every MNT (and when a
/// handle names an export not opened yet), so newly published generations
/// appear without a restart. An error (the list could not be read, e.g.
/// out of descriptors) is transient: MNT answers SERVERFAULT and handles
/// JUKEBOX (the client retries), nothing is forgotten.
pub trait ExportSource: Send + Sync + 'static {
    fn exports(&self) -> std::io::Result<Vec<Export>>;
}

impl ExportSource for Vec<Export> {
    fn exports(&self) -> std::io::Result<Vec<Export>> {
        Ok(self.clone())
    }
}

/// Any `Fn() -> Vec<Export>` closure is a source.
pub struct ExportFn<F>(pub F);

impl<F> ExportSource for ExportFn<F>
where
    F: Fn() -> Vec<Export> + Send + Sync + 'static,
{
    fn exports(&self) -> std::io::Result<Vec<Export>> {
        Ok((self.0)())
    }
}

/// A `Fn() -> io::Result<Vec<Export>>` closure is a source that can fail.
pub struct TryExportFn<F>(pub F);

impl<F> ExportSource for TryExportFn<F>
where
    F: Fn() -> std::io::Result<Vec<Export>> + Send + Sync + 'static,
{
    fn exports(&self) -> std::io::Result<Vec<Export>> {
        (self.0)()
    }
}

/// What happened, for the caller to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NfsEvent {
    /// MNT answered with a root handle (`export` is the path as sent).
    Mount { peer: SocketAddr, export: String },
    /// UMNT.
    Unmount { peer: SocketAddr, export: String },
    /// MNT refused: unknown export, unreadable directory.
    Refused {
        peer: SocketAddr,
        export: String,
        reason: String,
    },
    /// A connection-level problem: malformed record, oversized record, I/O
    /// error, accept failure.
    Error {
        peer: Option<SocketAddr>,
        message: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum NfsError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("export {path} ({dir}): {source}")]
    Export {
        path: String,
        dir: PathBuf,
        source: std::io::Error,
    },
}

pub(crate) type Source = Arc<dyn ExportSource>;
