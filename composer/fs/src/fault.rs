//! Fault injection for crash tests: with `COMPOSE_FAULT=gc:after-index`, the
//! process aborts (no unwinding, no cleanup: as close to a power cut as a
//! test gets) when it reaches [`point`]`("gc:after-index")`. Several points
//! may be armed, comma-separated. The point names belong to their callers
//! (`gc:*` the store, `cluster:*` regen, `publish:*`/`rollback:*` publish);
//! the crash tests set the variable on the process they kill.

use std::sync::OnceLock;

/// The environment variable naming the armed points.
pub const ENV: &str = "COMPOSE_FAULT";

/// The armed points, read from the environment once: an unarmed point costs
/// one atomic load.
static ARMED: OnceLock<Vec<String>> = OnceLock::new();

/// Aborts the process if `COMPOSE_FAULT` names `name`; otherwise does nothing.
pub fn point(name: &str) {
    let armed = ARMED.get_or_init(|| parse(&std::env::var(ENV).unwrap_or_default()));
    if armed.iter().any(|p| p == name) {
        std::process::abort();
    }
}

fn parse(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comma_separated_points() {
        assert_eq!(
            parse(" gc:after-index, cluster:mid-write ,,"),
            ["gc:after-index", "cluster:mid-write"]
        );
        assert!(parse("").is_empty());
    }

    #[test]
    fn an_unarmed_point_does_nothing() {
        point("compose-fs:never-armed");
    }
}
