//! Pure-stage diagnostics (parse_recipe): one row per problem.

mod common;

use common::{parse_err, HEAD};

/// (what, recipe text, expected key, expected message fragment, expected line)
type Case = (&'static str, String, &'static str, &'static str, usize);

fn layer(body: &str) -> String {
    // HEAD has 5 lines; [[layer]] is line 7, so body lines start at 8.
    format!("{HEAD}\n[[layer]]\n{body}\n")
}

fn cases() -> Vec<Case> {
    vec![
        ("syntax", "[image\n".into(), "", "TOML syntax error", 1),
        ("missing image", "[base]\nsuite = \"bookworm\"\n".into(), "", "missing [image] table", 1),
        ("missing base", "[image]\nname = \"t\"\n".into(), "", "missing [base] table", 1),
        ("top-level unknown", format!("layers = 1\n{HEAD}"), "layers", "unknown key \"layers\"", 1),
        ("image unknown key", "[image]\nname = \"t\"\nnmae = 1\n[base]\nsuite = \"s\"\n".into(), "image.nmae", "unknown key \"nmae\"", 3),
        ("bad image name", "[image]\nname = \"Hpc\"\n[base]\nsuite = \"s\"\n".into(), "image.name", "invalid image name \"Hpc\"", 2),
        ("missing suite", "[image]\nname = \"t\"\n[base]\nvariant = \"minbase\"\n".into(), "base.suite", "missing required key \"suite\"", 3),
        ("bad variant", format!("{HEAD}variant = \"tiny\"\n"), "base.variant", "unknown variant \"tiny\"", 6),
        ("bad tool", format!("{HEAD}tool = \"cdebootstrap\"\n"), "base.tool", "unknown tool", 6),
        ("wrong type", format!("{HEAD}suite2 = 1\ncomponents = \"main\"\n"), "base.components", "expected a sequence, found string", 7),
        ("bad epoch type", format!("{HEAD}source_date_epoch = \"now\"\n"), "base.source_date_epoch", "expected an integer, found string", 6),
        ("negative epoch", format!("{HEAD}source_date_epoch = -1\n"), "base.source_date_epoch", "must not be negative", 6),
        ("bad snapshot", format!("{HEAD}snapshot = \"2025-05-20\"\n"), "base.snapshot", "invalid snapshot", 6),
        ("bad mirror", format!("{HEAD}mirror = \"deb.debian.org\"\n"), "base.mirror", "invalid mirror URL", 6),
        ("bad base package", format!("{HEAD}packages = [\"ok\", \"Bad_Name\"]\n"), "base.packages[2]", "invalid Debian package name \"Bad_Name\"", 6),
        ("empty components", format!("{HEAD}components = []\n"), "base.components", "empty list", 6),
        ("layer not a table", format!("layer = 3\n{HEAD}"), "layer", "expected an array of tables", 1),
        ("unknown kind", layer("kind = \"pakages\""), "layer[1].kind", "unknown layer kind \"pakages\"", 8),
        ("neither kind nor use", layer("name = \"x\""), "layer[1]", "needs `kind` or `use`", 7),
        ("both kind and use", layer("kind = \"script\"\nuse = \"netboot\""), "layer[1]", "has both `kind` and `use`", 7),
        ("unknown layer key", layer("kind = \"packages\"\ninstal = [\"a\"]"), "layer[1].instal", "unknown key \"instal\"", 9),
        ("key of another kind", layer("kind = \"packages\"\ninstall = [\"vim\"]\ntty = \"ttyS0\""), "layer[1].tty", "does not apply to kind \"packages\"", 10),
        ("with on a kind layer", layer("kind = \"hostname\"\nfrom_dhcp = true\nwith = {}"), "layer[1].with", "does not apply", 10),
        ("empty packages", layer("kind = \"packages\""), "layer[1]", "at least one of install, remove, debs", 7),
        ("bad package", layer("kind = \"packages\"\ninstall = [\"openssh-server\", \"x\"]"), "layer[1].install[2]", "invalid Debian package name \"x\"", 9),
        ("version in remove", layer("kind = \"packages\"\nremove = [\"nano=1.0\"]"), "layer[1].remove[1]", "a version is not allowed here", 9),
        ("deb not .deb", layer("kind = \"packages\"\ndebs = [\"debs/x.tar\"]"), "layer[1].debs[1]", "is not a .deb file", 9),
        ("deb escaping", layer("kind = \"packages\"\ndebs = [\"../x.deb\"]"), "layer[1].debs[1]", "escapes the recipe's folder", 9),
        ("deb absolute", layer("kind = \"packages\"\ndebs = [\"/tmp/x.deb\"]"), "layer[1].debs[1]", "absolute path", 9),
        ("bad tty", layer("kind = \"serial-console\"\ntty = \"ttyS\""), "layer[1].tty", "invalid serial tty \"ttyS\"", 9),
        ("bad baud", layer("kind = \"serial-console\"\nbaud = 1234"), "layer[1].baud", "unsupported baud rate 1234", 9),
        ("baud not digits", layer("kind = \"serial-console\"\nbaud = \"fast\""), "layer[1].baud", "expected a baud rate", 9),
        ("hostname both", layer("kind = \"hostname\"\nhostname = \"a\"\nfrom_dhcp = true"), "layer[1]", "not both", 7),
        ("hostname neither", layer("kind = \"hostname\""), "layer[1]", "needs `hostname` or `from_dhcp = true`", 7),
        ("hostname dhcp false", layer("kind = \"hostname\"\nfrom_dhcp = false"), "layer[1]", "needs `hostname`", 7),
        ("bad hostname", layer("kind = \"hostname\"\nhostname = \"node_01\""), "layer[1].hostname", "invalid hostname", 9),
        ("files no source", layer("kind = \"files\"\ndest = \"/etc\""), "layer[1].source", "missing required key \"source\"", 7),
        ("files no dest", layer("kind = \"files\"\nsource = \"f\""), "layer[1].dest", "missing required key \"dest\"", 7),
        ("source escape", layer("kind = \"files\"\nsource = \"../x\"\ndest = \"/etc\""), "layer[1].source", "escapes the recipe's folder", 9),
        ("source absolute", layer("kind = \"files\"\nsource = \"/etc\"\ndest = \"/etc\""), "layer[1].source", "absolute path \"/etc\" not allowed", 9),
        ("dest relative", layer("kind = \"files\"\nsource = \"f\"\ndest = \"etc\""), "layer[1].dest", "is not absolute", 10),
        ("dest dotdot", layer("kind = \"files\"\nsource = \"f\"\ndest = \"/etc/../x\""), "layer[1].dest", "contains `..`", 10),
        ("bad octal", layer("kind = \"files\"\nsource = \"f\"\ndest = \"/\"\nmode = \"0888\""), "layer[1].mode", "invalid mode \"0888\"", 11),
        ("integer mode", layer("kind = \"files\"\nsource = \"f\"\ndest = \"/\"\ndir_mode = 755"), "layer[1].dir_mode", "expected an octal string, found integer 755", 11),
        ("bad owner", layer("kind = \"files\"\nsource = \"f\"\ndest = \"/\"\nowner = \"Root\""), "layer[1].owner", "invalid owner \"Root\"", 11),
        ("script both", layer("kind = \"script\"\nrun = \"true\"\nscript = \"s.sh\""), "layer[1]", "either `run` or `script`, not both", 7),
        ("script neither", layer("kind = \"script\""), "layer[1]", "needs `run` or `script`", 7),
        ("script empty", layer("kind = \"script\"\nrun = \"  \""), "layer[1].run", "empty script", 9),
        ("bad env name", layer("kind = \"script\"\nrun = \"true\"\nenv = { cluster = \"x\" }"), "layer[1].env.cluster", "invalid environment variable name", 10),
        ("env not string", layer("kind = \"script\"\nrun = \"true\"\nenv = { X = 1 }"), "layer[1].env", "expected a string, found integer", 10),
        ("input escape", layer("kind = \"script\"\nrun = \"true\"\ninputs = [\"a/../../b\"]"), "layer[1].inputs[1]", "escapes", 10),
        ("bad use name", layer("use = \"../netboot\""), "layer[1].use", "invalid layer name", 8),
        ("bad layer name", layer("name = \"My Layer\"\nkind = \"hostname\"\nfrom_dhcp = true"), "layer[1].name", "invalid layer name", 8),
        (
            "duplicate names",
            format!("{HEAD}\n[[layer]]\nkind = \"hostname\"\nfrom_dhcp = true\n\n[[layer]]\nkind = \"hostname\"\nhostname = \"n\"\n"),
            "layer[2].name",
            "duplicate layer name \"hostname\" (also layer[1])",
            11,
        ),
    ]
}

#[test]
fn every_error_case() {
    // Report every failing row at once.
    let mut failures = Vec::new();
    for (what, text, key, fragment, line) in cases() {
        let errs = parse_err(&text);
        let hit = errs.0.iter().find(|d| d.message.contains(fragment));
        let Some(d) = hit else {
            failures.push(format!(
                "{what}: no diagnostic containing {fragment:?}; got:\n{errs}"
            ));
            continue;
        };
        let got = (
            d.key.as_deref().unwrap_or(""),
            d.line,
            d.column.is_some(),
            d.file.to_str(),
        );
        if got != (key, Some(line), true, Some("recipes/x.toml")) {
            failures.push(format!(
                "{what}: got {got:?}, want key {key:?} line {line}\n{errs}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn golden_unknown_kind() {
    let errs = parse_err(&layer("kind = \"pakages\""));
    assert_eq!(
        errs.to_string(),
        "recipes/x.toml:8:8: layer[1].kind: unknown layer kind \"pakages\"\n  \
         help: expected one of packages, serial-console, hostname, files, script (did you mean \"packages\"?)"
    );
}

#[test]
fn golden_unknown_key() {
    let errs = parse_err(&format!("{HEAD}sute = \"x\"\n"));
    assert_eq!(
        errs.to_string(),
        "recipes/x.toml:6:1: base.sute: unknown key \"sute\"\n  \
         help: allowed keys: suite, variant, architecture, components, mirror, snapshot, source_date_epoch, packages, tool (did you mean \"suite\"?)"
    );
}

#[test]
fn golden_syntax_and_mode() {
    let errs = parse_err("[image]\nname = \"t\n");
    assert_eq!(errs.0.len(), 1, "{errs}");
    assert!(
        errs.to_string()
            .starts_with("recipes/x.toml:2:10: TOML syntax error: "),
        "{errs}"
    );
    let errs = parse_err(&layer(
        "kind = \"files\"\nsource = \"f\"\ndest = \"/\"\nmode = 644",
    ));
    assert_eq!(
        errs.to_string(),
        "recipes/x.toml:11:8: layer[1].mode: expected an octal string, found integer 644\n  \
         help: TOML integers are decimal; write the mode as an octal string: mode = \"0644\""
    );
}

/// All problems come back in one pass, in reading order.
#[test]
fn collects_everything() {
    let text = "[image]\nname = \"Bad\"\ncolour = 1\n[base]\nvariant = \"x\"\nsource_date_epoch = \"y\"\ntool = 3\n\
         [[layer]]\nkind = \"pakages\"\n[[layer]]\nkind = \"files\"\nsource = \"../x\"\nmode = \"9\"\n";
    let errs = parse_err(text);
    let keys: Vec<_> = errs
        .0
        .iter()
        .map(|d| d.key.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        keys,
        [
            "image.name",
            "image.colour",
            "base.suite",
            "base.variant",
            "base.source_date_epoch",
            "base.tool",
            "layer[1].kind",
            "layer[2].dest",
            "layer[2].source",
            "layer[2].mode"
        ],
        "{errs}"
    );
    let lines: Vec<_> = errs.0.iter().map(|d| d.line.unwrap()).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
}
