//! Records the git commit compose is built from, for `compose --version`.
//! Outside a git checkout (a source tarball, a vendored copy) the version
//! says `unknown commit` instead of failing the build.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown commit".into());
    println!("cargo:rustc-env=COMPOSE_GIT_COMMIT={commit}");
    // Rebuild when HEAD moves: HEAD itself (a checkout of another branch) and
    // the branch ref it points to (a commit). Worktrees keep these outside
    // `.git/`, so ask git where they are. Only existing paths are named:
    // cargo reruns a script on every build if a watched path is missing.
    let mut watch = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch.push(git(&["rev-parse", "--git-path", &branch]));
        watch.push(git(&["rev-parse", "--git-common-dir"]).map(|d| format!("{d}/packed-refs")));
    }
    for path in watch.into_iter().flatten().map(PathBuf::from) {
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// Trimmed stdout of a successful git command; None without git or a repository.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}
