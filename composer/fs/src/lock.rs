//! Exclusive advisory locks on a lock file (flock through nix's `Flock`, so
//! no unsafe here). The lock belongs to the open file: dropping the guard,
//! or the process dying however it dies, releases it.

use std::fs::File;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, IoContext};

/// A held lock; derefs to the lock file (to record a pid in it, say).
pub type Guard = Flock<File>;

/// What [`try_exclusive`] found.
#[derive(Debug)]
pub enum TryLock {
    /// The lock is ours.
    Locked(Guard),
    /// Another open file holds it; here is ours back (to read who, say).
    Busy(File),
}

/// Opens `path` for reading and writing, creating it (never truncating: it
/// may hold the holder's pid).
pub fn open(path: &Path) -> Result<File, Error> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .at("opening lock file", path)
}

/// Takes the exclusive lock on `file` (opened from `path`), waiting as long
/// as another holds it.
pub fn exclusive(file: File, path: &Path) -> Result<Guard, Error> {
    let mut file = file;
    loop {
        match Flock::lock(file, FlockArg::LockExclusive) {
            Ok(guard) => return Ok(guard),
            // A signal handler ran while we waited: wait again.
            Err((f, Errno::EINTR)) => file = f,
            Err((_, e)) => return Err(e).at("locking", path),
        }
    }
}

/// Takes the exclusive lock on `file` (opened from `path`) if nobody holds it.
pub fn try_exclusive(file: File, path: &Path) -> Result<TryLock, Error> {
    let mut file = file;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(guard) => return Ok(TryLock::Locked(guard)),
            Err((f, Errno::EWOULDBLOCK)) => return Ok(TryLock::Busy(f)),
            Err((f, Errno::EINTR)) => file = f,
            Err((_, e)) => return Err(e).at("locking", path),
        }
    }
}

/// Opens `path` (see [`open`]) and takes its exclusive lock, waiting.
pub fn open_exclusive(path: &Path) -> Result<Guard, Error> {
    exclusive(open(path)?, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_file_is_busy_until_the_guard_drops() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("lock");
        let guard = open_exclusive(&p).unwrap();
        match try_exclusive(open(&p).unwrap(), &p).unwrap() {
            TryLock::Busy(_) => {}
            TryLock::Locked(_) => panic!("locked twice"),
        }
        drop(guard);
        assert!(matches!(
            try_exclusive(open(&p).unwrap(), &p).unwrap(),
            TryLock::Locked(_)
        ));
    }
}
