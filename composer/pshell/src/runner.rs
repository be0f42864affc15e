//! The engine: one event loop on the caller's thread.
//!
//! Why not a thread per node (pdsh's way): the work is waiting, not
//! computing, and a single `poll(2)` over all pipes and pidfds waits for all
//! nodes at once with no thread start-up, no locks, and timeouts that are just
//! the poll deadline. This is ClusterShell's design, minus Python.
//!
//! A node is finished when ssh has been reaped *and* both its pipes reached
//! EOF (so no output is lost). A process ssh left behind that still holds a
//! pipe (rare: ssh hangs up its ProxyCommand on exit) gets [`LINGER`] before
//! compose stops reading. A process group is signalled only before its
//! leader is reaped: after that its pid could belong to someone else.

use crate::argv::ssh_args;
use crate::capture::{Capture, MAX_OUTPUT_BYTES};
use crate::{NodeResult, Options, Outcome, Target};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// After SIGTERM (timeout, cancel), how long ssh gets before SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(1);
/// After ssh exits, how long a leftover holder of its pipes may keep them.
const LINGER: Duration = Duration::from_secs(1);
/// How often the cancel flag is looked at (an AtomicBool cannot wake poll).
const CANCEL_TICK: Duration = Duration::from_millis(100);
/// How often to reap when the kernel has no pidfd_open (before Linux 5.3).
const REAP_TICK: Duration = Duration::from_millis(20);
/// One read per readable pipe per wakeup: a pipe holds 64 KiB by default, and
/// bounding the read keeps one flooding node from starving the others.
const READ_CHUNK: usize = 64 * 1024;

