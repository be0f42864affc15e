use std::fs;
use std::os::unix::fs::PermissionsExt;

use compose_store::{changes, scan, Selection, Store};

use super::testutil::{dir_layer, snapshot, snapshot_labeled, snapshot_of, Spec, TarLayer};
use super::*;

pub(super) fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    (dir, store)
}

/// One line per file change: `Changed /etc/motd: size 1 -> 2, content`.
fn lines(d: &SnapshotDiff) -> Vec<String> {
    d.files
        .iter()
        .map(|f| format!("{:?} {}: {}", f.change, f.path, f.details.join(", ")))
        .collect()
}

/// The diff of base+upper_a -> base+upper_b.
fn diff_uppers(base: Vec<u8>, upper_a: Vec<u8>, upper_b: Vec<u8>) -> (SnapshotDiff, Stats) {
    let (_dir, store) = store();
    let a = snapshot(&store, &[&base, &upper_a]);
    let b = snapshot(&store, &[&base, &upper_b]);
    diff_with_stats(&store, &a, &b, &DiffOptions::default()).unwrap()
}

pub(super) fn base() -> TarLayer {
    TarLayer::new()
        .dir("bin/")
        .file_mode("bin/one", 0o755, b"1")
        .file_mode("bin/two", 0o755, b"2")
        .dir("etc/")
        .dir("etc/conf.d/")
        .file("etc/conf.d/x", b"x\n")
        .file("etc/conf.d/y", b"y\n")
        .symlink("etc/localtime", "/usr/share/zoneinfo/UTC")
        .file("etc/motd", b"hello\n")
        .dir("srv/")
        .dir("srv/data/")
        .file("srv/data/f", b"f")
        .dir("usr/")
        .dir("usr/share/")
        .dir("usr/share/doc/")
        .dir("usr/share/doc/pkg/")
        .file("usr/share/doc/pkg/a", b"a")
        .dir("usr/share/doc/pkg/sub/")
        .file("usr/share/doc/pkg/sub/b", b"b")
        .file("usr/share/doc/pkg-other", b"stays")
}

