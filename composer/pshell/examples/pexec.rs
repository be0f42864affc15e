//! The engine alone, without the compose CLI: for profiling and benchmarks.
//!     pexec [--fanout N] [--timeout SECS] [-o SSH_ARG]... HOST... -- COMMAND...
//! Prints folded stdout and the nodes that did not exit 0; exits 1 if any.

use compose_pshell::{group_by_output, run, Options, Stream, Target};
use std::io::Write;
use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut opts = Options::default();
    let mut hosts = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--fanout" => opts.fanout = args.next().and_then(|v| v.parse().ok()).expect("--fanout N"),
            "--timeout" => {
                let secs: f64 = args.next().and_then(|v| v.parse().ok()).expect("--timeout SECS");
                opts.timeout = Some(Duration::from_secs_f64(secs));
            }
            "-o" => opts.ssh_options.push(args.next().expect("-o SSH_ARG")),
            "--" => break,
            _ => hosts.push(Target::named(a)),
        }
    }
    let command = args.collect::<Vec<_>>().join(" ");
    let results = run(&hosts, &command, &opts, |_| {});
    let mut out = std::io::stdout().lock();
    for g in group_by_output(&results, Stream::Stdout) {
        if !g.output.is_empty() {
            let _ = writeln!(out, "---- {} ----", g.names.join(","));
            let _ = out.write_all(&g.output);
        }
    }
    let bad: Vec<_> = results.iter().filter(|r| !r.ok()).collect();
    for r in &bad {
        eprintln!("{}: {:?}: {}", r.name, r.outcome, String::from_utf8_lossy(&r.stderr).trim());
    }
    std::process::exit(if bad.is_empty() { 0 } else { 1 });
}
