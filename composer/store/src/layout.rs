//! The store directory: an OCI image layout plus compose's own `compose/`
//! directory (build cache, temp space, lock).
//!
//! ```text
//! oci-layout            {"imageLayoutVersion":"1.0.0"}
//! index.json            one manifest descriptor per snapshot
//! blobs/sha256/<hex>    layers, configs, manifests
//! compose/cache/<hex>.json   cache key -> layer
//! compose/tmp/          temp files and dirs (same fs as blobs: renames are atomic)
//! compose/lock          flock'd by builds
//! ```
//!
//! The top directory is 0700 and files are 0600: the blobs hold every file
//! of every image (secrets, setuid binaries, device nodes), so no other
//! local user may reach them. `open` tightens a store made before.

use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::{IoContext, StoreError};
use crate::fsutil::{mkdir_p, restrict_dir, write_atomic};
use crate::index::Index;

const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_JSON: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// A compose store rooted at a directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens the store at `root`, creating it if the directory is missing or
    /// empty. An existing OCI layout is validated and gets compose's
    /// directories added.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let store = Store { root: root.into() };
        if store.root.join(LAYOUT_FILE).exists() {
            store.check_layout()?;
            if !store.index_path().exists() {
                write_atomic(&store.index_path(), &Index::default().to_json()?)?;
            }
        } else {
            store.check_empty_or_missing()?;
            store.init()?;
        }
        for dir in [store.blobs_dir(), store.cache_dir(), store.tmp_dir()] {
            mkdir_p(&dir)?;
        }
        restrict_dir(&store.root)?;
        Ok(store)
    }

    /// Opens an existing store without creating anything (read-only commands).
    pub fn open_existing(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let store = Store { root: root.into() };
        if !store.root.join(LAYOUT_FILE).is_file() {
            return Err(StoreError::NoStore { path: store.root });
        }
        store.check_layout()?;
        if !store.index_path().is_file() {
            return Err(StoreError::BadMetadata {
                path: store.index_path(),
                reason: "file is missing".into(),
            });
        }
        // Best effort: a read-only command may run as a user who cannot
        // change it (and who then cannot read it either, once restricted).
        let _ = restrict_dir(&store.root);
        Ok(store)
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A temp directory under `compose/tmp` (same file system as the blobs,
    /// so its contents can be renamed into place). Removed on drop.
    pub fn temp_dir(&self, prefix: &str) -> Result<tempfile::TempDir, StoreError> {
        let tmp = self.tmp_dir();
        mkdir_p(&tmp)?;
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&tmp)
            .at("creating temp directory in", tmp)
    }

    /// Where the blob with digest `d` lives (whether or not it exists).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.blobs_dir().join(d.hex())
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    pub(crate) fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    pub(crate) fn compose_dir(&self) -> PathBuf {
        self.root.join("compose")
    }

    pub(crate) fn cache_dir(&self) -> PathBuf {
        self.compose_dir().join("cache")
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.compose_dir().join("tmp")
    }

    fn check_layout(&self) -> Result<(), StoreError> {
        let path = self.root.join(LAYOUT_FILE);
        let bytes = std::fs::read(&path).at("reading", &path)?;
        let bad = |reason: String| StoreError::NotAStore {
            path: self.root.clone(),
            reason,
        };
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("{LAYOUT_FILE} is not JSON: {e}")))?;
        match v.get("imageLayoutVersion").and_then(|v| v.as_str()) {
            Some("1.0.0") => Ok(()),
            Some(other) => Err(bad(format!("unsupported imageLayoutVersion {other}"))),
            None => Err(bad(format!("{LAYOUT_FILE} has no imageLayoutVersion"))),
        }
    }

    fn check_empty_or_missing(&self) -> Result<(), StoreError> {
        match std::fs::read_dir(&self.root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(StoreError::NotAStore {
                path: self.root.clone(),
                reason: "not a directory".into(),
            }),
            Err(e) => Err(StoreError::io("listing", &self.root, e)),
            Ok(mut entries) => match entries.next() {
                None => Ok(()),
                Some(_) => Err(StoreError::NotAStore {
                    path: self.root.clone(),
                    reason: format!("directory is not empty and has no {LAYOUT_FILE} file"),
                }),
            },
        }
    }

    fn init(&self) -> Result<(), StoreError> {
        mkdir_p(&self.root)?;
        // oci-layout first: a crash before index.json is repaired by `open`.
        write_atomic(&self.root.join(LAYOUT_FILE), LAYOUT_JSON)?;
        write_atomic(&self.index_path(), &Index::default().to_json()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_layout() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let store = Store::open(&root).unwrap();
        assert_eq!(std::fs::read(root.join("oci-layout")).unwrap(), LAYOUT_JSON);
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(root.join("index.json")).unwrap()).unwrap();
        assert_eq!(index["schemaVersion"], 2);
        assert_eq!(index["manifests"], serde_json::json!([]));
        for sub in ["blobs/sha256", "compose/cache", "compose/tmp"] {
            assert!(root.join(sub).is_dir(), "{sub}");
        }
        // Reopening an existing store is fine, and read-only open works.
        Store::open(&root).unwrap();
        assert_eq!(Store::open_existing(&root).unwrap().root(), store.root());
    }

    #[test]
    fn store_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let store = Store::open(&root).unwrap();
        assert_eq!(mode(&root), 0o700);
        let blob = store.put_blob(b"a secret layer").unwrap();
        assert_eq!(mode(&store.blob_path(&blob)), 0o600);
        assert_eq!(mode(&root.join("index.json")), 0o600);
        // A store made by an older compose (0755) is tightened on open,
        // read-only or not; its content, digests included, is unchanged.
        for open in [
            |r: &Path| Store::open(r).map(drop),
            |r: &Path| Store::open_existing(r).map(drop),
        ] {
            std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
            open(&root).unwrap();
            assert_eq!(mode(&root), 0o700);
        }
        assert_eq!(store.read_blob(&blob).unwrap(), b"a secret layer");
    }

    #[test]
    fn open_rejects_foreign_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x"), b"").unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::NotAStore { .. }), "{err}");
        assert!(err.to_string().contains("not empty"));

        std::fs::write(
            dir.path().join("oci-layout"),
            b"{\"imageLayoutVersion\":\"9\"}",
        )
        .unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("unsupported imageLayoutVersion 9"),
            "{err}"
        );

        let file = dir.path().join("x");
        assert!(matches!(
            Store::open(&file),
            Err(StoreError::NotAStore { .. })
        ));
    }

    #[test]
    fn open_existing_does_not_create() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("nope");
        let err = Store::open_existing(&root).unwrap_err();
        assert!(matches!(err, StoreError::NoStore { .. }));
        assert!(err
            .to_string()
            .contains("run `compose build` first or pass --store"));
        assert!(!root.exists());
    }

    #[test]
    fn temp_dir_is_under_compose_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let t = store.temp_dir("rootfs-").unwrap();
        assert!(t.path().starts_with(dir.path().join("compose/tmp")));
    }
}
