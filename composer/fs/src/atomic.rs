//! Crash-safe changes: write a temp entry in the same directory, fsync it,
//! rename it over the target, fsync the directory. A crash at any point
//! leaves the old entry or the new one, never a mix.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext};

/// The temp entry for `target`: `.NAME.tmp-PID` beside it, so the rename
/// stays in one directory (one filesystem) and two processes never share one.
fn temp_name(target: &Path) -> Result<PathBuf, Error> {
    let name = target.file_name().ok_or_else(|| {
        Error::new(
            "naming a temp entry for",
            target,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the path has no file name",
            ),
        )
    })?;
    Ok(target.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// The directory holding `path`: `.` for a bare file name (`--nodes
/// nodes.toml`), whose `parent()` is the empty path, which cannot be opened
/// to fsync.
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes a new file (it must not exist) holding `bytes`, with `mode`, and
/// fsyncs it. The mode is set at creation, so a secret is never readable by
/// others, not even for a moment.
pub fn create_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .at("creating", path)?;
    // The umask may have taken bits away; the mode asked for is the mode.
    f.set_permissions(fs::Permissions::from_mode(mode))
        .at("setting the mode of", path)?;
    f.write_all(bytes).at("writing", path)?;
    f.sync_all().at("syncing", path)
}

/// Replaces `target` with a file holding `bytes`, created with `mode`.
pub fn replace_file(target: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let tmp = temp_name(target)?;
    // A temp entry left by a killed process of the same pid: ours to reuse.
    let _ = fs::remove_file(&tmp);
    create_file(&tmp, bytes, mode)?;
    fs::rename(&tmp, target).at("replacing", target)?;
    sync_dir(parent_dir(target))
}

/// Points the symlink `link` at `target`, replacing whatever `link` was
/// (one rename: readers see the old target or the new one).
pub fn replace_symlink(target: &str, link: &Path) -> Result<(), Error> {
    let tmp = temp_name(link)?;
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).at("creating symlink", &tmp)?;
    fs::rename(&tmp, link).at("switching", link)?;
    sync_dir(parent_dir(link))
}

/// fsyncs a directory, so the entries renamed into it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<(), Error> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .at("syncing directory", dir)
}

/// Flushes everything written to the filesystem holding `path`: one syscall
/// for a whole materialized root instead of an fsync per file.
pub fn sync_filesystem(path: &Path) -> Result<(), Error> {
    let f = fs::File::open(path).at("opening", path)?;
    nix::unistd::syncfs(&f).at("syncing the filesystem of", path)
}

/// Creates `dir` (and its parents) and gives the last component `mode`
/// (whatever the umask).
pub fn create_dir(dir: &Path, mode: u32) -> Result<(), Error> {
    fs::create_dir_all(dir).at("creating directory", dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode)).at("setting the mode of", dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_bare_file_name_lives_in_the_current_directory() {
        // `--nodes nodes.toml`: the directory to fsync is `.`, not "".
        assert_eq!(parent_dir(Path::new("nodes.toml")), Path::new("."));
        assert_eq!(parent_dir(Path::new("etc/nodes.toml")), Path::new("etc"));
        assert_eq!(parent_dir(Path::new("/nodes.toml")), Path::new("/"));
    }

    #[test]
    fn replace_and_switch_leave_no_temp_files() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("gen.json");
        replace_file(&f, b"one", 0o644).unwrap();
        replace_file(&f, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"two");
        assert_eq!(fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
        let l = d.path().join("current");
        replace_symlink("gen/1", &l).unwrap();
        replace_symlink("gen/2", &l).unwrap();
        assert_eq!(fs::read_link(&l).unwrap().to_str(), Some("gen/2"));
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn create_file_refuses_an_existing_file_and_names_it() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("key");
        create_file(&f, b"a", 0o600).unwrap();
        let err = create_file(&f, b"b", 0o600).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert!(err.to_string().starts_with("creating "), "{err}");
        assert!(err.to_string().contains("key"), "{err}");
    }

    #[test]
    fn a_path_without_a_file_name_is_an_error_naming_it() {
        let err = replace_file(Path::new("/"), b"x", 0o644).unwrap_err();
        assert_eq!(err.path(), Path::new("/"));
    }

    #[test]
    fn create_dir_sets_the_mode_whatever_the_umask() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("a/b");
        create_dir(&sub, 0o700).unwrap();
        assert_eq!(fs::metadata(&sub).unwrap().mode() & 0o777, 0o700);
        sync_dir(&sub).unwrap();
        sync_filesystem(&sub).unwrap();
    }
}
