//! The command line as a user meets it, without root or network:
//! `compose check` on good and bad recipes, `--help`, and build's refusal
//! to run without root.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn compose(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_compose"))
        .args(args)
        .env_remove("COMPOSE_STORE")
        .output()
        .unwrap()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn check_text(name: &str, text: &str) -> (bool, String, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    fs::write(&path, text).unwrap();
    let out = compose(&["check", path.to_str().unwrap()]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        path,
        dir,
    )
}

const GOOD_HEAD: &str = "[image]\nname = \"t\"\n\n[base]\nsuite = \"bookworm\"\n";

#[test]
fn the_shipped_recipes_check_clean() {
    let recipes: Vec<PathBuf> = fs::read_dir(repo().join("recipes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    assert!(recipes.len() >= 2, "minimal and hpc-node at least");
    for r in recipes {
        let out = compose(&["check", r.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}: {}",
            r.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok "));
    }
}

#[test]
fn bad_recipes_name_file_line_and_key() {
    let cases: &[(&str, String, &str, &str)] = &[
        ("malformed TOML", format!("{GOOD_HEAD}[[layer]\n"), ":6:", "unclosed"),
        (
            "unknown layer kind",
            format!("{GOOD_HEAD}\n[[layer]]\nkind = \"pakages\"\ninstall = [\"x\"]\n"),
            ":8:",
            "packages",
        ),
        ("unknown key", format!("{GOOD_HEAD}suit = \"x\"\n"), ":6:", "suite"),
        (
            "missing file",
            format!("{GOOD_HEAD}\n[[layer]]\nkind = \"files\"\nsource = \"nope\"\ndest = \"/etc\"\n"),
            ":9:",
            "nope",
        ),
        (
            "escaping source",
            format!("{GOOD_HEAD}\n[[layer]]\nkind = \"files\"\nsource = \"../../etc\"\ndest = \"/etc\"\n"),
            ":9:",
            "..",
        ),
    ];
    for (what, text, line, hint) in cases {
        let (ok, err, path, _dir) = check_text("bad.toml", text);
        assert!(!ok, "{what}: must fail");
        assert!(
            err.contains(path.to_str().unwrap()),
            "{what}: names the file: {err}"
        );
        assert!(err.contains(line), "{what}: names the line {line}: {err}");
        assert!(err.contains(hint), "{what}: says {hint:?}: {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
    }
}

#[test]
fn help_documents_every_verb() {
    let out = compose(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for verb in ["build", "snapshots", "check"] {
        assert!(text.contains(verb), "{text}");
    }
    let out = compose(&["build", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--verify") && text.contains("cache"),
        "{text}"
    );
}

#[test]
fn snapshots_without_a_store_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("none");
    let out = compose(&["--store", store.to_str().unwrap(), "snapshots"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(store.to_str().unwrap()), "{err}");
    assert!(
        !store.exists(),
        "a read-only command must not create a store"
    );
}
