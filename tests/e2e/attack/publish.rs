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

/// Runs `args` as nobody (uid/gid 65534, no supplementary groups), as any
/// local user of the server could: through a shell running as that user
/// (setpriv's own exec of the target is not a user's: it still finds a
/// program behind a 0700 directory).
fn as_nobody(args: &[&str]) -> Output {
    require_program("setpriv", "util-linux");
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["sh", "-c", "exec \"$@\"", "sh"])
        .args(args)
        .output()
        .unwrap()
}

fn assert_denied(args: &[&str]) {
    let out = as_nobody(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("Permission denied"),
        "nobody ran {args:?}: status {}, stdout {}, stderr {err}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A local user of the server host must not use the images: not list or
/// read the store's blobs (every file of every image, secrets included),
/// not read a published root's files, not run its setuid binaries or open
/// its device nodes. TFTP's files (boot loaders, kernel, initrd) stay
/// readable, and the NFS server (root) still serves the roots: the
/// `netns_serve_*` test boots through the same tree layout.
#[test]
fn attack_publish_local_user_cannot_reach_images() {
    require_root();
    let f = crate::fixture();
    let blobs = f.store.join("blobs/sha256");
    let blob = fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .max_by_key(|e| e.metadata().unwrap().len())
        .unwrap()
        .path();
    assert_denied(&["ls", blobs.to_str().unwrap()]);
    assert_denied(&["cat", blob.to_str().unwrap()]);
    assert_denied(&["cat", f.store.join("index.json").to_str().unwrap()]);

    let (dir, tree, root, _nodes) = crate::serve::published_tree("compose-attack-perm-");
    // The scratch directory is 0700 (tempfile): open it as /srv is, so
    // only the tree's own modes stand between the user and the images.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let in_root = |p: &str| root.join(p).to_str().unwrap().to_string();
    assert_denied(&["cat", &in_root("etc/shadow")]);
    // World-readable inside the image, still out of reach on the host.
    assert_denied(&["cat", &in_root("etc/motd")]);
    assert_denied(&["ls", tree.join("chains").to_str().unwrap()]);
    let setuid = ["usr/bin/su", "usr/bin/mount", "usr/bin/passwd"]
        .into_iter()
        .find(|p| fs::metadata(root.join(p)).is_ok_and(|m| m.mode() & 0o4000 != 0))
        .expect("the minimal image has a setuid binary (su, mount or passwd)");
    assert_denied(&[&in_root(setuid), "--help"]);
    if root.join("dev/console").exists() {
        assert_denied(&["sh", "-c", &format!("echo x > {}", in_root("dev/console"))]);
    }

    // TFTP's side of the tree stays readable for the (unprivileged) reads
    // a TFTP server might do; the kernel is the root's own file.
    for p in [
        "tftp/pxelinux.0",
        "tftp/pxelinux.cfg/default",
        "images/minimal/gen/1/vmlinuz",
    ] {
        let out = as_nobody(&["cat", tree.join(p).to_str().unwrap()]);
        assert!(
            out.status.success() && !out.stdout.is_empty(),
            "{p}: {}",
            stderr(&out)
        );
    }

    // A tree made by an older compose (0755) is tightened by the next publish.
    fs::set_permissions(tree.join("roots"), fs::Permissions::from_mode(0o755)).unwrap();
    let snapshot = f.cold["snapshot"].as_str().unwrap();
    ok(&publish(&f.store, &tree, snapshot));
    assert_eq!(
        fs::metadata(tree.join("roots")).unwrap().mode() & 0o777,
        0o700
    );
    assert_denied(&["cat", &in_root("etc/motd")]);
}