/// Runs `command` (one shell string, passed to ssh after `--`) on every
/// target; results in target order. `on_done` is called on the caller's
/// thread as each node finishes, exactly once per target.
pub fn run(
    targets: &[Target],
    command: &str,
    opts: &Options,
    mut on_done: impl FnMut(&NodeResult) + Send,
) -> Vec<NodeResult> {
    let mut results: Vec<Option<NodeResult>> = vec![None; targets.len()];
    let mut finish = |index: usize, result: NodeResult| {
        on_done(&result);
        results[index] = Some(result);
    };
    let fanout = opts.fanout.max(1);
    let mut running: Vec<Node> = Vec::new();
    let mut next = 0;
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let now = Instant::now();
        if cancelled(opts) {
            for node in &mut running {
                node.stop(Stop::Cancelled, now);
            }
            for (index, target) in targets.iter().enumerate().skip(next) {
                finish(index, never_started(target, Outcome::Cancelled));
            }
            next = targets.len();
        }
        while running.len() < fanout && next < targets.len() {
            let target = &targets[next];
            match Node::spawn(next, target, command, opts) {
                Ok(node) => running.push(node),
                Err(why) => finish(next, never_started(target, Outcome::SpawnFailed(why))),
            }
            next += 1;
        }
        // The spawn loop only stops early when `running` is full, so an
        // empty `running` here means every target has been dealt with.
        if running.is_empty() {
            break;
        }
        for node in &mut running {
            node.tick(now);
        }
        wait(&mut running, opts, &mut buf);
        let now = Instant::now();
        let mut i = 0;
        while i < running.len() {
            if running[i].finished() {
                let node = running.swap_remove(i);
                let name = targets[node.index].name.clone();
                finish(node.index, node.into_result(name, now));
            } else {
                i += 1;
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.expect("every target gets a result before the loop ends"))
        .collect()
}

fn cancelled(opts: &Options) -> bool {
    opts.cancel
        .as_ref()
        .is_some_and(|c| c.load(Ordering::SeqCst))
}

fn never_started(target: &Target, outcome: Outcome) -> NodeResult {
    NodeResult {
        name: target.name.clone(),
        outcome,
        stdout: Vec::new(),
        stderr: Vec::new(),
        elapsed: Duration::ZERO,
    }
}

#[derive(Debug, Clone, Copy)]
enum Stop {
    TimedOut,
    Cancelled,
}

#[derive(Debug)]
struct Stopping {
    why: Stop,
    kill_at: Instant,
    killed: bool,
}

/// One running ssh.
struct Node {
    index: usize,
    child: Child,
    stdout: Option<File>,
    stderr: Option<File>,
    out: Capture,
    err: Capture,
    /// Readable once the process exits; None when the kernel lacks pidfds
    /// (then reaping is polled every REAP_TICK).
    pidfd: Option<OwnedFd>,
    status: Option<ExitStatus>,
    /// try_wait failed: the reason (reported as SpawnFailed).
    lost: Option<String>,
    started: Instant,
    deadline: Option<Instant>,
    exited: Option<Instant>,
    stopping: Option<Stopping>,
}

impl Node {
    fn spawn(index: usize, target: &Target, command: &str, opts: &Options) -> Result<Node, String> {
        let args = ssh_args(target, command, opts).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&opts.ssh);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let parent = std::process::id();
        // SAFETY: the closure runs between fork and exec and only makes
        // async-signal-safe system calls (setsid, prctl, getppid), allocating
        // nothing.
        unsafe {
            cmd.pre_exec(move || {
                // Its own session, like pdsh does: (1) its own process group,
                // so a timeout kills ssh and all it spawned; (2) no
                // controlling terminal, so ssh can never stop on a password
                // prompt (SIGTTIN) instead of failing; (3) with the kernel's
                // autogroup scheduling, each ssh is weighed like a session of
                // its own against the rest of a busy head node, not all of
                // them as one (32 nodes on a loaded 2-core box: 6.3 s in the
                // caller's session, 2.2 s like this; pdsh 2.3 s).
                nix::unistd::setsid()?;
                // If compose dies (the forking thread, in fact: the one
                // running this loop until every ssh is reaped), so does ssh.
                nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)?;
                if nix::unistd::getppid().as_raw() as u32 != parent {
                    return Err(io::Error::other("compose exited before ssh started"));
                }
                Ok(())
            });
        }
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", opts.ssh.display()))?;
        let stdout = child.stdout.take().map(|p| nonblocking(p.into()));
        let stderr = child.stderr.take().map(|p| nonblocking(p.into()));
        let pidfd = pidfd_open(child.id());
        Ok(Node {
            index,
            child,
            stdout,
            stderr,
            out: Capture::new(MAX_OUTPUT_BYTES),
            err: Capture::new(MAX_OUTPUT_BYTES),
            pidfd,
            status: None,
            lost: None,
            started,
            deadline: opts.timeout.map(|t| started + t),
            exited: None,
            stopping: None,
        })
    }

    fn alive(&self) -> bool {
        self.status.is_none() && self.lost.is_none()
    }

    fn finished(&self) -> bool {
        !self.alive() && self.stdout.is_none() && self.stderr.is_none()
    }

    fn signal(&self, sig: Signal) {
        // setsid made ssh the leader of a new group with its pid as the id.
        // Only while unreaped: the group id is our child's pid, still ours.
        // ESRCH (the group is already gone) is fine.
        if self.alive() {
            let _ = killpg(Pid::from_raw(self.child.id() as i32), sig);
        }
    }

    fn stop(&mut self, why: Stop, now: Instant) {
        if !self.alive() {
            // ssh is gone; only a leftover pipe holder keeps us: stop reading.
            self.stdout = None;
            self.stderr = None;
        } else if self.stopping.is_none() {
            self.signal(Signal::SIGTERM);
            self.stopping = Some(Stopping {
                why,
                kill_at: now + KILL_GRACE,
                killed: false,
            });
        }
    }

    /// Acts on the deadlines that have passed.
    fn tick(&mut self, now: Instant) {
        if self.deadline.is_some_and(|d| d <= now) {
            self.stop(Stop::TimedOut, now);
        }
        if self
            .stopping
            .as_ref()
            .is_some_and(|s| !s.killed && s.kill_at <= now)
        {
            self.signal(Signal::SIGKILL);
            if let Some(s) = &mut self.stopping {
                s.killed = true;
            }
        }
        if self.exited.is_some_and(|t| t + LINGER <= now) {
            self.stdout = None;
            self.stderr = None;
        }
    }

    /// The next instant `tick` has something to do, if any.
    fn next_deadline(&self) -> Option<Instant> {
        if !self.alive() {
            return self.exited.map(|t| t + LINGER);
        }
        match &self.stopping {
            Some(s) if !s.killed => Some(s.kill_at),
            Some(_) => None,
            None => self.deadline,
        }
    }

    fn reap(&mut self, now: Instant) {
        if !self.alive() {
            return;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.status = Some(status);
                self.exited = Some(now);
                self.pidfd = None;
            }
            Ok(None) => {}
            Err(e) => {
                self.lost = Some(format!("waiting for ssh: {e}"));
                self.exited = Some(now);
                self.pidfd = None;
            }
        }
    }

    fn into_result(self, name: String, now: Instant) -> NodeResult {
        let outcome = match (&self.stopping, &self.lost, self.status) {
            (Some(s), _, _) => match s.why {
                Stop::TimedOut => Outcome::TimedOut,
                Stop::Cancelled => Outcome::Cancelled,
            },
            (None, Some(why), _) => Outcome::SpawnFailed(why.clone()),
            (None, None, Some(st)) => match (st.code(), st.signal()) {
                (Some(code), _) => Outcome::Exited(code),
                (None, Some(sig)) => Outcome::Signaled(sig),
                (None, None) => Outcome::Signaled(0),
            },
            (None, None, None) => unreachable!("into_result on a running node"),
        };
        NodeResult {
            name,
            outcome,
            stdout: self.out.finish(),
            stderr: self.err.finish(),
            elapsed: self.exited.unwrap_or(now) - self.started,
        }
    }
}

