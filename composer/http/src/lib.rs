//! compose's read-only HTTP/1.1 server for boot files: GET and HEAD, single
//! byte ranges, strong ETags, cache headers by path class, paths confined to
//! its root.
//!
//! - [`path`]: strict, single percent-decoding into a relative path (pure).
//! - `range.rs`: the Range header (pure).
//! - `confine.rs`: statuses, ETags and private files around compose-confine
//!   (openat2(RESOLVE_BENEATH) under the publish tree, an allow-list of
//!   served directories, world-readable regular files only).
//! - `handler.rs`: one request to one response; per-client private files
//!   ([`PrivateFiles`]) and the `/status.json` and `/metrics` hooks.
//! - [`HttpServer`] / [`serve`]: the accept loop with connection caps and
//!   timeouts, hyper doing HTTP/1.1 on each connection.
//!
//! The library never prints: it reports [`HttpEvent`]s through a channel and
//! the caller decides what to log.
//!
//! How `compose serve` is meant to run it (addresses from RFC 5737):
//!
//! ```no_run
//! # async fn demo() -> Result<(), compose_http::HttpError> {
//! use compose_http::{HttpConfig, HttpServer};
//! let mut cfg = HttpConfig::new("/srv/compose/tftp", "192.0.2.1:80".parse().unwrap());
//! cfg.confine = "/srv/compose".into(); // `tftp/images -> ../images` stays inside
//! cfg.allow = vec!["/srv/compose/images".into()];
//! let (mut server, _addr) = HttpServer::bind(cfg).await?;
//! server.bind_to_device("eth1")?;
//! server.set_status(|| br#"{"nodes":[]}"#.to_vec());
//! server.set_metrics(|| "compose_nodes 0\n".to_owned());
//! // Kept by the caller and refreshed after each cluster regen.
//! let private = server.private_files();
//! private.insert(
//!     "nodes/n01/overlay.cpio",
//!     "/srv/compose/cluster/boot/n01/overlay.cpio",
//!     "192.0.2.11".parse().unwrap(),
//! );
//! let (events, _log) = tokio::sync::mpsc::unbounded_channel();
//! server.run(events, std::future::pending()).await
//! # }
//! ```

mod body;
mod confine;
mod deadline;
mod handler;
mod metrics;
pub mod path;
mod range;
mod server;

use std::net::SocketAddr;
use std::time::Duration;

pub use handler::PrivateFiles;
pub use server::{serve, HttpConfig, HttpServer};

/// What happened, for the caller to log. `path` is the URL path as sent
/// (still percent-encoded), empty for a connection refused before a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpEvent {
    /// A response went out whole: a file body to its last byte, a 304, a
    /// HEAD, a hook's content.
    Finished {
        peer: SocketAddr,
        path: String,
        bytes: u64,
        status: u16,
        elapsed: Duration,
    },
    /// A file body stopped early: the client went away, a read failed.
    Failed {
        peer: SocketAddr,
        path: String,
        bytes: u64,
        reason: String,
    },
    /// A request or connection answered with an error status: missing file,
    /// escape attempt, private file from another address, bad method,
    /// unsatisfiable range, too many connections (503).
    Refused {
        peer: SocketAddr,
        path: String,
        status: u16,
        reason: String,
    },
    /// accept(2) failed (e.g. out of descriptors); the loop goes on.
    AcceptError { reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("invalid HTTP configuration: {0}")]
    Config(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}
