//! `index.json`: which snapshots exist, under which image name, built when.
//!
//! One manifest descriptor per (image, snapshot) with annotations
//! `io.compose.image` and `io.compose.built`; the newest snapshot of each
//! image also carries `org.opencontainers.image.ref.name` = image name, so
//! `skopeo inspect oci:STORE:NAME` finds it. Tagging moves that annotation.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use serde::{Deserialize, Serialize, Serializer};

use crate::digest::{Digest, SnapshotId};
use crate::error::{IoContext, StoreError};
use crate::fsutil::{canonical_json, write_atomic};
use crate::layout::Store;
use crate::snapshot::MEDIA_MANIFEST;

const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const ANN_IMAGE: &str = "io.compose.image";
pub(crate) const ANN_BUILT: &str = "io.compose.built";
pub(crate) const ANN_REF: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Index {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Entry>,
    /// Fields other tools may have written; kept as they are.
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            schema_version: 2,
            media_type: Some(MEDIA_INDEX.to_string()),
            manifests: Vec::new(),
            other: BTreeMap::new(),
        }
    }
}

impl Index {
    pub(crate) fn to_json(&self) -> Result<Vec<u8>, StoreError> {
        canonical_json(self).at("serializing", "index.json")
    }

    /// The entries as fsck and gc see them, in file order.
    pub(crate) fn entries(&self) -> Vec<IndexRef> {
        self.manifests
            .iter()
            .map(|e| IndexRef {
                media_type: e.media_type.clone(),
                digest: e.digest.clone(),
                image: e.image().map(str::to_string),
                built: e
                    .annotations
                    .get(ANN_BUILT)
                    .and_then(|b| humantime::parse_rfc3339(b).ok()),
                is_ref: e.is_ref(),
            })
            .collect()
    }

    /// Keeps the entries whose position (as in [`Index::entries`]) is in `keep`.
    pub(crate) fn retain_positions(&mut self, keep: &BTreeSet<usize>) {
        let mut i = 0;
        self.manifests.retain(|_| {
            i += 1;
            keep.contains(&(i - 1))
        });
    }
}

/// One `index.json` entry, read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexRef {
    pub(crate) media_type: String,
    /// As written (may not parse: fsck reports that).
    pub(crate) digest: String,
    /// `io.compose.image`; `None` for entries other tools added.
    pub(crate) image: Option<String>,
    /// `io.compose.built`, when present and valid.
    pub(crate) built: Option<SystemTime>,
    /// Carries the image's `ref.name` (what the bare name resolves to).
    pub(crate) is_ref: bool,
}

/// A tagged snapshot, as listed by [`Store::snapshots`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotInfo {
    pub image: String,
    pub id: SnapshotId,
    #[serde(serialize_with = "ser_rfc3339")]
    pub built: SystemTime,
    pub layers: usize,
    /// Sum of the layer sizes.
    pub size: u64,
    /// Whether this is what the bare image name resolves to.
    pub newest: bool,
}

pub(crate) fn ser_rfc3339<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_seconds(*t))
}

/// Checks an image name against `[a-z0-9][a-z0-9._-]*`.
pub fn validate_image_name(name: &str) -> Result<(), StoreError> {
    let bad = |reason: &str| StoreError::InvalidName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    let mut bytes = name.bytes();
    match bytes.next() {
        None => return Err(bad("it is empty")),
        Some(b) if !(b.is_ascii_lowercase() || b.is_ascii_digit()) => {
            return Err(bad("it must start with a lowercase letter or digit"))
        }
        Some(_) => {}
    }
    if name.len() > 128 {
        return Err(bad("it is longer than 128 characters"));
    }
    if !bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)) {
        return Err(bad(
            "it contains a character other than a-z, 0-9, '.', '_', '-'",
        ));
    }
    Ok(())
}

impl Entry {
    fn image(&self) -> Option<&str> {
        self.annotations.get(ANN_IMAGE).map(String::as_str)
    }

