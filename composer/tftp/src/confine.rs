//! Request path policy and confined opening.
//!
//! Two directories matter: `root`, which request names are relative to (the
//! publish tree's `tftp/`), and `confine`, the boundary nothing may escape
//! (the publish tree itself, so `tftp/images -> ../images` works). Every open
//! is one openat2(2) call anchored at `confine` with RESOLVE_BENEATH: the
//! kernel walks the path and every symlink and fails with EXDEV as soon as
//! anything (`..` above the anchor, an absolute symlink) would leave it. We
//! use BENEATH rather than IN_ROOT on purpose: IN_ROOT would re-root
//! `evil -> /etc/passwd` at the anchor and quietly serve some other file,
//! while a refusal shows the operator the broken link.
//!
//! The boundary alone is too wide when it is a whole publish tree (which
//! also holds every root and the cluster's private files), so two more
//! checks run on the resolved file before it is opened for reading:
//! - it must lie in one of the `subtrees` of the boundary (for compose:
//!   `tftp/` and `images/`, which `tftp/images` and the pxelinux.cfg links
//!   point into). Where a file really is, after every symlink, is what the
//!   kernel reports for the O_PATH descriptor in /proc/self/fd; if that
//!   cannot be read the request is refused (fail closed);
//! - it must be world-readable (o+r), as tftpd-hpa requires without
//!   `--permissive`: TFTP has no authentication, so only what anyone may
//!   read is served.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, Mode, SFlag};

use crate::packet::ErrorCode;

/// Why a request is not served; becomes an ERROR packet and a Refused event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub reason: String,
}

fn refuse(code: ErrorCode, reason: impl Into<String>) -> Refusal {
    Refusal {
        code,
        reason: reason.into(),
    }
}

/// Turns a request file name into a relative path, or refuses it.
///
/// Backslashes become slashes (Windows-style clients); one leading `/` is
/// dropped because many PXE ROMs send `/pxelinux.0`; `.` and empty components
/// are dropped. Anything absolute after that, any `..`, or a NUL is refused
/// before the file system is touched, so the kernel check is a second line.
pub fn sanitize(name: &str) -> Result<PathBuf, Refusal> {
    if name.contains('\0') {
        return Err(refuse(ErrorCode::ACCESS_VIOLATION, "NUL in file name"));
    }
    let name = name.replace('\\', "/");
    let rel = name.strip_prefix('/').unwrap_or(&name);
    if rel.starts_with('/') {
        return Err(refuse(ErrorCode::ACCESS_VIOLATION, "absolute path"));
    }
    let mut out = PathBuf::new();
    for comp in rel.split('/') {
        match comp {
            "" | "." => {}
            ".." => return Err(refuse(ErrorCode::ACCESS_VIOLATION, "'..' in path")),
            c => out.push(c),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(refuse(ErrorCode::FILE_NOT_FOUND, "no file name"));
    }
    Ok(out)
}

/// The open boundary directory plus the root's path inside it.
#[derive(Debug)]
pub struct Confinement {
    anchor: OwnedFd,
    /// `root` relative to `confine` ("" when they are the same directory).
    prefix: PathBuf,
    /// Absolute, canonical directories a served file must lie in; empty
    /// means anywhere under the boundary.
    subtrees: Vec<PathBuf>,
    /// Serve only files with the o+r permission bit.
    world_readable: bool,
}

impl Confinement {
    /// Opens `confine` and checks that `root` lies inside it (both resolved
    /// with realpath once, at start-up, by the operator's configuration).
    /// `subtrees` are plain relative paths under `confine`.
    pub fn open(
        root: &Path,
        confine: &Path,
        subtrees: &[PathBuf],
        world_readable: bool,
    ) -> std::io::Result<Confinement> {
        let root = std::fs::canonicalize(root)?;
        let confine = std::fs::canonicalize(confine)?;
        let prefix = root
            .strip_prefix(&confine)
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "TFTP root {} is not inside the confinement {}",
                        root.display(),
                        confine.display()
                    ),
                )
            })?
            .to_path_buf();
        let anchor = File::open(&confine)?;
        if !anchor.metadata()?.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} is not a directory", confine.display()),
            ));
        }
        let subtrees = subtrees
            .iter()
            .map(|sub| {
                // One that does not exist yet (a tree nothing was published
                // to) is taken as written, so it works once created.
                let p = match std::fs::canonicalize(confine.join(sub)) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => confine.join(sub),
                    r => r?,
                };
                if sub
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
                {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!(
                            "TFTP subtree {} must be a plain relative path",
                            sub.display()
                        ),
                    ));
                }
                if !p.starts_with(&confine) {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!(
                            "TFTP subtree {} is not inside the confinement {}",
                            p.display(),
                            confine.display()
                        ),
                    ));
                }
                Ok(p)
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Confinement {
            anchor: anchor.into(),
            prefix,
            subtrees,
            world_readable,
        })
    }

    /// Refuses a resolved file outside the subtrees or not world-readable.
    fn allowed(&self, probe: &OwnedFd, mode: u32) -> Result<(), Refusal> {
        if self.world_readable && mode & 0o004 == 0 {
            return Err(refuse(
                ErrorCode::ACCESS_VIOLATION,
                "file is not world-readable",
            ));
        }
        if self.subtrees.is_empty() {
            return Ok(());
        }
        let link = format!("/proc/self/fd/{}", probe.as_raw_fd());
        let real = std::fs::read_link(&link).map_err(|e| {
            refuse(
                ErrorCode::ACCESS_VIOLATION,
                format!("cannot tell where the file is ({link}: {e})"),
            )
        })?;
        if self.subtrees.iter().any(|t| real.starts_with(t)) {
            Ok(())
        } else {
            Err(refuse(
                ErrorCode::ACCESS_VIOLATION,
                "path leaves the served directories (symlink)",
            ))
        }
    }

    fn open_how(&self, rel: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
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
        openat2(self.anchor.as_fd(), path, how)
    }

    /// Opens a sanitized request path for reading; only regular files.
    ///
    /// The type is checked on an O_PATH descriptor first so a device or FIFO
    /// is never really opened (no side effects, no blocking), then checked
    /// again on the readable descriptor in case the entry was swapped between.
    pub fn open_file(&self, rel: &Path) -> Result<(File, u64), Refusal> {
        // openat2 rejects O_PATH combined with anything but CLOEXEC/DIRECTORY/NOFOLLOW.
        let probe = self.open_how(rel, OFlag::O_PATH).map_err(errno_refusal)?;
        let st = fstat(probe.as_fd()).map_err(errno_refusal)?;
        regular(st.st_mode)?;
        self.allowed(&probe, st.st_mode)?;
        let fd = self
            .open_how(rel, OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY)
            .map_err(errno_refusal)?;
        let st2 = fstat(fd.as_fd()).map_err(errno_refusal)?;
        regular(st2.st_mode)?;
        if (st.st_dev, st.st_ino) != (st2.st_dev, st2.st_ino) {
            return Err(refuse(ErrorCode::UNDEFINED, "file changed while opening"));
        }
        Ok((File::from(fd), st2.st_size as u64))
    }
}

