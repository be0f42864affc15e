use super::*;
use crate::testutil::{describe, set_mtime, synthetic_root, tar_names, LONG_DIR, SDE};
use crate::{apply_layer, changes, Digest};
use std::fs;

const OPTS: LayerOptions = LayerOptions {
    source_date_epoch: SDE,
};

fn layer(root: &Path, sel: Selection) -> Vec<u8> {
    let mut out = Vec::new();
    let stats = write_layer(root, sel, &OPTS, &mut out).unwrap();
    assert_eq!(stats.bytes, out.len() as u64);
    out
}

fn pinned_layer(root: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    write_layer_as(root, Selection::All, &OPTS, &mut out, Some((0, 0))).unwrap();
    out
}

#[test]
fn synthetic_root_has_pinned_digest() {
    let dir = tempfile::tempdir().unwrap();
    synthetic_root(dir.path());
    let tar = pinned_layer(dir.path());
    let long = format!("{LONG_DIR}/changelog.Debian.with-a-long-name-too");
    assert!(long.len() > 100);
    let names = tar_names(&tar);
    let want = [
        "bin/",
        "bin/su",
        "bin/tool",
        "etc/",
        "etc/hostname",
        "etc/hostname.link",
        "etc/initctl",
        "etc/localtime",
        "future",
        "old",
        "tmp/",
        "usr/",
        "usr/share/",
        "usr/share/doc/",
        &format!("{LONG_DIR}/"),
        &long,
    ];
    assert_eq!(names, want);
    assert_eq!(
        Digest::of(&tar).to_string(),
        "sha256:7fb19e22b6bf35bed59916a3cd413a22bb8428724ea8e258ac95543574978b0f"
    );
}

#[test]
fn headers_carry_exact_metadata() {
    let dir = tempfile::tempdir().unwrap();
    synthetic_root(dir.path());
    let tar = pinned_layer(dir.path());
    let mut ar = tar::Archive::new(tar.as_slice());
    let mut seen = Vec::new();
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let link = e
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned());
        seen.push((
            name,
            h.entry_type(),
            h.mode().unwrap(),
            h.mtime().unwrap(),
            link,
        ));
        assert_eq!(h.username_bytes(), Some(&b""[..]));
        assert_eq!(h.groupname_bytes(), Some(&b""[..]));
    }
    let find = |n: &str| seen.iter().find(|s| s.0 == n).cloned().unwrap();
    use tar::EntryType as T;
    let cases = [
        ("bin/su", T::Regular, 0o4755, 1_600_000_000, None),
        ("tmp/", T::Directory, 0o1777, 1_600_000_000, None),
        ("future", T::Regular, 0o600, SDE as u64, None),
        ("old", T::Regular, 0o444, 1_000_000_000, None),
        (
            "etc/hostname.link",
            T::Link,
            0o644,
            1_600_000_000,
            Some("etc/hostname".to_string()),
        ),
        (
            "etc/localtime",
            T::Symlink,
            0o777,
            1_600_000_000,
            Some("/usr/share/zoneinfo/UTC".to_string()),
        ),
        ("etc/initctl", T::Fifo, 0o600, 1_600_000_000, None),
    ];
    for (name, kind, mode, mtime, link) in cases {
        assert_eq!(
            find(name),
            (name.to_string(), kind, mode, mtime, link),
            "{name}"
        );
    }
}

#[test]
fn output_is_byte_identical_across_runs_and_copies() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    synthetic_root(a.path());
    synthetic_root(b.path());
    let first = layer(a.path(), Selection::All);
    assert_eq!(first, layer(a.path(), Selection::All));
    assert_eq!(first, layer(b.path(), Selection::All));
}

#[test]
fn round_trip_reproduces_the_tree() {
    let (src, dst) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    synthetic_root(src.path());
    let tar = layer(src.path(), Selection::All);
    let stats = apply_layer(dst.path(), tar.as_slice()).unwrap();
    assert_eq!(stats.entries, 16);
    let mut want = describe(src.path());
    want.remove("tmp/socket");
    // mtimes after SOURCE_DATE_EPOCH come back clamped.
    let future = want["future"].replace("mtime=2000000000", &format!("mtime={SDE}"));
    want.insert("future".into(), future);
    assert_eq!(describe(dst.path()), want);
}

