//! boot-test's additions to its scratch guests' own overlay: the root
//! command channel on ttyS1 that the in-guest checks run through.
//!
//! It used to ship in every netboot image, switched on by a kernel argument
//! any boot.d file, `--cmdline` or a console edit could add: a root shell
//! one serial cable away on production nodes. Now it exists only here, in
//! the per-node archive (`cluster/boot/<host>/overlay.cpio`) of boot-test's
//! scratch tree, which the netboot initramfs unpacks into the guest's tmpfs
//! upper layer; images and production publishes never carry it.

use anyhow::{bail, Context, Result};
use compose_cluster::cpio::{archive, Entry};
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

const SCRIPT: &str = include_str!("guest/test-shell");
const UNIT: &str = include_str!("guest/compose-test-shell.service");
/// Pulls the unit into multi-user.target. A drop-in rather than the usual
/// `.wants/` symlink: the cpio writer makes directories and files only.
const WANTS: &str = "# compose boot-test only: its scratch guests' command channel\n\
                     [Unit]\nWants=compose-test-shell.service\n";

/// Directories the entries need, parents first (0755, as Debian's: they
/// shadow the root's own in the overlay).
const DIRS: [&str; 7] = [
    "etc",
    "etc/systemd",
    "etc/systemd/system",
    "etc/systemd/system/multi-user.target.d",
    "usr",
    "usr/lib",
    "usr/lib/compose",
];

/// Appends the test shell to guest `host`'s overlay archive in `tree`
/// (written by `compose nodes regen` just before).
pub fn add_test_shell(tree: &Path, host: &str) -> Result<()> {
    let layout = compose_tree::Layout::new(tree);
    let path = layout.node_overlay(host);
    let theirs = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    // The regen archive ends with the trailer; the new entries go before
    // it (klibc's cpio stops at the first trailer) and end with their own.
    let trailer = archive(&[]);
    let Some(body) = theirs.strip_suffix(&trailer[..]) else {
        bail!(
            "{} does not end with a cpio trailer: run `compose nodes regen` again",
            path.display()
        );
    };
    // Directories regen's archive already makes are not made twice.
    let have = node_dirs(&layout.node_files(host))?;
    let mut entries: Vec<Entry> = DIRS
        .iter()
        .filter(|d| !have.contains(**d))
        .map(|d| Entry::Dir {
            path: d.to_string(),
            mode: 0o755,
            uid: 0,
            gid: 0,
        })
        .collect();
    for (file, mode, data) in [
        ("usr/lib/compose/test-shell", 0o755, SCRIPT),
        ("etc/systemd/system/compose-test-shell.service", 0o644, UNIT),
        (
            "etc/systemd/system/multi-user.target.d/compose-test-shell.conf",
            0o644,
            WANTS,
        ),
    ] {
        entries.push(Entry::File {
            path: file.to_string(),
            mode,
            uid: 0,
            gid: 0,
            data: data.as_bytes().to_vec(),
        });
    }
    let mut out = body.to_vec();
    out.extend_from_slice(&archive(&entries));
    // 0600 as regen made it: the archive carries the guest's host key.
    Ok(compose_fs::replace_file(&path, &out, 0o600)?)
}

/// Relative paths of the directories under a node's regen files.
fn node_dirs(dir: &Path) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("listing {}", d.display())),
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let rel = e.path().strip_prefix(dir).unwrap_or(&e.path()).to_owned();
                out.insert(rel.to_string_lossy().into_owned());
                stack.push(e.path());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Command, Stdio};

    const KLIBC_CPIO: &str = "/usr/lib/klibc/bin/cpio";

    /// The initramfs's own unpacker (klibc's cpio) reads regen's files and
    /// the test shell from one archive, parents before children, with the
    /// modes asked for.
    #[test]
    #[ignore = "needs klibc-utils (the netboot initramfs's cpio): cargo test -p compose -- --ignored overlay"]
    fn klibc_cpio_unpacks_regen_files_and_the_test_shell() {
        assert!(
            Path::new(KLIBC_CPIO).is_file(),
            "{KLIBC_CPIO} is missing: apt-get install klibc-utils"
        );
        let d = tempfile::tempdir().unwrap();
        let tree = d.path();
        let boot = tree.join("cluster/boot/node01");
        fs::create_dir_all(&boot).unwrap();
        fs::create_dir_all(tree.join("cluster/nodes/node01/etc/ssh")).unwrap();
        // What regen writes: the node's own files, under etc/.
        let (root_owned, readable) = ((0, 0), 0o644);
        let regen = archive(&[
            Entry::Dir {
                path: "etc".into(),
                mode: readable | 0o111,
                uid: root_owned.0,
                gid: root_owned.1,
            },
            Entry::File {
                path: "etc/hostname".into(),
                data: b"node01\n".to_vec(),
                mode: readable,
                uid: root_owned.0,
                gid: root_owned.1,
            },
        ]);
        fs::write(boot.join("overlay.cpio"), regen).unwrap();
        add_test_shell(tree, "node01").unwrap();
        let path = boot.join("overlay.cpio");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let upper = tree.join("upper");
        fs::create_dir(&upper).unwrap();
        let st = Command::new(KLIBC_CPIO)
            .arg("-i")
            .current_dir(&upper)
            .stdin(fs::File::open(&path).unwrap())
            .stderr(Stdio::inherit())
            .status()
            .unwrap();
        assert!(st.success(), "klibc cpio -i failed: {st}");
        let mode = |p: &str| fs::metadata(upper.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(
            fs::read_to_string(upper.join("etc/hostname")).unwrap(),
            "node01\n"
        );
        assert_eq!(
            fs::read_to_string(upper.join("usr/lib/compose/test-shell")).unwrap(),
            SCRIPT
        );
        assert_eq!(mode("usr/lib/compose/test-shell"), 0o755);
        assert_eq!(mode("etc/systemd/system"), 0o755);
        let dropin = "etc/systemd/system/multi-user.target.d/compose-test-shell.conf";
        assert!(fs::read_to_string(upper.join(dropin))
            .unwrap()
            .contains("Wants=compose-test-shell.service"));
        assert_eq!(
            fs::read_to_string(upper.join("etc/systemd/system/compose-test-shell.service"))
                .unwrap(),
            UNIT
        );
    }
}
