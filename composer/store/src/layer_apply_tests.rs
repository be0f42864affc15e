use super::*;
use crate::testutil::{describe, raw_tar, require_root, Raw};
use std::fs;
use std::os::unix::fs::MetadataExt;

fn file<'a>(name: &'a [u8], data: &'a [u8]) -> Raw<'a> {
    Raw {
        name,
        kind: b'0',
        data,
        link: b"",
    }
}
fn dir(name: &[u8]) -> Raw<'_> {
    Raw {
        name,
        kind: b'5',
        data: b"",
        link: b"",
    }
}
fn symlink<'a>(name: &'a [u8], link: &'a [u8]) -> Raw<'a> {
    Raw {
        name,
        kind: b'2',
        data: b"",
        link,
    }
}
fn hardlink<'a>(name: &'a [u8], link: &'a [u8]) -> Raw<'a> {
    Raw {
        name,
        kind: b'1',
        data: b"",
        link,
    }
}

/// A root inside a parent dir that also holds an (empty) sentinel dir.
struct Sandbox {
    parent: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let parent = tempfile::tempdir().unwrap();
        fs::create_dir(parent.path().join("root")).unwrap();
        fs::create_dir(parent.path().join("sentinel")).unwrap();
        Sandbox { parent }
    }
    fn root(&self) -> PathBuf {
        self.parent.path().join("root")
    }
    fn sentinel(&self) -> PathBuf {
        self.parent.path().join("sentinel")
    }
    fn apply(&self, entries: &[Raw]) -> Result<ApplyStats, StoreError> {
        apply_layer(&self.root(), raw_tar(entries).as_slice())
    }
    /// Nothing escaped: the sentinel is empty and nothing appeared beside root.
    fn assert_contained(&self) {
        assert_eq!(
            fs::read_dir(self.sentinel()).unwrap().count(),
            0,
            "sentinel was written"
        );
        let mut names: Vec<String> = fs::read_dir(self.parent.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["root", "sentinel"]);
    }
}

use std::path::PathBuf;

fn tree(root: &Path) -> Vec<String> {
    crate::scan(root)
        .unwrap()
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect()
}

#[test]
fn whiteouts_and_opaque_dirs_hide_lower_layers() {
    let sb = Sandbox::new();
    sb.apply(&[
        dir(b"a/"),
        file(b"a/x", b"x"),
        dir(b"a/sub/"),
        file(b"a/sub/z", b"z"),
        dir(b"b/"),
        file(b"b/gone", b""),
        file(b"b/keep", b""),
        file(b"c", b""),
    ])
    .unwrap();
    sb.apply(&[
        file(b".wh.c", b""),
        file(b".wh.nothing-there", b""),
        dir(b"a/"),
        file(b"a/+early", b"e"),
        file(b"a/.wh..wh..opq", b""),
        file(b"a/new", b"n"),
        dir(b"b/"),
        file(b"b/.wh.gone", b""),
        file(b"d/.wh.x", b""),
    ])
    .unwrap();
    assert_eq!(tree(&sb.root()), ["a", "a/+early", "a/new", "b", "b/keep"]);
}

#[test]
fn whiteout_does_not_hide_its_own_layer() {
    let sb = Sandbox::new();
    sb.apply(&[file(b"+x", b""), file(b".wh.+x", b"")]).unwrap();
    assert_eq!(tree(&sb.root()), ["+x"]);
}

#[test]
fn entries_replace_existing_ones() {
    let sb = Sandbox::new();
    sb.apply(&[
        dir(b"a/"),
        file(b"a/x", b"x"),
        file(b"f", b"f"),
        symlink(b"l", b"a"),
    ])
    .unwrap();
    sb.apply(&[
        file(b"a", b"now a file"),
        dir(b"f/"),
        file(b"f/y", b"y"),
        file(b"l", b"real"),
    ])
    .unwrap();
    assert_eq!(tree(&sb.root()), ["a", "f", "f/y", "l"]);
    assert_eq!(fs::read(sb.root().join("a")).unwrap(), b"now a file");
    assert_eq!(fs::read(sb.root().join("l")).unwrap(), b"real");
    // A directory over a directory keeps the lower contents.
    sb.apply(&[dir(b"f/")]).unwrap();
    assert_eq!(tree(&sb.root()), ["a", "f", "f/y", "l"]);
}

#[test]
fn missing_parents_are_created_and_read_only_dirs_filled() {
    let sb = Sandbox::new();
    let ro = Raw {
        name: b"ro/",
        kind: b'5',
        data: b"",
        link: b"",
    };
    let mut tar = raw_tar(&[ro, file(b"ro/f", b"")]);
    // Make "ro/" mode 0555 by patching the header (mode field at 100..108).
    tar[100..108].copy_from_slice(b"0000555\0");
    let sum: u32 = tar[..512]
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    tar[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    apply_layer(&sb.root(), tar.as_slice()).unwrap();
    let meta = fs::metadata(sb.root().join("ro")).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o555);
    assert_eq!(
        meta.mtime(),
        1_600_000_000,
        "dir mtime is set after its children"
    );
    sb.apply(&[file(b"deep/er/f", b"")]).unwrap();
    assert_eq!(
        fs::metadata(sb.root().join("deep/er")).unwrap().mode() & 0o7777,
        0o755
    );
}

