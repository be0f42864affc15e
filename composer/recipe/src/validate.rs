//! Pure parsing and validation of a recipe's text (no I/O): TOML syntax,
//! keys, types and values. Files, symlinks and `use` layers are the
//! loader's business (`load.rs`).

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use crate::checks::{self, Check};
use crate::error::{one_of_help, Diagnostic, RecipeErrors, Source};
use crate::model::{BaseSpec, BaseTool, ImageSpec, Variant, DEFAULT_SOURCE_DATE_EPOCH};
use crate::raw::{self, BaseToml, ImageToml};
use crate::step::{validate_layer, ParsedLayer};

/// A recipe after the pure stage: everything but the filesystem checked.
/// `use` layers are not resolved and [`crate::InputPath::abs`] holds the
/// path relative to the recipe's folder until [`crate::load_recipe`] (or
/// [`crate::resolve_recipe`]) resolves it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedRecipe {
    pub path: PathBuf,
    pub image: ImageSpec,
    pub base: BaseSpec,
    pub layers: Vec<ParsedLayer>,
}

/// Parse and validate a recipe's text. `origin` is the path shown in
/// diagnostics (and kept as [`ParsedRecipe::path`]); it is never read.
pub fn parse_recipe(text: &str, origin: &Path) -> Result<ParsedRecipe, RecipeErrors> {
    let mut cx = Ctx::new(Source { path: origin, text }, "recipe's folder");
    let Some(root) = cx.parse_document() else {
        return Err(cx.into_errors());
    };
    let root = root.into_inner();
    cx.unknown_keys(&root, None, raw::RECIPE_KEYS, "top-level keys");

    let image = match root.get("image") {
        Some(v) => cx
            .section::<ImageToml>(v, "image")
            .map(|t| image_spec(&mut cx, t)),
        None => {
            cx.error(
                Some(0..0),
                None,
                "missing [image] table",
                Some("add [image] with name = \"...\"".to_owned()),
            );
            None
        }
    };
    let base = match root.get("base") {
        Some(v) => cx
            .section::<BaseToml>(v, "base")
            .and_then(|t| base_spec(&mut cx, t, v.span())),
        None => {
            cx.error(
                Some(0..0),
                None,
                "missing [base] table",
                Some("add [base] with suite = \"bookworm\"".to_owned()),
            );
            None
        }
    };
    let mut layers = Vec::new();
    if let Some(v) = root.get("layer") {
        match v.get_ref() {
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(l) = validate_layer(&mut cx, item, i + 1) {
                        layers.push(l);
                    }
                }
            }
            other => cx.error(
                Some(v.span()),
                Some("layer"),
                format!(
                    "expected an array of tables ([[layer]]), found {}",
                    other.type_str()
                ),
                None,
            ),
        }
    }
    check_unique_names(&mut cx, &layers);
    match (image, base) {
        (Some(image), Some(base)) if cx.diags.is_empty() => Ok(ParsedRecipe {
            path: origin.to_owned(),
            image,
            base,
            layers,
        }),
        _ => Err(cx.into_errors()),
    }
}

fn check_unique_names(cx: &mut Ctx, layers: &[ParsedLayer]) {
    for (i, l) in layers.iter().enumerate() {
        if let Some(first) = layers[..i].iter().find(|o| o.name == l.name) {
            let mut d = Diagnostic::new(
                cx.src.path,
                format!("duplicate layer name {:?} (also {})", l.name, first.key),
            )
            .with_key(format!("{}.name", l.key))
            .with_help("layer names must be unique; give one of them a distinct name = \"...\"");
            if let (Some(line), Some(col)) = (l.line, l.column) {
                d = d.with_position(line, col);
            }
            cx.diags.push(d);
        }
    }
}

fn image_spec(cx: &mut Ctx, t: Spanned<ImageToml>) -> ImageSpec {
    let span = t.span();
    let t = t.into_inner();
    let name = cx
        .required(t.name, span, "image.name", |s| {
            checks::name("image name", s)
        })
        .unwrap_or_default();
    ImageSpec {
        name,
        description: t.description.map(Spanned::into_inner),
    }
}

