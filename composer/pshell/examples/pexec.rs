//! The engine alone, without the compose CLI: for profiling it and comparing
//! it with `compose exec` (whose extra work is the node set, the inventory
//! and the printing).
//!     cargo run --release -p compose-pshell --example pexec -- \
//!         [--fanout N] [--timeout SECS] [-o SSH_ARG]... HOST... -- COMMAND...
//! Prints folded stdout, then each node that did not exit 0; exits 1 if any.

use compose_pshell::{group_by_output, run, Options, Stream, Target};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str =
    "usage: pexec [--fanout N] [--timeout SECS] [-o SSH_ARG]... HOST... -- COMMAND...";

fn parse(mut args: impl Iterator<Item = String>) -> Option<(Vec<Target>, String, Options)> {
    let mut opts = Options::default();
    let mut hosts = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--fanout" => opts.fanout = args.next()?.parse().ok()?,
            "--timeout" => opts.timeout = Some(Duration::from_secs_f64(args.next()?.parse().ok()?)),
            "-o" => opts.ssh_options.push(args.next()?),
            "--" => break,
            _ => hosts.push(Target::named(a)),
        }
    }
    let command = args.collect::<Vec<_>>().join(" ");
    Some((hosts, command, opts))
}

fn main() -> ExitCode {
    let Some((hosts, command, opts)) = parse(std::env::args().skip(1)) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let results = run(&hosts, &command, &opts, |_| {});
    let mut out = std::io::stdout().lock();
    for g in group_by_output(&results, Stream::Stdout) {
        if !g.output.is_empty() {
            let _ = writeln!(out, "---- {} ----", g.names.join(","));
            let _ = out.write_all(&g.output);
        }
    }
    if std::env::var_os("PEXEC_TIMES").is_some() {
        let ms: Vec<u128> = results.iter().map(|r| r.elapsed.as_millis()).collect();
        eprintln!("elapsed ms by node: {ms:?}");
    }
    let mut status = ExitCode::SUCCESS;
    for r in results.iter().filter(|r| !r.ok()) {
        let stderr = String::from_utf8_lossy(&r.stderr);
        eprintln!("{}: {:?}: {}", r.name, r.outcome, stderr.trim());
        status = ExitCode::FAILURE;
    }
    status
}
