//! The store's error type: one enum whose variants callers branch on.
//!
//! Every message names the path or reference involved and says what to do.

use std::path::PathBuf;

use crate::digest::Digest;

/// A digest string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid digest `{input}`: {reason}; expected the form sha256:<64 lowercase hex digits>")]
pub struct ParseDigestError {
    /// What was given.
    pub input: String,
    /// Why it was rejected.
    pub reason: &'static str,
}

/// Errors from the store, layer writer and layer applier.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory exists but is not a compose store (or OCI layout).
    #[error("{path} is not a compose store ({reason}): pass a store created by `compose build`, or a new or empty directory")]
    NotAStore { path: PathBuf, reason: String },

    /// A read-only command was pointed at a directory holding no store.
    #[error("no store at {path}: run `compose build` first or pass --store")]
    NoStore { path: PathBuf },

    /// Another process holds the store lock (only from `try_lock`).
    #[error("store {path} is locked by another compose process{holder}: wait for it to finish, or stop it")]
    Locked { path: PathBuf, holder: String },

    /// A blob's content does not match its digest, or cannot be parsed.
    #[error("blob {digest} is corrupt ({path}): {reason}; delete the file and rebuild")]
    Corrupt {
        digest: Digest,
        path: PathBuf,
        reason: String,
    },

    /// A referenced blob is not in the store.
    #[error(
        "blob {digest} is missing from the store ({path}): rebuild the snapshot that needs it"
    )]
    MissingBlob { digest: Digest, path: PathBuf },

    /// A store metadata file (index.json, oci-layout, cache entry) cannot be parsed.
    #[error("{path} is damaged: {reason}; restore it or delete it and rebuild")]
    BadMetadata { path: PathBuf, reason: String },

    /// No snapshot matches a reference.
    #[error(
        "no snapshot matches `{reference}`; known images: {}",
        known_list(known)
    )]
    NotFound {
        reference: String,
        known: Vec<String>,
    },

    /// A digest prefix matches several snapshots.
    #[error("`{reference}` is ambiguous, it matches {}: give more digits", candidates.join(", "))]
    Ambiguous {
        reference: String,
        candidates: Vec<String>,
    },

    /// An image name is not acceptable.
    #[error("invalid image name `{name}`: {reason}; use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit")]
    InvalidName { name: String, reason: String },

    /// A digest string does not parse.
    #[error(transparent)]
    InvalidDigest(#[from] ParseDigestError),

    /// A snapshot spec or layer option is unusable.
    #[error("invalid snapshot spec: {reason}")]
    InvalidSpec { reason: String },

    /// A layer entry would escape the extraction root.
    #[error(
        "unsafe layer entry `{entry}`: {reason}; the layer was not trusted and extraction stopped"
    )]
    UnsafePath { entry: String, reason: String },

    /// A layer tar is malformed or uses something unsupported.
    #[error("bad layer entry `{entry}`: {reason}")]
    BadTar { entry: String, reason: String },

    /// An operation needs root privileges.
    #[error("{op} for `{entry}` needs root: run compose as root")]
    NeedsRoot { entry: String, op: String },

    /// A file system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "none (the store is empty: run `compose build`)".to_string()
    } else {
        known.join(", ")
    }
}

impl StoreError {
    /// Wraps an io error with the operation and path.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// compose-fs errors already carry op and path: the same `Io` variant.
impl From<compose_fs::Error> for StoreError {
    fn from(e: compose_fs::Error) -> Self {
        StoreError::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        }
    }
}

/// Adds `.at(op, path)` to io results.
pub(crate) trait IoContext<T> {
    fn at(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T, StoreError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::io(op, path, e))
    }
}

impl<T> IoContext<T> for nix::Result<T> {
    fn at(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::io(op, path, std::io::Error::from(e)))
    }
}
