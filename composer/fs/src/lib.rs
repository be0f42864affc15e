//! compose-fs: the crash-safe filesystem primitives every part of compose
//! that writes durable state shares (the store, the cluster files, the
//! publish tree).
//!
//! Named for the concept, not for a grab bag: everything here is "change the
//! filesystem so a crash leaves the old state or the new one, and say where it
//! failed". That is atomic file and symlink replacement ([`replace_file`],
//! [`replace_symlink`]), making changes durable ([`sync_dir`],
//! [`sync_filesystem`]), excluding other writers ([`lock`]), crashing on
//! purpose at named points for the crash tests ([`fault`]), and an error that
//! always names the operation and the path ([`Error`]). It knows nothing of
//! the store, the cluster or the publish tree; anything specific to one of
//! them (file modes, temp naming a reader skips) stays with its owner.

mod atomic;
mod error;
pub mod fault;
pub mod lock;

pub use atomic::{
    create_dir, create_file, parent_dir, replace_file, replace_symlink, sync_dir, sync_filesystem,
};
pub use error::{Error, IoContext};
