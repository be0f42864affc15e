//! `compose nodes regen` end to end on a scratch publish tree: golden
//! outputs for the sample inventory (tests/fixtures/nodes.toml, with the
//! checked-in test host keys), dry runs, idempotence, key stability, and
//! crashes at every fault point. Set UPDATE_GOLDEN=1 to rewrite
//! tests/golden/ after an intended change, then review the diff.

use compose_cluster::hostkey::{self, HostKey};
use compose_cluster::{apply, load_inventory, plan, Inventory, RegenOptions, RegenPlan};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn sample() -> Inventory {
    load_inventory(&fixtures().join("nodes.toml")).unwrap()
}

fn opts() -> RegenOptions {
    RegenOptions {
        base_dir: fixtures(),
        ..RegenOptions::default()
    }
}

/// A publish tree with a pxelinux.cfg holding a stale per-MAC link and
/// the sample nodes' test host keys.
fn tree() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("tftp/pxelinux.cfg");
    std::fs::create_dir_all(&cfg).unwrap();
    std::os::unix::fs::symlink(
        "../images/old/current/pxelinux.cfg",
        cfg.join("01-00-00-00-00-00-99"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "../images/hpc-node/current/pxelinux.cfg",
        cfg.join("default"),
    )
    .unwrap();
    seed_keys(d.path(), &["node01", "node02", "login1", "node03"]);
    d
}

fn seed_keys(tree: &Path, hosts: &[&str]) {
    for h in hosts {
        let dir = fixtures().join("hostkeys").join(h);
        let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
        let key = HostKey {
            private: read(hostkey::PRIVATE),
            public: read(hostkey::PUBLIC),
        };
        hostkey::store(&compose_tree::Layout::new(tree).hostkeys_dir(), h, &key).unwrap();
    }
}

/// Every entry under `root`: kind, mode and content (or link target).
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            let what = if meta.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(e.path()).unwrap().display())
            } else if meta.is_dir() {
                stack.push(e.path());
                format!("dir {mode:o}")
            } else {
                format!(
                    "file {mode:o} {}",
                    String::from_utf8_lossy(&std::fs::read(e.path()).unwrap())
                )
            };
            out.insert(rel, what);
        }
    }
    out
}

fn regen(inv: &Inventory, tree: &Path) -> RegenPlan {
    let p = plan(inv, tree, &opts()).unwrap();
    apply(&p).unwrap();
    p
}

fn check_golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert!(
        want == actual,
        "{name} differs from {}; if intended, rerun with UPDATE_GOLDEN=1:\n{}",
        path.display(),
        similar::TextDiff::from_lines(want.as_str(), actual).unified_diff()
    );
}

const GOLDEN: &[&str] = &[
    "hosts",
    "ssh_known_hosts",
    "genders",
    "clustershell/groups.yaml",
    "dsh/group/all",
    "dsh/group/compute",
    "dsh/group/canary",
    "dhcpd-hosts.conf",
    "dnsmasq-hosts.conf",
    "nodes/node01/etc/hostname",
    "nodes/node01/etc/hosts",
    "nodes/node01/root/.ssh/authorized_keys",
];

#[test]
fn golden_outputs_for_the_sample_inventory() {
    let t = tree();
    let p = plan(&sample(), t.path(), &opts()).unwrap();
    check_golden("first-regen.diff", &p.render_diff());
    check_golden("first-regen.summary", &format!("{}\n", p.summary()));
    apply(&p).unwrap();
    let set = t.path().join("cluster");
    for name in GOLDEN {
        let text = std::fs::read_to_string(set.join(name)).unwrap();
        check_golden(&format!("cluster/{name}"), &text);
    }
    let names: Vec<String> = p.files().keys().cloned().collect();
    check_golden("files.txt", &(names.join("\n") + "\n"));
    assert_eq!(
        std::fs::read_link(&set).unwrap(),
        Path::new("cluster.d").join(&p.set)
    );

    let cfg = t.path().join("tftp/pxelinux.cfg");
    let link = |n: &str| {
        std::fs::read_link(cfg.join(n))
            .unwrap()
            .display()
            .to_string()
    };
    assert_eq!(
        link("01-52-54-00-00-00-01"),
        "../images/hpc-node/current/pxelinux.cfg"
    );
    assert_eq!(
        link("01-52-54-00-00-00-02"),
        "../images/hpc-node/gen/3/pxelinux.cfg"
    );
    assert_eq!(
        link("01-52-54-00-00-00-09"),
        "../images/login/current/pxelinux.cfg"
    );
    assert!(!cfg.join("01-00-00-00-00-00-99").exists());
    assert_eq!(link("default"), "../images/hpc-node/current/pxelinux.cfg");

    // Node-private files are private; the key is the one stored.
    let node = set.join("nodes/node02");
    let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(node.join("etc/ssh/ssh_host_ed25519_key")), 0o600);
    assert_eq!(mode(node.join("etc/ssh/ssh_host_ed25519_key.pub")), 0o644);
    assert_eq!(mode(node.join("root/.ssh")), 0o700);
    assert_eq!(mode(node.join("root/.ssh/authorized_keys")), 0o600);
    assert_eq!(mode(t.path().join("cluster-state/hostkeys")), 0o700);
    assert_eq!(
        std::fs::read(node.join("etc/ssh/ssh_host_ed25519_key")).unwrap(),
        std::fs::read(fixtures().join("hostkeys/node02/ssh_host_ed25519_key")).unwrap()
    );
}

