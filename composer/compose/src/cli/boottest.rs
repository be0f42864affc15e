//! `compose boot-test`

use anyhow::{Context, Result};
use compose_cli::boottest::{boot_test, FirmwareChoice, Nic, Options};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// PXE-boot a built snapshot in QEMU guests and check they come up.
///
/// Publishes REFERENCE into a scratch publish tree, writes an inventory of
/// N guests (nodeNN, MAC 52:54:00:c0:00:NN, IP 10.78.0.(10+NN)), creates a
/// network namespace with a bridge carrying 10.78.0.1/24 and one tap per
/// guest, runs `compose serve` there, and powers the guests on (QEMU, TCG,
/// PXE from the NIC's iPXE ROM). Each guest must print, on its serial
/// console, the line of the netboot layer's compose-booted.service:
///     COMPOSE-BOOTED host=nodeNN snapshot=<REFERENCE's digest> gen=IMAGE/N
///
/// Then each guest is checked from the inside, through a root command
/// channel on its second serial port (compose-test-shell.service, which
/// boot-test adds to its scratch guests' own overlay only; images and
/// `compose publish` never carry it):
/// it runs the published snapshot, / is an overlay of the read-only NFS
/// root and a tmpfs, a write lands in the tmpfs and not on the server,
/// uid 65534 cannot read /etc/shadow while root can, machine-ids differ,
/// and it was started by the firmware it has (--firmware: BIOS guests boot
/// pxelinux.0, UEFI guests syslinux.efi, both from the same entry).
///
/// With --upgrade-to OTHER (another snapshot of the same image, 2+ guests):
/// OTHER is published as generation 2, node01 is power-cycled into it while
/// node02 keeps reading a file that differs between the two from its old
/// root (page cache dropped, so over NFS); node01 must report OTHER and
/// read the new content. Then generation 1 is rolled back to and node01
/// power-cycled again: the old snapshot and content must be back.
///
/// Prints each boot's times split into phases (dhcp, tftp, kernel+initrd,
/// nfs mount, userspace, from compose serve's log). Exits 0 when every
/// boot, check and step passed; otherwise prints the end of each failing
/// guest's serial log and exits 1. Everything it starts (QEMU, serve, the
/// namespace) is stopped on exit, also on Ctrl-C.
///
/// REFERENCE is IMAGE (its newest snapshot), IMAGE@sha256:..., a digest, or
/// a recipe file (*.toml), which is built first (cached layers are hits).
/// Needs root, qemu-system-x86, ipxe-qemu, seabios, pxelinux, and for UEFI
/// guests ovmf and syslinux-efi; --proxy-dhcp needs dnsmasq-base.
///
/// Examples:
///     compose boot-test recipes/hpc-node.toml
///     compose boot-test minimal --guests 2 --keep-logs /tmp/boot
///     compose boot-test minimal --guests 2 --firmware mixed
///     compose boot-test minimal --guests 2 --firmware mixed --proxy-dhcp
///     compose boot-test minimal@sha256:1f.. --guests 2 --upgrade-to minimal
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The snapshot to boot, or a recipe to build and boot.
    reference: String,
    /// How many guests to boot at once.
    #[arg(long, default_value_t = 1)]
    guests: u32,
    /// Seconds each boot may take to its marker (from its power-on).
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Keep the serial, QEMU and serve logs in this directory.
    #[arg(long, value_name = "DIR")]
    keep_logs: Option<PathBuf>,
    /// The guests' network card: e1000 or virtio.
    #[arg(long, default_value = "e1000", value_parser = ["e1000", "virtio"])]
    nic: String,
    /// The guests' firmware: bios (SeaBIOS, pxelinux.0), uefi (OVMF,
    /// syslinux.efi) or mixed (odd-numbered guests BIOS, even UEFI).
    #[arg(long, default_value = "bios", value_parser = ["bios", "uefi", "mixed"])]
    firmware: String,
    /// Boot behind a site DHCP server: dnsmasq, on a namespace of its own
    /// on the guests' bridge, hands out the addresses (and nothing about
    /// booting); compose serve runs in proxyDHCP mode and the published
    /// root names compose's address (publish --server).
    #[arg(long)]
    proxy_dhcp: bool,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 1024)]
    memory: u32,
    /// Skip the in-guest checks (for images without the netboot layer's
    /// test shell).
    #[arg(long)]
    no_checks: bool,
    /// Reboot node01 into this snapshot and back (see above).
    #[arg(long, value_name = "REFERENCE")]
    upgrade_to: Option<String>,
    /// The report as JSON on stdout: {snapshot, image, generation, cmdline,
    /// publish_seconds, boots: [{guest, boot, expect, marker, seconds,
    /// kernel_seconds, phases, checks, error}], steps, logs}.
    #[arg(long)]
    json: bool,
}

