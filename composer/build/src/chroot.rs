//! The chroot session: the only place in compose that mounts anything.
//!
//! A layer's commands run through a re-executed `compose __chroot` helper
//! that unshares mount, PID, UTS and IPC namespaces before it mounts
//! proc/sys/dev/devpts/run/tmp under the image root. Every mount lives in
//! that private namespace, so the kernel takes all of them down when the
//! helper exits — on success, on failure, on Ctrl-C and even on SIGKILL —
//! and a daemon a maintainer script forgot to stop dies with the PID
//! namespace. Nothing can leak onto the host's mount table.
//!
//! The parent side ([`ChrootCommand`]) prepares the root (policy-rc.d, a
//! resolv.conf mount point) and undoes that preparation afterwards.

use anyhow::{bail, Context, Result};
use std::ffi::{CString, OsString};
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The hidden subcommand name the helper runs under.
pub const HELPER_VERB: &str = "__chroot";

/// Keeps invoke-rc.d (and deb-systemd-invoke) from starting daemons.
const POLICY_RC_D: &str =
    "#!/bin/sh\n# written by compose for the build; removed afterwards\nexit 101\n";

/// A command to run inside an image root.
#[derive(Debug, Clone)]
pub struct ChrootCommand {
    pub root: PathBuf,
    /// Host directories bind-mounted read-only into the image's /run/compose/NAME.
    pub binds: Vec<(PathBuf, String)>,
    pub env: Vec<(String, String)>,
    /// Shell text run with `/bin/sh -e -c`.
    pub script: String,
    /// Where the combined stdout/stderr goes.
    pub log: PathBuf,
    /// Also copy the output to our stderr as it comes.
    pub verbose: bool,
}

impl ChrootCommand {
    /// Runs the command; on failure the error carries the log's tail.
    pub fn run(&self) -> Result<()> {
        let prep = Preparation::apply(&self.root)?;
        let result = self.spawn();
        let undo = prep.undo();
        result?;
        undo
    }

    fn spawn(&self) -> Result<()> {
        // /proc/self/exe, not current_exe(): it still names our own inode
        // when the binary on disk was replaced (upgraded, rebuilt) meanwhile.
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg(HELPER_VERB).arg(&self.root);
        for (host, name) in &self.binds {
            let mut arg = OsString::from("--bind=");
            arg.push(host.as_os_str());
            arg.push(":");
            arg.push(name);
            cmd.arg(arg);
        }
        for (k, v) in &self.env {
            cmd.arg(format!("--env={k}={v}"));
        }
        cmd.arg("--").arg(&self.script);
        let log = fs::File::create(&self.log)
            .with_context(|| format!("creating log {}", self.log.display()))?;
        cmd.stdin(Stdio::null());
        if self.verbose {
            cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
        } else {
            cmd.stdout(log.try_clone()?).stderr(log);
        }
        let status = cmd.status().context("starting the chroot helper")?;
        if !status.success() {
            let tail = log_tail(&self.log, 30);
            bail!(
                "command in the image failed ({status})\n--- last lines of {} ---\n{tail}",
                self.log.display()
            );
        }
        Ok(())
    }
}

/// The last `n` lines of a log file (best effort, for error messages).
pub fn log_tail(path: &Path, n: usize) -> String {
    let Ok(mut f) = fs::File::open(path) else {
        return String::from("(no log)");
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// What the parent changes in the root before a run, so it can undo it.
struct Preparation {
    policy: PathBuf,
    policy_existed: bool,
    resolv: PathBuf,
    resolv_created: bool,
}

impl Preparation {
    fn apply(root: &Path) -> Result<Self> {
        let sbin = root.join("usr/sbin");
        let policy = sbin.join("policy-rc.d");
        let policy_existed = policy.symlink_metadata().is_ok();
        if !policy_existed && sbin.is_dir() {
            fs::write(&policy, POLICY_RC_D)
                .with_context(|| format!("writing {}", policy.display()))?;
            fs::set_permissions(&policy, fs::Permissions::from_mode(0o755))?;
        }
        // The helper bind-mounts the host's resolv.conf over the image's so
        // apt can resolve the mirror; a bind needs an existing file.
        let resolv = root.join("etc/resolv.conf");
        let resolv_created = resolv.symlink_metadata().is_err() && root.join("etc").is_dir();
        if resolv_created {
            fs::write(&resolv, "").with_context(|| format!("creating {}", resolv.display()))?;
        }
        Ok(Preparation {
            policy,
            policy_existed,
            resolv,
            resolv_created,
        })
    }

    fn undo(self) -> Result<()> {
        if !self.policy_existed && self.policy.symlink_metadata().is_ok() {
            fs::remove_file(&self.policy)
                .with_context(|| format!("removing {}", self.policy.display()))?;
        }
        if self.resolv_created {
            let _ = fs::remove_file(&self.resolv);
        }
        Ok(())
    }
}

/// Arguments of the helper verb, parsed by hand: it runs before anything
/// else in a fresh process and must stay single-threaded until it forks.
#[derive(Debug, PartialEq)]
pub struct HelperArgs {
    pub root: PathBuf,
    pub binds: Vec<(PathBuf, String)>,
    pub env: Vec<(String, String)>,
    pub script: String,
}

pub fn parse_helper_args(args: &[OsString]) -> Result<HelperArgs> {
    let mut it = args.iter();
    let root = PathBuf::from(
        it.next()
            .context("usage: compose __chroot ROOT [--bind=H:N] [--env=K=V] -- SCRIPT")?,
    );
    let (mut binds, mut env) = (Vec::new(), Vec::new());
    for a in it.by_ref() {
        let s = a.to_str().context("helper arguments must be UTF-8")?;
        if s == "--" {
            break;
        } else if let Some(b) = s.strip_prefix("--bind=") {
            let (h, n) = b.rsplit_once(':').context("--bind wants HOST:NAME")?;
            binds.push((PathBuf::from(h), n.to_string()));
        } else if let Some(e) = s.strip_prefix("--env=") {
            let (k, v) = e.split_once('=').context("--env wants KEY=VALUE")?;
            env.push((k.to_string(), v.to_string()));
        } else {
            bail!("unknown helper argument {s}");
        }
    }
    let script = it
        .next()
        .and_then(|s| s.to_str())
        .context("missing script after --")?
        .to_string();
    Ok(HelperArgs {
        root,
        binds,
        env,
        script,
    })
}

/// Entry point of `compose __chroot`: never returns normally.
pub fn helper_main(args: &[OsString]) -> ! {
    let code = match parse_helper_args(args).and_then(|a| session::run(&a)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("compose chroot: {e:#}");
            125
        }
    };
    std::process::exit(code)
}

pub(crate) fn cstring(p: &Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).with_context(|| format!("NUL in path {}", p.display()))
}

mod session;
