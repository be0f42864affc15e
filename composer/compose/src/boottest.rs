//! `compose boot-test`: the product's proof. A built snapshot is published
//! into a scratch publish tree, `compose serve` runs in a private network
//! namespace on a bridge carrying 10.78.0.1/24, and QEMU guests (TCG, one tap
//! each on that bridge) PXE-boot it. Each guest's serial console must show
//! the line the netboot layer's compose-booted.service prints once
//! multi-user is reached:
//!
//! ```text
//! COMPOSE-BOOTED host=node01 snapshot=sha256:... gen=minimal/1
//! ```
//!
//! Everything started here is owned by a guard whose Drop undoes it (QEMU
//! processes, the serve process, the namespace with its bridge and taps, the
//! scratch tree), so a failure or a panic leaves nothing running.

use crate::publish::{publish, PublishOptions, Tree};
use anyhow::{bail, Context, Result};
use compose_store::{SnapshotId, Store};
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The server's address on the test bridge.
pub const SERVER_IP: &str = "10.78.0.1";
/// What the netboot layer's compose-booted.service prints.
pub const MARKER: &str = "COMPOSE-BOOTED";

const QEMU: &str = "qemu-system-x86_64";
const SEABIOS: &str = "/usr/share/seabios";
const ROM_DIR: &str = "/usr/lib/ipxe/qemu";

/// The guest's network card (both boot with Debian's ipxe-qemu ROMs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nic {
    E1000,
    /// Modern-only virtio: Debian's pxe-virtio.rom carries the modern PCI id.
    Virtio,
}

impl Nic {
    fn device(self, mac: &str) -> String {
        match self {
            Nic::E1000 => {
                format!("e1000,netdev=n0,mac={mac},romfile={ROM_DIR}/pxe-e1000.rom")
            }
            Nic::Virtio => format!(
                "virtio-net-pci,disable-legacy=on,netdev=n0,mac={mac},romfile={ROM_DIR}/pxe-virtio.rom"
            ),
        }
    }

