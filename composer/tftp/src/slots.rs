//! Admission control: how many transfers may run at once, overall and per
//! client address, and which one gives way when all are taken.
//!
//! Every transfer holds two descriptors (its socket and its file) for as long
//! as it runs, and a client that never ACKs keeps it running for the whole
//! retransmission schedule. Without a cap, ~500 unanswered requests exhaust a
//! 1024-descriptor limit and every other server in the process (NFS) fails
//! with EMFILE. The per-address cap keeps one machine from taking all global
//! slots; PXE needs few per node (pxelinux.0, its config, kernel, initrd; at
//! most a couple at a time).
//!
//! A flood from many addresses (or spoofed ones) can still fill every global
//! slot. So when all are taken, a new request evicts the oldest transfer
//! whose client has not ACKed anything yet: a real client ACKs its first
//! packet within a round trip, a flood never does, so the flood's transfers
//! give way and a booting node's get through. An evicted transfer keeps its
//! descriptors until its worker runs the abort, so evictions pause while
//! `max_total / 8` are still draining: whatever the flood, at most
//! `max_total * 9 / 8` transfers hold descriptors.
//!
//! A slot is taken on the server loop before anything is opened, and given
//! back when the transfer future is dropped (completion, failure, abort,
//! shutdown) or at once when it is evicted.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::task::AbortHandle;

/// Why a request gets no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Busy {
    /// `max_transfers` are running and every one has been ACKed.
    Server,
    /// `max_per_peer` are running for this address.
    Peer,
}

struct Entry {
    peer: IpAddr,
    /// For the event that reports an eviction.
    addr: SocketAddr,
    path: String,
    started: Instant,
    acked: Arc<AtomicBool>,
    abort: Option<AbortHandle>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// Evicted transfers whose task has not been dropped yet: they still
    /// hold their descriptors until their worker runs the abort.
    draining: usize,
    entries: HashMap<u64, Entry>,
    /// Running transfers per client address; an address is removed when its
    /// count drops to zero, so the map never holds more than `max_total` keys.
    per_peer: HashMap<IpAddr, usize>,
}

impl State {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let e = self.entries.remove(&id)?;
        if let Some(n) = self.per_peer.get_mut(&e.peer) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&e.peer);
            }
        }
        Some(e)
    }
}

pub(crate) struct Slots {
    max_total: usize,
    max_per_peer: usize,
    /// Most evicted transfers still draining; bounds the transfers holding
    /// descriptors at `max_total + max_draining` under any flood.
    max_draining: usize,
    state: Mutex<State>,
}

/// A transfer that gave way to a new request: its client and file.
pub(crate) type Evicted = (SocketAddr, String);

/// One running transfer's claim; released on drop.
pub(crate) struct Slot {
    slots: Arc<Slots>,
    id: u64,
    acked: Arc<AtomicBool>,
}

impl Slots {
    pub(crate) fn new(max_total: usize, max_per_peer: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max_total,
            max_per_peer,
            max_draining: (max_total / 8).max(1),
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims a slot for `peer`, evicting the oldest never-ACKed transfer
    /// when all are taken, or says which limit is reached.
    pub(crate) fn acquire(
        self: &Arc<Slots>,
        addr: SocketAddr,
        path: &str,
    ) -> Result<(Slot, Option<Evicted>), Busy> {
        let peer = addr.ip();
        let mut st = self.lock();
        let mut evicted = None;
        if st.per_peer.get(&peer).copied().unwrap_or(0) >= self.max_per_peer {
            return Err(Busy::Peer);
        }
        if st.entries.len() >= self.max_total {
            if st.draining >= self.max_draining {
                return Err(Busy::Server);
            }
            // Linear in max_transfers, only when full: a few hundred
            // comparisons per request at worst.
            let victim = st
                .entries
                .iter()
                .filter(|(_, e)| !e.acked.load(Ordering::Relaxed))
                .min_by_key(|(_, e)| e.started)
                .map(|(id, _)| *id);
            let e = victim.and_then(|id| st.remove(id)).ok_or(Busy::Server)?;
            // Always set by now: the server loop admits one request at a
            // time and records the handle right after spawning.
            if let Some(h) = e.abort {
                h.abort();
            }
            st.draining += 1;
            evicted = Some((e.addr, e.path));
        }
        let id = st.next_id;
        st.next_id += 1;
        let acked = Arc::new(AtomicBool::new(false));
        st.entries.insert(
            id,
            Entry {
                peer,
                addr,
                path: path.to_owned(),
                started: Instant::now(),
                acked: acked.clone(),
                abort: None,
            },
        );
        *st.per_peer.entry(peer).or_insert(0) += 1;
        let slot = Slot {
            slots: self.clone(),
            id,
            acked,
        };
        Ok((slot, evicted))
    }

    /// Records how to stop transfer `id` if it is evicted.
    pub(crate) fn set_abort(&self, id: u64, h: AbortHandle) {
        if let Some(e) = self.lock().entries.get_mut(&id) {
            e.abort = Some(h);
        }
    }

    /// Transfers holding a slot now.
    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        self.lock().entries.len()
    }
}

