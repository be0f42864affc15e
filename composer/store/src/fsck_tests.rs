use super::*;
use crate::digest::{CacheKey, SnapshotId};
use crate::testutil::tagged_snapshot;

/// Image `node` with two snapshots sharing a base layer.
struct Fx {
    _dir: tempfile::TempDir,
    store: Store,
    n1: SnapshotId,
    n2: SnapshotId,
    base: Digest,
    mid2: Digest,
}

fn fixture() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let n1 = tagged_snapshot(&store, "node", &[b"base", b"mid1"], 1);
    let n2 = tagged_snapshot(&store, "node", &[b"base", b"mid2"], 2);
    Fx {
        _dir: dir,
        store,
        n1,
        n2,
        base: Digest::of(b"base"),
        mid2: Digest::of(b"mid2"),
    }
}

fn config_of(store: &Store, id: &SnapshotId) -> Digest {
    store
        .manifest(id)
        .unwrap()
        .config()
        .digest()
        .to_string()
        .parse()
        .unwrap()
}

fn flip_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[0] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

fn rm(store: &Store, d: &Digest) {
    std::fs::remove_file(store.blob_path(d)).unwrap();
}

/// Damages the store; returns the expected problem messages (substrings,
/// one per problem) and the number of warnings.
type Damage = fn(&Fx) -> (Vec<String>, usize);

#[test]
fn fsck_finds_each_kind_of_damage() {
    let cases: Vec<(&str, Damage)> = vec![
        ("clean", |_| (vec![], 0)),
        ("corrupt layer", |f| {
            flip_byte(&f.store.blob_path(&f.mid2));
            let actual = Digest::of(b"Mid2");
            let msg = format!("blob {} is corrupt (content hashes to {actual}): rebuild the image (`compose build`) after removing", f.mid2);
            (vec![msg], 0)
        }),
        ("missing layer", |f| {
            rm(&f.store, &f.mid2);
            let by = format!("snapshot node@{} layer 2 of 2", f.n2);
            (
                vec![format!("blob {} is missing ({by} needs it)", f.mid2)],
                0,
            )
        }),
        ("missing shared layer", |f| {
            rm(&f.store, &f.base);
            let one = |id| {
                format!(
                    "blob {} is missing (snapshot node@{id} layer 1 of 2",
                    f.base
                )
            };
            (vec![one(f.n1), one(f.n2)], 0)
        }),
        ("missing manifest", |f| {
            rm(&f.store, &f.n1.digest());
            (
                vec![format!(
                    "blob {} is missing (snapshot node@{} needs",
                    f.n1, f.n1
                )],
                0,
            )
        }),
        ("corrupt manifest reported once", |f| {
            std::fs::write(f.store.blob_path(&f.n1.digest()), b"{").unwrap();
            (vec![format!("blob {} is corrupt", f.n1)], 0)
        }),
        ("missing config", |f| {
            let c = config_of(&f.store, &f.n2);
            rm(&f.store, &c);
            (
                vec![format!(
                    "blob {c} is missing (snapshot node@{} config needs",
                    f.n2
                )],
                0,
            )
        }),
        ("stray", |f| {
            std::fs::write(f.store.blobs_dir().join("notes.txt"), b"x").unwrap();
            (vec!["notes.txt is not a blob".into()], 0)
        }),
        ("stale cache record is a warning", |f| {
            let layer = CachedLayer {
                digest: Digest::of(b"gone").into(),
                size: 4,
                created_by: String::new(),
            };
            f.store
                .cache_record(&CacheKey::from(Digest::of(b"k")), &layer)
                .unwrap();
            (vec![], 1)
        }),
        ("bad cache record", |f| {
            std::fs::write(f.store.cache_dir().join("x.json"), b"{").unwrap();
            (vec!["x.json is damaged: it does not parse".into()], 0)
        }),
        ("bad index", |f| {
            std::fs::write(f.store.index_path(), b"[").unwrap();
            (
                vec!["index.json is damaged: not an OCI image index".into()],
                0,
            )
        }),
    ];
    for (name, damage) in cases {
        let fx = fixture();
        let (want, warnings) = damage(&fx);
        let report = fx.store.fsck().unwrap();
        let got: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(got.len(), want.len(), "{name}: {got:#?}");
        for w in &want {
            assert!(
                got.iter().any(|g| g.contains(w)),
                "{name}: {w} not in {got:#?}"
            );
        }
        assert_eq!(
            report.warnings.len(),
            warnings,
            "{name}: {:?}",
            report.warnings
        );
        assert_eq!(report.is_clean(), want.is_empty(), "{name}");
    }
}

#[test]
fn fsck_counts_and_serializes() {
    let fx = fixture();
    let report = fx.store.fsck().unwrap();
    // 3 layers, 2 configs, 2 manifests.
    assert_eq!(report.blobs_checked, 7);
    let total: u64 = fx
        .store
        .blob_digests()
        .unwrap()
        .iter()
        .map(|d| std::fs::metadata(fx.store.blob_path(d)).unwrap().len())
        .sum();
    assert_eq!(report.bytes_checked, total);

    flip_byte(&fx.store.blob_path(&fx.mid2));
    let report = fx.store.fsck().unwrap();
    let json = serde_json::to_value(&report).unwrap();
    let problem = &json["problems"][0];
    assert_eq!(problem["kind"], "corrupt");
    assert_eq!(problem["digest"], fx.mid2.to_string());
    assert_eq!(problem["actual"], Digest::of(b"Mid2").to_string());
    assert!(problem["path"].as_str().unwrap().ends_with(&fx.mid2.hex()));
}

#[test]
fn vanished_blob_is_skipped() {
    let fx = fixture();
    let mut report = FsckReport::default();
    let damaged = fx
        .store
        .hash_blobs(&[Digest::of(b"never there")], &mut report);
    assert!(damaged.is_empty());
    assert_eq!(report, FsckReport::default());
}

#[test]
fn problems_of_entries_dropped_meanwhile_are_not_reported() {
    let fx = fixture();
    rm(&fx.store, &fx.mid2);
    let check_all = || {
        let damaged = BTreeSet::new();
        let mut check = Check {
            store: &fx.store,
            damaged: &damaged,
            found: Vec::new(),
        };
        for e in fx.store.load_index().unwrap().entries() {
            check.entry(&e);
        }
        check.found
    };
    let mut report = FsckReport::default();
    fx.store.report_indexed(check_all(), &mut report);
    assert_eq!(report.problems.len(), 1);

    // A gc drops n2 between the check and the second read of the index.
    let found = check_all();
    let mut index = fx.store.load_index().unwrap();
    let n2 = fx.n2.to_string();
    let keep = (index.entries().iter().enumerate())
        .filter(|(_, e)| e.digest != n2)
        .map(|(i, _)| i)
        .collect();
    index.retain_positions(&keep);
    fx.store.save_index(index).unwrap();
    let mut report = FsckReport::default();
    fx.store.report_indexed(found, &mut report);
    assert!(report.is_clean(), "{:?}", report.problems);
}