#[test]
fn user_xattrs_round_trip_and_others_are_dropped() {
    let (src, dst) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let f = src.path().join("f");
    fs::write(&f, b"x").unwrap();
    xattr::set(&f, "user.compose.test", b"v\0\xff")
        .expect("the test file system must support user xattrs");
    fs::create_dir(src.path().join("d")).unwrap();
    xattr::set(src.path().join("d"), "user.dir", b"1").unwrap();
    let tar = layer(src.path(), Selection::All);
    apply_layer(dst.path(), tar.as_slice()).unwrap();
    assert_eq!(
        xattr::get(dst.path().join("f"), "user.compose.test")
            .unwrap()
            .unwrap(),
        b"v\0\xff"
    );
    assert_eq!(
        xattr::get(dst.path().join("d"), "user.dir")
            .unwrap()
            .unwrap(),
        b"1"
    );
    let cases: [(&[u8], bool); 5] = [
        (b"security.capability", true),
        (b"user.x", true),
        (b"security.selinux", false),
        (b"system.posix_acl_access", false),
        (b"trusted.overlay.opaque", false),
    ];
    for (name, ok) in cases {
        assert_eq!(xattr_allowed(name), ok, "{}", String::from_utf8_lossy(name));
    }
}

#[test]
fn changes_layer_has_parents_and_whiteouts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    synthetic_root(root);
    let before = crate::scan(root).unwrap();
    fs::write(root.join(LONG_DIR).join("new"), b"n").unwrap();
    fs::remove_file(root.join("etc/initctl")).unwrap();
    fs::remove_dir_all(root.join("usr/share/doc")).unwrap();
    fs::create_dir(root.join("usr/share/doc")).unwrap();
    fs::remove_file(root.join("old")).unwrap();
    let after = crate::scan(root).unwrap();
    let set = changes(&before, &after);
    let tar = layer(root, Selection::Changes(&set));
    assert_eq!(
        tar_names(&tar),
        [".wh.old", "etc/", "etc/.wh.initctl", "usr/", "usr/share/", "usr/share/doc/", "usr/share/doc/.wh.a-package-with-a-rather-long-name-to-push-paths-past-the-ustar-limit"]
    );
    let mut ar = tar::Archive::new(tar.as_slice());
    let wh = ar.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(
        (
            wh.header().mode().unwrap(),
            wh.header().uid().unwrap(),
            wh.size()
        ),
        (0, 0, 0)
    );
}

#[test]
fn changes_then_apply_over_lower_reproduces_after() {
    let (dir, copy) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let root = dir.path();
    synthetic_root(root);
    let base = layer(root, Selection::All);
    let before = crate::scan(root).unwrap();
    fs::write(root.join("bin/tool"), b"#!/bin/sh\necho bye\n").unwrap();
    fs::remove_dir_all(root.join("usr/share/doc")).unwrap();
    fs::remove_file(root.join("etc/hostname")).unwrap();
    fs::create_dir(root.join("etc/hostname")).unwrap();
    fs::hard_link(root.join("bin/su"), root.join("bin/su2")).unwrap();
    crate::testutil::set_all_mtimes(root, 1_650_000_000);
    let after = crate::scan(root).unwrap();
    let upper = layer(root, Selection::Changes(&changes(&before, &after)));
    apply_layer(copy.path(), base.as_slice()).unwrap();
    apply_layer(copy.path(), upper.as_slice()).unwrap();
    let mut want = describe(root);
    want.remove("tmp/socket");
    // The old tree's other name for etc/hostname is untouched by the upper layer.
    want.remove("etc/hostname.link");
    let mut got = describe(copy.path());
    got.remove("etc/hostname.link");
    assert_eq!(got, want);
}

#[test]
fn rejects_out_of_range_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LayerOptions {
        source_date_epoch: -1,
    };
    let err = write_layer(dir.path(), Selection::All, &opts, Vec::new()).unwrap_err();
    assert!(matches!(err, StoreError::InvalidSpec { .. }), "{err}");
    set_mtime(dir.path(), 0);
}
