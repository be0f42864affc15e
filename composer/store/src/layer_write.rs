//! Deterministic layer tars from a root file system.
//!
//! Same tree + same options => byte-identical output: entries sorted by
//! name bytes (a directory's `name/` sorts right before its children),
//! numeric owners only, exact mode bits, mtimes clamped to
//! SOURCE_DATE_EPOCH, an allow-list of xattrs.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsStr;
use std::fs::Metadata;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, StoreError};
use crate::scan::{scan, ChangeSet, EntryKind};
use crate::tarfmt::{self, kind, Fields};

/// How to write a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerOptions {
    /// Later mtimes are clamped to this (seconds since 1970).
    pub source_date_epoch: i64,
}

/// Which part of the tree goes into the layer.
#[derive(Debug, Clone, Copy)]
pub enum Selection<'a> {
    /// Everything under the root.
    All,
    /// The changed paths (and their parent directories) plus whiteouts for
    /// deleted ones.
    Changes(&'a ChangeSet),
}

/// What a layer holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerStats {
    /// Tar entries (whiteouts included, PAX headers not).
    pub entries: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Xattrs worth keeping in an image: file capabilities and user data.
/// Everything else (selinux labels, ACLs of the build host...) is dropped.
pub(crate) fn xattr_allowed(name: &[u8]) -> bool {
    name == b"security.capability" || name.starts_with(b"user.")
}

const WHITEOUT_PREFIX: &str = ".wh.";

enum Item {
    Path(PathBuf),
    Whiteout,
}

/// Writes a layer tar of `root` to `out`.
pub fn write_layer<W: Write>(
    root: &Path,
    sel: Selection,
    opts: &LayerOptions,
    out: W,
) -> Result<LayerStats, StoreError> {
    write_layer_as(root, sel, opts, out, None)
}

/// `write_layer`, optionally recording every entry as owned by `owner`:
/// lets unprivileged tests pin digests independent of who runs them.
pub(crate) fn write_layer_as<W: Write>(
    root: &Path,
    sel: Selection,
    opts: &LayerOptions,
    out: W,
    owner: Option<(u64, u64)>,
) -> Result<LayerStats, StoreError> {
    let epoch = clamp_epoch(opts.source_date_epoch)?;
    let items = select(root, sel)?;
    let mut w = Writer {
        root,
        out: Counting {
            inner: out,
            count: 0,
        },
        epoch,
        links: HashMap::new(),
        entries: 0,
        owner,
    };
    for (name, item) in &items {
        match item {
            Item::Path(rel) => w.entry(name, rel)?,
            Item::Whiteout => w.whiteout(name)?,
        }
    }
    w.out
        .write_all(&tarfmt::TRAILER)
        .at("writing layer of", root)?;
    w.out.flush().at("writing layer of", root)?;
    Ok(LayerStats {
        entries: w.entries,
        bytes: w.out.count,
    })
}

fn clamp_epoch(epoch: i64) -> Result<u64, StoreError> {
    match u64::try_from(epoch) {
        Ok(e) if e <= tarfmt::MAX_MTIME => Ok(e),
        _ => Err(StoreError::InvalidSpec {
            reason: format!(
                "source_date_epoch {epoch} is outside 0..={}",
                tarfmt::MAX_MTIME
            ),
        }),
    }
}

/// The entries to write, keyed (and so sorted) by tar name.
fn select(root: &Path, sel: Selection) -> Result<Vec<(Vec<u8>, Item)>, StoreError> {
    let mut out: Vec<(Vec<u8>, Item)> = Vec::new();
    let paths: BTreeSet<PathBuf> = match sel {
        Selection::All => {
            let tree = scan(root).at("scanning", root)?;
            tree.iter().map(|(p, _)| p.to_path_buf()).collect()
        }
        Selection::Changes(set) => {
            let mut paths: BTreeSet<PathBuf> = set.changed.iter().cloned().collect();
            for p in set.changed.iter().chain(&set.deleted) {
                paths.extend(
                    p.ancestors()
                        .skip(1)
                        .filter(|a| !a.as_os_str().is_empty())
                        .map(Path::to_path_buf),
                );
            }
            for d in &set.deleted {
                out.push((whiteout_name(d), Item::Whiteout));
            }
            paths
        }
    };
    for rel in paths {
        let is_dir = root.join(&rel).symlink_metadata().is_ok_and(|m| m.is_dir());
        let mut name = rel.as_os_str().as_bytes().to_vec();
        if is_dir {
            name.push(b'/');
        }
        out.push((name, Item::Path(rel)));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    Ok(out)
}

fn whiteout_name(deleted: &Path) -> Vec<u8> {
    let base = deleted.file_name().unwrap_or(OsStr::new(""));
    let mut name = Vec::new();
    if let Some(parent) = deleted.parent().filter(|p| !p.as_os_str().is_empty()) {
        name.extend_from_slice(parent.as_os_str().as_bytes());
        name.push(b'/');
    }
    name.extend_from_slice(WHITEOUT_PREFIX.as_bytes());
    name.extend_from_slice(base.as_bytes());
    name
}

struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct Writer<'r, W> {
    root: &'r Path,
    out: Counting<W>,
    epoch: u64,
    /// (dev, ino) -> tar name of the first path seen, for hard links.
    links: HashMap<(u64, u64), Vec<u8>>,
    entries: u64,
    owner: Option<(u64, u64)>,
}

