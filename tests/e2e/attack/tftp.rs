//! Attacks: tftp (see SECURITY.md).

use super::usage;
use crate::fixture;
use crate::serve::published_tree;
use compose_e2e::netns::*;
use compose_e2e::*;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The addresses the flood comes from (besides none of the node's).
const FLOODERS: [&str; 4] = ["10.77.0.21", "10.77.0.22", "10.77.0.23", "10.77.0.24"];

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

/// ~1500 unanswered RRQs with timeout=255 per half second, from 1500 source
/// ports on four addresses, for 12 s: the serve process's descriptors stay
/// bounded, a node still gets pxelinux.0 and its kernel over TFTP and its
/// root over NFS during the flood, and the flood's transfers are reaped
/// after it.
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
    for ip in FLOODERS {
        net.client_address(&format!("{ip}/24"));
    }
    let log = dir.path().join("serve.log");
    let serve = Serve::start(&net, &tree, &nodes, &[], &log);
    let pid = serve.0.id();
    let pxelinux = fs::read(tree.join("tftp/pxelinux.0")).unwrap();
    let kernel = fs::read(tree.join("images/minimal/gen/1/vmlinuz")).unwrap();
    // Warm up (first transfers, NFS threads) before the baseline.
    assert_eq!(tftp_get(&net, dir.path(), "pxelinux.0").unwrap(), pxelinux);
    let before = usage(pid);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/attack/tftp_flood.py");
    let flood = Command::new("ip")
        .args(["netns", "exec", &net.cli, "python3"])
        .arg(&script)
        .args(["10.77.0.1", "12", "1500"])
        .args(FLOODERS)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let the flood fill every slot it can get, then serve a node through it.
    std::thread::sleep(Duration::from_secs(2));
    let mut peak = usage(pid);
    let sample = |peak: &mut super::Usage| {
        let u = usage(pid);
        peak.fds = peak.fds.max(u.fds);
        peak.threads = peak.threads.max(u.threads);
        peak.rss_kib = peak.rss_kib.max(u.rss_kib);
    };
    let during_px = tftp_get(&net, dir.path(), "pxelinux.0");
    sample(&mut peak);
    let during_kernel = tftp_get(&net, dir.path(), "images/minimal/gen/1/vmlinuz");
    sample(&mut peak);
    let motd = net.in_cli(&[
        "nfs-cat",
        &format!("nfs://10.77.0.1{}/etc/motd?version=3", root.display()),
    ]);
    sample(&mut peak);
    let flood_out = flood.wait_with_output().unwrap();
    assert!(
        flood_out.status.success(),
        "flood script: {}",
        String::from_utf8_lossy(&flood_out.stderr)
    );
    let counts = String::from_utf8_lossy(&flood_out.stdout).into_owned();
    eprintln!("flood: {counts}");
    eprintln!("usage before {before:?}, peak during {peak:?}");

    assert_eq!(during_px.unwrap(), pxelinux, "pxelinux.0 during the flood");
    assert_eq!(
        during_kernel.unwrap(),
        kernel,
        "the kernel during the flood"
    );
    assert_eq!(
        String::from_utf8_lossy(&motd.stdout),
        "minimal compose node\n",
        "NFS during the flood: {}",
        stderr(&motd)
    );
    let counts: serde_json::Value = serde_json::from_str(&counts).unwrap();
    assert!(counts["sent"].as_u64().unwrap() >= 1500, "{counts}");
    // Most requests are refused; the few admitted never negotiate timeout=255.
    assert!(counts["busy"].as_u64().unwrap() >= 1000, "{counts}");
    assert_eq!(counts["oack_with_timeout"], 0, "{counts}");
    // 4 flooding addresses x 8 transfers x 2 descriptors, plus the node's
    // own transfer and NFS connection: far below the 1024 limit.
    assert!(
        peak.fds <= before.fds + 4 * 8 * 2 + 16,
        "descriptors grew from {} to {} under the flood",
        before.fds,
        peak.fds
    );

    // After the flood: its transfers are reaped (bounded wait) and the node
    // is served again.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = usage(pid);
    while after.fds > before.fds + 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        after = usage(pid);
    }
    eprintln!("usage after {after:?}");
    assert!(
        after.fds <= before.fds + 2,
        "flood transfers not reaped: {} descriptors, {} before",
        after.fds,
        before.fds
    );
    assert_eq!(tftp_get(&net, dir.path(), "pxelinux.0").unwrap(), pxelinux);
    let status = serve.stop();
    assert!(status.success(), "{}", fs::read_to_string(&log).unwrap());
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