    fn is_ref(&self) -> bool {
        self.image().is_some() && self.annotations.get(ANN_REF).map(String::as_str) == self.image()
    }

    fn sort_key(&self) -> (String, String, bool, String) {
        let ann = |k| self.annotations.get(k).cloned().unwrap_or_default();
        (
            ann(ANN_IMAGE),
            ann(ANN_BUILT),
            self.is_ref(),
            self.digest.clone(),
        )
    }
}

impl Store {
    pub(crate) fn load_index(&self) -> Result<Index, StoreError> {
        let path = self.index_path();
        let bytes = std::fs::read(&path).at("reading", &path)?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::BadMetadata {
            path,
            reason: format!("not an OCI image index: {e}"),
        })
    }

    pub(crate) fn save_index(&self, mut index: Index) -> Result<(), StoreError> {
        index.manifests.sort_by_key(Entry::sort_key);
        write_atomic(&self.index_path(), &index.to_json()?)
    }

    /// Tags snapshot `id` as the newest build of `image`, built at `built`
    /// (wall clock). Re-tagging an existing snapshot updates its time.
    /// Callers should hold [`Store::lock`].
    pub fn tag(&self, image: &str, id: &SnapshotId, built: SystemTime) -> Result<(), StoreError> {
        validate_image_name(image)?;
        let d = id.digest();
        let path = self.blob_path(&d);
        let size = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(_) => return Err(StoreError::MissingBlob { digest: d, path }),
        };
        let mut index = self.load_index()?;
        let digest = d.to_string();
        for e in &mut index.manifests {
            let names_image = e.annotations.get(ANN_REF).map(String::as_str) == Some(image);
            if e.image() == Some(image) || names_image {
                e.annotations.remove(ANN_REF);
            }
        }
        let built = humantime::format_rfc3339_seconds(built).to_string();
        let pos = index
            .manifests
            .iter()
            .position(|e| e.digest == digest && e.image() == Some(image));
        let i = pos.unwrap_or_else(|| {
            index.manifests.push(Entry {
                media_type: MEDIA_MANIFEST.to_string(),
                digest,
                size,
                annotations: BTreeMap::new(),
                other: BTreeMap::new(),
            });
            index.manifests.len() - 1
        });
        let entry = &mut index.manifests[i];
        entry.annotations.insert(ANN_IMAGE.into(), image.into());
        entry.annotations.insert(ANN_BUILT.into(), built);
        entry.annotations.insert(ANN_REF.into(), image.into());
        self.save_index(index)
    }

    /// All tagged snapshots, sorted by image then build time.
    pub fn snapshots(&self) -> Result<Vec<SnapshotInfo>, StoreError> {
        let index = self.load_index()?;
        let mut entries: Vec<&Entry> = index
            .manifests
            .iter()
            .filter(|e| e.image().is_some())
            .collect();
        entries.sort_by_key(|e| e.sort_key());
        let with_ref: BTreeSet<&str> = entries
            .iter()
            .filter(|e| e.is_ref())
            .filter_map(|e| e.image())
            .collect();
        let mut out = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let image = e.image().unwrap_or_default();
            let last_of_image = entries.get(i + 1).and_then(|n| n.image()) != Some(image);
            // Without any ref.name (edited by hand), the latest build wins.
            let newest = e.is_ref() || (last_of_image && !with_ref.contains(image));
            out.push(self.info(e, newest)?);
        }
        Ok(out)
    }

    fn info(&self, e: &Entry, newest: bool) -> Result<SnapshotInfo, StoreError> {
        let bad = |reason: String| StoreError::BadMetadata {
            path: self.index_path(),
            reason,
        };
        let id: SnapshotId = e.digest.parse().map_err(|err| bad(format!("{err}")))?;
        let built_str = e.annotations.get(ANN_BUILT).cloned().unwrap_or_default();
        let built = humantime::parse_rfc3339(&built_str).map_err(|err| {
            bad(format!(
                "{} has bad {ANN_BUILT} `{built_str}`: {err}",
                e.digest
            ))
        })?;
        let layers = self
            .manifest(&id)?
            .layers()
            .iter()
            .map(|l| l.size())
            .collect::<Vec<_>>();
        Ok(SnapshotInfo {
            image: e.image().unwrap_or_default().to_string(),
            id,
            built,
            layers: layers.len(),
            size: layers.iter().sum(),
            newest,
        })
    }

    /// Finds a snapshot by `name` (its newest build), `name@sha256:…`,
    /// `sha256:…`, or a unique hex prefix of at least 8 digits.
    pub fn resolve(&self, reference: &str) -> Result<SnapshotInfo, StoreError> {
        let all = self.snapshots()?;
        let found = match reference.split_once('@') {
            Some((name, digest)) => {
                let d: Digest = digest.parse()?;
                all.iter().find(|s| s.image == name && s.id.digest() == d)
            }
            None => find_unqualified(&all, reference)?,
        };
        found.cloned().ok_or_else(|| not_found(reference, &all))
    }
}