impl<W: Write> Writer<'_, W> {
    fn entry(&mut self, name: &[u8], rel: &Path) -> Result<(), StoreError> {
        let path = self.root.join(rel);
        let meta = path.symlink_metadata().at("reading metadata of", &path)?;
        let kind = EntryKind::from_mode(meta.mode());
        if kind == EntryKind::Socket {
            return Ok(()); // sockets are runtime objects, not image content
        }
        let xattrs = read_xattrs(&path, kind)?;
        let mut f = Fields {
            name,
            mode: meta.mode(),
            uid: self.owner.map_or(u64::from(meta.uid()), |o| o.0),
            gid: self.owner.map_or(u64::from(meta.gid()), |o| o.1),
            mtime: meta.mtime().clamp(0, self.epoch as i64) as u64,
            xattrs: &xattrs,
            ..Fields::default()
        };
        if let Some(first) = self.hard_link(name, kind, &meta) {
            f.kind = kind::LINK;
            f.link = &first;
            return self.header(&f, &path);
        }
        match kind {
            EntryKind::Dir => f.kind = kind::DIR,
            EntryKind::Fifo => f.kind = kind::FIFO,
            EntryKind::CharDevice | EntryKind::BlockDevice => {
                f.kind = if kind == EntryKind::CharDevice {
                    kind::CHAR
                } else {
                    kind::BLOCK
                };
                f.dev_major = nix::sys::stat::major(meta.rdev());
                f.dev_minor = nix::sys::stat::minor(meta.rdev());
            }
            EntryKind::Symlink => {
                let target = std::fs::read_link(&path).at("reading symlink", &path)?;
                f.kind = kind::SYMLINK;
                f.link = target.as_os_str().as_bytes();
                return self.header(&f, &path);
            }
            EntryKind::File => {
                f.kind = kind::FILE;
                f.size = meta.len();
                self.header(&f, &path)?;
                return self.contents(&path, meta.len());
            }
            EntryKind::Socket => {}
        }
        self.header(&f, &path)
    }

    /// The first tar name of this inode, if this is a later hard link to it.
    fn hard_link(&mut self, name: &[u8], kind: EntryKind, meta: &Metadata) -> Option<Vec<u8>> {
        if kind == EntryKind::Dir || meta.nlink() < 2 {
            return None;
        }
        let key = (meta.dev(), meta.ino());
        if let Some(first) = self.links.get(&key) {
            return Some(first.clone());
        }
        self.links.insert(key, name.to_vec());
        None
    }

    fn header(&mut self, f: &Fields, path: &Path) -> Result<(), StoreError> {
        tarfmt::write_headers(&mut self.out, f).at("writing layer entry for", path)?;
        self.entries += 1;
        Ok(())
    }

    /// Streams exactly `size` bytes (the size in the header already written).
    fn contents(&mut self, path: &Path, size: u64) -> Result<(), StoreError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .at("opening", path)?;
        let copied =
            io::copy(&mut file.take(size), &mut self.out).at("copying into layer", path)?;
        if copied != size {
            return Err(StoreError::io(
                "copying into layer",
                path,
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while the layer was written: is a build step still running?",
                ),
            ));
        }
        self.out
            .write_all(tarfmt::padding(size))
            .at("writing layer entry for", path)
    }

    fn whiteout(&mut self, name: &[u8]) -> Result<(), StoreError> {
        let f = Fields {
            name,
            kind: kind::FILE,
            mtime: self.epoch,
            ..Fields::default()
        };
        self.header(&f, Path::new(OsStr::from_bytes(name)))
    }
}

/// Allowed xattrs of `path` (not following symlinks), sorted by name.
fn read_xattrs(path: &Path, kind: EntryKind) -> Result<tarfmt::Xattrs, StoreError> {
    if kind == EntryKind::Symlink {
        return Ok(Vec::new()); // user.* cannot be set on symlinks anyway
    }
    let names = match xattr::list(path) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("listing xattrs of", path, e)),
    };
    let mut out = Vec::new();
    for name in names.filter(|n| xattr_allowed(n.as_bytes())) {
        if let Some(value) = xattr::get(path, &name).at("reading xattrs of", path)? {
            out.push((name.as_bytes().to_vec(), value));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
#[path = "layer_write_tests.rs"]
mod tests;