#[test]
fn file_changes() {
    let t = TarLayer::new;
    // (name, upper layer of a, upper layer of b, expected lines)
    let cases: Vec<(&str, TarLayer, TarLayer, Vec<&str>)> = vec![
        ("nothing", t(), t(), vec![]),
        (
            "content and size",
            t(),
            t().dir("etc/").file("etc/motd", b"hello world\n"),
            vec!["Changed /etc/motd: size 6 -> 12, content"],
        ),
        (
            "same size, other bytes",
            t(),
            t().dir("etc/").file("etc/motd", b"HELLO\n"),
            vec!["Changed /etc/motd: content"],
        ),
        (
            "rewritten with the same bytes",
            t().dir("etc/").file("etc/motd", b"same\n"),
            t().dir("etc/").file("etc/motd", b"same\n"),
            vec![],
        ),
        (
            "mode",
            t(),
            t().dir("etc/").file_mode("etc/motd", 0o600, b"hello\n"),
            vec!["Changed /etc/motd: mode 0644 -> 0600"],
        ),
        (
            "owner, xattrs (binary) and mtime",
            t(),
            t().dir("bin/").entry(Spec {
                path: "bin/one",
                mode: 0o755,
                owner: (100, 101),
                mtime: 1_650_000_000,
                data: b"1",
                xattrs: &[("security.capability", b"\x01\x00\n\x02")],
                ..Spec::default()
            }),
            vec!["Changed /bin/one: owner 0:0 -> 100:101, xattrs, mtime"],
        ),
        (
            "directory mtime is ignored, its mode is not",
            t().dir_mode("srv/", 0o755).dir("etc/"),
            t().dir_mode("srv/", 0o700).entry(Spec {
                path: "etc/",
                kind: tar::EntryType::Directory,
                mode: 0o755,
                mtime: 1,
                ..Spec::default()
            }),
            vec!["Changed /srv: mode 0755 -> 0700"],
        ),
        (
            "symlink target",
            t(),
            t().dir("etc/").symlink("etc/localtime", "/usr/share/zoneinfo/Europe/Paris"),
            vec!["Changed /etc/localtime: target /usr/share/zoneinfo/UTC -> /usr/share/zoneinfo/Europe/Paris"],
        ),
        (
            "type change",
            t(),
            t().dir("etc/").symlink("etc/motd", "/run/motd"),
            vec!["Changed /etc/motd: type file -> symlink"],
        ),
        (
            "added and removed",
            t().dir("opt/").file("opt/a", b"a"),
            t().dir("opt/").file("opt/b", b"b"),
            vec!["Removed /opt/a: file", "Added /opt/b: file"],
        ),
        (
            "whiteout of a directory subtree",
            t(),
            t().dir("usr/share/doc/").whiteout("usr/share/doc/pkg"),
            vec![
                "Removed /usr/share/doc/pkg: dir",
                "Removed /usr/share/doc/pkg/a: file",
                "Removed /usr/share/doc/pkg/sub: dir",
                "Removed /usr/share/doc/pkg/sub/b: file",
            ],
        ),
        (
            "opaque directory keeps only this layer's entries",
            t(),
            t().dir("etc/conf.d/").opaque("etc/conf.d").file("etc/conf.d/z", b"z\n"),
            vec![
                "Removed /etc/conf.d/x: file",
                "Removed /etc/conf.d/y: file",
                "Added /etc/conf.d/z: file",
            ],
        ),
        (
            "directory replaced by a file",
            t(),
            t().file("srv/data", b"now a file"),
            vec!["Changed /srv/data: type dir -> file", "Removed /srv/data/f: file"],
        ),
        (
            "hard links compare by their target's content",
            t(),
            t().dir("bin/")
                .hardlink("bin/two", "bin/one") // target in a lower layer
                .file("bin/three", b"3")
                .hardlink("bin/four", "bin/three"),
            vec![
                "Added /bin/four: file",
                "Added /bin/three: file",
                "Changed /bin/two: content",
            ],
        ),
        (
            "missing parents are created",
            t(),
            t().file("new/deep/file", b""),
            vec![
                "Added /new: dir",
                "Added /new/deep: dir",
                "Added /new/deep/file: file",
            ],
        ),
    ];
    for (name, a, b, want) in cases {
        let (a, b) = (a.finish(), b.finish());
        let shared = if a == b { 2 } else { 1 };
        let (d, _) = diff_uppers(base().finish(), a, b);
        assert_eq!(lines(&d), want, "case {name}");
        assert_eq!(d.is_empty(), want.is_empty(), "case {name}");
        assert_eq!(d.shared_layers, shared, "case {name}");
    }
}

#[test]
fn identical_snapshots_read_no_layer() {
    let (_dir, store) = store();
    let base = base().finish();
    let a = snapshot(&store, &[&base]);
    let relabeled = snapshot_labeled(&store, &[&base], "other");
    assert_ne!(a, relabeled);
    for b in [a, relabeled] {
        let (d, stats) = diff_with_stats(&store, &a, &b, &DiffOptions::default()).unwrap();
        assert!(d.is_empty());
        assert_eq!(d.shared_layers, 1);
        assert_eq!(stats, Stats::default(), "no layer read for {b}");
        assert_eq!(render_text(&d), "no differences\n");
    }
}

/// The base holds a 4 MiB file: only its header may be read, and only the
/// bytes of the files that differ are hashed.
#[test]
fn shared_layers_are_read_header_only() {
    const BIG: usize = 4 << 20;
    let big = vec![7u8; BIG];
    let base = base().dir("usr/lib/").file("usr/lib/big.so", &big).finish();
    let upper_a = TarLayer::new()
        .dir("etc/")
        .file("etc/motd", b"aaaa\n")
        .finish();
    let upper_b = TarLayer::new()
        .dir("bin/")
        .file_mode("bin/one", 0o755, b"9") // same size as in the base
        .dir("etc/")
        .file("etc/motd", b"bbbb\n")
        .finish();
    let (d, stats) = diff_uppers(base, upper_a, upper_b);
    assert_eq!(
        lines(&d),
        ["Changed /bin/one: content", "Changed /etc/motd: content"]
    );
    assert_eq!(stats.layers_read, 3, "the base once, each upper once");
    assert!(stats.header_bytes < 256 * 1024, "{stats:?}");
    // bin/one on both sides, etc/motd on both sides (hash + /etc text).
    assert!(stats.content_bytes <= 2 + 2 * 10, "{stats:?}");
}

