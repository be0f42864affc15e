//! Harness for the `netns_*` tests: a server namespace and a client
//! namespace joined by a veth pair, the server running in-process inside its
//! namespace, real clients run with `ip netns exec`. Every wait is bounded.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use compose_dhcp::{BootFiles, DhcpConfig, DhcpEvent, StaticLease};
use nix::sched::{setns, CloneFlags};

pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 11);
pub const NEXT_SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
pub const NODE_MAC: [u8; 6] = [0x02, 0xc0, 0x4d, 0x00, 0x00, 0x11];
pub const STRANGER_MAC: [u8; 6] = [0x02, 0xc0, 0x4d, 0x00, 0x00, 0x99];

/// Fail (never skip) when the test cannot do what it claims to test.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root: run `sudo cargo test -p compose-dhcp`"
    );
    for tool in ["ip", "busybox", "dhclient", "timeout"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "{tool} not found: run ci/setup (needs iproute2, busybox, isc-dhcp-client)"
        );
    }
}

pub fn mac_str(mac: &[u8; 6]) -> String {
    compose_dhcp::mac_string(mac)
}

fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Two namespaces and a veth; deleted on drop (also on panic). Deleting a
/// namespace destroys its end of the veth and with it the pair.
pub struct Net {
    pub server_ns: String,
    pub client_ns: String,
    pub server_if: String,
    pub client_if: String,
}

impl Net {
    pub fn new(client_mac: [u8; 6]) -> Net {
        let pid = std::process::id() % 100_000;
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let net = Net {
            server_ns: format!("cdhcp-s-{pid}-{n}"),
            client_ns: format!("cdhcp-c-{pid}-{n}"),
            server_if: format!("cds{pid}x{n}"),
            client_if: format!("cdc{pid}x{n}"),
        };
        let (s, c) = (net.server_ns.as_str(), net.client_ns.as_str());
        let (si, ci) = (net.server_if.as_str(), net.client_if.as_str());
        run(&["ip", "netns", "add", s]);
        run(&["ip", "netns", "add", c]);
        run(&[
            "ip", "link", "add", si, "netns", s, "type", "veth", "peer", "name", ci, "netns", c,
        ]);
        run(&[
            "ip",
            "-n",
            s,
            "addr",
            "add",
            &format!("{SERVER_IP}/24"),
            "dev",
            si,
        ]);
        run(&[
            "ip",
            "-n",
            c,
            "link",
            "set",
            ci,
            "address",
            &mac_str(&client_mac),
        ]);
        for (ns, ifname) in [(s, si), (c, ci), (s, "lo"), (c, "lo")] {
            run(&["ip", "-n", ns, "link", "set", ifname, "up"]);
        }
        net
    }

    /// Give the client an address (for crafted-packet tests: a socket on
    /// an interface without IPv4 config cannot reliably send or receive).
    pub fn client_addr(&self, ip: Ipv4Addr) {
        run(&[
            "ip",
            "-n",
            &self.client_ns,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            &self.client_if,
        ]);
    }