#[derive(Clone, Copy)]
enum Fd {
    Stdout,
    Stderr,
    Pid,
}

/// Sleeps until a pipe is readable, a process exits, or the next deadline;
/// then reads what is there and reaps what has exited.
fn wait(running: &mut [Node], opts: &Options, buf: &mut [u8]) {
    let now = Instant::now();
    let mut wake = running.iter().filter_map(Node::next_deadline).min();
    let mut tick = |d: Duration| wake = Some(wake.map_or(now + d, |w| w.min(now + d)));
    if opts.cancel.is_some() {
        tick(CANCEL_TICK);
    }
    if running.iter().any(|n| n.alive() && n.pidfd.is_none()) {
        tick(REAP_TICK);
    }
    let mut ready: Vec<(usize, Fd)> = Vec::new();
    {
        let mut fds = Vec::with_capacity(running.len() * 3);
        let mut which = Vec::with_capacity(running.len() * 3);
        for (i, node) in running.iter().enumerate() {
            let entries = [
                (Fd::Stdout, node.stdout.as_ref().map(|f| f.as_fd())),
                (Fd::Stderr, node.stderr.as_ref().map(|f| f.as_fd())),
                (Fd::Pid, node.pidfd.as_ref().map(|f| f.as_fd())),
            ];
            for (kind, fd) in entries {
                if let Some(fd) = fd {
                    fds.push(PollFd::new(fd, PollFlags::POLLIN));
                    which.push((i, kind));
                }
            }
        }
        // EINTR (a signal for the host program) just means: look again.
        if poll(&mut fds, poll_timeout(wake, now)).is_ok() {
            for (fd, &w) in fds.iter().zip(&which) {
                if fd.revents().is_some_and(|r| !r.is_empty()) {
                    ready.push(w);
                }
            }
        }
    }
    let now = Instant::now();
    for (i, kind) in ready {
        let node = &mut running[i];
        match kind {
            Fd::Stdout => read_some(&mut node.stdout, &mut node.out, buf),
            Fd::Stderr => read_some(&mut node.stderr, &mut node.err, buf),
            Fd::Pid => {
                node.reap(now);
                // A pidfd readable with nothing to reap would spin: fall
                // back to the tick for this node.
                node.pidfd = None;
            }
        }
    }
    for node in running.iter_mut().filter(|n| n.pidfd.is_none()) {
        node.reap(now);
    }
}

