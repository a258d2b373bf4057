//! The registry client against a real `docker-registry` holding an image made by `umoci`
//! and pushed by `skopeo`: manifests by tag and digest, blobs streamed and verified, Basic
//! auth, and the registry's own error codes.

use rbuild::oci::digest::Digest;
use rbuild::oci::manifest::{Manifest, descriptor_digest, parse_manifest_any};
use rbuild::registry::client::{Anonymous, Client, Origin, RegistryError, Static};

use crate::common::registry::{Registry, skopeo_push, skopeo_raw_manifest, umoci_busybox};
use crate::common::require;

fn temp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("rbuild-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn push_busybox(reg: &Registry, repo: &str, creds: Option<&str>) -> std::path::PathBuf {
    let dir = temp(&format!("client-{}", repo.replace('/', "-")));
    let layout = dir.join("layout");
    umoci_busybox(&layout, "1");
    skopeo_push(&layout, "1", &format!("{}/{repo}:1", reg.addr), creds);
    dir
}

#[test]
fn pulls_manifest_and_blobs_and_verifies_them() {
    if !require::tools(&["docker-registry", "skopeo", "umoci"]) {
        return;
    }
    let reg = Registry::start(None);
    let dir = push_busybox(&reg, "lib/busybox", None);
    let origin = Origin::new(&reg.addr, true);
    let client = Client::new(Box::new(Anonymous));
    client.ping(&origin).unwrap();

    let by_tag = client.get_manifest(&origin, "lib/busybox", "1").unwrap();
    let skopeo_bytes = skopeo_raw_manifest(&format!("{}/lib/busybox:1", reg.addr), None);
    assert_eq!(by_tag.bytes, skopeo_bytes, "exact manifest bytes");
    assert_eq!(by_tag.digest, Digest::sha256(&skopeo_bytes));
    assert_eq!(
        by_tag.media_type,
        "application/vnd.oci.image.manifest.v1+json"
    );
    let by_digest = client
        .get_manifest(&origin, "lib/busybox", by_tag.digest.as_str())
        .unwrap();
    assert_eq!(by_digest.bytes, by_tag.bytes);

    let Manifest::Image(m) = parse_manifest_any(&by_tag.bytes, Some(&by_tag.media_type)).unwrap()
    else {
        panic!("image manifest expected")
    };
    for desc in std::iter::once(m.config()).chain(m.layers().iter()) {
        let digest = descriptor_digest(desc).unwrap();
        let mut sink = Vec::new();
        let n = client
            .get_blob(
                &origin,
                "lib/busybox",
                &digest,
                Some(desc.size()),
                &mut sink,
            )
            .unwrap();
        assert_eq!(n, desc.size());
        assert_eq!(Digest::sha256(&sink), digest);
    }

    // The registry's own error code reaches the message.
    let err = client
        .get_manifest(&origin, "lib/busybox", "nope")
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    let msg = err.to_string();
    assert!(
        msg.contains("MANIFEST_UNKNOWN") && msg.contains("/v2/lib/busybox/manifests/nope"),
        "{msg}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn basic_auth_with_and_without_credentials() {
    if !require::tools(&["docker-registry", "skopeo", "umoci", "htpasswd"]) {
        return;
    }
    let reg = Registry::start(Some(("tester", "s3cret")));
    let dir = push_busybox(&reg, "private/app", Some("tester:s3cret"));
    let origin = Origin::new(&reg.addr, true);

    let anonymous = Client::new(Box::new(Anonymous));
    let err = anonymous
        .get_manifest(&origin, "private/app", "1")
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("rbuild login {}", reg.addr)),
        "{err}"
    );

    let wrong = Client::new(Box::new(Static("tester".into(), "wrong".into())));
    assert!(matches!(
        wrong.get_manifest(&origin, "private/app", "1"),
        Err(RegistryError::Unauthorized { .. })
    ));

    let client = Client::new(Box::new(Static("tester".into(), "s3cret".into())));
    let m = client.get_manifest(&origin, "private/app", "1").unwrap();
    assert_eq!(
        m.bytes,
        skopeo_raw_manifest(
            &format!("{}/private/app:1", reg.addr),
            Some("tester:s3cret")
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pushes_with_mount_or_upload_and_skopeo_sees_the_same_digest() {
    use rbuild::registry::client::PushedBlob;
    if !require::tools(&["docker-registry", "skopeo", "umoci"]) {
        return;
    }
    let src_reg = Registry::start(None);
    let dir = push_busybox(&src_reg, "src/busybox", None);
    let origin = Origin::new(&src_reg.addr, true);
    let client = Client::new(Box::new(Anonymous));
    let fetched = client.get_manifest(&origin, "src/busybox", "1").unwrap();
    let Manifest::Image(m) = parse_manifest_any(&fetched.bytes, None).unwrap() else {
        panic!()
    };

    // Pull every blob into a file, as the store would hold them.
    let mut blobs = Vec::new();
    for desc in std::iter::once(m.config()).chain(m.layers().iter()) {
        let digest = descriptor_digest(desc).unwrap();
        let path = dir.join(digest.hex());
        let mut f = std::fs::File::create(&path).unwrap();
        client
            .get_blob(&origin, "src/busybox", &digest, Some(desc.size()), &mut f)
            .unwrap();
        blobs.push((digest, desc.size(), path));
    }

    // Same registry, another repository: the blobs are mounted, not sent.
    for (digest, size, path) in &blobs {
        let mut open = || -> std::io::Result<Box<dyn std::io::Read>> {
            Ok(Box::new(std::fs::File::open(path)?))
        };
        let how = client
            .push_blob(
                &origin,
                "copy/busybox",
                digest,
                *size,
                Some("src/busybox"),
                &mut open,
            )
            .unwrap();
        assert_eq!(how, PushedBlob::Mounted, "{digest}");
        let again = client
            .push_blob(
                &origin,
                "copy/busybox",
                digest,
                *size,
                Some("src/busybox"),
                &mut open,
            )
            .unwrap();
        assert_eq!(again, PushedBlob::Existed);
    }
    let d = client
        .put_manifest(
            &origin,
            "copy/busybox",
            "v1",
            &fetched.media_type,
            &fetched.bytes,
        )
        .unwrap();
    assert_eq!(d, fetched.digest);
    let seen = skopeo_raw_manifest(&format!("{}/copy/busybox:v1", src_reg.addr), None);
    assert_eq!(
        Digest::sha256(&seen),
        fetched.digest,
        "skopeo sees the same manifest digest"
    );

    // Another registry: the blobs are uploaded.
    let dst_reg = Registry::start(None);
    let dst = Origin::new(&dst_reg.addr, true);
    for (digest, size, path) in &blobs {
        let mut open = || -> std::io::Result<Box<dyn std::io::Read>> {
            Ok(Box::new(std::fs::File::open(path)?))
        };
        let how = client
            .push_blob(&dst, "pushed/busybox", digest, *size, None, &mut open)
            .unwrap();
        assert_eq!(how, PushedBlob::Uploaded);
    }
    client
        .put_manifest(
            &dst,
            "pushed/busybox",
            "1",
            &fetched.media_type,
            &fetched.bytes,
        )
        .unwrap();
    let seen = skopeo_raw_manifest(&format!("{}/pushed/busybox:1", dst_reg.addr), None);
    assert_eq!(seen, fetched.bytes, "manifest bytes pushed exactly");
    let _ = std::fs::remove_dir_all(&dir);
}
