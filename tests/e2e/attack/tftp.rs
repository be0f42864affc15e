//! Attacks: tftp (see SECURITY.md).

use super::{usage, Usage};
use crate::fixture;
use crate::serve::published_tree;
use compose_e2e::netns::*;
use compose_e2e::*;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `tftp` (tftp-hpa) get of `remote` from the client namespace; the bytes.
fn tftp_get(net: &Net, dir: &Path, remote: &str) -> Result<Vec<u8>, String> {
    let local = dir.join(remote.replace('/', "_"));
    let _ = fs::remove_file(&local);
    let local_arg = local.to_str().unwrap();
    let args = ["-m", "binary", "10.77.0.1", "-c", "get", remote, local_arg];
    let out = net.in_cli(&[&["tftp"][..], &args].concat());
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
    // tftp-hpa exits 0 on some errors; its message and the file tell.
    match fs::read(&local) {
        Ok(b) if out.status.success() && !text.contains("Error") => Ok(b),
        _ => Err(format!("tftp get {remote}: {text}")),
    }
}

/// What one flood phase saw.
struct Phase {
    counts: serde_json::Value,
    before: Usage,
    peak: Usage,
    after: Usage,
    /// tftp-hpa attempts the node needed for pxelinux.0 and the kernel.
    attempts: usize,
}

impl Phase {
    /// Prints the figures and asserts what holds for every flood: timeout
    /// never negotiated, descriptors within `bound` of the baseline, and
    /// back to it afterwards.
    fn check(&self, label: &str, bound: usize) {
        eprintln!(
            "{label}: {} usage {:?} -> peak {:?} -> after {:?}, node attempts {}",
            self.counts, self.before, self.peak, self.after, self.attempts
        );
        assert_eq!(self.counts["oack_with_timeout"], 0, "{}", self.counts);
        assert!(
            self.peak.fds <= self.before.fds + bound,
            "{label}: {:?} -> {:?}",
            self.before,
            self.peak
        );
        assert!(
            self.after.fds <= self.before.fds + 2,
            "{label}: not reaped: {:?} -> {:?}",
            self.before,
            self.after
        );
    }
}

/// A PXE client's persistence: up to three tries (pxelinux and iPXE retry
/// a failed transfer too).
fn get_retrying(net: &Net, dir: &Path, remote: &str, attempts: &mut usize) -> Vec<u8> {
    let mut last = String::new();
    for _ in 0..3 {
        *attempts += 1;
        match tftp_get(net, dir, remote) {
            Ok(b) => return b,
            Err(e) => last = e,
        }
    }
    panic!("{remote} failed three times during the flood: {last}")
}

/// Floods from `sources` (1500 sockets spread over them, an RRQ with
/// timeout=255 from each every 0.5 s for 12 s, never an ACK) while the node
/// fetches pxelinux.0 and the kernel over TFTP and a file over NFS; then
/// waits (bounded) for the flood's transfers to be reaped.
fn flood_phase(
    net: &Net,
    dir: &Path,
    tree: &Path,
    root: &Path,
    pid: u32,
    sources: &[String],
) -> Phase {
    let pxelinux = fs::read(tree.join("tftp/pxelinux.0")).unwrap();
    let kernel = fs::read(tree.join("images/minimal/gen/1/vmlinuz")).unwrap();
    let before = usage(pid);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/attack/tftp_flood.py");
    let flood = Command::new("ip")
        .args(["netns", "exec", &net.cli, "python3"])
        .arg(&script)
        .args(["10.77.0.1", "12", "1500"])
        .args(sources)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let the flood fill every slot it can get, then serve a node through it.
    std::thread::sleep(Duration::from_secs(2));
    let mut peak = usage(pid);
    let sample = |peak: &mut Usage| {
        let u = usage(pid);
        peak.fds = peak.fds.max(u.fds);
        peak.threads = peak.threads.max(u.threads);
        peak.rss_kib = peak.rss_kib.max(u.rss_kib);
    };
    let mut attempts = 0;
    let px = get_retrying(net, dir, "pxelinux.0", &mut attempts);
    sample(&mut peak);
    let k = get_retrying(net, dir, "images/minimal/gen/1/vmlinuz", &mut attempts);
    sample(&mut peak);
    let motd = net.in_cli(&[
        "nfs-cat",
        &format!("nfs://10.77.0.1{}/etc/motd?version=3", root.display()),
    ]);
    sample(&mut peak);
    let out = flood.wait_with_output().unwrap();
    assert!(out.status.success(), "flood script: {}", stderr(&out));
    assert!(px == pxelinux, "pxelinux.0 differs");
    assert!(k == kernel, "the kernel differs");
    assert_eq!(
        String::from_utf8_lossy(&motd.stdout),
        "minimal compose node\n",
        "NFS during the flood: {}",
        stderr(&motd)
    );
    let counts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // After the flood: its transfers are reaped (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = usage(pid);
    while after.fds > before.fds + 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        after = usage(pid);
    }
    Phase {
        counts,
        before,
        peak,
        after,
        attempts,
    }
}