#[test]
fn dry_run_writes_nothing_even_when_keys_are_new() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("tftp/pxelinux.cfg")).unwrap();
    let before = snapshot(t.path());
    let p = plan(&sample(), t.path(), &opts()).unwrap();
    assert_eq!(p.new_host_keys, ["node01", "node02", "login1"]);
    assert!(!p.is_empty());
    assert_eq!(snapshot(t.path()), before);
    // Private keys are named in the diff, never shown.
    let diff = p.render_diff();
    assert!(
        diff.contains("@@ private key: content not shown @@"),
        "{diff}"
    );
    assert!(!diff.contains("PRIVATE KEY"), "{diff}");
    let json = serde_json::to_string(&p).unwrap();
    assert!(
        json.contains("\"secret\":true") && !json.contains("PRIVATE KEY"),
        "{json}"
    );
}

#[test]
fn regen_is_idempotent_and_keys_are_stable() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("tftp/pxelinux.cfg")).unwrap();
    let inv = sample();
    let first = regen(&inv, t.path());
    assert_eq!(first.new_host_keys.len(), 3);
    let keys = snapshot(&t.path().join("cluster-state/hostkeys"));
    let before = snapshot(t.path());

    let second = plan(&inv, t.path(), &opts()).unwrap();
    assert!(second.is_empty(), "{}", second.render_diff());
    assert_eq!(second.set, first.set);
    assert!(
        second.summary().ends_with("is up to date"),
        "{}",
        second.summary()
    );
    apply(&second).unwrap();
    assert_eq!(snapshot(t.path()), before);

    // A new node: only its files and everyone's shared files change, the
    // other keys stay, the previous set is kept, the one before removed.
    let mut more = inv.clone();
    let mut n3 = more.nodes[0].clone();
    n3.hostname = "node03".into();
    n3.mac = "52:54:00:00:00:03".into();
    n3.ip = "10.1.0.13".parse().unwrap();
    more.nodes.push(n3);
    let third = regen(&more, t.path());
    assert_eq!(third.new_host_keys, ["node03"]);
    assert!(third
        .changes
        .iter()
        .all(|c| !c.path.contains("nodes/node01/etc/ssh/ssh_host")));
    let keys_after = snapshot(&t.path().join("cluster-state/hostkeys"));
    for (k, v) in &keys {
        assert_eq!(keys_after.get(k), Some(v), "{k}");
    }
    let sets = |t: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(t.join("cluster.d"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let mut want = vec![first.set.clone(), third.set.clone()];
    want.sort();
    assert_eq!(sets(t.path()), want);
    let fourth = regen(&inv, t.path());
    assert_eq!(fourth.set, first.set);
    let mut want = vec![first.set.clone(), third.set.clone()];
    want.sort();
    assert_eq!(sets(t.path()), want, "kept: current and previous");
    assert!(!t.path().join("cluster/nodes/node03").exists());
}

#[test]
fn a_stale_plan_is_refused() {
    let t = tree();
    let inv = sample();
    let stale = plan(&inv, t.path(), &opts()).unwrap();
    regen(&inv, t.path());
    let err = apply(&stale).unwrap_err().to_string();
    assert!(err.contains("changed since the plan was made"), "{err}");
}

const CHILD_TREE: &str = "COMPOSE_TEST_REGEN_TREE";

/// Regenerates the tree named by CHILD_TREE from the sample inventory
/// plus node03; a no-op unless `crash_at_each_fault_point_leaves_a_complete_set`
/// runs this binary again for it.
#[test]
fn crash_child() {
    if let Ok(tree) = std::env::var(CHILD_TREE) {
        let p = plan(&with_node03(), Path::new(&tree), &opts()).unwrap();
        apply(&p).unwrap();
    }
}

fn with_node03() -> Inventory {
    let mut inv = sample();
    let mut n = inv.nodes[1].clone();
    n.hostname = "node03".into();
    n.mac = "52:54:00:00:00:03".into();
    n.ip = "10.1.0.13".parse().unwrap();
    inv.nodes.push(n);
    inv
}

#[test]
fn crash_at_each_fault_point_leaves_a_complete_set() {
    let new_files = {
        let t = tree();
        plan(&with_node03(), t.path(), &opts())
            .unwrap()
            .files()
            .clone()
    };
    for (fault, switched) in [
        ("cluster:after-hostkeys", false),
        ("cluster:mid-write", false),
        ("cluster:before-switch", false),
        ("cluster:after-switch", true),
        ("cluster:mid-links", true),
    ] {
        let t = tree();
        let old = regen(&sample(), t.path());
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--test-threads=1"])
            .env(CHILD_TREE, t.path())
            .env("COMPOSE_FAULT", fault)
            .current_dir(t.path())
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGABRT),
            "{fault}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let link = t.path().join("cluster");
        let want = if switched { &new_files } else { old.files() };
        let files = read_files(&link);
        assert!(
            &files == want,
            "{fault}: cluster is not the complete {} set",
            if switched { "new" } else { "old" }
        );

        // The next regen finishes the job and sweeps the leftovers.
        let p = regen(&with_node03(), t.path());
        assert_eq!(&read_files(&link), &new_files, "{fault}");
        let left: Vec<String> = std::fs::read_dir(t.path().join("cluster.d"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            left.len() <= 2 && left.contains(&p.set),
            "{fault}: {left:?}"
        );
        assert!(
            left.iter().all(|n| !n.starts_with('.')),
            "{fault}: {left:?}"
        );
        assert!(
            plan(&with_node03(), t.path(), &opts()).unwrap().is_empty(),
            "{fault}"
        );
    }
}

/// The set behind `link`, in the form plans carry.
fn read_files(link: &Path) -> compose_cluster::render::FileSet {
    let mut out = compose_cluster::render::FileSet::new();
    let snap = snapshot(&link.canonicalize().unwrap());
    for (path, what) in snap {
        if let Some(rest) = what.strip_prefix("file ") {
            let (mode, content) = rest.split_once(' ').unwrap();
            out.insert(
                path.clone(),
                compose_cluster::render::GenFile {
                    mode: u32::from_str_radix(mode, 8).unwrap(),
                    content: content.as_bytes().to_vec(),
                    secret: path.ends_with("/ssh_host_ed25519_key")
                        || path.ends_with("/overlay.cpio"),
                },
            );
        }
    }
    out
}

// The generated files, read by the programs they are for.

fn need(program: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .unwrap()
        .status
        .success();
    assert!(
        found,
        "{program} not found: apt-get install {package} (ci/setup)"
    );
}

fn applied_sample() -> tempfile::TempDir {
    let t = tree();
    regen(&sample(), t.path());
    t
}

#[test]
fn genders_file_reads_with_nodeattr() {
    need("nodeattr", "genders");
    let t = applied_sample();
    let genders = t.path().join("cluster/genders");
    let q = |args: &[&str]| {
        let out = Command::new("nodeattr")
            .arg("-f")
            .arg(&genders)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(q(&["-c", "compute"]), "node01,node02");
    assert_eq!(q(&["-c", "image=login"]), "login1");
    assert_eq!(q(&["-v", "node02", "rack"]), "r1");
}

#[test]
fn clustershell_groups_read_with_cluset() {
    need("cluset", "clustershell");
    let t = applied_sample();
    let cfg = t.path().join("clustershell-cfg");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("groups.conf"),
        format!(
            "[Main]\ndefault: compose\nautodir: {}\n",
            t.path().join("cluster/clustershell").display()
        ),
    )
    .unwrap();
    let q = |args: &[&str]| {
        let out = Command::new("cluset")
            .env("CLUSTERSHELL_CFGDIR", &cfg)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(q(&["-f", "@compute"]), "node[01-02]");
    assert_eq!(q(&["-f", "@image:login"]), "login1");
    assert_eq!(q(&["-f", "@all"]), "login1,node[01-02]");
}

#[test]
fn known_hosts_and_host_keys_read_with_ssh_keygen() {
    need("ssh-keygen", "openssh-client");
    let t = applied_sample();
    let known = t.path().join("cluster/ssh_known_hosts");
    for name in ["node01", "node01.cluster.example", "10.1.0.11"] {
        let out = Command::new("ssh-keygen")
            .arg("-F")
            .arg(name)
            .arg("-f")
            .arg(&known)
            .output()
            .unwrap();
        assert!(out.status.success(), "{name} not found in ssh_known_hosts");
    }
    // The node's private key derives its published public key.
    let key = t
        .path()
        .join("cluster/nodes/node01/etc/ssh/ssh_host_ed25519_key");
    let out = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let derived = String::from_utf8(out.stdout).unwrap();
    let known_text = std::fs::read_to_string(&known).unwrap();
    let line = known_text
        .lines()
        .find(|l| l.starts_with("node01,"))
        .unwrap();
    assert!(
        line.ends_with(derived.split_whitespace().nth(1).unwrap()),
        "{line} vs {derived}"
    );
}
