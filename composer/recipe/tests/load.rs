//! The loader: defaults, files on disk, escapes, reusable layers.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use common::{load_in, parse_err, recipe_path, tree, HEAD};
use compose_recipe::*;

#[test]
fn defaults() {
    let text = format!(
        "{HEAD}\n[[layer]]\nkind = \"serial-console\"\n\n[[layer]]\nkind = \"files\"\nsource = \"f\"\ndest = \"/etc//x/\"\n\n\
         [[layer]]\nkind = \"hostname\"\nfrom_dhcp = true\n"
    );
    let d = tree(&[("r/f", Some("x"))]);
    let r = load_in(d.path(), &text).unwrap();
    assert_eq!(
        r.image,
        ImageSpec {
            name: "t".into(),
            description: None
        }
    );
    let b = &r.base;
    assert_eq!(
        (
            b.variant,
            b.tool,
            &b.components,
            b.source_date_epoch,
            &b.mirror,
            &b.architecture,
            b.packages.len()
        ),
        (
            Variant::Minbase,
            BaseTool::Auto,
            &vec!["main".to_owned()],
            DEFAULT_SOURCE_DATE_EPOCH,
            &None,
            &None,
            0
        )
    );
    let names: Vec<_> = r.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["serial-console", "files", "hostname"]);
    assert_eq!(
        r.layers[0].steps,
        [Step::SerialConsole {
            tty: "ttyS0".into(),
            baud: 115200
        }]
    );
    let Step::Files {
        source,
        dest,
        owner,
        group,
        mode,
        dir_mode,
    } = &r.layers[1].steps[0]
    else {
        panic!()
    };
    assert_eq!(
        (
            dest.as_str(),
            owner.as_str(),
            group.as_str(),
            *mode,
            *dir_mode
        ),
        ("/etc/x", "root", "root", None, None)
    );
    assert_eq!(source.rel, "f");
    assert!(source.abs.is_absolute() && source.abs.ends_with("r/f"));
    assert_eq!(r.layers[2].steps, [Step::Hostname(HostnameSpec::FromDhcp)]);
    assert!(r.dir.is_absolute());
    assert_eq!(r.path, recipe_path(d.path()));
}

#[test]
fn base_resolution() {
    // (extra [base] lines, mirror, epoch)
    let snap = "https://snapshot.debian.org/archive/debian/20250520T000000Z";
    let rows: [(&str, Option<&str>, i64); 4] = [
        ("", None, 1_704_067_200),
        (
            "snapshot = \"20250520T000000Z\"\n",
            Some(snap),
            1_747_699_200,
        ),
        (
            "snapshot = \"20250520T000000Z\"\nsource_date_epoch = 5\n",
            Some(snap),
            5,
        ),
        (
            "snapshot = \"20250520T000000Z\"\nmirror = \"http://m/debian\"\n",
            Some("http://m/debian"),
            1_747_699_200,
        ),
    ];
    for (extra, mirror, epoch) in rows {
        let r = parse_recipe(&format!("{HEAD}{extra}"), Path::new("x.toml")).unwrap();
        assert_eq!(
            (r.base.mirror.as_deref(), r.base.source_date_epoch),
            (mirror, epoch),
            "{extra}"
        );
    }
    let full = format!(
        "{HEAD}variant = \"buildd\"\ntool = \"debootstrap\"\narchitecture = \"arm64\"\ncomponents = [\"main\", \"non-free-firmware\"]\n\
         packages = [\"linux-image-arm64\", \"libc6:arm64=2.36-9\"]\n"
    );
    let b = parse_recipe(&full, Path::new("x.toml")).unwrap().base;
    assert_eq!(
        (b.variant.as_str(), b.tool, b.architecture.as_deref()),
        ("buildd", BaseTool::Debootstrap, Some("arm64"))
    );
    assert_eq!(b.components, ["main", "non-free-firmware"]);
}

/// A (path, content) for `tree`.
type File = (&'static str, Option<&'static str>);

