//! Network namespaces for the `netns_` and `attack_` tiers: a server
//! namespace and a client namespace joined by a veth pair, and compose serve
//! running in the server's, its log in a file.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Two namespaces joined by a veth pair (server 10.77.0.1/24); removed, with
/// every interface in them, on drop.
pub struct Net {
    pub srv: String,
    pub cli: String,
    pub srv_if: String,
    pub cli_if: String,
}

impl Net {
    /// `tag` keeps the names of concurrent tests apart (a letter or two).
    pub fn new(tag: &str) -> Net {
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

    /// Gives the client its static address (what DHCP would lease it).
    pub fn client_address(&self, cidr: &str) {
        sh(&[
            "ip",
            "-n",
            &self.cli,
            "addr",
            "add",
            cidr,
            "dev",
            &self.cli_if,
        ]);
    }

    /// Runs `args` in the client namespace.
    pub fn in_cli(&self, args: &[&str]) -> Output {
        in_ns(&self.cli, args)
    }

    /// Runs `args` in the server namespace.
    pub fn in_srv(&self, args: &[&str]) -> Output {
        in_ns(&self.srv, args)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in [&self.srv, &self.cli] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `args` in namespace `ns` and returns its output.
pub fn in_ns(ns: &str, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .unwrap()
}

/// Runs a command that must succeed.
pub fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server process; SIGKILLed on drop if a test failed before stopping it.
pub struct Serve(pub Child);

impl Serve {
    /// `compose --root TREE serve --interface IF --nodes NODES EXTRA...` in
    /// the server namespace, stderr to `log`; waits for its DHCP start line.
    pub fn start(net: &Net, tree: &Path, nodes: &Path, extra: &[&str], log: &Path) -> Serve {
        let serve = Serve(
            Command::new("ip")
                .args(["netns", "exec", &net.srv])
                .arg(crate::compose_bin())
                .arg("--root")
                .arg(tree)
                .args(["serve", "--interface", &net.srv_if])
                .arg("--nodes")
                .arg(nodes)
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::from(fs::File::create(log).unwrap()))
                .spawn()
                .unwrap(),
        );
        wait_for(log, "DHCP on", 20);
        serve
    }

    /// SIGTERM, then waits (10 s at most) for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on the child we spawned and have not reaped.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.0.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "compose serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until the file at `path` contains `needle`; returns its text.
pub fn wait_for(path: &Path, needle: &str, secs: u64) -> String {
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

/// A second network of the server (a "site LAN"): its own namespace joined
/// to the server's by another veth pair, server 10.79.0.1/24, site host
/// 10.79.0.2/24, with a route to the boot network through the server (as a
/// site host that knows the boot subnet would have). Removed on drop.
pub struct Site {
    pub ns: String,
}

impl Site {
    pub fn new(net: &Net, tag: &str) -> Site {
        let id = std::process::id() % 100_000;
        let site = Site {
            ns: format!("cs-site-{tag}-{id}"),
        };
        let (srv_if, site_if) = (format!("ws{tag}{id}"), format!("wc{tag}{id}"));
        sh(&["ip", "netns", "add", &site.ns]);
        sh(&["ip", "-n", &site.ns, "link", "set", "lo", "up"]);
        sh(&[
            "ip", "link", "add", &srv_if, "netns", &net.srv, "type", "veth", "peer", "name",
            &site_if, "netns", &site.ns,
        ]);
        sh(&[
            "ip",
            "-n",
            &net.srv,
            "addr",
            "add",
            "10.79.0.1/24",
            "dev",
            &srv_if,
        ]);
        sh(&[
            "ip",
            "-n",
            &site.ns,
            "addr",
            "add",
            "10.79.0.2/24",
            "dev",
            &site_if,
        ]);
        sh(&["ip", "-n", &net.srv, "link", "set", &srv_if, "up"]);
        sh(&["ip", "-n", &site.ns, "link", "set", &site_if, "up"]);
        sh(&[
            "ip",
            "-n",
            &site.ns,
            "route",
            "add",
            "10.77.0.0/24",
            "via",
            "10.79.0.1",
        ]);
        site
    }

    /// Runs `args` in the site namespace.
    pub fn run(&self, args: &[&str]) -> Output {
        in_ns(&self.ns, args)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}
