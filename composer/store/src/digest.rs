//! sha256 digests and the typed ids built on them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;

use crate::error::ParseDigestError;

const PREFIX: &str = "sha256:";

/// A sha256 digest, written `sha256:<64 hex>`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(sha2::Sha256::digest(bytes).into())
    }

    /// Wraps raw digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Digest {
        Digest(bytes)
    }

    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hex digits.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 12 hex digits, for display.
    pub fn short(&self) -> String {
        let mut h = self.hex();
        h.truncate(12);
        h
    }

    /// Parses bare hex (no `sha256:` prefix).
    pub fn from_hex(input: &str) -> Result<Digest, ParseDigestError> {
        let err = |reason| ParseDigestError {
            input: input.to_string(),
            reason,
        };
        if input.len() != 64 {
            return Err(err("wrong length"));
        }
        // Uppercase would give a second spelling of one digest: refuse it.
        if !input
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(err("not lowercase hex"));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(input, &mut out).map_err(|_| err("not lowercase hex"))?;
        Ok(Digest(out))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = ParseDigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix(PREFIX) {
            Some(hex) => Digest::from_hex(hex).map_err(|e| ParseDigestError {
                input: s.to_string(),
                reason: e.reason,
            }),
            None => Err(ParseDigestError {
                input: s.to_string(),
                reason: "missing `sha256:` prefix",
            }),
        }
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Incremental sha256.
#[derive(Clone, Default)]
pub struct Hasher(sha2::Sha256);

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Hasher {
        Hasher::default()
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        Digest(self.0.finalize().into())
    }
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Digest);

        impl $name {
            /// The underlying digest.
            pub fn digest(&self) -> Digest {
                self.0
            }
        }

        impl From<Digest> for $name {
            fn from(d: Digest) -> Self {
                $name(d)
            }
        }

        impl From<$name> for Digest {
            fn from(id: $name) -> Digest {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = ParseDigestError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }
    };
}

typed_id!(
    /// The digest of an uncompressed layer tar (also its diff_id).
    LayerDigest
);
typed_id!(
    /// The digest of a snapshot's OCI manifest.
    SnapshotId
);
typed_id!(
    /// The digest identifying a layer's inputs in the build cache.
    CacheKey
);

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn display_and_parse_round_trip() {
        let d = Digest::of(b"");
        assert_eq!(d.hex(), EMPTY);
        assert_eq!(d.to_string(), format!("sha256:{EMPTY}"));
        assert_eq!(format!("{d:?}"), format!("sha256:{EMPTY}"));
        assert_eq!(d.short(), &EMPTY[..12]);
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        let id: SnapshotId = d.to_string().parse().unwrap();
        assert_eq!(id.digest(), d);
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            format!("\"sha256:{EMPTY}\"")
        );
    }

    #[test]
    fn parse_errors() {
        let upper = format!("sha256:{}", EMPTY.to_uppercase());
        let short = format!("sha256:{}", &EMPTY[..63]);
        let nonhex = format!("sha256:{}g", &EMPTY[..63]);
        let cases: &[(&str, &str)] = &[
            ("", "missing `sha256:` prefix"),
            (EMPTY, "missing `sha256:` prefix"),
            ("sha512:abc", "missing `sha256:` prefix"),
            (&short, "wrong length"),
            (&upper, "not lowercase hex"),
            (&nonhex, "not lowercase hex"),
        ];
        for (input, reason) in cases {
            let err = input.parse::<Digest>().unwrap_err();
            assert_eq!(err.reason, *reason, "{input}");
            assert!(err.to_string().contains("sha256:<64 lowercase hex digits>"));
        }
    }

    #[test]
    fn hasher_matches_of() {
        let mut h = Hasher::new();
        h.update(b"hello ");
        h.update(b"world");
        assert_eq!(h.finish(), Digest::of(b"hello world"));
    }

    #[test]
    fn serde_rejects_bad_digest() {
        assert!(serde_json::from_str::<Digest>("\"sha256:zz\"").is_err());
    }
}
