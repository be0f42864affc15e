//! Extracting a layer tar onto a root file system, treating the tar as
//! untrusted: nothing it says can make us write outside the root.
//!
//! Each entry's parent directory is resolved inside the root (see
//! [`crate::safefs`]); the entry itself is created with *at() calls that do
//! not follow symlinks. OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`) remove
//! what lower layers put there.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};

use crate::error::{IoContext, StoreError};
use crate::layer_write::xattr_allowed;
use crate::safefs::{join, kind_at, normalize, remove_at, Components, Root};
use crate::tarread::{read_members, Member};

/// What an apply did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Tar entries processed (whiteouts included).
    pub entries: u64,
}

const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// Applies the layer tar read from `tar` onto the tree at `root`.
pub fn apply_layer<R: Read>(root: &Path, tar: R) -> Result<ApplyStats, StoreError> {
    let mut ap = Applier {
        root: Root::open(root)?,
        written: HashSet::new(),
        dirs: Vec::new(),
        is_root: nix::unistd::geteuid().is_root(),
        entries: 0,
    };
    read_members(tar, |m, data| ap.entry(m, data))?;
    ap.finish_dirs()?;
    Ok(ApplyStats {
        entries: ap.entries,
    })
}

fn bad_tar(entry: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::BadTar {
        entry: entry.to_string(),
        reason: e.to_string(),
    }
}

fn unsafe_path(entry: &str, reason: impl Into<String>) -> StoreError {
    StoreError::UnsafePath {
        entry: entry.to_string(),
        reason: reason.into(),
    }
}

/// Owner, mode, time and xattrs from a header.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: i64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A directory whose metadata is set once all entries are in (creating
/// children would bump its mtime; a read-only mode could block them).
struct DirMeta {
    comps: Components,
    entry: String,
    meta: Meta,
}

struct Applier {
    root: Root,
    /// Paths this layer created (whiteouts only hide lower layers' paths).
    written: HashSet<Vec<u8>>,
    dirs: Vec<DirMeta>,
    is_root: bool,
    entries: u64,
}

fn header_meta(m: &Member, name: &str) -> Result<Meta, StoreError> {
    let too_big = |what| bad_tar(name, format!("{what} out of range"));
    Ok(Meta {
        uid: u32::try_from(m.uid).map_err(|_| too_big("uid"))?,
        gid: u32::try_from(m.gid).map_err(|_| too_big("gid"))?,
        mode: m.mode & 0o7777,
        mtime: i64::try_from(m.mtime).map_err(|_| too_big("mtime"))?,
        xattrs: m
            .xattrs
            .iter()
            .filter(|(k, _)| xattr_allowed(k))
            .cloned()
            .collect(),
    })
}

impl Applier {
    fn entry(&mut self, m: &Member, data: &mut dyn Read) -> Result<(), StoreError> {
        use tar::EntryType as T;
        let name = &m.shown();
        let comps = normalize(&m.name).map_err(|r| unsafe_path(name, r))?;
        let Some((base, parent)) = comps.split_last() else {
            return Ok(()); // the root itself ("./"): its metadata is the caller's
        };
        self.entries += 1;
        if base.as_slice() == OPAQUE {
            return self.opaque(parent);
        }
        if let Some(hidden) = base.strip_prefix(WHITEOUT) {
            return self.whiteout(parent, hidden, name);
        }
        let meta = header_meta(m, name)?;
        let dir = self.parent(parent, name)?;
        match m.kind {
            T::Directory => self.dir(dir.as_fd(), &comps, base, name, meta)?,
            T::Regular | T::Continuous => self.file(dir.as_fd(), &comps, data, name, meta)?,
            T::Symlink => self.symlink(dir.as_fd(), &comps, m, name, meta)?,
            T::Link => self.hard_link(dir.as_fd(), &comps, m, name)?,
            T::Char | T::Block | T::Fifo => self.node(dir.as_fd(), &comps, m, name, meta)?,
            other => {
                return Err(StoreError::BadTar {
                    entry: name.to_string(),
                    reason: format!("unsupported entry type {other:?}: layers may hold files, directories, links, devices and fifos only"),
                })
            }
        }
        self.written.insert(join(&comps));
        Ok(())
    }

