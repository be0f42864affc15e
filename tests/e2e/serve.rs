//! `compose serve` in a network namespace, against real clients in another:
//! busybox udhcpc (DHCP + PXE options), tftp-hpa (pxelinux files through the
//! publish tree's symlinks) and libnfs (the published root over NFSv3,
//! permissions honoured).

use super::*;
use compose_e2e::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Two namespaces joined by a veth pair; removed (with the pair) on drop.
struct Net {
    srv: String,
    cli: String,
    srv_if: String,
    cli_if: String,
}

impl Net {
    fn new(tag: &str) -> Net {
        let id = std::process::id() % 100_000;
        let n = Net {
            srv: format!("cs-srv-{tag}-{id}"),
            cli: format!("cs-cli-{tag}-{id}"),
            srv_if: format!("vs{tag}{id}"),
            cli_if: format!("vc{tag}{id}"),
        };
        for ns in [&n.srv, &n.cli] {
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        sh(&[
            "ip", "link", "add", &n.srv_if, "netns", &n.srv, "type", "veth", "peer", "name",
            &n.cli_if, "netns", &n.cli,
        ]);
        sh(&[
            "ip",
            "-n",
            &n.cli,
            "link",
            "set",
            &n.cli_if,
            "address",
            "52:54:00:77:00:01",
        ]);
        sh(&[
            "ip",
            "-n",
            &n.srv,
            "addr",
            "add",
            "10.77.0.1/24",
            "dev",
            &n.srv_if,
        ]);
        sh(&["ip", "-n", &n.srv, "link", "set", &n.srv_if, "up"]);
        sh(&["ip", "-n", &n.cli, "link", "set", &n.cli_if, "up"]);
        n
    }

    fn in_cli(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.cli])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in [&self.srv, &self.cli] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The serve process; SIGKILLed on drop if a test failed before stopping it.
struct Serve(Child);
impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(path: &Path, needle: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "waited {secs}s for {needle:?} in:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
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
    let dir = tempfile::Builder::new()
        .prefix("compose-serve-")
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

    let net = Net::new("s");
    let log = dir.path().join("serve.log");
    let serve = Serve(
        Command::new("ip")
            .args(["netns", "exec", &net.srv])
            .arg(compose_bin())
            .args([
                "--root",
                tree.to_str().unwrap(),
                "serve",
                "--interface",
                &net.srv_if,
            ])
            .arg("--nodes")
            .arg(&nodes)
            .stdout(Stdio::null())
            .stderr(Stdio::from(fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap(),
    );
    wait_for(&log, "DHCP on", 20);

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
    sh(&[
        "ip",
        "-n",
        &net.cli,
        "addr",
        "add",
        "10.77.0.11/24",
        "dev",
        &net.cli_if,
    ]);

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
    let mut serve = serve;
    // SAFETY: kill(2) on the child we spawned.
    unsafe { libc::kill(serve.0.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = serve.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "compose serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
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
