//! The deferred layers' unit tests: blobs made later against the eager commit's bytes.

use super::*;
use crate::oci::ImageConfig;
use crate::oci::manifest::image_manifest;
use crate::oci::platform::Platform;
use crate::store::Expected;

/// A store, and a snapshot in it holding a few files (one big enough for several
/// compression blocks), as a step's upper directory would after its publish.
fn snapshot() -> (tempfile::TempDir, Store, Digest, Digest) {
    snapshot_at(None)
}

/// [`snapshot`], its diff ID that of a tar written with `source_date_epoch`.
fn snapshot_at(source_date_epoch: Option<i64>) -> (tempfile::TempDir, Store, Digest, Digest) {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(d.path()).unwrap();
    let files = d.path().join("upper");
    std::fs::create_dir_all(files.join("app/data")).unwrap();
    std::fs::write(files.join("app/hello"), b"hello\n").unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(files.join("app/data/big"), big).unwrap();
    std::os::unix::fs::symlink("hello", files.join("app/link")).unwrap();
    let changes = diff::overlay_changes(&files).unwrap();
    let opts = LayerOptions {
        compression: Compression::None,
        source_date_epoch,
        ..LayerOptions::default()
    };
    let got = write_layer(&files, &changes, &opts, std::io::sink()).unwrap();
    let chain = crate::snapshot::next_chain_id(None, &got.diff_id);
    let snapshots = Snapshots::new(d.path());
    crate::snapshot::publish(&files, &d.path().join("snapshots"), &snapshots.path(&chain)).unwrap();
    (d, store, got.diff_id, chain)
}

fn eager(store: &Store, chain: &Digest, opts: &LayerOptions) -> Vec<u8> {
    let dir = Snapshots::new(store.root()).path(chain);
    let changes = diff::overlay_changes(&dir).unwrap();
    let mut out = Vec::new();
    write_layer(&dir, &changes, opts, &mut out).unwrap();
    out
}

fn blob(store: &Store, digest: &Digest) -> Vec<u8> {
    std::fs::read(store.blobs().path(digest)).unwrap()
}

/// `name: compression, level => the blob made later is the eager commit's, byte for byte`.
macro_rules! made_later_is_eager {
    ($($name:ident: $compression:expr, $level:expr;)*) => {$(
        #[test]
        fn $name() {
            let (_d, store, diff_id, chain) = snapshot_at(Some(1_700_000_000));
            let opts = LayerOptions {
                compression: $compression,
                level: $level,
                threads: 2,
                source_date_epoch: Some(1_700_000_000),
            };
            let layers = DeferredLayers::new(store.root());
            layers.committed(&diff_id, Some(&chain), &opts).unwrap();
            let (c, made) = layers.blob(&store, &diff_id, None, None).unwrap().unwrap();
            assert_eq!(c, $compression);
            let bytes = blob(&store, &made.digest);
            assert_eq!(bytes, eager(&store, &chain, &opts));
            assert_eq!(made.size, bytes.len() as u64);
        }
    )*};
}

made_later_is_eager! {
    made_later_gzip: Compression::Gzip, None;
    made_later_gzip_level_9: Compression::Gzip, Some(9);
    made_later_zstd: Compression::Zstd, None;
    made_later_uncompressed: Compression::None, None;
}

#[test]
fn a_blob_is_made_once_per_compression_and_outlives_the_snapshot() {
    let (_d, store, diff_id, chain) = snapshot();
    let layers = DeferredLayers::new(store.root());
    let opts = LayerOptions::default();
    layers.committed(&diff_id, Some(&chain), &opts).unwrap();
    let (_, gzip) = layers.blob(&store, &diff_id, None, None).unwrap().unwrap();
    let first = std::fs::metadata(store.blobs().path(&gzip.digest)).unwrap();
    let zstd_opts = LayerOptions {
        compression: Compression::Zstd,
        ..LayerOptions::default()
    };
    let eager_zstd = eager(&store, &chain, &zstd_opts);
    // Its files gone, the layer is still its blob, reused as it is...
    std::fs::remove_dir_all(Snapshots::new(store.root()).path(&chain)).unwrap();
    let (_, again) = layers.blob(&store, &diff_id, None, None).unwrap().unwrap();
    assert_eq!(again, gzip);
    let second = std::fs::metadata(store.blobs().path(&gzip.digest)).unwrap();
    assert_eq!(first.modified().unwrap(), second.modified().unwrap());
    let layer = descriptor(&MediaType::OciLayer, &diff_id, 1);
    assert!(layers.available(&store, &layer));
    // ...and decompressed for another compression: the eager commit's bytes.
    let zstd = Some((Compression::Zstd, None));
    let (_, made) = layers.blob(&store, &diff_id, None, zstd).unwrap().unwrap();
    assert_eq!(blob(&store, &made.digest), eager_zstd);
    // With its blobs gone too, it is lost, and says what to do.
    for d in [&gzip.digest, &made.digest] {
        store.blobs().delete(d).unwrap();
    }
    let err = layers.blob(&store, &diff_id, None, zstd).unwrap_err();
    assert!(matches!(err, DeferredError::Lost { .. }), "{err:?}");
    assert!(err.to_string().contains("build the image again"), "{err}");
    assert!(!layers.available(&store, &layer));
}

