//! Helpers shared by the unit tests.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;

pub const SDE: i64 = 1_700_000_000;

/// Sets mtime (and atime) without following symlinks.
pub fn set_mtime(path: &Path, secs: i64) {
    let t = TimeSpec::new(secs, 0);
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &t,
        &t,
        UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

pub const LONG_DIR: &str =
    "usr/share/doc/a-package-with-a-rather-long-name-to-push-paths-past-the-ustar-limit";

/// A small tree with one of everything `write_layer` handles unprivileged.
pub fn synthetic_root(root: &Path) {
    for d in ["bin", "etc", "tmp", LONG_DIR] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::write(root.join("bin/tool"), b"#!/bin/sh\necho hi\n").unwrap();
    chmod(&root.join("bin/tool"), 0o755);
    fs::write(root.join("bin/su"), b"setuid").unwrap();
    chmod(&root.join("bin/su"), 0o4755);
    fs::write(root.join("etc/hostname"), b"node\n").unwrap();
    chmod(&root.join("etc/hostname"), 0o644);
    fs::hard_link(root.join("etc/hostname"), root.join("etc/hostname.link")).unwrap();
    std::os::unix::fs::symlink("/usr/share/zoneinfo/UTC", root.join("etc/localtime")).unwrap();
    let long_file = root
        .join(LONG_DIR)
        .join("changelog.Debian.with-a-long-name-too");
    fs::write(&long_file, vec![b'x'; 1000]).unwrap();
    chmod(&long_file, 0o644);
    nix::unistd::mkfifo(
        &root.join("etc/initctl"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    std::os::unix::net::UnixListener::bind(root.join("tmp/socket")).unwrap();
    fs::write(root.join("future"), b"from the future").unwrap();
    chmod(&root.join("future"), 0o600);
    fs::write(root.join("old"), b"").unwrap();
    chmod(&root.join("old"), 0o444);
    chmod(&root.join("tmp"), 0o1777);
    for d in ["bin", "etc", LONG_DIR, "usr/share/doc", "usr/share", "usr"] {
        chmod(&root.join(d), 0o755);
    }
    set_all_mtimes(root, 1_600_000_000);
    set_mtime(&root.join("future"), 2_000_000_000);
    set_mtime(&root.join("old"), 1_000_000_000);
}

/// Sets every mtime under `root` (children before parents).
pub fn set_all_mtimes(root: &Path, secs: i64) {
    let scan = crate::scan(root).unwrap();
    let mut paths: Vec<&Path> = scan.iter().map(|(p, _)| p).collect();
    paths.reverse();
    for p in paths {
        set_mtime(&root.join(p), secs);
    }
}

/// Everything observable about a tree except inode numbers and ctimes;
/// hard links are shown by naming the other paths of the inode.
pub fn describe(root: &Path) -> BTreeMap<String, String> {
    let scan = crate::scan(root).unwrap();
    let mut inodes: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (p, e) in scan.iter() {
        if e.kind != crate::EntryKind::Dir && e.nlink > 1 {
            inodes
                .entry(e.ino)
                .or_default()
                .push(p.display().to_string());
        }
    }
    let mut out = BTreeMap::new();
    for (p, e) in scan.iter() {
        let full = root.join(p);
        let extra = match e.kind {
            crate::EntryKind::File => format!("{:?}", fs::read(&full).unwrap()),
            crate::EntryKind::Symlink => format!("-> {}", fs::read_link(&full).unwrap().display()),
            _ => String::new(),
        };
        let links = inodes
            .get(&e.ino)
            .filter(|_| e.nlink > 1)
            .cloned()
            .unwrap_or_default();
        let meta = fs::symlink_metadata(&full).unwrap();
        let xattrs: Vec<String> = xattr::list(&full)
            .map(|l| l.map(|n| n.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let line = format!(
            "{:?} {:o} {}:{} mtime={} rdev={} links={links:?} xattrs={xattrs:?} {extra}",
            e.kind,
            e.mode & 0o7777,
            e.uid,
            e.gid,
            meta.mtime(),
            e.rdev
        );
        out.insert(p.display().to_string(), line);
    }
    out
}

/// One raw tar entry for hostile-archive tests.
pub struct Raw<'a> {
    pub name: &'a [u8],
    pub kind: u8,
    pub data: &'a [u8],
    pub link: &'a [u8],
}

/// A tar built from raw header fields, with no validation of names.
pub fn raw_tar(entries: &[Raw]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let f = crate::tarfmt::Fields {
            name: e.name,
            kind: e.kind,
            mode: if e.kind == b'5' { 0o755 } else { 0o644 },
            uid: u64::from(nix::unistd::geteuid().as_raw()),
            gid: u64::from(nix::unistd::getegid().as_raw()),
            size: if e.kind == b'0' {
                e.data.len() as u64
            } else {
                0
            },
            mtime: 1_600_000_000,
            link: e.link,
            // 1:3 (/dev/null): unlike 0:0 (a whiteout) it needs CAP_MKNOD.
            dev_major: 1,
            dev_minor: 3,
            ..Default::default()
        };
        crate::tarfmt::write_headers(&mut out, &f).unwrap();
        if e.kind == b'0' {
            out.extend_from_slice(e.data);
            out.extend_from_slice(crate::tarfmt::padding(e.data.len() as u64));
        }
    }
    out.extend_from_slice(&crate::tarfmt::TRAILER);
    out
}

/// Names in a tar, in order.
pub fn tar_names(tar: &[u8]) -> Vec<String> {
    let mut ar = tar::Archive::new(tar);
    ar.entries()
        .unwrap()
        .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
        .collect()
}

/// Fails with instructions unless running as root.
pub fn require_root() {
    if !nix::unistd::geteuid().is_root() {
        panic!("run as root: sudo cargo test -p compose-store -- --ignored privileged");
    }
}

/// Writes a snapshot of `image` over layers with these contents and tags it
/// as built `secs` seconds after a fixed time.
pub fn tagged_snapshot(
    store: &crate::Store,
    image: &str,
    layers: &[&[u8]],
    secs: u64,
) -> crate::SnapshotId {
    let layers = layers
        .iter()
        .map(|bytes| crate::LayerEntry {
            digest: store.put_blob(bytes).unwrap().into(),
            size: bytes.len() as u64,
            created_by: String::new(),
            comment: String::new(),
        })
        .collect();
    let spec = crate::SnapshotSpec {
        image: image.into(),
        architecture: "amd64".into(),
        source_date_epoch: SDE,
        layers,
        labels: BTreeMap::new(),
    };
    let id = store.write_snapshot(&spec).unwrap();
    let built = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000 + secs);
    store.tag(image, &id, built).unwrap();
    id
}

/// Every path under `root` with its inode and (for files) content: equal
/// listings mean nothing was written, replaced or removed.
pub fn listing(root: &Path) -> BTreeMap<String, (u64, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let content = if meta.is_file() {
                fs::read(&path).unwrap()
            } else {
                Vec::new()
            };
            if meta.is_dir() {
                todo.push(path.clone());
            }
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            out.insert(rel, (meta.ino(), content));
        }
    }
    out
}