fn base_spec(cx: &mut Ctx, t: Spanned<BaseToml>, table: Range<usize>) -> Option<BaseSpec> {
    let t = t.into_inner();
    let suite = cx.required(t.suite, table, "base.suite", checks::suite);
    let variant = cx
        .choice(t.variant, "base.variant", &Variant::ALL, Variant::as_str)
        .unwrap_or(Variant::Minbase);
    let tool = cx
        .choice(t.tool, "base.tool", &BaseTool::ALL, BaseTool::as_str)
        .unwrap_or(BaseTool::Auto);
    let architecture = cx.optional(t.architecture, "base.architecture", checks::architecture);
    let components = match t.components {
        Some(list) if list.get_ref().is_empty() => {
            cx.error(
                Some(list.span()),
                Some("base.components"),
                "empty list",
                Some("leave it out for [\"main\"]".to_owned()),
            );
            Vec::new()
        }
        Some(list) => cx.list(Some(list), "base.components", checks::component),
        None => vec!["main".to_owned()],
    };
    let mut mirror = cx.optional(t.mirror, "base.mirror", checks::mirror);
    let snapshot_epoch = t
        .snapshot
        .as_ref()
        .and_then(|s| cx.check(s, "base.snapshot", checks::snapshot));
    let snapshot = t
        .snapshot
        .map(Spanned::into_inner)
        .filter(|_| snapshot_epoch.is_some());
    if let (None, Some(snap)) = (&mirror, &snapshot) {
        mirror = Some(format!("https://snapshot.debian.org/archive/debian/{snap}"));
    }
    let source_date_epoch = match t.source_date_epoch {
        Some(e) if *e.get_ref() < 0 => {
            cx.error(
                Some(e.span()),
                Some("base.source_date_epoch"),
                "must not be negative",
                Some("seconds since 1970-01-01T00:00:00Z".to_owned()),
            );
            0
        }
        Some(e) => e.into_inner(),
        None => snapshot_epoch.unwrap_or(DEFAULT_SOURCE_DATE_EPOCH),
    };
    let packages = cx.list(t.packages, "base.packages", |s| checks::package(s, true));
    Some(BaseSpec {
        suite: suite?,
        variant,
        architecture,
        components,
        mirror,
        snapshot,
        source_date_epoch,
        packages,
        tool,
    })
}

/// Collects diagnostics for one file while validating it.
pub(crate) struct Ctx<'a> {
    pub src: Source<'a>,
    pub diags: Vec<Diagnostic>,
    /// What relative paths are relative to, for messages.
    pub base: &'static str,
}

impl<'a> Ctx<'a> {
    pub fn new(src: Source<'a>, base: &'static str) -> Self {
        Ctx {
            src,
            diags: Vec::new(),
            base,
        }
    }

    pub fn into_errors(mut self) -> RecipeErrors {
        // Reading order: stable sort keeps same-position problems in the
        // order they were found.
        self.diags.sort_by_key(|d| (d.line, d.column));
        RecipeErrors(self.diags)
    }

