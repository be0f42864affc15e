//! Attacks from another network of a dual-homed server (SECURITY.md,
//! "listening"): a host on the site LAN must get nothing from TFTP, MOUNT or
//! NFS or HTTP, neither at the server's site address nor at its boot address routed
//! through the site interface. And the serve process runs with only the
//! capabilities it needs and a raised descriptor limit.

use super::*;
use crate::serve::published_tree;
use compose_e2e::netns::*;
use compose_e2e::*;

#[test]
fn attack_site_network_gets_nothing_from_tftp_or_nfs() {
    for (prog, pkg) in [
        ("tftp", "tftp-hpa"),
        ("nfs-ls", "libnfs-utils"),
        ("curl", "curl"),
    ] {
        require_program(prog, pkg);
    }
    let (dir, tree, root, nodes) = published_tree("compose-attack-listen-");
    let net = Net::new("l");
    let site = Site::new(&net, "l");
    net.client_address("10.77.0.11/24");
    let log = dir.path().join("serve.log");
    let serve = Serve::start(&net, &tree, &nodes, &[], &log);
    let text = wait_for(&log, "every service bound to", 5);
    assert!(
        text.contains("every service bound to 10.77.0.1;"),
        "the start line names the bound address:\n{text}"
    );

    let tftp_get = |run: &dyn Fn(&[&str]) -> std::process::Output, server: &str| {
        let local = dir.path().join(format!("got-{server}"));
        let _ = std::fs::remove_file(&local);
        let out = run(&[
            "timeout",
            "20",
            "tftp",
            "-m",
            "binary",
            server,
            "-c",
            "get",
            "pxelinux.0",
            local.to_str().unwrap(),
        ]);
        let got = std::fs::metadata(&local).is_ok_and(|m| m.len() > 0);
        (got, String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let nfs_ls = |run: &dyn Fn(&[&str]) -> std::process::Output, server: &str| {
        let url = format!("nfs://{server}{}/etc?version=3", root.display());
        let out = run(&["timeout", "20", "nfs-ls", &url]);
        (
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("motd"),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let http_get = |run: &dyn Fn(&[&str]) -> std::process::Output, server: &str| {
        let out = run(&[
            "curl",
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{server}/pxelinux.0"),
        ]);
        String::from_utf8_lossy(&out.stdout) == "200"
    };
    let from_site = |a: &[&str]| site.run(a);
    let from_node = |a: &[&str]| net.in_cli(a);

    // The site LAN: nothing at the server's site address, nothing at its
    // boot address either (the kernel would deliver that to a socket bound
    // to the address alone; the services are bound to the interface too).
    for server in ["10.79.0.1", "10.77.0.1"] {
        let (got, out) = tftp_get(&from_site, server);
        assert!(!got, "the site LAN fetched pxelinux.0 from {server}: {out}");
        let (listed, err) = nfs_ls(&from_site, server);
        assert!(!listed, "the site LAN listed a root at {server}: {err}");
        assert!(
            !http_get(&from_site, server),
            "the site LAN got pxelinux.0 over HTTP from {server}"
        );
    }
    // The boot LAN: both still served.
    let (got, out) = tftp_get(&from_node, "10.77.0.1");
    assert!(got, "the node could not fetch pxelinux.0: {out}");
    let (listed, err) = nfs_ls(&from_node, "10.77.0.1");
    assert!(listed, "the node could not list its root: {err}");
    assert!(
        http_get(&from_node, "10.77.0.1"),
        "the node could not fetch pxelinux.0 over HTTP"
    );

    // What the process kept: 3 capabilities (bits 2, 10, 13), in every set
    // that matters, no_new_privs, and the raised descriptor limit.
    let pid = serve.0.id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    assert_eq!(field("CapEff:"), "0000000000002404", "{status}");
    assert_eq!(field("CapPrm:"), "0000000000002404", "{status}");
    assert_eq!(field("CapBnd:"), "0000000000002404", "{status}");
    assert_eq!(field("CapAmb:"), "0000000000000000", "{status}");
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let nofile: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(nofile[3], nofile[4], "soft = hard: {limits}");
    let used = usage(pid);
    assert!(used.fds < 64, "{used:?}");
    assert!(serve.stop().success());
}
