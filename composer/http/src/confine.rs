//! HTTP's side of confined opening: statuses, ETags and private files.
//!
//! The policy (openat2 RESOLVE_BENEATH under the publish tree, the allowed
//! directories `tftp/` and `images/` checked through /proc/self/fd,
//! world-readable regular files only) is compose-confine's, shared with
//! compose-tftp: HTTP has no credentials, and a 0600 file in the tree is a
//! secret that landed there by mistake. Here: which status and reason a
//! denial becomes, the validator of what was opened, and the per-client
//! files that bypass the policy because the peer check stands in for it.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use compose_confine::{check_regular, Confinement, Denied};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{fstat, FileStat};

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

/// Opens the confinement an [`crate::HttpConfig`] describes: `root` and
/// every `allow` entry (existing directories) must lie inside `confine`;
/// only world-readable files in them are served.
pub fn open_confinement(
    root: &Path,
    confine: &Path,
    allow: &[PathBuf],
) -> std::io::Result<Confinement> {
    let c = Confinement::open(root, confine)?.world_readable_only(true);
    let root = c.root();
    std::iter::once(root.as_path())
        .chain(allow.iter().map(PathBuf::as_path))
        .try_fold(c, |c, dir| c.allow_dir(dir))
}

/// Opens a request path for reading under the policy.
pub fn open_file(c: &Confinement, rel: &RelPath) -> Result<Opened, Refusal> {
    if rel.is_empty() {
        return Err(refuse(404, "no file name"));
    }
    // Never empty: `rel` has a component, so no "." fallback is needed.
    let (file, st) = c.open_file(Path::new(&rel.as_string())).map_err(refusal)?;
    Ok(Opened::from_file(file, &st))
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
            Some(errno) => refusal(Denied::from_errno(errno)),
            None => refuse(500, e.to_string()),
        })?;
    let st = fstat(file.as_fd()).map_err(|e| refusal(Denied::from_errno(e)))?;
    check_regular(st.st_mode).map_err(refusal)?;
    Ok(Opened::from_file(file, &st))
}

/// The status a client sees for a denied open; the reason is the policy's.
fn refusal(d: Denied) -> Refusal {
    let status = match d {
        Denied::Missing => 404,
        Denied::Io(_) | Denied::Unlocatable { .. } => 500,
        Denied::Changed => 503,
        _ => 403,
    };
    refuse(status, d.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::parse_path;

    #[test]
    fn open_table() {
        let dir = compose_confine::testing::publish_tree();
        let top = dir.path();
        let c = open_confinement(&top.join("tftp"), top, &[top.join("images")]).unwrap();
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
            let got = open_file(&c, &parse_path(name).unwrap())
                .map(|o| o.size)
                .map_err(|r| r.status);
            assert_eq!(&got, want, "{name}");
        }
        // The reasons are the response bodies clients have seen.
        let texts = [
            ("/missing", "file not found"),
            ("/private", "not world-readable"),
            ("/root", "outside the served directories"),
            ("/evil", "path escapes the confinement (symlink or '..')"),
            ("/sub", "is a directory"),
        ];
        for (name, reason) in texts {
            let r = open_file(&c, &parse_path(name).unwrap()).unwrap_err();
            assert_eq!(r.reason, reason, "{name}");
        }
        assert!(open_confinement(top, &top.join("tftp"), &[]).is_err());
        assert!(
            open_confinement(&top.join("tftp"), &top.join("tftp"), &[top.join("images")]).is_err()
        );
    }
}
