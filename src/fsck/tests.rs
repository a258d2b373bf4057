use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("root")).unwrap();
    (dir, store)
}

#[test]
fn a_sound_store_has_no_problem() {
    let (_dir, store) = store();
    let got = store
        .blobs()
        .write(&b"some content"[..], crate::store::Expected::Unknown)
        .unwrap();
    let report = check(&store, false).unwrap();
    assert_eq!(report.problems, Vec::new());
    assert_eq!(report.blobs, 1);
    assert!(store.blobs().contains(&got.digest));
}

#[test]
fn a_corrupt_blob_is_reported_and_only_removed_when_repairing() {
    let (_dir, store) = store();
    let got = store
        .blobs()
        .write(&b"some content"[..], crate::store::Expected::Unknown)
        .unwrap();
    std::fs::write(store.blobs().path(&got.digest), b"other content").unwrap();
    let report = check(&store, false).unwrap();
    assert!(
        matches!(&report.problems[..], [Problem::CorruptBlob { digest, .. }] if *digest == got.digest),
        "{:?}",
        report.problems
    );
    assert!(
        store.blobs().contains(&got.digest),
        "a check changes nothing"
    );
    let report = check(&store, true).unwrap();
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.repaired.len(), 1, "{:?}", report.repaired);
    assert!(!store.blobs().contains(&got.digest));
    assert_eq!(check(&store, false).unwrap().problems, Vec::new());
}

#[test]
fn an_unreadable_record_is_a_problem_and_a_dangling_one_is_not() {
    let (dir, store) = store();
    let steps = dir.path().join("root/cache/steps");
    std::fs::create_dir_all(&steps).unwrap();
    std::fs::write(steps.join(format!("{}.json", "a".repeat(64))), "{").unwrap();
    let layer = format!("sha256:{}", "b".repeat(64));
    std::fs::write(
        steps.join(format!("{}.json", "c".repeat(64))),
        format!(
            r#"{{"layer":{{"media_type":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer}","size":1,"diff_id":"{layer}"}}}}"#
        ),
    )
    .unwrap();
    let report = check(&store, false).unwrap();
    assert_eq!(report.records, 2);
    assert!(
        matches!(&report.problems[..], [Problem::BadRecord { .. }]),
        "{:?}",
        report.problems
    );
    assert_eq!(report.dangling_records, 1);
    let report = check(&store, true).unwrap();
    assert_eq!(report.repaired.len(), 2, "{:?}", report.repaired);
    assert_eq!(std::fs::read_dir(&steps).unwrap().count(), 0);
}
