//! The I/O half: read the recipe, resolve `use` layers, check and resolve
//! every referenced file.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{one_of_help, Diagnostic, RecipeErrors};
use crate::model::{LayerOrigin, LayerSpec, Recipe, ScriptOrigin, Step};
use crate::reusable::{bind_params, parse_layer_def};
use crate::step::{ParsedLayerBody, ParsedStep, PathKind, PathSite};
use crate::validate::{parse_recipe, ParsedRecipe};

/// Where `load_recipe` looks for reusable layers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Folders holding `<name>/layer.toml`, searched in order. Empty means
    /// [`LoadOptions::default_layer_dirs`] of the recipe's folder; a caller
    /// adding its own folders can prepend them to that list.
    pub layer_dirs: Vec<PathBuf>,
}

impl LoadOptions {
    /// `<recipe dir>/layers`, `<recipe dir>/../layers`, `/usr/share/compose/layers`.
    pub fn default_layer_dirs(recipe_dir: &Path) -> Vec<PathBuf> {
        vec![
            recipe_dir.join("layers"),
            recipe_dir.join("..").join("layers"),
            PathBuf::from("/usr/share/compose/layers"),
        ]
    }
}

/// Read, parse and validate a recipe, resolve its `use` layers and check
/// every file it references.
pub fn load_recipe(path: &Path, opts: &LoadOptions) -> Result<Recipe, RecipeErrors> {
    let text = fs::read_to_string(path)
        .map_err(|e| Diagnostic::new(path, format!("cannot read recipe: {e}")))?;
    resolve_recipe(parse_recipe(&text, path)?, opts)
}

/// The I/O half of [`load_recipe`], for callers that parsed the text
/// themselves. Relative paths are resolved against the folder of
/// `parsed.path`.
pub fn resolve_recipe(parsed: ParsedRecipe, opts: &LoadOptions) -> Result<Recipe, RecipeErrors> {
    let rpath = parsed.path.clone();
    let shown_dir = match rpath.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let dir = fs::canonicalize(&shown_dir).map_err(|e| {
        Diagnostic::new(
            &rpath,
            format!(
                "cannot resolve the recipe's folder {}: {e}",
                shown_dir.display()
            ),
        )
    })?;
    let layer_dirs = if opts.layer_dirs.is_empty() {
        LoadOptions::default_layer_dirs(&shown_dir)
    } else {
        opts.layer_dirs.clone()
    };

    let mut diags = Vec::new();
    let mut layers = Vec::new();
    for layer in parsed.layers {
        match layer.body {
            ParsedLayerBody::Steps(steps) => {
                let steps = resolve_steps(steps, &dir, &rpath, None, "recipe's folder", &mut diags);
                layers.push(LayerSpec {
                    name: layer.name,
                    origin: LayerOrigin::Recipe,
                    steps,
                });
            }
            ParsedLayerBody::Use { layer: used, with } => {
                let at = (layer.line, layer.column);
                let mut here = Diagnostic::new(&rpath, "").with_key(format!("{}.use", layer.key));
                here.line = at.0;
                here.column = at.1;
                let Some(file) = layer_dirs
                    .iter()
                    .map(|d| d.join(&used).join("layer.toml"))
                    .find(|f| f.is_file())
                else {
                    let available = available_layers(&layer_dirs);
                    let names: Vec<&str> = available.iter().map(String::as_str).collect();
                    let searched: Vec<String> =
                        layer_dirs.iter().map(|d| d.display().to_string()).collect();
                    let help = if names.is_empty() {
                        format!(
                            "no reusable layers found (searched {})",
                            searched.join(", ")
                        )
                    } else {
                        format!(
                            "available layers: {} (searched {})",
                            one_of_help(&used, &names).trim_start_matches("expected one of "),
                            searched.join(", ")
                        )
                    };
                    here.message = format!("unknown reusable layer {used:?}");
                    diags.push(here.with_help(help));
                    continue;
                };
                let note = match at {
                    (Some(l), Some(c)) => {
                        format!("used from {}:{l}:{c} ({})", rpath.display(), layer.key)
                    }
                    _ => format!("used from {} ({})", rpath.display(), layer.key),
                };
                let with_note = |mut e: RecipeErrors| {
                    for d in &mut e.0 {
                        d.note.get_or_insert_with(|| note.clone());
                    }
                    e.0
                };
                let text = match fs::read_to_string(&file) {
                    Ok(t) => t,
                    Err(e) => {
                        diags.extend(with_note(
                            Diagnostic::new(&file, format!("cannot read layer: {e}")).into(),
                        ));
                        continue;
                    }
                };
                let def = match parse_layer_def(&used, &text, &file) {
                    Ok(d) => d,
                    Err(e) => {
                        diags.extend(with_note(e));
                        continue;
                    }
                };
                let params = match bind_params(&def, &with, &rpath, &layer.key, at) {
                    Ok(p) => p,
                    Err(d) => {
                        diags.extend(d);
                        continue;
                    }
                };
                let steps = match def.instantiate(&params) {
                    Ok(s) => s,
                    Err(e) => {
                        diags.extend(with_note(e));
                        continue;
                    }
                };
                let layer_dir = file
                    .parent()
                    .map(fs::canonicalize)
                    .and_then(Result::ok)
                    .unwrap_or_default();
                let before = diags.len();
                let steps = resolve_steps(
                    steps,
                    &layer_dir,
                    &file,
                    Some(&note),
                    "layer's folder",
                    &mut diags,
                );
                if diags.len() == before {
                    let origin = LayerOrigin::Reusable {
                        name: used,
                        dir: layer_dir,
                        params,
                    };
                    layers.push(LayerSpec {
                        name: layer.name,
                        origin,
                        steps,
                    });
                }
            }
        }
    }
    if !diags.is_empty() {
        return Err(RecipeErrors(diags));
    }
    Ok(Recipe {
        path: rpath,
        dir,
        image: parsed.image,
        base: parsed.base,
        layers,
    })
}

