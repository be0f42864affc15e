//! What boot-test does with its lab:
//!
//! 1. publish the snapshot (generation 1 of the scratch tree), power every
//!    guest on at once, wait for each marker, run the in-guest checks;
//! 2. with `upgrade_to`: publish the other snapshot (generation 2) and
//!    power-cycle guest 1 into it while guest 2 keeps reading a file that
//!    differs between the two from its (old) root; check guest 1 now reads
//!    the new content; restart compose serve under both running guests:
//!    each keeps reading its own generation; roll back to generation 1,
//!    power-cycle guest 1 again: the old snapshot and content are back.

use super::checks::{distinct_machine_ids, node_file_checks, run_checks};
use super::lab::{Expect, Lab};
use super::{summary, GuestResult, Options, Report, Step};
use crate::diff::{diff_snapshots, ChangeKind, DiffOptions};
use anyhow::{bail, Context, Result};
use compose_store::SnapshotInfo;
use sha2::{Digest as _, Sha256};
use std::path::Path;
use std::time::Duration;

pub fn run(opts: &Options, progress: &mut dyn FnMut(&str)) -> Result<Report> {
    let store = compose_store::Store::open_existing(&opts.store)?;
    let snap = store.resolve(&opts.reference)?;
    let upgrade = match &opts.upgrade_to {
        Some(r) => {
            let s = store.resolve(r)?;
            if s.image != snap.image || s.id == snap.id {
                bail!(
                    "--upgrade-to {r} must be another snapshot of image {} (it is {}@{})",
                    snap.image,
                    s.image,
                    s.id
                );
            }
            Some(s)
        }
        None => None,
    };
    let mut lab = Lab::start(opts, &snap.image, progress)?;
    progress(&format!("publishing {}@{} ...", snap.image, snap.id));
    let pubrep = lab.publish(&snap)?;
    let gen1 = pubrep.generation.number;
    progress(&format!(
        "published generation {gen1} in {:.1}s; kernel command line: {}",
        pubrep.seconds, pubrep.generation.cmdline
    ));
    let want1 = Expect {
        snapshot: snap.id.to_string(),
        generation: format!("{}/{gen1}", snap.image),
    };

    let all: Vec<usize> = (0..lab.guests.len()).collect();
    for &i in &all {
        lab.power_on(i)?;
        let g = &lab.guests[i];
        progress(&format!(
            "powered on {} (MAC {}, IP {}, tap {})",
            g.hostname, g.mac, g.ip, g.tap
        ));
    }
    let mut boots = lab.wait_boots(
        &all,
        &want1,
        progress,
        Duration::from_secs(3600),
        &mut |_| {},
    );
    let mut steps = Vec::new();
    if opts.checks {
        for (i, r) in boots.iter_mut().enumerate() {
            check_boot(&mut lab, i, r, progress);
        }
        let per_guest: Vec<_> = boots.iter().map(|b| b.checks.clone()).collect();
        if let Some(c) = distinct_machine_ids(&per_guest) {
            steps.push(Step {
                name: c.name.to_string(),
                ok: c.ok,
                detail: c.detail,
            });
        }
    }
    if opts.checks && boots.iter().all(GuestResult::ok) {
        if let Some(s) = exec_over_ssh(&mut lab, &snap.id.to_string()) {
            progress(&format!(
                "exec over ssh {}: {}",
                if s.ok { "ok" } else { "FAILED" },
                s.detail
            ));
            steps.push(s);
        }
    }
    if let Some(snap2) = &upgrade {
        if boots.iter().all(GuestResult::ok) {
            upgrade_and_back(
                &mut lab, &snap, snap2, gen1, &mut boots, &mut steps, progress,
            );
        } else {
            steps.push(step("upgrade", false, "skipped: the first boots failed"));
        }
    }
    lab.stop();
    let logs = match &opts.keep_logs {
        Some(dir) => {
            lab.keep_logs(dir, &summary(&boots))?;
            Some(dir.clone())
        }
        None => None,
    };
    Ok(Report {
        snapshot: snap.id,
        image: snap.image.clone(),
        generation: gen1,
        cmdline: pubrep.generation.cmdline.clone(),
        publish_seconds: pubrep.seconds,
        boots,
        steps,
        logs,
    })
}

