//! Removing the usual non-determinism from an image root after every layer:
//! apt lists and caches, logs, the ld.so aux cache, machine ids, ssh host
//! keys (each node must make its own), `*-old` backups and the like.
//!
//! Every path is checked component by component so that a symlink in the
//! image can never make a removal land on the host.

use anyhow::{Context, Result};
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// Folders whose contents are removed entirely.
const EMPTY_DIRS: &[&str] = &["var/lib/apt/lists", "var/cache/apt/archives", "var/tmp"];

/// Single files removed when present.
const FILES: &[&str] = &[
    "var/cache/ldconfig/aux-cache",
    "var/lib/dbus/machine-id",
    "var/lib/systemd/random-seed",
    "var/cache/apt/pkgcache.bin",
    "var/cache/apt/srcpkgcache.bin",
    "etc/ld.so.cache~",
];

/// Decides from a file name whether the file goes.
type NameFilter = fn(&str) -> bool;

/// (folder, filter): matching files in the folder are removed.
const PATTERNS: &[(&str, NameFilter)] = &[
    ("etc/ssh", |n| {
        n.starts_with("ssh_host_") && n.contains("_key")
    }),
    ("var/cache/debconf", |n| n.ends_with("-old")),
    ("var/lib/dpkg", |n| n.ends_with("-old")),
    ("etc", |n| {
        matches!(
            n,
            "passwd-" | "group-" | "shadow-" | "gshadow-" | "subuid-" | "subgid-"
        )
    }),
];

#[derive(Debug, Default, PartialEq)]
pub struct ScrubReport {
    pub removed: Vec<String>,
}

pub fn scrub(root: &Path) -> Result<ScrubReport> {
    let mut report = ScrubReport::default();
    for dir in EMPTY_DIRS {
        if let Some(d) = real_path(root, dir)? {
            empty_dir(&d, dir, &mut report)?;
        }
    }
    for file in FILES {
        if let Some(p) = real_path(root, file)? {
            remove(&p, file, &mut report)?;
        }
    }
    for (dir, pred) in PATTERNS {
        if let Some(d) = real_path(root, dir)? {
            for name in sorted_names(&d)? {
                if pred(&name) {
                    remove(&d.join(&name), &format!("{dir}/{name}"), &mut report)?;
                }
            }
        }
    }
    truncate_logs(root, &mut report)?;
    // An empty machine-id makes systemd generate a fresh one per boot.
    if let Some(p) = real_path(root, "etc/machine-id")? {
        if fs::metadata(&p)?.len() > 0 {
            fs::write(&p, "")?;
            report.removed.push("etc/machine-id (emptied)".into());
        }
    }
    Ok(report)
}

/// `root/rel` if every component exists and none is a symlink.
fn real_path(root: &Path, rel: &str) -> Result<Option<PathBuf>> {
    let mut p = root.to_path_buf();
    for comp in rel.split('/') {
        p.push(comp);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => return Ok(None),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("inspecting {}", p.display())),
        }
    }
    Ok(Some(p))
}

fn sorted_names(dir: &Path) -> Result<Vec<String>> {
    if !fs::symlink_metadata(dir)?.is_dir() {
        return Ok(Vec::new());
    }
    let mut names: Vec<String> = fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// Removes everything inside `dir`, keeping `dir` and apt's `partial/`.
fn empty_dir(dir: &Path, rel: &str, report: &mut ScrubReport) -> Result<()> {
    for name in sorted_names(dir)? {
        let p = dir.join(&name);
        if name == "partial" && fs::symlink_metadata(&p)?.is_dir() {
            empty_dir(&p, &format!("{rel}/partial"), report)?;
            continue;
        }
        remove(&p, &format!("{rel}/{name}"), report)?;
    }
    Ok(())
}

fn remove(p: &Path, rel: &str, report: &mut ScrubReport) -> Result<()> {
    let meta = match fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("inspecting {}", p.display())),
    };
    if meta.is_dir() {
        fs::remove_dir_all(p)
    } else {
        fs::remove_file(p)
    }
    .with_context(|| format!("removing {}", p.display()))?;
    report.removed.push(rel.to_string());
    Ok(())
}