/// Request floods against a real compose serve: from four addresses (the
/// per-address cap holds them to 8 transfers each), then from 40 (more than
/// the 256 global slots: never-ACKed transfers are evicted for newcomers).
/// Descriptors stay bounded, the node is served during both, NFS keeps
/// working, and the flood's transfers are reaped after each.
#[test]
fn attack_tftp_flood_keeps_descriptors_bounded() {
    for (prog, pkg) in [
        ("tftp", "tftp-hpa"),
        ("python3", "python3"),
        ("nfs-cat", "libnfs-utils"),
    ] {
        require_program(prog, pkg);
    }
    let (dir, tree, root, nodes) = published_tree("compose-attack-tftp-");
    let net = Net::new("tf");
    net.client_address("10.77.0.11/24");
    let few: Vec<String> = (21..25).map(|i| format!("10.77.0.{i}")).collect();
    let many: Vec<String> = (100..140).map(|i| format!("10.77.0.{i}")).collect();
    for ip in few.iter().chain(&many) {
        net.client_address(&format!("{ip}/24"));
    }
    let log = dir.path().join("serve.log");
    let serve = Serve::start(&net, &tree, &nodes, &[], &log);
    let pid = serve.0.id();
    // Warm up (first transfer, runtime threads) before the baselines.
    tftp_get(&net, dir.path(), "pxelinux.0").unwrap();

    // 4 addresses x 8 transfers x 2 descriptors, plus the node's transfer
    // and NFS connection: far below the 1024 limit.
    let a = flood_phase(&net, dir.path(), &tree, &root, pid, &few);
    a.check("4 addresses", 4 * 8 * 2 + 16);
    assert!(a.counts["sent"].as_u64().unwrap() >= 1500, "{}", a.counts);
    // Most requests are refused.
    assert!(a.counts["busy"].as_u64().unwrap() >= 1000, "{}", a.counts);
    // 256 slots plus at most 256/8 evicted ones still draining, 2
    // descriptors each, plus the node's and NFS.
    let b = flood_phase(&net, dir.path(), &tree, &root, pid, &many);
    b.check("40 addresses", (256 + 32) * 2 + 16);

    assert_eq!(
        tftp_get(&net, dir.path(), "pxelinux.0").unwrap(),
        fs::read(tree.join("tftp/pxelinux.0")).unwrap()
    );
    let status = serve.stop();
    let text = fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{text}");
    assert!(text.contains("evicted"), "no eviction logged in phase 2");
}

/// Path tricks with tftp-hpa against the publish tree: `..`, symlinks out of
/// tftp/ and images/ (into roots/, cluster/ or /etc) and a file that is not
/// world-readable are refused; the boot files are still served.
#[test]
fn attack_tftp_paths_stay_in_tftp_and_images() {
    require_program("tftp", "tftp-hpa");
    let f = fixture();
    let hex = f.cold["snapshot"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    let (dir, tree, _root, nodes) = published_tree("compose-attack-tftp-paths-");
    // What an attacker would like to read, and links a careless operator
    // (or a bug) might leave in the served directories.
    fs::create_dir_all(tree.join("cluster")).unwrap();
    fs::write(tree.join("cluster/private"), "cluster secret\n").unwrap();
    let gen = tree.join("images/minimal/gen/1");
    fs::write(gen.join("private"), "generation secret\n").unwrap();
    fs::set_permissions(gen.join("private"), fs::Permissions::from_mode(0o600)).unwrap();
    let ln = |target: &str, link: &str| symlink(target, tree.join(link)).unwrap();
    ln("../roots", "tftp/roots");
    ln("/etc", "tftp/etc");
    ln("../../cluster/private", "tftp/pxelinux.cfg/cluster");
    ln("../../../roots", "images/minimal/roots");
    let net = Net::new("tp");
    net.client_address("10.77.0.11/24");
    let log = dir.path().join("serve.log");
    let serve = Serve::start(&net, &tree, &nodes, &[], &log);
    let motd = format!("{hex}/etc/motd");
    let refused = [
        format!("../roots/{motd}"),
        "images/../cluster/private".to_owned(),
        "images/minimal/../../cluster/private".to_owned(),
        format!("roots/{motd}"),
        format!("images/minimal/roots/{motd}"),
        "etc/passwd".to_owned(),
        "/etc/passwd".to_owned(),
        "pxelinux.cfg/cluster".to_owned(),
        "images/minimal/gen/1/private".to_owned(),
    ];
    for name in &refused {
        let got = tftp_get(&net, dir.path(), name);
        assert!(
            got.is_err(),
            "{name} was served: {:?}",
            got.map(|b| b.len())
        );
    }
    for name in [
        "pxelinux.0",
        "pxelinux.cfg/01-52-54-00-77-00-01",
        "pxelinux.cfg/default",
        "images/minimal/gen/1/vmlinuz",
        "images/minimal/gen/1/initrd.img",
        "images/minimal/current/vmlinuz",
    ] {
        let got = tftp_get(&net, dir.path(), name).unwrap();
        assert!(!got.is_empty(), "{name} is empty");
    }
    let status = serve.stop();
    let text = fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{text}");
    // The refusals are logged as such (not as missing files).
    assert!(text.contains("not world-readable"), "{text}");
    assert!(text.contains("leaves the served directories"), "{text}");
}
