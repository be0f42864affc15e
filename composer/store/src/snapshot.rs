//! Snapshots: an OCI image config + manifest over a list of layer blobs.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::digest::{Digest, LayerDigest, SnapshotId};
use crate::error::{IoContext, StoreError};
use crate::fsutil::canonical_json;
use crate::layout::Store;

pub(crate) const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub(crate) const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";

/// What to record as a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSpec {
    /// Image name (see [`validate_image_name`](crate::validate_image_name)).
    pub image: String,
    /// Debian architecture (amd64, arm64, i386, armhf, ...).
    pub architecture: String,
    /// SOURCE_DATE_EPOCH: every timestamp in the config and manifest.
    pub source_date_epoch: i64,
    /// Layers, base first.
    pub layers: Vec<LayerEntry>,
    /// Image config labels.
    pub labels: BTreeMap<String, String>,
}

/// One layer of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    pub digest: LayerDigest,
    pub size: u64,
    pub created_by: String,
    pub comment: String,
}

/// Maps a Debian architecture to the OCI (GOARCH) architecture and variant.
pub fn oci_architecture(debian: &str) -> Option<(&'static str, Option<&'static str>)> {
    Some(match debian {
        "amd64" => ("amd64", None),
        "arm64" => ("arm64", Some("v8")),
        "i386" => ("386", None),
        "armhf" => ("arm", Some("v7")),
        "armel" => ("arm", Some("v5")),
        "ppc64el" => ("ppc64le", None),
        "ppc64" => ("ppc64", None),
        "s390x" => ("s390x", None),
        "riscv64" => ("riscv64", None),
        "mips64el" => ("mips64le", None),
        "mipsel" => ("mipsle", None),
        "loong64" => ("loong64", None),
        _ => return None,
    })
}

/// RFC 3339 (UTC, whole seconds) for a SOURCE_DATE_EPOCH.
pub(crate) fn epoch_rfc3339(epoch: i64) -> Result<String, StoreError> {
    let secs = u64::try_from(epoch).map_err(|_| StoreError::InvalidSpec {
        reason: format!(
            "source_date_epoch {epoch} is before 1970: use a non-negative SOURCE_DATE_EPOCH"
        ),
    })?;
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    Ok(humantime::format_rfc3339_seconds(t).to_string())
}

#[derive(Serialize)]
struct Descriptor {
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    digest: Digest,
    size: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    media_type: &'static str,
    config: Descriptor,
    layers: Vec<Descriptor>,
    annotations: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct Config<'a> {
    created: &'a str,
    architecture: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'static str>,
    os: &'static str,
    config: RunConfig<'a>,
    rootfs: RootFs,
    history: Vec<History<'a>>,
}

#[derive(Serialize)]
struct RunConfig<'a> {
    #[serde(rename = "Labels", skip_serializing_if = "BTreeMap::is_empty")]
    labels: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<LayerDigest>,
}

#[derive(Serialize)]
struct History<'a> {
    created: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    created_by: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    comment: &'a str,
}

fn config_json(spec: &SnapshotSpec, created: &str) -> Result<Vec<u8>, StoreError> {
    let (architecture, variant) =
        oci_architecture(&spec.architecture).ok_or_else(|| StoreError::InvalidSpec {
            reason: format!(
                "unknown debian architecture `{}`: use one of amd64, arm64, i386, armhf, armel, ppc64el, s390x, riscv64, mips64el, loong64",
                spec.architecture
            ),
        })?;
    let config = Config {
        created,
        architecture,
        variant,
        os: "linux",
        config: RunConfig {
            labels: &spec.labels,
        },
        rootfs: RootFs {
            kind: "layers",
            diff_ids: spec.layers.iter().map(|l| l.digest).collect(),
        },
        history: spec
            .layers
            .iter()
            .map(|l| History {
                created,
                created_by: &l.created_by,
                comment: &l.comment,
            })
            .collect(),
    };
    canonical_json(&config).at("serializing image config for", spec.image.as_str())
}

