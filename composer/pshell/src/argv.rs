//! The ssh command line for one target: pure, so the exact argv is tested.

use crate::{Options, Target};
use thiserror::Error;

/// Why no ssh command line could be built for a target.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ArgvError {
    #[error("node {name}: empty host name: give the node a host (or an ssh config alias)")]
    EmptyHost { name: String },
    #[error("node {name}: host {host:?} starts with '-': ssh would read it as an option")]
    HostLooksLikeOption { name: String, host: String },
    #[error("node {name}: user {user:?} is empty or starts with '-'")]
    BadUser { name: String, user: String },
    #[error("empty command: give the command to run after `--`")]
    EmptyCommand,
}

/// The arguments given to `opts.ssh` to run `command` on `target`:
///
/// ```text
/// ssh [-o Port=P] [-o User=U] SSH_OPTIONS... -n -T -a -x
///     [-o BatchMode=yes] [-o ConnectTimeout=S] -- HOST COMMAND
/// ```
///
/// ssh keeps the first value it sees for an `-o` option, so the order is the
/// precedence: the node's own port and user, then the caller's options, then
/// compose's defaults (all of them above the ssh config files). Port and user
/// are passed as `-o` so they follow that rule too (`-p` would not). `-n`
/// (stdin from /dev/null), `-T` (no tty), `-a -x` (no agent or X11
/// forwarding, like pdsh and clush) keep each connection cheap and
/// non-interactive. `--` ends ssh's options, so neither the host nor the
/// command can be taken for one; COMMAND stays one argument, which ssh hands
/// to the remote shell unchanged.
pub fn ssh_args(target: &Target, command: &str, opts: &Options) -> Result<Vec<String>, ArgvError> {
    let name = || target.name.clone();
    if target.host.is_empty() {
        return Err(ArgvError::EmptyHost { name: name() });
    }
    if target.host.starts_with('-') {
        return Err(ArgvError::HostLooksLikeOption {
            name: name(),
            host: target.host.clone(),
        });
    }
    if command.trim().is_empty() {
        return Err(ArgvError::EmptyCommand);
    }
    let mut args = Vec::with_capacity(opts.ssh_options.len() + 16);
    if let Some(port) = target.port {
        args.extend(["-o".to_string(), format!("Port={port}")]);
    }
    if let Some(user) = &target.user {
        if user.is_empty() || user.starts_with('-') {
            return Err(ArgvError::BadUser {
                name: name(),
                user: user.clone(),
            });
        }
        args.extend(["-o".to_string(), format!("User={user}")]);
    }
    args.extend(opts.ssh_options.iter().cloned());
    args.extend(["-n", "-T", "-a", "-x"].map(String::from));
    if opts.batch_mode {
        args.extend(["-o".to_string(), "BatchMode=yes".to_string()]);
    }
    if !opts.connect_timeout.is_zero() {
        // Whole seconds, rounded up: 500 ms must not become "0" (no timeout).
        let secs = opts.connect_timeout.as_millis().div_ceil(1000);
        args.extend(["-o".to_string(), format!("ConnectTimeout={secs}")]);
    }
    args.extend(["--".to_string(), target.host.clone(), command.to_string()]);
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn args(target: &Target, command: &str, opts: &Options) -> Vec<String> {
        ssh_args(target, command, opts).unwrap()
    }

    #[test]
    fn default_argv_is_exact() {
        assert_eq!(
            args(
                &Target::named("n01"),
                "hostname; echo x",
                &Options::default()
            ),
            [
                "-n",
                "-T",
                "-a",
                "-x",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
                "--",
                "n01",
                "hostname; echo x"
            ]
        );
    }

    #[test]
    fn node_port_and_user_come_first_then_caller_options() {
        let target = Target {
            name: "n01".into(),
            host: "10.0.0.1".into(),
            port: Some(2222),
            user: Some("admin".into()),
        };
        let opts = Options {
            ssh_options: vec![
                "-F".into(),
                "/tmp/cfg".into(),
                "-o".into(),
                "BatchMode=no".into(),
            ],
            batch_mode: false,
            connect_timeout: Duration::from_millis(1500),
            ..Options::default()
        };
        assert_eq!(
            args(&target, "true", &opts),
            [
                "-o",
                "Port=2222",
                "-o",
                "User=admin",
                "-F",
                "/tmp/cfg",
                "-o",
                "BatchMode=no",
                "-n",
                "-T",
                "-a",
                "-x",
                "-o",
                "ConnectTimeout=2",
                "--",
                "10.0.0.1",
                "true"
            ]
        );
    }

    #[test]
    fn zero_connect_timeout_leaves_ssh_default() {
        let opts = Options {
            connect_timeout: Duration::ZERO,
            ..Options::default()
        };
        let a = args(&Target::named("n01"), "true", &opts);
        assert!(!a.iter().any(|s| s.starts_with("ConnectTimeout")), "{a:?}");
        let opts = Options {
            connect_timeout: Duration::from_millis(1),
            ..Options::default()
        };
        let a = args(&Target::named("n01"), "true", &opts);
        assert!(a.contains(&"ConnectTimeout=1".to_string()), "{a:?}");
    }

    #[test]
    fn command_with_leading_dash_stays_the_command() {
        let a = args(&Target::named("n01"), "-v", &Options::default());
        assert_eq!(a[a.len() - 3..], ["--", "n01", "-v"]);
    }

    #[test]
    fn bad_targets_and_commands_are_refused() {
        let opts = Options::default();
        let mut t = Target::named("n01");
        t.host = "-oProxyCommand=sh".into();
        assert!(matches!(
            ssh_args(&t, "true", &opts),
            Err(ArgvError::HostLooksLikeOption { .. })
        ));
        t.host = String::new();
        assert_eq!(
            ssh_args(&t, "true", &opts),
            Err(ArgvError::EmptyHost { name: "n01".into() })
        );
        let mut t = Target::named("n01");
        t.user = Some("-l".into());
        assert!(matches!(
            ssh_args(&t, "true", &opts),
            Err(ArgvError::BadUser { .. })
        ));
        assert_eq!(
            ssh_args(&Target::named("n01"), "  ", &opts),
            Err(ArgvError::EmptyCommand)
        );
    }
}
