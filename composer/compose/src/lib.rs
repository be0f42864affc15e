//! compose: turn a short recipe into network-booted, diskless Debian
//! cluster nodes. This library does the work; the `compose` binary is a
//! thin command line over it (see ARCHITECTURE.md at the repository root).
//!
//! The build pipeline: [`plan`] resolves a validated recipe against the
//! host and computes cache keys; [`build`] runs the layers that miss
//! (through [`exec`], which uses the [`chroot`] session) and stores each
//! layer's changes as a blob; [`verify`] proves two builds agree.

pub mod boottest;
pub mod build;
pub mod cachekey;
pub mod chroot;
pub mod diff;
pub mod exec;
pub mod hostenv;
pub mod interrupt;
/// The node inventory lives in compose-cluster; re-exported for the CLI.
pub use compose_cluster::inventory;
pub mod plan;
pub mod publish;
pub mod scrub;
pub mod serve;
pub mod verify;