    /// Run `f` on a thread inside `ns`; its sockets live there.
    pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{ns}");
        std::thread::spawn(move || {
            let fd = File::open(&path).expect("open netns");
            setns(&fd, CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("namespace thread panicked")
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in [&self.client_ns, &self.server_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

pub fn config(net: &Net, proxy: bool) -> DhcpConfig {
    DhcpConfig {
        interface: net.server_if.clone(),
        server_ip: SERVER_IP,
        netmask: Ipv4Addr::new(255, 255, 255, 0),
        router: Some(Ipv4Addr::new(10, 77, 0, 254)),
        dns: vec![SERVER_IP],
        domain: Some("cluster.test".into()),
        lease_secs: 3600,
        leases: vec![StaticLease {
            mac: NODE_MAC,
            ip: NODE_IP,
            hostname: "node11".into(),
        }],
        boot: BootFiles {
            bios: "pxelinux.0".into(),
            efi_x64: Some("grubx64.efi".into()),
            ipxe: Some("boot.ipxe".into()),
        },
        next_server: NEXT_SERVER,
        proxy,
    }
}

/// The server on a thread that entered the server namespace and runs a
/// current-thread runtime there. Stopped and joined on drop.
pub struct Server {
    events: tokio::sync::mpsc::UnboundedReceiver<DhcpEvent>,
    seen: Vec<DhcpEvent>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl Server {
    pub fn start(net: &Net, cfg: DhcpConfig) -> Server {
        let path = format!("/run/netns/{}", net.server_ns);
        let (ev_tx, events) = tokio::sync::mpsc::unbounded_channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || -> Result<(), String> {
            let fd = File::open(&path).map_err(|e| e.to_string())?;
            setns(&fd, CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string())?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let sockets = match compose_dhcp::bind(&cfg) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return Ok(());
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let shutdown = async move {
                    let _ = stop_rx.await;
                };
                compose_dhcp::serve_on(cfg, sockets, ev_tx, shutdown)
                    .await
                    .map_err(|e| e.to_string())
            })
        });
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("server did not bind: {e}"),
            Err(_) => panic!("server thread did not start: {:?}", thread.join()),
        }
        Server {
            events,
            seen: Vec::new(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Wait (bounded) until an event matches `pred`; return it.
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&DhcpEvent) -> bool) -> DhcpEvent {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = self.seen.iter().find(|e| pred(e)) {
                return e.clone();
            }
            while let Ok(e) = self.events.try_recv() {
                self.seen.push(e);
            }
            if self.seen.iter().any(&pred) {
                continue;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} event; saw {:#?}",
                self.seen
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every event so far.
    pub fn events(&mut self) -> &[DhcpEvent] {
        while let Ok(e) = self.events.try_recv() {
            self.seen.push(e);
        }
        &self.seen
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let result = t.join();
            if !std::thread::panicking() {
                assert_eq!(
                    result.expect("server thread panicked"),
                    Ok(()),
                    "server failed"
                );
            }
        }
    }
}

/// Result of one udhcpc run: exit success and the environment its script
/// saw at "bound" (empty when it got no lease).
pub struct Udhcpc {
    pub ok: bool,
    pub env: BTreeMap<String, String>,
    pub log: String,
}

fn read_env(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// busybox udhcpc in the client namespace: -n (give up), -q (quit once
/// bound), -f, `tries` DISCOVERs one second apart; the script only records
/// its environment, it configures nothing.
pub fn udhcpc(net: &Net, tries: u32, extra: &[&str]) -> Udhcpc {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bound.env");
    let script = write_script(
        dir.path(),
        "script",
        &format!(
            "#!/bin/sh\n[ \"$1\" = bound ] && env > '{}'\nexit 0\n",
            out.display()
        ),
    );
    let tries = tries.to_string();
    let mut args = vec![
        "-k",
        "2",
        "30",
        "ip",
        "netns",
        "exec",
        &net.client_ns,
        "busybox",
        "udhcpc",
    ];
    args.extend([
        "-i",
        &net.client_if,
        "-n",
        "-q",
        "-f",
        "-t",
        &tries,
        "-T",
        "1",
    ]);
    args.extend([
        "-s",
        script.to_str().unwrap(),
        "-O",
        "hostname",
        "-O",
        "bootfile",
        "-O",
        "domain",
    ]);
    args.extend(extra);
    let o = Command::new("timeout")
        .args(&args)
        .output()
        .expect("spawn udhcpc");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    Udhcpc {
        ok: o.status.success(),
        env: read_env(&out),
        log,
    }
}

/// ISC dhclient in the client namespace: one attempt (`-1`, bounded by
/// `timeout` in its config), daemonizing once bound. Then `dhclient -r`
/// releases the lease and stops the daemon (via its pid file); a survivor
/// is killed by pid. Returns the BOUND environment and the log.
pub fn dhclient(net: &Net) -> (BTreeMap<String, String>, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bound.env");
    let script = write_script(
        dir.path(),
        "script",
        // Configure the address like the real dhclient-script would, so
        // the later RELEASE (unicast to the server) has a route.
        &format!(
            "#!/bin/sh\ncase \"$reason\" in BOUND)\n  env > '{}'\n  \
             ip addr add \"$new_ip_address/$new_subnet_mask\" dev \"$interface\";;\nesac\nexit 0\n",
            out.display()
        ),
    );
    let conf = dir.path().join("dhclient.conf");
    std::fs::write(
        &conf,
        "timeout 15;\nretry 1;\ninitial-interval 1;\n\
         request subnet-mask, routers, host-name, domain-name, domain-name-servers;\n",
    )
    .unwrap();
    let (lf, pf) = (dir.path().join("leases"), dir.path().join("pid"));
    let log_path = dir.path().join("log");
    let p = |x: &PathBuf| x.to_str().unwrap().to_string();
    let common = [
        "-v",
        "-cf",
        &p(&conf),
        "-sf",
        &p(&script),
        "-lf",
        &p(&lf),
        "-pf",
        &p(&pf),
    ];
    let exec = [
        "-k",
        "2",
        "30",
        "ip",
        "netns",
        "exec",
        &net.client_ns,
        "dhclient",
    ];
    // Files, not pipes: the daemonized dhclient must not hold our pipe open.
    let log = || {
        File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap()
    };
    let status = Command::new("timeout")
        .args(exec)
        .arg("-1")
        .args(common)
        .arg(&net.client_if)
        .stdout(log())
        .stderr(log())
        .status()
        .expect("spawn dhclient");
    let env = read_env(&out);
    let daemon_pid = std::fs::read_to_string(&pf)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    let _ = Command::new("timeout")
        .args(exec)
        .arg("-r")
        .args(common)
        .arg(&net.client_if)
        .stdout(log())
        .stderr(log())
        .status();
    if let Some(pid) = daemon_pid {
        let pid = nix::unistd::Pid::from_raw(pid);
        let deadline = Instant::now() + Duration::from_secs(5);
        while nix::sys::signal::kill(pid, None).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        status.success() || !env.is_empty(),
        "dhclient failed ({status}):\n{log}"
    );
    (env, log)
}

/// A UDP socket on the client's interface, port 68, for crafted packets.
pub fn client_socket(net: &Net) -> UdpSocket {
    let ifname = net.client_if.clone();
    let ns = net.client_ns.clone();
    let s = Net::in_ns(&ns, move || {
        compose_dhcp::bind_udp(&ifname, 68).expect("bind client 68")
    });
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}
