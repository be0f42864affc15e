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
//! Then, through boot-test's own test shell on ttyS1 (overlay.rs, checks.rs), each
//! guest is checked from the inside; with an upgrade target, one guest is
//! rebooted into a new generation while another keeps reading its root, and
//! back again after a rollback (scenario.rs).
//!
//! Everything started here is owned by a guard whose Drop undoes it (QEMU
//! processes, the serve process, the namespace with its bridge and taps, the
//! scratch tree), so a failure or a panic leaves nothing running.

mod checks;
mod host;
mod lab;
mod overlay;
pub mod phases;
mod scenario;
pub mod shell;
mod site;

pub use checks::Check;
pub use phases::Phases;

use anyhow::{bail, Result};
use compose_store::SnapshotId;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The server's address on the test bridge.
pub const SERVER_IP: &str = "10.78.0.1";
/// What the netboot layer's compose-booted.service prints.
pub const MARKER: &str = "COMPOSE-BOOTED";

const QEMU: &str = "qemu-system-x86_64";
const SEABIOS: &str = "/usr/share/seabios";
const ROM_DIR: &str = "/usr/lib/ipxe/qemu";
/// Debian's ovmf package: UEFI firmware code (read-only) and the pristine
/// variable store each UEFI guest gets a copy of.
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// A guest's firmware, which decides how it PXE-boots: SeaBIOS runs the
/// NIC's iPXE ROM, which fetches pxelinux.0; OVMF runs the ROM's iPXE EFI
/// driver, which asks DHCP as UEFI x64 (option 93 = 7) and fetches
/// syslinux.efi. Both then read the same pxelinux.cfg entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    Bios,
    Uefi,
}

/// Which firmware the guests get: all the same, or mixed (odd-numbered
/// guests BIOS, even-numbered UEFI), as in a cluster bought in two rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirmwareChoice {
    Bios,
    Uefi,
    Mixed,
}

impl FirmwareChoice {
    pub fn parse(s: &str) -> Option<FirmwareChoice> {
        match s {
            "bios" => Some(FirmwareChoice::Bios),
            "uefi" => Some(FirmwareChoice::Uefi),
            "mixed" => Some(FirmwareChoice::Mixed),
            _ => None,
        }
    }

    /// The firmware of guest number `i` (1-based).
    pub fn of(self, i: u32) -> Firmware {
        match self {
            FirmwareChoice::Bios => Firmware::Bios,
            FirmwareChoice::Uefi => Firmware::Uefi,
            FirmwareChoice::Mixed if i.is_multiple_of(2) => Firmware::Uefi,
            FirmwareChoice::Mixed => Firmware::Bios,
        }
    }

    fn any_uefi(self, guests: u32) -> bool {
        (1..=guests).any(|i| self.of(i) == Firmware::Uefi)
    }
}

/// The guest's network card (both boot with Debian's ipxe-qemu ROMs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nic {
    E1000,
    /// Modern-only virtio: Debian's pxe-virtio.rom carries the modern PCI id.
    Virtio,
}

impl Nic {
    fn device(self, mac: &str, fw: Firmware) -> String {
        let rom = self.rom(fw);
        match self {
            Nic::E1000 => format!("e1000,netdev=n0,mac={mac},romfile={rom}"),
            Nic::Virtio => {
                format!("virtio-net-pci,disable-legacy=on,netdev=n0,mac={mac},romfile={rom}")
            }
        }
    }

