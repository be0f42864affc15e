//! compose's read-only userspace NFSv3 server (RFC 1813) with MOUNT v3 and a
//! portmapper (PMAP v2 GETPORT) on the same TCP port, as the initramfs's
//! klibc `nfsmount` needs (see README.md).
//!
//! - [`xdr`], [`rpc`]: the pure codec (ONC RPC, AUTH_UNIX, record marking).
//! - [`perm`]: mode bits against the caller's credential.
//! - `fs`: exports, stable file handles, the inode -> path index.
//! - `proto`: the procedures; `fast`: READ answered without a thread
//!   hop, from kept descriptors (`files`) and the page cache (`sys`).
//! - `server`: the TCP loop, connections on per-CPU threads (`pool`),
//!   replies written by `writer`.
//!
//! The library never prints: it reports [`NfsEvent`]s through a channel.

mod fast;
mod files;
mod fs;
pub mod perm;
mod pool;
mod proto;
pub mod rpc;
mod server;
mod sys;
mod writer;
pub mod xdr;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

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
}

impl Export {
    /// An export open to every client.
    pub fn new(path: impl Into<String>, dir: impl Into<PathBuf>) -> Export {
        Export {
            path: path.into(),
            dir: dir.into(),
            clients: Vec::new(),
        }
    }

    pub fn allows(&self, client: std::net::IpAddr) -> bool {
        self.clients.is_empty() || self.clients.contains(&client)
    }
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
/// appear without a restart.
pub trait ExportSource: Send + Sync + 'static {
    fn exports(&self) -> Vec<Export>;
}

impl ExportSource for Vec<Export> {
    fn exports(&self) -> Vec<Export> {
        self.clone()
    }
}

/// Any `Fn() -> Vec<Export>` closure is a source.
pub struct ExportFn<F>(pub F);

impl<F> ExportSource for ExportFn<F>
where
    F: Fn() -> Vec<Export> + Send + Sync + 'static,
{
    fn exports(&self) -> Vec<Export> {
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
