//! Validation of recipe `[[layer]]` tables and reusable `[[step]]` tables.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;

use toml::de::DeValue;
use toml::Spanned;

use crate::checks;
use crate::error::one_of_help;
use crate::model::{HostnameSpec, InputPath, ScriptOrigin, Step};
use crate::raw::{self, kind_keys, kind_names, LayerToml, Scalar};
use crate::validate::Ctx;

/// A recipe `[[layer]]` after the pure stage.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedLayer {
    /// Explicit `name`, else the kind, else the used layer's name.
    pub name: String,
    /// Key path for diagnostics, e.g. `layer[3]` (1-based).
    pub key: String,
    /// Position of the layer's table (for "used from" notes).
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub body: ParsedLayerBody,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ParsedLayerBody {
    /// `kind = ...`: one step.
    Steps(Vec<ParsedStep>),
    /// `use = "<layer>"`, resolved by the loader.
    Use { layer: String, with: Vec<WithArg> },
}

/// One `with` entry, its value turned into text.
#[derive(Debug, Clone, PartialEq)]
pub struct WithArg {
    pub name: String,
    pub value: String,
    pub line: usize,
    pub column: usize,
}

/// A step whose [`InputPath`]s are not resolved yet; `paths` lists them in
/// [`Step::input_paths`] order, with where they were written.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedStep {
    pub step: Step,
    pub paths: Vec<PathSite>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PathSite {
    pub rel: String,
    pub key: String,
    pub line: usize,
    pub column: usize,
    pub kind: PathKind,
}

/// What a path must be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// A regular file ending in `.deb`.
    Deb,
    /// `files.source`: a file or a folder.
    Source,
    /// `script.script`: a regular file (UTF-8 text).
    ScriptFile,
    /// `script.inputs`: a file or a folder.
    Input,
}

const LAYER_ONLY_KEYS: [&str; 3] = ["name", "use", "with"];

/// Which keys a `[[layer]]` (or `[[step]]`, when `in_layer_file`) may have,
/// given what it says it is. When that is unclear every key is accepted, so
/// one mistake does not cascade into many.
fn allowed_keys(table: &toml::de::DeTable, in_layer_file: bool) -> Vec<&'static str> {
    let kind = table.get("kind").and_then(|v| v.get_ref().as_str());
    let has_use = table.contains_key("use");
    let all = raw::struct_fields::<LayerToml>();
    let mut keys: Vec<&'static str> = match (kind.and_then(kind_keys), has_use) {
        (Some(k), false) => ["name", "kind"].iter().chain(k).copied().collect(),
        (None, true) if kind.is_none() => LAYER_ONLY_KEYS.to_vec(),
        _ => all.to_vec(),
    };
    if in_layer_file {
        keys.retain(|k| !LAYER_ONLY_KEYS.contains(k));
    }
    keys
}

/// Key pre-check plus deserialization of a layer/step table.
pub(crate) fn layer_table(
    cx: &mut Ctx<'_>,
    item: &Spanned<DeValue<'_>>,
    prefix: &str,
    in_layer_file: bool,
) -> Option<Spanned<LayerToml>> {
    let DeValue::Table(table) = item.get_ref() else {
        let msg = format!("expected a table, found {}", item.get_ref().type_str());
        cx.error(Some(item.span()), Some(prefix), msg, None);
        return None;
    };
    let allowed = allowed_keys(table, in_layer_file);
    let all = raw::struct_fields::<LayerToml>();
    let what = match table.get("kind").and_then(|v| v.get_ref().as_str()) {
        Some(k) if kind_keys(k).is_some() => format!("kind {k:?}"),
        _ if !in_layer_file && table.contains_key("use") => "a `use` layer".to_owned(),
        _ => "a [[step]] (no nesting: name, use and with belong to the recipe)".to_owned(),
    };
    for (k, _) in table.iter() {
        let k_str: &str = k.get_ref();
        if allowed.contains(&k_str) {
            continue;
        }
        let message = if all.contains(&k_str) {
            format!("key {k_str:?} does not apply to {what}")
        } else {
            format!("unknown key {k_str:?}")
        };
        let help = format!(
            "allowed keys: {}",
            one_of_help(k_str, &allowed).trim_start_matches("expected one of ")
        );
        cx.error(
            Some(k.span()),
            Some(&format!("{prefix}.{k_str}")),
            message,
            Some(help),
        );
    }
    cx.deserialize(table, item.span(), prefix, &allowed)
}