    /// The option ROM: pxe-* for BIOS guests; efi-* (the same iPXE with
    /// an EFI driver added) for UEFI guests.
    fn rom(self, fw: Firmware) -> String {
        let kind = match fw {
            Firmware::Bios => "pxe",
            Firmware::Uefi => "efi",
        };
        match self {
            Nic::E1000 => format!("{ROM_DIR}/{kind}-e1000.rom"),
            Nic::Virtio => format!("{ROM_DIR}/{kind}-virtio.rom"),
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
    /// Per boot, from its power-on.
    pub timeout: Duration,
    /// Copy serial, QEMU and serve logs here (kept on success too).
    pub keep_logs: Option<PathBuf>,
    pub nic: Nic,
    pub firmware: FirmwareChoice,
    /// Addresses from a site DHCP server (dnsmasq on another namespace),
    /// compose serve in proxyDHCP mode.
    pub proxy_dhcp: bool,
    pub memory_mb: u32,
    /// The compose binary to run `serve` with (normally the current one).
    pub compose_bin: PathBuf,
    /// Run the in-guest checks through the test shell.
    pub checks: bool,
    /// Another snapshot of the same image: publish it, reboot the first
    /// guest into it while the second keeps running, roll back, reboot.
    pub upgrade_to: Option<String>,
}

/// One guest of the test.
#[derive(Debug, Clone, Serialize)]
pub struct Guest {
    pub hostname: String,
    pub mac: String,
    pub ip: String,
    pub tap: String,
    pub serial_log: PathBuf,
    pub firmware: Firmware,
}

/// What became of one boot of one guest.
#[derive(Debug, Clone, Serialize)]
pub struct GuestResult {
    pub guest: Guest,
    /// 1 for the first power-on, 2 after the first reboot, ...
    pub boot: u32,
    /// The generation it had to boot (`image/N`).
    pub expect: String,
    /// The marker line, if one appeared.
    pub marker: Option<String>,
    /// Power-on to marker.
    pub seconds: Option<f64>,
    /// Power-on to the kernel's first line, as seen by polling the serial log.
    pub kernel_seconds: Option<f64>,
    /// Where the time went (from the serve log).
    pub phases: Phases,
    /// In-guest checks (empty with --no-checks or when the boot failed).
    pub checks: Vec<Check>,
    /// Why the boot failed; None when it reported the right host, snapshot
    /// and generation.
    pub error: Option<String>,
    /// The end of its serial log (for failures).
    #[serde(skip)]
    pub tail: String,
}

impl GuestResult {
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.checks.iter().all(|c| c.ok)
    }
}

/// One action of a scenario and its verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub snapshot: SnapshotId,
    pub image: String,
    pub generation: u64,
    pub cmdline: String,
    pub publish_seconds: f64,
    /// Every boot, in the order they ended.
    pub boots: Vec<GuestResult>,
    /// Checks across guests and scenario steps.
    pub steps: Vec<Step>,
    /// Where the logs were copied (--keep-logs).
    pub logs: Option<PathBuf>,
}

impl Report {
    pub fn ok(&self) -> bool {
        !self.boots.is_empty()
            && self.boots.iter().all(GuestResult::ok)
            && self.steps.iter().all(|s| s.ok)
    }
}

/// The guests' addressing: MAC 52:54:00:c0:00:NN, IP 10.78.0.(10+NN), nodeNN.
pub fn guests(n: u32, dir: &Path, tag: &str, firmware: FirmwareChoice) -> Vec<Guest> {
    (1..=n)
        .map(|i| Guest {
            hostname: format!("node{i:02}"),
            mac: format!("52:54:00:c0:00:{i:02x}"),
            ip: format!("10.78.0.{}", 10 + i),
            tap: format!("{tag}t{i}"),
            serial_log: dir.join(format!("node{i:02}.serial.log")),
            firmware: firmware.of(i),
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

pub fn summary(results: &[GuestResult]) -> String {
    let secs = |s: Option<f64>| s.map_or("-".to_string(), |s| format!("{s:.1}s"));
    results
        .iter()
        .map(|r| {
            format!(
                "{} boot {} ({}) {}: power-on to kernel {}, to marker {} ({}){}\n",
                r.guest.hostname,
                r.boot,
                r.expect,
                if r.ok() { "ok" } else { "FAILED" },
                secs(r.kernel_seconds),
                secs(r.seconds),
                r.phases.render(),
                r.error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )
        })
        .collect()
}

/// Runs the whole test. `progress` gets one line per step.
pub fn boot_test(opts: &Options, mut progress: impl FnMut(&str)) -> Result<Report> {
    if opts.guests == 0 || opts.guests > 200 {
        bail!("--guests must be between 1 and 200");
    }
    if opts.upgrade_to.is_some() && opts.guests < 2 {
        bail!("--upgrade-to needs --guests 2 or more: one guest is rebooted while another keeps running");
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
    host::require_file(SEABIOS, "seabios")?;
    host::require_file(&opts.nic.rom(Firmware::Bios), "ipxe-qemu")?;
    if opts.firmware.any_uefi(opts.guests) {
        host::require_file(&opts.nic.rom(Firmware::Uefi), "ipxe-qemu")?;
        host::require_file(OVMF_CODE, "ovmf")?;
        host::require_file(OVMF_VARS, "ovmf")?;
    }
    crate::interrupt::catch()?;
    scenario::run(opts, &mut progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_addressing() {
        let g = guests(12, Path::new("/w"), "cbt1", FirmwareChoice::Mixed);
        assert_eq!(g[0].hostname, "node01");
        assert_eq!(g[0].mac, "52:54:00:c0:00:01");
        assert_eq!(g[0].ip, "10.78.0.11");
        assert_eq!(g[11].mac, "52:54:00:c0:00:0c");
        assert_eq!(g[11].ip, "10.78.0.22");
        assert_eq!(g[11].serial_log, Path::new("/w/node12.serial.log"));
        assert_eq!(g[0].firmware, Firmware::Bios);
        assert_eq!(g[1].firmware, Firmware::Uefi);
        assert!(!FirmwareChoice::Mixed.any_uefi(1));
        assert!(FirmwareChoice::Uefi.any_uefi(1));
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
