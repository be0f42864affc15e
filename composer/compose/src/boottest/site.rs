//! The site's own DHCP server, for `boot-test --proxy-dhcp`: dnsmasq on
//! another "host" (a namespace of its own, plugged into the guests' bridge)
//! hands out the guests' addresses and hostnames and knows nothing of
//! booting, like the DHCP server of a network compose does not own. compose
//! serve, in proxyDHCP mode, then adds only the boot information.

use super::host::{die_with_parent, wait_ready, Netns, Proc};
use super::Guest;
use anyhow::{Context, Result};
use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// The site server's address on the guests' network.
pub const SITE_IP: &str = "10.78.0.2";
const DNSMASQ: &str = "/usr/sbin/dnsmasq";

/// Field order is drop order: dnsmasq stops before its namespace goes.
pub struct SiteDhcp {
    _proc: Proc,
    _ns: Netns,
}

impl SiteDhcp {
    pub fn start(
        tag: &str,
        lab: &Netns,
        bridge: &str,
        guests: &[Guest],
        work: &Path,
    ) -> Result<SiteDhcp> {
        super::host::require_file(DNSMASQ, "dnsmasq-base")?;
        let ns = Netns::empty(&format!("{tag}site"))?;
        let ifname = format!("{tag}s");
        ns.plug_into(lab, bridge, &ifname, SITE_IP)
            .context("plugging the site DHCP server into the guests' bridge")?;
        let log = work.join("site-dhcp.log");
        let out = fs::File::create(&log)?;
        let mut cmd = ns.command(DNSMASQ);
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--pid-file=",
        ])
        .args(["--port=0", "--bind-interfaces", "--user=root"])
        .arg(format!("--interface={ifname}"))
        .arg("--dhcp-range=10.78.0.100,10.78.0.199,255.255.255.0,1h")
        .arg(format!(
            "--dhcp-leasefile={}",
            work.join("site.leases").display()
        ))
        .args(["--dhcp-authoritative", "--log-dhcp", "--log-facility=-"]);
        for g in guests {
            cmd.arg(format!("--dhcp-host={},{},{}", g.mac, g.ip, g.hostname));
        }
        let mut proc = Proc {
            child: die_with_parent(&mut cmd)
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .spawn()
                .context("starting dnsmasq (apt-get install dnsmasq-base)")?,
            grace: Duration::from_secs(2),
        };
        wait_ready(
            &mut proc,
            "the site's dnsmasq",
            &log,
            Duration::from_secs(20),
            |text| text.contains("DHCP, IP range"),
        )?;
        Ok(SiteDhcp {
            _proc: proc,
            _ns: ns,
        })
    }
}