/// When the image runs sshd (hpc-node does): `hostname` on every guest
/// through compose exec's engine and the system ssh, as root with the key
/// regen authorized, checking each guest's host key against the cluster's
/// known_hosts. Proves the per-node files reach the nodes and the parallel
/// shell reaches booted nodes. None for images without sshd.
fn exec_over_ssh(lab: &mut Lab, snapshot: &str) -> Option<Step> {
    if !lab.root_of(snapshot).join("usr/sbin/sshd").exists() {
        return None;
    }
    let (ssh, ssh_options) = match lab.ssh_options() {
        Ok(x) => x,
        Err(e) => return Some(step("exec-over-ssh", false, format!("{e:#}"))),
    };
    let targets: Vec<compose_pshell::Target> = lab
        .guests
        .iter()
        .map(|g| compose_pshell::Target {
            name: g.hostname.clone(),
            host: g.ip.clone(),
            port: None,
            user: Some("root".into()),
        })
        .collect();
    let opts = compose_pshell::Options {
        ssh,
        ssh_options,
        timeout: Some(Duration::from_secs(120)),
        connect_timeout: Duration::from_secs(60),
        ..Default::default()
    };
    let results = compose_pshell::run(&targets, "hostname", &opts, |_| {});
    let bad: Vec<String> = results
        .iter()
        .filter(|r| !r.ok() || String::from_utf8_lossy(&r.stdout).trim() != r.name)
        .map(|r| {
            format!(
                "{}: {:?} {:?} {}",
                r.name,
                r.outcome,
                String::from_utf8_lossy(&r.stdout).trim(),
                String::from_utf8_lossy(&r.stderr).trim()
            )
        })
        .collect();
    let groups = compose_pshell::group_by_output(&results, compose_pshell::Stream::Stdout);
    Some(step(
        "exec-over-ssh",
        bad.is_empty(),
        if bad.is_empty() {
            format!(
                "`hostname` over ssh (strict host keys from regen) answered by {} guests in {} distinct groups",
                results.len(),
                groups.len()
            )
        } else {
            bad.join("; ")
        },
    ))
}

fn step(name: &str, ok: bool, detail: impl Into<String>) -> Step {
    Step {
        name: name.to_string(),
        ok,
        detail: detail.into(),
    }
}

/// Runs the in-guest checks on a successful boot of guest `i`.
fn check_boot(lab: &mut Lab, i: usize, r: &mut GuestResult, progress: &mut dyn FnMut(&str)) {
    if r.error.is_some() {
        return;
    }
    let snapshot = r
        .marker
        .as_deref()
        .and_then(|m| {
            m.split_whitespace()
                .find_map(|w| w.strip_prefix("snapshot="))
        })
        .unwrap_or_default()
        .to_string();
    let root = lab.root_of(&snapshot);
    let hostname = r.guest.hostname.clone();
    let firmware = r.guest.firmware;
    let all: Vec<String> = lab.guests.iter().map(|g| g.hostname.clone()).collect();
    let tree = lab.tree.path().to_path_buf();
    match lab.shell(i) {
        Ok(sh) => {
            r.checks = run_checks(sh, &hostname, &snapshot, &root, firmware);
            r.checks
                .extend(node_file_checks(sh, &hostname, &all, &tree));
        }
        Err(e) => {
            r.error = Some(format!("in-guest checks: {e:#}"));
            return;
        }
    }
    for c in &r.checks {
        progress(&format!(
            "{hostname}: check {} {}: {}",
            c.name,
            if c.ok { "ok" } else { "FAILED" },
            c.detail.replace('\n', " | ")
        ));
    }
}

