//! Reading an image's root from the host, confined to that root.
//!
//! Publish reads a few things out of a materialized root (the kernel pair,
//! /vmlinuz, boot settings) and hard-links the kernel pair into the TFTP
//! tree. The image decides what its symlinks say: `/boot -> /etc` or
//! `/boot/vmlinuz-6.1 -> /etc/shadow` must mean the *image's* /etc, never the
//! build host's. Every path here goes through the extractor's own confined
//! resolution ([`crate::safefs`]: openat2 RESOLVE_IN_ROOT), so absolute and
//! `..` symlinks resolve as if the root were `/`; legitimate links such as
//! `/boot/vmlinuz -> /boot/vmlinuz-6.1.0-9-amd64` keep working.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{readlinkat, AtFlags};
use nix::sys::stat::{fstat, SFlag};

use crate::error::{IoContext, StoreError};
use crate::safefs::{self, Components, Root};

/// A materialized image root, read with the image's symlinks confined to it.
pub struct ImageRoot {
    root: Root,
}

impl ImageRoot {
    /// Opens the root directory `path` (a real directory on the host).
    pub fn open(path: &Path) -> Result<ImageRoot, StoreError> {
        Ok(ImageRoot {
            root: Root::open(path)?,
        })
    }

    /// The host path of the root.
    pub fn path(&self) -> &Path {
        self.root.path()
    }

    /// Names in directory `rel` (symlinks resolved inside the root), sorted;
    /// None if it does not exist there or is not a directory.
    pub fn read_dir(&self, rel: &str) -> Result<Option<Vec<OsString>>, StoreError> {
        let comps = self.comps(rel)?;
        let shown = self.root.display(&comps);
        let dir = match self.root.open_dir(&comps) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(None),
            Err(e) => return Err(e).at("opening", shown),
        };
        let names = safefs::list_dir(&dir).at("listing", shown)?;
        Ok(Some(
            names
                .into_iter()
                .map(|n| OsStr::from_bytes(&n).to_os_string())
                .collect(),
        ))
    }

    /// The target of symlink `rel` (its directories resolved inside the
    /// root, the link itself not followed); None if `rel` is not a symlink.
    pub fn read_link(&self, rel: &str) -> Result<Option<PathBuf>, StoreError> {
        let comps = self.comps(rel)?;
        let Some((name, parent)) = comps.split_last() else {
            return Ok(None);
        };
        let dir = match self.root.open_dir(parent) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(None),
            Err(e) => return Err(e).at("opening", self.root.display(parent)),
        };
        match readlinkat(dir.as_fd(), OsStr::from_bytes(name)) {
            Ok(target) => Ok(Some(PathBuf::from(target))),
            Err(Errno::ENOENT | Errno::EINVAL) => Ok(None),
            Err(e) => Err(e).at("reading link", self.root.display(&comps)),
        }
    }

    /// The content of regular file `rel`; None if nothing is there.
    /// Anything else (a device node, a FIFO, a directory) is refused
    /// without being opened for reading.
    pub fn read_file(&self, rel: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let comps = self.comps(rel)?;
        let shown = self.root.display(&comps);
        let Some(fd) = self.open_regular(&comps, rel)? else {
            return Ok(None);
        };
        // Reopening the O_PATH descriptor through /proc reads exactly the
        // inode just checked, without resolving the name again.
        std::fs::read(proc_fd(&fd)).at("reading", shown).map(Some)
    }

    /// Hard-links the regular file `rel` resolves to as `dst` (a host path
    /// outside the root, on the same file system).
    pub fn link_file(&self, rel: &str, dst: &Path) -> Result<(), StoreError> {
        let comps = self.comps(rel)?;
        let shown = self.root.display(&comps);
        let Some(fd) = self.open_regular(&comps, rel)? else {
            return Err(StoreError::io(
                "linking",
                shown,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        };
        // linkat(AT_EMPTY_PATH) would need CAP_DAC_READ_SEARCH; the /proc
        // link with AT_SYMLINK_FOLLOW links the same inode without it.
        nix::unistd::linkat(
            nix::fcntl::AT_FDCWD,
            &proc_fd(&fd),
            nix::fcntl::AT_FDCWD,
            dst,
            AtFlags::AT_SYMLINK_FOLLOW,
        )
        .at("linking", dst)
    }

    /// An O_PATH descriptor of the regular file `comps` resolves to inside
    /// the root; None if nothing is there, an error if it is not a file.
    fn open_regular(&self, comps: &Components, rel: &str) -> Result<Option<OwnedFd>, StoreError> {
        let shown = self.root.display(comps);
        let fd = match self.root.open_path(comps) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(None),
            Err(e) => return Err(e).at("opening", shown),
        };
        let st = fstat(fd.as_fd()).at("inspecting", &shown)?;
        let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        if kind != SFlag::S_IFREG {
            return Err(StoreError::UnsafePath {
                entry: rel.to_string(),
                reason: format!(
                    "it resolves (inside the image) to {}, not a regular file; make it a file or a symlink to one",
                    kind_name(kind)
                ),
            });
        }
        Ok(Some(fd))
    }

    fn comps(&self, rel: &str) -> Result<Components, StoreError> {
        safefs::normalize(rel.as_bytes()).map_err(|reason| StoreError::UnsafePath {
            entry: rel.to_string(),
            reason: reason.to_string(),
        })
    }
}

