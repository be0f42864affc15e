//! `compose boot-test`

use anyhow::{Context, Result};
use composer::boottest::{boot_test, Nic, Options};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// PXE-boot a built snapshot in QEMU guests and check they come up.
///
/// Publishes REFERENCE into a scratch publish tree, writes an inventory of
/// N guests (nodeNN, MAC 52:54:00:c0:00:NN, IP 10.78.0.(10+NN)), creates a
/// network namespace with a bridge carrying 10.78.0.1/24 and one tap per
/// guest, runs `compose serve` there, and powers the guests on (QEMU, TCG,
/// PXE from the e1000's iPXE ROM). Each guest must print, on its serial
/// console, the line of the netboot layer's compose-booted.service:
///     COMPOSE-BOOTED host=nodeNN snapshot=<REFERENCE's digest> gen=IMAGE/N
/// Exits 0 when every guest did; otherwise prints the end of each failing
/// guest's serial log and exits 1. Prints power-on-to-marker times.
/// Everything it starts (QEMU, serve, the namespace) is stopped on exit.
///
/// REFERENCE is IMAGE (its newest snapshot), IMAGE@sha256:..., or a digest.
/// Needs root, qemu-system-x86, ipxe-qemu, seabios, pxelinux.
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The snapshot to boot.
    reference: String,
    /// How many guests to boot at once.
    #[arg(long, default_value_t = 1)]
    guests: u32,
    /// Seconds to wait for every guest's marker (from power-on).
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Keep the serial, QEMU and serve logs in this directory.
    #[arg(long, value_name = "DIR")]
    keep_logs: Option<PathBuf>,
    /// The guests' network card: e1000 or virtio.
    #[arg(long, default_value = "e1000", value_parser = ["e1000", "virtio"])]
    nic: String,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 1024)]
    memory: u32,
}

pub fn run(store: &Path, args: Args) -> Result<ExitCode> {
    super::require_root(
        "compose boot-test",
        "it creates network namespaces and taps and publishes",
    )?;
    let opts = Options {
        store: store.to_path_buf(),
        reference: args.reference,
        guests: args.guests,
        timeout: Duration::from_secs(args.timeout),
        keep_logs: args.keep_logs,
        nic: if args.nic == "virtio" {
            Nic::Virtio
        } else {
            Nic::E1000
        },
        memory_mb: args.memory,
        compose_bin: std::env::current_exe().context("finding the compose binary")?,
    };
    let report = boot_test(&opts, |line| eprintln!("compose boot-test: {line}"))?;
    println!(
        "{}@{} (generation {}, published in {:.1}s)",
        report.image, report.snapshot, report.generation, report.publish_seconds
    );
    for g in &report.guests {
        match (&g.error, g.seconds) {
            (None, Some(s)) => println!(
                "  {} ok: power-on to marker {s:.1}s (to kernel {}): {}",
                g.guest.hostname,
                g.kernel_seconds
                    .map_or("-".to_string(), |k| format!("{k:.1}s")),
                g.marker.as_deref().unwrap_or_default()
            ),
            (Some(e), _) => println!("  {} FAILED: {e}", g.guest.hostname),
            (None, None) => println!("  {} ok", g.guest.hostname),
        }
    }
    if let Some(dir) = &report.logs {
        println!("logs kept in {}", dir.display());
    }
    if report.ok() {
        return Ok(ExitCode::SUCCESS);
    }
    for g in report.guests.iter().filter(|g| !g.ok()) {
        eprintln!(
            "--- {} ({}): end of its serial log ---\n{}\n---",
            g.guest.hostname,
            g.error.as_deref().unwrap_or_default(),
            g.tail
        );
    }
    Ok(ExitCode::FAILURE)
}