/// Names of every `<dir>/<name>/layer.toml`, for "did you mean".
fn available_layers(dirs: &[PathBuf]) -> Vec<String> {
    let mut names = BTreeSet::new();
    for d in dirs {
        let Ok(entries) = fs::read_dir(d) else {
            continue;
        };
        for e in entries.flatten() {
            if e.path().join("layer.toml").is_file() {
                names.insert(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    names.into_iter().collect()
}

fn resolve_steps(
    steps: Vec<ParsedStep>,
    base: &Path,
    file: &Path,
    note: Option<&str>,
    base_name: &str,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Step> {
    let mut out = Vec::new();
    for ParsedStep { mut step, paths } in steps {
        let mut texts = Vec::new();
        for (slot, site) in step.input_paths_mut().into_iter().zip(&paths) {
            match check_path(base, site, base_name) {
                Ok((abs, text)) => {
                    slot.abs = abs;
                    texts.extend(text);
                }
                Err((message, help)) => {
                    let mut d = Diagnostic::new(file, message)
                        .with_key(&site.key)
                        .with_position(site.line, site.column);
                    d.help = help;
                    d.note = note.map(str::to_owned);
                    diags.push(d);
                }
            }
        }
        if let (
            Step::Script {
                text,
                origin: ScriptOrigin::File(_),
                ..
            },
            Some(content),
        ) = (&mut step, texts.pop())
        {
            *text = content;
        }
        out.push(step);
    }
    out
}

type PathCheck = Result<(PathBuf, Option<String>), (String, Option<String>)>;

/// Resolve `site` under `base` (absolute, canonical), following symlinks
/// of the path itself, and check it stays inside `base` and is the right
/// kind of file. Returns the resolved path and, for a script file, its text.
fn check_path(base: &Path, site: &PathSite, base_name: &str) -> PathCheck {
    let rel = &site.rel;
    let joined = base.join(rel);
    let real = match fs::canonicalize(&joined) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let dangling = fs::symlink_metadata(&joined).is_ok();
            let msg = if dangling {
                format!("{rel:?} is a dangling symlink")
            } else {
                format!("{rel:?} does not exist")
            };
            return Err((
                msg,
                Some(format!(
                    "paths are relative to the {base_name} ({})",
                    base.display()
                )),
            ));
        }
        Err(e) => return Err((format!("cannot access {rel:?}: {e}"), None)),
    };
    if !real.starts_with(base) || real == base {
        return Err((
            format!("{rel:?} resolves to {} which is outside the {base_name}", real.display()),
            Some("inputs (and symlinks to them) must stay inside the folder; copy the files there instead".to_owned()),
        ));
    }
    let meta = fs::metadata(&real).map_err(|e| (format!("cannot access {rel:?}: {e}"), None))?;
    let is_file = meta.is_file();
    match site.kind {
        PathKind::Deb if !is_file => Err((format!("{rel:?} is not a regular file"), None)),
        PathKind::ScriptFile if !is_file => Err((format!("{rel:?} is not a regular file"), None)),
        PathKind::ScriptFile => match fs::read(&real) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => Ok((real, Some(text))),
                Err(_) => Err((format!("script {rel:?} is not UTF-8 text"), None)),
            },
            Err(e) => Err((format!("cannot read script {rel:?}: {e}"), None)),
        },
        PathKind::Source | PathKind::Input if !is_file && !meta.is_dir() => Err((
            format!("{rel:?} is neither a regular file nor a folder"),
            None,
        )),
        _ => Ok((real, None)),
    }
}
