//! Fault injection for crash tests, the same convention as compose-store's
//! (`COMPOSE_FAULT=cluster:before-switch`, several comma-separated): the
//! process aborts at the named point, with no unwinding and no cleanup, the
//! nearest a test gets to a power cut. Kept as a copy rather than a
//! dependency because this crate knows nothing of the store.

use std::sync::OnceLock;

static ARMED: OnceLock<Vec<String>> = OnceLock::new();

/// Aborts the process if `COMPOSE_FAULT` names `name`; otherwise does nothing.
pub fn point(name: &str) {
    let armed = ARMED.get_or_init(|| {
        std::env::var("COMPOSE_FAULT")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()
    });
    if armed.iter().any(|p| p == name) {
        std::process::abort();
    }
}