#[test]
fn packages_from_dpkg_status() {
    let stanza = |name: &str, version: &str| {
        format!("Package: {name}\nStatus: install ok installed\nArchitecture: amd64\nVersion: {version}\nDescription: x\n more\n\n")
    };
    let status_a = [
        stanza("bash", "5.2.15-2"),
        stanza("vim", "2:9.0.1378-2"),
        stanza("old", "1.0"),
    ]
    .concat();
    let status_b = [
        stanza("bash", "5.2.15-2+b2"),
        stanza("new", "0.1~rc1"),
        stanza("vim", "2:9.0.1378-2"),
    ]
    .concat();
    let layer = |s: &str| {
        TarLayer::new()
            .dir("var/")
            .dir("var/lib/")
            .dir("var/lib/dpkg/")
            .file("var/lib/dpkg/status", s.as_bytes())
            .finish()
    };
    let (d, _) = diff_uppers(base().finish(), layer(&status_a), layer(&status_b));
    let got: Vec<String> = d
        .packages
        .iter()
        .map(|p| format!("{:?} {} {:?} {:?}", p.change, p.name, p.from, p.to))
        .collect();
    assert_eq!(
        got,
        [
            r#"Upgraded bash Some("5.2.15-2") Some("5.2.15-2+b2")"#,
            r#"Added new None Some("0.1~rc1")"#,
            r#"Removed old Some("1.0") None"#,
        ]
    );
}

#[test]
fn etc_text_diffs() {
    let conf_a = "# settings\none=1\ntwo=2\nthree=3\nfour=4\nfive=5\nsix=6\nseven=7\n";
    let conf_b = "# settings\none=1\ntwo=2\nthree=3\nfour=FOUR\nfive=5\nsix=6\nseven=7\n";
    let upper = |conf: &str| {
        TarLayer::new()
            .dir("etc/")
            .file("etc/app.conf", conf.as_bytes())
    };
    let a = upper(conf_a).file("etc/binary", b"\x00\x01").finish();
    let b = upper(conf_b)
        .file("etc/binary", b"\x00\x02")
        .file("etc/added", b"new\n")
        .finish();
    let (d, _) = diff_uppers(base().finish(), a, b);
    let got: Vec<(&str, &str)> = d
        .etc_diffs
        .iter()
        .map(|t| (t.path.as_str(), t.unified.as_str()))
        .collect();
    let app = "--- a/etc/app.conf\n+++ b/etc/app.conf\n@@ -2,7 +2,7 @@\n one=1\n two=2\n three=3\n-four=4\n+four=FOUR\n five=5\n six=6\n seven=7\n";
    let added = "--- /dev/null\n+++ b/etc/added\n@@ -0,0 +1 @@\n+new\n";
    assert_eq!(got, [("/etc/added", added), ("/etc/app.conf", app)]);

    // Over the size limit, or switched off: listed, not diffed.
    let (_dir, store) = store();
    let base = base().finish();
    let (sa, sb) = (
        snapshot(&store, &[&base, &upper(conf_a).finish()]),
        snapshot(&store, &[&base, &upper(conf_b).finish()]),
    );
    for opts in [
        DiffOptions {
            max_text_bytes: 10,
            ..DiffOptions::default()
        },
        DiffOptions {
            etc_text_diffs: false,
            ..DiffOptions::default()
        },
    ] {
        let d = diff_snapshots(&store, &sa, &sb, &opts).unwrap();
        assert_eq!(
            lines(&d),
            ["Changed /etc/app.conf: size 59 -> 62, content"],
            "{opts:?}"
        );
        assert!(d.etc_diffs.is_empty(), "{opts:?}");
    }
}