/// Milliseconds until `wake`, rounded up so that poll never returns just
/// before a deadline (which would spin until it passes); None blocks.
fn poll_timeout(wake: Option<Instant>, now: Instant) -> PollTimeout {
    let Some(wake) = wake else {
        return PollTimeout::NONE;
    };
    let d = wake.saturating_duration_since(now);
    let ms = d.as_micros().div_ceil(1000).min(3_600_000) as u32;
    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
}

fn read_some(pipe: &mut Option<File>, capture: &mut Capture, buf: &mut [u8]) {
    let Some(file) = pipe else { return };
    match file.read(buf) {
        Ok(0) => *pipe = None,
        Ok(n) => capture.push(&buf[..n]),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) => {}
        // EIO and the like: nothing more will come from this pipe.
        Err(_) => *pipe = None,
    }
}

fn nonblocking(fd: OwnedFd) -> File {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    // Without O_NONBLOCK a spurious wakeup would block the whole loop in
    // read(); failing to set it is not expected on a fresh pipe.
    if let Ok(flags) = fcntl(&fd, FcntlArg::F_GETFL) {
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        let _ = fcntl(&fd, FcntlArg::F_SETFL(flags));
    }
    File::from(fd)
}

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1;
    // on success the fd is ours alone, so OwnedFd may own it.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    fn targets(n: usize) -> Vec<Target> {
        (1..=n).map(|i| Target::named(format!("n{i:02}"))).collect()
    }

    fn missing_ssh() -> Options {
        Options {
            ssh: "/nonexistent/compose-pshell-test/ssh".into(),
            ..Options::default()
        }
    }

    #[test]
    fn missing_ssh_is_spawn_failed_for_every_node_in_order() {
        let mut seen = Vec::new();
        let results = run(&targets(3), "true", &missing_ssh(), |r| {
            seen.push(r.name.clone())
        });
        assert_eq!(seen, ["n01", "n02", "n03"]);
        let names: Vec<_> = results.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["n01", "n02", "n03"]);
        for r in &results {
            match &r.outcome {
                Outcome::SpawnFailed(why) => {
                    assert!(
                        why.contains("/nonexistent/compose-pshell-test/ssh"),
                        "{why}"
                    )
                }
                other => panic!("{}: {other:?}", r.name),
            }
        }
    }

    #[test]
    fn bad_target_fails_alone_with_the_reason() {
        let mut ts = targets(2);
        ts[1].host = "-oProxyCommand=x".into();
        let results = run(&ts, "true", &missing_ssh(), |_| {});
        match &results[1].outcome {
            Outcome::SpawnFailed(why) => assert!(why.contains("starts with '-'"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(&results[0].outcome, Outcome::SpawnFailed(w) if w.contains("cannot run")));
    }

    #[test]
    fn cancel_set_before_the_run_starts_nothing() {
        let opts = Options {
            cancel: Some(Arc::new(AtomicBool::new(true))),
            ..missing_ssh()
        };
        let mut calls = 0;
        let results = run(&targets(4), "true", &opts, |_| calls += 1);
        assert_eq!(calls, 4);
        assert!(results.iter().all(|r| r.outcome == Outcome::Cancelled));
    }

    #[test]
    fn no_targets_no_results() {
        assert!(run(&[], "true", &Options::default(), |_| {}).is_empty());
    }

    #[test]
    fn poll_timeout_rounds_up_and_never_spins() {
        let now = Instant::now();
        assert_eq!(poll_timeout(None, now), PollTimeout::NONE);
        let t = |d| i32::from(poll_timeout(Some(now + d), now));
        assert_eq!(t(Duration::ZERO), 0);
        assert_eq!(t(Duration::from_micros(1)), 1);
        assert_eq!(t(Duration::from_micros(1500)), 2);
        assert_eq!(t(Duration::from_secs(3)), 3000);
        assert_eq!(t(Duration::from_secs(1 << 40)), 3_600_000);
        assert_eq!(
            i32::from(poll_timeout(Some(now), now + Duration::from_secs(1))),
            0
        );
    }
}
