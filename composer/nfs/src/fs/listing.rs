//! Directory listings for READDIR: sorted so cookies (positions) are
//! stable, and cached per directory while it is unchanged.

use std::sync::Arc;

use nix::dir::Dir;
use nix::fcntl::OFlag;
use nix::sys::stat::FileStat;

use super::*;

/// A directory's sorted entries, as of one state of the directory.
/// READDIR pages through a directory with cookies (positions), one call per
/// few hundred entries; without this cache every call re-read and re-sorted
/// the whole directory, so listing 20,000 entries took 30x longer than
/// nfs-ganesha (ci/bench/serve.sh, BENCHMARKS.md).
#[derive(Debug)]
pub(super) struct Listing {
    /// mtime and ctime (s, ns) and size: any change to the entries moves
    /// at least the mtime, and then the listing is read again.
    state: [i64; 5],
    entries: Arc<Entries>,
}

/// (name, inode) of each entry, `.` and `..` first, then sorted by name.
pub type Entries = Vec<(Vec<u8>, u64)>;

/// Directories whose listings are kept; past that the cache starts over
/// (a boot reads a handful of directories, not thousands).
const LISTINGS: usize = 64;
/// Age (of mtime and ctime) before a directory's listing is cached.
const SETTLED_SECS: i64 = 2;

fn dir_state(st: &FileStat) -> [i64; 5] {
    [
        st.st_mtime,
        st.st_mtime_nsec,
        st.st_ctime,
        st.st_ctime_nsec,
        st.st_size,
    ]
}

impl ExportFs {
    /// Directory entries sorted by name, `.` and `..` first:
    /// (name, inode). Sorted so cookies (positions) are stable.
    /// Cached while the directory's mtime, ctime and size stay the same.
    pub fn list(&self, dir: &Obj) -> Result<Arc<Entries>, u32> {
        if dir.st.st_mode & 0o170000 != 0o040000 {
            return Err(NFS3ERR_NOTDIR);
        }
        let id = (dir.st.st_dev, dir.st.st_ino);
        let state = dir_state(&dir.st);
        let lock = || self.listings.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = lock().get(&id).filter(|l| l.state == state) {
            return Ok(l.entries.clone());
        }
        let entries = Arc::new(self.read_listing(dir)?);
        // Timestamps tick coarsely (jiffies): a directory changed in the
        // same tick as this read would keep its mtime. Cache only listings
        // of directories left alone for a while (exports are immutable
        // published roots, so that is nearly all of them).
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if now - dir.st.st_mtime.max(dir.st.st_ctime) < SETTLED_SECS {
            return Ok(entries);
        }
        let mut cache = lock();
        if cache.len() >= LISTINGS {
            cache.clear();
        }
        let listing = Listing {
            state,
            entries: entries.clone(),
        };
        cache.insert(id, listing);
        Ok(entries)
    }

    fn read_listing(&self, dir: &Obj) -> Result<Entries, u32> {
        let fd = self
            .open_beneath(&dir.rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
            .map_err(errno_stat)?;
        let mut d = Dir::from_fd(fd).map_err(errno_stat)?;
        let mut names: Vec<(Vec<u8>, u64)> = Vec::new();
        for entry in d.iter() {
            let entry = entry.map_err(errno_stat)?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push((name.to_vec(), entry.ino()));
            }
        }
        names.sort();
        let parent = self.parent(dir)?;
        let mut out = Vec::with_capacity(names.len() + 2);
        out.push((b".".to_vec(), dir.st.st_ino));
        out.push((b"..".to_vec(), parent.st.st_ino));
        out.extend(names);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_is_cached_until_the_directory_changes() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("b"), b"").unwrap();
        let fs = ExportFs::open("/x", t.path()).unwrap();
        let fresh = fs.list(&fs.root_obj().unwrap()).unwrap();
        let again = fs.list(&fs.root_obj().unwrap()).unwrap();
        assert!(!Arc::ptr_eq(&fresh, &again), "just changed: not cached");
        // ctime cannot be set back, so let the directory settle for real.
        std::thread::sleep(std::time::Duration::from_millis(2100));
        let names = |l: &[(Vec<u8>, u64)]| l.iter().map(|e| e.0.clone()).collect::<Vec<_>>();
        let first = fs.list(&fs.root_obj().unwrap()).unwrap();
        assert_eq!(names(&first), [&b"."[..], b"..", b"b"]);
        let again = fs.list(&fs.root_obj().unwrap()).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "unchanged directory: cached");
        std::fs::write(t.path().join("a"), b"").unwrap();
        let changed = fs.list(&fs.root_obj().unwrap()).unwrap();
        assert_eq!(names(&changed), [&b"."[..], b"..", b"a", b"b"]);
    }
}