/// A recipe `[[layer]]` (`index` is 1-based).
pub(crate) fn validate_layer(
    cx: &mut Ctx<'_>,
    item: &Spanned<DeValue<'_>>,
    index: usize,
) -> Option<ParsedLayer> {
    let key = format!("layer[{index}]");
    let t = layer_table(cx, item, &key, false)?;
    let span = t.span();
    let (line, column) = cx.src.position(span.start);
    let t = t.into_inner();
    let name = match &t.name {
        Some(n) => cx
            .check(n, &format!("{key}.name"), |s| checks::name("layer name", s))
            .map(|()| n.get_ref().clone()),
        None => None,
    };
    let body = match (&t.kind, &t.use_) {
        (Some(_), Some(_)) => {
            let help = "`kind` writes a layer here, `use` takes one from layers/<name>/layer.toml: keep one";
            cx.error(
                Some(span),
                Some(&key),
                "a [[layer]] has both `kind` and `use`",
                Some(help.to_owned()),
            );
            return None;
        }
        (None, None) => {
            let help = format!(
                "add kind = one of {}, or use = \"<reusable layer>\"",
                kind_names().join(", ")
            );
            cx.error(
                Some(span),
                Some(&key),
                "a [[layer]] needs `kind` or `use`",
                Some(help),
            );
            return None;
        }
        (None, Some(used)) => {
            let used_ok = cx.check(used, &format!("{key}.use"), |s| {
                checks::name("layer name", s)
            });
            let with = t
                .with
                .map(Spanned::into_inner)
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| {
                    let (line, column) = cx.src.position(k.span().start);
                    WithArg {
                        name: k.into_inner(),
                        value: v.get_ref().to_text(),
                        line,
                        column,
                    }
                })
                .collect();
            used_ok?;
            ParsedLayerBody::Use {
                layer: used.get_ref().clone(),
                with,
            }
        }
        (Some(_), None) => ParsedLayerBody::Steps(vec![validate_step(cx, t, span, &key)?]),
    };
    let default_name = match &body {
        ParsedLayerBody::Steps(steps) => steps[0].step.kind().to_owned(),
        ParsedLayerBody::Use { layer, .. } => layer.clone(),
    };
    Some(ParsedLayer {
        name: name.unwrap_or(default_name),
        key,
        line: Some(line),
        column: Some(column),
        body,
    })
}

fn rel_site(
    cx: &mut Ctx<'_>,
    s: &Spanned<String>,
    key: &str,
    kind: PathKind,
    sites: &mut Vec<PathSite>,
) -> Option<InputPath> {
    let base = cx.base;
    cx.check(s, key, |p| checks::rel_path(p, base))?;
    if kind == PathKind::Deb && !s.get_ref().ends_with(".deb") {
        cx.error(
            Some(s.span()),
            Some(key),
            format!("{:?} is not a .deb file", s.get_ref()),
            Some("debs lists local Debian packages (*.deb)".to_owned()),
        );
        return None;
    }
    let (line, column) = cx.src.position(s.span().start);
    sites.push(PathSite {
        rel: s.get_ref().clone(),
        key: key.to_owned(),
        line,
        column,
        kind,
    });
    Some(InputPath {
        rel: s.get_ref().clone(),
        abs: PathBuf::from(s.get_ref()),
    })
}

fn rel_list(
    cx: &mut Ctx<'_>,
    l: Option<Spanned<Vec<Spanned<String>>>>,
    key: &str,
    kind: PathKind,
    sites: &mut Vec<PathSite>,
) -> Vec<InputPath> {
    let items = l.map(Spanned::into_inner).unwrap_or_default();
    items
        .iter()
        .enumerate()
        .filter_map(|(i, s)| rel_site(cx, s, &format!("{key}[{}]", i + 1), kind, sites))
        .collect()
}

