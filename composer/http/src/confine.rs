//! Confined opening: the same policy as compose-tftp's `confine.rs`, plus an
//! allow-list and a world-readable check.
//!
//! Request paths are relative to `root` (the publish tree's `tftp/`). Every
//! open is one openat2(2) anchored at `confine` (the publish tree) with
//! RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS: the kernel fails with EXDEV as
//! soon as `..` or an absolute symlink would leave it. BENEATH rather than
//! IN_ROOT on purpose: IN_ROOT would re-root `evil -> /etc/passwd` and
//! quietly serve some other file; a refusal shows the operator the link.
//!
//! The boundary is wider than what HTTP may serve (it holds `roots/` and
//! `cluster.d/`, reached by a relative symlink without leaving it), so the
//! opened descriptor's real location must also lie in one of the allowed
//! directories (`tftp/` and `images/`): the kernel names it in
//! /proc/self/fd, after every symlink was followed. Files must be
//! world-readable: HTTP has no credentials, and a 0600 file in the tree is a
//! secret that landed there by mistake.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, FileStat, Mode, SFlag};

use crate::path::RelPath;

/// Why a path is not served: the status the client sees and a reason for
/// the Refused event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: String,
}

pub fn refuse(status: u16, reason: impl Into<String>) -> Refusal {
    Refusal {
        status,
        reason: reason.into(),
    }
}

/// An open regular file with what the response headers need.
#[derive(Debug)]
pub struct Opened {
    pub file: File,
    pub size: u64,
    /// Strong validator, quoted: dev, inode, size and mtime (ns) in hex. The
    /// publish tree never rewrites a file in place (temp + rename), so a new
    /// content means a new inode or mtime.
    pub etag: String,
}

impl Opened {
    pub fn from_file(file: File, st: &FileStat) -> Opened {
        let mtime_ns = (st.st_mtime as i128) * 1_000_000_000 + st.st_mtime_nsec as i128;
        Opened {
            file,
            size: st.st_size as u64,
            etag: format!(
                "\"{:x}-{:x}-{:x}-{:x}\"",
                st.st_dev, st.st_ino, st.st_size, mtime_ns
            ),
        }
    }
}

/// The open boundary, the root's place inside it, and the allow-list.
#[derive(Debug)]
pub struct Confinement {
    anchor: OwnedFd,
    /// `root` relative to `confine` ("" when they are the same directory).
    prefix: PathBuf,
    /// Canonical directories a served file must lie in.
    allow: Vec<PathBuf>,
}

impl Confinement {
    /// Opens `confine`; `root` and every `allow` entry must lie inside it
    /// (resolved once, here, from the operator's configuration).
    pub fn open(root: &Path, confine: &Path, allow: &[PathBuf]) -> std::io::Result<Confinement> {
        let canon = |p: &Path| {
            std::fs::canonicalize(p).map_err(|e| {
                std::io::Error::new(e.kind(), format!("resolving {}: {e}", p.display()))
            })
        };
        let root = canon(root)?;
        let confine = canon(confine)?;
        let outside = |p: &Path| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "{} is not inside the confinement {}",
                    p.display(),
                    confine.display()
                ),
            )
        };
        let prefix = root
            .strip_prefix(&confine)
            .map_err(|_| outside(&root))?
            .to_path_buf();
        let mut allowed = vec![root.clone()];
        for a in allow {
            let a = canon(a)?;
            if !a.starts_with(&confine) {
                return Err(outside(&a));
            }
            allowed.push(a);
        }
        let anchor = File::open(&confine)?;
        if !anchor.metadata()?.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} is not a directory", confine.display()),
            ));
        }
        Ok(Confinement {
            anchor: anchor.into(),
            prefix,
            allow: allowed,
        })
    }

    /// One openat2 under the anchor; `path` already carries the prefix.
    fn open_at(&self, path: &Path, flags: OFlag) -> Result<OwnedFd, Refusal> {
        let resolve = ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS;
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .mode(Mode::empty())
            .resolve(resolve);
        openat2(self.anchor.as_fd(), path, how).map_err(errno_refusal)
    }

    /// Where the kernel says `fd` is, checked against the allow-list.
    fn allowed(&self, fd: &OwnedFd) -> Result<(), Refusal> {
        let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let real = std::fs::read_link(&link)
            .map_err(|e| refuse(500, format!("cannot locate the opened file: {e}")))?;
        if self.allow.iter().any(|a| real.starts_with(a)) {
            Ok(())
        } else {
            Err(refuse(403, "outside the served directories"))
        }
    }

    /// Opens a request path for reading: regular, world-readable files in
    /// an allowed directory only.
    ///
    /// The type is checked on an O_PATH descriptor first so a device or
    /// FIFO is never really opened (no side effects, no blocking), then
    /// again on the readable descriptor in case the entry was swapped.
    pub fn open_file(&self, rel: &RelPath) -> Result<Opened, Refusal> {
        if rel.is_empty() {
            return Err(refuse(404, "no file name"));
        }
        // Never empty: `rel` has a component, so no "." fallback is needed.
        let path = self.prefix.join(rel.as_string());
        // openat2 rejects O_PATH combined with anything but CLOEXEC/DIRECTORY/NOFOLLOW.
        let probe = self.open_at(&path, OFlag::O_PATH)?;
        let st = fstat(probe.as_fd()).map_err(errno_refusal)?;
        check_kind(st.st_mode, true)?;
        self.allowed(&probe)?;
        let fd = self.open_at(&path, OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY)?;
        let st2 = fstat(fd.as_fd()).map_err(errno_refusal)?;
        check_kind(st2.st_mode, true)?;
        if (st.st_dev, st.st_ino) != (st2.st_dev, st2.st_ino) {
            return Err(refuse(503, "file changed while opening"));
        }
        Ok(Opened::from_file(File::from(fd), &st2))
    }
}