/// Layers made the way a build makes them: scan, change, `write_layer`.
#[test]
fn layers_from_the_store_writer() {
    let (dir, store) = store();
    let root = dir.path().join("root");
    for d in ["etc", "usr/share/doc/pkg", "opt"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::write(root.join("etc/motd"), "hello\n").unwrap();
    fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    fs::write(root.join("usr/share/doc/pkg/README"), "doc").unwrap();
    let base = dir_layer(&store, &root, Selection::All);
    let before = scan(&root).unwrap();
    fs::write(root.join("etc/motd"), "hello, node\n").unwrap();
    fs::set_permissions(root.join("etc/hosts"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_dir_all(root.join("usr/share/doc/pkg")).unwrap();
    std::os::unix::fs::symlink("../etc/motd", root.join("opt/motd")).unwrap();
    fs::hard_link(root.join("etc/motd"), root.join("opt/motd.hard")).unwrap();
    let set = changes(&before, &scan(&root).unwrap());
    let upper = dir_layer(&store, &root, Selection::Changes(&set));
    let a = snapshot_of(&store, std::slice::from_ref(&base));
    let b = snapshot_of(&store, &[base, upper]);
    let d = diff_snapshots(&store, &a, &b, &DiffOptions::default()).unwrap();
    assert_eq!(
        lines(&d),
        [
            "Changed /etc/hosts: mode 0644 -> 0600",
            "Changed /etc/motd: size 6 -> 12, content",
            "Added /opt/motd: symlink",
            "Added /opt/motd.hard: file",
            "Removed /usr/share/doc/pkg: dir",
            "Removed /usr/share/doc/pkg/README: file",
        ]
    );
    assert_eq!(d.etc_diffs.len(), 1);
    // The other way round, everything is mirrored.
    let back = diff_snapshots(&store, &b, &a, &DiffOptions::default()).unwrap();
    assert_eq!(back.files.len(), d.files.len());
    assert_eq!(back.files[2].change, ChangeKind::Removed);
}

#[test]
fn errors_name_the_layer_and_snapshot() {
    let (_dir, store) = store();
    let base = base().finish();
    let upper = TarLayer::new().file("x", b"x").finish();
    let a = snapshot(&store, &[&base]);
    let b = snapshot(&store, &[&base, &upper]);
    let upper_digest = compose_store::Digest::of(&upper);
    fs::write(store.blob_path(&upper_digest), b"not a tar, and short").unwrap();
    let err = format!(
        "{:#}",
        diff_snapshots(&store, &a, &b, &DiffOptions::default()).unwrap_err()
    );
    assert!(
        err.contains(&format!("layer {upper_digest} of snapshot {b}")),
        "{err}"
    );
}

/// Timing on a realistic size: ~20k files over a ~700 MB shared base, two
/// snapshots differing in their last layer. Run with
/// `cargo test -p compose --lib diff::tests::bench -- --ignored --nocapture`.
#[test]
#[ignore = "writes ~700 MB; run by hand to measure"]
fn bench_large_shared_base() {
    let (_dir, store) = store();
    let mut w = store.blob_writer().unwrap();
    let mut b = tar::Builder::new(&mut w);
    let small = vec![b'x'; 3000];
    let large = vec![b'y'; 7 << 20];
    for i in 0..20_000u32 {
        let data: &[u8] = if i % 200 == 0 {
            &large
        } else {
            &small[..(i as usize % 3000)]
        };
        let mut h = tar::Header::new_ustar();
        h.set_path(format!("usr/lib/d{:03}/f{i:05}", i % 500))
            .unwrap();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(super::testutil::MTIME);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.finish().unwrap();
    drop(b);
    let (digest, size) = w.commit().unwrap();
    let base = compose_store::LayerEntry {
        digest: digest.into(),
        size,
        created_by: "base".into(),
        comment: String::new(),
    };
    let upper = |tag: &str| {
        let mut l = TarLayer::new().dir("etc/");
        for i in 0..50 {
            l = l.file(&format!("etc/f{i}"), format!("{tag} {i}\n").as_bytes());
        }
        let bytes = l.finish();
        let d = store.put_blob(&bytes).unwrap();
        compose_store::LayerEntry {
            digest: d.into(),
            size: bytes.len() as u64,
            created_by: tag.into(),
            comment: String::new(),
        }
    };
    let a = snapshot_of(&store, &[base.clone(), upper("a")]);
    let b = snapshot_of(&store, &[base, upper("b")]);
    let start = std::time::Instant::now();
    let (d, stats) = diff_with_stats(&store, &a, &b, &DiffOptions::default()).unwrap();
    let took = start.elapsed();
    eprintln!(
        "base {size} bytes: {} changes in {took:?}; {stats:?}",
        d.files.len()
    );
    assert_eq!(d.files.len(), 50);
    assert!(took < std::time::Duration::from_secs(1), "{took:?}");
}