    fn rom(self) -> String {
        match self {
            Nic::E1000 => format!("{ROM_DIR}/pxe-e1000.rom"),
            Nic::Virtio => format!("{ROM_DIR}/pxe-virtio.rom"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// The store holding the snapshot.
    pub store: PathBuf,
    /// IMAGE, IMAGE@sha256:... or a digest.
    pub reference: String,
    pub guests: u32,
    /// For all guests together, from the first power-on.
    pub timeout: Duration,
    /// Copy serial, QEMU and serve logs here (kept on success too).
    pub keep_logs: Option<PathBuf>,
    pub nic: Nic,
    pub memory_mb: u32,
    /// The compose binary to run `serve` with (normally the current one).
    pub compose_bin: PathBuf,
}

/// One guest of the test.
#[derive(Debug, Clone)]
pub struct Guest {
    pub hostname: String,
    pub mac: String,
    pub ip: String,
    pub tap: String,
    pub serial_log: PathBuf,
}

/// What became of one guest.
#[derive(Debug, Clone)]
pub struct GuestResult {
    pub guest: Guest,
    /// The marker line, if one appeared.
    pub marker: Option<String>,
    /// Power-on to marker.
    pub seconds: Option<f64>,
    /// Power-on to the kernel's first line (firmware, PXE, pxelinux, TFTP
    /// of kernel and initrd), as seen by polling the serial log.
    pub kernel_seconds: Option<f64>,
    /// Why the guest failed; None when it reported the right host and snapshot.
    pub error: Option<String>,
    /// The end of its serial log (for failures).
    pub tail: String,
}

impl GuestResult {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

#[derive(Debug)]
pub struct Report {
    pub snapshot: SnapshotId,
    pub image: String,
    pub generation: u64,
    pub cmdline: String,
    pub publish_seconds: f64,
    pub guests: Vec<GuestResult>,
    /// Where the logs were copied (--keep-logs).
    pub logs: Option<PathBuf>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.guests.iter().all(GuestResult::ok)
    }
}

/// The guests' addressing: MAC 52:54:00:c0:00:NN, IP 10.78.0.(10+NN), nodeNN.
pub fn guests(n: u32, dir: &Path, tag: &str) -> Vec<Guest> {
    (1..=n)
        .map(|i| Guest {
            hostname: format!("node{i:02}"),
            mac: format!("52:54:00:c0:00:{i:02x}"),
            ip: format!("10.78.0.{}", 10 + i),
            tap: format!("{tag}t{i}"),
            serial_log: dir.join(format!("node{i:02}.serial.log")),
        })
        .collect()
}

/// nodes.toml for the guests, all on `image`'s current generation.
pub fn render_nodes(guests: &[Guest], image: &str) -> String {
    let mut s = String::from("# written by compose boot-test\n");
    for g in guests {
        s.push_str(&format!(
            "\n[[node]]\nhostname = \"{}\"\nmac = \"{}\"\nip = \"{}\"\nimage = \"{image}\"\n",
            g.hostname, g.mac, g.ip
        ));
    }
    s
}

/// The marker line in a serial log: `host` and `snapshot` of its first
/// complete occurrence (serial output may carry `\r` and other noise).
pub fn find_marker(log: &str) -> Option<(String, String, String)> {
    let start = log.find(&format!("{MARKER} "))?;
    let rest = &log[start..];
    let end = rest.find(['\n', '\r'])?; // only a complete line
    let line = rest[..end].trim_end().to_string();
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap_or_default()
            .to_string()
    };
    let host = field("host=");
    let snapshot = field("snapshot=");
    Some((line, host, snapshot))
}

/// The last `n` lines of a serial log, control characters dropped.
pub fn tail(text: &str, n: usize) -> String {
    let clean: String = text
        .chars()
        .filter(|c| *c == '\n' || *c == '\t' || !c.is_control())
        .collect();
    let lines: Vec<&str> = clean.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Set by SIGINT/SIGTERM: stop waiting and clean up (the guards run).
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn catch_signals() -> Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { sigaction(sig, &action) }.context("installing a signal handler")?;
    }
    Ok(())
}

fn interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Children die with us, even if we are SIGKILLed (the flag survives the
/// exec of `ip netns exec` into its program).
fn die_with_parent(cmd: &mut Command) -> &mut Command {
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

/// One line per guest: the outcome and its timings.
pub fn summary(results: &[Option<GuestResult>]) -> String {
    let secs = |s: Option<f64>| s.map_or("-".to_string(), |s| format!("{s:.1}s"));
    results
        .iter()
        .flatten()
        .map(|r| {
            format!(
                "{} {}: power-on to kernel {}, to marker {}{}\n",
                r.guest.hostname,
                if r.ok() { "ok" } else { "FAILED" },
                secs(r.kernel_seconds),
                secs(r.seconds),
                r.error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )
        })
        .collect()
}

/// Runs `cmd`, failing with its stderr.
fn run(cmd: &mut Command) -> Result<()> {
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
    pub bridge: String,
}

impl Netns {
    pub fn create(name: &str, bridge: &str, taps: &[String]) -> Result<Netns> {
        run(Command::new("ip").args(["netns", "add", name]))
            .context("creating the network namespace (needs root and iproute2)")?;
        let ns = Netns {
            name: name.to_string(),
            bridge: bridge.to_string(),
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

/// Waits until `path` contains `needle`, or `proc` exits, or `secs` pass.
fn wait_for_log(path: &Path, needle: &str, proc: &mut Proc, secs: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return Ok(());
        }
        interrupted()?;
        if let Some(st) = proc.exited() {
            bail!("compose serve exited ({st}):\n{}", tail(&text, 20));
        }
        if Instant::now() > deadline {
            bail!(
                "compose serve did not start within {secs}s:\n{}",
                tail(&text, 20)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn require_file(path: &str, package: &str) -> Result<()> {
    if !Path::new(path).exists() {
        bail!("{path} is missing: `apt-get install {package}`");
    }
    Ok(())
}

/// Runs the whole test. `progress` gets one line per step.
pub fn boot_test(opts: &Options, mut progress: impl FnMut(&str)) -> Result<Report> {
    if opts.guests == 0 || opts.guests > 200 {
        bail!("--guests must be between 1 and 200");
    }
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "compose boot-test needs root (network namespaces, taps, publishing): run it with sudo"
        );
    }
    let qemu_ok = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(QEMU).is_file()));
    if !qemu_ok {
        bail!("{QEMU} is not installed: `apt-get install qemu-system-x86`");
    }
    require_file(SEABIOS, "seabios")?;
    require_file(&opts.nic.rom(), "ipxe-qemu")?;
    catch_signals()?;

    // Scratch: the publish tree, the inventory and the logs.
    let work = tempfile::Builder::new()
        .prefix("compose-boot-test-")
        .tempdir_in("/var/tmp")
        .context("creating a scratch directory in /var/tmp")?;
    let store = Store::open_existing(&opts.store)?;
    let snap = store.resolve(&opts.reference)?;
    let tree_path = work.path().join("tree");
    let tree = Tree::open(&tree_path)?;
    progress(&format!("publishing {}@{} ...", snap.image, snap.id));
    // What `compose publish` does by default: nfsroot= without a server, so
    // the initramfs mounts from the DHCP server (next-server) it booted from.
    let publish_opts = PublishOptions::default();
    let pubrep = publish(&store, &tree, &snap, &publish_opts)?;
    let generation = pubrep.generation.number;
    progress(&format!(
        "published generation {generation} in {:.1}s; kernel command line: {}",
        pubrep.seconds, pubrep.generation.cmdline
    ));

    let tag = format!("cbt{}", std::process::id() % 100_000);
    let guests = guests(opts.guests, work.path(), &tag);
    let nodes = work.path().join("nodes.toml");
    fs::write(&nodes, render_nodes(&guests, &snap.image))?;
    // An empty configuration: the host's /etc/compose/serve.toml must not leak in.
    let config = work.path().join("serve.toml");
    fs::write(&config, "# compose boot-test: everything from flags\n")?;

    let taps: Vec<String> = guests.iter().map(|g| g.tap.clone()).collect();
    let bridge = format!("{tag}br");
    let ns = Netns::create(&tag, &bridge, &taps)?;

    let serve_log = work.path().join("serve.log");
    let mut serve = Proc {
        child: die_with_parent(&mut ns.command(&opts.compose_bin))
            .arg("--root")
            .arg(&tree_path)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--nodes")
            .arg(&nodes)
            .args(["--interface", &bridge])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&serve_log)?)
            .spawn()
            .context("starting compose serve")?,
        grace: Duration::from_secs(6),
    };
    wait_for_log(&serve_log, "DHCP on", &mut serve, 30)?;
    progress(&format!(
        "compose serve is up in namespace {tag} on {bridge} ({SERVER_IP})"
    ));

    // Power the guests on, all at once.
    let mut vms: Vec<Option<Proc>> = Vec::new();
    let mut starts: Vec<Instant> = Vec::new();
    for g in &guests {
        let qemu_log = work.path().join(format!("{}.qemu.log", g.hostname));
        let out = fs::File::create(&qemu_log)?;
        let child = die_with_parent(&mut ns.command(QEMU))
            .args(["-accel", "tcg,thread=multi", "-cpu", "max"])
            .args(["-m", &opts.memory_mb.to_string()])
            .args(["-nographic", "-display", "none", "-monitor", "none"])
            .args(["-L", SEABIOS])
            .args([
                "-netdev",
                &format!("tap,id=n0,ifname={},script=no,downscript=no", g.tap),
            ])
            .args(["-device", &opts.nic.device(&g.mac)])
            .args(["-boot", "n", "-no-reboot"])
            .arg("-serial")
            .arg(format!("file:{}", g.serial_log.display()))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting qemu")?;
        vms.push(Some(Proc {
            child,
            grace: Duration::from_secs(2),
        }));
        starts.push(Instant::now());
        progress(&format!(
            "powered on {} (MAC {}, IP {}, tap {})",
            g.hostname, g.mac, g.ip, g.tap
        ));
    }

    // Wait for every marker, a QEMU exit, or the deadline.
    let deadline = Instant::now() + opts.timeout;
    let want_snapshot = snap.id.to_string();
    let mut results: Vec<Option<GuestResult>> = vec![None; guests.len()];
    let mut kernel_at: Vec<Option<f64>> = vec![None; guests.len()];
    while results.iter().any(Option::is_none) {
        for (i, g) in guests.iter().enumerate() {
            if results[i].is_some() {
                continue;
            }
            let bytes = fs::read(&g.serial_log).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            let started = starts[i];
            if kernel_at[i].is_none() && text.contains("Linux version ") {
                kernel_at[i] = Some(started.elapsed().as_secs_f64());
            }
            let done = if let Some((line, host, snapshot)) = find_marker(&text) {
                let secs = started.elapsed().as_secs_f64();
                let error = if host != g.hostname {
                    Some(format!("reported host {host:?}, expected {:?}", g.hostname))
                } else if snapshot != want_snapshot {
                    Some(format!(
                        "reported snapshot {snapshot:?}, expected {want_snapshot}"
                    ))
                } else {
                    None
                };
                progress(&format!("{}: {line} ({secs:.1}s)", g.hostname));
                Some(GuestResult {
                    guest: g.clone(),
                    marker: Some(line),
                    seconds: Some(secs),
                    kernel_seconds: kernel_at[i],
                    error,
                    tail: tail(&text, 40),
                })
            } else if let Some(st) = vms[i].as_mut().and_then(Proc::exited) {
                Some(GuestResult {
                    guest: g.clone(),
                    marker: None,
                    seconds: None,
                    kernel_seconds: kernel_at[i],
                    error: Some(format!("qemu exited ({st}) before the marker")),
                    tail: tail(&text, 40),
                })
            } else if Instant::now() > deadline || INTERRUPTED.load(Ordering::SeqCst) {
                Some(GuestResult {
                    guest: g.clone(),
                    marker: None,
                    seconds: None,
                    kernel_seconds: kernel_at[i],
                    error: Some(if INTERRUPTED.load(Ordering::SeqCst) {
                        "interrupted".to_string()
                    } else {
                        format!("no {MARKER} line within {}s", opts.timeout.as_secs())
                    }),
                    tail: tail(&text, 40),
                })
            } else {
                None
            };
            if let Some(r) = done {
                // Its job is done: free the CPU for the others.
                drop(vms[i].take());
                results[i] = Some(r);
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // Stop everything before copying logs: QEMU first, then serve, then the namespace.
    drop(vms);
    drop(serve);
    drop(ns);

    let logs = match &opts.keep_logs {
        Some(dir) => {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for entry in fs::read_dir(work.path())?.flatten() {
                let name = entry.file_name();
                if name.to_string_lossy().ends_with(".log") || name == "nodes.toml" {
                    fs::copy(entry.path(), dir.join(&name))
                        .with_context(|| format!("copying {name:?} to {}", dir.display()))?;
                }
            }
            fs::write(dir.join("summary.txt"), summary(&results))?;
            Some(dir.clone())
        }
        None => None,
    };
    Ok(Report {
        snapshot: snap.id,
        image: snap.image.clone(),
        generation,
        cmdline: pubrep.generation.cmdline.clone(),
        publish_seconds: pubrep.seconds,
        guests: results.into_iter().flatten().collect(),
        logs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_addressing() {
        let g = guests(12, Path::new("/w"), "cbt1");
        assert_eq!(g[0].hostname, "node01");
        assert_eq!(g[0].mac, "52:54:00:c0:00:01");
        assert_eq!(g[0].ip, "10.78.0.11");
        assert_eq!(g[11].mac, "52:54:00:c0:00:0c");
        assert_eq!(g[11].ip, "10.78.0.22");
        assert_eq!(g[11].serial_log, Path::new("/w/node12.serial.log"));
        let nodes = render_nodes(&g[..2], "minimal");
        let parsed = crate::inventory::parse_nodes(&nodes, Path::new("nodes.toml")).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[1].hostname, "node02");
    }

    #[test]
    fn marker_only_when_the_line_is_complete() {
        let log =
            "\x1b[0mfoo\r\nCOMPOSE-BOOTED host=node01 snapshot=sha256:ab gen=minimal/1\r\nlogin:";
        let (line, host, snap) = find_marker(log).unwrap();
        assert_eq!(
            line,
            "COMPOSE-BOOTED host=node01 snapshot=sha256:ab gen=minimal/1"
        );
        assert_eq!((host.as_str(), snap.as_str()), ("node01", "sha256:ab"));
        assert!(find_marker("COMPOSE-BOOTED host=node0").is_none());
        assert!(find_marker("systemd[1]: Starting compose-booted.service").is_none());
        assert_eq!(tail("a\nb\x07\nc\n", 2), "b\nc");
    }
}
