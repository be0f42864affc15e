//! The `sshd_` tier: compose-pshell against real sshd instances on loopback.
//! Needs root and OpenSSH; run with `cargo test -p compose-pshell -- --ignored`.

mod common;

use common::Cluster;
use compose_pshell::{group_by_output, run, NodeResult, Outcome, Stream, MAX_OUTPUT_BYTES};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn by_name<'a>(results: &'a [NodeResult], name: &str) -> &'a NodeResult {
    results
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no result for {name}"))
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("utf-8 output")
}

fn assert_all_ok(results: &[NodeResult]) {
    for r in results {
        assert!(
            r.ok(),
            "{}: {:?}, stderr: {}",
            r.name,
            r.outcome,
            String::from_utf8_lossy(&r.stderr)
        );
    }
}

#[test]
#[ignore = "sshd tier: root + openssh-server; cargo test -p compose-pshell -- --ignored"]
fn sshd_identical_output_folds_and_distinct_output_splits() {
    let cluster = Cluster::start(4, &[]);
    let targets = cluster.targets();
    let mut done = 0;
    let results = run(&targets, "hostname; echo x", &cluster.options(), |_| {
        done += 1
    });
    assert_eq!(done, 4);
    assert_all_ok(&results);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let groups = group_by_output(&results, Stream::Stdout);
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0].names, cluster.names);
    assert_eq!(text(&groups[0].output), format!("{}\nx\n", hostname.trim()));

    let results = run(
        &targets,
        "echo $COMPOSE_NODE; echo warn >&2",
        &cluster.options(),
        |_| {},
    );
    assert_all_ok(&results);
    let stdout = group_by_output(&results, Stream::Stdout);
    let folded: Vec<(Vec<String>, &str)> = stdout
        .iter()
        .map(|g| (g.names.clone(), text(&g.output)))
        .collect();
    let expected: Vec<(Vec<String>, String)> = cluster
        .names
        .iter()
        .map(|n| (vec![n.clone()], format!("{n}\n")))
        .collect();
    let expected: Vec<(Vec<String>, &str)> = expected
        .iter()
        .map(|(n, o)| (n.clone(), o.as_str()))
        .collect();
    assert_eq!(folded, expected);
    let stderr = group_by_output(&results, Stream::Stderr);
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    assert_eq!(
        (stderr[0].names.clone(), text(&stderr[0].output)),
        (cluster.names.clone(), "warn\n")
    );
}

#[test]
#[ignore = "sshd tier: root + openssh-server; cargo test -p compose-pshell -- --ignored"]
fn sshd_failing_command_shows_on_its_node_only() {
    let cluster = Cluster::start(3, &[]);
    let cmd = r#"[ "$COMPOSE_NODE" != n02 ] || exit 3; echo ok"#;
    let results = run(&cluster.targets(), cmd, &cluster.options(), |_| {});
    assert_eq!(by_name(&results, "n02").outcome, Outcome::Exited(3));
    assert!(!by_name(&results, "n02").ssh_failed());
    for name in ["n01", "n03"] {
        let r = by_name(&results, name);
        assert!(r.ok(), "{name}: {:?}", r.outcome);
        assert_eq!(text(&r.stdout), "ok\n");
    }
}

#[test]
#[ignore = "sshd tier: root + openssh-server; cargo test -p compose-pshell -- --ignored"]
fn sshd_hanging_node_times_out_and_the_run_ends() {
    let cluster = Cluster::start(3, &[]);
    let opts = compose_pshell::Options {
        // Long enough for the other nodes to finish on a loaded box.
        timeout: Some(Duration::from_secs(20)),
        ..cluster.options()
    };
    // Returning at all (not after 600 s) is the point of this test.
    let cmd = r#"echo started; [ "$COMPOSE_NODE" != n02 ] || sleep 600; echo done"#;
    let results = run(&cluster.targets(), cmd, &opts, |_| {});
    let hung = by_name(&results, "n02");
    assert_eq!(hung.outcome, Outcome::TimedOut);
    assert_eq!(
        text(&hung.stdout),
        "started\n",
        "output before the timeout is kept"
    );
    for name in ["n01", "n03"] {
        let r = by_name(&results, name);
        assert!(r.ok(), "{name}: {:?}", r.outcome);
        assert_eq!(text(&r.stdout), "started\ndone\n");
    }
}