fn regular(mode: u32) -> Result<(), Refusal> {
    let kind = SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits());
    if kind == SFlag::S_IFREG {
        Ok(())
    } else if kind == SFlag::S_IFDIR {
        Err(refuse(ErrorCode::ACCESS_VIOLATION, "is a directory"))
    } else {
        Err(refuse(ErrorCode::ACCESS_VIOLATION, "not a regular file"))
    }
}

/// Maps an openat2 failure to the code a client sees.
fn errno_refusal(e: Errno) -> Refusal {
    match e {
        // pxelinux probes many missing names: this is the common, quiet case.
        Errno::ENOENT | Errno::ENOTDIR => refuse(ErrorCode::FILE_NOT_FOUND, "file not found"),
        Errno::EXDEV => refuse(
            ErrorCode::ACCESS_VIOLATION,
            "path escapes the confinement (symlink or '..')",
        ),
        Errno::ELOOP => refuse(
            ErrorCode::ACCESS_VIOLATION,
            "too many symlinks or a magic link",
        ),
        Errno::EACCES | Errno::EPERM => refuse(ErrorCode::ACCESS_VIOLATION, "permission denied"),
        other => refuse(ErrorCode::UNDEFINED, format!("cannot open: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_table() {
        let ok = [
            ("pxelinux.0", "pxelinux.0"),
            ("/pxelinux.0", "pxelinux.0"),
            ("\\boot\\vmlinuz", "boot/vmlinuz"),
            ("pxelinux.cfg//./default", "pxelinux.cfg/default"),
            (
                "pxelinux.cfg/01-aa-bb-cc-dd-ee-ff",
                "pxelinux.cfg/01-aa-bb-cc-dd-ee-ff",
            ),
            ("a..b", "a..b"),
        ];
        for (input, want) in ok {
            assert_eq!(sanitize(input).unwrap(), Path::new(want), "{input}");
        }
        let bad = [
            ("../etc/passwd", ErrorCode::ACCESS_VIOLATION),
            ("a/../../b", ErrorCode::ACCESS_VIOLATION),
            ("..\\x", ErrorCode::ACCESS_VIOLATION),
            ("//etc/passwd", ErrorCode::ACCESS_VIOLATION),
            ("\\\\srv\\x", ErrorCode::ACCESS_VIOLATION),
            ("a\0b", ErrorCode::ACCESS_VIOLATION),
            ("/", ErrorCode::FILE_NOT_FOUND),
            ("./.", ErrorCode::FILE_NOT_FOUND),
        ];
        for (input, code) in bad {
            assert_eq!(sanitize(input).unwrap_err().code, code, "{input:?}");
        }
    }

    #[test]
    fn open_table() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path();
        std::fs::create_dir_all(top.join("tftp/sub")).unwrap();
        std::fs::create_dir_all(top.join("images/x")).unwrap();
        std::fs::write(top.join("tftp/f"), b"hello").unwrap();
        std::fs::write(top.join("images/x/k"), b"kernel").unwrap();
        std::fs::write(top.join("secret"), b"s").unwrap();
        let ln =
            |target: &str, link: &str| std::os::unix::fs::symlink(target, top.join(link)).unwrap();
        ln("../images", "tftp/images");
        ln("/etc/passwd", "tftp/evil");
        ln("../..", "tftp/up");
        ln("../secret", "tftp/sec");
        ln("f", "tftp/sub/loop");
        ln("/proc/self/root/etc/passwd", "tftp/magic");
        let c = Confinement::open(&top.join("tftp"), top, &[], false).unwrap();
        let cases: &[(&str, Result<u64, ErrorCode>)] = &[
            ("f", Ok(5)),
            ("images/x/k", Ok(6)),
            ("sec", Ok(1)), // inside the boundary, outside the root: allowed
            ("missing", Err(ErrorCode::FILE_NOT_FOUND)),
            ("f/x", Err(ErrorCode::FILE_NOT_FOUND)),
            ("evil", Err(ErrorCode::ACCESS_VIOLATION)),
            ("up/etc/passwd", Err(ErrorCode::ACCESS_VIOLATION)),
            ("magic", Err(ErrorCode::ACCESS_VIOLATION)),
            ("sub", Err(ErrorCode::ACCESS_VIOLATION)),
            ("sub/loop", Err(ErrorCode::FILE_NOT_FOUND)), // relative to sub/
        ];
        for (name, want) in cases {
            let got = c
                .open_file(Path::new(name))
                .map(|(_, n)| n)
                .map_err(|r| r.code);
            assert_eq!(&got, want, "{name}");
        }
        // Confined to the root itself, the sibling is out of bounds.
        let tight = Confinement::open(&top.join("tftp"), &top.join("tftp"), &[], false).unwrap();
        for name in ["sec", "images/x/k", "up/secret"] {
            let got = tight.open_file(Path::new(name)).map_err(|r| r.code);
            assert_eq!(got.unwrap_err(), ErrorCode::ACCESS_VIOLATION, "{name}");
        }
        assert!(Confinement::open(top, &top.join("tftp"), &[], false).is_err());
    }

    #[test]
    fn subtrees_and_world_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path();
        for d in [
            "tftp/pxelinux.cfg",
            "images/x/gen/1",
            "roots/r/etc",
            "cluster",
        ] {
            std::fs::create_dir_all(top.join(d)).unwrap();
        }
        let file = |p: &str, mode: u32| {
            std::fs::write(top.join(p), p).unwrap();
            std::fs::set_permissions(top.join(p), std::fs::Permissions::from_mode(mode)).unwrap();
        };
        file("tftp/pxelinux.0", 0o644);
        file("images/x/gen/1/vmlinuz", 0o644);
        file("images/x/gen/1/pxelinux.cfg", 0o644);
        file("images/x/gen/1/private", 0o600);
        file("roots/r/etc/passwd", 0o644);
        file("cluster/secret", 0o644);
        let ln =
            |target: &str, link: &str| std::os::unix::fs::symlink(target, top.join(link)).unwrap();
        ln("../images", "tftp/images");
        ln(
            "../images/x/gen/1/pxelinux.cfg",
            "tftp/pxelinux.cfg/default",
        );
        ln("../roots", "tftp/roots");
        ln("../cluster/secret", "tftp/secret");
        ln("../../roots/r/etc/passwd", "images/x/passwd");
        let c = Confinement::open(
            &top.join("tftp"),
            top,
            &["tftp".into(), "images".into()],
            true,
        )
        .unwrap();
        let ok = [
            "pxelinux.0",
            "images/x/gen/1/vmlinuz",
            "pxelinux.cfg/default",
        ];
        for name in ok {
            assert!(c.open_file(Path::new(name)).is_ok(), "{name}");
        }
        let bad = [
            "images/x/gen/1/private",
            "roots/r/etc/passwd",
            "secret",
            "images/x/passwd",
        ];
        for name in bad {
            let r = c.open_file(Path::new(name)).unwrap_err();
            assert_eq!(r.code, ErrorCode::ACCESS_VIOLATION, "{name}: {r:?}");
        }
        for bad in ["../x", "/etc"] {
            assert!(Confinement::open(&top.join("tftp"), top, &[bad.into()], true).is_err());
        }
        // Not there yet: accepted, and nothing outside it is served.
        let later = Confinement::open(&top.join("tftp"), top, &["later".into()], true).unwrap();
        assert!(later.open_file(Path::new("pxelinux.0")).is_err());
    }
}