/// A file whose content differs between the two snapshots, and its sha256
/// in each published root (None where it does not exist).
fn probe_file(
    lab: &Lab,
    a: &SnapshotInfo,
    b: &SnapshotInfo,
) -> Result<(String, Option<String>, String)> {
    let diff = diff_snapshots(&lab.store, &a.id, &b.id, &DiffOptions::default())?;
    let (ra, rb) = (
        lab.root_of(&a.id.to_string()),
        lab.root_of(&b.id.to_string()),
    );
    for f in &diff.files {
        let content = match f.change {
            ChangeKind::Changed => f.details.iter().any(|d| d == "content"),
            ChangeKind::Added => f.details.iter().any(|d| d == "file"),
            ChangeKind::Removed => false,
        };
        let rel = f.path.trim_start_matches('/');
        if content && rb.join(rel).is_file() {
            let new = sha256_file(&rb.join(rel))?;
            let old = if ra.join(rel).is_file() {
                Some(sha256_file(&ra.join(rel))?)
            } else {
                None
            };
            return Ok((f.path.clone(), old, new));
        }
    }
    bail!(
        "{} and {} differ in no regular file's content: nothing to tell them apart by",
        a.id,
        b.id
    )
}

fn sha256_file(p: &Path) -> Result<String> {
    let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// `sha256sum PATH` in guest `i` (None: no such file), with the page
/// cache dropped first so the bytes really come over NFS.
fn guest_sum(lab: &mut Lab, i: usize, path: &str) -> Result<Option<String>> {
    let out = lab.shell(i)?.run(
        &format!(
            "echo 3 > /proc/sys/vm/drop_caches; if [ -e {path} ]; then sha256sum {path}; else echo absent; fi"
        ),
        Duration::from_secs(90),
    )?;
    if !out.ok() {
        bail!("sha256sum {path} failed: {}", out.text.trim());
    }
    let first = out.text.split_whitespace().next().unwrap_or_default();
    Ok((first != "absent").then(|| first.to_string()))
}

#[allow(clippy::too_many_arguments)]
fn upgrade_and_back(
    lab: &mut Lab,
    snap1: &SnapshotInfo,
    snap2: &SnapshotInfo,
    gen1: u64,
    boots: &mut Vec<GuestResult>,
    steps: &mut Vec<Step>,
    progress: &mut dyn FnMut(&str),
) {
    let (path, old_sum, new_sum) = match lab.publish(snap2).and_then(|p| {
        progress(&format!(
            "published generation {} ({}) in {:.1}s",
            p.generation.number, snap2.id, p.seconds
        ));
        probe_file(lab, snap1, snap2).map(|probe| (p, probe))
    }) {
        Ok((p, probe)) => {
            steps.push(step(
                "publish-upgrade",
                true,
                format!("generation {} = {}", p.generation.number, snap2.id),
            ));
            probe
        }
        Err(e) => {
            steps.push(step("publish-upgrade", false, format!("{e:#}")));
            return;
        }
    };
    let gen2 = gen1 + 1;
    progress(&format!(
        "probe file {path}: old {old_sum:?}, new {new_sum}"
    ));
    let want2 = Expect {
        snapshot: snap2.id.to_string(),
        generation: format!("{}/{gen2}", snap2.image),
    };
    let want1 = Expect {
        snapshot: snap1.id.to_string(),
        generation: format!("{}/{gen1}", snap1.image),
    };

    // Guest 1 reboots into generation 2; guest 2 keeps reading generation 1.
    let mut reads = Vec::new();
    let reboot = |lab: &mut Lab,
                  want: &Expect,
                  want_sum: Option<&String>,
                  label: &str,
                  reads: &mut Vec<Result<Option<String>>>,
                  progress: &mut dyn FnMut(&str)|
     -> GuestResult {
        progress(&format!(
            "{label}: power-cycling {}",
            lab.guests[0].hostname
        ));
        if let Err(e) = lab.power_on(0) {
            return GuestResult {
                guest: lab.guests[0].clone(),
                boot: 0,
                expect: want.generation.clone(),
                marker: None,
                seconds: None,
                kernel_seconds: None,
                phases: Default::default(),
                checks: Vec::new(),
                error: Some(format!("power-on: {e:#}")),
                tail: String::new(),
            };
        }
        let p = path.clone();
        let mut r = lab
            .wait_boots(&[0], want, progress, Duration::from_secs(10), &mut |lab| {
                reads.push(guest_sum(lab, 1, &p));
            })
            .remove(0);
        check_boot(lab, 0, &mut r, progress);
        if r.ok() {
            match guest_sum(lab, 0, &path) {
                Ok(sum) if sum.as_ref() == want_sum => r.checks.push(super::Check {
                    name: "probe-file-content",
                    ok: true,
                    detail: format!("{path} sha256 {sum:?}"),
                }),
                Ok(sum) => r.checks.push(super::Check {
                    name: "probe-file-content",
                    ok: false,
                    detail: format!("{path} sha256 {sum:?}, expected {want_sum:?}"),
                }),
                Err(e) => r.checks.push(super::Check {
                    name: "probe-file-content",
                    ok: false,
                    detail: format!("{e:#}"),
                }),
            }
        }
        r
    };
    let r = reboot(lab, &want2, Some(&new_sum), "upgrade", &mut reads, progress);
    boots.push(r);

    // The other guest kept working on its old root throughout.
    let final_read = guest_sum(lab, 1, &path);
    reads.push(final_read);
    let cmdline = lab
        .shell(1)
        .and_then(|sh| sh.run("cat /proc/cmdline", Duration::from_secs(60)))
        .map(|o| o.text)
        .unwrap_or_default();
    let bad: Vec<String> = reads
        .iter()
        .filter_map(|r| match r {
            Ok(sum) if *sum == old_sum => None,
            Ok(sum) => Some(format!("read sha256 {sum:?}, expected {old_sum:?}")),
            Err(e) => Some(format!("{e:#}")),
        })
        .collect();
    let still_old = cmdline.contains(&format!("compose.snapshot={}", snap1.id));
    steps.push(step(
        "other-guest-kept-running",
        bad.is_empty() && !reads.is_empty() && still_old,
        format!(
            "{} read {path} {} times over NFS while {} rebooted ({} bad{}); still on {}",
            lab.guests[1].hostname,
            reads.len(),
            lab.guests[0].hostname,
            bad.len(),
            bad.first().map(|b| format!(": {b}")).unwrap_or_default(),
            if still_old {
                "generation 1"
            } else {
                "ANOTHER generation"
            }
        ),
    ));

    // compose serve restarts (`systemctl restart`, an upgrade of compose):
    // both running guests keep reading through the mounts they have, as
    // file handles survive a restart.
    let restarted = lab.restart_serve().and_then(|()| {
        progress("restarted compose serve under the running guests");
        Ok((guest_sum(lab, 0, &path)?, guest_sum(lab, 1, &path)?))
    });
    steps.push(match restarted {
        Ok((a, b)) => step(
            "serve-restart-keeps-mounts",
            a.as_ref() == Some(&new_sum) && b == old_sum,
            format!(
                "after the restart {} read {path} as {a:?} (generation 2), {} as {b:?} (generation 1)",
                lab.guests[0].hostname, lab.guests[1].hostname
            ),
        ),
        Err(e) => step("serve-restart-keeps-mounts", false, format!("{e:#}")),
    });

    // Roll back and reboot: the old snapshot and content again.
    match lab.rollback(&snap1.image, gen1) {
        Ok(rb) => steps.push(step(
            "rollback",
            rb.to == gen1,
            format!("{} generation {:?} -> {}", rb.image, rb.from, rb.to),
        )),
        Err(e) => {
            steps.push(step("rollback", false, format!("{e:#}")));
            return;
        }
    }
    let mut ignored = Vec::new();
    let r = reboot(
        lab,
        &want1,
        old_sum.as_ref(),
        "rollback",
        &mut ignored,
        progress,
    );
    boots.push(r);
}
