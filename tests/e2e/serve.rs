//! `compose serve` in a network namespace, against real clients in another:
//! busybox udhcpc (DHCP + PXE options), tftp-hpa (pxelinux files through the
//! publish tree's symlinks) and libnfs (the published root over NFSv3,
//! permissions honoured).

use super::*;
use compose_e2e::netns::*;
use compose_e2e::*;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

/// A scratch publish tree holding the fixture's cold build as minimal/1,
/// and an inventory with one node (node01, 52:54:00:77:00:01, 10.77.0.11).
/// Returns (scratch dir, tree, the root's path, inventory path).
pub fn published_tree(prefix: &str) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let f = fixture();
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/var/tmp")
        .unwrap();
    let tree = dir.path().join("tree");
    let snapshot = f.cold["snapshot"].as_str().unwrap();
    let out = Command::new(compose_bin())
        .args([
            "--store",
            f.store.to_str().unwrap(),
            "--root",
            tree.to_str().unwrap(),
        ])
        .args(["publish", &format!("minimal@{snapshot}")])
        .output()
        .unwrap();
    ok(&out);
    let root: PathBuf = tree
        .join("roots")
        .join(snapshot.trim_start_matches("sha256:"));
    let nodes = dir.path().join("nodes.toml");
    fs::write(
        &nodes,
        "[[node]]\nhostname = \"node01\"\nmac = \"52:54:00:77:00:01\"\nip = \"10.77.0.11\"\nimage = \"minimal\"\ngroups = [\"compute\"]\n",
    )
    .unwrap();
    (dir, tree, root, nodes)
}

