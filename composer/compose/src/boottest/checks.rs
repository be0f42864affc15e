//! In-guest checks, run through the test shell once a guest reported its
//! boot: the node runs the snapshot it should, on the layout the netboot
//! layer promises (read-only NFS lower, tmpfs upper, writes kept in RAM),
//! with the server honouring file permissions.

use super::shell::Shell;
use super::Firmware;
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    /// What was seen (the evidence on success, the reason on failure).
    pub detail: String,
}

const T: Duration = Duration::from_secs(90);

fn check(name: &'static str, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name,
        ok,
        detail: detail.into().trim().to_string(),
    }
}

/// Runs every check on one guest. `root` is the published root directory
/// on the server (to prove a write in the guest did not reach it).
pub fn run_checks(
    sh: &mut Shell,
    hostname: &str,
    snapshot: &str,
    root: &Path,
    firmware: Firmware,
) -> Vec<Check> {
    let mut out = Vec::new();
    let mut run = |cmd: &str| match sh.run(cmd, T) {
        Ok(o) => (o.status, o.text),
        Err(e) => (-1, format!("{e:#}")),
    };

    // The kernel shows /sys/firmware/efi only when UEFI started it: proof
    // that the guest came up through the loader its firmware asked for.
    let want = match firmware {
        Firmware::Bios => "bios",
        Firmware::Uefi => "uefi",
    };
    let (st, text) = run("if [ -d /sys/firmware/efi ]; then echo uefi; else echo bios; fi");
    out.push(check(
        "firmware",
        st == 0 && text.trim() == want,
        format!("booted by {} (expected {want})", text.trim()),
    ));

    let (st, text) = run("cat /proc/cmdline");
    out.push(check(
        "cmdline-snapshot",
        st == 0 && text.contains(&format!("compose.snapshot={snapshot}")),
        text,
    ));

    let (st, text) = run("hostname");
    out.push(check("hostname", st == 0 && text.trim() == hostname, text));

    let (st, text) = run("findmnt -n -o FSTYPE,OPTIONS /");
    out.push(check(
        "root-is-overlay",
        st == 0 && text.starts_with("overlay"),
        text,
    ));

    let (st, text) = run("findmnt -n -o FSTYPE,OPTIONS,SOURCE /run/compose/lower");
    let fields: Vec<&str> = text.split_whitespace().collect();
    out.push(check(
        "lower-is-read-only-nfs",
        st == 0
            && fields.first().is_some_and(|f| f.starts_with("nfs"))
            && fields
                .get(1)
                .is_some_and(|o| o.split(',').any(|x| x == "ro")),
        text.clone(),
    ));

    // Root may read /etc/shadow; nobody (uid 65534) must not: the NFS server
    // checks AUTH_UNIX credentials against the file's mode on ACCESS and READ.
    // The same user must still run programs and read world-readable files.
    let nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups";
    let (st_root, root_text) = run("grep -c '^root:' /etc/shadow");
    let (st_ok, ok_text) = run(&format!("{nobody} cat /etc/os-release"));
    let (st, text) = run(&format!("{nobody} cat /etc/shadow"));
    out.push(check(
        "non-root-runs-programs",
        st_ok == 0 && ok_text.contains("ID=debian"),
        format!(
            "uid 65534: cat /etc/os-release: exit {st_ok}: {}",
            ok_text.lines().next().unwrap_or_default()
        ),
    ));
    out.push(check(
        "shadow-unreadable-by-non-root",
        st_root == 0 && root_text.trim() == "1" && st != 0 && text.contains("Permission denied"),
        format!(
            "root: exit {st_root}, {} root entry; uid 65534: exit {st}: {}",
            root_text.trim(),
            text.trim()
        ),
    ));

    // A write to / lands in the tmpfs upper layer, never on the server.
    let probe = format!("compose-probe-{hostname}");
    let (st, text) = run(&format!(
        "echo {probe} > /compose-probe && cat /compose-probe && \
         cat /run/compose/rw/upper/compose-probe && findmnt -n -o FSTYPE /run/compose/rw"
    ));
    let on_server = root.join("compose-probe").exists();
    out.push(check(
        "writes-land-in-tmpfs",
        st == 0
            && text.matches(&probe).count() == 2
            && text.trim_end().ends_with("tmpfs")
            && !on_server,
        format!(
            "{text} (on the server: {})",
            if on_server { "FOUND" } else { "absent" }
        ),
    ));

    let (st, text) = run("cat /etc/machine-id");
    out.push(check(
        "machine-id",
        st == 0 && text.trim().len() == 32,
        text,
    ));
    out
}

/// The node's own files from `compose nodes regen` (unpacked from its
/// overlay.cpio by the initramfs): its host key is the one the server keeps
/// for it, private key and /root keep their modes, /etc/hosts names every
/// guest.
pub fn node_file_checks(sh: &mut Shell, hostname: &str, all: &[String], tree: &Path) -> Vec<Check> {
    let mut run = |cmd: &str| match sh.run(cmd, T) {
        Ok(o) => (o.status, o.text),
        Err(e) => (-1, format!("{e:#}")),
    };
    let want = std::fs::read_to_string(
        compose_tree::Layout::new(tree)
            .hostkeys_dir()
            .join(hostname)
            .join(compose_cluster::hostkey::PUBLIC),
    )
    .unwrap_or_default();
    let (st, key) = run("cat /etc/ssh/ssh_host_ed25519_key.pub");
    let (st2, modes) = run("stat -c '%a %U' /etc/ssh/ssh_host_ed25519_key /root");
    let (st3, hosts) = run("cat /etc/hosts");
    let missing: Vec<&String> = all.iter().filter(|h| !hosts.contains(h.as_str())).collect();
    vec![
        check(
            "node-files-host-key",
            st == 0 && !want.is_empty() && key.trim() == want.trim(),
            format!("guest: {} / server: {}", key.trim(), want.trim()),
        ),
        check(
            "node-files-modes",
            st2 == 0
                && modes.split_whitespace().collect::<Vec<_>>() == ["600", "root", "700", "root"],
            modes.replace('\n', " "),
        ),
        check(
            "node-files-hosts",
            st3 == 0 && missing.is_empty(),
            format!("/etc/hosts lacks {missing:?}"),
        ),
    ]
}

/// Every guest must have a machine-id of its own (fresh per boot, not the
/// image's).
pub fn distinct_machine_ids(per_guest: &[Vec<Check>]) -> Option<Check> {
    let ids: Vec<&str> = per_guest
        .iter()
        .filter_map(|c| c.iter().find(|c| c.name == "machine-id" && c.ok))
        .map(|c| c.detail.as_str())
        .collect();
    if ids.len() < 2 {
        return None;
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    Some(check(
        "machine-ids-distinct",
        unique.len() == ids.len(),
        ids.join(" "),
    ))
}
