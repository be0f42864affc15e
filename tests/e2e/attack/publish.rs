//! Attacks: publish (see SECURITY.md).
//!
//! The image is not trusted to name host paths: its symlinks (`/boot`, the
//! kernel pair, usr/lib/compose/boot.d) must resolve inside its own root
//! when publish reads it, never onto the build host's files.

use crate::{build_json, store_copy, variant};
use compose_e2e::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn publish(store: &Path, tree: &Path, snapshot: &str) -> Output {
    Command::new(compose_bin())
        .arg("--store")
        .arg(store)
        .arg("--root")
        .arg(tree)
        .args(["publish", &format!("minimal@{snapshot}"), "--json"])
        .output()
        .unwrap()
}

/// Host files an image must never reach: a kernel pair and boot settings
/// in a directory of the build host, on the publish tree's file system (so
/// a hard link to them would succeed if publish followed the image's links).
struct Canary {
    dir: tempfile::TempDir,
}

const SECRET: &str = "HOST-SECRET-canary";

impl Canary {
    fn new() -> Canary {
        let dir = tempfile::Builder::new()
            .prefix("compose-canary-")
            .tempdir_in("/var/tmp")
            .unwrap();
        fs::write(dir.path().join("vmlinuz-9.9.9-canary"), SECRET).unwrap();
        fs::write(dir.path().join("initrd.img-9.9.9-canary"), SECRET).unwrap();
        fs::create_dir(dir.path().join("bootd")).unwrap();
        fs::write(
            dir.path().join("bootd/00-canary.json"),
            format!(r#"{{"cmdline":["host.secret={SECRET}"]}}"#),
        )
        .unwrap();
        Canary { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Nothing links the host's files: each still has one name.
    fn assert_untouched(&self) {
        for f in ["vmlinuz-9.9.9-canary", "initrd.img-9.9.9-canary"] {
            let m = fs::metadata(self.path().join(f)).unwrap();
            assert_eq!(m.nlink(), 1, "{f} on the host was hard-linked by publish");
        }
    }
}

/// Every file under `dir` (not following symlinks) whose content holds `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let m = fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() && m.len() < 1 << 20 {
                let bytes = fs::read(e.path()).unwrap_or_default();
                if String::from_utf8_lossy(&bytes).contains(needle) {
                    out.push(e.path());
                }
            }
        }
    }
    out
}

/// `/boot -> /var/tmp/<host dir holding vmlinuz-*/initrd.img-*>`: before
/// the fix publish hard-linked the host's files into the generation, where
/// TFTP served them. Now `/boot` resolves inside the image, where that
/// directory does not exist: publish refuses, naming /boot and what to do,
/// and links nothing.
#[test]
fn attack_publish_boot_symlink_onto_host() {
    require_root();
    let canary = Canary::new();
    let (keep, store) = store_copy();
    let recipe = variant(
        "attack-boot-to-host",
        &format!(
            "[[layer]]\nname = \"boot-to-host\"\nkind = \"script\"\nrun = \"\"\"\nset -eu\nrm -rf /boot\nln -s {} /boot\n\"\"\"\n",
            canary.path().display()
        ),
    );
    let snap = build_json(&store, &recipe)["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let tree = keep.path().join("tree");
    let out = publish(&store, &tree, &snap);
    assert!(
        !out.status.success(),
        "publish of /boot -> host dir succeeded"
    );
    let err = stderr(&out);
    assert!(
        err.contains("/boot in the snapshot is a symlink to")
            && err.contains("resolved inside the image")
            && err.contains("make /boot a directory"),
        "{err}"
    );
    canary.assert_untouched();
    assert_eq!(files_containing(&tree, SECRET), Vec::<PathBuf>::new());
}

/// The legitimate shape of the same links still works: `/boot/vmlinuz-V`
/// as an absolute symlink to `/boot/k/vmlinuz-V` resolves inside the root
/// (the generation's kernel is the image's file, same inode). And
/// usr/lib/compose/boot.d pointing at a host directory of boot settings
/// reads nothing of the host: the host's cmdline never reaches the entry.
#[test]
fn attack_publish_boot_d_symlink_onto_host() {
    require_root();
    let canary = Canary::new();
    let (keep, store) = store_copy();
    let recipe = variant(
        "attack-bootd-to-host",
        &format!(
            "[[layer]]\nname = \"bootd-to-host\"\nkind = \"script\"\nrun = \"\"\"\nset -eu\n\
             mkdir /boot/k\n\
             for f in /boot/vmlinuz-* /boot/initrd.img-*; do n=${{f#/boot/}}; mv \"$f\" /boot/k/; ln -s \"/boot/k/$n\" \"$f\"; done\n\
             rm -rf /usr/lib/compose/boot.d\n\
             ln -s {}/bootd /usr/lib/compose/boot.d\n\"\"\"\n",
            canary.path().display()
        ),
    );
    let snap = build_json(&store, &recipe)["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let tree = keep.path().join("tree");
    let report: serde_json::Value =
        serde_json::from_str(&ok(&publish(&store, &tree, &snap))).unwrap();
    let g = &report["generation"];
    let cmdline = g["cmdline"].as_str().unwrap();
    assert!(
        !cmdline.contains(SECRET),
        "host boot settings read: {cmdline}"
    );
    let root = PathBuf::from(g["root"].as_str().unwrap());
    let version = g["kernel_version"].as_str().unwrap();
    let gen = tree.join("images/minimal/gen/1");
    for (name, file) in [("vmlinuz", "vmlinuz"), ("initrd.img", "initrd.img")] {
        let served = fs::symlink_metadata(gen.join(name)).unwrap();
        let image = fs::metadata(root.join(format!("boot/k/{file}-{version}"))).unwrap();
        assert!(served.is_file(), "{name} is a regular file");
        assert_eq!(served.ino(), image.ino(), "{name} is the image's own file");
    }
    canary.assert_untouched();
    assert_eq!(files_containing(&tree, SECRET), Vec::<PathBuf>::new());
}
