//! compose: turn a short recipe into network-booted, diskless Debian
//! cluster nodes. The `compose` binary is a thin command line; the work is
//! in compose-build (plan, cache keys, layers, chroot), compose-publish
//! (generations) and compose-serve (the servers), and in this library for
//! what only the command line uses: [`diff`] (compose diff), [`boottest`]
//! (compose boot-test) and [`interrupt`] (Ctrl-C for boot-test and exec).
//! See ARCHITECTURE.md at the repository root.

pub mod boottest;
pub mod diff;
pub mod interrupt;
/// The node inventory lives in compose-cluster; re-exported for the CLI.
pub use compose_cluster::inventory;
