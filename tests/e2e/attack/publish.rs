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

/// Asserts that `out` (a compose run) failed and returns its stderr.
fn refused(out: &Output, what: &str) -> String {
    assert!(!out.status.success(), "{what} succeeded");
    stderr(out)
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
    let err = refused(
        &publish(&store, &tree, &snap),
        "publish of /boot -> host dir",
    );
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

/// The root test shell must not reach production: it is no longer in the
/// image (boot-test adds it to its scratch guests' own overlay), and a
/// publish that would switch the old unit on, from `--cmdline` or from a
/// layer's boot.d file, is refused. Production entries forbid console
/// edits (NOESCAPE, ALLOWOPTIONS 0): boot-test's VM tier boots the same
/// entries under pxelinux and syslinux.efi.
#[test]
fn attack_publish_test_shell_refused() {
    require_root();
    let f = crate::fixture();
    let (keep, store) = store_copy();
    let tree = keep.path().join("tree");
    let cold = f.cold["snapshot"].as_str().unwrap();

    // --cmdline: refused before anything is written.
    let out = Command::new(compose_bin())
        .arg("--store")
        .arg(&store)
        .arg("--root")
        .arg(&tree)
        .args([
            "publish",
            &format!("minimal@{cold}"),
            "--cmdline",
            "compose.test-shell=ttyS1",
        ])
        .output()
        .unwrap();
    let err = refused(&out, "publish --cmdline compose.test-shell");
    assert!(
        err.contains("compose.test-shell=ttyS1 (from --cmdline) would start a root shell")
            && err.contains("remove it from --cmdline"),
        "{err}"
    );
    assert!(
        !tree.join("images/minimal/gen").exists(),
        "a generation was written"
    );

    // A layer's boot.d file asking for it: refused, naming the file.
    let recipe = variant(
        "attack-test-shell-bootd",
        "[[layer]]\nname = \"test-shell-on\"\nkind = \"script\"\nrun = \"\"\"\n\
         echo '{\"cmdline\":[\"compose.test-shell=ttyS1\"]}' > /usr/lib/compose/boot.d/99-shell.json\n\"\"\"\n",
    );
    let snap = build_json(&store, &recipe)["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let err = refused(
        &publish(&store, &tree, &snap),
        "publish of a boot.d compose.test-shell",
    );
    assert!(
        err.contains("/usr/lib/compose/boot.d/99-shell.json in the snapshot"),
        "{err}"
    );
    assert!(!tree.join("images/minimal/current").exists());

    // The legitimate image publishes, carries no test shell, and its entry
    // allows no console edits.
    let report: serde_json::Value =
        serde_json::from_str(&ok(&publish(&store, &tree, cold))).unwrap();
    let root = PathBuf::from(report["generation"]["root"].as_str().unwrap());
    for path in [
        "usr/lib/compose/test-shell",
        "usr/lib/systemd/system/compose-test-shell.service",
        "etc/systemd/system/multi-user.target.wants/compose-test-shell.service",
    ] {
        assert!(
            fs::symlink_metadata(root.join(path)).is_err(),
            "{path} is in the image"
        );
    }
    assert!(root.join("usr/lib/compose/report-booted").is_file());
    let entry = fs::read_to_string(tree.join("tftp/pxelinux.cfg/default")).unwrap();
    for line in ["PROMPT 0", "NOESCAPE 1", "ALLOWOPTIONS 0"] {
        assert!(entry.lines().any(|l| l == line), "{line} missing:\n{entry}");
    }
    assert!(!entry.contains("compose.test-shell"), "{entry}");
}
