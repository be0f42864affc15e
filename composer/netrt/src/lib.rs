//! Runtime and sockets for compose's servers (compose-tftp, compose-nfs,
//! compose-http): how their connections run and which interface they listen
//! on, written once.
//!
//! Two primitives, one crate: each is a screenful, both sit between a
//! server's accept loop and the kernel, and they share the servers'
//! dependencies (tokio, nix), so a crate apiece would only add manifests.
//! Nothing here knows a protocol; errors are returned raw for each server
//! to name in its own terms.
//! - [`Pool`]: one thread per CPU, each with its own single-threaded tokio
//!   runtime (pool.rs says why);
//! - [`bind_to_device`]: SO_BINDTODEVICE on a listening socket
//!   (socket.rs says why).

mod pool;
mod socket;

pub use pool::Pool;
pub use socket::bind_to_device;
