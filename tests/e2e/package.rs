//! The Debian package (ci/package) installed with apt into a clean Debian 12
//! root made by mmdebstrap from the host's apt sources: used there (version,
//! example recipes, man pages, bash completion, the systemd unit, the shipped
//! layers), then removed and purged without touching the admin's data.

use compose_e2e::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The .deb under test: $COMPOSE_DEB (ci/test passes what ci/package
/// built), else the one `ci/package` left in target/debian/.
fn package_deb() -> PathBuf {
    if let Some(p) = std::env::var_os("COMPOSE_DEB") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "COMPOSE_DEB={} is not a file: run `ci/package --profile dev` and point COMPOSE_DEB \
             at the .deb it prints (ci/test does both)",
            p.display()
        );
        return p;
    }
    let dir = repo_root().join("target/debian");
    let mut debs: Vec<PathBuf> = fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert!(
        debs.len() == 1,
        "expected one compose_*.deb in {}, found {debs:?}: run `ci/package --profile dev` \
         first, or set COMPOSE_DEB (ci/test does)",
        dir.display()
    );
    debs.pop().unwrap()
}

/// The host's apt source files that name a Debian archive: the new root
/// gets the same mirror (and suites) the rest of the project builds from.
fn host_sources() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    let sources: Vec<PathBuf> = files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "list" || e == "sources"))
        .filter(|p| fs::read_to_string(p).is_ok_and(|t| t.contains("/debian")))
        .collect();
    assert!(
        !sources.is_empty(),
        "no Debian mirror in /etc/apt/sources.list{{,.d}}: add one (this tier needs the mirror)"
    );
    sources
}

/// Runs `script` with bash inside `root`, with /proc, /sys and /dev
/// mounted in a private mount namespace (gone when it exits).
fn in_root(root: &Path, script: &str) -> Output {
    Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(
            r#"mount -t proc proc "$1/proc" && mount -t sysfs sys "$1/sys" &&
               mount --rbind /dev "$1/dev" && exec chroot "$1" /bin/bash -euc "$2""#,
        )
        .arg("sh")
        .arg(root)
        .arg(script)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("LC_ALL", "C.UTF-8")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .expect("running unshare + chroot")
}

/// `in_root`, asserting success (both streams shown on failure); returns stdout.
fn in_root_ok(root: &Path, script: &str) -> String {
    // Shown with the test's output if `ok` fails: which script it was.
    eprintln!("in the package root: {script}");
    ok(&in_root(root, script))
}

#[test]
fn mirror_package_installs_into_a_clean_debian() {
    require_root();
    require_program("mmdebstrap", "mmdebstrap");
    require_program("unshare", "util-linux");
    let deb = package_deb();
    let dir = run_dir().join("package");
    let root = dir.join("root");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();

    // A clean Debian 12: minbase plus what the checks use (man-db for
    // `man -w`, systemd for `systemd-analyze verify`). Apt's lists are kept
    // so the package's dependencies resolve without another update.
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "mmdebstrap"])
        .args([
            "--mode=root",
            "--variant=minbase",
            "--include=man-db,systemd",
            "--skip=cleanup/apt/lists",
            "bookworm",
        ])
        .arg(&root)
        .args(host_sources())
        .output()
        .expect("running mmdebstrap");
    assert!(
        out.status.success(),
        "mmdebstrap failed ({})\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    // apt resolves Depends from the mirror; Recommends are left out to keep
    // the tier short (skopeo alone pulls in dozens of packages).
    fs::copy(&deb, root.join("tmp/compose.deb")).unwrap();
    in_root_ok(
        &root,
        "apt-get install -y -q --no-install-recommends /tmp/compose.deb",
    );

    let version = in_root_ok(&root, "compose --version");
    assert!(
        version.starts_with("compose 0.1.0 (") && version.trim_end().ends_with(')'),
        "{version}"
    );

    // Every example recipe checks, its `use` layers found in /usr/share.
    let examples = root.join("usr/share/doc/compose/examples/recipes");
    let mut recipes: Vec<String> = fs::read_dir(&examples)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    recipes.sort();
    assert!(recipes.len() >= 2, "example recipes: {recipes:?}");
    for r in &recipes {
        let out = in_root_ok(
            &root,
            &format!("compose check /usr/share/doc/compose/examples/recipes/{r}"),
        );
        assert!(out.starts_with("ok "), "{r}: {out}");
    }

    let page = in_root_ok(&root, "man -w compose-build");
    assert_eq!(page.trim(), "/usr/share/man/man1/compose-build.1.gz");

    // The completion function bash-completion would call for `compose bu<TAB>`.
    let offered = in_root_ok(
        &root,
        r#"source /usr/share/bash-completion/completions/compose
           fn=$(complete -p compose | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
           COMP_WORDS=(compose bu); COMP_CWORD=1; COMP_LINE="compose bu"; COMP_POINT=10
           "$fn" compose bu compose
           printf '%s\n' "${COMPREPLY[@]}""#,
    );
    assert!(offered.lines().any(|l| l == "build"), "offered: {offered}");

    // In the root, so ExecStart= and the Documentation= man pages resolve.
    in_root_ok(
        &root,
        "systemd-analyze verify /lib/systemd/system/compose-serve.service",
    );
    let enabled = in_root(&root, "systemctl is-enabled compose-serve.service");
    assert_eq!(
        String::from_utf8_lossy(&enabled.stdout).trim(),
        "disabled",
        "compose-serve must not be enabled before it is configured"
    );

    // A recipe with no layers/ beside it or above it: `use = "netboot"`
    // comes from /usr/share/compose/layers.
    let lonely = in_root_ok(
        &root,
        r#"mkdir -p /root/lonely && cd /root/lonely
           printf '[image]\nname = "lonely"\n[base]\nsuite = "bookworm"\n[[layer]]\nuse = "netboot"\n' > node.toml
           compose check node.toml"#,
    );
    assert!(lonely.starts_with("ok node.toml"), "{lonely}");

    // remove keeps the admin's data and the (edited) conffiles; purge
    // removes the conffiles only.
    in_root_ok(
        &root,
        r#"mkdir -p /var/lib/compose/blobs /srv/compose/roots
           echo store > /var/lib/compose/blobs/keep
           echo published > /srv/compose/roots/keep
           echo 'interface = "eth9"' >> /etc/compose/serve.toml
           apt-get remove -y -q compose"#,
    );
    let data = ["var/lib/compose/blobs/keep", "srv/compose/roots/keep"];
    let conffiles = ["etc/compose/serve.toml", "etc/compose/nodes.toml"];
    assert!(!root.join("usr/bin/compose").exists(), "removed binary");
    for f in data.iter().chain(&conffiles) {
        assert!(root.join(f).is_file(), "/{f} must survive apt-get remove");
    }
    in_root_ok(&root, "apt-get purge -y -q compose");
    for f in conffiles {
        assert!(!root.join(f).exists(), "/{f} must go with apt-get purge");
    }
    for f in data {
        assert!(root.join(f).is_file(), "/{f} must survive apt-get purge");
    }

    fs::remove_dir_all(&dir).unwrap();
}
