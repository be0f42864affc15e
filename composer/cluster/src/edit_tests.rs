use super::*;

const HAND: &str = "\
# Our cluster. Keep this comment.
[cluster]
subnet = \"10.1.0.0/24\"   # the cluster network

# rack 1
[[node]]
hostname = \"node01\"
mac = \"52:54:00:00:00:01\"
ip = \"10.1.0.11\"
image = \"hpc-node\"
groups = [\"compute\"]

# the canary
[[node]]
hostname = \"node02\"
mac = \"52:54:00:00:00:02\"
ip = \"10.1.0.12\"
image = \"hpc-node\"
generation = 3              # pinned while we test gen 4
groups = [\"compute\", \"canary\"]
";

fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("nodes.toml");
    std::fs::write(&p, text).unwrap();
    (d, p)
}

fn new_nodes(names: &str, first_ip: &str) -> NewNodes {
    let names = NodeSet::parse(names).unwrap();
    let macs = (0..names.len())
        .map(|i| format!("52:54:00:00:01:{:02x}", i + 3))
        .collect();
    NewNodes {
        names,
        macs,
        first_ip: first_ip.parse().unwrap(),
        image: "hpc-node".into(),
        groups: vec!["compute".into()],
        tags: BTreeMap::from([("rack".into(), "r2".into())]),
    }
}

#[test]
fn add_keeps_comments_and_numbers_consecutively() {
    let (_d, p) = file(HAND);
    let mut f = InventoryFile::load(&p).unwrap();
    f.add(&new_nodes("node[03-04]", "10.1.0.13").nodes().unwrap())
        .unwrap();
    f.save().unwrap();
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.starts_with(HAND), "{text}");
    assert!(text.ends_with(
        "\n[[node]]\nhostname = \"node04\"\nmac = \"52:54:00:00:01:04\"\nip = \"10.1.0.14\"\nimage = \"hpc-node\"\ngroups = [\"compute\"]\ntags = { rack = \"r2\" }\n"
    ), "{text}");
    let inv = crate::inventory::load_inventory(&p).unwrap();
    assert_eq!(inv.nodes.len(), 4);
    assert_eq!(inv.nodes[2].ip.to_string(), "10.1.0.13");
}

#[test]
fn invalid_additions_change_nothing() {
    let (_d, p) = file(HAND);
    let mut f = InventoryFile::load(&p).unwrap();
    for (nodes, want) in [
        (
            new_nodes("node[02-03]", "10.1.0.20"),
            "hostname node02 is already used",
        ),
        (
            new_nodes("node[05-06]", "10.1.0.12"),
            "ip 10.1.0.12 is already used by node02",
        ),
        (
            new_nodes("node[05-06]", "10.1.0.255"),
            "outside [cluster] subnet",
        ),
    ] {
        let err = f.add(&nodes.nodes().unwrap()).unwrap_err().to_string();
        assert!(err.contains(want), "{want}: {err}");
        assert_eq!(f.text(), HAND);
    }
    let mut short = new_nodes("node[05-07]", "10.1.0.20");
    short.macs.pop();
    let err = short.nodes().unwrap_err().to_string();
    assert!(
        err.contains("3 names (node[05-07]) but 2 MAC addresses"),
        "{err}"
    );
    let err = new_nodes("n[1-2]", "255.255.255.255").nodes().unwrap_err();
    assert!(err.to_string().contains("no IPv4 address follows"), "{err}");
}

#[test]
fn pin_unpin_and_remove_edit_only_their_nodes() {
    let (_d, p) = file(HAND);
    let mut f = InventoryFile::load(&p).unwrap();
    let set = f.inventory().select("@compute").unwrap();
    assert_eq!(f.set_pin(&set, Some(4)).unwrap(), ["node01", "node02"]);
    // The comment after node02's old pin stays on its line.
    assert!(
        f.text()
            .contains("generation = 4              # pinned while we test gen 4"),
        "{}",
        f.text()
    );
    assert_eq!(f.set_pin(&set, Some(4)).unwrap(), Vec::<String>::new());
    let one = NodeSet::parse("node01").unwrap();
    assert_eq!(f.set_pin(&one, None).unwrap(), ["node01"]);
    assert_eq!(f.inventory().node("node01").unwrap().generation, None);
    assert_eq!(f.inventory().node("node02").unwrap().generation, Some(4));
    let err = f
        .set_pin(&NodeSet::parse("node0[1-3]").unwrap(), Some(1))
        .unwrap_err();
    assert!(
        err.to_string().contains("node03: not in the inventory"),
        "{err}"
    );

    assert_eq!(f.remove(&one).unwrap(), ["node01"]);
    f.save().unwrap();
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(
        !text.contains("node01") && !text.contains("# rack 1"),
        "{text}"
    );
    assert!(text.starts_with("# Our cluster. Keep this comment.\n[cluster]\nsubnet = \"10.1.0.0/24\"   # the cluster network\n"), "{text}");
    assert!(
        text.contains("# the canary\n[[node]]\nhostname = \"node02\""),
        "{text}"
    );
}

#[test]
fn save_refuses_to_overwrite_a_concurrent_edit() {
    let (_d, p) = file(HAND);
    let mut f = InventoryFile::load(&p).unwrap();
    f.remove(&NodeSet::parse("node01").unwrap()).unwrap();
    std::fs::write(&p, format!("{HAND}# someone else\n")).unwrap();
    let err = f.save().unwrap_err().to_string();
    assert!(err.contains("changed while this command ran"), "{err}");
    assert!(std::fs::read_to_string(&p)
        .unwrap()
        .ends_with("# someone else\n"));
}

#[test]
fn a_new_file_starts_with_a_header_and_keeps_mode() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("etc/nodes.toml");
    let mut f = InventoryFile::load_or_new(&p).unwrap();
    f.add(&new_nodes("n1", "10.0.0.1").nodes().unwrap())
        .unwrap();
    f.save().unwrap();
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(
        text.starts_with(NEW_FILE) && text.ends_with("tags = { rack = \"r2\" }\n"),
        "{text}"
    );
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut f = InventoryFile::load(&p).unwrap();
    f.set_pin(&NodeSet::parse("n1").unwrap(), Some(2)).unwrap();
    f.save().unwrap();
    let meta = std::fs::metadata(&p).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let leftovers = std::fs::read_dir(p.parent().unwrap()).unwrap().count();
    assert_eq!(leftovers, 1);
}

#[test]
fn mac_lists_skip_comments_and_blank_lines() {
    let text = "# from the switch\n52:54:00:00:00:01\n\n  52:54:00:00:00:02  # rack 2\n";
    assert_eq!(
        parse_mac_list(text),
        ["52:54:00:00:00:01", "52:54:00:00:00:02"]
    );
}
