//! File handles and what they name: the handle's bytes, the export key's
//! stable hash, and each export's (dev, ino) -> path index, filled by
//! LOOKUP and READDIRPLUS and, after a restart, by one walk of the export.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::FileStat;

use super::*;

/// Bytes in every handle this server issues.
pub const HANDLE_LEN: usize = 32;
const HANDLE_MAGIC: u32 = 0x634e_4631; // "cNF1"

/// At most this many entries are indexed by one walk of an export.
pub const MAX_WALK_ENTRIES: usize = 4_000_000;

/// A decoded file handle: which export, which inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handle {
    pub export: u64,
    pub dev: u64,
    pub ino: u64,
}

impl Handle {
    pub fn encode(&self) -> [u8; HANDLE_LEN] {
        let mut out = [0u8; HANDLE_LEN];
        out[0..4].copy_from_slice(&HANDLE_MAGIC.to_be_bytes());
        // bytes 4..8: reserved, zero
        out[8..16].copy_from_slice(&self.export.to_be_bytes());
        out[16..24].copy_from_slice(&self.dev.to_be_bytes());
        out[24..32].copy_from_slice(&self.ino.to_be_bytes());
        out
    }

    /// `None` for anything this server cannot have issued (BADHANDLE).
    pub fn decode(b: &[u8]) -> Option<Handle> {
        if b.len() != HANDLE_LEN || b[0..4] != HANDLE_MAGIC.to_be_bytes() || b[4..8] != [0; 4] {
            return None;
        }
        let word = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().unwrap_or_default());
        Some(Handle {
            export: word(8),
            dev: word(16),
            ino: word(24),
        })
    }
}

/// FNV-1a: a stable hash (std's hasher may change between Rust releases,
/// and handles must survive a rebuilt server).
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.iter() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        // separator so ("ab","c") != ("a","bc")
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[derive(Debug, Default)]
pub(super) struct Index {
    pub(super) paths: HashMap<(u64, u64), Arc<PathBuf>>,
    pub(super) walked: bool,
}

impl ExportFs {
    pub(super) fn remember(&self, st: &FileStat, rel: &Arc<PathBuf>) {
        if let Ok(mut ix) = self.index.lock() {
            ix.paths.insert((st.st_dev, st.st_ino), Arc::clone(rel));
        }
    }

    fn indexed(&self, h: &Handle) -> Option<Arc<PathBuf>> {
        self.index.lock().ok()?.paths.get(&(h.dev, h.ino)).cloned()
    }

    /// Handle -> object. Misses after a restart rebuild the index by walking
    /// the export once; a handle still unknown after that is STALE.
    pub fn resolve(&self, h: &Handle) -> Result<Obj, u32> {
        if (h.dev, h.ino) == self.root_id {
            return self.root_obj().map_err(errno_stat);
        }
        let rel = match self.indexed(h) {
            Some(rel) => rel,
            None => {
                self.walk()?;
                self.indexed(h).ok_or(NFS3ERR_STALE)?
            }
        };
        match self.stat_rel(&rel) {
            Ok(st) if (st.st_dev, st.st_ino) == (h.dev, h.ino) => Ok(Obj { rel, st }),
            Err(e) if transient_errno(e) => Err(NFS3ERR_JUKEBOX),
            _ => Err(NFS3ERR_STALE),
        }
    }

    /// Indexes the whole export (bounded), once per export and server run:
    /// exports are immutable, so a later miss is a stale handle. A walk cut
    /// short by a transient error (out of descriptors) indexes what it
    /// found, is not marked done, and answers JUKEBOX: the next miss walks
    /// again.
    fn walk(&self) -> Result<(), u32> {
        let Ok(_guard) = self.walk_lock.lock() else {
            return Err(NFS3ERR_SERVERFAULT);
        };
        if self.index.lock().map(|ix| ix.walked).unwrap_or(true) {
            return Ok(());
        }
        let mut found: Vec<((u64, u64), Arc<PathBuf>)> = Vec::new();
        let outcome = self.walk_into(&mut found);
        if let Ok(mut ix) = self.index.lock() {
            for (k, v) in found {
                ix.paths.entry(k).or_insert(v);
            }
            ix.walked = outcome.is_ok();
        }
        outcome
    }

