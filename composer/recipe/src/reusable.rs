//! Reusable layers: `layers/<name>/layer.toml`, its parameters and the
//! `${param}` substitution into its steps. Pure: the loader reads the file.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::de::DeValue;
use toml::Spanned;

use crate::error::{Diagnostic, RecipeErrors, Source};
use crate::raw::{self, ParamToml};
use crate::step::{layer_table, validate_step, ParsedStep};
use crate::validate::Ctx;

/// A parsed `layer.toml`. Its steps are validated by [`LayerDef::instantiate`],
/// once parameter values are known.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerDef {
    pub name: String,
    /// The `layer.toml` as shown in diagnostics.
    pub path: PathBuf,
    pub description: Option<String>,
    pub params: BTreeMap<String, ParamDef>,
    text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParamDef {
    /// `None`: the parameter is required.
    pub default: Option<String>,
    pub description: Option<String>,
}

fn param_name_ok(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parse a reusable layer's `layer.toml` (`path` is only for diagnostics).
/// Checks its keys and parameters and that steps exist; the steps
/// themselves are checked by [`LayerDef::instantiate`].
pub fn parse_layer_def(name: &str, text: &str, path: &Path) -> Result<LayerDef, RecipeErrors> {
    let mut cx = Ctx::new(Source { path, text }, "layer's folder");
    let Some(root) = cx.parse_document() else {
        return Err(cx.into_errors());
    };
    let root = root.into_inner();
    cx.unknown_keys(&root, None, raw::LAYER_FILE_KEYS, "top-level keys");
    let description = match root.get("description").map(|v| (v.span(), v.get_ref())) {
        Some((_, DeValue::String(s))) => Some(s.to_string()),
        Some((span, other)) => {
            cx.error(
                Some(span),
                Some("description"),
                format!("expected a string, found {}", other.type_str()),
                None,
            );
            None
        }
        None => None,
    };
    let mut params = BTreeMap::new();
    match root.get("params").map(|v| (v.span(), v.get_ref())) {
        Some((_, DeValue::Table(t))) => {
            for (k, v) in t.iter() {
                let key = format!("params.{}", k.get_ref());
                if !param_name_ok(k.get_ref()) {
                    let help = "letters, digits and '_', not starting with a digit".to_owned();
                    cx.error(
                        Some(k.span()),
                        Some(&key),
                        format!("invalid parameter name {:?}", k.get_ref()),
                        Some(help),
                    );
                    continue;
                }
                if let Some(p) = cx.section::<ParamToml>(v, &key) {
                    let p = p.into_inner();
                    params.insert(
                        k.get_ref().to_string(),
                        ParamDef {
                            default: p.default.map(|d| d.get_ref().to_text()),
                            description: p.description.map(Spanned::into_inner),
                        },
                    );
                }
            }
        }
        Some((span, other)) => {
            cx.error(
                Some(span),
                Some("params"),
                format!("expected a table, found {}", other.type_str()),
                Some("[params.<name>] tables".to_owned()),
            );
        }
        None => {}
    }
    match root.get("step").map(|v| (v.span(), v.get_ref())) {
        Some((_, DeValue::Array(a))) if !a.is_empty() => {}
        Some((span, _)) => cx.error(
            Some(span),
            Some("step"),
            "expected one or more [[step]] tables",
            None,
        ),
        None => cx.error(
            Some(0..0),
            None,
            "a reusable layer needs at least one [[step]]",
            Some("[[step]] tables take the keys of a recipe [[layer]] with `kind`".to_owned()),
        ),
    }
    if !cx.diags.is_empty() {
        return Err(cx.into_errors());
    }
    Ok(LayerDef {
        name: name.to_owned(),
        path: path.to_owned(),
        description,
        params,
        text: text.to_owned(),
    })
}

impl LayerDef {
    /// The steps with `params` (complete: defaults already merged)
    /// substituted, validated. Paths stay relative to the layer's folder.
    pub fn instantiate(
        &self,
        params: &BTreeMap<String, String>,
    ) -> Result<Vec<ParsedStep>, RecipeErrors> {
        let mut cx = Ctx::new(
            Source {
                path: &self.path,
                text: &self.text,
            },
            "layer's folder",
        );
        let Some(root) = cx.parse_document() else {
            return Err(cx.into_errors());
        };
        let mut root = root.into_inner();
        let mut steps = Vec::new();
        if let Some(DeValue::Array(items)) = root.get_mut("step").map(Spanned::get_mut) {
            for (i, item) in items.iter_mut().enumerate() {
                let key = format!("step[{}]", i + 1);
                let before = cx.diags.len();
                substitute_value(&mut cx, item, &key, params);
                if cx.diags.len() != before {
                    continue;
                }
                if let Some(t) = layer_table(&mut cx, item, &key, true) {
                    let span = t.span();
                    if t.get_ref().kind.is_none() {
                        let help = format!("kind is one of {}", raw::kind_names().join(", "));
                        cx.error(
                            Some(span),
                            Some(&key),
                            "a [[step]] needs `kind`",
                            Some(help),
                        );
                    } else if let Some(s) = validate_step(&mut cx, t.into_inner(), span, &key) {
                        steps.push(s);
                    }
                }
            }
        }
        if cx.diags.is_empty() {
            Ok(steps)
        } else {
            Err(cx.into_errors())
        }
    }
}

/// Replace `${name}` in every string inside `v`.
fn substitute_value(
    cx: &mut Ctx<'_>,
    v: &mut Spanned<DeValue<'_>>,
    key: &str,
    params: &BTreeMap<String, String>,
) {
    let span = v.span();
    match v.get_mut() {
        DeValue::String(s) => match substitute(s, params) {
            Ok(Some(new)) => *s = Cow::Owned(new),
            Ok(None) => {}
            Err((msg, help)) => cx.error(Some(span), Some(key), msg, Some(help)),
        },
        DeValue::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_value(cx, item, &format!("{key}[{}]", i + 1), params);
            }
        }
        DeValue::Table(t) => {
            for (k, item) in t.iter_mut() {
                substitute_value(cx, item, &format!("{key}.{}", k.get_ref()), params);
            }
        }
        DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) | DeValue::Datetime(_) => {}
    }
}

