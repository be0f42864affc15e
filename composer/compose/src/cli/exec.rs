//! `compose exec`: the seed's dsh, on compose-pshell.

use anyhow::{bail, Context, Result};
use compose_cluster::{load_inventory, Inventory, Node};
use compose_nodeset::NodeSet;
use compose_pshell::{group_by_output, run, NodeResult, Options, Outcome, Stream, Target};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Run a command on many nodes at once over ssh (the parallel shell).
///
/// NODESET names the nodes, ClusterShell style: node[01-64], node[1-4,9],
/// @compute (a group of the inventory), @all, @image:NAME, and the operators , (union)
/// ! (difference) & (intersection) ^ (symmetric difference):
/// `@compute!node03`. Inventory nodes are reached at their inventory IP
/// (with the cluster's known_hosts from `compose nodes regen` when there is
/// one); other names are handed to ssh as they are, so the user's ssh
/// config applies. ssh runs in batch mode (no prompts), with stdin closed.
///
/// Output is folded: nodes whose output is identical are shown once, under
/// their node set; then a table of exit statuses by node set. Exits 0 when
/// the command exited 0 everywhere, 1 otherwise (a failure, an ssh error,
/// or a timeout on any node).
///
/// Examples:
///     compose exec @compute -- uptime
///     compose exec 'node[01-08]' --fanout 32 --timeout 30 -- systemctl is-active slurmd
///     compose exec 'n[01-32]' --ssh-config ~/.ssh/cluster.conf -- hostname
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The nodes (a node set).
    nodeset: String,
    /// The command, run by the remote user's shell.
    #[arg(last = true, required = true, num_args = 1..)]
    command: Vec<String>,
    /// The node inventory (for @groups and addresses).
    #[arg(long, default_value = "/etc/compose/nodes.toml")]
    nodes: PathBuf,
    /// At most this many ssh connections at once.
    #[arg(short = 'f', long, default_value_t = 64)]
    fanout: usize,
    /// Seconds a node may take before its ssh is killed (default: no limit).
    #[arg(short = 't', long)]
    timeout: Option<u64>,
    /// Seconds to wait for each connection.
    #[arg(long, default_value_t = 10)]
    connect_timeout: u64,
    /// An ssh config file (ssh -F).
    #[arg(long, value_name = "FILE")]
    ssh_config: Option<PathBuf>,
    /// An extra ssh argument, given before the host (repeatable:
    /// `-o -i -o ~/.ssh/cluster`, `-o -oPort=2222`).
    #[arg(
        short = 'o',
        long = "ssh-arg",
        allow_hyphen_values = true,
        value_name = "ARG"
    )]
    ssh_args: Vec<String>,
    /// Log in as this user.
    #[arg(short = 'l', long)]
    user: Option<String>,
    /// One block per node instead of folding identical output.
    #[arg(long)]
    no_fold: bool,
    /// JSON on stdout: [{node, outcome, exit, stdout, stderr, seconds}].
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct JsonResult<'a> {
    node: &'a str,
    outcome: String,
    exit: Option<i32>,
    stdout: String,
    stderr: String,
    seconds: f64,
}

fn outcome_text(r: &NodeResult) -> String {
    match &r.outcome {
        Outcome::Exited(255) => "ssh error (255)".into(),
        Outcome::Exited(c) => c.to_string(),
        Outcome::Signaled(s) => format!("ssh killed by signal {s}"),
        Outcome::TimedOut => "timeout".into(),
        Outcome::Cancelled => "cancelled".into(),
        Outcome::SpawnFailed(e) => format!("not started: {e}"),
    }
}