    /// Breadth-first from the root; `Err(JUKEBOX)` on a transient error.
    fn walk_into(&self, found: &mut Vec<((u64, u64), Arc<PathBuf>)>) -> Result<(), u32> {
        let cut = |e: Errno| -> Result<(), u32> {
            if transient_errno(e) {
                Err(NFS3ERR_JUKEBOX)
            } else {
                Ok(())
            }
        };
        let mut queue: VecDeque<(PathBuf, u64)> = VecDeque::new();
        queue.push_back((PathBuf::new(), self.root_id.0));
        while let Some((dir, dev)) = queue.pop_front() {
            let fd = match self.open_beneath(&dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
                Ok(fd) => fd,
                Err(e) => {
                    cut(e)?;
                    continue;
                }
            };
            let mut d = match Dir::from_fd(fd) {
                Ok(d) => d,
                Err(e) => {
                    cut(e)?;
                    continue;
                }
            };
            let mut subdirs = Vec::new();
            for entry in d.iter() {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(e) => {
                        cut(e)?;
                        break;
                    }
                };
                let name = entry.file_name().to_bytes();
                if name == b"." || name == b".." {
                    continue;
                }
                let rel = dir.join(OsStr::from_bytes(name));
                let is_dir = match entry.file_type() {
                    Some(t) => t == Type::Directory,
                    None => match self.stat_rel(&rel) {
                        Ok(st) => st.st_mode & 0o170000 == 0o040000,
                        Err(e) => {
                            cut(e)?;
                            false
                        }
                    },
                };
                if is_dir {
                    subdirs.push(rel.clone());
                }
                found.push(((dev, entry.ino()), Arc::new(rel)));
                if found.len() >= MAX_WALK_ENTRIES {
                    return Ok(());
                }
            }
            for sub in subdirs {
                // A mount point inside the export has another st_dev.
                let sdev = match self.stat_rel(&sub) {
                    Ok(st) => st.st_dev,
                    Err(e) => {
                        cut(e)?;
                        dev
                    }
                };
                queue.push_back((sub, sdev));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn handle_round_trip_and_rejects() {
        let h = Handle {
            export: 1,
            dev: 2,
            ino: u64::MAX,
        };
        assert_eq!(Handle::decode(&h.encode()), Some(h));
        assert_eq!(Handle::decode(&[0; 32]), None);
        assert_eq!(Handle::decode(&h.encode()[..31]), None);
    }

    #[test]
    fn fnv_is_stable() {
        // A changed constant would make every handle in the field STALE.
        assert_eq!(fnv1a(&[]), 0xcbf2_9ce4_8422_2325);
        assert_ne!(fnv1a(&[b"ab", b"c"]), fnv1a(&[b"a", b"bc"]));
    }

    #[test]
    fn resolve_after_fresh_open_walks() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("a/b")).unwrap();
        std::fs::write(t.path().join("a/b/f"), b"x").unwrap();
        let fs = ExportFs::open("/x", t.path()).unwrap();
        let st = fs.stat_rel(Path::new("a/b/f")).unwrap();
        let h = fs.handle(&st);
        let fs2 = ExportFs::open("/x", t.path()).unwrap();
        assert_eq!(fs2.key, fs.key);
        let obj = fs2.resolve(&h).unwrap();
        assert_eq!(obj.rel.as_path(), Path::new("a/b/f"));
        let bogus = Handle { ino: 1, ..h };
        assert_eq!(fs2.resolve(&bogus).unwrap_err(), NFS3ERR_STALE);
    }
}
