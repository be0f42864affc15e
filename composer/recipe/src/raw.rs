//! Raw serde shapes of recipe and layer files, kept apart from the validated
//! model. Every field is optional and spanned: required keys and values are
//! checked by `validate`, which can then point at the exact place and report
//! every problem rather than serde's first.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use toml::Spanned;

pub(crate) type SString = Spanned<String>;
pub(crate) type SList = Spanned<Vec<SString>>;
pub(crate) type SMap<V> = Spanned<BTreeMap<SString, Spanned<V>>>;

/// Top-level keys of a recipe; the sections are deserialized one by one.
pub(crate) const RECIPE_KEYS: &[&str] = &["image", "base", "layer"];
/// Top-level keys of a reusable `layer.toml`.
pub(crate) const LAYER_FILE_KEYS: &[&str] = &["description", "params", "step"];

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImageToml {
    pub name: Option<SString>,
    pub description: Option<SString>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BaseToml {
    pub suite: Option<SString>,
    pub variant: Option<SString>,
    pub architecture: Option<SString>,
    pub components: Option<SList>,
    pub mirror: Option<SString>,
    pub snapshot: Option<SString>,
    pub source_date_epoch: Option<Spanned<i64>>,
    pub packages: Option<SList>,
    pub tool: Option<SString>,
}

/// A recipe `[[layer]]` or a reusable layer's `[[step]]`: the union of every
/// kind's keys; which ones a given kind accepts is in [`kind_keys`].
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LayerToml {
    pub name: Option<SString>,
    pub kind: Option<SString>,
    #[serde(rename = "use")]
    pub use_: Option<SString>,
    pub with: Option<SMap<Scalar>>,
    // packages
    pub install: Option<SList>,
    pub remove: Option<SList>,
    pub debs: Option<SList>,
    // serial-console
    pub tty: Option<SString>,
    pub baud: Option<Spanned<Scalar>>,
    // hostname
    pub hostname: Option<SString>,
    pub from_dhcp: Option<Spanned<bool>>,
    // files
    pub source: Option<SString>,
    pub dest: Option<SString>,
    pub owner: Option<Spanned<Scalar>>,
    pub group: Option<Spanned<Scalar>>,
    pub mode: Option<Spanned<Scalar>>,
    pub dir_mode: Option<Spanned<Scalar>>,
    // script
    pub run: Option<SString>,
    pub script: Option<SString>,
    pub inputs: Option<SList>,
    pub env: Option<SMap<String>>,
}

/// Layer kinds and the keys each accepts (besides `name` and `kind`).
pub(crate) const KINDS: &[(&str, &[&str])] = &[
    ("packages", &["install", "remove", "debs"]),
    ("serial-console", &["tty", "baud"]),
    ("hostname", &["hostname", "from_dhcp"]),
    (
        "files",
        &["source", "dest", "owner", "group", "mode", "dir_mode"],
    ),
    ("script", &["run", "script", "inputs", "env"]),
];

pub(crate) fn kind_names() -> Vec<&'static str> {
    KINDS.iter().map(|(k, _)| *k).collect()
}

pub(crate) fn kind_keys(kind: &str) -> Option<&'static [&'static str]> {
    KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, keys)| *keys)
}

/// One `[params.<name>]` of a reusable layer.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ParamToml {
    pub default: Option<Spanned<Scalar>>,
    #[allow(dead_code)] // documentation for readers of layer.toml only
    pub description: Option<SString>,
}

/// A string, integer or boolean. Integer fields (`baud`) also take a string
/// of digits so `${param}` substitution works there; string-ish fields
/// (`owner`, `with` values) take integers for convenience.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Int(i64),
    Str(String),
    Bool(bool),
}

impl Scalar {
    pub fn to_text(&self) -> String {
        match self {
            Scalar::Int(i) => i.to_string(),
            Scalar::Str(s) => s.clone(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                i64::try_from(v)
                    .map(Scalar::Int)
                    .map_err(|_| E::custom("integer too large"))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The field names serde's derive knows for `T`, so the unknown-key
/// pre-check (which reports every unknown key, with suggestions) can never
/// drift from the raw structs.
pub(crate) fn struct_fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Capture<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Capture<'_> {
        type Error = de::value::Error;
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("fields captured"))
        }
        fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Capture(&mut fields));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_lists_match_kinds() {
        let layer = struct_fields::<LayerToml>();
        for (kind, keys) in KINDS {
            for k in *keys {
                assert!(layer.contains(k), "{kind}: {k} missing from LayerToml");
            }
        }
        assert_eq!(struct_fields::<ImageToml>(), &["name", "description"]);
        assert!(struct_fields::<BaseToml>().contains(&"source_date_epoch"));
    }
}
