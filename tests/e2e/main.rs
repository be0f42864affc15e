//! End-to-end tiers on real mmdebstrap builds, chroots and publishes.
//!
//! One cold build of recipes/minimal.toml is shared by every test (it takes
//! a minute or two); each test then builds or publishes variations of it.

mod attack;
mod boot;
mod build;
mod package;
mod publish;
mod serve;

use compose_e2e::*;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub struct Fixture {
    pub store: PathBuf,
    pub sandbox: PathBuf,
    pub cold: Value,
}

/// The shared store with a cold build of minimal.toml in it.
pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        require_root();
        require_program("mmdebstrap", "mmdebstrap");
        let dir = run_dir();
        let sandbox = recipe_sandbox(&dir);
        let store = dir.join("store");
        let recipe = sandbox.join("recipes/minimal.toml");
        let out = compose(&store, &["build", "--json", recipe.to_str().unwrap()]);
        let cold: Value = serde_json::from_str(&ok(&out)).expect("build --json prints JSON");
        Fixture {
            store,
            sandbox,
            cold,
        }
    })
}

pub fn caches(report: &Value) -> Vec<String> {
    report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["cache"].as_str().unwrap().to_string())
        .collect()
}

pub fn build_json(store: &Path, recipe: &Path) -> Value {
    let out = compose(store, &["build", "--json", recipe.to_str().unwrap()]);
    serde_json::from_str(&ok(&out)).unwrap()
}

/// minimal.toml plus extra layers, written into the sandbox.
pub fn variant(name: &str, extra: &str) -> PathBuf {
    let f = fixture();
    let text = fs::read_to_string(f.sandbox.join("recipes/minimal.toml")).unwrap();
    let path = f.sandbox.join(format!("recipes/{name}.toml"));
    fs::write(&path, format!("{text}\n{extra}\n")).unwrap();
    path
}

/// A private copy of the fixture's store: gc in one test must not take
/// snapshots from another. Blobs are immutable, so hard links suffice.
pub fn store_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("compose-store-copy-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let store = dir.path().join("store");
    let st = Command::new("cp")
        .arg("-al")
        .arg(&fixture().store)
        .arg(&store)
        .status()
        .unwrap();
    assert!(st.success());
    fs::remove_file(store.join("compose/lock")).ok();
    (dir, store)
}
