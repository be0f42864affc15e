//! Admission control: how many transfers may run at once, overall and per
//! client address.
//!
//! Every transfer holds two descriptors (its socket and its file) for as long
//! as it runs, and a client that never ACKs keeps it running for the whole
//! retransmission schedule. Without a cap, ~500 unanswered requests exhaust a
//! 1024-descriptor limit and every other server in the process (NFS) fails
//! with EMFILE. The per-address cap keeps one machine (or one spoofed
//! address) from taking all global slots; PXE needs few per node (pxelinux.0,
//! its config, kernel, initrd; at most a couple at a time).
//!
//! A slot is taken on the server loop before anything is opened, and given
//! back when the transfer future is dropped: on completion, failure, abort
//! or shutdown alike.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Why a request gets no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Busy {
    /// `max_transfers` are running.
    Server,
    /// `max_per_peer` are running for this address.
    Peer,
}

#[derive(Debug)]
pub(crate) struct Slots {
    max_total: usize,
    max_per_peer: usize,
    /// Running transfers per client address; an address is removed when its
    /// count drops to zero, so the map never holds more than `max_total` keys.
    state: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One running transfer's claim; released on drop.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<Slots>,
    peer: IpAddr,
}

impl Slots {
    pub(crate) fn new(max_total: usize, max_per_peer: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max_total,
            max_per_peer,
            state: Mutex::new((0, HashMap::new())),
        })
    }

    /// Claims a slot for `peer`, or says which limit is reached.
    pub(crate) fn acquire(self: &Arc<Slots>, peer: IpAddr) -> Result<Slot, Busy> {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_peer) = &mut *guard;
        if *total >= self.max_total {
            return Err(Busy::Server);
        }
        let n = per_peer.entry(peer).or_insert(0);
        if *n >= self.max_per_peer {
            return Err(Busy::Peer);
        }
        *n += 1;
        *total += 1;
        Ok(Slot {
            slots: self.clone(),
            peer,
        })
    }

    /// Transfers running now (for tests and the shutdown path).
    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).0
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut guard = self.slots.state.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_peer) = &mut *guard;
        *total = total.saturating_sub(1);
        if let Some(n) = per_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                per_peer.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_total_and_per_peer_and_releases_on_drop() {
        let s = Slots::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        let a1 = s.acquire(a).unwrap();
        let _a2 = s.acquire(a).unwrap();
        assert_eq!(s.acquire(a).unwrap_err(), Busy::Peer);
        let _b1 = s.acquire(b).unwrap();
        assert_eq!(s.acquire(c).unwrap_err(), Busy::Server);
        drop(a1);
        assert_eq!(s.running(), 2);
        let _c1 = s.acquire(c).unwrap();
        assert_eq!(s.acquire(a).unwrap_err(), Busy::Server);
    }
}
