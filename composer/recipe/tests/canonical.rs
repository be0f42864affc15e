//! Canonical JSON: pinned, and independent of where the recipe lives.

mod common;

use std::path::{Path, PathBuf};

use common::{load_in, tree, HEAD};
use compose_recipe::*;

#[test]
fn pinned_step_json() {
    let script = Step::Script {
        text: "echo hi\n".into(),
        origin: ScriptOrigin::Inline,
        inputs: vec![InputPath {
            rel: "in/a".into(),
            abs: PathBuf::from("/home/me/r/in/a"),
        }],
        env: [
            ("B".to_owned(), "2".to_owned()),
            ("A".to_owned(), "1".to_owned()),
        ]
        .into(),
    };
    assert_eq!(
        canonical_json(&script),
        r#"{"env":{"A":"1","B":"2"},"inputs":["in/a"],"kind":"script","run":"echo hi\n"}"#
    );
    let rows = [
        (
            Step::Packages {
                install: vec!["less".into()],
                remove: vec![],
                debs: vec![InputPath {
                    rel: "a.deb".into(),
                    abs: "/x/a.deb".into(),
                }],
            },
            r#"{"debs":["a.deb"],"install":["less"],"kind":"packages","remove":[]}"#,
        ),
        (
            Step::SerialConsole {
                tty: "ttyS0".into(),
                baud: 115200,
            },
            r#"{"baud":115200,"kind":"serial-console","tty":"ttyS0"}"#,
        ),
        (
            Step::Hostname(HostnameSpec::FromDhcp),
            r#"{"from_dhcp":true,"kind":"hostname"}"#,
        ),
        (
            Step::Hostname(HostnameSpec::Fixed("n1".into())),
            r#"{"hostname":"n1","kind":"hostname"}"#,
        ),
        (
            Step::Files {
                source: InputPath {
                    rel: "f".into(),
                    abs: "/abs/f".into(),
                },
                dest: "/etc".into(),
                owner: "root".into(),
                group: "0".into(),
                mode: Some(0o644),
                dir_mode: None,
            },
            r#"{"dest":"/etc","dir_mode":null,"group":"0","kind":"files","mode":"0644","owner":"root","source":"f"}"#,
        ),
    ];
    for (step, want) in rows {
        assert_eq!(canonical_json(&step), want);
    }
    let layer = LayerSpec {
        name: "nb".into(),
        origin: LayerOrigin::Reusable {
            name: "netboot".into(),
            dir: "/usr/share/x".into(),
            params: [("overlay".to_owned(), "tmpfs".to_owned())].into(),
        },
        steps: vec![Step::Hostname(HostnameSpec::FromDhcp)],
    };
    assert_eq!(
        canonical_json(&layer),
        r#"{"name":"nb","origin":{"reusable":{"name":"netboot","params":{"overlay":"tmpfs"}}},"steps":[{"from_dhcp":true,"kind":"hostname"}]}"#
    );
}

#[test]
fn independent_of_the_folder() {
    let text = format!(
        "{HEAD}\n[[layer]]\nkind = \"files\"\nsource = \"f\"\ndest = \"/etc\"\n\n[[layer]]\nuse = \"nb\"\n\n\
         [[layer]]\nkind = \"script\"\nscript = \"s.sh\"\ninputs = [\"f\"]\n"
    );
    let files = [
        ("r/f/a", Some("a")),
        ("r/s.sh", Some("true\n")),
        (
            "layers/nb/layer.toml",
            Some("[[step]]\nkind = \"files\"\nsource = \"x\"\ndest = \"/x\"\n"),
        ),
        ("layers/nb/x", Some("x")),
    ];
    let (a, b) = (tree(&files), tree(&files));
    let (ra, rb) = (
        load_in(a.path(), &text).unwrap(),
        load_in(b.path(), &text).unwrap(),
    );
    assert_ne!(ra.dir, rb.dir);
    assert_ne!(ra, rb, "absolute paths differ");
    assert_eq!(canonical_json(&ra), canonical_json(&rb));
    for (la, lb) in ra.layers.iter().zip(&rb.layers) {
        assert_eq!(canonical_json(la), canonical_json(lb));
    }
    let json = canonical_json(&ra);
    assert!(!json.contains(&a.path().display().to_string()), "{json}");
    assert!(!json.contains("\"dir\""), "{json}");
}

/// Every recipe shipped in the repository loads.
#[test]
fn repository_recipes_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut seen = 0;
    for e in std::fs::read_dir(root.join("recipes")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "toml") {
            let r = load_recipe(&path, &LoadOptions::default())
                .unwrap_or_else(|e| panic!("{}:\n{e}", path.display()));
            assert!(!r.layers.is_empty());
            assert!(r.layers.iter().any(
                |l| matches!(&l.origin, LayerOrigin::Reusable { name, .. } if name == "netboot")
            ));
            seen += 1;
        }
    }
    assert!(seen >= 2, "expected minimal.toml and hpc-node.toml");
    // The shipped reusable layers parse and instantiate with their defaults.
    for name in ["netboot", "serial-console"] {
        let path = root.join("layers").join(name).join("layer.toml");
        let def = parse_layer_def(name, &std::fs::read_to_string(&path).unwrap(), &path).unwrap();
        let params = def
            .params
            .iter()
            .map(|(k, p)| (k.clone(), p.default.clone().unwrap()))
            .collect();
        assert!(!def.instantiate(&params).unwrap().is_empty());
    }
}
