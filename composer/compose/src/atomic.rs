//! Crash-safe changes to the publish tree: write a temp entry in the same
//! directory, fsync it, rename it over the target, fsync the directory. A
//! crash at any point leaves the old entry or the new one, never a mix.

use anyhow::{Context, Result};
use std::fs;
use std::io::Write;
use std::path::Path;

fn temp_name(target: &Path) -> Result<std::path::PathBuf> {
    let name = target.file_name().context("target has no file name")?;
    Ok(target.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Replaces `target` with a file holding `bytes` (mode 0644).
pub fn write_file(target: &Path, bytes: &[u8]) -> Result<()> {
    write_file_mode(target, bytes, 0o644)
}

/// Replaces `target` with a file holding `bytes`, created with `mode` (so a
/// secret is never readable by others, not even as the temp file).
pub fn write_file_mode(target: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let tmp = temp_name(target)?;
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    // The umask may have taken bits away; the mode asked for is the mode.
    f.set_permissions(fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, target).with_context(|| format!("replacing {}", target.display()))?;
    sync_dir(target.parent().context("target has no parent")?)
}

/// Points the symlink `link` at `target`, replacing what `link` was.
pub fn symlink(target: &str, link: &Path) -> Result<()> {
    let tmp = temp_name(link)?;
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("creating symlink {}", tmp.display()))?;
    fs::rename(&tmp, link).with_context(|| format!("switching {}", link.display()))?;
    sync_dir(link.parent().context("link has no parent")?)
}

pub fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// Flushes everything written to the filesystem holding `path` (one
/// syscall for a whole materialized root instead of an fsync per file).
pub fn sync_filesystem(path: &Path) -> Result<()> {
    let f = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    nix::unistd::syncfs(&f).with_context(|| format!("syncing the filesystem of {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_and_switch_leave_no_temp_files() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("gen.json");
        write_file(&f, b"one").unwrap();
        write_file(&f, b"two").unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"two");
        let l = d.path().join("current");
        symlink("gen/1", &l).unwrap();
        symlink("gen/2", &l).unwrap();
        assert_eq!(fs::read_link(&l).unwrap().to_str(), Some("gen/2"));
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
