//! The publish tree's one lock, `TREE/.lock`: publish, rollback, gc, regen
//! and every writer of per-MAC pxelinux entries hold it while they change
//! the tree.

use crate::Layout;
use compose_fs::IoContext;
use std::fs::OpenOptions;
use std::io::ErrorKind::{PermissionDenied, ReadOnlyFilesystem};

/// Proof that the tree's lock is held: functions that change the tree take
/// a `&TreeLock`, so they cannot be called without it. Dropping it (or the
/// process dying however it dies) releases the lock.
#[derive(Debug)]
pub struct TreeLock {
    _guard: compose_fs::lock::Guard,
}

impl TreeLock {
    /// Takes the tree's lock, waiting while another process holds it.
    ///
    /// compose serve runs with the tree read-only but for `state/` and
    /// `tftp/pxelinux.cfg/` (the unit's ProtectSystem=strict): on a
    /// read-only file system (or without write permission) an existing lock
    /// file is opened read-only, which flock(2) accepts just the same.
    pub fn acquire(layout: &Layout) -> Result<TreeLock, compose_fs::Error> {
        let path = layout.lock_file();
        let file = match compose_fs::lock::open(&path) {
            Ok(f) => f,
            Err(e) if matches!(e.kind(), ReadOnlyFilesystem | PermissionDenied) => {
                OpenOptions::new()
                    .read(true)
                    .open(&path)
                    .at("opening lock file read-only", &path)?
            }
            Err(e) => return Err(e),
        };
        Ok(TreeLock {
            _guard: compose_fs::lock::exclusive(file, &path)?,
        })
    }
}
