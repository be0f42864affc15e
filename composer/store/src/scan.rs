//! Metadata snapshots of a tree and the difference between two of them.
//!
//! `scan` never follows symlinks and does not descend into other file
//! systems (a mount point is recorded, its contents are not).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The type of a file system entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl EntryKind {
    /// The kind encoded in an `st_mode`.
    pub fn from_mode(mode: u32) -> EntryKind {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => EntryKind::Dir,
            libc::S_IFLNK => EntryKind::Symlink,
            libc::S_IFCHR => EntryKind::CharDevice,
            libc::S_IFBLK => EntryKind::BlockDevice,
            libc::S_IFIFO => EntryKind::Fifo,
            libc::S_IFSOCK => EntryKind::Socket,
            _ => EntryKind::File,
        }
    }
}

/// The metadata `changes` compares (plus what `write_layer` needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanEntry {
    pub kind: EntryKind,
    /// Full `st_mode`, type bits included.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub ctime: i64,
    pub ctime_nsec: i64,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub rdev: u64,
}

impl ScanEntry {
    /// From `lstat` metadata.
    pub fn from_metadata(m: &std::fs::Metadata) -> ScanEntry {
        ScanEntry {
            kind: EntryKind::from_mode(m.mode()),
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
            ctime: m.ctime(),
            ctime_nsec: m.ctime_nsec(),
            dev: m.dev(),
            ino: m.ino(),
            nlink: m.nlink(),
            rdev: m.rdev(),
        }
    }

    /// Whether `self` (before) and `after` differ in a way a layer records.
    /// Directories count only mode and owner: their mtime changes whenever a
    /// child does, and children are listed on their own.
    fn differs(&self, after: &ScanEntry) -> bool {
        let owner_mode = self.mode != after.mode || self.uid != after.uid || self.gid != after.gid;
        if self.kind == EntryKind::Dir && after.kind == EntryKind::Dir {
            return owner_mode;
        }
        owner_mode
            || self.kind != after.kind
            || self.size != after.size
            || (self.mtime, self.mtime_nsec) != (after.mtime, after.mtime_nsec)
            || (self.ctime, self.ctime_nsec) != (after.ctime, after.ctime_nsec)
            || self.ino != after.ino
            || self.rdev != after.rdev
    }
}

/// Relative path (no leading `/`, root excluded) -> metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeScan {
    entries: BTreeMap<PathBuf, ScanEntry>,
}

impl TreeScan {
    /// Metadata of one relative path.
    pub fn get(&self, rel: &Path) -> Option<&ScanEntry> {
        self.entries.get(rel)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the tree was empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&Path, &ScanEntry)> {
        self.entries.iter().map(|(p, e)| (p.as_path(), e))
    }
}

fn with_path(e: std::io::Error, what: &str, path: &Path) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Records the metadata of everything under `root`.
pub fn scan(root: &Path) -> std::io::Result<TreeScan> {
    // The root itself is the caller's choice: follow it if it is a symlink.
    let root_meta = std::fs::metadata(root).map_err(|e| with_path(e, "scanning", root))?;
    let mut entries = BTreeMap::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let dir = root.join(&rel);
        let list = match std::fs::read_dir(&dir) {
            Ok(l) => l,
            // Removed since we saw it (e.g. a build step still running).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(with_path(e, "listing", &dir)),
        };
        for item in list {
            let item = item.map_err(|e| with_path(e, "listing", &dir))?;
            let meta = match item.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(with_path(e, "reading metadata of", &item.path())),
            };
            let path = rel.join(item.file_name());
            if meta.is_dir() && meta.dev() == root_meta.dev() {
                pending.push(path.clone());
            }
            entries.insert(path, ScanEntry::from_metadata(&meta));
        }
    }
    Ok(TreeScan { entries })
}

/// What changed between two scans of one tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// Added or modified paths (type changes included), sorted.
    pub changed: Vec<PathBuf>,
    /// Removed paths, topmost only (not the children of a removed dir), sorted.
    pub deleted: Vec<PathBuf>,
}

impl ChangeSet {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.deleted.is_empty()
    }
}

/// The changes from `before` to `after`.
pub fn changes(before: &TreeScan, after: &TreeScan) -> ChangeSet {
    let changed = after
        .entries
        .iter()
        .filter(|(p, a)| before.entries.get(*p).is_none_or(|b| b.differs(a)))
        .map(|(p, _)| p.clone())
        .collect();
    // A removed path is reported when its parent still exists as a
    // directory; otherwise the parent's removal or replacement covers it.
    let deleted = before
        .entries
        .keys()
        .filter(|p| !after.entries.contains_key(*p))
        .filter(|p| match p.parent() {
            None => true,
            Some(parent) if parent.as_os_str().is_empty() => true,
            Some(parent) => after.get(parent).is_some_and(|e| e.kind == EntryKind::Dir),
        })
        .cloned()
        .collect();
    ChangeSet { changed, deleted }
}

#[cfg(test)]
#[path = "scan_tests.rs"]
mod tests;