/// A user/group: names are checked, integers become numeric ids.
fn owner(cx: &mut Ctx<'_>, v: Option<Spanned<Scalar>>, key: &str) -> String {
    let Some(v) = v else { return "root".to_owned() };
    let text = match v.get_ref() {
        Scalar::Int(i) if *i >= 0 && u32::try_from(*i).is_ok() => return i.to_string(),
        Scalar::Str(s) => s.clone(),
        other => other.to_text(),
    };
    let leaf = key.rsplit('.').next().unwrap_or(key);
    match checks::owner(leaf, &text) {
        Ok(()) => text,
        Err((m, h)) => {
            cx.error(Some(v.span()), Some(key), m, h);
            "root".to_owned()
        }
    }
}

fn mode(cx: &mut Ctx<'_>, v: Option<Spanned<Scalar>>, key: &str) -> Option<u32> {
    let v = v?;
    match v.get_ref() {
        Scalar::Str(s) => match checks::octal_mode(s) {
            Ok(m) => Some(m),
            Err((m, h)) => {
                cx.error(Some(v.span()), Some(key), m, h);
                None
            }
        },
        Scalar::Int(i) => {
            let leaf = key.rsplit('.').next().unwrap_or(key);
            let help = format!(
                "TOML integers are decimal; write the mode as an octal string: {leaf} = \"{i:04}\""
            );
            cx.error(
                Some(v.span()),
                Some(key),
                format!("expected an octal string, found integer {i}"),
                Some(help),
            );
            None
        }
        Scalar::Bool(b) => {
            cx.error(
                Some(v.span()),
                Some(key),
                format!("expected an octal string, found boolean {b}"),
                None,
            );
            None
        }
    }
}

