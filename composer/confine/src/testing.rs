//! One small publish tree for the protocol crates' tests (feature
//! `testing`): compose-tftp and compose-http each check what their clients
//! see for every kind of denial against the same files, so the two tables
//! stay comparable and the tree is described once.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

/// A temporary publish tree; root `tftp/`, boundary the tree itself:
///
/// | name under `tftp/` | what it is | denied as |
/// |---|---|---|
/// | `f` | "hello", 0644 | served (5 bytes) |
/// | `images/x/k` | "kernel", 0644, through `images -> ../images` | served (6 bytes) |
/// | `private` | 0600 | [`crate::Denied::NotWorldReadable`] (world-readable only) |
/// | `root` | `-> ../roots/r/s`, a 0644 file outside `tftp/` and `images/` | [`crate::Denied::Outside`] (with subtrees) |
/// | `evil` | `-> /etc/passwd` | [`crate::Denied::Escapes`] |
/// | `up` | `-> ../..` | [`crate::Denied::Escapes`] past the tree |
/// | `magic` | `-> /proc/self/root/etc/passwd` | [`crate::Denied::Escapes`] |
/// | `sub` | a directory | [`crate::Denied::Directory`] |
pub fn publish_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let top = dir.path();
    for d in ["tftp/sub", "images/x", "roots/r"] {
        std::fs::create_dir_all(top.join(d)).expect("creating the fixture tree");
    }
    let write = |p: &str, body: &[u8], mode: u32| {
        let p = top.join(p);
        std::fs::write(&p, body).expect("writing a fixture file");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .expect("setting a fixture file's mode");
    };
    write("tftp/f", b"hello", 0o644);
    write("tftp/private", b"p", 0o600);
    write("images/x/k", b"kernel", 0o644);
    write("roots/r/s", b"s", 0o644);
    let ln = |target: &str, link: &str| {
        symlink(Path::new(target), top.join(link)).expect("creating a fixture symlink")
    };
    ln("../images", "tftp/images");
    ln("/etc/passwd", "tftp/evil");
    ln("../..", "tftp/up");
    ln("../roots/r/s", "tftp/root");
    ln("/proc/self/root/etc/passwd", "tftp/magic");
    dir
}
