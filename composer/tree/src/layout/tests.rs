//! The layout pinned: every path for a sample image, generation, snapshot
//! and MAC. A change here changes what existing trees, running nodes and
//! the systemd unit's ReadWritePaths expect: it must be deliberate.

use super::*;

const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn sample() -> (Layout, SnapshotId, MacEntry) {
    let snap = SnapshotId::from(Digest::from_hex(HEX).unwrap());
    let mac = MacEntry::new([0x52, 0x54, 0x00, 0x00, 0x00, 0x01]);
    (Layout::new("/srv/compose"), snap, mac)
}

#[test]
fn every_path_is_pinned() {
    let (l, snap, mac) = sample();
    let chain = Digest::from_hex(HEX).unwrap();
    let mut got: Vec<String> = vec![
        l.roots_dir(),
        l.root_dir(&snap),
        l.chains_dir(),
        l.chain_dir(&chain),
        l.images_dir(),
        l.image_dir("hpc-node"),
        l.gens_dir("hpc-node"),
        l.gen_dir("hpc-node", 3),
        l.current_link("hpc-node"),
        l.tftp_dir(),
        l.tftp_images_link(),
        l.pxelinux_dir(),
        l.pxelinux_default(),
        l.mac_entry(&mac),
        l.cluster_link(),
        l.cluster_sets_dir(),
        l.cluster_set("h1"),
        l.known_hosts(),
        l.node_files("node01"),
        l.node_boot_dir("node01"),
        l.node_overlay("node01"),
        l.state_dir(),
        l.boots_json(),
        l.cluster_state_dir(),
        l.hostkeys_dir(),
        l.tmp_dir(),
        l.lock_file(),
    ]
    .into_iter()
    .map(|p| p.display().to_string())
    .collect();
    got.extend(
        GenFile::ALL
            .iter()
            .map(|&f| l.gen_file("hpc-node", 3, f).display().to_string()),
    );
    got.extend([
        Layout::current_target(3),
        Layout::TFTP_IMAGES_TARGET.to_string(),
        Layout::entry_target("hpc-node", None),
        Layout::entry_target("hpc-node", Some(3)),
        Layout::cluster_target("h1"),
        Layout::gen_file_rel("hpc-node", 3, GenFile::Kernel),
    ]);
    let want = [
        "/srv/compose/roots".to_string(),
        format!("/srv/compose/roots/{HEX}"),
        "/srv/compose/chains".into(),
        format!("/srv/compose/chains/{HEX}"),
        "/srv/compose/images".into(),
        "/srv/compose/images/hpc-node".into(),
        "/srv/compose/images/hpc-node/gen".into(),
        "/srv/compose/images/hpc-node/gen/3".into(),
        "/srv/compose/images/hpc-node/current".into(),
        "/srv/compose/tftp".into(),
        "/srv/compose/tftp/images".into(),
        "/srv/compose/tftp/pxelinux.cfg".into(),
        "/srv/compose/tftp/pxelinux.cfg/default".into(),
        "/srv/compose/tftp/pxelinux.cfg/01-52-54-00-00-00-01".into(),
        "/srv/compose/cluster".into(),
        "/srv/compose/cluster.d".into(),
        "/srv/compose/cluster.d/h1".into(),
        "/srv/compose/cluster/ssh_known_hosts".into(),
        "/srv/compose/cluster/nodes/node01".into(),
        "/srv/compose/cluster/boot/node01".into(),
        "/srv/compose/cluster/boot/node01/overlay.cpio".into(),
        "/srv/compose/state".into(),
        "/srv/compose/state/boots.json".into(),
        "/srv/compose/cluster-state".into(),
        "/srv/compose/cluster-state/hostkeys".into(),
        "/srv/compose/tmp".into(),
        "/srv/compose/.lock".into(),
        "/srv/compose/images/hpc-node/gen/3/generation.json".into(),
        "/srv/compose/images/hpc-node/gen/3/pxelinux.cfg".into(),
        "/srv/compose/images/hpc-node/gen/3/vmlinuz".into(),
        "/srv/compose/images/hpc-node/gen/3/initrd.img".into(),
        "gen/3".into(),
        "../images".into(),
        "../images/hpc-node/current/pxelinux.cfg".into(),
        "../images/hpc-node/gen/3/pxelinux.cfg".into(),
        "cluster.d/h1".into(),
        "images/hpc-node/gen/3/vmlinuz".into(),
    ];
    assert_eq!(got, want);
}

#[test]
fn parsers_invert_the_paths() {
    let (l, snap, mac) = sample();
    assert_eq!(MacEntry::parse(&mac.to_string()), Some(mac));
    assert_eq!(
        Layout::parse_current_target(Path::new(&Layout::current_target(7))),
        Some(7)
    );
    let rel = Layout::gen_file_rel("hpc-node", 3, GenFile::Initrd);
    assert_eq!(Layout::parse_gen_path(&rel), Some(("hpc-node".into(), 3)));
    assert_eq!(
        Layout::parse_gen_path(&format!("/{rel}")),
        Some(("hpc-node".into(), 3))
    );
    assert_eq!(
        Layout::relative().mac_entry(&mac).display().to_string(),
        "tftp/pxelinux.cfg/01-52-54-00-00-00-01"
    );
    let export = l.root_dir(&snap).display().to_string();
    assert_eq!(Layout::parse_export(&export), Some(snap));
    assert_eq!(Layout::parse_export(&format!("{export}/boot")), Some(snap));
}

#[test]
fn parsers_refuse_what_is_not_of_the_layout() {
    for name in [
        "default",
        "01-52-54-00-00-00",
        "01-52-54-00-00-00-01-02",
        "01-52-54-00-00-00-0G",
        "01-52-54-00-00-00-AA",
        "01-5-254-00-00-00-01",
    ] {
        assert_eq!(MacEntry::parse(name), None, "{name}");
    }
    assert!(MacEntry::is_owned_name("01-garbage"));
    assert!(!MacEntry::is_owned_name("default"));
    for p in [
        "images/x/current/vmlinuz",
        "images/x/gen/3",
        "images/x/gen/three/vmlinuz",
        "tftp/images/x/gen/3/vmlinuz",
    ] {
        assert_eq!(Layout::parse_gen_path(p), None, "{p}");
    }
    for t in ["gen/", "gen/x", "/gen/3", "../gen/3"] {
        assert_eq!(Layout::parse_current_target(Path::new(t)), None, "{t}");
    }
    for e in [
        "/srv/compose/roots/abc".to_string(),
        format!("/srv/compose/roots/{HEX}x"),
        format!("/srv/compose/chains/{HEX}"),
    ] {
        assert_eq!(Layout::parse_export(&e), None, "{e}");
    }
}

#[test]
fn the_lock_excludes_a_second_holder_until_dropped() {
    let d = tempfile::tempdir().unwrap();
    let l = Layout::new(d.path());
    let held = crate::TreeLock::acquire(&l).unwrap();
    let file = compose_fs::lock::open(&l.lock_file()).unwrap();
    assert!(matches!(
        compose_fs::lock::try_exclusive(file, &l.lock_file()).unwrap(),
        compose_fs::lock::TryLock::Busy(_)
    ));
    drop(held);
    let file = compose_fs::lock::open(&l.lock_file()).unwrap();
    assert!(matches!(
        compose_fs::lock::try_exclusive(file, &l.lock_file()).unwrap(),
        compose_fs::lock::TryLock::Locked(_)
    ));
}
