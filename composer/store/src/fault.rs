//! Fault injection for crash tests: with `COMPOSE_FAULT=gc:after-index`, the
//! process aborts (no unwinding, no cleanup: as close to a power cut as a
//! test gets) when it reaches [`point`]`("gc:after-index")`. Several points
//! may be armed, comma-separated.

use std::sync::OnceLock;

/// The armed points, read from the environment once: an unarmed point costs
/// one atomic load.
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
