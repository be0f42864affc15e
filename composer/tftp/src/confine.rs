//! Request names and refusals: TFTP's side of confined opening.
//!
//! The policy itself (openat2 RESOLVE_BENEATH under the boundary, the
//! allow-list of subtrees, world-readable regular files only) is
//! compose-confine's, shared with compose-http. Here: how a TFTP file name
//! becomes a relative path, and which ERROR code and text a denial becomes.

use std::fs::File;
use std::path::{Path, PathBuf};

use compose_confine::{Confinement, Denied};

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

/// Opens the confinement a [`crate::TftpConfig`] describes: `subtrees` are
/// plain relative paths under `confine`, and may not exist yet.
pub fn open_confinement(
    root: &Path,
    confine: &Path,
    subtrees: &[PathBuf],
    world_readable: bool,
) -> std::io::Result<Confinement> {
    subtrees.iter().try_fold(
        Confinement::open(root, confine)?.world_readable_only(world_readable),
        |c, sub| c.allow_subtree(sub),
    )
}

/// Opens a sanitized request path for reading (compose-confine's policy);
/// the file and its size, or the refusal the client sees.
pub fn open_file(c: &Confinement, rel: &Path) -> Result<(File, u64), Refusal> {
    let (file, st) = c.open_file(rel).map_err(refusal)?;
    Ok((file, st.st_size as u64))
}

/// The TFTP error a client sees for a denied open.
fn refusal(d: Denied) -> Refusal {
    let code = match d {
        Denied::Missing => ErrorCode::FILE_NOT_FOUND,
        Denied::Io(_) | Denied::Changed => ErrorCode::UNDEFINED,
        _ => ErrorCode::ACCESS_VIOLATION,
    };
    // These three were worded so before the policy had its own crate, and
    // clients see them in ERROR packets: kept.
    let reason = match d {
        Denied::NotWorldReadable => "file is not world-readable".into(),
        Denied::Unlocatable { link, error } => {
            format!("cannot tell where the file is ({link}: {error})")
        }
        Denied::Outside => "path leaves the served directories (symlink)".into(),
        other => other.to_string(),
    };
    refuse(code, reason)
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

    /// What a client sees for each kind of denial (the policy's own table
    /// is compose-confine's): codes, and the texts clients have seen.
    #[test]
    fn refusals_on_the_wire() {
        let dir = compose_confine::testing::publish_tree();
        let top = dir.path();
        let c = open_confinement(
            &top.join("tftp"),
            top,
            &["tftp".into(), "images".into()],
            true,
        )
        .unwrap();
        assert_eq!(open_file(&c, Path::new("f")).unwrap().1, 5);
        let av = ErrorCode::ACCESS_VIOLATION;
        let cases = [
            ("missing", ErrorCode::FILE_NOT_FOUND, "file not found"),
            ("private", av, "file is not world-readable"),
            ("root", av, "path leaves the served directories (symlink)"),
            ("evil", av, "path escapes the confinement (symlink or '..')"),
            ("sub", av, "is a directory"),
        ];
        for (name, code, reason) in cases {
            let r = open_file(&c, Path::new(name)).unwrap_err();
            assert_eq!((r.code, r.reason.as_str()), (code, reason), "{name}");
        }
        assert!(open_confinement(top, &top.join("tftp"), &[], false).is_err());
        assert!(open_confinement(&top.join("tftp"), top, &["../x".into()], true).is_err());
    }
}
