//! `compose publish`, generations, rollback, gc and fsck on real snapshots,
//! and crash safety: SIGKILL at random moments and at named fault points.

use super::*;
use compose_e2e::*;
use serde_json::Value;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn run(store: &Path, tree: &Path, args: &[&str]) -> Output {
    Command::new(compose_bin())
        .arg("--store")
        .arg(store)
        .arg("--root")
        .arg(tree)
        .args(args)
        .output()
        .unwrap()
}

fn gens(store: &Path, tree: &Path) -> Vec<Value> {
    let out = ok(&run(store, tree, &["generations", "--json"]));
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn current(store: &Path, tree: &Path) -> Value {
    gens(store, tree)
        .into_iter()
        .find(|g| g["current"] == true)
        .expect("a current generation")
}

/// A second snapshot of the minimal image differing in one file, built
/// into `store` (same image name: it becomes minimal's newest snapshot).
fn second_snapshot(store: &Path, tag: &str) -> String {
    let recipe = variant(
        &format!("minimal-{tag}"),
        &format!("[[layer]]\nname = \"marker\"\nkind = \"script\"\nrun = \"echo {tag} > /etc/compose-marker\"\n"),
    );
    build_json(store, &recipe)["snapshot"]
        .as_str()
        .unwrap()
        .to_string()
}

fn free_bytes(path: &Path) -> u64 {
    let out = Command::new("stat")
        .args(["-f", "-c", "%a %S"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace().map(|n| n.parse::<u64>().unwrap());
    it.next().unwrap() * it.next().unwrap()
}

#[test]
fn privileged_publish_generations_rollback_gc() {
    let f = fixture();
    let (_keep, store) = store_copy();
    let tree_dir = tempfile::Builder::new()
        .prefix("compose-tree-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let tree = tree_dir.path();
    let first = f.cold["snapshot"].as_str().unwrap().to_string();
    let out = run(
        &store,
        tree,
        &["publish", &format!("minimal@{first}"), "--json"],
    );
    let report: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(report["generation"]["number"], 1);
    let g1 = current(&store, tree);
    assert_eq!(g1["snapshot"], first.as_str());
    let root1 = PathBuf::from(g1["root"].as_str().unwrap());
    assert_eq!(
        fs::read_to_string(root1.join("etc/motd")).unwrap(),
        "minimal compose node\n"
    );

    // The TFTP view: default entry -> current generation -> this root.
    let tftp = tree.join("tftp");
    let default = fs::read_to_string(tftp.join("pxelinux.cfg/default")).unwrap();
    assert!(default.starts_with("SERIAL 0 115200\n"), "{default}");
    assert!(
        default.contains(&format!("nfsroot={}", root1.display())),
        "{default}"
    );
    assert!(default.contains("console=ttyS0,115200n8"), "{default}");
    assert!(
        default.contains(&format!("compose.snapshot={first}")),
        "{default}"
    );
    for name in [
        "pxelinux.0",
        "ldlinux.c32",
        "images/minimal/gen/1/vmlinuz",
        "images/minimal/gen/1/initrd.img",
    ] {
        assert!(tftp.join(name).is_file(), "{name} in the TFTP root");
    }
    let kernel = fs::metadata(tftp.join("images/minimal/gen/1/vmlinuz")).unwrap();
    let version = g1["kernel_version"].as_str().unwrap();
    let in_root = fs::metadata(root1.join(format!("boot/vmlinuz-{version}"))).unwrap();
    assert_eq!(
        kernel.ino(),
        in_root.ino(),
        "the TFTP kernel is the root's own file"
    );

    // Same snapshot again: nothing changes.
    let again = run(
        &store,
        tree,
        &["publish", &format!("minimal@{first}"), "--json"],
    );
    let again: Value = serde_json::from_str(&ok(&again)).unwrap();
    assert_eq!(again["unchanged"], true);

    // A one-file change: generation 2 shares every other file with 1.
    let second = second_snapshot(&store, "two");
    let free_before = free_bytes(tree);
    let r2: Value =
        serde_json::from_str(&ok(&run(&store, tree, &["publish", "minimal", "--json"]))).unwrap();
    let added = free_before.saturating_sub(free_bytes(tree));
    assert_eq!(r2["generation"]["number"], 2);
    assert_eq!(r2["generation"]["snapshot"], second.as_str());
    assert!(
        r2["materialized"]["layers_from_checkpoint"]
            .as_u64()
            .unwrap()
            >= 1,
        "{r2}"
    );
    assert!(
        added < 30_000_000,
        "a one-file generation added {added} bytes"
    );
    let root2 = PathBuf::from(r2["generation"]["root"].as_str().unwrap());
    assert_eq!(
        fs::read_to_string(root2.join("etc/compose-marker")).unwrap(),
        "two\n"
    );
    assert!(
        !root1.join("etc/compose-marker").exists(),
        "generation 1 is untouched"
    );
    let (a, b) = (
        fs::metadata(root1.join("usr/bin/bash")).unwrap(),
        fs::metadata(root2.join("usr/bin/bash")).unwrap(),
    );
    assert_eq!(
        a.ino(),
        b.ino(),
        "unchanged files are shared between generations"
    );
    assert!(fs::read_to_string(tftp.join("pxelinux.cfg/default"))
        .unwrap()
        .contains(&second));

    // Diff of the two generations: exactly the marker file (and its layer's
    // parent directory entry), no packages; a generation against itself: empty.
    let d = ok(&run(
        &store,
        tree,
        &["diff", "minimal@gen1", "minimal@gen2", "--json"],
    ));
    let d: Value = serde_json::from_str(&d).unwrap();
    let files: Vec<&str> = d["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(files, vec!["/etc/compose-marker"], "{d}");
    assert_eq!(d["files"][0]["change"], "added");
    assert!(d["packages"].as_array().unwrap().is_empty());
    let text = ok(&run(
        &store,
        tree,
        &["diff", "minimal@gen1", "minimal@gen2"],
    ));
    assert!(text.contains("/etc/compose-marker"), "{text}");
    let same = ok(&run(&store, tree, &["diff", "minimal@gen2", &second]));
    assert!(same.contains("no differences"), "{same}");

    // Rollback: instant, both ways.
    ok(&run(&store, tree, &["rollback", "minimal"]));
    assert_eq!(current(&store, tree)["number"], 1);
    assert!(fs::read_to_string(tftp.join("pxelinux.cfg/default"))
        .unwrap()
        .contains(&first));
    ok(&run(&store, tree, &["rollback", "minimal", "--to", "2"]));
    assert_eq!(current(&store, tree)["number"], 2);
    let bad = run(&store, tree, &["rollback", "minimal", "--to", "9"]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("has no generation 9; it has 1, 2"),
        "{}",
        stderr(&bad)
    );

    ok(&run(&store, tree, &["fsck"]));

    // A generation a node is pinned to survives gc.
    let nodes = tree.join("nodes.toml");
    fs::write(
        &nodes,
        "[[node]]\nhostname = \"n1\"\nmac = \"52:54:00:00:00:01\"\nip = \"10.0.0.1\"\nimage = \"minimal\"\ngeneration = 1\n",
    )
    .unwrap();
    ok(&run(
        &store,
        tree,
        &["gc", "--keep", "1", "--nodes", nodes.to_str().unwrap()],
    ));
    let left: Vec<u64> = gens(&store, tree)
        .iter()
        .map(|g| g["number"].as_u64().unwrap())
        .collect();
    assert_eq!(left, vec![1, 2], "the pinned generation 1 is kept");
    fs::remove_file(&nodes).unwrap();

    // gc --keep 1 drops generation 1 and its root, never the current one.
    ok(&run(&store, tree, &["gc", "--keep", "1"]));
    let left: Vec<u64> = gens(&store, tree)
        .iter()
        .map(|g| g["number"].as_u64().unwrap())
        .collect();
    assert_eq!(left, vec![2]);
    assert!(!root1.exists(), "the unreferenced root is gone");
    assert!(root2.join("etc/compose-marker").exists());
    ok(&run(&store, tree, &["fsck"]));
}

/// After any interruption: fsck is clean and `current` names a complete
/// generation whose pxelinux entry points at an existing root.
fn assert_consistent(store: &Path, tree: &Path, what: &str) {
    let out = run(store, tree, &["fsck"]);
    assert!(out.status.success(), "{what}: fsck: {}", stderr(&out));
    if tree.join("images/minimal/current").exists() {
        let g = current(store, tree);
        assert!(
            Path::new(g["root"].as_str().unwrap())
                .join("usr/bin")
                .is_dir(),
            "{what}"
        );
        let default = fs::read_to_string(tree.join("tftp/pxelinux.cfg/default"))
            .unwrap_or_else(|e| panic!("{what}: the TFTP default entry: {e}"));
        assert!(
            default.contains(g["snapshot"].as_str().unwrap()),
            "{what}: default follows current"
        );
    }
}

/// Runs compose and SIGKILLs it after `delay` (if still running).
fn kill_after(store: &Path, tree: &Path, args: &[&str], delay: Duration) {
    let mut child = Command::new(compose_bin())
        .arg("--store")
        .arg(store)
        .arg("--root")
        .arg(tree)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + delay;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn privileged_crash_safety_of_publish_rollback_and_gc() {
    let f = fixture();
    let (_keep, store) = store_copy();
    let tree_dir = tempfile::Builder::new()
        .prefix("compose-crash-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let tree = tree_dir.path();
    let a = format!("minimal@{}", f.cold["snapshot"].as_str().unwrap());
    let b = format!("minimal@{}", second_snapshot(&store, "crash"));
    // Rebuilding minimal (all hits) makes a and b the two newest snapshots,
    // so `gc --keep 2` below never drops either from the store.
    build_json(&store, &f.sandbox.join("recipes/minimal.toml"));

    // Named fault points: the process aborts exactly there.
    for point in [
        "publish:mid-extract",
        "publish:before-root-rename",
        "publish:before-gen-rename",
        "publish:before-switch",
        "publish:after-switch",
    ] {
        for target in [&a, &b] {
            let out = Command::new(compose_bin())
                .arg("--store")
                .arg(&store)
                .arg("--root")
                .arg(tree)
                .args(["publish", target])
                .env("COMPOSE_FAULT", point)
                .output()
                .unwrap();
            let _ = out; // it may abort or, if the point is not reached, succeed
            assert_consistent(&store, tree, point);
        }
        // gc between rounds so roots are materialized again
        ok(&run(&store, tree, &["gc", "--keep", "2"]));
    }

    // Random SIGKILLs: time one publish, then kill at pseudo-random moments.
    let t = Instant::now();
    ok(&run(&store, tree, &["publish", &a]));
    let span = t.elapsed().max(Duration::from_millis(200));
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for trial in 0..24 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = span.mul_f64((seed % 1000) as f64 / 1000.0);
        let what = match trial % 4 {
            0 | 1 => vec![
                "publish".to_string(),
                if trial % 2 == 0 { b.clone() } else { a.clone() },
            ],
            2 => vec!["rollback".to_string(), "minimal".to_string()],
            _ => vec!["gc".to_string(), "--keep".to_string(), "2".to_string()],
        };
        let args: Vec<&str> = what.iter().map(String::as_str).collect();
        kill_after(&store, tree, &args, delay);
        assert_consistent(
            &store,
            tree,
            &format!("trial {trial}: {what:?} killed after {delay:?}"),
        );
    }
}

/// A canary: `publish --nodes` writes the generation, pins only those nodes
/// to it (inventory and per-MAC pxelinux links), and leaves `current` and
/// every other node alone; `compose nodes regen` writes each node's files.
#[test]
fn privileged_canary_publish_pins_only_its_nodes() {
    let (_keep, store) = store_copy();
    let first = fixture().cold["snapshot"].as_str().unwrap().to_string();
    let second = second_snapshot(&store, "canary");
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    let nodes = dir.path().join("nodes.toml");
    let mut text =
        String::from("# the canary test's cluster\n[cluster]\nsubnet = \"10.1.0.0/24\"\n");
    for i in 1..=4 {
        text.push_str(&format!(
            "\n[[node]]\nhostname = \"node0{i}\"\nmac = \"52:54:00:00:00:0{i}\"\nip = \"10.1.0.1{i}\"\nimage = \"minimal\"\ngroups = [\"compute\"]\n"
        ));
    }
    fs::write(&nodes, &text).unwrap();
    ok(&run(
        &store,
        &tree,
        &["publish", &format!("minimal@{first}")],
    ));
    let canary = |args: &[&str]| {
        Command::new(compose_bin())
            .arg("--store")
            .arg(&store)
            .arg("--root")
            .arg(&tree)
            .args(args)
            .env("COMPOSE_NODES", &nodes)
            .output()
            .unwrap()
    };
    // Unknown nodes are refused before anything is written.
    let out = canary(&[
        "publish",
        &format!("minimal@{second}"),
        "--nodes",
        "node0[1,9]",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("node09"), "{}", stderr(&out));
    assert_eq!(gens(&store, &tree).len(), 1);

    ok(&canary(&[
        "publish",
        &format!("minimal@{second}"),
        "--nodes",
        "node0[1-2]",
    ]));
    let all = gens(&store, &tree);
    assert_eq!(all.len(), 2);
    assert_eq!(current(&store, &tree)["number"], 1, "current stays");
    let link = |mac: &str| {
        fs::read_link(tree.join(format!("tftp/pxelinux.cfg/01-52-54-00-00-00-{mac}")))
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    assert_eq!(link("01"), "../images/minimal/gen/2/pxelinux.cfg");
    assert_eq!(link("02"), "../images/minimal/gen/2/pxelinux.cfg");
    assert_eq!(link("03"), "../images/minimal/current/pxelinux.cfg");
    let saved = fs::read_to_string(&nodes).unwrap();
    assert!(
        saved.starts_with("# the canary test's cluster\n"),
        "{saved}"
    );
    assert_eq!(saved.matches("generation = 2").count(), 2, "{saved}");
    let listed: Value = serde_json::from_str(&ok(&canary(&["nodes", "list", "--json"]))).unwrap();
    assert_eq!(listed[0]["generation"], 2, "{listed:#}");
    assert!(listed[2]["generation"].is_null(), "{listed:#}");

    // Each node's own files, one archive per node for the initramfs.
    ok(&canary(&["nodes", "regen"]));
    let hosts = fs::read_to_string(tree.join("cluster/nodes/node03/etc/hosts")).unwrap();
    assert!(hosts.contains("10.1.0.14\tnode04"), "{hosts}");
    let cpio = fs::read(tree.join("cluster/boot/node03/overlay.cpio")).unwrap();
    assert!(cpio.starts_with(b"070701"), "a newc archive");
    assert!(
        cpio.windows(b"etc/ssh/ssh_host_ed25519_key\0".len())
            .any(|w| w == b"etc/ssh/ssh_host_ed25519_key\0"),
        "the archive carries the node's host key"
    );
    // A second regen changes nothing.
    let again = canary(&["nodes", "regen", "--dry-run"]);
    assert!(
        again.status.success() && again.stdout.is_empty(),
        "{}",
        stderr(&again)
    );
    assert!(
        stderr(&again).contains("is up to date"),
        "{}",
        stderr(&again)
    );
}
