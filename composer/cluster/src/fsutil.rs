//! Crash-safe file operations: temp entry in the same directory, fsync,
//! rename over the target, fsync the directory. A crash at any point
//! leaves the old entry or the new one, never a mix.

use anyhow::{Context, Result};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

fn temp_name(target: &Path) -> Result<PathBuf> {
    let name = target.file_name().context("target has no file name")?;
    Ok(target.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Writes a new file (it must not exist), with `mode`, and fsyncs it.
pub fn create_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    // The umask may have narrowed the mode given to open.
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Replaces `target` with a file holding `bytes`.
pub fn replace_file(target: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let tmp = temp_name(target)?;
    let _ = fs::remove_file(&tmp);
    create_file(&tmp, bytes, mode)?;
    fs::rename(&tmp, target).with_context(|| format!("replacing {}", target.display()))?;
    sync_dir(parent_dir(target))
}

/// Points the symlink `link` at `target`, replacing whatever `link` was.
pub fn replace_symlink(target: &str, link: &Path) -> Result<()> {
    let tmp = temp_name(link)?;
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("creating symlink {}", tmp.display()))?;
    fs::rename(&tmp, link).with_context(|| format!("switching {}", link.display()))?;
    sync_dir(parent_dir(link))
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

pub fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// Creates `dir` (and parents) with `mode` for the last component.
pub fn create_dir(dir: &Path, mode: u32) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_file_name_lives_in_the_current_directory() {
        // `--nodes nodes.toml`: the directory to fsync is `.`, not "".
        assert_eq!(parent_dir(Path::new("nodes.toml")), Path::new("."));
        assert_eq!(parent_dir(Path::new("etc/nodes.toml")), Path::new("etc"));
        assert_eq!(parent_dir(Path::new("/nodes.toml")), Path::new("/"));
    }
}
