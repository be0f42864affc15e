use super::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;

fn base(root: &Path) {
    fs::write(root.join("f"), b"aaa").unwrap();
    fs::create_dir_all(root.join("d/sub")).unwrap();
    fs::write(root.join("d/x"), b"x").unwrap();
    fs::write(root.join("d/sub/y"), b"y").unwrap();
    fs::create_dir(root.join("e")).unwrap();
}

type Mutation = fn(&Path);

fn paths(list: &[&str]) -> Vec<PathBuf> {
    list.iter().map(PathBuf::from).collect()
}

#[test]
fn changes_table() {
    let cases: Vec<(&str, Mutation, &[&str], &[&str])> = vec![
        ("nothing", |_| {}, &[], &[]),
        (
            "add file",
            |r| fs::write(r.join("e/new"), b"n").unwrap(),
            &["e/new"],
            &[],
        ),
        (
            "modify same size",
            |r| fs::write(r.join("f"), b"bbb").unwrap(),
            &["f"],
            &[],
        ),
        (
            "chmod file",
            |r| fs::set_permissions(r.join("f"), fs::Permissions::from_mode(0o4755)).unwrap(),
            &["f"],
            &[],
        ),
        (
            "chmod dir",
            |r| fs::set_permissions(r.join("e"), fs::Permissions::from_mode(0o700)).unwrap(),
            &["e"],
            &[],
        ),
        (
            "delete file",
            |r| fs::remove_file(r.join("d/x")).unwrap(),
            &[],
            &["d/x"],
        ),
        (
            "delete subtree",
            |r| fs::remove_dir_all(r.join("d")).unwrap(),
            &[],
            &["d"],
        ),
        (
            "dir mtime churn is noise",
            |r| {
                fs::write(r.join("e/tmp"), b"").unwrap();
                fs::remove_file(r.join("e/tmp")).unwrap();
            },
            &[],
            &[],
        ),
        (
            "file becomes dir",
            |r| {
                fs::remove_file(r.join("f")).unwrap();
                fs::create_dir(r.join("f")).unwrap();
                fs::write(r.join("f/c"), b"c").unwrap();
            },
            &["f", "f/c"],
            &[],
        ),
        (
            "dir becomes file",
            |r| {
                fs::remove_dir_all(r.join("d")).unwrap();
                fs::write(r.join("d"), b"now a file").unwrap();
            },
            &["d"],
            &[],
        ),
        (
            "dir becomes symlink",
            |r| {
                fs::remove_dir_all(r.join("d")).unwrap();
                std::os::unix::fs::symlink("/etc", r.join("d")).unwrap();
            },
            &["d"],
            &[],
        ),
        (
            "hardlink added",
            |r| fs::hard_link(r.join("f"), r.join("e/g")).unwrap(),
            &["e/g", "f"],
            &[],
        ),
    ];
    for (name, mutate, changed, deleted) in cases {
        let dir = tempfile::tempdir().unwrap();
        base(dir.path());
        let before = scan(dir.path()).unwrap();
        mutate(dir.path());
        let after = scan(dir.path()).unwrap();
        let got = changes(&before, &after);
        let want = ChangeSet {
            changed: paths(changed),
            deleted: paths(deleted),
        };
        assert_eq!(got, want, "case {name}");
    }
}

#[test]
fn scan_records_symlinks_without_following() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("real")).unwrap();
    fs::write(dir.path().join("real/f"), b"").unwrap();
    std::os::unix::fs::symlink("real", dir.path().join("link")).unwrap();
    let s = scan(dir.path()).unwrap();
    assert_eq!(s.len(), 3);
    assert_eq!(s.get(Path::new("link")).unwrap().kind, EntryKind::Symlink);
    assert!(s.get(Path::new("link/f")).is_none());
    let order: Vec<&Path> = s.iter().map(|(p, _)| p).collect();
    assert_eq!(
        order,
        vec![Path::new("link"), Path::new("real"), Path::new("real/f")]
    );
}

#[test]
fn scan_is_fast_enough() {
    let dir = tempfile::tempdir().unwrap();
    for d in 0..50 {
        let sub = dir.path().join(format!("d{d}"));
        fs::create_dir(&sub).unwrap();
        for f in 0..200 {
            fs::write(sub.join(format!("f{f}")), b"").unwrap();
        }
    }
    let t = std::time::Instant::now();
    let s = scan(dir.path()).unwrap();
    assert_eq!(s.len(), 50 * 201);
    // 10k entries; generous bound so a loaded CI machine does not flake.
    assert!(
        t.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn scan_error_names_the_path() {
    let err = scan(Path::new("/nonexistent/compose-test")).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/compose-test"),
        "{err}"
    );
}
