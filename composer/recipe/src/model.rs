//! The validated recipe model, as the build code consumes it.
//!
//! `Serialize` here is *canonical*: it feeds cache keys, so it never contains
//! absolute paths or anything else that differs between machines or
//! checkouts. Paths serialize as written (relative to their base folder);
//! their content is hashed separately by the build via [`Step::input_paths`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recipe {
    /// The recipe file as given by the caller (machine-specific: not serialized).
    #[serde(skip)]
    pub path: PathBuf,
    /// The recipe's folder, absolute (machine-specific: not serialized).
    #[serde(skip)]
    pub dir: PathBuf,
    pub image: ImageSpec,
    pub base: BaseSpec,
    pub layers: Vec<LayerSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageSpec {
    pub name: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaseSpec {
    pub suite: String,
    pub variant: Variant,
    /// `None`: the host's architecture (the caller decides).
    pub architecture: Option<String>,
    pub components: Vec<String>,
    /// `None`: the host's apt sources (the caller decides). When the recipe
    /// gives a `snapshot` but no `mirror`, this is the snapshot.debian.org URL.
    pub mirror: Option<String>,
    pub snapshot: Option<String>,
    /// Resolved: the recipe's value, else the snapshot time, else
    /// [`DEFAULT_SOURCE_DATE_EPOCH`].
    pub source_date_epoch: i64,
    pub packages: Vec<String>,
    pub tool: BaseTool,
}

/// 2024-01-01T00:00:00Z: a fixed default keeps builds reproducible.
pub const DEFAULT_SOURCE_DATE_EPOCH: i64 = 1_704_067_200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    Minbase,
    Required,
    Important,
    Standard,
    Buildd,
}

impl Variant {
    pub const ALL: [Variant; 5] = [
        Variant::Minbase,
        Variant::Required,
        Variant::Important,
        Variant::Standard,
        Variant::Buildd,
    ];

    /// The name mmdebstrap/debootstrap use (`--variant=`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Variant::Minbase => "minbase",
            Variant::Required => "required",
            Variant::Important => "important",
            Variant::Standard => "standard",
            Variant::Buildd => "buildd",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BaseTool {
    /// mmdebstrap if installed, else debootstrap.
    Auto,
    Mmdebstrap,
    Debootstrap,
}

impl BaseTool {
    pub const ALL: [BaseTool; 3] = [BaseTool::Auto, BaseTool::Mmdebstrap, BaseTool::Debootstrap];

