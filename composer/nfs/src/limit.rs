//! What one client, or all of them, may hold of the server: connections
//! (each a descriptor), time without a call, time a reply may wait for the
//! client, reply bytes queued per connection.
//!
//! Without these ~1100 idle connections used up the 1024-descriptor soft
//! limit: exports could not be opened any more, so MOUNT answered "not
//! exported" and booted nodes' handles went STALE; and 40 connections that
//! never read their replies pinned a thousand threads and 1 GB.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The server's resource limits; [`Limits::default`] derives them from the
/// process's RLIMIT_NOFILE as it is when called (raise it first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; one more is accepted and closed at once
    /// (so the listen backlog never fills with clients nobody answers).
    pub max_connections: usize,
    /// Connections open at once from one client address (a node's kernel
    /// uses one or two).
    pub max_per_peer: usize,
    /// A connection with no complete call for this long is closed; a
    /// kernel client reconnects transparently when it next has a call.
    pub idle_timeout: Duration,
    /// A connection whose client takes none of a reply for this long is
    /// closed.
    pub write_timeout: Duration,
    /// Bytes of replies being built or waiting to be sent, per connection
    /// (a READ counts its count); past it, no further call of that
    /// connection is read until the client takes its replies.
    pub reply_budget: usize,
    /// Bytes of replies waiting, all connections together, beyond each
    /// connection's first call in flight (which never waits for this, so
    /// clients that fill it cannot stall another's calls, only shorten its
    /// pipeline). Memory at worst: connections x one READ, plus this.
    pub total_reply_budget: usize,
}

/// Calls in flight per connection at most (the Linux client pipelines).
pub const IN_FLIGHT: usize = 32;

/// Descriptors kept for everything but connections: export roots, kept
/// files (files.rs), directory walks and listings on the blocking threads.
const RESERVED_FDS: u64 = 256;

impl Limits {
    /// Limits for a process allowed `nofile` descriptors: at most half of
    /// them (less 256) for connections, so opening an export
    /// or a file never finds the table full.
    pub fn for_descriptors(nofile: u64) -> Limits {
        // At most 4096: each may hold one READ reply (1 MiB) in memory.
        let conns = (nofile / 2).saturating_sub(RESERVED_FDS).clamp(16, 4096) as usize;
        Limits {
            max_connections: conns,
            max_per_peer: 32.min(conns),
            // knfsd closes idle TCP connections after 6 minutes.
            idle_timeout: Duration::from_secs(360),
            write_timeout: Duration::from_secs(60),
            reply_budget: 4 << 20,
            total_reply_budget: 256 << 20,
        }
    }
}

impl Default for Limits {
    /// From the soft RLIMIT_NOFILE now (1024 if it cannot be read).
    fn default() -> Limits {
        let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(1024, |(soft, _)| soft);
        Limits::for_descriptors(soft)
    }
}

/// Counts open connections, in total and per client address.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    open: Arc<Mutex<Open>>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_peer: HashMap<IpAddr, usize>,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Total(usize),
    Peer(usize),
}

impl std::fmt::Display for Full {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Full::Total(n) => write!(f, "{n} connections open, the limit"),
            Full::Peer(n) => write!(f, "{n} connections open from this address, the limit"),
        }
    }
}

/// A connection's place; given back when dropped.
#[derive(Debug)]
pub struct Ticket {
    peer: IpAddr,
    open: Arc<Mutex<Open>>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut o = self.open.lock().unwrap_or_else(|p| p.into_inner());
        o.total = o.total.saturating_sub(1);
        if let Some(n) = o.by_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                o.by_peer.remove(&self.peer);
            }
        }
    }
}

impl Admission {
    pub fn new(limits: Limits) -> Admission {
        Admission {
            limits,
            open: Arc::default(),
        }
    }

    /// A place for one more connection from `peer`, if the limits allow.
    pub fn admit(&self, peer: IpAddr) -> Result<Ticket, Full> {
        let mut o = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if o.total >= self.limits.max_connections {
            return Err(Full::Total(o.total));
        }
        let mine = o.by_peer.get(&peer).copied().unwrap_or(0);
        if mine >= self.limits.max_per_peer {
            return Err(Full::Peer(mine));
        }
        o.total += 1;
        o.by_peer.insert(peer, mine + 1);
        Ok(Ticket {
            peer,
            open: Arc::clone(&self.open),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_from_the_descriptor_limit() {
        let l = Limits::for_descriptors(1024);
        assert_eq!(l.max_connections, 256, "half of 1024, less the reserve");
        assert_eq!(l.max_per_peer, 32);
        assert_eq!(Limits::for_descriptors(64).max_connections, 16, "a floor");
        assert_eq!(Limits::for_descriptors(1 << 20).max_connections, 4096);
        assert!(
            l.reply_budget > crate::proto::RTMAX as usize,
            "one full READ fits"
        );
    }

    #[test]
    fn caps_per_peer_and_in_total_and_gives_places_back() {
        let a = Admission::new(Limits {
            max_connections: 3,
            max_per_peer: 2,
            ..Limits::for_descriptors(1024)
        });
        let (x, y): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let x1 = a.admit(x).unwrap();
        let _x2 = a.admit(x).unwrap();
        assert_eq!(a.admit(x).unwrap_err(), Full::Peer(2));
        let _y1 = a.admit(y).unwrap();
        assert_eq!(a.admit(y).unwrap_err(), Full::Total(3));
        drop(x1);
        let _x3 = a.admit(x).unwrap();
        assert_eq!(a.admit(y).unwrap_err(), Full::Total(3));
    }
}
