//! The lab: a scratch publish tree, `compose serve` in a network namespace,
//! and QEMU guests that can be powered on and off while it runs. boot-test's
//! scenarios are sequences of lab operations.
//!
//! Field order is drop order: guests are stopped first, then serve, then the
//! namespace goes, then the scratch directory.

use super::host::{die_with_parent, wait_ready, Netns, Proc};
use super::shell::Shell;
use super::site::SiteDhcp;
use super::{
    find_marker, phases, tail, Firmware, Guest, GuestResult, Options, MARKER, OVMF_CODE, OVMF_VARS,
    QEMU, SEABIOS,
};
use crate::interrupt::interrupted;
use anyhow::{Context, Result};
use compose_publish::{publish, rollback, PublishOptions, PublishReport, RollbackReport, Tree};
use compose_store::{SnapshotInfo, Store};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

/// One power-on of one guest.
pub struct Vm {
    proc: Proc,
    pub boot: u32,
    pub power_on: Instant,
    pub power_on_wall: SystemTime,
    pub serial_log: PathBuf,
    shell_socket: PathBuf,
    shell: Option<Shell>,
    kernel_at: Option<f64>,
}

/// What a boot must report.
#[derive(Debug, Clone)]
pub struct Expect {
    pub snapshot: String,
    /// `image/N`
    pub generation: String,
}

pub struct Lab {
    vms: Vec<Option<Vm>>,
    serve: Proc,
    _site: Option<SiteDhcp>,
    bridge: String,
    ns: Netns,
    pub guests: Vec<Guest>,
    pub store: Store,
    pub tree: Tree,
    boots: Vec<u32>,
    serve_log: PathBuf,
    opts: Options,
    work: tempfile::TempDir,
}

