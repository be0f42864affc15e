//! `compose build`: cache hits, incremental rebuilds, failures, Ctrl-C,
//! reproducibility, and the store as skopeo sees it.

use super::*;
use compose_e2e::*;
use serde_json::Value;
use std::fs;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn mirror_cold_build_then_every_layer_is_a_hit() {
    let f = fixture();
    let cold = caches(&f.cold);
    assert!(cold.len() >= 3, "minimal has a base and layers: {cold:?}");
    assert!(
        cold.iter().all(|c| c == "miss"),
        "a cold build misses everywhere: {cold:?}"
    );

    let again = build_json(&f.store, &f.sandbox.join("recipes/minimal.toml"));
    assert!(caches(&again).iter().all(|c| c == "hit"), "{again}");
    assert_eq!(
        again["snapshot"], f.cold["snapshot"],
        "same inputs, same digest"
    );
    assert!(mounts_under(&f.store).is_empty());

    let list = ok(&compose(&f.store, &["snapshots", "--json"]));
    let list: Value = serde_json::from_str(&list).unwrap();
    let snap = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == f.cold["snapshot"])
        .expect("the cold build is listed");
    assert_eq!(snap["image"], "minimal");
    assert_eq!(snap["layers"].as_u64().unwrap() as usize, cold.len());
}

