//! compose-build: recipe to snapshot. [`plan`] resolves a validated recipe
//! against the host and computes cache keys; [`build`] runs the layers that
//! miss (through [`exec`], which uses the [`chroot`] session) and stores
//! each layer's changes as a blob; [`verify`] proves two builds agree.
//!
//! The chroot session re-executes the running binary with
//! [`chroot::HELPER_VERB`]: a binary linking this crate must call
//! [`chroot::helper_main`] first thing in `main` for that verb.

pub mod build;
pub mod cachekey;
pub mod chroot;
pub mod exec;
pub mod hostenv;
pub mod plan;
pub mod scrub;
pub mod verify;