impl Slot {
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The client ACKed something: it is real, and no longer evictable.
    #[cfg(test)]
    fn mark_acked(&self) {
        self.acked.store(true, Ordering::Relaxed);
    }

    /// The ACK flag, for the transfer task to set on the first ACK.
    pub(crate) fn acked_flag(&self) -> Arc<AtomicBool> {
        self.acked.clone()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut st = self.slots.lock();
        // Gone already if it was evicted: then it was draining until now.
        if st.remove(self.id).is_none() {
            st.draining = st.draining.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_peer_evicts_unacked_and_releases_on_drop() {
        let s = Slots::new(3, 2);
        let a: SocketAddr = "10.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:1000".parse().unwrap();
        let c: SocketAddr = "10.0.0.3:1000".parse().unwrap();
        let take = |addr| s.acquire(addr, "f").map(|(slot, _)| slot);
        let a1 = take(a).unwrap();
        let a2 = take(a).unwrap();
        assert_eq!(take(a).err(), Some(Busy::Peer));
        let b1 = take(b).unwrap();
        a2.mark_acked();
        b1.mark_acked();
        // Full: the oldest unacked (a1) gives way, its count with it.
        let (c1, evicted) = s.acquire(c, "g").unwrap();
        assert_eq!(evicted, Some((a, "f".to_owned())));
        assert_eq!(s.running(), 3);
        // a1's late drop (its task aborted) releases nobody else's slot.
        drop(a1);
        assert_eq!(s.running(), 3);
        // All ACKed: nobody to evict.
        c1.mark_acked();
        assert_eq!(take(c).err(), Some(Busy::Server));
        drop((a2, b1, c1));
        assert_eq!(s.running(), 0);
    }

    #[test]
    fn evictions_wait_for_the_evicted_to_drain() {
        // 8 slots, so at most one evicted transfer may still be draining.
        let s = Slots::new(8, 8);
        let a: SocketAddr = "10.0.0.1:1000".parse().unwrap();
        let mut held: Vec<Slot> = (0..8).map(|_| s.acquire(a, "f").unwrap().0).collect();
        let b: SocketAddr = "10.0.0.2:1000".parse().unwrap();
        let (n1, evicted) = s.acquire(b, "g").unwrap();
        assert!(evicted.is_some());
        // The evicted task has not dropped its slot yet: no second eviction.
        assert_eq!(s.acquire(b, "g").err(), Some(Busy::Server));
        // Its drop (the abort ran) makes room for the next eviction.
        let victim = held.remove(0);
        drop(victim);
        let (n2, evicted) = s.acquire(b, "g").unwrap();
        assert!(evicted.is_some());
        assert_eq!(s.running(), 8);
        drop((held, n1, n2));
        assert_eq!(s.running(), 0);
        // The second victim (among `held`) has drained too.
        assert_eq!(s.lock().draining, 0);
    }
}