pub fn run_cli(root: &Path, args: Args) -> Result<ExitCode> {
    let inventory = if args.nodes.exists() {
        load_inventory(&args.nodes)?
    } else {
        Inventory::default()
    };
    let set = inventory.select(&args.nodeset).with_context(|| {
        if inventory.nodes.is_empty() {
            format!("no inventory at {}: @groups need one", args.nodes.display())
        } else {
            format!("node set of the inventory {}", args.nodes.display())
        }
    })?;
    if set.is_empty() {
        bail!("the node set {:?} names no node", args.nodeset);
    }
    let by_name: BTreeMap<&str, &Node> = inventory
        .nodes
        .iter()
        .map(|n| (n.hostname.as_str(), n))
        .collect();
    let targets: Vec<Target> = set
        .iter()
        .map(|name| Target {
            host: by_name
                .get(name)
                .map_or_else(|| name.to_string(), |n| n.ip.to_string()),
            name: name.to_string(),
            port: None,
            user: args.user.clone(),
        })
        .collect();

    let mut ssh_options = Vec::new();
    if let Some(cfg) = &args.ssh_config {
        ssh_options.extend(["-F".to_string(), cfg.display().to_string()]);
    }
    ssh_options.extend(args.ssh_args.iter().cloned());
    // The cluster's host keys (compose nodes regen), when the user's own
    // known_hosts is not told otherwise.
    let known = compose_tree::Layout::new(root).known_hosts();
    if known.is_file() && !ssh_options.iter().any(|o| o.contains("UserKnownHostsFile")) {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        ssh_options.extend([
            "-o".to_string(),
            format!(
                "UserKnownHostsFile={} {home}/.ssh/known_hosts",
                known.display()
            ),
        ]);
    }
    // Ctrl-C: stop the ssh processes and report what finished.
    compose_cli::interrupt::catch()?;
    let opts = Options {
        fanout: args.fanout,
        timeout: args.timeout.map(Duration::from_secs),
        connect_timeout: Duration::from_secs(args.connect_timeout),
        ssh_options,
        cancel: Some(compose_cli::interrupt::flag()),
        ..Options::default()
    };
    let command = args.command.join(" ");
    let total = targets.len();
    let tty = std::io::stderr().is_terminal();
    let mut done = 0;
    let results = run(&targets, &command, &opts, |r| {
        done += 1;
        if tty {
            eprint!("\r\x1b[K[{done}/{total}] {} {}", r.name, outcome_text(r));
        }
    });
    if tty {
        eprint!("\r\x1b[K");
    }
    let failed = results.iter().filter(|r| !r.ok()).count();

    if args.json {
        let rows: Vec<JsonResult> = results
            .iter()
            .map(|r| JsonResult {
                node: &r.name,
                outcome: match r.outcome {
                    Outcome::Exited(_) if r.ssh_failed() => "ssh-error".into(),
                    Outcome::Exited(_) => "exited".into(),
                    Outcome::Signaled(_) => "signaled".into(),
                    Outcome::TimedOut => "timeout".into(),
                    Outcome::Cancelled => "cancelled".into(),
                    Outcome::SpawnFailed(_) => "not-started".into(),
                },
                exit: match r.outcome {
                    Outcome::Exited(c) => Some(c),
                    _ => None,
                },
                stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
                seconds: r.elapsed.as_secs_f64(),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print_folded(&results, args.no_fold)?;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn banner(out: &mut impl Write, title: &str) -> std::io::Result<()> {
    let line = "-".repeat(title.len().clamp(15, 72));
    writeln!(out, "{line}\n{title}\n{line}")
}

/// ClusterShell's `-b` layout: identical output once per node set (stdout,
/// then stderr), then the exit table.
fn print_folded(results: &[NodeResult], no_fold: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for stream in [Stream::Stdout, Stream::Stderr] {
        let groups: Vec<(String, Vec<u8>)> = if no_fold {
            results
                .iter()
                .map(|r| {
                    let bytes = match stream {
                        Stream::Stdout => r.stdout.clone(),
                        Stream::Stderr => r.stderr.clone(),
                    };
                    (r.name.clone(), bytes)
                })
                .filter(|(_, b)| !b.is_empty())
                .collect()
        } else {
            group_by_output(results, stream)
                .into_iter()
                .filter(|g| !g.output.is_empty())
                .map(|g| {
                    let set = NodeSet::from_names(g.names.iter().cloned());
                    (format!("{set} ({})", set.len()), g.output)
                })
                .collect()
        };
        for (title, bytes) in groups {
            let title = match stream {
                Stream::Stdout => title,
                Stream::Stderr => format!("{title} stderr"),
            };
            banner(&mut out, &title)?;
            out.write_all(&bytes)?;
            if !bytes.ends_with(b"\n") {
                writeln!(out)?;
            }
        }
    }
    // Exit statuses, by node set.
    let mut by_outcome: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in results {
        by_outcome
            .entry(outcome_text(r))
            .or_default()
            .push(r.name.clone());
    }
    writeln!(out, "{:<40} EXIT", "NODES")?;
    for (outcome, names) in &by_outcome {
        writeln!(
            out,
            "{:<40} {outcome}",
            NodeSet::from_names(names.iter().cloned()).fold()
        )?;
    }
    Ok(())
}