fn proc_fd(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn kind_name(kind: SFlag) -> &'static str {
    match kind {
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFSOCK => "a socket",
        _ => "something else",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{symlink, MetadataExt};

    /// A root whose links all point at absolute host paths, next to a
    /// "host" directory holding files with the same names.
    #[test]
    fn symlinks_resolve_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let host = d.path().join("host");
        fs::create_dir_all(host.join("boot")).unwrap();
        fs::write(host.join("boot/vmlinuz-1"), "HOST").unwrap();
        let root = d.path().join("root");
        fs::create_dir_all(root.join("kernels")).unwrap();
        fs::write(root.join("kernels/vmlinuz-2"), "IMAGE").unwrap();
        // `/boot` -> the host's directory (absolute): must mean the image's.
        symlink(host.join("boot"), root.join("boot")).unwrap();
        // An absolute link meant for inside the image resolves there.
        symlink("/kernels/vmlinuz-2", root.join("vmlinuz")).unwrap();
        symlink("../../../../../../etc/passwd", root.join("up")).unwrap();

        let r = ImageRoot::open(&root).unwrap();
        assert_eq!(r.read_dir("boot").unwrap(), None);
        assert_eq!(r.read_file("boot/vmlinuz-1").unwrap(), None);
        assert_eq!(r.read_file("vmlinuz").unwrap().unwrap(), b"IMAGE");
        assert_eq!(r.read_file("up").unwrap(), None);
        assert_eq!(
            r.read_link("vmlinuz").unwrap(),
            Some(PathBuf::from("/kernels/vmlinuz-2"))
        );
        assert_eq!(r.read_link("kernels/vmlinuz-2").unwrap(), None);
        assert_eq!(
            r.read_dir("kernels").unwrap().unwrap(),
            vec![OsString::from("vmlinuz-2")]
        );

        let dst = d.path().join("linked");
        r.link_file("vmlinuz", &dst).unwrap();
        let ino = fs::metadata(root.join("kernels/vmlinuz-2")).unwrap().ino();
        assert_eq!(fs::metadata(&dst).unwrap().ino(), ino);
        assert!(r.link_file("boot/vmlinuz-1", &d.path().join("x")).is_err());
        assert!(!d.path().join("x").exists());
    }

    #[test]
    fn non_files_are_refused() {
        let d = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(&d.path().join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        fs::create_dir(d.path().join("dir")).unwrap();
        let r = ImageRoot::open(d.path()).unwrap();
        let err = r.read_file("fifo").unwrap_err().to_string();
        assert!(err.contains("a FIFO, not a regular file"), "{err}");
        let err = r.read_file("dir").unwrap_err().to_string();
        assert!(err.contains("a directory"), "{err}");
    }
}