pub fn run(store: &Path, args: Args) -> Result<ExitCode> {
    super::require_root(
        "compose boot-test",
        "it creates network namespaces and taps and publishes",
    )?;
    let reference = if args.reference.ends_with(".toml") && Path::new(&args.reference).is_file() {
        let report = super::build::build_recipe(store, Path::new(&args.reference))?;
        eprintln!(
            "compose boot-test: built {}@{}",
            report.image, report.snapshot
        );
        format!("{}@{}", report.image, report.snapshot)
    } else {
        args.reference
    };
    let opts = Options {
        store: store.to_path_buf(),
        reference,
        guests: args.guests,
        timeout: Duration::from_secs(args.timeout),
        keep_logs: args.keep_logs,
        nic: if args.nic == "virtio" {
            Nic::Virtio
        } else {
            Nic::E1000
        },
        firmware: FirmwareChoice::parse(&args.firmware).unwrap_or(FirmwareChoice::Bios),
        proxy_dhcp: args.proxy_dhcp,
        memory_mb: args.memory,
        compose_bin: std::env::current_exe().context("finding the compose binary")?,
        checks: !args.no_checks,
        upgrade_to: args.upgrade_to,
    };
    let report = boot_test(&opts, |line| eprintln!("compose boot-test: {line}"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{}@{} (generation {}, published in {:.1}s)",
            report.image, report.snapshot, report.generation, report.publish_seconds
        );
        for g in &report.boots {
            let checks = g.checks.iter().filter(|c| c.ok).count();
            match (&g.error, g.seconds) {
                (None, Some(s)) => println!(
                    "  {} boot {} ({}) {}: power-on to marker {s:.1}s (to kernel {}); {}; checks {checks}/{} ok",
                    g.guest.hostname,
                    g.boot,
                    g.expect,
                    if g.ok() { "ok" } else { "FAILED" },
                    g.kernel_seconds
                        .map_or("-".to_string(), |k| format!("{k:.1}s")),
                    g.phases.render(),
                    g.checks.len()
                ),
                (Some(e), _) => println!("  {} boot {} FAILED: {e}", g.guest.hostname, g.boot),
                (None, None) => println!("  {} boot {} ok", g.guest.hostname, g.boot),
            }
            for c in g.checks.iter().filter(|c| !c.ok) {
                println!("    check {} FAILED: {}", c.name, c.detail);
            }
        }
        for s in &report.steps {
            println!(
                "  step {} {}: {}",
                s.name,
                if s.ok { "ok" } else { "FAILED" },
                s.detail
            );
        }
        if let Some(dir) = &report.logs {
            println!("logs kept in {}", dir.display());
        }
    }
    if report.ok() {
        return Ok(ExitCode::SUCCESS);
    }
    for g in report.boots.iter().filter(|g| g.error.is_some()) {
        eprintln!(
            "--- {} boot {} ({}): end of its serial log ---\n{}\n---",
            g.guest.hostname,
            g.boot,
            g.error.as_deref().unwrap_or_default(),
            g.tail
        );
    }
    Ok(ExitCode::FAILURE)
}