#[test]
#[ignore = "sshd tier: root + openssh-server; cargo test -p compose-pshell -- --ignored"]
fn sshd_refused_connection_is_ssh_failed() {
    let cluster = Cluster::start(2, &["down"]);
    let mut targets = cluster.targets();
    targets.insert(1, compose_pshell::Target::named("down"));
    let results = run(&targets, "true", &cluster.options(), |_| {});
    let names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["n01", "down", "n02"], "results in target order");
    let down = by_name(&results, "down");
    assert!(down.ssh_failed(), "{:?}", down.outcome);
    assert!(
        text(&down.stderr).contains("Connection refused"),
        "stderr: {}",
        text(&down.stderr)
    );
    assert!(by_name(&results, "n01").ok() && by_name(&results, "n02").ok());
}

#[test]
#[ignore = "sshd tier: root + openssh-server; cargo test -p compose-pshell -- --ignored"]
fn sshd_fanout_one_runs_every_node_one_after_another() {
    let cluster = Cluster::start(4, &[]);
    let opts = compose_pshell::Options {
        fanout: 1,
        ..cluster.options()
    };
    let mut order = Vec::new();
    let results = run(&cluster.targets(), "echo $COMPOSE_NODE", &opts, |r| {
        order.push(r.name.clone())
    });
    assert_all_ok(&results);
    // One at a time, so they finish in target order.
    assert_eq!(order, cluster.names);
    for r in &results {
        assert_eq!(text(&r.stdout), format!("{}\n", r.name));
    }
}

#[test]
#[ignore = "sshd tier: root + openssh-server; cargo test -p compose-pshell -- --ignored"]
fn sshd_cancel_kills_running_nodes_and_starts_no_more() {
    let cluster = Cluster::start(4, &[]);
    let cancel = Arc::new(AtomicBool::new(false));
    let opts = compose_pshell::Options {
        fanout: 2,
        cancel: Some(cancel.clone()),
        ..cluster.options()
    };
    // n01 ends at once; n02 hangs; n03 and n04 wait for a free slot.
    let cmd = r#"[ "$COMPOSE_NODE" = n01 ] || sleep 600"#;
    let results = run(&cluster.targets(), cmd, &opts, |r| {
        if r.name == "n01" {
            cancel.store(true, Ordering::SeqCst);
        }
    });
    assert!(
        by_name(&results, "n01").ok(),
        "{:?}",
        by_name(&results, "n01").outcome
    );
    for name in ["n02", "n03", "n04"] {
        assert_eq!(
            by_name(&results, name).outcome,
            Outcome::Cancelled,
            "{name}"
        );
    }
    for name in ["n03", "n04"] {
        assert_eq!(
            by_name(&results, name).elapsed,
            Duration::ZERO,
            "{name} was never started"
        );
    }
}

#[test]
#[ignore = "sshd tier: root + openssh-server; cargo test -p compose-pshell -- --ignored"]
fn sshd_large_output_on_both_streams_does_not_deadlock_and_is_capped() {
    let cluster = Cluster::start(2, &[]);
    let mib = 1 << 20;
    // stderr first: a reader that drained stdout to EOF before stderr would
    // leave ssh blocked on a full stderr pipe forever.
    let big = 8 * mib;
    let over = MAX_OUTPUT_BYTES + 4 * mib;
    let cmd = format!(
        r#"if [ "$COMPOSE_NODE" = n01 ]; then head -c {big} /dev/zero >&2; head -c {big} /dev/zero;
           else head -c {over} /dev/zero; fi"#
    );
    let results = run(&cluster.targets(), &cmd, &cluster.options(), |_| {});
    assert_all_ok(&results);
    let n01 = by_name(&results, "n01");
    assert_eq!((n01.stdout.len(), n01.stderr.len()), (big, big));
    let n02 = by_name(&results, "n02");
    assert!(n02.stdout[..MAX_OUTPUT_BYTES].iter().all(|&b| b == 0));
    let marker = String::from_utf8_lossy(&n02.stdout[MAX_OUTPUT_BYTES..]);
    assert_eq!(
        marker,
        format!(
            "\n[compose: output truncated after {MAX_OUTPUT_BYTES} bytes, {} more bytes dropped]\n",
            4 * mib
        )
    );
}
