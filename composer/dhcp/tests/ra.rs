//! The router-advertisement responder against a real IPv6 host tool
//! (ndisc6's rdisc6, which solicits routers as iPXE and Linux do), in a
//! pair of network namespaces. Needs root; fails (does not skip) without it.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use compose_dhcp::RaEvent;
use nix::sched::{setns, CloneFlags};

/// Until `ns`'s interface has a usable (not tentative) link-local address.
fn wait_link_local(ns: &str, ifname: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("ip")
            .args([
                "-n", ns, "-6", "addr", "show", "dev", ifname, "scope", "link",
            ])
            .output()
            .expect("ip -6 addr");
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("inet6 fe80") && !text.contains("tentative") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{ns}/{ifname}: no usable IPv6 link-local address after 10 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn link_local(ns: &str, ifname: &str) -> std::net::Ipv6Addr {
    let out = Command::new("ip")
        .args([
            "-n", ns, "-6", "-br", "addr", "show", "dev", ifname, "scope", "link",
        ])
        .output()
        .expect("ip -6 addr");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.split_whitespace()
        .find_map(|w| w.split('/').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{ns}/{ifname}: no link-local address in {text:?}"))
}

/// rdisc6's report as `key -> value` (its lines are `Key   :  value`).
fn rdisc6(net: &Net) -> (BTreeMap<String, String>, String) {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.client_ns,
            "rdisc6",
            "-1",
            "-r",
            "3",
            "-w",
            "1000",
        ])
        .arg(&net.client_if)
        .output()
        .unwrap_or_else(|e| panic!("running rdisc6: {e} (apt-get install ndisc6; ci/setup does)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "rdisc6 got no advertisement:\n{text}");
    let fields = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    (fields, text)
}

#[test]
#[ignore = "netns tier: needs root; run `sudo cargo test -p compose-dhcp -- --ignored` (ci/test does)"]
fn netns_rdisc6_gets_an_advert_that_configures_nothing() {
    require_root();
    let net = Net::new(NODE_MAC);
    wait_link_local(&net.server_ns, &net.server_if);
    wait_link_local(&net.client_ns, &net.client_if);

    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let path = format!("/run/netns/{}", net.server_ns);
    let interface = net.server_if.clone();
    let thread = std::thread::spawn(move || {
        let fd = File::open(&path).expect("open netns");
        setns(&fd, CloneFlags::CLONE_NEWNET).expect("setns");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(compose_dhcp::serve_ra(interface, tx, async move {
            let _ = stop_rx.await;
        }));
    });
    let mut seen = Vec::new();
    let mut wait_for = |what: &str, pred: &dyn Fn(&RaEvent) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            while let Ok(e) = events.try_recv() {
                seen.push(e);
            }
            if seen.iter().any(pred) {
                return;
            }
            assert!(Instant::now() < deadline, "no {what} event; saw {seen:#?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("started", &|e| matches!(e, RaEvent::Started { .. }));

    let (fields, text) = rdisc6(&net);
    let field = |k: &str| fields.get(k).map(String::as_str).unwrap_or_default();
    assert_eq!(field("Stateful address conf."), "No", "{text}");
    assert_eq!(field("Stateful other conf."), "No", "{text}");
    assert!(
        field("Router lifetime").starts_with("0 "),
        "not a default router:\n{text}"
    );
    assert!(!text.contains("Prefix"), "no prefix is advertised:\n{text}");
    // The solicitor learns our link-layer address from the advert itself.
    let link = Command::new("ip")
        .args(["-n", &net.server_ns, "-br", "link", "show", &net.server_if])
        .output()
        .expect("ip link");
    let line = String::from_utf8_lossy(&link.stdout).to_string();
    let mac = line.split_whitespace().nth(2).unwrap_or_default();
    assert!(
        !mac.is_empty() && text.to_lowercase().contains(&mac.to_lowercase()),
        "advert lacks the source link-layer address {mac:?}:\n{text}"
    );
    // Answered to the soliciting host (unicast to its link-local address;
    // rdisc6, unlike iPXE, names no link-layer address in its solicitation).
    let client_ll = link_local(&net.client_ns, &net.client_if);
    wait_for(
        "advertised",
        &|e| matches!(e, RaEvent::Advertised { to, .. } if *to == client_ll),
    );

    let _ = stop.send(());
    thread.join().expect("responder thread");
}
