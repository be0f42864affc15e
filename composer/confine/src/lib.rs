//! Confined opening of the files compose's servers hand to anyone on the
//! boot LAN (compose-tftp, compose-http): one owner for the policy, because
//! it is a security boundary and two copies would drift apart.
//!
//! Two directories matter: `root`, which request names are relative to (the
//! publish tree's `tftp/`), and `confine`, the boundary nothing may escape
//! (the publish tree itself, so `tftp/images -> ../images` works). Every open
//! is one openat2(2) call anchored at `confine` with RESOLVE_BENEATH |
//! RESOLVE_NO_MAGICLINKS: the kernel walks the path and every symlink and
//! fails with EXDEV as soon as anything (`..` above the anchor, an absolute
//! symlink) would leave it. BENEATH rather than IN_ROOT on purpose: IN_ROOT
//! would re-root `evil -> /etc/passwd` at the anchor and quietly serve some
//! other file, while a refusal shows the operator the broken link.
//!
//! The boundary alone is too wide when it is a whole publish tree (which
//! also holds every root and the cluster's private files), so two more
//! checks run on the resolved file before it is opened for reading:
//! - it must lie in one of the allowed subtrees of the boundary (for
//!   compose: `tftp/` and `images/`, which `tftp/images` and the
//!   pxelinux.cfg links point into). Where a file really is, after every
//!   symlink, is what the kernel reports for the O_PATH descriptor in
//!   /proc/self/fd; if that cannot be read the request is refused (fail
//!   closed);
//! - it must be world-readable (o+r) when asked, as tftpd-hpa requires
//!   without `--permissive`: TFTP and HTTP carry no credentials, so only
//!   what anyone may read is served, and a 0600 file in the tree is a secret
//!   that landed there by mistake.
//!
//! What a refusal looks like on the wire (a TFTP error code, an HTTP status,
//! their texts) and how a request names a file stay in the protocol crates:
//! this crate says only *why* ([`Denied`]) and takes a relative path that
//! the caller has already parsed and stripped of `..`.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, FileStat, Mode, SFlag};

/// Why a file is not served. The protocol crates turn it into what their
/// clients see; `Display` is the reason both of them send unless they keep
/// an older wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// ENOENT or ENOTDIR: boot clients probe many missing names, so this is
    /// the common, quiet case.
    #[error("file not found")]
    Missing,
    /// EXDEV from openat2: `..` or a symlink would leave the boundary.
    #[error("path escapes the confinement (symlink or '..')")]
    Escapes,
    /// ELOOP: a symlink loop, too many symlinks, or a magic link.
    #[error("too many symlinks or a magic link")]
    Loop,
    /// EACCES or EPERM.
    #[error("permission denied")]
    Permission,
    /// Any other errno from opening or fstat.
    #[error("cannot open: {0}")]
    Io(Errno),
    #[error("is a directory")]
    Directory,
    /// A device, FIFO, socket or symlink (never opened for reading).
    #[error("not a regular file")]
    NotRegular,
    #[error("not world-readable")]
    NotWorldReadable,
    /// The kernel would not say where the file is (`link` is the
    /// /proc/self/fd entry read): refused, fail closed.
    #[error("cannot locate the opened file: {error}")]
    Unlocatable { link: String, error: String },
    /// Inside the boundary but outside every allowed subtree (a symlink).
    #[error("outside the served directories")]
    Outside,
    /// The entry was swapped between the probe and the open.
    #[error("file changed while opening")]
    Changed,
}

impl Denied {
    /// Classifies an open or fstat failure.
    pub fn from_errno(e: Errno) -> Denied {
        match e {
            Errno::ENOENT | Errno::ENOTDIR => Denied::Missing,
            Errno::EXDEV => Denied::Escapes,
            Errno::ELOOP => Denied::Loop,
            Errno::EACCES | Errno::EPERM => Denied::Permission,
            other => Denied::Io(other),
        }
    }
}

/// Regular files only: a directory, device or FIFO is never served.
pub fn check_regular(mode: u32) -> Result<(), Denied> {
    let kind = SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits());
    if kind == SFlag::S_IFREG {
        Ok(())
    } else if kind == SFlag::S_IFDIR {
        Err(Denied::Directory)
    } else {
        Err(Denied::NotRegular)
    }
}

/// The open boundary directory, the root's place inside it, and what may be
/// served from it.
#[derive(Debug)]
pub struct Confinement {
    anchor: OwnedFd,
    /// Canonical; subtrees are checked against it.
    confine: PathBuf,
    /// `root` relative to `confine` ("" when they are the same directory).
    prefix: PathBuf,
    /// Absolute, canonical directories a served file must lie in; empty
    /// means anywhere under the boundary.
    subtrees: Vec<PathBuf>,
    /// Serve only files with the o+r permission bit.
    world_readable: bool,
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, message)
}

fn canonical(p: &Path) -> std::io::Result<PathBuf> {
    std::fs::canonicalize(p)
        .map_err(|e| std::io::Error::new(e.kind(), format!("resolving {}: {e}", p.display())))
}