#[test]
fn unsafe_names_are_rejected() {
    let long_nul = [vec![b'a'; 120], b"\0b".to_vec()].concat();
    let cases: Vec<(&[u8], &str)> = vec![
        (b"../x", "`..`"),
        (b"a/../../x", "`..`"),
        (b"./../x", "`..`"),
        (b"//abs", "absolute"),
        (&long_nul, "NUL"),
    ];
    for (name, why) in cases {
        let sb = Sandbox::new();
        let err = sb.apply(&[file(name, b"pwned")]).unwrap_err();
        assert!(matches!(err, StoreError::UnsafePath { .. }), "{err}");
        assert!(err.to_string().contains(why), "{err}");
        sb.assert_contained();
    }
}

#[test]
fn leading_slash_is_relative_to_root() {
    let sb = Sandbox::new();
    sb.apply(&[file(b"/abs/file", b"in")]).unwrap();
    assert_eq!(fs::read(sb.root().join("abs/file")).unwrap(), b"in");
}

#[test]
fn symlinks_never_lead_writes_out_of_root() {
    let sb = Sandbox::new();
    let sentinel = sb.sentinel();
    let abs = sentinel.as_os_str().as_bytes();
    let rel = b"../../../../../../../../../../../..".to_vec();
    let rel = [rel.as_slice(), abs].concat();
    for target in [abs, rel.as_slice(), b"../sentinel"] {
        let res = sb.apply(&[symlink(b"evil", target), file(b"evil/pwned", b"x")]);
        if let Err(e) = &res {
            assert!(matches!(e, StoreError::BadTar { .. }), "{e}");
        }
        sb.assert_contained();
        let _ = fs::remove_file(sb.root().join("evil"));
    }
    // A symlink to a directory inside the root is followed, inside the root.
    sb.apply(&[
        dir(b"inside/"),
        symlink(b"evil", b"/inside"),
        file(b"evil/ok", b"x"),
    ])
    .unwrap();
    assert_eq!(fs::read(sb.root().join("inside/ok")).unwrap(), b"x");
    sb.assert_contained();
}

#[test]
fn hard_links_stay_inside_root() {
    let sb = Sandbox::new();
    fs::write(sb.sentinel().join("../secret"), b"s").unwrap();
    let cases: Vec<(Vec<Raw>, &str)> = vec![
        (vec![hardlink(b"x", b"../../etc/passwd")], "unsafe"),
        (vec![hardlink(b"x", b"/etc/passwd")], "does not exist"),
        (vec![hardlink(b"x", b"../secret")], "unsafe"),
        (
            vec![symlink(b"up", b"/.."), hardlink(b"x", b"up/secret")],
            "does not exist",
        ),
        (
            vec![symlink(b"etc", b"/etc"), hardlink(b"x", b"etc/passwd")],
            "does not exist",
        ),
        (vec![dir(b"d/"), hardlink(b"x", b"d")], "directory"),
    ];
    for (entries, why) in cases {
        let err = sb.apply(&entries).unwrap_err();
        assert!(err.to_string().contains(why), "{err}");
    }
    fs::remove_file(sb.parent.path().join("secret")).unwrap();
    sb.assert_contained();
    sb.apply(&[file(b"f", b"data"), hardlink(b"g", b"f")])
        .unwrap();
    let (f, g) = (
        fs::metadata(sb.root().join("f")).unwrap(),
        fs::metadata(sb.root().join("g")).unwrap(),
    );
    assert_eq!(f.ino(), g.ino());
}

#[test]
fn unknown_types_and_garbage_are_rejected() {
    let sb = Sandbox::new();
    let err = sb
        .apply(&[Raw {
            name: b"sparse",
            kind: b'S',
            data: b"",
            link: b"",
        }])
        .unwrap_err();
    assert!(matches!(err, StoreError::BadTar { .. }), "{err}");
    assert!(
        err.to_string().contains("`sparse`") && err.to_string().contains("unsupported"),
        "{err}"
    );
    let err = apply_layer(&sb.root(), &[1u8; 1024][..]).unwrap_err();
    assert!(matches!(err, StoreError::BadTar { .. }), "{err}");
    let mut truncated = raw_tar(&[file(b"f", &[7u8; 2000])]);
    truncated.truncate(1000);
    assert!(apply_layer(&sb.root(), truncated.as_slice()).is_err());
}