impl Lab {
    /// Creates the scratch tree, the inventory, the namespace and starts
    /// `compose serve` in it. Nothing is published yet.
    pub fn start(opts: &Options, image: &str, progress: &mut dyn FnMut(&str)) -> Result<Lab> {
        let work = tempfile::Builder::new()
            .prefix("compose-boot-test-")
            .tempdir_in("/var/tmp")
            .context("creating a scratch directory in /var/tmp")?;
        let store = Store::open_existing(&opts.store)?;
        let tree_path = work.path().join("tree");
        let tree = Tree::open(&tree_path)?;
        let tag = format!("cbt{}", std::process::id() % 100_000);
        let guests = super::guests(opts.guests, work.path(), &tag, opts.firmware);
        // A key for root on the guests, as an admin's own key would be:
        // regen puts it in each node's authorized_keys (see exec_over_ssh).
        let key = work.path().join("id_ed25519");
        let keygen = std::process::Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "compose-boot-test",
                "-f",
            ])
            .arg(&key)
            .stdin(Stdio::null())
            .output()
            .context("running ssh-keygen (apt-get install openssh-client)")?;
        if !keygen.status.success() {
            anyhow::bail!(
                "ssh-keygen failed: {}",
                String::from_utf8_lossy(&keygen.stderr).trim()
            );
        }
        let nodes = work.path().join("nodes.toml");
        fs::write(
            &nodes,
            format!(
                "[cluster]\nsubnet = \"{}.0/24\"\nauthorized_keys = \"id_ed25519.pub\"\n\n{}",
                super::SERVER_IP.rsplit_once('.').map_or("", |(net, _)| net),
                super::render_nodes(&guests, image)
            ),
        )?;
        // Only what the test needs: the host's /etc/compose/serve.toml must not leak in.
        let config = work.path().join("serve.toml");
        fs::write(
            &config,
            format!(
                "# compose boot-test: everything else from flags\nproxy_dhcp = {}\n",
                opts.proxy_dhcp
            ),
        )?;

        // Each guest's own files (hosts, ssh host key), as an admin's
        // `compose nodes regen` makes them: the initramfs unpacks them.
        let inventory = compose_cluster::load_inventory(&nodes)?;
        let regen = compose_cluster::plan(
            &inventory,
            tree.path(),
            &compose_cluster::RegenOptions {
                base_dir: work.path().to_path_buf(),
                ..Default::default()
            },
        )
        .context(
            "compose nodes regen for the guests (needs ssh-keygen: apt-get install openssh-client)",
        )?;
        compose_cluster::apply(&regen)?;
        if opts.checks {
            // The checks' root channel: only in these scratch guests' own
            // overlays, never in the image or its command line.
            for g in &guests {
                super::overlay::add_test_shell(tree.path(), &g.hostname)?;
            }
        }
        progress(&format!(
            "regenerated the guests' files (cluster set {})",
            regen.set
        ));

        let taps: Vec<String> = guests.iter().map(|g| g.tap.clone()).collect();
        let bridge = format!("{tag}br");
        let ns = Netns::create(&tag, &bridge, &taps)?;
        let site = if opts.proxy_dhcp {
            let site = SiteDhcp::start(&tag, &ns, &bridge, &guests, work.path())?;
            progress(&format!(
                "the site's DHCP server (dnsmasq, addresses only) is up on {}",
                super::site::SITE_IP
            ));
            Some(site)
        } else {
            None
        };
        let serve_log = work.path().join("serve.log");
        let serve = spawn_serve(&ns, &opts.compose_bin, work.path(), &bridge, &serve_log)?;
        progress(&format!(
            "compose serve is up in namespace {tag} on {bridge} ({})",
            super::SERVER_IP
        ));
        Ok(Lab {
            vms: guests.iter().map(|_| None).collect(),
            boots: vec![0; guests.len()],
            serve,
            _site: site,
            bridge,
            ns,
            guests,
            store,
            tree,
            serve_log,
            opts: opts.clone(),
            work,
        })
    }

    /// Stops compose serve (SIGTERM, as `systemctl restart` does) and starts
    /// it again; booted guests must not notice (restart-stable handles).
    pub fn restart_serve(&mut self) -> Result<()> {
        let grace = self.serve.grace;
        // SAFETY: kill(2) on our own, unreaped child.
        unsafe { libc::kill(self.serve.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while self.serve.exited().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.serve = spawn_serve(
            &self.ns,
            &self.opts.compose_bin,
            self.work.path(),
            &self.bridge,
            &self.serve_log,
        )?;
        Ok(())
    }

    /// Publishes `snap` as the next generation, as `compose publish` would.
    pub fn publish(&self, snap: &SnapshotInfo) -> Result<PublishReport> {
        // nfsroot= without a server, as `compose publish` does by default:
        // the initramfs mounts from the DHCP server. Not so behind a site's
        // DHCP server: then the root names compose's host (--server).
        let opts = PublishOptions {
            server: self.opts.proxy_dhcp.then(|| super::SERVER_IP.to_string()),
            cmdline: Vec::new(),
            no_switch: false,
        };
        publish(&self.store, &self.tree, snap, &opts)
    }

    pub fn rollback(&self, image: &str, to: u64) -> Result<RollbackReport> {
        rollback(&self.tree, image, Some(to))
    }

    /// Powers guest `i` on (a new boot, with its own serial log).
    pub fn power_on(&mut self, i: usize) -> Result<()> {
        self.power_off(i);
        self.boots[i] += 1;
        let boot = self.boots[i];
        let g = &self.guests[i];
        let name = if boot == 1 {
            g.hostname.clone()
        } else {
            format!("{}.boot{boot}", g.hostname)
        };
        let serial_log = self.work.path().join(format!("{name}.serial.log"));
        let qemu_log = self.work.path().join(format!("{name}.qemu.log"));
        let shell_socket = self.work.path().join(format!("{}.ttyS1", g.hostname));
        let _ = fs::remove_file(&shell_socket);
        let out = fs::File::create(&qemu_log)?;
        let mut cmd = self.ns.command(QEMU);
        die_with_parent(&mut cmd)
            .args(["-accel", "tcg,thread=multi", "-cpu", "max"])
            .args(["-m", &self.opts.memory_mb.to_string()])
            .args(["-nographic", "-display", "none", "-monitor", "none"]);
        match g.firmware {
            Firmware::Bios => {
                cmd.args(["-L", SEABIOS]);
            }
            Firmware::Uefi => {
                // A fresh variable store per power-on, as a node whose
                // NVRAM holds nothing but the firmware's defaults.
                let vars = self
                    .work
                    .path()
                    .join(format!("{}.OVMF_VARS.fd", g.hostname));
                fs::copy(OVMF_VARS, &vars)
                    .with_context(|| format!("copying {OVMF_VARS} (apt-get install ovmf)"))?;
                cmd.arg("-drive")
                    .arg(format!(
                        "if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"
                    ))
                    .arg("-drive")
                    .arg(format!(
                        "if=pflash,format=raw,unit=1,file={}",
                        vars.display()
                    ));
            }
        }
        let child = cmd
            .args([
                "-netdev",
                &format!("tap,id=n0,ifname={},script=no,downscript=no", g.tap),
            ])
            .args(["-device", &self.opts.nic.device(&g.mac, g.firmware)])
            .args(["-boot", "n", "-no-reboot"])
            .arg("-serial")
            .arg(format!("file:{}", serial_log.display()))
            .arg("-serial")
            .arg(format!(
                "unix:{},server=on,wait=off",
                shell_socket.display()
            ))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting qemu")?;
        self.vms[i] = Some(Vm {
            proc: Proc {
                child,
                grace: Duration::from_secs(2),
            },
            boot,
            power_on: Instant::now(),
            power_on_wall: SystemTime::now(),
            serial_log,
            shell_socket,
            shell: None,
            kernel_at: None,
        });
        Ok(())
    }

    /// Pulls the plug (a diskless node loses nothing).
    pub fn power_off(&mut self, i: usize) {
        self.vms[i] = None;
    }

    /// One look at guest `i`'s serial log: Some(result) once its boot is
    /// over (marker seen, QEMU gone, deadline passed or interrupted).
    pub fn poll_boot(&mut self, i: usize, want: &Expect) -> Option<GuestResult> {
        let timeout = self.opts.timeout;
        let g = self.guests[i].clone();
        let serve_log = self.serve_log.clone();
        let vm = self.vms[i].as_mut()?;
        let bytes = fs::read(&vm.serial_log).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        if vm.kernel_at.is_none() && text.contains("Linux version ") {
            vm.kernel_at = Some(vm.power_on.elapsed().as_secs_f64());
        }
        let mut result = GuestResult {
            guest: g.clone(),
            boot: vm.boot,
            expect: want.generation.clone(),
            marker: None,
            seconds: None,
            kernel_seconds: vm.kernel_at,
            phases: Default::default(),
            checks: Vec::new(),
            error: None,
            tail: String::new(),
        };
        if let Some((line, host, snapshot)) = find_marker(&text) {
            let secs = vm.power_on.elapsed().as_secs_f64();
            let gen = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("gen="))
                .unwrap_or_default()
                .to_string();
            result.error = if host != g.hostname {
                Some(format!("reported host {host:?}, expected {:?}", g.hostname))
            } else if snapshot != want.snapshot {
                Some(format!(
                    "reported snapshot {snapshot:?}, expected {}",
                    want.snapshot
                ))
            } else if gen != want.generation {
                Some(format!(
                    "reported generation {gen:?}, expected {}",
                    want.generation
                ))
            } else {
                None
            };
            result.phases = phases::phases(
                &fs::read_to_string(&serve_log).unwrap_or_default(),
                &g.hostname,
                vm.power_on_wall,
                Some(SystemTime::now()),
            );
            result.marker = Some(line);
            result.seconds = Some(secs);
        } else if let Some(st) = vm.proc.exited() {
            result.error = Some(format!("qemu exited ({st}) before the marker"));
        } else if interrupted() {
            result.error = Some("interrupted".into());
        } else if vm.power_on.elapsed() > timeout {
            result.error = Some(format!("no {MARKER} line within {}s", timeout.as_secs()));
        } else {
            return None;
        }
        result.tail = tail(&text, 40);
        if result.error.is_some() {
            // Its boot failed: free the CPU for the others.
            self.power_off(i);
        }
        Some(result)
    }

    /// Waits for the boots of `which` to finish, calling `between` every
    /// `every` while they run (boot-test reads files on other guests then).
    pub fn wait_boots(
        &mut self,
        which: &[usize],
        want: &Expect,
        progress: &mut dyn FnMut(&str),
        every: Duration,
        between: &mut dyn FnMut(&mut Lab),
    ) -> Vec<GuestResult> {
        let mut done: Vec<Option<GuestResult>> = vec![None; which.len()];
        let mut last = Instant::now();
        while done.iter().any(Option::is_none) {
            for (k, &i) in which.iter().enumerate() {
                if done[k].is_none() {
                    if let Some(r) = self.poll_boot(i, want) {
                        match &r.marker {
                            Some(line) => progress(&format!(
                                "{}: {line} ({:.1}s)",
                                r.guest.hostname,
                                r.seconds.unwrap_or_default()
                            )),
                            None => progress(&format!(
                                "{}: {}",
                                r.guest.hostname,
                                r.error.as_deref().unwrap_or_default()
                            )),
                        }
                        done[k] = Some(r);
                    }
                }
            }
            if last.elapsed() >= every && done.iter().any(Option::is_none) {
                between(self);
                last = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        done.into_iter().flatten().collect()
    }

    /// Guest `i`'s test shell, connected and answering.
    pub fn shell(&mut self, i: usize) -> Result<&mut Shell> {
        let vm = self.vms[i]
            .as_mut()
            .with_context(|| format!("{} is powered off", self.guests[i].hostname))?;
        if vm.shell.is_none() {
            let mut sh = Shell::connect(&vm.shell_socket)?;
            sh.wait_ready(Duration::from_secs(120))?;
            vm.shell = Some(sh);
        }
        Ok(vm.shell.as_mut().expect("just connected"))
    }

    /// `ssh` for the guests: the system client, run inside the namespace,
    /// with the lab's key and the cluster's known_hosts (strict: the guests
    /// must present the host keys regen gave them).
    pub fn ssh_options(&self) -> Result<(PathBuf, Vec<String>)> {
        let wrapper = self.work.path().join("ssh-in-netns");
        fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec ip netns exec {} ssh \"$@\"\n",
                self.ns.name
            ),
        )?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755))?;
        let known = self.tree.layout().known_hosts();
        Ok((
            wrapper,
            vec![
                "-i".into(),
                self.work.path().join("id_ed25519").display().to_string(),
                "-o".into(),
                format!("UserKnownHostsFile={}", known.display()),
                "-o".into(),
                "StrictHostKeyChecking=yes".into(),
                "-o".into(),
                "IdentitiesOnly=yes".into(),
            ],
        ))
    }

    /// The server-side root directory of a snapshot (`sha256:<hex>`, as a
    /// guest's boot marker names it); a name that is no snapshot id gives a
    /// path that does not exist, so the checks on it fail and say so.
    pub fn root_of(&self, snapshot: &str) -> PathBuf {
        match snapshot.parse::<compose_store::SnapshotId>() {
            Ok(id) => self.tree.layout().root_dir(&id),
            Err(_) => self.tree.layout().roots_dir().join("(not a snapshot id)"),
        }
    }

    /// Stops every guest and serve (so the logs are complete).
    pub fn stop(&mut self) {
        for i in 0..self.vms.len() {
            self.power_off(i);
        }
        let grace = self.serve.grace;
        if self.serve.exited().is_none() {
            // SAFETY: kill(2) on our own, unreaped child.
            unsafe { libc::kill(self.serve.child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + grace;
            while self.serve.exited().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Copies the logs (serial, QEMU, serve) and the inventory to `dir`.
    pub fn keep_logs(&self, dir: &Path, summary: &str) -> Result<()> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for entry in fs::read_dir(self.work.path())?.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().ends_with(".log") || name == "nodes.toml" {
                fs::copy(entry.path(), dir.join(&name))
                    .with_context(|| format!("copying {name:?} to {}", dir.display()))?;
            }
        }
        fs::write(dir.join("summary.txt"), summary)?;
        Ok(())
    }
}

/// Starts `compose serve` in the namespace on the work dir's tree,
/// inventory and (empty) configuration, appending to `log`, and waits until
/// it serves DHCP.
fn spawn_serve(ns: &Netns, bin: &Path, work: &Path, bridge: &str, log: &Path) -> Result<Proc> {
    let starts = |text: &str| text.matches("DHCP on").count();
    let before = starts(&fs::read_to_string(log).unwrap_or_default());
    let out = fs::OpenOptions::new().create(true).append(true).open(log)?;
    let mut serve = Proc {
        child: die_with_parent(&mut ns.command(bin))
            .arg("--root")
            .arg(work.join("tree"))
            .arg("serve")
            .arg("--config")
            .arg(work.join("serve.toml"))
            .arg("--nodes")
            .arg(work.join("nodes.toml"))
            .args(["--interface", bridge])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .context("starting compose serve")?,
        grace: Duration::from_secs(6),
    };
    wait_ready(
        &mut serve,
        "compose serve",
        log,
        Duration::from_secs(30),
        |text| starts(text) > before,
    )?;
    Ok(serve)
}
