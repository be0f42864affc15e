//! Descriptors of recently read regular files, by (device, inode).
//!
//! A READ used to resolve its handle (openat2 of the parent directory and
//! fstatat), open the file (openat2 again) and fstat it: four path-walking
//! system calls per 1 MiB. With the descriptor kept, a READ is one fstat
//! and the read. An open descriptor pins its inode, so the inode number
//! cannot be reused while it is here: the descriptor is the file the handle
//! names for as long as that file exists; one whose link count dropped to
//! zero (deleted) is forgotten and the READ resolves the handle again.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};

use nix::sys::stat::{fstat, FileStat};

/// Files kept open per export: a boot reads a few hundred files, one or a
/// few at a time; 64 covers the ones being read now.
const KEPT: usize = 64;

#[derive(Debug, Default)]
pub struct OpenFiles {
    inner: Mutex<Lru>,
}

#[derive(Debug, Default)]
struct Lru {
    /// (dev, ino) -> (descriptor, last use)
    map: HashMap<(u64, u64), (Arc<OwnedFd>, u64)>,
    tick: u64,
}

impl OpenFiles {
    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The kept descriptor of (dev, ino) with its current stat, if it still
    /// is that regular file and still linked somewhere.
    pub fn get(&self, id: (u64, u64)) -> Option<(Arc<OwnedFd>, FileStat)> {
        let fd = {
            let mut lru = self.lock();
            lru.tick += 1;
            let tick = lru.tick;
            let (fd, used) = lru.map.get_mut(&id)?;
            *used = tick;
            Arc::clone(fd)
        };
        match fstat(fd.as_fd()) {
            Ok(st)
                if (st.st_dev, st.st_ino) == id
                    && st.st_nlink > 0
                    && st.st_mode & 0o170000 == 0o100000 =>
            {
                Some((fd, st))
            }
            _ => {
                self.lock().map.remove(&id);
                None
            }
        }
    }

    /// Keeps `fd` as (dev, ino), dropping the least recently used past
    /// [`KEPT`].
    pub fn insert(&self, id: (u64, u64), fd: Arc<OwnedFd>) {
        let mut lru = self.lock();
        lru.tick += 1;
        let tick = lru.tick;
        if lru.map.len() >= KEPT && !lru.map.contains_key(&id) {
            let oldest = lru
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                lru.map.remove(&k);
            }
        }
        lru.map.insert(id, (fd, tick));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &std::path::Path) -> ((u64, u64), Arc<OwnedFd>) {
        let fd: OwnedFd = std::fs::File::open(path).unwrap().into();
        let st = fstat(fd.as_fd()).unwrap();
        ((st.st_dev, st.st_ino), Arc::new(fd))
    }

    #[test]
    fn keeps_recent_files_and_forgets_deleted_ones() {
        let t = tempfile::tempdir().unwrap();
        let files = OpenFiles::default();
        let mut ids = Vec::new();
        for i in 0..=KEPT {
            let p = t.path().join(format!("f{i}"));
            std::fs::write(&p, b"x").unwrap();
            let (id, fd) = open(&p);
            files.insert(id, fd);
            ids.push(id);
            if i == 0 {
                // used again: not the least recently used any more
                assert!(files.get(ids[0]).is_some());
            }
            if i == 1 {
                assert!(files.get(ids[0]).is_some());
            }
        }
        assert!(files.get(ids[0]).is_some(), "recently used: kept");
        assert!(files.get(ids[1]).is_none(), "least recently used: dropped");
        assert!(files.get(ids[KEPT]).is_some());
        std::fs::remove_file(t.path().join(format!("f{KEPT}"))).unwrap();
        assert!(files.get(ids[KEPT]).is_none(), "deleted: forgotten");
    }
}
