//! The OCI model against real producers: an image made by `umoci`, pushed by `skopeo` to a
//! real `docker-registry`, read back as exact bytes and parsed by rbuild's model.

use std::process::Command;

use rbuild::oci::config::ImageConfig;
use rbuild::oci::digest::Digest;
use rbuild::oci::manifest::{Manifest, descriptor_digest, parse_manifest_any};

use crate::common::registry::{Registry, run, skopeo_push, skopeo_raw_manifest, umoci_busybox};
use crate::common::require;

fn temp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("rbuild-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn umoci_image_pushed_by_skopeo_parses_and_verifies() {
    if !require::tools(&["docker-registry", "skopeo", "umoci"]) {
        return;
    }
    let reg = Registry::start(None);
    let dir = temp("oci-peers");
    let layout = dir.join("layout");
    umoci_busybox(&layout, "1");
    let dest = format!("{}/test/busybox:1", reg.addr);
    skopeo_push(&layout, "1", &dest, None);

    let raw = skopeo_raw_manifest(&dest, None);
    let manifest = parse_manifest_any(&raw, None).expect("parse the registry's manifest");
    let Manifest::Image(m) = manifest else {
        panic!("expected an image manifest")
    };
    assert_eq!(m.layers().len(), 1, "umoci made one layer");

    // The config the registry serves hashes to the digest the manifest names.
    let config_bytes = run(Command::new("skopeo")
        .args(["inspect", "--config", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{dest}")));
    let want = descriptor_digest(m.config()).unwrap();
    assert_eq!(Digest::sha256(config_bytes.as_bytes()), want);
    let config = ImageConfig::from_json(config_bytes.as_bytes()).unwrap();
    assert_eq!(config.rootfs.diff_ids.len(), 1);
    assert_eq!(config.config.as_ref().unwrap().cmd, vec!["sh"]);
    // Re-serialising our config type loses nothing that umoci wrote.
    let reparsed: serde_json::Value =
        serde_json::from_slice(&config.to_canonical_json().unwrap()).unwrap();
    let original: serde_json::Value = serde_json::from_str(&config_bytes).unwrap();
    assert_eq!(reparsed, original, "config round trip");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn basic_auth_registry_enforces_credentials() {
    if !require::tools(&["docker-registry", "skopeo", "umoci", "htpasswd"]) {
        return;
    }
    let reg = Registry::start(Some(("tester", "s3cret")));
    let dir = temp("oci-auth");
    let layout = dir.join("layout");
    umoci_busybox(&layout, "1");
    let dest = format!("{}/private/busybox:1", reg.addr);
    let anonymous = Command::new("skopeo")
        .args(["copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:1", layout.display()))
        .arg(format!("docker://{dest}"))
        .output()
        .unwrap();
    assert!(
        !anonymous.status.success(),
        "push without credentials must fail\n{}",
        reg.log()
    );
    skopeo_push(&layout, "1", &dest, Some("tester:s3cret"));
    assert!(!skopeo_raw_manifest(&dest, Some("tester:s3cret")).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