fn find_unqualified<'a>(
    all: &'a [SnapshotInfo],
    reference: &str,
) -> Result<Option<&'a SnapshotInfo>, StoreError> {
    if reference.starts_with("sha256:") {
        let d: Digest = reference.parse()?;
        return Ok(best(all.iter().filter(|s| s.id.digest() == d)));
    }
    if let Some(s) = all.iter().find(|s| s.image == reference && s.newest) {
        return Ok(Some(s));
    }
    let is_hex = reference
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if reference.len() < 8 || reference.len() > 64 || !is_hex {
        return Ok(None);
    }
    let ids: BTreeSet<SnapshotId> = all
        .iter()
        .filter(|s| s.id.digest().hex().starts_with(reference))
        .map(|s| s.id)
        .collect();
    if ids.len() > 1 {
        return Err(StoreError::Ambiguous {
            reference: reference.to_string(),
            candidates: ids.iter().map(|i| i.to_string()).collect(),
        });
    }
    Ok(best(all.iter().filter(|s| ids.contains(&s.id))))
}

/// Of several entries for one digest, prefer a newest one, then the latest.
fn best<'a>(matches: impl Iterator<Item = &'a SnapshotInfo>) -> Option<&'a SnapshotInfo> {
    matches.max_by_key(|s| (s.newest, s.built))
}