/// `${name}` → its value; `$${` → a literal `${`; any other `$` is kept.
/// `Ok(None)` when nothing changed (the common case).
pub fn substitute(
    s: &str,
    params: &BTreeMap<String, String>,
) -> Result<Option<String>, (String, String)> {
    if !s.contains("${") {
        return Ok(None);
    }
    let declared = || {
        let names: Vec<&str> = params.keys().map(String::as_str).collect();
        if names.is_empty() {
            "(none)".to_owned()
        } else {
            names.join(", ")
        }
    };
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                return Err((
                    "unterminated `${`".to_owned(),
                    "write `${name}` for a parameter, `$${` for a literal `${`".to_owned(),
                ));
            };
            let name = &after[..end];
            match params.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    let help = format!("declared parameters: {}; write `$${{` for a literal `${{` (e.g. shell variables)", declared());
                    return Err((format!("unknown parameter `${{{name}}}`"), help));
                }
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(Some(out))
}

/// Match a use site's `with` against the declared parameters. Returns the
/// complete parameter set, or diagnostics positioned in the recipe.
pub(crate) fn bind_params(
    def: &LayerDef,
    with: &[crate::step::WithArg],
    recipe: &Path,
    layer_key: &str,
    at: (Option<usize>, Option<usize>),
) -> Result<BTreeMap<String, String>, Vec<Diagnostic>> {
    let declared: Vec<&str> = def.params.keys().map(String::as_str).collect();
    let mut diags = Vec::new();
    let mut out = BTreeMap::new();
    for w in with {
        if def.params.contains_key(&w.name) {
            out.insert(w.name.clone(), w.value.clone());
        } else {
            let help = if declared.is_empty() {
                format!("layer {:?} takes no parameters", def.name)
            } else {
                format!(
                    "declared parameters: {}",
                    crate::error::one_of_help(&w.name, &declared)
                        .trim_start_matches("expected one of ")
                )
            };
            diags.push(
                Diagnostic::new(
                    recipe,
                    format!("unknown parameter {:?} for layer {:?}", w.name, def.name),
                )
                .with_key(format!("{layer_key}.with.{}", w.name))
                .with_position(w.line, w.column)
                .with_help(help),
            );
        }
    }
    for (name, p) in &def.params {
        if out.contains_key(name) {
            continue;
        }
        match &p.default {
            Some(d) => {
                out.insert(name.clone(), d.clone());
            }
            None => {
                let mut d = Diagnostic::new(
                    recipe,
                    format!(
                        "missing required parameter {name:?} for layer {:?}",
                        def.name
                    ),
                )
                .with_key(format!("{layer_key}.with"))
                .with_help(format!("add with = {{ {name} = \"...\" }}"));
                d.line = at.0;
                d.column = at.1;
                diags.push(d);
            }
        }
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags)
    }
}
