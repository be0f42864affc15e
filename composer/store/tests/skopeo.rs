//! The store is a real OCI layout: skopeo (the reference reader) can read it.

use std::collections::BTreeMap;
use std::process::Command;

use compose_store::{write_layer, LayerEntry, LayerOptions, Selection, SnapshotSpec, Store};

fn skopeo(args: &[&str]) -> String {
    let out = match Command::new("skopeo").args(args).output() {
        Ok(o) => o,
        Err(e) => panic!("cannot run skopeo ({e}): install skopeo (apt-get install skopeo)"),
    };
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn skopeo_reads_store() {
    let rootfs = tempfile::tempdir().unwrap();
    std::fs::create_dir(rootfs.path().join("etc")).unwrap();
    std::fs::write(rootfs.path().join("etc/hostname"), b"node\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let _lock = store.lock().unwrap();

    let opts = LayerOptions {
        source_date_epoch: 1_700_000_000,
    };
    let mut blob = store.blob_writer().unwrap();
    write_layer(rootfs.path(), Selection::All, &opts, &mut blob).unwrap();
    let (digest, size) = blob.commit().unwrap();
    let spec = SnapshotSpec {
        image: "node".into(),
        architecture: "arm64".into(),
        source_date_epoch: 1_700_000_000,
        layers: vec![LayerEntry {
            digest: digest.into(),
            size,
            created_by: "mmdebstrap".into(),
            comment: "base".into(),
        }],
        labels: BTreeMap::from([("org.example.k".into(), "v".into())]),
    };
    let id = store.write_snapshot(&spec).unwrap();
    store
        .tag("node", &id, std::time::SystemTime::now())
        .unwrap();

    let reference = format!("oci:{}:node", store.root().display());
    let raw = skopeo(&["inspect", "--raw", &reference]);
    assert_eq!(compose_store::Digest::of(raw.as_bytes()), id.digest());
    let info: serde_json::Value = serde_json::from_str(&skopeo(&["inspect", &reference])).unwrap();
    assert_eq!(info["Architecture"], "arm64");
    assert_eq!(info["Os"], "linux");
    assert_eq!(info["Labels"]["org.example.k"], "v");
    assert_eq!(info["Layers"][0], digest.to_string());
    assert_eq!(info["Created"], "2023-11-14T22:13:20Z");
}