#[test]
fn netns_serve_dhcp_tftp_nfs_with_real_clients() {
    for (prog, pkg) in [
        ("busybox", "busybox"),
        ("tftp", "tftp-hpa"),
        ("nfs-cat", "libnfs-utils"),
        ("nfs-ls", "libnfs-utils"),
    ] {
        require_program(prog, pkg);
    }
    let f = fixture();
    let snapshot = f.cold["snapshot"].as_str().unwrap();
    let (dir, tree, root, nodes) = published_tree("compose-serve-");
    let net = Net::new("s");
    let log = dir.path().join("serve.log");
    let serve = Serve::start(&net, &tree, &nodes, &[], &log);

    // DHCP: the static lease, hostname and PXE boot file, from busybox udhcpc.
    let script = dir.path().join("udhcpc.sh");
    let env_out = dir.path().join("udhcpc.env");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = bound ] && env > {}\nexit 0\n",
            env_out.display()
        ),
    )
    .unwrap();
    sh(&["chmod", "+x", script.to_str().unwrap()]);
    let out = net.in_cli(&[
        "busybox",
        "udhcpc",
        "-i",
        &net.cli_if,
        "-n",
        "-q",
        "-f",
        "-t",
        "5",
        "-T",
        "1",
        "-V",
        "PXEClient",
        "-O",
        "hostname",
        "-O",
        "bootfile",
        "-s",
        script.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "udhcpc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env = fs::read_to_string(&env_out).unwrap();
    for want in [
        "ip=10.77.0.11",
        "hostname=node01",
        "boot_file=pxelinux.0",
        "siaddr=10.77.0.1",
    ] {
        assert!(
            env.lines().any(|l| l == want),
            "udhcpc env lacks {want}:\n{env}"
        );
    }
    net.client_address("10.77.0.11/24");

    // TFTP: the boot loader, the node's per-MAC entry and the kernel, all
    // reached through the publish tree's symlinks.
    let get = |remote: &str| -> Vec<u8> {
        let local = dir.path().join(remote.replace('/', "_"));
        let out = net.in_cli(&[
            "tftp",
            "-m",
            "binary",
            "10.77.0.1",
            "-c",
            "get",
            remote,
            local.to_str().unwrap(),
        ]);
        assert!(
            out.status.success() && local.exists(),
            "tftp get {remote}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        fs::read(&local).unwrap()
    };
    assert_eq!(
        get("pxelinux.0"),
        fs::read("/usr/lib/PXELINUX/pxelinux.0").unwrap()
    );
    let entry = String::from_utf8(get("pxelinux.cfg/01-52-54-00-77-00-01")).unwrap();
    assert!(
        entry.contains(&format!("nfsroot={}", root.display())),
        "{entry}"
    );
    let kernel = get("images/minimal/gen/1/vmlinuz");
    assert_eq!(
        kernel.len() as u64,
        fs::metadata(tree.join("images/minimal/gen/1/vmlinuz"))
            .unwrap()
            .len()
    );

    // NFS: the published root, read-only, with permissions honoured.
    let url = |path: &str, query: &str| {
        format!("nfs://10.77.0.1{}/{path}?version=3{query}", root.display())
    };
    let out = net.in_cli(&["nfs-cat", &url("etc/motd", "")]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "minimal compose node\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = net.in_cli(&["nfs-ls", &url("etc", "")]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("motd"));
    let as_root = net.in_cli(&["nfs-cat", &url("etc/shadow", "&uid=0&gid=0")]);
    assert!(as_root.status.success() && String::from_utf8_lossy(&as_root.stdout).contains("root:"));
    let as_user = net.in_cli(&["nfs-cat", &url("etc/shadow", "&uid=1000&gid=1000")]);
    assert!(
        !as_user.status.success() || as_user.stdout.is_empty(),
        "a non-root caller read /etc/shadow"
    );

    // SIGTERM: a clean, bounded stop; the log names the lease, transfers and mount.
    let status = serve.stop();
    let text = fs::read_to_string(&log).unwrap();
    assert!(status.success(), "serve exited with {status}:\n{text}");
    // One logfmt line per step, naming the node, the generation and the snapshot.
    let hex = snapshot.trim_start_matches("sha256:");
    for want in [
        "event=dhcp.ack host=node01 mac=52:54:00:77:00:01 ip=10.77.0.11".to_string(),
        "event=tftp.done host=node01 peer=10.77.0.11:".to_string(),
        "file=images/minimal/gen/1/vmlinuz image=minimal gen=1".to_string(),
        "event=nfs.mount host=node01 peer=10.77.0.11:".to_string(),
        format!("snapshot=sha256:{hex}"),
        "compose serve: stopped".to_string(),
    ] {
        assert!(text.contains(&want), "the log lacks {want}:\n{text}");
    }
    // ... and what `compose status` reports from it.
    let boots: serde_json::Value =
        serde_json::from_slice(&fs::read(tree.join("state/boots.json")).unwrap()).unwrap();
    let n = &boots["nodes"]["node01"];
    assert_eq!(n["generation"], "minimal/1", "{boots:#}");
    assert_eq!(n["snapshot"], *snapshot, "{boots:#}");
    assert_eq!(n["ip"], "10.77.0.11", "{boots:#}");
    let out = Command::new(compose_bin())
        .args([
            "--root",
            tree.to_str().unwrap(),
            "status",
            "--json",
            "--nodes",
        ])
        .arg(&nodes)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["hostname"], "node01", "{rows:#}");
    assert_eq!(rows[0]["want"], "minimal/1", "{rows:#}");
    assert_eq!(rows[0]["state"], "current", "{rows:#}");
}

/// HTTP from compose serve with curl from the node's namespace: the boot
/// files (whole, ranged, revalidated), a node's private file refused to
/// another address, `/status.json` and `/metrics`.
#[test]
fn netns_serve_http_boot_files_status_and_metrics() {
    require_program("curl", "curl");
    let (dir, tree, _root, nodes) = published_tree("compose-serve-http-");
    let net = Net::new("h");
    net.client_address("10.77.0.11/24");
    net.client_address("10.77.0.12/24");
    let log = dir.path().join("serve.log");
    let serve = Serve::start(&net, &tree, &nodes, &[], &log);
    wait_for(&log, "http on tcp 10.77.0.1:80", 5);
    let curl = |args: &[&str]| {
        let mut all = vec!["curl", "-sS", "--max-time", "30"];
        all.extend_from_slice(args);
        net.in_cli(&all)
    };
    let base = "http://10.77.0.1";
    let kernel = fs::read(tree.join("images/minimal/gen/1/vmlinuz")).unwrap();

    // The kernel, whole, from the node's address.
    let out = curl(&[
        "--interface",
        "10.77.0.11",
        &format!("{base}/images/minimal/gen/1/vmlinuz"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, kernel, "the kernel over HTTP differs");
    // A range, and a revalidation with the ETag answered 304.
    let out = curl(&[
        "-r",
        "100-199",
        &format!("{base}/images/minimal/gen/1/vmlinuz"),
    ]);
    assert_eq!(out.stdout, kernel[100..200]);
    let head = curl(&["-I", &format!("{base}/images/minimal/gen/1/vmlinuz")]);
    let head = String::from_utf8_lossy(&head.stdout).to_string();
    assert!(head.contains("immutable"), "{head}");
    let etag = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("etag: ")
                .or_else(|| l.strip_prefix("ETag: "))
        })
        .unwrap_or_else(|| panic!("no ETag in {head}"))
        .trim()
        .to_string();
    let out = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        &format!("If-None-Match: {etag}"),
        &format!("{base}/images/minimal/gen/1/vmlinuz"),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "304");
    // A node's own file: another address is refused.
    let code = |from: &str, path: &str| {
        let out = curl(&[
            "--interface",
            from,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{base}/{path}"),
        ]);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(code("10.77.0.12", "nodes/node01/overlay.cpio"), "403");
    assert_ne!(code("10.77.0.11", "nodes/node01/overlay.cpio"), "403");
    // Nothing outside tftp/ and images/ (curl sends the dots as they are).
    let out = curl(&[
        "--path-as-is",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("{base}/images/../../roots/"),
    ]);
    let status = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        status.starts_with('4'),
        "a path out of the tree got {status}"
    );
    // /status.json is compose status --json; /metrics is Prometheus text.
    let out = curl(&[&format!("{base}/status.json")]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["hostname"], "node01", "{rows:#}");
    assert_eq!(rows[0]["want"], "minimal/1", "{rows:#}");
    let out = curl(&[&format!("{base}/metrics")]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    for want in [
        "compose_serve_events_total{event=\"http.done\"}",
        "compose_serve_transfer_bytes_total{proto=\"http\"}",
        "compose_nodes{state=\"booting\"} 1",
    ] {
        assert!(text.contains(want), "/metrics lacks {want}:\n{text}");
    }
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').unwrap();
        assert!(!name.is_empty() && value.parse::<f64>().is_ok(), "{line}");
    }
    assert!(serve.stop().success());
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("event=http.done host=node01 peer=10.77.0.11:")
            && text.contains("file=images/minimal/gen/1/vmlinuz image=minimal gen=1 status=200"),
        "{text}"
    );
}