    /// Opens the parent directory, creating missing ones (0755, root-owned).
    fn parent(&mut self, parent: &[Vec<u8>], name: &str) -> Result<OwnedFd, StoreError> {
        match self.root.open_dir(parent) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(self.parent_error(parent, name, e)),
        }
        let mut cur = self.root.open_dir(&[]).at("opening", self.root.path())?;
        for i in 0..parent.len() {
            let prefix = &parent[..=i];
            cur = match self.root.open_dir(prefix) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => self.mkdir_parent(cur.as_fd(), prefix, name)?,
                Err(e) => return Err(self.parent_error(prefix, name, e)),
            };
        }
        Ok(cur)
    }

    fn mkdir_parent(
        &mut self,
        dir: BorrowedFd,
        prefix: &[Vec<u8>],
        name: &str,
    ) -> Result<OwnedFd, StoreError> {
        let shown = self.root.display(prefix);
        let comp = OsStr::from_bytes(prefix.last().map(Vec::as_slice).unwrap_or(b"."));
        match nix::sys::stat::mkdirat(dir, comp, Mode::from_bits_truncate(0o755)) {
            Ok(()) => {}
            // It exists yet did not resolve: a symlink to nowhere.
            Err(Errno::EEXIST) => {
                return Err(StoreError::BadTar {
                    entry: name.to_string(),
                    reason: format!(
                        "parent {} is a dangling symlink",
                        String::from_utf8_lossy(&join(prefix))
                    ),
                })
            }
            Err(e) => return Err(StoreError::io("creating directory", shown, e.into())),
        }
        if self.is_root {
            nix::unistd::fchownat(
                dir,
                comp,
                Some(Uid::from_raw(0)),
                Some(Gid::from_raw(0)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .at("changing owner of", &shown)?;
        }
        self.written.insert(join(prefix));
        self.root.open_dir(prefix).at("opening", shown)
    }

    fn parent_error(&self, prefix: &[Vec<u8>], name: &str, e: Errno) -> StoreError {
        match e {
            Errno::ENOTDIR | Errno::ELOOP | Errno::EXDEV => StoreError::BadTar {
                entry: name.to_string(),
                reason: format!(
                    "parent {} is not a directory ({e})",
                    String::from_utf8_lossy(&join(prefix))
                ),
            },
            e => StoreError::io("opening directory", self.root.display(prefix), e.into()),
        }
    }

    /// Clears the way for a non-directory entry.
    fn replace(&self, dir: BorrowedFd, comps: &[Vec<u8>]) -> Result<(), StoreError> {
        let base = comps.last().map(Vec::as_slice).unwrap_or(b".");
        remove_at(dir, base, &self.root.display(comps))
    }

    fn dir(
        &mut self,
        dir: BorrowedFd,
        comps: &[Vec<u8>],
        base: &[u8],
        name: &str,
        meta: Meta,
    ) -> Result<(), StoreError> {
        let shown = self.root.display(comps);
        // An existing directory keeps its contents (lower layers' files).
        if kind_at(dir, base).at("inspecting", &shown)? != Some(SFlag::S_IFDIR) {
            self.replace(dir, comps)?;
            nix::sys::stat::mkdirat(
                dir,
                OsStr::from_bytes(base),
                Mode::from_bits_truncate(0o700),
            )
            .at("creating directory", &shown)?;
        }
        self.dirs.push(DirMeta {
            comps: comps.to_vec(),
            entry: name.to_string(),
            meta,
        });
        Ok(())
    }

    fn file(
        &self,
        dir: BorrowedFd,
        comps: &[Vec<u8>],
        data: &mut dyn Read,
        name: &str,
        meta: Meta,
    ) -> Result<(), StoreError> {
        let shown = self.root.display(comps);
        self.replace(dir, comps)?;
        let base = comps.last().map(Vec::as_slice).unwrap_or(b".");
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::openat(
            dir,
            OsStr::from_bytes(base),
            flags,
            Mode::from_bits_truncate(0o600),
        )
        .at("creating", &shown)?;
        let mut file = File::from(fd);
        copy_data(data, &mut file)
            .map_err(|e| bad_tar(name, format!("copying data to {}: {e}", shown.display())))?;
        self.set_meta_fd(&file, &meta, name, &shown)
    }

    /// Owner, then mode (chown clears setuid bits), xattrs, then mtime.
    fn set_meta_fd(
        &self,
        file: &File,
        meta: &Meta,
        name: &str,
        shown: &Path,
    ) -> Result<(), StoreError> {
        let chown = nix::unistd::fchown(
            file.as_fd(),
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
        );
        self.privileged(
            chown,
            name,
            &format!("restoring owner {}:{}", meta.uid, meta.gid),
            shown,
        )?;
        nix::sys::stat::fchmod(file.as_fd(), Mode::from_bits_truncate(meta.mode))
            .at("changing mode of", shown)?;
        for (k, v) in &meta.xattrs {
            let res = xattr::FileExt::set_xattr(file, OsStr::from_bytes(k), v).map_err(errno_of);
            let op = format!("restoring xattr {}", String::from_utf8_lossy(k));
            self.privileged(res, name, &op, shown)?;
        }
        let t = TimeSpec::new(meta.mtime, 0);
        nix::sys::stat::futimens(file.as_fd(), &t, &t).at("setting mtime of", shown)
    }

    /// EPERM as non-root means "this layer needs root", which the user can fix.
    fn privileged(
        &self,
        res: nix::Result<()>,
        name: &str,
        op: &str,
        shown: &Path,
    ) -> Result<(), StoreError> {
        match res {
            Ok(()) => Ok(()),
            Err(Errno::EPERM) if !self.is_root => Err(StoreError::NeedsRoot {
                entry: name.to_string(),
                op: op.to_string(),
            }),
            Err(e) => Err(StoreError::io("restoring metadata of", shown, e.into())),
        }
    }

    fn symlink(
        &self,
        dir: BorrowedFd,
        comps: &[Vec<u8>],
        m: &Member,
        name: &str,
        meta: Meta,
    ) -> Result<(), StoreError> {
        let shown = self.root.display(comps);
        let target = link_target(m, name)?;
        self.replace(dir, comps)?;
        let base = OsStr::from_bytes(comps.last().map(Vec::as_slice).unwrap_or(b"."));
        // The target is stored as is: it is only ever resolved inside a root.
        nix::unistd::symlinkat(OsStr::from_bytes(&target), dir, base)
            .at("creating symlink", &shown)?;
        self.set_meta_at(dir, base, &meta, name, &shown)
    }

    /// Owner and mtime of a symlink or node, not following symlinks.
    fn set_meta_at(
        &self,
        dir: BorrowedFd,
        base: &OsStr,
        meta: &Meta,
        name: &str,
        shown: &Path,
    ) -> Result<(), StoreError> {
        let owner = (Some(Uid::from_raw(meta.uid)), Some(Gid::from_raw(meta.gid)));
        let chown =
            nix::unistd::fchownat(dir, base, owner.0, owner.1, AtFlags::AT_SYMLINK_NOFOLLOW);
        self.privileged(
            chown,
            name,
            &format!("restoring owner {}:{}", meta.uid, meta.gid),
            shown,
        )?;
        let t = TimeSpec::new(meta.mtime, 0);
        nix::sys::stat::utimensat(
            dir,
            base,
            &t,
            &t,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .at("setting mtime of", shown)
    }

    fn hard_link(
        &self,
        dir: BorrowedFd,
        comps: &[Vec<u8>],
        m: &Member,
        name: &str,
    ) -> Result<(), StoreError> {
        let shown = self.root.display(comps);
        let raw = link_target(m, name)?;
        let target =
            normalize(&raw).map_err(|r| unsafe_path(name, format!("hard link target: {r}")))?;
        let Some((tbase, tparent)) = target.split_last() else {
            return Err(unsafe_path(name, "hard link to the root directory"));
        };
        if target == comps {
            return Err(bad_tar(name, "hard link to itself"));
        }
        let missing = || {
            bad_tar(
                name,
                format!(
                    "hard link target `{}` does not exist in this layer or below",
                    String::from_utf8_lossy(&raw)
                ),
            )
        };
        let tdir = self.root.open_dir(tparent).map_err(|_| missing())?;
        match kind_at(tdir.as_fd(), tbase).at("inspecting", self.root.display(&target))? {
            None => return Err(missing()),
            Some(SFlag::S_IFDIR) => return Err(bad_tar(name, "hard link to a directory")),
            Some(_) => {}
        }
        self.replace(dir, comps)?;
        let base = OsStr::from_bytes(comps.last().map(Vec::as_slice).unwrap_or(b"."));
        // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
        nix::unistd::linkat(
            tdir.as_fd(),
            OsStr::from_bytes(tbase),
            dir,
            base,
            AtFlags::empty(),
        )
        .at("creating hard link", &shown)
    }

    fn node(
        &self,
        dir: BorrowedFd,
        comps: &[Vec<u8>],
        m: &Member,
        name: &str,
        meta: Meta,
    ) -> Result<(), StoreError> {
        let shown = self.root.display(comps);
        let dev = nix::sys::stat::makedev(u64::from(m.dev.0), u64::from(m.dev.1));
        let (sflag, dev) = match m.kind {
            tar::EntryType::Fifo => (SFlag::S_IFIFO, 0),
            tar::EntryType::Char => (SFlag::S_IFCHR, dev),
            _ => (SFlag::S_IFBLK, dev),
        };
        self.replace(dir, comps)?;
        let base = OsStr::from_bytes(comps.last().map(Vec::as_slice).unwrap_or(b"."));
        let res = nix::sys::stat::mknodat(dir, base, sflag, Mode::from_bits_truncate(0o600), dev);
        self.privileged(res, name, "creating a device node", &shown)?;
        self.set_meta_at(dir, base, &meta, name, &shown)?;
        // Just created by us as a node, so following is moot; chmod after chown.
        nix::sys::stat::fchmodat(
            dir,
            base,
            Mode::from_bits_truncate(meta.mode),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .at("changing mode of", &shown)?;
        let t = TimeSpec::new(meta.mtime, 0);
        nix::sys::stat::utimensat(
            dir,
            base,
            &t,
            &t,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .at("setting mtime of", &shown)
    }

    /// `.wh.NAME`: remove NAME from lower layers.
    fn whiteout(
        &mut self,
        parent: &[Vec<u8>],
        hidden: &[u8],
        name: &str,
    ) -> Result<(), StoreError> {
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(unsafe_path(name, "whiteout of an invalid name"));
        }
        let mut target = parent.to_vec();
        target.push(hidden.to_vec());
        if self.written.contains(&join(&target)) {
            return Ok(()); // whiteouts never hide this layer's own entries
        }
        let Ok(dir) = self.root.open_dir(parent) else {
            return Ok(()); // no parent: nothing to hide
        };
        remove_at(dir.as_fd(), hidden, &self.root.display(&target))
    }

    /// `.wh..wh..opq`: empty the directory of everything lower layers put
    /// there, keeping what this layer already wrote.
    fn opaque(&mut self, parent: &[Vec<u8>]) -> Result<(), StoreError> {
        let Ok(dir) = self.root.open_dir(parent) else {
            return Ok(());
        };
        self.purge(&dir, parent)
    }

    fn purge(&self, dir: &OwnedFd, comps: &[Vec<u8>]) -> Result<(), StoreError> {
        let shown = self.root.display(comps);
        for child in crate::safefs::list_dir(dir).at("listing", &shown)? {
            let mut path = comps.to_vec();
            path.push(child.clone());
            if !self.written.contains(&join(&path)) {
                remove_at(dir.as_fd(), &child, &self.root.display(&path))?;
            } else if let Ok(sub) = crate::safefs::open_child_dir(dir.as_fd(), &child) {
                self.purge(&sub, &path)?;
            }
        }
        Ok(())
    }

    /// Directory owner, mode, xattrs and mtime, after all children exist.
    fn finish_dirs(&mut self) -> Result<(), StoreError> {
        for d in std::mem::take(&mut self.dirs).iter().rev() {
            // Replaced by a non-directory later in the layer: nothing to do.
            let Ok(fd) = self.root.open_dir_nofollow(&d.comps) else {
                continue;
            };
            let shown = self.root.display(&d.comps);
            self.set_meta_fd(&File::from(fd), &d.meta, &d.entry, &shown)?;
        }
        Ok(())
    }
}

fn link_target(m: &Member, name: &str) -> Result<Vec<u8>, StoreError> {
    let target = m
        .link
        .clone()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad_tar(name, "link without a target"))?;
    if target.contains(&0) {
        return Err(unsafe_path(name, "link target contains a NUL byte"));
    }
    Ok(target)
}

fn errno_of(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

#[cfg(test)]
#[path = "layer_apply_tests.rs"]
mod tests;

/// Copies an entry's data in 1 MiB pieces: `io::copy`'s 8 KiB buffer made
/// extracting a 700 MB root cost ~90k write calls.
fn copy_data(data: &mut dyn Read, out: &mut File) -> std::io::Result<u64> {
    use std::io::Write;
    thread_local!(static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 1 << 20]));
    BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        let mut total = 0;
        loop {
            let n = match data.read(&mut buf) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            out.write_all(&buf[..n])?;
            total += n as u64;
        }
    })
}
