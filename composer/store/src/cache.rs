//! The build cache: cache key -> layer blob, one JSON file per key.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::digest::{CacheKey, LayerDigest};
use crate::error::{IoContext, StoreError};
use crate::fsutil::{canonical_json, write_atomic};
use crate::layout::Store;

/// A layer recorded under a cache key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLayer {
    /// The layer blob.
    pub digest: LayerDigest,
    /// Its size in bytes.
    pub size: u64,
    /// What produced it (for the image history).
    pub created_by: String,
}

impl Store {
    fn cache_path(&self, key: &CacheKey) -> PathBuf {
        self.cache_dir()
            .join(format!("{}.json", key.digest().hex()))
    }

    /// The layer cached under `key`; `None` when there is no entry or its
    /// blob has gone (then the layer must be rebuilt).
    pub fn cache_lookup(&self, key: &CacheKey) -> Result<Option<CachedLayer>, StoreError> {
        let path = self.cache_path(key);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io("reading cache entry", path, e)),
        };
        let layer: CachedLayer =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::BadMetadata {
                path: path.clone(),
                reason: format!("cache entry does not parse: {e}"),
            })?;
        if !self.has_blob(&layer.digest.digest()) {
            return Ok(None);
        }
        Ok(Some(layer))
    }

    /// Every cache record file, sorted (none if the store has no cache
    /// directory, e.g. an OCI layout written by another tool).
    pub(crate) fn cache_record_paths(&self) -> Result<Vec<PathBuf>, StoreError> {
        let dir = self.cache_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io("listing", dir, e)),
        };
        let mut paths = Vec::new();
        for entry in entries {
            let path = entry.at("listing", &dir)?.path();
            // Skips write_atomic's `.tmp-*` files.
            if path.extension().is_some_and(|e| e == "json") {
                paths.push(path);
            }
        }
        paths.sort();
        Ok(paths)
    }

    /// Records `layer` under `key` (atomically replacing any old entry).
    pub fn cache_record(&self, key: &CacheKey, layer: &CachedLayer) -> Result<(), StoreError> {
        let path = self.cache_path(key);
        let json = canonical_json(layer).at("serializing cache entry", path.clone())?;
        write_atomic(&path, &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    #[test]
    fn record_then_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = CacheKey::from(Digest::of(b"key"));
        assert_eq!(store.cache_lookup(&key).unwrap(), None);

        let blob = store.put_blob(b"layer").unwrap();
        let layer = CachedLayer {
            digest: blob.into(),
            size: 5,
            created_by: "apt-get install vim".into(),
        };
        store.cache_record(&key, &layer).unwrap();
        assert_eq!(store.cache_lookup(&key).unwrap(), Some(layer));

        // A cache entry whose blob is gone is a miss.
        std::fs::remove_file(store.blob_path(&blob)).unwrap();
        assert_eq!(store.cache_lookup(&key).unwrap(), None);

        std::fs::write(store.cache_path(&key), b"{").unwrap();
        let err = store.cache_lookup(&key).unwrap_err();
        assert!(matches!(err, StoreError::BadMetadata { .. }), "{err}");
    }
}
