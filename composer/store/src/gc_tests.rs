use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use super::*;
use crate::digest::CacheKey;
use crate::testutil::{listing, tagged_snapshot};

/// Images `a` (a1, a2) and `b` (b1, b2) built in the order a1 b1 a2 b2, all
/// sharing a base layer; cache records for a1's own layer, for a2's, and for
/// a layer no snapshot uses.
struct Fx {
    dir: tempfile::TempDir,
    store: Store,
    a1: SnapshotId,
    a2: SnapshotId,
    b1: SnapshotId,
    b2: SnapshotId,
}

fn fixture() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let a1 = tagged_snapshot(&store, "a", &[b"base", b"a1"], 1);
    let b1 = tagged_snapshot(&store, "b", &[b"base", b"b1"], 2);
    let a2 = tagged_snapshot(&store, "a", &[b"base", b"a2"], 3);
    let b2 = tagged_snapshot(&store, "b", &[b"base", b"b2"], 4);
    for (key, layer) in [
        ("k-a1", &b"a1"[..]),
        ("k-a2", b"a2"),
        ("k-cache", b"cache only"),
    ] {
        let record = CachedLayer {
            digest: store.put_blob(layer).unwrap().into(),
            size: layer.len() as u64,
            created_by: key.into(),
        };
        store.cache_record(&key_of(key), &record).unwrap();
    }
    Fx {
        dir,
        store,
        a1,
        a2,
        b1,
        b2,
    }
}

fn key_of(name: &str) -> CacheKey {
    Digest::of(name.as_bytes()).into()
}

fn keep(n: usize) -> GcPolicy {
    GcPolicy {
        keep_per_image: n,
        ..GcPolicy::default()
    }
}

fn snapshot_ids(store: &Store) -> BTreeSet<SnapshotId> {
    store.snapshots().unwrap().iter().map(|s| s.id).collect()
}

fn blob_bytes(store: &Store, d: &Digest) -> u64 {
    std::fs::metadata(store.blob_path(d)).unwrap().len()
}

#[test]
fn keep_one_drops_old_snapshots_and_their_own_blobs() {
    let fx = fixture();
    let s = &fx.store;
    let mut gone: Vec<Digest> = [fx.a1, fx.b1].iter().map(|id| id.digest()).collect();
    for id in [fx.a1, fx.b1] {
        gone.push(
            s.manifest(&id)
                .unwrap()
                .config()
                .digest()
                .to_string()
                .parse()
                .unwrap(),
        );
    }
    gone.extend([b"a1" as &[u8], b"b1", b"cache only"].map(Digest::of));
    let freed: u64 = gone.iter().map(|d| blob_bytes(s, d)).sum();

    let report = s.gc(&keep(1)).unwrap();

    let removed: Vec<(&str, SnapshotId)> = report
        .removed_snapshots
        .iter()
        .map(|r| (r.image.as_str(), r.id))
        .collect();
    assert_eq!(removed, vec![("a", fx.a1), ("b", fx.b1)]);
    assert_eq!(report.kept_snapshots, 2);
    assert_eq!(report.removed_blobs, gone.len() as u64);
    assert_eq!(report.freed_bytes, freed);
    // a1's layer and the cache-only layer went, so did their records.
    assert_eq!(report.removed_cache_records, 2);
    assert_eq!(snapshot_ids(s), BTreeSet::from([fx.a2, fx.b2]));
    for d in &gone {
        assert!(!s.has_blob(d), "{d}");
    }
    assert!(s.has_blob(&Digest::of(b"base")), "shared base layer kept");
    assert!(s.cache_lookup(&key_of("k-a2")).unwrap().is_some());
    assert!(!s
        .cache_dir()
        .join(format!("{}.json", key_of("k-a1").digest().hex()))
        .exists());
    let fsck = s.fsck().unwrap();
    assert!(fsck.is_clean() && fsck.warnings.is_empty(), "{fsck:?}");

    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["removed_snapshots"][0]["id"], fx.a1.to_string());
    assert_eq!(
        json["removed_snapshots"][0]["built"],
        "2027-01-15T08:00:01Z"
    );
}

#[test]
fn policies_keep_the_right_snapshots() {
    type Setup = fn(&Fx) -> (GcPolicy, Vec<SnapshotId>);
    let cases: Vec<(&str, Setup)> = vec![
        ("keep 1", |f| (keep(1), vec![f.a2, f.b2])),
        ("keep 0 still keeps the newest", |f| {
            (keep(0), vec![f.a2, f.b2])
        }),
        ("keep 2 keeps all", |f| {
            (keep(2), vec![f.a1, f.a2, f.b1, f.b2])
        }),
        ("pinned old snapshot survives", |f| {
            let policy = GcPolicy {
                pinned: BTreeSet::from([f.a1]),
                ..keep(1)
            };
            (policy, vec![f.a1, f.a2, f.b2])
        }),
        ("tagged snapshot kept though older", |f| {
            // Re-tagging a1 with an old time makes it what `a` resolves to.
            f.store.tag("a", &f.a1, SystemTime::UNIX_EPOCH).unwrap();
            (keep(1), vec![f.a1, f.a2, f.b2])
        }),
    ];
    for (name, setup) in cases {
        let fx = fixture();
        let (policy, want) = setup(&fx);
        let report = fx.store.gc(&policy).unwrap();
        let want: BTreeSet<SnapshotId> = want.into_iter().collect();
        assert_eq!(snapshot_ids(&fx.store), want, "{name}");
        assert_eq!(report.kept_snapshots, want.len(), "{name}");
        assert!(fx.store.fsck().unwrap().is_clean(), "{name}");
    }
}

