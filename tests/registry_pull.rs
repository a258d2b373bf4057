//! Pull into the store from a real `docker-registry`: a plain manifest, an index narrowed to
//! a platform, a second pull that downloads nothing, and a dead mirror falling back to the
//! registry. Images are made by `umoci` and pushed by `skopeo`.

use std::process::Command;
use std::sync::Mutex;

use rbuild::oci::digest::Digest;
use rbuild::oci::platform::Platform;
use rbuild::oci::reference::Reference;
use rbuild::registry::client::{Anonymous, Client, Origin};
use rbuild::registry::pull::{Event, Source, pull};
use rbuild::store::Store;

use crate::common::registry::{Registry, run, skopeo_push, umoci_busybox};
use crate::common::require;

fn temp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("rbuild-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn pulls_into_the_store_and_second_pull_downloads_nothing() {
    if !require::tools(&["docker-registry", "skopeo", "umoci"]) {
        return;
    }
    let reg = Registry::start(None);
    let dir = temp("pull-plain");
    umoci_busybox(&dir.join("layout"), "1");
    skopeo_push(
        &dir.join("layout"),
        "1",
        &format!("{}/library/busybox:1", reg.addr),
        None,
    );

    let store = Store::open(dir.join("store")).unwrap();
    let client = Client::new(Box::new(Anonymous));
    let sources = [Source {
        origin: Origin::new(&reg.addr, true),
        repository: "library/busybox".into(),
    }];
    let reference = Reference::parse("docker.io/library/busybox:1").unwrap();
    let platform = Platform::parse("linux/amd64").unwrap();
    let events = Mutex::new(Vec::new());
    let log = |e: Event| events.lock().unwrap().push(e);
    pull(&client, &store, &sources, &reference, &platform, &log).unwrap();
    let first: Vec<Event> = events.lock().unwrap().drain(..).collect();
    let downloaded = first
        .iter()
        .filter(|e| matches!(e, Event::Downloaded { .. }))
        .count();
    assert_eq!(downloaded, 2, "config and one layer: {first:?}");

    let image = store.image(&reference, &platform).unwrap();
    assert_eq!(image.config.config.as_ref().unwrap().cmd, vec!["sh"]);
    for d in store.referenced_blobs().unwrap() {
        store.blobs().verify(&d).unwrap();
    }

    pull(&client, &store, &sources, &reference, &platform, &log).unwrap();
    let second: Vec<Event> = events.lock().unwrap().drain(..).collect();
    assert!(
        !second.iter().any(|e| matches!(e, Event::Downloaded { .. })),
        "{second:?}"
    );
    assert_eq!(
        second
            .iter()
            .filter(|e| matches!(e, Event::Cached { .. }))
            .count(),
        2
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn index_is_narrowed_to_the_platform_and_dead_mirror_falls_back() {
    if !require::tools(&["docker-registry", "skopeo", "umoci"]) {
        return;
    }
    let reg = Registry::start(None);
    let dir = temp("pull-index");
    let client = Client::new(Box::new(Anonymous));
    let origin = Origin::new(&reg.addr, true);
    // Two single-platform images pushed by skopeo, then an index over them pushed by us.
    let mut entries = Vec::new();
    for arch in ["amd64", "arm64"] {
        let layout = dir.join(format!("layout-{arch}"));
        umoci_busybox(&layout, "1");
        run(Command::new("umoci").args([
            "config",
            "--image",
            &format!("{}:1", layout.display()),
            "--architecture",
            arch,
        ]));
        skopeo_push(
            &layout,
            "1",
            &format!("{}/multi/busybox:{arch}", reg.addr),
            None,
        );
        let m = client.get_manifest(&origin, "multi/busybox", arch).unwrap();
        entries.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": m.digest.to_string(),
            "size": m.bytes.len(),
            "platform": {"architecture": arch, "os": "linux"},
        }));
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }))
    .unwrap();
    client
        .put_manifest(
            &origin,
            "multi/busybox",
            "latest",
            "application/vnd.oci.image.index.v1+json",
            &index,
        )
        .unwrap();

    let store = Store::open(dir.join("store")).unwrap();
    let sources = [
        Source {
            origin: Origin::new("127.0.0.1:1", true),
            repository: "multi/busybox".into(),
        },
        Source {
            origin: origin.clone(),
            repository: "multi/busybox".into(),
        },
    ];
    let reference = Reference::parse("example.com/multi/busybox:latest").unwrap();
    let arm = Platform::parse("linux/arm64").unwrap();
    let events = Mutex::new(Vec::new());
    let log = |e: Event| events.lock().unwrap().push(e);
    let pulled = pull(&client, &store, &sources, &reference, &arm, &log).unwrap();
    assert_eq!(
        pulled.source.origin, origin,
        "fell back from the dead mirror"
    );
    let events = events.into_inner().unwrap();
    assert!(
        matches!(&events[1], Event::Source { error: Some(e), .. } if e.contains("127.0.0.1:1")),
        "{events:?}"
    );
    assert_eq!(
        pulled.tagged.digest().to_string(),
        Digest::sha256(&index).to_string(),
        "the tag names the index"
    );
    let image = store.image(&reference, &arm).unwrap();
    assert_eq!(image.config.architecture, "arm64");

    let missing = Platform::parse("linux/s390x").unwrap();
    let err = pull(
        &client,
        &store,
        &sources[1..],
        &reference,
        &missing,
        &|_| {},
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("linux/s390x") && msg.contains("linux/amd64") && msg.contains("linux/arm64"),
        "{msg}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pulled_layers_unpack_into_chain_id_snapshots_once() {
    use rbuild::snapshot::{Snapshots, chain_ids};
    if !require::tools(&["docker-registry", "skopeo", "umoci"]) {
        return;
    }
    let reg = Registry::start(None);
    let dir = temp("pull-snap");
    umoci_busybox(&dir.join("layout"), "1");
    skopeo_push(
        &dir.join("layout"),
        "1",
        &format!("{}/library/busybox:1", reg.addr),
        None,
    );
    let store = Store::open(dir.join("store")).unwrap();
    let client = Client::new(Box::new(Anonymous));
    let sources = [Source {
        origin: Origin::new(&reg.addr, true),
        repository: "library/busybox".into(),
    }];
    let reference = Reference::parse("docker.io/library/busybox:1").unwrap();
    let platform = Platform::parse("linux/amd64").unwrap();
    pull(&client, &store, &sources, &reference, &platform, &|_| {}).unwrap();
    let image = store.image(&reference, &platform).unwrap();

    let snaps = Snapshots::new(&dir.join("store"));
    let dirs = snaps.ensure(&store, &image, false).unwrap();
    let chain = chain_ids(&image.config.rootfs.diff_ids);
    assert_eq!(dirs, vec![snaps.path(&chain[0])]);
    assert_eq!(
        std::fs::read_to_string(dirs[0].join("hello.txt")).unwrap(),
        "hello from umoci\n"
    );
    assert_eq!(
        std::fs::read_link(dirs[0].join("bin/sh")).unwrap(),
        std::path::Path::new("busybox")
    );
    let before = std::fs::metadata(&dirs[0]).unwrap().modified().unwrap();
    snaps.ensure(&store, &image, false).unwrap();
    assert_eq!(
        std::fs::metadata(&dirs[0]).unwrap().modified().unwrap(),
        before,
        "unpacked once"
    );

    // A config whose diff ID does not match the layer: refused, and no snapshot is left.
    let mut bad = image.clone();
    bad.config.rootfs.diff_ids = vec![Digest::sha256(b"not this layer")];
    let other = Snapshots::new(&dir.join("other"));
    let err = other.ensure(&store, &bad, false).unwrap_err();
    assert!(err.to_string().contains("diff ID mismatch"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.join("other/snapshots"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn prune_removes_only_unreferenced_blobs_and_snapshots_and_honours_grace() {
    use rbuild::gc::prune;
    use rbuild::snapshot::Snapshots;
    use std::time::Duration;
    if !require::tools(&["docker-registry", "skopeo", "umoci"]) {
        return;
    }
    let reg = Registry::start(None);
    let dir = temp("prune");
    umoci_busybox(&dir.join("layout"), "1");
    skopeo_push(
        &dir.join("layout"),
        "1",
        &format!("{}/library/busybox:1", reg.addr),
        None,
    );
    let store = Store::open(dir.join("store")).unwrap();
    let client = Client::new(Box::new(Anonymous));
    let sources = [Source {
        origin: Origin::new(&reg.addr, true),
        repository: "library/busybox".into(),
    }];
    let reference = Reference::parse("docker.io/library/busybox:1").unwrap();
    let platform = Platform::parse("linux/amd64").unwrap();
    pull(&client, &store, &sources, &reference, &platform, &|_| {}).unwrap();
    let image = store.image(&reference, &platform).unwrap();
    let snaps = Snapshots::new(&dir.join("store"));
    let snap_dirs = snaps.ensure(&store, &image, false).unwrap();

    let nothing = prune(&store, Duration::ZERO, &Default::default()).unwrap();
    assert!(
        nothing.blobs.is_empty() && nothing.snapshots.is_empty(),
        "all referenced: {nothing:?}"
    );
    assert!(snap_dirs[0].is_dir());

    store.untag(&reference).unwrap();
    let recent = prune(&store, Duration::from_secs(3600), &Default::default()).unwrap();
    assert_eq!(
        recent.kept_recent, 3,
        "manifest, config and layer are fresh: {recent:?}"
    );
    assert!(recent.blobs.is_empty());
    assert_eq!(
        recent.snapshots.len(),
        1,
        "the snapshot of an untagged image goes"
    );
    assert!(!snap_dirs[0].exists());

    let all = prune(&store, Duration::ZERO, &Default::default()).unwrap();
    assert_eq!(all.blobs.len(), 3, "{all:?}");
    assert!(all.bytes() > 0);
    assert_eq!(store.blobs().list().unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
