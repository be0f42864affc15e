//! compose's read-only TFTP server (RFC 1350, 2347-2349, 7440), paths confined to its root.
//!
//! - [`packet`]: the pure codec (parse/encode, no I/O).
//! - [`TftpServer`] / [`serve`]: a thin async loop; every transfer runs in
//!   its own task on its own ephemeral socket (TID), on a small pool of
//!   single-threaded runtimes (compose-netrt's `Pool` says why).
//! - Paths are resolved with openat2(RESOLVE_BENEATH) under
//!   [`TftpConfig::confine`]; compose-confine owns the policy, `confine.rs`
//!   the request names and the ERROR codes.
//!
//! The library never prints: it reports [`TftpEvent`]s through a channel and
//! the caller decides what to log.

mod confine;
pub mod packet;
mod server;
mod slots;
mod transfer;

use std::net::SocketAddr;
use std::time::Duration;

pub use packet::{ErrorCode, Mode, Packet, PacketError, Request};
pub use server::{serve, TftpConfig, TftpServer};

/// What happened, for the caller to log. `path` is the file name as the
/// client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TftpEvent {
    /// Options negotiated, first packet about to go out.
    Started {
        peer: SocketAddr,
        path: String,
        /// Size of the file on disk (netascii may send more bytes).
        size: u64,
        blksize: u16,
        windowsize: u16,
    },
    /// The client acknowledged the last block.
    Finished {
        peer: SocketAddr,
        path: String,
        /// Payload bytes sent (after netascii conversion).
        bytes: u64,
        elapsed: Duration,
    },
    /// A started transfer stopped: client ERROR, timeout, read error, shutdown.
    Failed {
        peer: SocketAddr,
        path: String,
        reason: String,
    },
    /// A request answered with an ERROR packet: missing file, escape attempt,
    /// WRQ, unsupported mode, too many transfers.
    Refused {
        peer: SocketAddr,
        path: String,
        reason: String,
    },
    /// A datagram on the server port that is not a valid request.
    Malformed {
        peer: SocketAddr,
        error: PacketError,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum TftpError {
    #[error("invalid TFTP configuration: {0}")]
    Config(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}
