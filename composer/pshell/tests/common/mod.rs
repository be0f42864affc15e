//! A cluster of real sshd instances on 127.0.0.1, one port per node, for the
//! `sshd_` tier. Each node's sessions get `COMPOSE_NODE=<name>` (sshd
//! `SetEnv`), so a command can behave differently on one node, and HOME set
//! to the temp dir: the remote shell must not run root's own ~/.bashrc (on
//! the dev box it runs `pyenv rehash`, which can wait 60 s on a lock).
//!
//! Everything lives in a temp dir: host key, client key, authorized_keys,
//! one sshd_config per node, known_hosts and the client's ssh_config (Host
//! aliases n01.. -> 127.0.0.1 Port p), given to ssh with `-F`. Dropping the
//! cluster kills the daemons and any command they left running.

use compose_pshell::{Options, Target};
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";
const HOW: &str = "the sshd_ tests need the OpenSSH server and client and root: \
    `apt-get install openssh-server openssh-client`, then as root \
    `cargo test -p compose-pshell -- --ignored`";

pub struct Cluster {
    dir: tempfile::TempDir,
    daemons: Vec<Child>,
    /// Node names, n01...
    pub names: Vec<String>,
    /// The client ssh_config.
    pub config: PathBuf,
    /// Set in every session; finds what the sessions left behind on drop.
    token: String,
}

impl Cluster {
    /// Starts `n` sshd instances; `closed_hosts` become aliases to closed ports.
    pub fn start(n: usize, closed_hosts: &[&str]) -> Cluster {
        check_prerequisites();
        let dir = tempfile::Builder::new()
            .prefix("compose-pshell-sshd.")
            .tempdir()
            .expect("creating a temp dir");
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("id"));
        fs::copy(d.join("id.pub"), d.join("authorized_keys")).expect("authorized_keys");
        // sshd's privilege separation directory; Debian creates it at boot
        // through the service, which the fixture does not use.
        fs::create_dir_all("/run/sshd").expect("creating /run/sshd (run as root)");

        // Hold every listener until all ports are chosen, so none repeats.
        let listeners: Vec<TcpListener> = (0..n + closed_hosts.len())
            .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding 127.0.0.1:0"))
            .collect();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        drop(listeners);

        let token = d.display().to_string();
        let names: Vec<String> = (1..=n).map(|i| format!("n{i:02}")).collect();
        let host_key = fs::read_to_string(d.join("host_key.pub")).expect("host key");
        let host_key: Vec<&str> = host_key.split_whitespace().take(2).collect();
        let mut known_hosts = String::new();
        let mut ssh_config = String::new();
        let mut daemons = Vec::new();
        for (name, &port) in names.iter().zip(&ports) {
            daemons.push(start_sshd(d, name, port, &token));
            known_hosts += &format!("[127.0.0.1]:{port} {}\n", host_key.join(" "));
            ssh_config += &format!("Host {name}\n  HostName 127.0.0.1\n  Port {port}\n");
        }
        for (name, &port) in closed_hosts.iter().zip(&ports[n..]) {
            ssh_config += &format!("Host {name}\n  HostName 127.0.0.1\n  Port {port}\n");
        }
        ssh_config += &format!(
            "Host *\n  IdentityFile {id}\n  IdentitiesOnly yes\n  UserKnownHostsFile {kh}\n  \
             GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n",
            id = d.join("id").display(),
            kh = d.join("known_hosts").display(),
        );
        fs::write(d.join("known_hosts"), known_hosts).expect("known_hosts");
        let config = d.join("ssh_config");
        fs::write(&config, ssh_config).expect("ssh_config");
        let mut cluster = Cluster {
            dir,
            daemons,
            names,
            config,
            token,
        };
        cluster.wait_ready(&ports[..n]);
        cluster
    }

    pub fn targets(&self) -> Vec<Target> {
        self.names.iter().map(Target::named).collect()
    }

    pub fn options(&self) -> Options {
        Options {
            ssh_options: vec!["-F".into(), self.config.display().to_string()],
            // Generous: a loaded CI box can take seconds for a handshake.
            connect_timeout: Duration::from_secs(60),
            ..Options::default()
        }
    }

    fn wait_ready(&mut self, ports: &[u16]) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for (i, &port) in ports.iter().enumerate() {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                if let Ok(Some(status)) = self.daemons[i].try_wait() {
                    panic!(
                        "sshd for {} exited ({status}): {}",
                        self.names[i],
                        self.log(i)
                    );
                }
                if Instant::now() > deadline {
                    panic!(
                        "sshd for {} not listening on port {port} after 20 s: {}",
                        self.names[i],
                        self.log(i)
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn log(&self, i: usize) -> String {
        let path = self.dir.path().join(format!("sshd-{}.log", self.names[i]));
        fs::read_to_string(&path).unwrap_or_else(|e| format!("(no log {}: {e})", path.display()))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for daemon in &mut self.daemons {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        kill_sessions(&self.token);
    }
}

fn check_prerequisites() {
    assert!(Path::new(SSHD).exists(), "{SSHD} is missing: {HOW}");
    for tool in ["ssh", "ssh-keygen"] {
        let found = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(found.is_ok(), "{tool} is missing: {HOW}");
    }
    // SAFETY: geteuid cannot fail and touches no memory.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "not root: {HOW}");
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "compose-pshell-test",
            "-f",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("running ssh-keygen");
    assert!(
        status.success(),
        "ssh-keygen -f {} failed: {status}",
        path.display()
    );
}

fn start_sshd(dir: &Path, name: &str, port: u16, token: &str) -> Child {
    let config = dir.join(format!("sshd_config-{name}"));
    let text = format!(
        "ListenAddress 127.0.0.1:{port}\n\
         HostKey {dir}/host_key\n\
         AuthorizedKeysFile {dir}/authorized_keys\n\
         PidFile none\n\
         UsePAM no\n\
         StrictModes no\n\
         PermitRootLogin prohibit-password\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         X11Forwarding no\n\
         PrintMotd no\n\
         LogLevel ERROR\n\
         MaxStartups 200\n\
         SetEnv HOME={dir} COMPOSE_NODE={name} COMPOSE_PSHELL_FIXTURE={token}\n",
        dir = dir.display()
    );
    fs::write(&config, text).expect("sshd_config");
    let log = fs::File::create(dir.join(format!("sshd-{name}.log"))).expect("sshd log");
    Command::new(SSHD)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {SSHD}: {e}: {HOW}"))
}

/// Kills, by pid, the processes whose environment carries this cluster's
/// token: commands a test left running (`sleep 600` on a timed-out node).
fn kill_sessions(token: &str) {
    let needle = format!("COMPOSE_PSHELL_FIXTURE={token}\0");
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(environ) = fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
        {
            // SAFETY: kill takes a pid and a signal, touches no memory.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}