/// Filesystem problems, one row each: (what, files, layer body, key, message fragment).
#[test]
fn path_checks() {
    let rows: &[(&str, &[File], &str, &str, &str)] = &[
        (
            "missing source",
            &[],
            "kind = \"files\"\nsource = \"nope\"\ndest = \"/\"",
            "layer[1].source",
            "\"nope\" does not exist",
        ),
        (
            "missing deb",
            &[],
            "kind = \"packages\"\ndebs = [\"debs/a.deb\"]",
            "layer[1].debs[1]",
            "does not exist",
        ),
        (
            "deb is a folder",
            &[("r/d.deb", None)],
            "kind = \"packages\"\ndebs = [\"d.deb\"]",
            "layer[1].debs[1]",
            "not a regular file",
        ),
        (
            "missing script",
            &[],
            "kind = \"script\"\nscript = \"s.sh\"",
            "layer[1].script",
            "\"s.sh\" does not exist",
        ),
        (
            "script is a folder",
            &[("r/s", None)],
            "kind = \"script\"\nscript = \"s\"",
            "layer[1].script",
            "not a regular file",
        ),
        (
            "missing input",
            &[],
            "kind = \"script\"\nrun = \"true\"\ninputs = [\"in\"]",
            "layer[1].inputs[1]",
            "does not exist",
        ),
        (
            "symlink out",
            &[("outside/x", Some("x"))],
            "kind = \"files\"\nsource = \"link\"\ndest = \"/\"",
            "layer[1].source",
            "outside the recipe's folder",
        ),
        (
            "deb symlink out",
            &[("outside/x.deb", Some("x"))],
            "kind = \"packages\"\ndebs = [\"link.deb\"]",
            "layer[1].debs[1]",
            "outside the recipe's folder",
        ),
        (
            "dir symlink out",
            &[("outside/x.deb", Some("x"))],
            "kind = \"packages\"\ndebs = [\"ldir/x.deb\"]",
            "layer[1].debs[1]",
            "outside the recipe's folder",
        ),
        (
            "dangling",
            &[],
            "kind = \"script\"\nrun = \"true\"\ninputs = [\"dangling\"]",
            "layer[1].inputs[1]",
            "dangling symlink",
        ),
    ];
    let mut failures = Vec::new();
    for (what, files, body, key, fragment) in rows {
        let d = tree(files);
        fs::create_dir_all(d.path().join("r")).unwrap();
        symlink(d.path().join("outside/x"), d.path().join("r/link")).unwrap();
        symlink(d.path().join("outside/x.deb"), d.path().join("r/link.deb")).unwrap();
        symlink(d.path().join("outside"), d.path().join("r/ldir")).unwrap();
        symlink(d.path().join("r/nothing"), d.path().join("r/dangling")).unwrap();
        let errs = load_in(d.path(), &format!("{HEAD}\n[[layer]]\n{body}\n")).unwrap_err();
        let ok = errs.0.iter().any(|e| {
            e.key.as_deref() == Some(key) && e.message.contains(fragment) && e.line.is_some()
        });
        if !ok {
            failures.push(format!("{what}: want {key} {fragment:?}, got\n{errs}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn symlink_inside_is_fine_and_script_file_is_read() {
    let d = tree(&[
        ("r/real/a.deb", Some("deb")),
        ("r/s.sh", Some("echo hi\n")),
        ("r/in/conf", Some("c")),
    ]);
    symlink("real/a.deb", d.path().join("r/b.deb")).unwrap();
    let text = format!(
        "{HEAD}\n[[layer]]\nkind = \"packages\"\ndebs = [\"b.deb\", \"real/a.deb\"]\n\n\
         [[layer]]\nkind = \"script\"\nscript = \"s.sh\"\ninputs = [\"in\", \"in/conf\"]\nenv = {{ A = \"1\" }}\n"
    );
    let r = load_in(d.path(), &text).unwrap();
    let debs: Vec<_> = r.layers[0].steps[0]
        .input_paths()
        .iter()
        .map(|p| p.abs.clone())
        .collect();
    assert_eq!(debs[0], debs[1], "the symlink resolves to the real file");
    let Step::Script { text, origin, .. } = &r.layers[1].steps[0] else {
        panic!()
    };
    assert_eq!(text, "echo hi\n");
    assert!(matches!(origin, ScriptOrigin::File(p) if p.rel == "s.sh"));
    let rels: Vec<_> = r.layers[1].steps[0]
        .input_paths()
        .iter()
        .map(|p| p.rel.clone())
        .collect();
    assert_eq!(rels, ["s.sh", "in", "in/conf"]);
}

const NETBOOT_LIKE: &str = r#"description = "test layer"
[params.overlay]
default = "tmpfs"
[params.site]
description = "required"

[[step]]
kind = "files"
source = "files"
dest = "/etc/${site}"

[[step]]
kind = "script"
run = "echo $${HOME} ${overlay} > /x"
env = { OVERLAY = "${overlay}", SITE = "x${site}y" }
"#;

fn with_layer(layer: &str, extra: &[(&str, Option<&str>)]) -> tempfile::TempDir {
    let mut files = vec![
        ("layers/nb/layer.toml", Some(layer)),
        ("layers/nb/files/a", Some("a")),
    ];
    files.extend_from_slice(extra);
    tree(&files)
}

#[test]
fn reusable_substitution_and_defaults() {
    let d = with_layer(NETBOOT_LIKE, &[]);
    let r = load_in(
        d.path(),
        &format!("{HEAD}\n[[layer]]\nuse = \"nb\"\nwith = {{ site = \"lab\" }}\n"),
    )
    .unwrap();
    let l = &r.layers[0];
    assert_eq!(l.name, "nb");
    let LayerOrigin::Reusable { name, dir, params } = &l.origin else {
        panic!()
    };
    assert_eq!(name, "nb");
    assert!(dir.is_absolute() && dir.ends_with("layers/nb"));
    let want: BTreeMap<String, String> = [("overlay", "tmpfs"), ("site", "lab")]
        .map(|(a, b)| (a.into(), b.into()))
        .into();
    assert_eq!(params, &want);
    let Step::Files { source, dest, .. } = &l.steps[0] else {
        panic!()
    };
    assert_eq!(dest, "/etc/lab");
    assert!(
        source.abs.ends_with("layers/nb/files"),
        "paths are relative to the layer's folder"
    );
    let Step::Script { text, env, .. } = &l.steps[1] else {
        panic!()
    };
    assert_eq!(text, "echo ${HOME} tmpfs > /x");
    assert_eq!(env["SITE"], "xlaby");
    // An explicit name and an overriding parameter.
    let r = load_in(d.path(), &format!("{HEAD}\n[[layer]]\nname = \"boot\"\nuse = \"nb\"\nwith = {{ site = \"s\", overlay = \"none\" }}\n")).unwrap();
    assert_eq!(r.layers[0].name, "boot");
    assert!(matches!(&r.layers[0].steps[1], Step::Script { env, .. } if env["OVERLAY"] == "none"));
}

#[test]
fn substitute_table() {
    let p: BTreeMap<String, String> = [("a".to_owned(), "1".to_owned())].into();
    for (input, want) in [
        ("plain", Ok(None)),
        ("${a}", Ok(Some("1"))),
        ("x${a}y${a}", Ok(Some("x1y1"))),
        ("$${a}", Ok(Some("${a}"))),
        ("$a ${a} $", Ok(Some("$a 1 $"))),
        ("${b}", Err("unknown parameter `${b}`")),
        ("${a", Err("unterminated `${`")),
    ] {
        let got = substitute(input, &p);
        let got = got
            .as_ref()
            .map(|o| o.as_deref())
            .map_err(|(m, _)| m.as_str());
        assert_eq!(got, want, "{input}");
    }
}

/// Problems with a `use`: (what, layer.toml, recipe layer body, file suffix, key, message fragment)
#[test]
fn reusable_errors() {
    let rows: &[(&str, &str, &str, &str, &str, &str)] = &[
        (
            "unknown with",
            NETBOOT_LIKE,
            "use = \"nb\"\nwith = { site = \"s\", overlya = \"x\" }",
            "r/x.toml",
            "layer[1].with.overlya",
            "unknown parameter \"overlya\" for layer \"nb\"",
        ),
        (
            "missing required",
            NETBOOT_LIKE,
            "use = \"nb\"",
            "r/x.toml",
            "layer[1].with",
            "missing required parameter \"site\"",
        ),
        (
            "missing layer",
            NETBOOT_LIKE,
            "use = \"nbx\"",
            "r/x.toml",
            "layer[1].use",
            "unknown reusable layer \"nbx\"",
        ),
        (
            "unknown ${}",
            "[[step]]\nkind = \"hostname\"\nhostname = \"${host}\"\n",
            "use = \"nb\"",
            "layers/nb/layer.toml",
            "step[1].hostname",
            "unknown parameter `${host}`",
        ),
        (
            "bad step value",
            "[params.b]\n[[step]]\nkind = \"serial-console\"\nbaud = \"${b}\"\n",
            "use = \"nb\"\nwith = { b = 12 }",
            "layers/nb/layer.toml",
            "step[1].baud",
            "unsupported baud rate 12",
        ),
        (
            "name in step",
            "[[step]]\nname = \"x\"\nkind = \"hostname\"\nfrom_dhcp = true\n",
            "use = \"nb\"",
            "layers/nb/layer.toml",
            "step[1].name",
            "does not apply",
        ),
        (
            "nested use",
            "[[step]]\nuse = \"other\"\n",
            "use = \"nb\"",
            "layers/nb/layer.toml",
            "step[1].use",
            "does not apply",
        ),
        (
            "no steps",
            "description = \"x\"\n",
            "use = \"nb\"",
            "layers/nb/layer.toml",
            "",
            "needs at least one [[step]]",
        ),
        (
            "unknown top key",
            "descrption = \"x\"\n[[step]]\nkind = \"hostname\"\nfrom_dhcp = true\n",
            "use = \"nb\"",
            "layers/nb/layer.toml",
            "descrption",
            "unknown key",
        ),
        (
            "step path escape",
            "[[step]]\nkind = \"files\"\nsource = \"../../r\"\ndest = \"/\"\n",
            "use = \"nb\"",
            "layers/nb/layer.toml",
            "step[1].source",
            "escapes the layer's folder",
        ),
        (
            "step file missing",
            "[[step]]\nkind = \"script\"\nscript = \"s.sh\"\n",
            "use = \"nb\"",
            "layers/nb/layer.toml",
            "step[1].script",
            "does not exist",
        ),
        (
            "with on no params",
            "[[step]]\nkind = \"hostname\"\nfrom_dhcp = true\n",
            "use = \"nb\"\nwith = { a = \"1\" }",
            "r/x.toml",
            "layer[1].with.a",
            "unknown parameter",
        ),
    ];
    let mut failures = Vec::new();
    for (what, layer, body, file, key, fragment) in rows {
        let d = with_layer(layer, &[]);
        let errs = load_in(d.path(), &format!("{HEAD}\n[[layer]]\n{body}\n")).unwrap_err();
        let ok = errs.0.iter().any(|e| {
            e.file.ends_with(file) && e.key.as_deref().unwrap_or("") == *key && e.message.contains(fragment)
                // Problems inside a layer file say where it was used from.
                && (file.starts_with("r/") || e.note.as_deref().is_some_and(|n| n.contains("used from") && n.contains("x.toml:7:1")))
        });
        if !ok {
            failures.push(format!(
                "{what}: want {file} {key} {fragment:?}, got\n{errs}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn golden_reusable_error() {
    let d = with_layer(
        "[[step]]\nkind = \"serial-console\"\ntty = \"${tty}\"\n",
        &[],
    );
    let errs = load_in(d.path(), &format!("{HEAD}\n[[layer]]\nuse = \"nb\"\n")).unwrap_err();
    let text = errs
        .to_string()
        .replace(&d.path().display().to_string(), "D");
    assert_eq!(
        text,
        "D/r/../layers/nb/layer.toml:3:7: step[1].tty: unknown parameter `${tty}`\n  \
         help: declared parameters: (none); write `$${` for a literal `${` (e.g. shell variables)\n  \
         note: used from D/r/x.toml:7:1 (layer[1])"
    );
}

#[test]
fn missing_layer_lists_available() {
    let d = with_layer(NETBOOT_LIKE, &[]);
    let errs = load_in(d.path(), &format!("{HEAD}\n[[layer]]\nuse = \"nbb\"\n")).unwrap_err();
    let help = errs.0[0].help.clone().unwrap();
    assert!(
        help.starts_with("available layers: nb (did you mean \"nb\"?) (searched "),
        "{help}"
    );
    // Explicit search path replaces the default one.
    let opts = LoadOptions {
        layer_dirs: vec![d.path().join("elsewhere")],
    };
    let errs = load_recipe(&recipe_path(d.path()), &opts).unwrap_err();
    assert!(
        errs.0[0]
            .help
            .as_deref()
            .unwrap()
            .starts_with("no reusable layers found"),
        "{errs}"
    );
}

#[test]
fn unreadable_recipe() {
    let errs = load_recipe(Path::new("/nonexistent/x.toml"), &LoadOptions::default()).unwrap_err();
    assert_eq!(errs.0.len(), 1);
    assert!(
        errs.to_string()
            .starts_with("/nonexistent/x.toml: cannot read recipe: "),
        "{errs}"
    );
}

#[test]
fn duplicate_with_use_default_name() {
    let errs = parse_err(&format!(
        "{HEAD}\n[[layer]]\nuse = \"nb\"\n\n[[layer]]\nuse = \"nb\"\n"
    ));
    assert!(
        errs.0[0].message.starts_with("duplicate layer name \"nb\""),
        "{errs}"
    );
}