#[test]
fn mirror_skopeo_reads_the_store() {
    require_program("skopeo", "skopeo");
    let f = fixture();
    // Other tests build variants under the same image name: rebuilding
    // minimal.toml (all hits) makes the tag name the cold build again.
    let again = build_json(&f.store, &f.sandbox.join("recipes/minimal.toml"));
    assert_eq!(again["snapshot"], f.cold["snapshot"]);
    let out = Command::new("skopeo")
        .args(["inspect", &format!("oci:{}:minimal", f.store.display())])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Architecture"], "amd64");
    assert_eq!(v["Os"], "linux");
    assert_eq!(
        v["Layers"].as_array().unwrap().len(),
        f.cold["layers"].as_array().unwrap().len()
    );
    let digests: Vec<&Value> = f.cold["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["digest"])
        .collect();
    for (i, d) in v["Layers"].as_array().unwrap().iter().enumerate() {
        assert_eq!(d, digests[i], "layer {i}");
    }
}

#[test]
fn mirror_changing_the_last_layer_rebuilds_only_it() {
    let f = fixture();
    let first = variant("change-last", "[[layer]]\nname = \"marker\"\nkind = \"script\"\nrun = \"echo one > /etc/compose-marker\"\n");
    let r1 = build_json(&f.store, &first);
    let c1 = caches(&r1);
    let n = c1.len();
    assert!(c1[..n - 1].iter().all(|c| c == "hit"), "{c1:?}");
    assert_eq!(c1[n - 1], "miss");

    let second = variant("change-last", "[[layer]]\nname = \"marker\"\nkind = \"script\"\nrun = \"echo two > /etc/compose-marker\"\n");
    let r2 = build_json(&f.store, &second);
    let c2 = caches(&r2);
    assert!(c2[..n - 1].iter().all(|c| c == "hit"), "{c2:?}");
    assert_eq!(c2[n - 1], "miss");
    assert_ne!(r1["snapshot"], r2["snapshot"]);
    assert_ne!(r1["layers"][n - 1]["digest"], r2["layers"][n - 1]["digest"]);
    // The layer blob holds exactly the change: the marker file, not the world.
    assert!(
        r2["layers"][n - 1]["size"].as_u64().unwrap() < 64 * 1024,
        "{r2}"
    );
    assert!(mounts_under(&f.store).is_empty());
}

#[test]
fn privileged_failing_script_reports_and_leaves_store_unchanged() {
    let f = fixture();
    let before = store_state(&f.store);
    let recipe = variant(
        "fails",
        "[[layer]]\nname = \"boom\"\nkind = \"script\"\nrun = \"echo kaboom-7 >&2; exit 7\"\n",
    );
    let out = compose(&f.store, &["build", recipe.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("boom"), "names the layer: {err}");
    assert!(err.contains("kaboom-7"), "shows the script's output: {err}");
    assert!(
        err.contains("exit status: 7"),
        "shows the exit status: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        store_state(&f.store),
        before,
        "a failed build must not change the store"
    );
    assert!(mounts_under(&f.store).is_empty());
}

#[test]
fn privileged_interrupted_build_leaves_no_mounts_processes_or_partial_store() {
    let f = fixture();
    let before = store_state(&f.store);
    let recipe = variant(
        "interrupted",
        "[[layer]]\nname = \"slow\"\nkind = \"script\"\nrun = \"echo started; exec sleep 3517\"\n",
    );
    let log = f.sandbox.join("interrupted.log");
    let mut child = Command::new(compose_bin())
        .arg("--store")
        .arg(&f.store)
        .args(["build", "--verbose", recipe.to_str().unwrap()])
        .stdout(Stdio::from(fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(
            fs::File::create(f.sandbox.join("interrupted.err")).unwrap(),
        ))
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("started")
    {
        assert!(Instant::now() < deadline, "the slow layer never started");
        assert!(child.try_wait().unwrap().is_none(), "compose exited early");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Ctrl-C: SIGINT to the whole process group, as a terminal does.
    // SAFETY: plain kill(2) on the child's process group.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "compose did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        mounts_under(&f.store).is_empty(),
        "{:?}",
        mounts_under(&f.store)
    );
    assert!(
        !sleepers("3517"),
        "a process of the interrupted layer survived"
    );
    assert_eq!(
        store_state(&f.store),
        before,
        "an interrupted build must not change the store"
    );
    // The next build sweeps what the killed one left in the scratch area.
    ok(&compose(
        &f.store,
        &[
            "build",
            f.sandbox.join("recipes/minimal.toml").to_str().unwrap(),
        ],
    ));
    let leftovers: Vec<_> = fs::read_dir(f.store.join("compose/tmp")).unwrap().collect();
    assert!(
        leftovers.is_empty(),
        "scratch area not swept: {leftovers:?}"
    );
}

/// True if any process runs `sleep ARG`.
fn sleepers(arg: &str) -> bool {
    fs::read_dir("/proc").unwrap().flatten().any(|e| {
        fs::read(e.path().join("cmdline"))
            .map(|c| c.split(|b| *b == 0).any(|w| w == arg.as_bytes()))
            .unwrap_or(false)
    })
}

#[test]
fn mirror_verify_builds_twice_and_matches() {
    let f = fixture();
    let out = compose(
        &f.store,
        &[
            "build",
            "--verify",
            f.sandbox.join("recipes/minimal.toml").to_str().unwrap(),
        ],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "verify failed:\n{err}");
    assert!(err.contains("reproducible"), "{err}");
    assert!(
        err.contains(f.cold["snapshot"].as_str().unwrap()),
        "the verified digest is the cached one: {err}"
    );
}

/// A packages layer installs a local .deb (how a cluster ships its own
/// kernel from `make bindeb-pkg`): here a tiny package made with dpkg-deb.
#[test]
fn mirror_local_deb_is_installed_by_a_packages_layer() {
    require_program("dpkg-deb", "dpkg");
    let f = fixture();
    let pkg = f.sandbox.join("deb-src");
    fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
    fs::create_dir_all(pkg.join("usr/share/compose-test")).unwrap();
    fs::write(
        pkg.join("DEBIAN/control"),
        "Package: compose-test-local\nVersion: 1.2-3\nArchitecture: all\nMaintainer: compose <dev@compose.invalid>\nDescription: compose e2e test package\n",
    )
    .unwrap();
    fs::write(
        pkg.join("usr/share/compose-test/hello"),
        "from a local deb\n",
    )
    .unwrap();
    fs::create_dir_all(f.sandbox.join("recipes/debs")).unwrap();
    let deb = f
        .sandbox
        .join("recipes/debs/compose-test-local_1.2-3_all.deb");
    let out = Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&pkg)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recipe = variant(
        "local-deb",
        "[[layer]]\nname = \"local\"\nkind = \"packages\"\ndebs = [\"debs/compose-test-local_1.2-3_all.deb\"]\n",
    );
    let report = build_json(&f.store, &recipe);
    let snapshot = report["snapshot"].as_str().unwrap();
    // The layer's blob holds the package's file and dpkg's record of it.
    let layer = report["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = f
        .store
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let list = Command::new("tar").arg("-tf").arg(&blob).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.contains("usr/share/compose-test/hello"), "{list}");
    assert!(
        list.contains("var/lib/dpkg/info/compose-test-local.list"),
        "{list}"
    );
    assert!(!snapshot.is_empty());
}
