//! Shared helpers for the end-to-end tiers.
//!
//! Test names carry their tier: `privileged_` (root), `mirror_` (root and
//! the Debian mirror), `netns_` (network namespaces), `attack_` (an attack
//! from SECURITY.md against a real server) and `vm_` (QEMU guests). A test
//! whose prerequisite is missing fails and says how to run it; nothing
//! skips silently.

pub mod netns;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The compose binary under test: $COMPOSE_BIN, else the workspace's debug build.
pub fn compose_bin() -> PathBuf {
    let p = std::env::var_os("COMPOSE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo_root().join("target"));
            target.join("debug/compose")
        });
    assert!(
        p.is_file(),
        "compose binary not found at {}: run `cargo build -p compose` first, or set COMPOSE_BIN \
         (ci/test does both)",
        p.display()
    );
    p
}

pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this end-to-end tier needs root (bootstrap, chroot, mounts): run `sudo ci/test`, or \
         `sudo -E cargo test -p compose-e2e -- --test-threads=1`"
    );
}

pub fn require_program(name: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()));
    assert!(
        found,
        "{name} is not installed: `apt-get install {package}` (ci/setup installs it)"
    );
}

/// Runs compose with `--store STORE` and returns its output.
pub fn compose(store: &Path, args: &[&str]) -> Output {
    Command::new(compose_bin())
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .expect("running compose")
}

/// Asserts success and returns stdout; on failure shows both streams.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "compose failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Mount points at or below `dir` (there must be none after any build).
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| Path::new(m).starts_with(&dir))
        .map(str::to_string)
        .collect()
}

/// Every file of a store with its size and content (small files) — to
/// compare a store before and after a failed build. The lock file and the
/// scratch area are not part of the store's state.
pub fn store_state(store: &Path) -> BTreeMap<String, (u64, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![store.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p
                .strip_prefix(store)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel == "compose/lock" || rel.starts_with("compose/tmp") {
                continue;
            }
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else {
                let content = if m.len() < 1 << 16 {
                    fs::read(&p).unwrap()
                } else {
                    Vec::new()
                };
                out.insert(rel, (m.len(), content));
            }
        }
    }
    out
}

/// This test process's scratch directory, `/var/tmp/compose-e2e/<pid>`.
/// Shared fixtures live in statics, which are never dropped, so instead of
/// temp dirs each run sweeps the directories of runs that have ended.
pub fn run_dir() -> PathBuf {
    let base = Path::new("/var/tmp/compose-e2e");
    fs::create_dir_all(base).unwrap();
    for entry in fs::read_dir(base).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let alive = name
            .parse::<u32>()
            .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    let dir = base.join(std::process::id().to_string());
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A copy of the repository's recipes/ and layers/ under `dir`, so a test
/// can add or change recipes without touching the checkout.
pub fn recipe_sandbox(dir: &Path) -> PathBuf {
    let sandbox = dir.join("sandbox");
    fs::create_dir_all(&sandbox).unwrap();
    for sub in ["recipes", "layers"] {
        let st = Command::new("cp")
            .arg("-a")
            .arg(repo_root().join(sub))
            .arg(&sandbox)
            .status()
            .unwrap();
        assert!(st.success(), "copying {sub}");
    }
    sandbox
}