/// Logs keep their files (packages create some with special owners and
/// modes) but lose their time-stamped contents.
fn truncate_logs(root: &Path, report: &mut ScrubReport) -> Result<()> {
    let Some(log) = real_path(root, "var/log")? else {
        return Ok(());
    };
    let mut stack = vec![(log, "var/log".to_string())];
    while let Some((dir, rel)) = stack.pop() {
        for name in sorted_names(&dir)? {
            let p = dir.join(&name);
            let r = format!("{rel}/{name}");
            let meta = fs::symlink_metadata(&p)?;
            if meta.is_dir() {
                if name == "journal" {
                    empty_dir(&p, &r, report)?;
                } else {
                    stack.push((p, r));
                }
            } else if meta.is_file() && meta.len() > 0 {
                fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&p)
                    .with_context(|| format!("truncating {}", p.display()))?;
                report.removed.push(format!("{r} (truncated)"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    #[test]
    fn scrubs_the_usual_suspects_and_keeps_the_rest() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for (rel, content) in [
            ("var/lib/apt/lists/deb.debian.org_Packages", "x"),
            ("var/lib/apt/lists/partial/p", "x"),
            ("var/cache/apt/pkgcache.bin", "x"),
            ("var/cache/ldconfig/aux-cache", "x"),
            ("etc/ssh/ssh_host_ed25519_key", "k"),
            ("etc/ssh/ssh_host_ed25519_key.pub", "k"),
            ("etc/ssh/sshd_config", "keep"),
            ("etc/machine-id", "0123"),
            ("var/log/dpkg.log", "2026-11-25 install"),
            ("var/log/apt/history.log", "Start-Date"),
            ("var/log/wtmp", ""),
            ("var/lib/dpkg/status-old", "x"),
            ("var/lib/dpkg/status", "keep"),
            ("etc/passwd-", "x"),
        ] {
            touch(r, rel, content);
        }
        let report = scrub(r).unwrap();
        assert!(!r.join("var/lib/apt/lists/deb.debian.org_Packages").exists());
        assert!(r.join("var/lib/apt/lists/partial").is_dir());
        assert!(!r.join("var/lib/apt/lists/partial/p").exists());
        assert!(!r.join("etc/ssh/ssh_host_ed25519_key.pub").exists());
        assert_eq!(
            fs::read_to_string(r.join("etc/ssh/sshd_config")).unwrap(),
            "keep"
        );
        assert_eq!(fs::read_to_string(r.join("etc/machine-id")).unwrap(), "");
        assert_eq!(fs::read_to_string(r.join("var/log/dpkg.log")).unwrap(), "");
        assert!(r.join("var/log/wtmp").exists());
        assert!(!r.join("var/lib/dpkg/status-old").exists());
        assert!(r.join("var/lib/dpkg/status").exists());
        assert!(!r.join("etc/passwd-").exists());
        assert!(report
            .removed
            .contains(&"var/log/apt/history.log (truncated)".to_string()));
        // idempotent: a second pass finds nothing
        assert_eq!(scrub(r).unwrap(), ScrubReport::default());
    }

    #[test]
    fn never_follows_a_symlink_out_of_the_root() {
        let outside = tempfile::tempdir().unwrap();
        touch(outside.path(), "lists/precious", "data");
        touch(outside.path(), "log/precious.log", "data");
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("var/lib/apt")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("lists"),
            d.path().join("var/lib/apt/lists"),
        )
        .unwrap();
        std::os::unix::fs::symlink(outside.path().join("log"), d.path().join("var/log")).unwrap();
        scrub(d.path()).unwrap();
        assert!(outside.path().join("lists/precious").exists());
        assert_eq!(
            fs::read_to_string(outside.path().join("log/precious.log")).unwrap(),
            "data"
        );
    }
}