impl Confinement {
    /// Opens `confine` and checks that `root` lies inside it (both resolved
    /// with realpath once, here, from the operator's configuration). Serves
    /// anything under the boundary, any mode, until narrowed with
    /// [`Confinement::allow_subtree`], [`Confinement::allow_dir`] and
    /// [`Confinement::world_readable_only`].
    pub fn open(root: &Path, confine: &Path) -> std::io::Result<Confinement> {
        let root = canonical(root)?;
        let confine = canonical(confine)?;
        let prefix = root
            .strip_prefix(&confine)
            .map_err(|_| {
                invalid(format!(
                    "{} is not inside the confinement {}",
                    root.display(),
                    confine.display()
                ))
            })?
            .to_path_buf();
        let anchor = File::open(&confine)?;
        if !anchor.metadata()?.is_dir() {
            return Err(invalid(format!("{} is not a directory", confine.display())));
        }
        Ok(Confinement {
            anchor: anchor.into(),
            confine,
            prefix,
            subtrees: Vec::new(),
            world_readable: false,
        })
    }

    /// Serves only files with the o+r bit when `yes`.
    pub fn world_readable_only(mut self, yes: bool) -> Confinement {
        self.world_readable = yes;
        self
    }

    /// The canonical root (request names are relative to it).
    pub fn root(&self) -> PathBuf {
        self.confine.join(&self.prefix)
    }

    /// Allows `sub`, a plain relative path under the boundary. One that does
    /// not exist yet (a tree nothing was published to) is taken as written,
    /// so it works once created.
    pub fn allow_subtree(mut self, sub: &Path) -> std::io::Result<Confinement> {
        let p = match std::fs::canonicalize(self.confine.join(sub)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.confine.join(sub),
            r => r?,
        };
        if sub.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(invalid(format!(
                "subtree {} must be a plain relative path",
                sub.display()
            )));
        }
        self.push_inside(p)?;
        Ok(self)
    }

    /// Allows `dir`, an existing directory (absolute, or relative to the
    /// working directory) inside the boundary.
    pub fn allow_dir(mut self, dir: &Path) -> std::io::Result<Confinement> {
        let p = canonical(dir)?;
        self.push_inside(p)?;
        Ok(self)
    }

    fn push_inside(&mut self, p: PathBuf) -> std::io::Result<()> {
        if !p.starts_with(&self.confine) {
            return Err(invalid(format!(
                "{} is not inside the confinement {}",
                p.display(),
                self.confine.display()
            )));
        }
        self.subtrees.push(p);
        Ok(())
    }

    /// Refuses a resolved file outside the subtrees or not world-readable.
    fn allowed(&self, probe: &OwnedFd, mode: u32) -> Result<(), Denied> {
        if self.world_readable && mode & 0o004 == 0 {
            return Err(Denied::NotWorldReadable);
        }
        if self.subtrees.is_empty() {
            return Ok(());
        }
        let link = format!("/proc/self/fd/{}", probe.as_raw_fd());
        let real = std::fs::read_link(&link).map_err(|e| Denied::Unlocatable {
            link: link.clone(),
            error: e.to_string(),
        })?;
        if self.subtrees.iter().any(|t| real.starts_with(t)) {
            Ok(())
        } else {
            Err(Denied::Outside)
        }
    }

    fn open_how(&self, rel: &Path, flags: OFlag) -> Result<OwnedFd, Denied> {
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .mode(Mode::empty())
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let path = self.prefix.join(rel);
        let path = if path.as_os_str().is_empty() {
            OsStr::from_bytes(b".")
        } else {
            path.as_os_str()
        };
        openat2(self.anchor.as_fd(), path, how).map_err(Denied::from_errno)
    }

    /// Opens `rel` (relative to the root, already free of `..`) for reading:
    /// a regular file, in an allowed subtree, world-readable if asked.
    ///
    /// The type is checked on an O_PATH descriptor first so a device or FIFO
    /// is never really opened (no side effects, no blocking), then checked
    /// again on the readable descriptor in case the entry was swapped between.
    pub fn open_file(&self, rel: &Path) -> Result<(File, FileStat), Denied> {
        // openat2 rejects O_PATH combined with anything but CLOEXEC/DIRECTORY/NOFOLLOW.
        let probe = self.open_how(rel, OFlag::O_PATH)?;
        let st = fstat(probe.as_fd()).map_err(Denied::from_errno)?;
        check_regular(st.st_mode)?;
        self.allowed(&probe, st.st_mode)?;
        let fd = self.open_how(rel, OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY)?;
        let st2 = fstat(fd.as_fd()).map_err(Denied::from_errno)?;
        check_regular(st2.st_mode)?;
        // A chmod between the two opens keeps the inode: look again.
        if self.world_readable && st2.st_mode & 0o004 == 0 {
            return Err(Denied::NotWorldReadable);
        }
        if (st.st_dev, st.st_ino) != (st2.st_dev, st2.st_ino) {
            return Err(Denied::Changed);
        }
        Ok((File::from(fd), st2))
    }
}

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod tests;