#[test]
fn dry_run_writes_nothing_and_predicts_the_real_run() {
    let fx = fixture();
    let before = listing(fx.dir.path());
    let dry = fx
        .store
        .gc(&GcPolicy {
            dry_run: true,
            ..keep(1)
        })
        .unwrap();
    assert_eq!(listing(fx.dir.path()), before);
    assert_eq!(dry.removed_snapshots.len(), 2);
    let real = fx.store.gc(&keep(1)).unwrap();
    assert_eq!(dry, real);
}

#[test]
fn gc_twice_is_idempotent() {
    let fx = fixture();
    let first = fx.store.gc(&keep(1)).unwrap();
    let after_first = listing(fx.dir.path());
    let second = fx.store.gc(&keep(1)).unwrap();
    assert_eq!(listing(fx.dir.path()), after_first);
    assert_eq!(
        second,
        GcReport {
            kept_snapshots: first.kept_snapshots,
            ..GcReport::default()
        }
    );
}

#[test]
fn foreign_index_entries_and_their_blobs_are_kept() {
    let fx = fixture();
    // An image index added by another tool, pointing at a1's manifest.
    let child = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":1}}]}}"#,
        fx.a1
    );
    let nested = fx.store.put_blob(child.as_bytes()).unwrap();
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fx.store.index_path()).unwrap()).unwrap();
    let entry = serde_json::json!({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": nested.to_string(),
        "size": child.len(),
    });
    index["manifests"].as_array_mut().unwrap().push(entry);
    std::fs::write(fx.store.index_path(), index.to_string()).unwrap();

    let report = fx.store.gc(&keep(1)).unwrap();
    // a1 left image `a`, but its blobs stay: the foreign index needs them.
    assert_eq!(report.removed_snapshots.len(), 2);
    assert!(fx.store.has_blob(&nested));
    assert!(fx.store.has_blob(&fx.a1.digest()));
    assert!(fx.store.has_blob(&Digest::of(b"a1")));
    assert!(!fx.store.has_blob(&Digest::of(b"b1")));
}

#[test]
fn unparseable_kept_manifest_stops_gc_before_any_change() {
    let fx = fixture();
    std::fs::write(fx.store.blob_path(&fx.a2.digest()), b"not json").unwrap();
    let before = listing(fx.dir.path());
    let err = fx.store.gc(&keep(1)).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("deleted nothing"), "{err}");
    let after = listing(fx.dir.path());
    // Only the lock file (created by taking the lock) may differ.
    let strip = |l: BTreeMap<String, (u64, Vec<u8>)>| {
        l.into_iter()
            .filter(|(p, _)| p != "store/compose/lock")
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(strip(after), strip(before));
}

const CHILD_ENV: &str = "COMPOSE_TEST_GC_CRASH_STORE";

/// Runs a gc in the store named by CHILD_ENV; a no-op unless
/// `crash_leaves_a_consistent_store` re-runs this test binary for it.
#[test]
fn crash_child() {
    if let Ok(root) = std::env::var(CHILD_ENV) {
        Store::open_existing(root).unwrap().gc(&keep(1)).unwrap();
    }
}

#[test]
fn crash_leaves_a_consistent_store() {
    let clean = fixture();
    clean.store.gc(&keep(1)).unwrap();
    let want_blobs = clean.store.blob_digests().unwrap();
    for fault in ["gc:after-index", "gc:mid-delete"] {
        let fx = fixture();
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "gc::tests::crash_child", "--test-threads=1"])
            .env(CHILD_ENV, fx.store.root())
            .env("COMPOSE_FAULT", fault)
            // A core file, if the host writes them, lands in the temp dir.
            .current_dir(fx.dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGABRT),
            "{fault}: {stderr}"
        );

        // The index already dropped a1 and b1 and references only blobs that exist.
        assert_eq!(
            snapshot_ids(&fx.store),
            BTreeSet::from([fx.a2, fx.b2]),
            "{fault}"
        );
        let fsck = fx.store.fsck().unwrap();
        assert!(fsck.is_clean(), "{fault}: {:?}", fsck.problems);
        assert!(
            fx.store.blob_digests().unwrap().len() > want_blobs.len(),
            "{fault}"
        );

        // The next gc finishes the job.
        let report = fx.store.gc(&keep(1)).unwrap();
        assert!(
            report.removed_snapshots.is_empty() && report.removed_blobs > 0,
            "{fault}"
        );
        assert_eq!(fx.store.blob_digests().unwrap(), want_blobs, "{fault}");
    }
}
