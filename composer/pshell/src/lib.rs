//! compose-pshell: the parallel shell behind `compose exec`.
//!
//! Runs one shell command over the system OpenSSH client on many nodes at
//! once, like `pdsh -R ssh` or ClusterShell's `clush`: at most `fanout` ssh
//! processes at a time, a per-node timeout, output captured per node (capped),
//! and helpers to fold nodes with identical output.
//!
//! Design, in short (see `runner.rs` for the details):
//! - one event loop on the caller's thread, `poll(2)` over every running
//!   ssh's stdout, stderr and pidfd: no thread per node, no busy loop, and
//!   both pipes are drained concurrently so a chatty node never deadlocks;
//! - each ssh runs in its own session (like pdsh), hence its own process
//!   group, so a timeout or a cancel kills ssh and whatever it spawned
//!   (ProxyCommand...): SIGTERM, then SIGKILL after [`KILL_GRACE`];
//! - ssh gets `PR_SET_PDEATHSIG`, so if compose itself dies no ssh is left
//!   running on its own;
//! - the library never prints: `on_done` hands each result to the caller.
//!
//! Because ssh has no controlling terminal it can never prompt: keep
//! `batch_mode` on (the default) and use keys or an agent.
//! A CLI should set [`Options::cancel`] from its SIGINT handler, since Ctrl-C
//! on the terminal does not reach the ssh processes.

mod argv;
mod capture;
mod group;
mod runner;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

pub use argv::{ssh_args, ArgvError};
pub use capture::MAX_OUTPUT_BYTES;
pub use group::{group_by_output, Group, Stream};
pub use runner::{run, KILL_GRACE};

/// One node to run on. `host` is what ssh connects to (a name from the
/// user's ssh config works too); `name` is what results are reported under.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub host: String,
    /// Overrides the ssh config's Port for this node.
    pub port: Option<u16>,
    /// Overrides the ssh config's User for this node.
    pub user: Option<String>,
}

impl Target {
    /// A target reached by its own name, with the ssh config's port and user.
    pub fn named(name: impl Into<String>) -> Self {
        let name = name.into();
        Target {
            host: name.clone(),
            name,
            port: None,
            user: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// At most this many ssh processes at once (0 is taken as 1).
    pub fanout: usize,
    /// Per node, from its ssh start; None = no limit.
    pub timeout: Option<Duration>,
    /// `ssh -o ConnectTimeout` (whole seconds, rounded up); zero = ssh's default.
    pub connect_timeout: Duration,
    /// The ssh client to run.
    pub ssh: PathBuf,
    /// Extra arguments given to ssh before the host, e.g. `["-F", "cfg"]`.
    /// They come before compose's own defaults, so a `-o Key=Value` here wins
    /// over them (ssh keeps the first value it sees for an option).
    pub ssh_options: Vec<String>,
    /// `-o BatchMode=yes`: never prompt for a password or a host key.
    pub batch_mode: bool,
    /// When set to true: kill running ssh processes, start no new ones, and
    /// report every unfinished node as [`Outcome::Cancelled`].
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fanout: 64,
            timeout: None,
            connect_timeout: Duration::from_secs(10),
            ssh: PathBuf::from("ssh"),
            ssh_options: Vec::new(),
            batch_mode: true,
            cancel: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// ssh exited with this code: the remote command's exit status, or 255
    /// when ssh itself failed (see [`NodeResult::ssh_failed`]).
    Exited(i32),
    /// The local ssh process was killed by this signal (not by compose).
    Signaled(i32),
    /// Still running when the timeout expired; ssh was killed.
    TimedOut,
    /// Not started, or killed, because the cancel flag was set.
    Cancelled,
    /// ssh could not be started (missing binary, bad target): the reason.
    SpawnFailed(String),
}

#[derive(Debug, Clone)]
pub struct NodeResult {
    pub name: String,
    pub outcome: Outcome,
    /// Captured output, at most [`MAX_OUTPUT_BYTES`] plus a truncation marker.
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// From the ssh start to its exit (zero when never started).
    pub elapsed: Duration,
}

impl NodeResult {
    /// ssh itself failed: connection refused or timed out, authentication,
    /// host key. ssh reports all of these as exit status 255, which a remote
    /// command exiting 255 cannot be told apart from.
    pub fn ssh_failed(&self) -> bool {
        self.outcome == Outcome::Exited(255)
    }

    /// The command ran and exited 0.
    pub fn ok(&self) -> bool {
        self.outcome == Outcome::Exited(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(outcome: Outcome) -> NodeResult {
        NodeResult {
            name: "n01".into(),
            outcome,
            stdout: vec![],
            stderr: vec![],
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn ok_and_ssh_failed_follow_the_exit_status() {
        let cases = [
            (Outcome::Exited(0), true, false),
            (Outcome::Exited(3), false, false),
            (Outcome::Exited(255), false, true),
            (Outcome::Signaled(9), false, false),
            (Outcome::TimedOut, false, false),
            (Outcome::Cancelled, false, false),
            (Outcome::SpawnFailed("x".into()), false, false),
        ];
        for (outcome, ok, ssh_failed) in cases {
            let r = result(outcome.clone());
            assert_eq!((r.ok(), r.ssh_failed()), (ok, ssh_failed), "{outcome:?}");
        }
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let o = Options::default();
        assert_eq!(o.fanout, 64);
        assert_eq!(o.timeout, None);
        assert_eq!(o.connect_timeout, Duration::from_secs(10));
        assert_eq!(o.ssh, PathBuf::from("ssh"));
        assert!(o.batch_mode);
        assert!(o.ssh_options.is_empty() && o.cancel.is_none());
    }
}