/// Opens a caller-registered private file (trusted path, any mode: the peer
/// check stands in for permissions). Symlinks are followed (`cluster` is one
/// a regen swaps), but only a regular file is served.
pub fn open_private(path: &Path) -> Result<Opened, Refusal> {
    let file = File::options()
        .read(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open(path)
        .map_err(|e| match e.raw_os_error().map(Errno::from_raw) {
            Some(errno) => errno_refusal(errno),
            None => refuse(500, e.to_string()),
        })?;
    let st = fstat(file.as_fd()).map_err(errno_refusal)?;
    check_kind(st.st_mode, false)?;
    Ok(Opened::from_file(file, &st))
}

/// Regular files only; `public` also demands the world-read bit.
fn check_kind(mode: u32, public: bool) -> Result<(), Refusal> {
    let kind = SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits());
    let why = if kind == SFlag::S_IFDIR {
        "is a directory"
    } else if kind != SFlag::S_IFREG {
        "not a regular file"
    } else if public && mode & 0o004 == 0 {
        "not world-readable"
    } else {
        return Ok(());
    };
    Err(refuse(403, why))
}

/// Maps an open failure to the status a client sees.
fn errno_refusal(e: Errno) -> Refusal {
    let (status, why) = match e {
        // Boot clients probe missing names: the common, quiet case.
        Errno::ENOENT | Errno::ENOTDIR => (404, "file not found"),
        Errno::EXDEV => (403, "path escapes the confinement (symlink or '..')"),
        Errno::ELOOP => (403, "too many symlinks or a magic link"),
        Errno::EACCES | Errno::EPERM => (403, "permission denied"),
        other => return refuse(500, format!("cannot open: {other}")),
    };
    refuse(status, why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::parse_path;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn open_table() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path();
        for d in ["tftp/sub", "images/x", "roots/r"] {
            std::fs::create_dir_all(top.join(d)).unwrap();
        }
        let write = |p: &str, body: &[u8], mode: u32| {
            std::fs::write(top.join(p), body).unwrap();
            std::fs::set_permissions(top.join(p), std::fs::Permissions::from_mode(mode)).unwrap();
        };
        write("tftp/f", b"hello", 0o644);
        write("tftp/private", b"p", 0o600);
        write("images/x/k", b"kernel", 0o644);
        write("roots/r/s", b"s", 0o644);
        let ln =
            |target: &str, link: &str| std::os::unix::fs::symlink(target, top.join(link)).unwrap();
        ln("../images", "tftp/images");
        ln("/etc/passwd", "tftp/evil");
        ln("../..", "tftp/up");
        ln("../roots/r/s", "tftp/root");
        ln("/proc/self/root/etc/passwd", "tftp/magic");
        let c = Confinement::open(&top.join("tftp"), top, &[top.join("images")]).unwrap();
        let cases: &[(&str, Result<u64, u16>)] = &[
            ("/f", Ok(5)),
            ("/images/x/k", Ok(6)),
            ("/root", Err(403)), // inside the boundary, not allowed
            ("/private", Err(403)),
            ("/missing", Err(404)),
            ("/f/x", Err(404)),
            ("/evil", Err(403)),
            ("/up/etc/passwd", Err(403)),
            ("/magic", Err(403)),
            ("/sub", Err(403)),
            ("/", Err(404)),
        ];
        for (name, want) in cases {
            let got = c
                .open_file(&parse_path(name).unwrap())
                .map(|o| o.size)
                .map_err(|r| r.status);
            assert_eq!(&got, want, "{name}");
        }
        assert!(Confinement::open(top, &top.join("tftp"), &[]).is_err());
        assert!(
            Confinement::open(&top.join("tftp"), &top.join("tftp"), &[top.join("images")]).is_err()
        );
    }
}
