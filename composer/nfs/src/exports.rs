//! The exports a server has open, by key: opened on MNT and when a handle
//! names one not open yet, forgotten once no longer published, kept
//! through shortages (out of descriptors) so handles never go STALE for
//! want of a descriptor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::fs::*;
use crate::proto::Ctx;

impl Ctx {
    /// Opens (or reuses) the export; reusing keeps its inode index.
    pub(crate) fn open_export(&self, ex: &crate::Export) -> std::io::Result<Arc<ExportFs>> {
        let mut fresh = ExportFs::open(&ex.path, &ex.dir)?;
        fresh.clients = ex.clients.clone();
        fresh.insecure = ex.insecure;
        let mut map = self
            .exports
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?;
        match map.get(&fresh.key) {
            Some(old) if old.clients == fresh.clients && old.insecure == fresh.insecure => {
                Ok(Arc::clone(old))
            }
            // New, or its client list or port rule changed: the new rule
            // holds for every handle from now on.
            _ => {
                let fresh = Arc::new(fresh);
                map.insert(fresh.key, Arc::clone(&fresh));
                Ok(fresh)
            }
        }
    }

    /// The export a handle names. An unknown key (e.g. after a restart)
    /// reopens every export the source lists now; exports no longer listed
    /// (or whose directory was replaced) are forgotten, but one that could
    /// not be reopened for want of descriptors or memory is kept, and its
    /// handles answer JUKEBOX (retry later), never STALE: a booted node
    /// treats STALE as final. Keys found nowhere are remembered a moment
    /// ([`Misses`]), so a client repeating a dead handle does not re-list
    /// every export per call.
    pub(crate) fn export_of(&self, key: u64) -> Result<Arc<ExportFs>, u32> {
        if let Some(e) = self
            .exports
            .lock()
            .map_err(|_| NFS3ERR_SERVERFAULT)?
            .get(&key)
        {
            return Ok(Arc::clone(e));
        }
        if self.misses.recent(key) {
            return Err(NFS3ERR_STALE);
        }
        let listed = self.source.exports().map_err(|_| NFS3ERR_JUKEBOX)?;
        let mut opened: HashMap<&str, u64> = HashMap::new();
        let mut transient = false;
        for ex in &listed {
            match self.open_export(ex) {
                Ok(e) => {
                    opened.insert(&ex.path, e.key);
                }
                Err(e) if is_transient(&e) => transient = true,
                Err(_) => {}
            }
        }
        let mut map = self.exports.lock().map_err(|_| NFS3ERR_SERVERFAULT)?;
        map.retain(|k, fs| match opened.get(fs.path.as_str()) {
            Some(now) => now == k,
            // Listed but not opened: kept only if that was transient.
            None => transient && listed.iter().any(|ex| ex.path == fs.path),
        });
        match map.get(&key) {
            Some(e) => Ok(Arc::clone(e)),
            None if transient => Err(NFS3ERR_JUKEBOX),
            None => {
                self.misses.insert(key);
                Err(NFS3ERR_STALE)
            }
        }
    }

    /// The export a handle names if it is open already (never reopens).
    pub(crate) fn open_export_of(&self, key: u64) -> Option<Arc<ExportFs>> {
        self.exports.lock().ok()?.get(&key).cloned()
    }
}

/// Export keys no listed export has, remembered for [`Misses::TTL`]: a
/// handle of an unpublished root is STALE without listing every export
/// again on each of its calls. Bounded: past [`Misses::MAX`] it starts over.
#[derive(Debug, Default)]
pub(crate) struct Misses(Mutex<HashMap<u64, std::time::Instant>>);

impl Misses {
    const TTL: std::time::Duration = std::time::Duration::from_secs(2);
    const MAX: usize = 1024;

    pub(crate) fn recent(&self, key: u64) -> bool {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&key).is_some_and(|at| at.elapsed() < Self::TTL)
    }

    pub(crate) fn insert(&self, key: u64) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= Self::MAX {
            m.retain(|_, at| at.elapsed() < Self::TTL);
            if m.len() >= Self::MAX {
                m.clear();
            }
        }
        m.insert(key, std::time::Instant::now());
    }
}