/// Builds the step of a `[[layer]]`/`[[step]]` that has a `kind`.
pub(crate) fn validate_step(
    cx: &mut Ctx<'_>,
    t: LayerToml,
    span: Range<usize>,
    key: &str,
) -> Option<ParsedStep> {
    let kind = t.kind.as_ref()?;
    let k = |leaf: &str| format!("{key}.{leaf}");
    let mut sites = Vec::new();
    let step = match kind.get_ref().as_str() {
        "packages" => {
            let empty = [&t.install, &t.remove, &t.debs]
                .iter()
                .all(|l| l.as_ref().is_none_or(|l| l.get_ref().is_empty()));
            let install = cx.list(t.install, &k("install"), |s| checks::package(s, true));
            let remove = cx.list(t.remove, &k("remove"), |s| checks::package(s, false));
            let debs = rel_list(cx, t.debs, &k("debs"), PathKind::Deb, &mut sites);
            if empty {
                cx.error(
                    Some(span),
                    Some(key),
                    "a packages layer needs at least one of install, remove, debs",
                    None,
                );
                return None;
            }
            Step::Packages {
                install,
                remove,
                debs,
            }
        }
        "serial-console" => {
            let tty = match t.tty {
                Some(s) => cx
                    .check(&s, &k("tty"), checks::tty)
                    .map(|()| s.into_inner())?,
                None => "ttyS0".to_owned(),
            };
            let baud = match t.baud {
                None => 115_200,
                Some(b) => {
                    let n = match b.get_ref() {
                        Scalar::Int(n) => Some(*n),
                        Scalar::Str(s)
                            if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) =>
                        {
                            s.parse().ok()
                        }
                        _ => None,
                    };
                    let r = match n {
                        Some(n) => checks::baud(n),
                        None => Err((
                            format!("expected a baud rate, found {:?}", b.get_ref().to_text()),
                            None,
                        )),
                    };
                    match r {
                        Ok(b) => b,
                        Err((m, h)) => {
                            cx.error(Some(b.span()), Some(&k("baud")), m, h);
                            return None;
                        }
                    }
                }
            };
            Step::SerialConsole { tty, baud }
        }
        "hostname" => {
            let dhcp = t.from_dhcp.as_ref().is_some_and(|b| *b.get_ref());
            match (t.hostname, dhcp) {
                (Some(_), true) => {
                    let help =
                        "a fixed hostname, or from_dhcp = true for images shared by many nodes";
                    cx.error(
                        Some(span),
                        Some(key),
                        "give either `hostname` or `from_dhcp = true`, not both",
                        Some(help.to_owned()),
                    );
                    return None;
                }
                (None, false) => {
                    let help = "hostname = \"node01\", or from_dhcp = true for images shared by many nodes";
                    cx.error(
                        Some(span),
                        Some(key),
                        "a hostname layer needs `hostname` or `from_dhcp = true`",
                        Some(help.to_owned()),
                    );
                    return None;
                }
                (Some(h), false) => Step::Hostname(HostnameSpec::Fixed(
                    cx.check(&h, &k("hostname"), checks::hostname)
                        .map(|()| h.into_inner())?,
                )),
                (None, true) => Step::Hostname(HostnameSpec::FromDhcp),
            }
        }
        "files" => {
            let source = match &t.source {
                Some(s) => rel_site(cx, s, &k("source"), PathKind::Source, &mut sites),
                None => {
                    cx.error(
                        Some(span.clone()),
                        Some(&k("source")),
                        "missing required key \"source\"",
                        None,
                    );
                    None
                }
            };
            let dest = match &t.dest {
                Some(d) => cx.check(d, &k("dest"), checks::dest_path),
                None => {
                    cx.error(
                        Some(span),
                        Some(&k("dest")),
                        "missing required key \"dest\"",
                        None,
                    );
                    None
                }
            };
            let owner_ = owner(cx, t.owner, &k("owner"));
            let group = owner(cx, t.group, &k("group"));
            let had_mode = (t.mode.is_some(), t.dir_mode.is_some());
            let mode_ = mode(cx, t.mode, &k("mode"));
            let dir_mode = mode(cx, t.dir_mode, &k("dir_mode"));
            if had_mode != (mode_.is_some(), dir_mode.is_some()) {
                return None;
            }
            Step::Files {
                source: source?,
                dest: dest?,
                owner: owner_,
                group,
                mode: mode_,
                dir_mode,
            }
        }
        "script" => {
            let origin = match (&t.run, &t.script) {
                (Some(_), Some(_)) => {
                    cx.error(
                        Some(span),
                        Some(key),
                        "give either `run` or `script`, not both",
                        Some(
                            "`run` is inline shell text, `script` a file beside the recipe"
                                .to_owned(),
                        ),
                    );
                    return None;
                }
                (None, None) => {
                    cx.error(
                        Some(span),
                        Some(key),
                        "a script layer needs `run` or `script`",
                        Some(
                            "run = \"\"\"...\"\"\" (inline shell) or script = \"scripts/x.sh\""
                                .to_owned(),
                        ),
                    );
                    return None;
                }
                (Some(run), None) if run.get_ref().trim().is_empty() => {
                    cx.error(Some(run.span()), Some(&k("run")), "empty script", None);
                    return None;
                }
                (Some(_), None) => ScriptOrigin::Inline,
                (None, Some(s)) => ScriptOrigin::File(rel_site(
                    cx,
                    s,
                    &k("script"),
                    PathKind::ScriptFile,
                    &mut sites,
                )?),
            };
            let inputs = rel_list(cx, t.inputs, &k("inputs"), PathKind::Input, &mut sites);
            let mut env = BTreeMap::new();
            for (name, value) in t.env.map(Spanned::into_inner).unwrap_or_default() {
                if cx
                    .check(
                        &name,
                        &format!("{key}.env.{}", name.get_ref()),
                        checks::env_name,
                    )
                    .is_some()
                {
                    env.insert(name.into_inner(), value.into_inner());
                }
            }
            // The loader fills in a script file's text.
            let text = t.run.map(Spanned::into_inner).unwrap_or_default();
            Step::Script {
                text,
                origin,
                inputs,
                env,
            }
        }
        other => {
            cx.error(
                Some(kind.span()),
                Some(&k("kind")),
                format!("unknown layer kind {other:?}"),
                Some(one_of_help(other, &kind_names())),
            );
            return None;
        }
    };
    Some(ParsedStep { step, paths: sites })
}
