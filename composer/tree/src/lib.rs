//! compose-tree: the one owner of the publish tree's on-disk layout and of
//! its lock.
//!
//! Every crate that reads or writes the publish tree (publish, cluster
//! regen, serve, the command line, boot-test) names its paths through
//! [`Layout`], never by joining strings of its own, and parses them back
//! (a TFTP path to its image and generation, an export to its snapshot)
//! through the inverse parsers here. Changes to the tree are made under
//! [`TreeLock`], the tree's only lock. The layout is pinned by a test
//! listing every path for a sample image, generation and MAC.
//!
//! It knows the store's digest types and compose-fs's lock, nothing else:
//! what goes into the files (generations, cluster sets, boot records) stays
//! with their owners.

mod layout;
mod lock;

pub use layout::{GenFile, Layout, MacEntry, GEN_PREFIX, PXELINUX_DIR};
pub use lock::TreeLock;