#[test]
fn a_collection_forgets_unnamed_entries_and_old_temporary_files() {
    let d = tempfile::tempdir().unwrap();
    let layers = DeferredLayers::new(d.path());
    let (a, b) = (Digest::sha256(b"a"), Digest::sha256(b"b"));
    for diff_id in [&a, &b] {
        layers
            .committed(diff_id, None, &LayerOptions::default())
            .unwrap();
    }
    std::fs::write(layers.dir.join("tmp-crashed"), b"{").unwrap();
    let keep: std::collections::BTreeSet<Digest> = [a.clone()].into();
    // Within the grace period a build may be about to name them: nothing goes.
    assert_eq!(
        layers.retain(&keep, std::time::Duration::from_secs(3600)),
        0
    );
    assert_eq!(layers.retain(&keep, std::time::Duration::ZERO), 2);
    assert!(layers.get(&a).is_some() && layers.get(&b).is_none());
    assert!(!layers.dir.join("tmp-crashed").exists());
    assert!(layers.dir.join("lock").exists());
}

#[test]
fn the_uncompressed_blob_is_a_source_too() {
    // The native snapshotter's commit: the tar is in the store, no snapshot is listed.
    let (_d, store, diff_id, chain) = snapshot();
    let tar = eager(
        &store,
        &chain,
        &LayerOptions {
            compression: Compression::None,
            ..LayerOptions::default()
        },
    );
    store.blobs().write(&tar[..], Expected::Unknown).unwrap();
    std::fs::remove_dir_all(Snapshots::new(store.root()).path(&chain)).unwrap();
    let layers = DeferredLayers::new(store.root());
    let opts = LayerOptions {
        compression: Compression::Zstd,
        ..LayerOptions::default()
    };
    layers.committed(&diff_id, None, &opts).unwrap();
    let (_, made) = layers.blob(&store, &diff_id, None, None).unwrap().unwrap();
    let mut expected = Vec::new();
    compress_tar(&tar[..], &opts, &mut expected).unwrap();
    assert_eq!(blob(&store, &made.digest), expected);
}

#[test]
fn a_snapshot_changed_after_its_commit_is_refused() {
    let (_d, store, diff_id, chain) = snapshot();
    let layers = DeferredLayers::new(store.root());
    layers
        .committed(&diff_id, Some(&chain), &LayerOptions::default())
        .unwrap();
    let dir = Snapshots::new(store.root()).path(&chain);
    std::fs::write(dir.join("app/hello"), b"changed\n").unwrap();
    let err = layers.blob(&store, &diff_id, None, None).unwrap_err();
    assert!(matches!(err, DeferredError::Changed { .. }), "{err:?}");
    let left: Vec<_> = store.blobs().list().unwrap().collect();
    assert!(left.is_empty(), "nothing is kept: {left:?}");
}

#[test]
fn a_manifest_is_materialized_as_the_eager_one() {
    let (_d, store, diff_id, chain) = snapshot();
    let opts = LayerOptions::default();
    DeferredLayers::new(store.root())
        .committed(&diff_id, Some(&chain), &opts)
        .unwrap();
    let mut config = ImageConfig::new(&Platform::parse("linux/amd64").unwrap());
    config.rootfs.diff_ids = vec![diff_id.clone()];
    let config = config.to_canonical_json().unwrap();
    let config = store
        .put_manifest(
            &config,
            &MediaType::parse(crate::oci::media_type::OCI_CONFIG),
        )
        .unwrap();
    let manifest = |layer: Descriptor| {
        let bytes = to_canonical_oci(&image_manifest(config.clone(), vec![layer])).unwrap();
        store.put_manifest(&bytes, &MediaType::OciManifest).unwrap()
    };
    let lazy = manifest(descriptor(&MediaType::OciLayer, &diff_id, 1));
    let eager_bytes = eager(&store, &chain, &opts);
    let eager = manifest(descriptor(
        &MediaType::OciLayerGzip,
        &Digest::sha256(&eager_bytes),
        eager_bytes.len() as u64,
    ));
    let made = materialize(&store, &lazy).unwrap();
    assert_eq!(made.digest(), eager.digest());
    // An index over it names the materialized manifest; a second call makes nothing new.
    let index = to_canonical_oci(&crate::oci::manifest::image_index(vec![lazy.clone()])).unwrap();
    let index = store.put_manifest(&index, &MediaType::OciIndex).unwrap();
    let made_index = materialize(&store, &index).unwrap();
    let bytes = blob(&store, &descriptor_digest(&made_index).unwrap());
    assert!(
        String::from_utf8(bytes)
            .unwrap()
            .contains(&eager.digest().to_string())
    );
    assert_eq!(materialize(&store, &eager).unwrap(), eager);
}