    pub fn as_str(&self) -> &'static str {
        match self {
            BaseTool::Auto => "auto",
            BaseTool::Mmdebstrap => "mmdebstrap",
            BaseTool::Debootstrap => "debootstrap",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerSpec {
    /// Unique within the recipe.
    pub name: String,
    pub origin: LayerOrigin,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerOrigin {
    /// Written inline as a `[[layer]]` with `kind`.
    Recipe,
    /// `use = "<name>"`: from `<dir>/layer.toml`.
    Reusable {
        name: String,
        /// Absolute folder of the layer (machine-specific: not serialized).
        #[serde(skip)]
        dir: PathBuf,
        /// Resolved parameters, defaults included.
        params: BTreeMap<String, String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Packages {
        install: Vec<String>,
        remove: Vec<String>,
        debs: Vec<InputPath>,
    },
    SerialConsole {
        tty: String,
        baud: u32,
    },
    Hostname(HostnameSpec),
    Files {
        source: InputPath,
        /// Absolute and normalized (no `.`, `..`, `//`, trailing `/`).
        dest: String,
        owner: String,
        group: String,
        mode: Option<u32>,
        dir_mode: Option<u32>,
    },
    Script {
        /// The script itself; for [`ScriptOrigin::File`] the file's content.
        text: String,
        origin: ScriptOrigin,
        inputs: Vec<InputPath>,
        env: BTreeMap<String, String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostnameSpec {
    Fixed(String),
    /// Leave the hostname to DHCP (shared node images).
    FromDhcp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptOrigin {
    Inline,
    File(InputPath),
}

/// A file or folder the build reads from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputPath {
    /// As written, relative to its base folder (the recipe's, or the
    /// reusable layer's).
    pub rel: String,
    /// Resolved absolute path (symlinks resolved), checked to be inside the
    /// base folder.
    pub abs: PathBuf,
}

impl Serialize for InputPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rel)
    }
}

impl Step {
    /// The `kind` name as written in recipes.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Packages { .. } => "packages",
            Step::SerialConsole { .. } => "serial-console",
            Step::Hostname(_) => "hostname",
            Step::Files { .. } => "files",
            Step::Script { .. } => "script",
        }
    }

    /// Every host path whose content goes into the image or the build, in a
    /// stable order: the build hashes these for the cache key.
    pub fn input_paths(&self) -> Vec<&InputPath> {
        match self {
            Step::Packages { debs, .. } => debs.iter().collect(),
            Step::Files { source, .. } => vec![source],
            Step::Script { origin, inputs, .. } => {
                let mut v = Vec::new();
                if let ScriptOrigin::File(p) = origin {
                    v.push(p);
                }
                v.extend(inputs);
                v
            }
            Step::SerialConsole { .. } | Step::Hostname(_) => Vec::new(),
        }
    }

    /// Same order as [`Step::input_paths`]; used by the loader to fill in
    /// resolved absolute paths.
    pub(crate) fn input_paths_mut(&mut self) -> Vec<&mut InputPath> {
        match self {
            Step::Packages { debs, .. } => debs.iter_mut().collect(),
            Step::Files { source, .. } => vec![source],
            Step::Script { origin, inputs, .. } => {
                let mut v = Vec::new();
                if let ScriptOrigin::File(p) = origin {
                    v.push(p);
                }
                v.extend(inputs.iter_mut());
                v
            }
            Step::SerialConsole { .. } | Step::Hostname(_) => Vec::new(),
        }
    }
}

/// Hand-written so the JSON mirrors the recipe syntax (`kind` plus that
/// kind's keys), which serde's derived enum tagging cannot express for the
/// hostname newtype.
impl Serialize for Step {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("kind", self.kind())?;
        match self {
            Step::Packages {
                install,
                remove,
                debs,
            } => {
                m.serialize_entry("install", install)?;
                m.serialize_entry("remove", remove)?;
                m.serialize_entry("debs", debs)?;
            }
            Step::SerialConsole { tty, baud } => {
                m.serialize_entry("tty", tty)?;
                m.serialize_entry("baud", baud)?;
            }
            Step::Hostname(HostnameSpec::Fixed(name)) => m.serialize_entry("hostname", name)?,
            Step::Hostname(HostnameSpec::FromDhcp) => m.serialize_entry("from_dhcp", &true)?,
            Step::Files {
                source,
                dest,
                owner,
                group,
                mode,
                dir_mode,
            } => {
                m.serialize_entry("source", source)?;
                m.serialize_entry("dest", dest)?;
                m.serialize_entry("owner", owner)?;
                m.serialize_entry("group", group)?;
                m.serialize_entry("mode", &mode.map(octal))?;
                m.serialize_entry("dir_mode", &dir_mode.map(octal))?;
            }
            Step::Script {
                text,
                origin,
                inputs,
                env,
            } => {
                // A script file's content is hashed through input_paths(), so
                // only inline text goes into the JSON.
                match origin {
                    ScriptOrigin::Inline => m.serialize_entry("run", text)?,
                    ScriptOrigin::File(p) => m.serialize_entry("script", p)?,
                }
                m.serialize_entry("inputs", inputs)?;
                m.serialize_entry("env", env)?;
            }
        }
        m.end()
    }
}

fn octal(mode: u32) -> String {
    format!("{mode:04o}")
}

/// Stable JSON for cache keys: object keys sorted, no whitespace, no
/// machine-specific data (see the module docs). Works for [`Step`],
/// [`LayerSpec`], [`BaseSpec`], [`Recipe`], …
pub fn canonical_json<T: Serialize + ?Sized>(value: &T) -> String {
    // Go through serde_json::Value and write it ourselves, so key order does
    // not depend on whether some other crate in the build enabled
    // serde_json's `preserve_order` feature.
    let v = serde_json::to_value(value).expect("model types always serialize to JSON");
    let mut out = String::new();
    write_sorted(&v, &mut out);
    out
}

fn write_sorted(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_sorted(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_sorted(item, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}
