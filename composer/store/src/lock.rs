//! The store lock: one build at a time per store.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;

use compose_fs::lock::{self, TryLock};

use crate::error::{IoContext, StoreError};
use crate::layout::Store;

/// Holds the exclusive lock on `compose/lock`. Released on drop (closing the
/// file releases the flock, also when the process is killed).
#[derive(Debug)]
pub struct StoreLock {
    _guard: lock::Guard,
    path: PathBuf,
}

impl StoreLock {
    /// The lock file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

enum Wait {
    Block,
    NoWait,
}

impl Store {
    /// Takes the store lock, blocking while another process holds it (use
    /// [`Store::try_lock`] first to tell the user you are waiting). Once held,
    /// removes leftovers in `compose/tmp` from killed builds.
    ///
    /// The lock is per open file: a second `lock` in the same process blocks
    /// forever, so take it once.
    pub fn lock(&self) -> Result<StoreLock, StoreError> {
        self.lock_with(Wait::Block)
    }

    /// Takes the store lock or fails at once with [`StoreError::Locked`]
    /// (naming the holder's pid when known).
    pub fn try_lock(&self) -> Result<StoreLock, StoreError> {
        self.lock_with(Wait::NoWait)
    }

    fn lock_with(&self, wait: Wait) -> Result<StoreLock, StoreError> {
        let path = self.compose_dir().join("lock");
        let file = lock::open(&path)?;
        let mut guard = match wait {
            Wait::Block => lock::exclusive(file, &path)?,
            Wait::NoWait => match lock::try_exclusive(file, &path)? {
                TryLock::Locked(guard) => guard,
                TryLock::Busy(mut file) => {
                    return Err(StoreError::Locked {
                        holder: holder(&mut file),
                        path: self.root().to_path_buf(),
                    })
                }
            },
        };
        record_pid(&mut guard).at("writing pid to", &path)?;
        self.clean_tmp()?;
        Ok(StoreLock {
            _guard: guard,
            path,
        })
    }

    /// Removes everything in `compose/tmp`; only safe while holding the lock.
    fn clean_tmp(&self) -> Result<(), StoreError> {
        let tmp = self.tmp_dir();
        let entries = match std::fs::read_dir(&tmp) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::io("listing", tmp, e)),
        };
        for entry in entries {
            let path = entry.at("listing", &tmp)?.path();
            let is_dir = path.symlink_metadata().map(|m| m.is_dir()).unwrap_or(false);
            let res = if is_dir {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            res.at("removing stale temp entry", path)?;
        }
        Ok(())
    }
}

fn record_pid(file: &mut File) -> std::io::Result<()> {
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())
}

fn holder(file: &mut File) -> String {
    let mut s = String::new();
    let _ = file.read_to_string(&mut s);
    match s.trim().parse::<u32>() {
        Ok(pid) => format!(" (pid {pid})"),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_excludes_and_cleans_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        std::fs::create_dir_all(store.tmp_dir().join("stale/sub")).unwrap();
        std::fs::write(store.tmp_dir().join("blob-x"), b"x").unwrap();
        let guard = store.lock().unwrap();
        assert_eq!(std::fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
        let err = store.try_lock().unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        drop(guard);
        store.try_lock().unwrap();
    }
}
