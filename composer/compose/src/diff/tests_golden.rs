//! Rendered output against golden files, and determinism.

use std::fs;

use compose_store::{SnapshotId, Store};

use super::tests::{base, store};
use super::testutil::{snapshot, TarLayer};
use super::*;

/// A representative diff, rendered as text and JSON.
fn representative() -> (tempfile::TempDir, Store, SnapshotId, SnapshotId) {
    let status = |pkgs: &[(&str, &str)]| -> String {
        pkgs.iter()
            .map(|(n, v)| format!("Package: {n}\nStatus: install ok installed\nArchitecture: amd64\nVersion: {v}\n\n"))
            .collect()
    };
    let (dir, store) = store();
    let base = base().finish();
    let a = TarLayer::new()
        .dir("var/lib/dpkg/")
        .file(
            "var/lib/dpkg/status",
            status(&[
                ("bash", "5.2.15-2"),
                ("curl", "7.88.1-10+deb12u5"),
                ("vim", "2:9.0-1"),
            ])
            .as_bytes(),
        )
        .finish();
    let b = TarLayer::new()
        .dir("bin/")
        .file_mode("bin/one", 0o4755, b"1")
        .dir("etc/")
        .file("etc/hosts.allow", b"sshd: 10.0.0.0/8\n")
        .file("etc/motd", b"hello\nwelcome to node01\n")
        .symlink("etc/localtime", "/usr/share/zoneinfo/Europe/Paris")
        .dir("usr/share/doc/")
        .whiteout("usr/share/doc/pkg")
        .dir("var/lib/dpkg/")
        .file(
            "var/lib/dpkg/status",
            status(&[
                ("bash", "5.2.15-2+b2"),
                ("curl", "7.88.1-10+deb12u4"),
                ("htop", "3.2.2-2"),
            ])
            .as_bytes(),
        )
        .finish();
    let sa = snapshot(&store, &[&base, &a]);
    let sb = snapshot(&store, &[&base, &b]);
    (dir, store, sa, sb)
}

fn golden(name: &str, got: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/diff_golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, got).unwrap();
        return;
    }
    let want = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_GOLDEN=1 to write it",
            path.display()
        )
    });
    assert_eq!(
        got,
        want,
        "{} differs; UPDATE_GOLDEN=1 rewrites it",
        path.display()
    );
}

#[test]
fn golden_text_and_json() {
    let (_dir, store, a, b) = representative();
    let d = diff_snapshots(&store, &a, &b, &DiffOptions::default()).unwrap();
    golden("representative.txt", &render_text(&d));
    golden(
        "representative.json",
        &(serde_json::to_string_pretty(&d).unwrap() + "\n"),
    );
}

#[test]
fn deterministic() {
    let (_dir, store, a, b) = representative();
    let first = diff_snapshots(&store, &a, &b, &DiffOptions::default()).unwrap();
    let second = diff_snapshots(&store, &a, &b, &DiffOptions::default()).unwrap();
    assert_eq!(first, second);
    assert_eq!(render_text(&first), render_text(&second));
}