impl Store {
    /// Writes the config and manifest blobs for `spec` (canonical JSON, so
    /// the same spec always gives the same id) and returns the manifest
    /// digest. Does not tag: see [`Store::tag`].
    pub fn write_snapshot(&self, spec: &SnapshotSpec) -> Result<SnapshotId, StoreError> {
        crate::index::validate_image_name(&spec.image)?;
        let created = epoch_rfc3339(spec.source_date_epoch)?;
        self.check_layers(spec)?;
        let config = config_json(spec, &created)?;
        let config_digest = self.put_blob(&config)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: MEDIA_MANIFEST,
            config: Descriptor {
                media_type: MEDIA_CONFIG,
                digest: config_digest,
                size: config.len() as u64,
            },
            layers: spec
                .layers
                .iter()
                .map(|l| Descriptor {
                    media_type: MEDIA_LAYER,
                    digest: l.digest.digest(),
                    size: l.size,
                })
                .collect(),
            annotations: BTreeMap::from([(ANNOTATION_CREATED, created)]),
        };
        let bytes =
            canonical_json(&manifest).at("serializing manifest for", spec.image.as_str())?;
        Ok(self.put_blob(&bytes)?.into())
    }

    /// Every layer must be in the store with the size the spec claims.
    fn check_layers(&self, spec: &SnapshotSpec) -> Result<(), StoreError> {
        for layer in &spec.layers {
            let d = layer.digest.digest();
            let path = self.blob_path(&d);
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StoreError::MissingBlob { digest: d, path })
                }
                Err(e) => return Err(StoreError::io("reading metadata of", path, e)),
            };
            if meta.len() != layer.size {
                return Err(StoreError::InvalidSpec {
                    reason: format!(
                        "layer {d} is {} bytes in the store but the spec says {}",
                        meta.len(),
                        layer.size
                    ),
                });
            }
        }
        Ok(())
    }

    /// The snapshot's manifest.
    pub fn manifest(&self, id: &SnapshotId) -> Result<oci_spec::image::ImageManifest, StoreError> {
        let d = id.digest();
        let bytes = self.read_blob(&d)?;
        oci_spec::image::ImageManifest::from_reader(bytes.as_slice()).map_err(|e| {
            StoreError::Corrupt {
                digest: d,
                path: self.blob_path(&d),
                reason: format!("not an OCI image manifest: {e}"),
            }
        })
    }

    /// The snapshot's image config.
    pub fn config(
        &self,
        id: &SnapshotId,
    ) -> Result<oci_spec::image::ImageConfiguration, StoreError> {
        let manifest = self.manifest(id)?;
        let d = self.descriptor_digest(id, manifest.config())?;
        let bytes = self.read_blob(&d)?;
        oci_spec::image::ImageConfiguration::from_reader(bytes.as_slice()).map_err(|e| {
            StoreError::Corrupt {
                digest: d,
                path: self.blob_path(&d),
                reason: format!("not an OCI image config: {e}"),
            }
        })
    }

    /// The snapshot's layers, base first.
    pub fn layers(&self, id: &SnapshotId) -> Result<Vec<LayerDigest>, StoreError> {
        let manifest = self.manifest(id)?;
        manifest
            .layers()
            .iter()
            .map(|l| self.descriptor_digest(id, l).map(LayerDigest::from))
            .collect()
    }

    fn descriptor_digest(
        &self,
        id: &SnapshotId,
        desc: &oci_spec::image::Descriptor,
    ) -> Result<Digest, StoreError> {
        desc.digest()
            .to_string()
            .parse()
            .map_err(|e: crate::error::ParseDigestError| StoreError::Corrupt {
                digest: id.digest(),
                path: self.blob_path(&id.digest()),
                reason: format!("manifest references a non-sha256 blob: {e}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec_with(store: &Store, layers: &[&[u8]]) -> SnapshotSpec {
        let layers = layers
            .iter()
            .enumerate()
            .map(|(i, bytes)| LayerEntry {
                digest: store.put_blob(bytes).unwrap().into(),
                size: bytes.len() as u64,
                created_by: format!("layer {i}"),
                comment: if i == 0 { "base".into() } else { String::new() },
            })
            .collect();
        SnapshotSpec {
            image: "node".into(),
            architecture: "amd64".into(),
            source_date_epoch: 1_700_000_000,
            layers,
            labels: BTreeMap::from([("org.example.recipe".into(), "node".into())]),
        }
    }

    #[test]
    fn write_snapshot_is_deterministic() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (s1, s2) = (
            Store::open(d1.path()).unwrap(),
            Store::open(d2.path()).unwrap(),
        );
        let id1 = s1
            .write_snapshot(&spec_with(&s1, &[b"one", b"two"]))
            .unwrap();
        let id2 = s2
            .write_snapshot(&spec_with(&s2, &[b"one", b"two"]))
            .unwrap();
        assert_eq!(id1, id2);
        assert_eq!(
            id1.to_string(),
            "sha256:19feee890a9be321967084c283238dddf4ad7da16179bbccb7914fe925b7c33a"
        );
    }

    #[test]
    fn snapshot_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let spec = spec_with(&store, &[b"one", b"two"]);
        let id = store.write_snapshot(&spec).unwrap();
        let layers = store.layers(&id).unwrap();
        assert_eq!(layers, vec![spec.layers[0].digest, spec.layers[1].digest]);
        let config = store.config(&id).unwrap();
        assert_eq!(config.architecture().to_string(), "amd64");
        assert_eq!(config.created().as_deref(), Some("2023-11-14T22:13:20Z"));
        let history = config.history().as_ref().unwrap();
        assert_eq!(history[0].comment().as_deref(), Some("base"));
        assert_eq!(history[1].comment(), &None);
        let manifest = store.manifest(&id).unwrap();
        let created = manifest.annotations().as_ref().unwrap()[ANNOTATION_CREATED].clone();
        assert_eq!(created, "2023-11-14T22:13:20Z");
    }

    #[test]
    fn write_snapshot_rejects_bad_specs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let good = spec_with(&store, &[b"one"]);
        let cases: Vec<(SnapshotSpec, &str)> = vec![
            (
                SnapshotSpec {
                    architecture: "vax".into(),
                    ..good.clone()
                },
                "unknown debian architecture `vax`",
            ),
            (
                SnapshotSpec {
                    source_date_epoch: -1,
                    ..good.clone()
                },
                "before 1970",
            ),
            (
                SnapshotSpec {
                    image: "Bad Name".into(),
                    ..good.clone()
                },
                "invalid image name",
            ),
            (
                SnapshotSpec {
                    layers: vec![LayerEntry {
                        size: 99,
                        ..good.layers[0].clone()
                    }],
                    ..good.clone()
                },
                "the spec says 99",
            ),
            (
                SnapshotSpec {
                    layers: vec![LayerEntry {
                        digest: Digest::of(b"absent").into(),
                        ..good.layers[0].clone()
                    }],
                    ..good.clone()
                },
                "is missing from the store",
            ),
        ];
        for (spec, want) in cases {
            let err = store.write_snapshot(&spec).unwrap_err().to_string();
            assert!(err.contains(want), "{err} should contain {want}");
        }
    }

    #[test]
    fn architectures_map_to_goarch() {
        for (deb, oci) in [
            ("amd64", "amd64"),
            ("arm64", "arm64"),
            ("i386", "386"),
            ("armhf", "arm"),
            ("ppc64el", "ppc64le"),
        ] {
            assert_eq!(oci_architecture(deb).unwrap().0, oci);
        }
        assert_eq!(oci_architecture("x86_64"), None);
    }
}
