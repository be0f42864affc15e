//! SIGINT/SIGTERM as a flag. Long operations (boot-test's guests, exec's
//! ssh processes) poll it and unwind through their guards, so Ctrl-C never
//! leaves QEMU, a namespace or an ssh running behind us.

use anyhow::{Context, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

static FLAG: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(false)));

extern "C" fn on_signal(_: libc::c_int) {
    FLAG.store(true, Ordering::SeqCst);
}

/// Installs the handler for SIGINT and SIGTERM.
pub fn catch() -> Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    // Initialized here, so the handler only ever does an atomic store.
    LazyLock::force(&FLAG);
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic that already exists.
        unsafe { sigaction(sig, &action) }.context("installing a signal handler")?;
    }
    Ok(())
}

/// Whether SIGINT or SIGTERM arrived since `catch`.
pub fn interrupted() -> bool {
    FLAG.load(Ordering::SeqCst)
}

/// The flag itself, for code that takes one (compose-pshell's cancel).
pub fn flag() -> Arc<AtomicBool> {
    Arc::clone(&FLAG)
}