#[test]
fn device_nodes_need_root() {
    let sb = Sandbox::new();
    let res = sb.apply(&[Raw {
        name: b"null",
        kind: b'3',
        data: b"",
        link: b"",
    }]);
    if nix::unistd::geteuid().is_root() {
        res.unwrap();
    } else {
        let err = res.unwrap_err();
        assert!(matches!(err, StoreError::NeedsRoot { .. }), "{err}");
    }
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    const SENTINEL: &str = "@SENTINEL@";

    fn name() -> impl Strategy<Value = String> {
        let comp = prop_oneof![
            Just("a"),
            Just("b"),
            Just(".."),
            Just("."),
            Just("evil"),
            Just(""),
            Just(".wh.a"),
            Just(".wh.evil"),
            Just(".wh..wh..opq"),
            Just("/"),
        ];
        proptest::collection::vec(comp, 1..5).prop_map(|v| v.join("/"))
    }

    fn target() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(SENTINEL.to_string()),
            Just("../sentinel".to_string()),
            Just("../../..".to_string()),
            Just("/".to_string()),
            Just("/..".to_string()),
            Just("a".to_string()),
            Just("evil/a".to_string()),
            Just(format!("{SENTINEL}/x")),
            name(),
        ]
    }

    fn entry() -> impl Strategy<Value = (String, u8, String)> {
        (
            name(),
            prop_oneof![Just(b'0'), Just(b'5'), Just(b'2'), Just(b'1'), Just(b'6')],
            target(),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
        #[test]
        fn arbitrary_archives_stay_inside_root(layers in proptest::collection::vec(proptest::collection::vec(entry(), 1..8), 1..3)) {
            let sb = Sandbox::new();
            let sentinel = sb.sentinel().display().to_string();
            for layer in &layers {
                let owned: Vec<(Vec<u8>, u8, Vec<u8>)> = layer
                    .iter()
                    .map(|(n, k, t)| (n.replace(SENTINEL, &sentinel).into_bytes(), *k, t.replace(SENTINEL, &sentinel).into_bytes()))
                    .collect();
                let raws: Vec<Raw> = owned
                    .iter()
                    .map(|(n, k, t)| Raw { name: n, kind: *k, data: b"data", link: if *k == b'1' || *k == b'2' { t } else { b"" } })
                    .collect();
                let _ = sb.apply(&raws);
                sb.assert_contained();
            }
            crate::scan(&sb.root()).unwrap();
        }
    }
}

#[test]
#[ignore = "privileged: needs root; run `cargo test -p compose-store -- --ignored` as root"]
fn privileged_round_trip_owners_devices_fifos_caps() {
    require_root();
    use nix::sys::stat::{mknod, Mode, SFlag};
    let (src, dst) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s = src.path();
    fs::write(s.join("suid"), b"x").unwrap();
    std::os::unix::fs::chown(s.join("suid"), Some(1234), Some(5678)).unwrap();
    fs::set_permissions(
        s.join("suid"),
        std::os::unix::fs::PermissionsExt::from_mode(0o6755),
    )
    .unwrap();
    fs::create_dir(s.join("home")).unwrap();
    std::os::unix::fs::chown(s.join("home"), Some(1000), Some(1000)).unwrap();
    std::os::unix::fs::symlink("suid", s.join("link")).unwrap();
    std::os::unix::fs::lchown(s.join("link"), Some(7), Some(8)).unwrap();
    mknod(
        &s.join("null"),
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    mknod(
        &s.join("loop0"),
        SFlag::S_IFBLK,
        Mode::from_bits_truncate(0o660),
        nix::sys::stat::makedev(7, 0),
    )
    .unwrap();
    nix::unistd::mkfifo(&s.join("fifo"), Mode::from_bits_truncate(0o620)).unwrap();
    fs::write(s.join("ping"), b"elf").unwrap();
    // VFS_CAP_REVISION_2 | EFFECTIVE, permitted = CAP_NET_RAW (13), plus CAP_DAC_OVERRIDE (1)
    // and CAP_FOWNER (3) so the value holds a 0x0a byte (a newline).
    let cap: [u8; 20] = [
        1, 0, 0, 2, 0x0a, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    xattr::set(s.join("ping"), "security.capability", &cap).unwrap();
    crate::testutil::set_all_mtimes(s, 1_600_000_000);
    let mut tar = Vec::new();
    let opts = crate::LayerOptions {
        source_date_epoch: 1_700_000_000,
    };
    crate::write_layer(s, crate::Selection::All, &opts, &mut tar).unwrap();
    apply_layer(dst.path(), tar.as_slice()).unwrap();
    assert_eq!(describe(dst.path()), describe(s));
    assert_eq!(
        xattr::get(dst.path().join("ping"), "security.capability")
            .unwrap()
            .unwrap(),
        cap
    );
    let null = fs::symlink_metadata(dst.path().join("null")).unwrap();
    assert_eq!(
        (
            nix::sys::stat::major(null.rdev()),
            nix::sys::stat::minor(null.rdev())
        ),
        (1, 3)
    );
    assert_eq!(
        fs::metadata(dst.path().join("suid")).unwrap().mode() & 0o7777,
        0o6755
    );
}
