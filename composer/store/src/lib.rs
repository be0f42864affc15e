//! compose's content-addressed store: an OCI image layout holding layer
//! blobs, snapshot manifests and a build cache, plus the tools to make layers
//! from a root file system (scan, diff, deterministic tar) and to extract
//! them again safely.
//!
//! The library never prints; every error names the path involved and says
//! what to do.

mod blob;
mod cache;
mod digest;
mod error;
mod fsck;
mod fsutil;
mod gc;
mod imageroot;
mod index;
mod layer_apply;
mod layer_diff;
mod layer_write;
mod layout;
mod lock;
mod safefs;
mod scan;
mod snapshot;
mod tarfmt;
mod tarread;

pub use blob::BlobWriter;
pub use cache::CachedLayer;
pub use digest::{CacheKey, Digest, Hasher, LayerDigest, SnapshotId};
pub use error::{ParseDigestError, StoreError};
pub use fsck::{FsckProblem, FsckReport};
pub use gc::{GcPolicy, GcReport, RemovedSnapshot};
pub use imageroot::ImageRoot;
pub use index::{validate_image_name, SnapshotInfo};
pub use layer_apply::{apply_layer, ApplyStats};
pub use layer_diff::{diff_layers, PathDiff};
pub use layer_write::{write_layer, LayerOptions, LayerStats, Selection};
pub use layout::Store;
pub use lock::StoreLock;
pub use scan::{changes, scan, ChangeSet, EntryKind, ScanEntry, TreeScan};
pub use snapshot::{oci_architecture, LayerEntry, SnapshotSpec};
pub use tarread::{read_headers, Member as TarMember};

#[cfg(test)]
mod testutil;
