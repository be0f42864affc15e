//! The real libnfs clients (nfs-ls, nfs-cat, nfs-cp) against the server on
//! loopback. A missing binary fails the test (ci/setup installs them).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use compose_nfs::{Export, NfsEvent};

const EXPORT: &str = "/srv/compose/roots/abc123";

fn setup() -> (tempfile::TempDir, std::path::PathBuf, Running) {
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path());
    let r = Running::start(Arc::new(vec![Export::new(EXPORT, root.clone()).insecure()]));
    (t, root, r)
}

fn ok_stdout(o: &std::process::Output) -> Vec<u8> {
    assert!(
        o.status.success(),
        "client failed: {:?}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout.clone()
}

/// nfs-ls output as name -> first character of the mode column.
fn listing(r: &Running, path: &str, extra: &str) -> BTreeMap<String, char> {
    let out = ok_stdout(&libnfs("nfs-ls", &[&url(r, path, extra)]));
    String::from_utf8(out)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let name = l.split_whitespace().last().unwrap().to_string();
            (name, l.chars().next().unwrap())
        })
        .collect()
}

fn cat(r: &Running, path: &str, extra: &str) -> std::process::Output {
    libnfs("nfs-cat", &[&url(r, &format!("{EXPORT}/{path}"), extra)])
}

#[test]
fn libnfs_listing_matches_with_types() {
    let (_t, root, r) = setup();
    let many = root.join("many");
    std::fs::create_dir(&many).unwrap();
    for i in 0..3000 {
        std::fs::write(many.join(format!("file-with-a-longish-name-{i:05}")), b"").unwrap();
    }
    let top = listing(&r, EXPORT, "");
    let want: BTreeMap<String, char> = [
        ("abs", 'l'),
        ("big.bin", '-'),
        ("dir", 'd'),
        ("hello.txt", '-'),
        ("link", 'l'),
        ("many", 'd'),
        ("secret", '-'),
        ("sticky", 'd'),
        ("suid", '-'),
    ]
    .into_iter()
    .map(|(n, c)| (n.to_string(), c))
    .collect();
    let mut got = top.clone();
    got.remove("fifo").expect("fifo listed");
    got.retain(|n, _| n != "." && n != "..");
    assert_eq!(got, want);
    let nested = listing(&r, &format!("{EXPORT}/dir"), "");
    assert!(
        nested.contains_key("nested") && nested.contains_key("hardlink.txt"),
        "{nested:?}"
    );
    // 3000 entries need many READDIRPLUS round trips: cookies must chain.
    let big = listing(&r, &format!("{EXPORT}/many"), "");
    let files = big.keys().filter(|n| n.starts_with("file-")).count();
    assert_eq!(files, 3000);
    assert!(r
        .events()
        .iter()
        .any(|e| matches!(e, NfsEvent::Mount { .. })));
}

#[test]
fn libnfs_cat_byte_for_byte() {
    let (_t, root, r) = setup();
    for path in [
        "hello.txt",
        "dir/nested/deep.txt",
        "dir/hardlink.txt",
        "big.bin",
    ] {
        let got = ok_stdout(&cat(&r, path, ""));
        let want = std::fs::read(root.join(path)).unwrap();
        assert!(got == want, "{path}: {} bytes vs {}", got.len(), want.len());
    }
}

#[test]
fn libnfs_permissions_follow_credentials() {
    let (_t, root, r) = setup();
    // Owned by the test user (root in CI) with mode 0640: root reads it,
    // an unrelated uid/gid is refused.
    let got = ok_stdout(&cat(&r, "secret", "&uid=0&gid=0"));
    assert_eq!(got, std::fs::read(root.join("secret")).unwrap());
    let o = cat(&r, "secret", "&uid=4242&gid=4242");
    assert!(!o.status.success(), "uid 4242 read the 0640 file");
    assert!(!o.stdout.starts_with(b"root only"), "content leaked");
    // A world-readable file is fine for the same caller.
    assert_eq!(
        ok_stdout(&cat(&r, "hello.txt", "&uid=4242&gid=4242")),
        b"hello world\n"
    );
}

#[test]
fn libnfs_writes_refused() {
    let (t, root, r) = setup();
    let local = t.path().join("local.txt");
    std::fs::write(&local, b"new").unwrap();
    let dest = url(&r, &format!("{EXPORT}/new.txt"), "");
    let o = libnfs("nfs-cp", &[local.to_str().unwrap(), &dest]);
    assert!(
        !o.status.success(),
        "nfs-cp to a read-only export succeeded"
    );
    assert!(!root.join("new.txt").exists());
}
