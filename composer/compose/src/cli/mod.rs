//! One file per verb. Data goes to stdout, progress and errors to stderr.
//!
//! The doc comments of the argument structs are `--help` text and man pages
//! (clap), written for a terminal: `<digest>` and `[[node]]` there are not
//! HTML or intra-doc links.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]

mod boottest;
mod build;
mod check;
mod completions;
mod diff;
mod exec;
mod fsck;
mod gc;
mod generations;
mod nodes;
mod publish;
mod rollback;
mod serve;
mod snapshots;
mod status;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

const ABOUT: &str = "Build, publish and serve network-booted, diskless Debian cluster nodes.";

const LONG_ABOUT: &str = "\
Build, publish and serve network-booted, diskless Debian cluster nodes.

A recipe (TOML) names a Debian base (mmdebstrap, or debootstrap) and an ordered
list of layers: packages, local .debs, serial console, hostname, files, scripts
and reusable layers from layers/NAME/. `compose build` turns it into a
content-addressed snapshot in an OCI image layout; unchanged layers are cache
hits and the same inputs always give the same digest.

`compose publish` makes a snapshot bootable: an immutable NFS root beside its
kernel, initrd and pxelinux entry, switched in atomically as the image's next
generation; `compose rollback` switches back instantly. `compose serve` runs
DHCP, TFTP and NFS for the nodes of the inventory; `compose nodes` keeps the
inventory and regenerates the cluster's files from it; `compose exec` runs a
command on a node set; `compose status` says which generation each node
booted; `compose boot-test` proves all of it on QEMU guests.

Typical session:
    compose check recipes/hpc-node.toml
    compose build recipes/hpc-node.toml
    compose snapshots
    compose publish hpc-node
    compose generations
    compose serve --interface eth1
    compose nodes regen
    compose exec @compute -- uptime
    compose status
    compose rollback hpc-node";

/// `0.1.0 (1a2b3c4)`: the commit comes from build.rs (`unknown commit`
/// outside a git checkout), so a bug report names the exact source.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("COMPOSE_GIT_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(name = "compose", version = VERSION, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    /// The image store (an OCI image layout).
    #[arg(
        long,
        global = true,
        env = "COMPOSE_STORE",
        default_value = "/var/lib/compose"
    )]
    store: PathBuf,

    /// The publish tree (NFS roots, TFTP files, generations).
    #[arg(
        long,
        global = true,
        env = "COMPOSE_ROOT",
        default_value = "/srv/compose"
    )]
    root: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Build(build::Args),
    BootTest(boottest::Args),
    Snapshots(snapshots::Args),
    Check(check::Args),
    Publish(publish::Args),
    Generations(generations::Args),
    Rollback(rollback::Args),
    Diff(diff::Args),
    Serve(serve::Args),
    Gc(gc::Args),
    Fsck(fsck::Args),
    Status(status::Args),
    Nodes(nodes::Args),
    Exec(exec::Args),
    Completions(completions::Args),
}

pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `compose __man DIR` (ci/package) is not a clap verb: clap_complete
    // would offer even a hidden one in the completion scripts.
    let result = if args.get(1).is_some_and(|a| a == completions::MAN_VERB) {
        completions::run_man(&args[2..])
    } else {
        run(Cli::parse_from(args))
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("compose: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Build(a) => build::run(&cli.store, a),
        Command::BootTest(a) => boottest::run(&cli.store, a),
        Command::Snapshots(a) => snapshots::run(&cli.store, a),
        Command::Check(a) => check::run(a),
        Command::Publish(a) => publish::run(&cli.store, &cli.root, a),
        Command::Generations(a) => generations::run(&cli.root, a),
        Command::Rollback(a) => rollback::run(&cli.root, a),
        Command::Diff(a) => diff::run(&cli.store, &cli.root, a),
        Command::Serve(a) => serve::run_cli(&cli.root, a),
        Command::Gc(a) => gc::run(&cli.store, &cli.root, a),
        Command::Fsck(a) => fsck::run(&cli.store, &cli.root, a),
        Command::Status(a) => status::run(&cli.root, a),
        Command::Nodes(a) => nodes::run(&cli.root, a),
        Command::Exec(a) => exec::run_cli(&cli.root, a),
        Command::Completions(a) => completions::run(a),
    }
}

/// `sha256:` and the first 12 hex digits, for tables and progress lines.
pub fn short_digest(d: &str) -> &str {
    d.get(..19).unwrap_or(d)
}

/// Human-readable sizes for listings and progress.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Fails with a clear message unless we are root.
pub fn require_root(what: &str, why: &str) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        anyhow::bail!("{what} needs root ({why}): run it with sudo");
    }
    Ok(())
}

/// Loads a recipe, turning its diagnostics into one error.
pub fn load_recipe(path: &std::path::Path) -> anyhow::Result<compose_recipe::Recipe> {
    compose_recipe::load_recipe(path, &compose_recipe::LoadOptions::default())
        .map_err(|e| anyhow::anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1500), "1.5 kB");
        assert_eq!(human_size(712_300_000), "712.3 MB");
    }
}