    /// The TOML document, reporting every syntax error toml can recover from.
    pub fn parse_document(&mut self) -> Option<Spanned<DeTable<'a>>> {
        let (root, errors) = DeTable::parse_recoverable(self.src.text);
        if errors.is_empty() {
            return Some(root);
        }
        for e in errors {
            let message = format!("TOML syntax error: {}", e.message().trim_end());
            self.error(e.span(), None, message, None);
        }
        None
    }

    pub fn error(
        &mut self,
        span: Option<Range<usize>>,
        key: Option<&str>,
        message: impl Into<String>,
        help: Option<String>,
    ) {
        let mut d = self.src.diag(span, key, message);
        d.help = help;
        self.diags.push(d);
    }

    /// Report keys of `table` outside `allowed`, with the allowed list and
    /// the closest match. `prefix` is the key path of the table.
    pub fn unknown_keys(
        &mut self,
        table: &DeTable,
        prefix: Option<&str>,
        allowed: &[&str],
        what: &str,
    ) {
        for (k, _) in table.iter() {
            if !allowed.contains(&k.get_ref().as_ref()) {
                let key = join(prefix, k.get_ref());
                let help = format!(
                    "{what}: {}",
                    one_of_help(k.get_ref(), allowed).trim_start_matches("expected one of ")
                );
                self.error(
                    Some(k.span()),
                    Some(&key),
                    format!("unknown key {:?}", k.get_ref()),
                    Some(help),
                );
            }
        }
    }

    /// Deserialize a `[section]` after reporting its unknown keys.
    pub fn section<'t, T: DeserializeOwned>(
        &mut self,
        v: &Spanned<DeValue<'t>>,
        prefix: &str,
    ) -> Option<Spanned<T>> {
        let DeValue::Table(table) = v.get_ref() else {
            let msg = format!("expected a table, found {}", v.get_ref().type_str());
            self.error(
                Some(v.span()),
                Some(prefix),
                msg,
                Some(format!("write it as [{prefix}]")),
            );
            return None;
        };
        let allowed = raw::struct_fields::<T>();
        self.unknown_keys(table, Some(prefix), allowed, "allowed keys");
        self.deserialize(table, v.span(), prefix, allowed)
    }

    /// Deserialize the `allowed` keys of `table` into `T`, reporting every
    /// wrongly-typed key: serde stops at the first error, so the offending
    /// key is dropped and deserialization retried.
    pub fn deserialize<'t, T: DeserializeOwned>(
        &mut self,
        table: &DeTable<'t>,
        span: Range<usize>,
        prefix: &str,
        allowed: &[&str],
    ) -> Option<Spanned<T>> {
        // (Map::retain needs `K: AsRef<str>`, which spanned keys lack.)
        let mut table: DeTable<'t> = table
            .iter()
            .filter(|(k, _)| allowed.contains(&&**k.get_ref()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for _ in 0..=table.len() {
            let value = Spanned::new(span.clone(), DeValue::Table(table.clone()));
            match T::deserialize(ValueDeserializer::from(value)) {
                Ok(t) => return Some(Spanned::new(span, t)),
                Err(e) => {
                    let at = e.span().map_or(usize::MAX, |s| s.start);
                    let culprit = table
                        .iter()
                        .find(|(k, v)| k.span().contains(&at) || v.span().contains(&at))
                        .map(|(k, _)| k.get_ref().to_string());
                    let key = culprit.as_deref().map(|k| format!("{prefix}.{k}"));
                    self.error(
                        e.span(),
                        Some(key.as_deref().unwrap_or(prefix)),
                        type_message(e.message()),
                        None,
                    );
                    match culprit {
                        Some(k) => {
                            table.remove(k.as_str());
                        }
                        None => return None,
                    }
                }
            }
        }
        None
    }

    /// Apply `check` to a spanned string, reporting failure at its span.
    pub fn check<T>(
        &mut self,
        s: &Spanned<String>,
        key: &str,
        check: impl FnOnce(&str) -> Check<T>,
    ) -> Option<T> {
        match check(s.get_ref()) {
            Ok(t) => Some(t),
            Err((msg, help)) => {
                self.error(Some(s.span()), Some(key), msg, help);
                None
            }
        }
    }

    pub fn required(
        &mut self,
        s: Option<Spanned<String>>,
        table: Range<usize>,
        key: &str,
        check: impl FnOnce(&str) -> Check<()>,
    ) -> Option<String> {
        match s {
            Some(s) => self.check(&s, key, check).map(|()| s.into_inner()),
            None => {
                let leaf = key.rsplit('.').next().unwrap_or(key);
                self.error(
                    Some(table),
                    Some(key),
                    format!("missing required key {leaf:?}"),
                    None,
                );
                None
            }
        }
    }

    pub fn optional(
        &mut self,
        s: Option<Spanned<String>>,
        key: &str,
        check: impl FnOnce(&str) -> Check<()>,
    ) -> Option<String> {
        let s = s?;
        self.check(&s, key, check).map(|()| s.into_inner())
    }

    /// Each element checked; bad ones reported (with their index) and dropped.
    pub fn list(
        &mut self,
        l: Option<Spanned<Vec<Spanned<String>>>>,
        key: &str,
        check: impl Fn(&str) -> Check<()>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for (i, s) in l
            .map(Spanned::into_inner)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            if self
                .check(&s, &format!("{key}[{}]", i + 1), &check)
                .is_some()
            {
                out.push(s.into_inner());
            }
        }
        out
    }

    /// One of a fixed set of names.
    pub fn choice<T: Copy>(
        &mut self,
        s: Option<Spanned<String>>,
        key: &str,
        all: &[T],
        name: fn(&T) -> &'static str,
    ) -> Option<T> {
        let s = s?;
        let found = all.iter().find(|v| name(v) == s.get_ref()).copied();
        if found.is_none() {
            let names: Vec<&str> = all.iter().map(name).collect();
            let leaf = key.rsplit('.').next().unwrap_or(key);
            self.error(
                Some(s.span()),
                Some(key),
                format!("unknown {leaf} {:?}", s.get_ref()),
                Some(one_of_help(s.get_ref(), &names)),
            );
        }
        found
    }
}

pub(crate) fn join(prefix: Option<&str>, key: &str) -> String {
    match prefix {
        Some(p) => format!("{p}.{key}"),
        None => key.to_owned(),
    }
}

/// serde says "invalid type: integer `5`, expected a string"; users read
/// "expected a string, found integer `5`" more easily.
fn type_message(serde_msg: &str) -> String {
    match serde_msg
        .strip_prefix("invalid type: ")
        .and_then(|m| m.split_once(", expected "))
    {
        Some((found, expected)) => {
            let expected = match expected {
                "i64" | "u32" | "u64" => "an integer",
                other => other,
            };
            format!("expected {expected}, found {found}")
        }
        None => serde_msg.to_owned(),
    }
}
