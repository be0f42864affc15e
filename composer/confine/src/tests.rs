//! The policy against a real tree: links out of the boundary, into its
//! siblings, magic links, modes, and subtrees that do not exist yet.

use super::*;
use std::os::unix::fs::PermissionsExt;

fn size(c: &Confinement, name: &str) -> Result<i64, Denied> {
    c.open_file(Path::new(name)).map(|(_, st)| st.st_size)
}

#[test]
fn open_table() {
    // The shared fixture (testing.rs), plus a file at the top of the tree
    // and two more links.
    let dir = crate::testing::publish_tree();
    let top = dir.path();
    std::fs::write(top.join("secret"), b"s").unwrap();
    let ln = |target: &str, link: &str| std::os::unix::fs::symlink(target, top.join(link)).unwrap();
    ln("../secret", "tftp/sec");
    ln("f", "tftp/sub/loop");
    let c = Confinement::open(&top.join("tftp"), top).unwrap();
    assert_eq!(c.root(), top.canonicalize().unwrap().join("tftp"));
    let cases: &[(&str, Result<i64, Denied>)] = &[
        ("f", Ok(5)),
        ("images/x/k", Ok(6)),
        ("sec", Ok(1)), // inside the boundary, outside the root: allowed
        ("root", Ok(1)),
        ("private", Ok(1)), // any mode unless world_readable_only
        ("missing", Err(Denied::Missing)),
        ("f/x", Err(Denied::Missing)),
        ("evil", Err(Denied::Escapes)),
        ("up/etc/passwd", Err(Denied::Escapes)),
        ("magic", Err(Denied::Escapes)), // absolute: EXDEV before the magic link
        ("sub", Err(Denied::Directory)),
        ("sub/loop", Err(Denied::Missing)), // relative to sub/
    ];
    for (name, want) in cases {
        assert_eq!(&size(&c, name), want, "{name}");
    }
    // Confined to the root itself, the sibling is out of bounds.
    let tight = Confinement::open(&top.join("tftp"), &top.join("tftp")).unwrap();
    for name in ["sec", "images/x/k", "up/secret"] {
        assert_eq!(size(&tight, name), Err(Denied::Escapes), "{name}");
    }
    assert!(Confinement::open(top, &top.join("tftp")).is_err());
    assert!(Confinement::open(&top.join("nowhere"), top).is_err());
}

#[test]
fn subtrees_and_world_readable() {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path();
    for d in [
        "tftp/pxelinux.cfg",
        "images/x/gen/1",
        "roots/r/etc",
        "cluster",
    ] {
        std::fs::create_dir_all(top.join(d)).unwrap();
    }
    let file = |p: &str, mode: u32| {
        std::fs::write(top.join(p), p).unwrap();
        std::fs::set_permissions(top.join(p), std::fs::Permissions::from_mode(mode)).unwrap();
    };
    file("tftp/pxelinux.0", 0o644);
    file("images/x/gen/1/vmlinuz", 0o644);
    file("images/x/gen/1/pxelinux.cfg", 0o644);
    file("images/x/gen/1/private", 0o600);
    file("roots/r/etc/passwd", 0o644);
    file("cluster/secret", 0o644);
    let ln = |target: &str, link: &str| std::os::unix::fs::symlink(target, top.join(link)).unwrap();
    ln("../images", "tftp/images");
    ln(
        "../images/x/gen/1/pxelinux.cfg",
        "tftp/pxelinux.cfg/default",
    );
    ln("../roots", "tftp/roots");
    ln("../cluster/secret", "tftp/secret");
    ln("../../roots/r/etc/passwd", "images/x/passwd");
    let open = || {
        Confinement::open(&top.join("tftp"), top)
            .unwrap()
            .world_readable_only(true)
    };
    let relative = open()
        .allow_subtree(Path::new("tftp"))
        .and_then(|c| c.allow_subtree(Path::new("images")))
        .unwrap();
    let absolute = open()
        .allow_dir(&top.join("tftp"))
        .and_then(|c| c.allow_dir(&top.join("images")))
        .unwrap();
    for c in [&relative, &absolute] {
        let ok = [
            "pxelinux.0",
            "images/x/gen/1/vmlinuz",
            "pxelinux.cfg/default",
        ];
        for name in ok {
            assert!(size(c, name).is_ok(), "{name}");
        }
        let bad = [
            ("images/x/gen/1/private", Denied::NotWorldReadable),
            ("roots/r/etc/passwd", Denied::Outside),
            ("secret", Denied::Outside),
            ("images/x/passwd", Denied::Outside),
        ];
        for (name, want) in bad {
            assert_eq!(size(c, name), Err(want), "{name}");
        }
    }
    for bad in ["../x", "/etc"] {
        assert!(open().allow_subtree(Path::new(bad)).is_err(), "{bad}");
    }
    // An allowed directory must exist and lie inside the boundary.
    assert!(open().allow_dir(&top.join("later")).is_err());
    assert!(open().allow_dir(Path::new("/etc")).is_err());
    // Not there yet: accepted, and nothing outside it is served.
    let later = open().allow_subtree(Path::new("later")).unwrap();
    assert_eq!(size(&later, "pxelinux.0"), Err(Denied::Outside));
    // Without world_readable_only, the 0600 file is served.
    let any_mode = Confinement::open(&top.join("tftp"), top)
        .unwrap()
        .allow_subtree(Path::new("images"))
        .unwrap();
    assert!(size(&any_mode, "images/x/gen/1/private").is_ok());
}

#[test]
fn errno_classes() {
    let table = [
        (Errno::ENOENT, Denied::Missing),
        (Errno::ENOTDIR, Denied::Missing),
        (Errno::EXDEV, Denied::Escapes),
        (Errno::ELOOP, Denied::Loop),
        (Errno::EACCES, Denied::Permission),
        (Errno::EPERM, Denied::Permission),
        (Errno::EIO, Denied::Io(Errno::EIO)),
    ];
    for (e, want) in table {
        assert_eq!(Denied::from_errno(e), want, "{e}");
    }
    assert_eq!(check_regular(0o100644), Ok(()));
    assert_eq!(check_regular(0o040755), Err(Denied::Directory));
    assert_eq!(check_regular(0o010644), Err(Denied::NotRegular));
}