fn not_found(reference: &str, all: &[SnapshotInfo]) -> StoreError {
    let known: BTreeSet<&str> = all.iter().map(|s| s.image.as_str()).collect();
    StoreError::NotFound {
        reference: reference.to_string(),
        known: known.into_iter().map(str::to_string).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{LayerEntry, SnapshotSpec};
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn snapshot(store: &Store, image: &str, layer: &[u8]) -> SnapshotId {
        let digest = store.put_blob(layer).unwrap();
        let spec = SnapshotSpec {
            image: image.into(),
            architecture: "amd64".into(),
            source_date_epoch: 0,
            layers: vec![LayerEntry {
                digest: digest.into(),
                size: layer.len() as u64,
                created_by: String::new(),
                comment: String::new(),
            }],
            labels: BTreeMap::new(),
        };
        store.write_snapshot(&spec).unwrap()
    }

    #[test]
    fn tag_retag_and_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a1 = snapshot(&store, "a", b"a1");
        let a2 = snapshot(&store, "a", b"a2");
        let b1 = snapshot(&store, "b", b"b1");
        store.tag("a", &a1, at(1)).unwrap();
        store.tag("b", &b1, at(2)).unwrap();
        store.tag("a", &a2, at(3)).unwrap();
        assert_eq!(store.resolve("a").unwrap().id, a2);

        let list = store.snapshots().unwrap();
        let summary: Vec<(&str, SnapshotId, bool)> = list
            .iter()
            .map(|s| (s.image.as_str(), s.id, s.newest))
            .collect();
        assert_eq!(
            summary,
            vec![("a", a1, false), ("a", a2, true), ("b", b1, true)]
        );
        assert_eq!(list[0].layers, 1);
        assert_eq!(list[0].size, 2);

        // Re-tagging moves "newest" without duplicating the entry.
        store.tag("a", &a1, at(4)).unwrap();
        let list = store.snapshots().unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(store.resolve("a").unwrap().id, a1);
        assert_eq!(store.resolve("a").unwrap().built, at(4));
        let refs = std::fs::read_to_string(store.index_path())
            .unwrap()
            .matches(ANN_REF)
            .count();
        assert_eq!(refs, 2);

        let by_digest = format!("a@{a2}");
        assert_eq!(store.resolve(&by_digest).unwrap().id, a2);
        assert_eq!(store.resolve(&a2.to_string()).unwrap().id, a2);
        assert_eq!(store.resolve(&b1.digest().hex()[..8]).unwrap().id, b1);

        for bad in [
            "c",
            "b@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "1234567",
            "deadbeefdead",
        ] {
            let err = store.resolve(bad).unwrap_err();
            assert!(matches!(err, StoreError::NotFound { .. }), "{bad}: {err}");
            assert!(err.to_string().contains("known images: a, b"), "{err}");
        }
        let err = store.resolve("a@sha256:zz").unwrap_err();
        assert!(matches!(err, StoreError::InvalidDigest(_)), "{err}");
    }

    #[test]
    fn index_json_is_deterministic_and_skopeo_friendly() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = snapshot(&store, "node", b"x");
        store.tag("node", &id, at(0)).unwrap();
        let json = std::fs::read_to_string(store.index_path()).unwrap();
        let expected = format!(
            concat!(
                r#"{{"manifests":[{{"annotations":{{"io.compose.built":"2027-01-15T08:00:00Z","#,
                r#""io.compose.image":"node","org.opencontainers.image.ref.name":"node"}},"#,
                r#""digest":"{}","mediaType":"application/vnd.oci.image.manifest.v1+json","size":{}}}],"#,
                r#""mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}}"#
            ),
            id,
            std::fs::metadata(store.blob_path(&id.digest()))
                .unwrap()
                .len()
        );
        assert_eq!(json, expected);
    }

    #[test]
    fn ambiguous_prefix() {
        let info = |first: u8, image: &str| SnapshotInfo {
            image: image.into(),
            id: Digest::from_bytes([first; 32]).into(),
            built: at(0),
            layers: 0,
            size: 0,
            newest: true,
        };
        let mut x = [0xab; 32];
        x[31] = 0;
        let all = vec![
            info(0xab, "a"),
            SnapshotInfo {
                id: Digest::from_bytes(x).into(),
                ..info(0, "b")
            },
        ];
        let err = find_unqualified(&all, "abababab").unwrap_err();
        assert!(matches!(err, StoreError::Ambiguous { .. }), "{err}");
        assert!(err.to_string().contains("give more digits"));
        let unique = &Digest::from_bytes([0xab; 32]).hex()[..63];
        assert_eq!(find_unqualified(&all, unique).unwrap().unwrap().image, "a");
    }

    #[test]
    fn image_names() {
        let cases = [
            ("node", true),
            ("0day.x_y-z", true),
            ("", false),
            ("-x", false),
            (".x", false),
            ("Node", false),
            ("a/b", false),
            ("a:b", false),
            ("a b", false),
        ];
        for (name, ok) in cases {
            assert_eq!(validate_image_name(name).is_ok(), ok, "{name}");
        }
    }

    #[test]
    fn tag_needs_the_manifest_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let err = store.tag("a", &Digest::of(b"x").into(), at(0)).unwrap_err();
        assert!(matches!(err, StoreError::MissingBlob { .. }), "{err}");
    }
}
