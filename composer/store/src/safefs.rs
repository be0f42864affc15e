//! File system access confined to an extraction root.
//!
//! Every path is resolved with openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS) against a descriptor of the root, so symlinks in
//! the tree (absolute or with `..`) are interpreted as if the root were `/`
//! and can never lead outside it. The final component is then handled with
//! *at() calls that do not follow symlinks.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstatat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::error::{IoContext, StoreError};

/// A normalized relative path: its components, none empty, `.` or `..`.
pub(crate) type Components = Vec<Vec<u8>>;

/// Joins components with `/` (`.` for the root itself).
pub(crate) fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    if comps.is_empty() {
        return b".".to_vec();
    }
    comps.join(&b'/')
}

/// Splits a tar entry name into safe components, or says why it is unsafe.
/// One leading `./` or `/` is stripped; `.` components are dropped.
pub(crate) fn normalize(raw: &[u8]) -> Result<Components, &'static str> {
    if raw.contains(&0) {
        return Err("the name contains a NUL byte");
    }
    let rest = raw
        .strip_prefix(b"./")
        .or_else(|| raw.strip_prefix(b"/"))
        .unwrap_or(raw);
    if rest.starts_with(b"/") {
        return Err("the name is an absolute path");
    }
    let mut comps = Vec::new();
    for c in rest.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("the name contains a `..` component"),
            c => comps.push(c.to_vec()),
        }
    }
    Ok(comps)
}

/// A directory descriptor for the extraction root.
pub(crate) struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

fn how(extra: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | extra)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

impl Root {
    pub(crate) fn open(path: &Path) -> Result<Root, StoreError> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .at("opening extraction root", path)?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Host path for messages (never used to access the file).
    pub(crate) fn display(&self, comps: &[Vec<u8>]) -> PathBuf {
        self.path.join(OsStr::from_bytes(&join(comps)))
    }

    /// Opens directory `comps`, resolved inside the root (symlinks followed
    /// as if the root were `/`).
    pub(crate) fn open_dir(&self, comps: &[Vec<u8>]) -> nix::Result<OwnedFd> {
        openat2(
            self.fd.as_fd(),
            OsStr::from_bytes(&join(comps)),
            how(OFlag::empty()),
        )
    }

    /// An O_PATH descriptor of whatever `comps` resolves to inside the root
    /// (a final symlink followed, also inside the root). O_PATH opens
    /// nothing for I/O, so a device node or FIFO has no side effect.
    pub(crate) fn open_path(&self, comps: &[Vec<u8>]) -> nix::Result<OwnedFd> {
        openat2(
            self.fd.as_fd(),
            OsStr::from_bytes(&join(comps)),
            OpenHow::new()
                .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
                .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS),
        )
    }

    /// Like `open_dir` but fails (ELOOP) if the last component is a symlink.
    pub(crate) fn open_dir_nofollow(&self, comps: &[Vec<u8>]) -> nix::Result<OwnedFd> {
        openat2(
            self.fd.as_fd(),
            OsStr::from_bytes(&join(comps)),
            how(OFlag::O_NOFOLLOW),
        )
    }
}

/// What is at `name` in `dir`, without following a symlink; None if nothing.
pub(crate) fn kind_at(dir: BorrowedFd, name: &[u8]) -> nix::Result<Option<SFlag>> {
    match fstatat(
        dir,
        OsStr::from_bytes(name),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Ok(st) => Ok(Some(SFlag::from_bits_truncate(
            st.st_mode & SFlag::S_IFMT.bits(),
        ))),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes `name` in `dir` (recursively if a directory, never following
/// symlinks). Nothing there is fine.
pub(crate) fn remove_at(dir: BorrowedFd, name: &[u8], shown: &Path) -> Result<(), StoreError> {
    let what = kind_at(dir, name).at("inspecting", shown)?;
    match what {
        None => Ok(()),
        Some(SFlag::S_IFDIR) => {
            let sub = open_child_dir(dir, name).at("opening", shown)?;
            for child in list_dir(&sub).at("listing", shown)? {
                remove_at(sub.as_fd(), &child, &shown.join(OsStr::from_bytes(&child)))?;
            }
            unlinkat(dir, OsStr::from_bytes(name), UnlinkatFlags::RemoveDir).at("removing", shown)
        }
        Some(_) => {
            unlinkat(dir, OsStr::from_bytes(name), UnlinkatFlags::NoRemoveDir).at("removing", shown)
        }
    }
}

/// Opens the subdirectory `name` of `dir`, refusing a symlink.
pub(crate) fn open_child_dir(dir: BorrowedFd, name: &[u8]) -> nix::Result<OwnedFd> {
    openat(
        dir,
        OsStr::from_bytes(name),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Names in a directory, without `.` and `..`.
pub(crate) fn list_dir(dir: &OwnedFd) -> nix::Result<Vec<Vec<u8>>> {
    // A fresh open of "." (not dup) so the read offset is not shared.
    let fresh = openat(
        dir.as_fd(),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut d = nix::dir::Dir::from_fd(fresh)?;
    let mut names = Vec::new();
    for entry in d.iter() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}
