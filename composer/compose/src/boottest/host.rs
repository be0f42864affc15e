//! Host plumbing for boot-test: signals, child processes that die with us
//! and are stopped on drop, and the network namespace with its bridge and
//! taps, deleted on drop.

use super::SERVER_IP;
use anyhow::{bail, Context, Result};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Children die with us, even if we are SIGKILLed (the flag survives the
/// exec of `ip netns exec` into its program).
pub fn die_with_parent(cmd: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Runs `cmd`, failing with its stderr.
pub fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A network namespace holding a bridge (with the server's address) and
/// one tap per guest; deleted with everything in it on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn create(name: &str, bridge: &str, taps: &[String]) -> Result<Netns> {
        run(Command::new("ip").args(["netns", "add", name]))
            .context("creating the network namespace (needs root and iproute2)")?;
        let ns = Netns {
            name: name.to_string(),
        };
        let ipn = |args: &[&str]| run(Command::new("ip").args(["-n", name]).args(args));
        ipn(&["link", "set", "lo", "up"])?;
        ipn(&["link", "add", bridge, "type", "bridge"])?;
        ipn(&["addr", "add", &format!("{SERVER_IP}/24"), "dev", bridge])?;
        ipn(&["link", "set", bridge, "up"])?;
        for tap in taps {
            ipn(&["tuntap", "add", "dev", tap, "mode", "tap"])?;
            ipn(&["link", "set", tap, "master", bridge])?;
            ipn(&["link", "set", tap, "up"])?;
        }
        Ok(ns)
    }

    /// An empty namespace (loopback up) for another host on the guests'
    /// network; [`Netns::plug_into`] connects it.
    pub fn empty(name: &str) -> Result<Netns> {
        run(Command::new("ip").args(["netns", "add", name]))
            .context("creating a network namespace (needs root and iproute2)")?;
        let ns = Netns {
            name: name.to_string(),
        };
        run(Command::new("ip").args(["-n", name, "link", "set", "lo", "up"]))?;
        Ok(ns)
    }

    /// Connects this namespace to `bridge` in `lab` through a veth pair
    /// (`ifname` on this side, with `addr`/24).
    pub fn plug_into(&self, lab: &Netns, bridge: &str, ifname: &str, addr: &str) -> Result<()> {
        let peer = format!("{ifname}p");
        run(Command::new("ip").args([
            "-n", &lab.name, "link", "add", &peer, "type", "veth", "peer", "name", ifname, "netns",
            &self.name,
        ]))?;
        let lab_ip = |args: &[&str]| run(Command::new("ip").args(["-n", &lab.name]).args(args));
        lab_ip(&["link", "set", &peer, "master", bridge])?;
        lab_ip(&["link", "set", &peer, "up"])?;
        let ip = |args: &[&str]| run(Command::new("ip").args(["-n", &self.name]).args(args));
        ip(&["addr", "add", &format!("{addr}/24"), "dev", ifname])?;
        ip(&["link", "set", ifname, "up"])?;
        Ok(())
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Waits until `ready` holds for the text of `log` (where `proc` announces
/// it serves), failing with the log's end if `proc` exits first, `within`
/// passes or the user interrupts.
pub fn wait_ready(
    proc: &mut Proc,
    what: &str,
    log: &Path,
    within: Duration,
    ready: impl Fn(&str) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if ready(&text) {
            return Ok(());
        }
        if let Some(st) = proc.exited() {
            bail!("{what} exited ({st}):\n{}", super::tail(&text, 20));
        }
        if Instant::now() > deadline || crate::interrupt::interrupted() {
            bail!(
                "{what} did not start within {}s:\n{}",
                within.as_secs(),
                super::tail(&text, 20)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child process stopped on drop: SIGTERM, then SIGKILL after `grace`.
pub struct Proc {
    pub child: Child,
    pub grace: Duration,
}

impl Proc {
    /// Whether it is still running (a reaped exit status otherwise).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        // SAFETY: kill(2) on our own child, which has not been reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn require_file(path: &str, package: &str) -> Result<()> {
    if !Path::new(path).exists() {
        bail!("{path} is missing: `apt-get install {package}`");
    }
    Ok(())
}
