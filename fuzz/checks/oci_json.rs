//! Manifest, index and image-config JSON (`oci::manifest`, `oci::config`) from any bytes, as
//! a registry, an archive or a store hands them over.
//!
//! Input: one byte choosing the `Content-Type` the document is served with, then the JSON.
//! Every input is read both as a manifest (or index) and as an image config.
//!
//! Invariants: what parses re-serialises to canonical JSON, which parses again to the same
//! value (served the same way) and re-serialises to the same bytes — the bytes rbuild
//! hashes for a digest are stable however often a document is read and written.

use rbuild::oci::config::ImageConfig;
use rbuild::oci::manifest::parse_manifest_any;

const CONTENT_TYPES: &[Option<&str>] = &[
    None,
    Some("application/vnd.oci.image.manifest.v1+json"),
    Some("application/vnd.oci.image.index.v1+json"),
    Some("application/vnd.docker.distribution.manifest.v2+json"),
    Some("application/vnd.docker.distribution.manifest.list.v2+json"),
    Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
    Some("application/json; charset=utf-8"),
    Some("text/plain"),
];

pub fn check(data: &[u8]) {
    let Some((&selector, json)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[selector as usize % CONTENT_TYPES.len()];

    if let Ok(manifest) = parse_manifest_any(json, content_type) {
        let canonical = manifest
            .to_canonical_json()
            .expect("a parsed manifest serialises");
        let again = parse_manifest_any(&canonical, content_type).unwrap_or_else(|e| {
            panic!(
                "canonical manifest does not parse: {}\n{}",
                rbuild::diag::chain(&e),
                String::from_utf8_lossy(&canonical)
            )
        });
        assert_eq!(manifest, again, "manifest changed through canonical JSON");
        assert_eq!(
            String::from_utf8_lossy(&canonical),
            String::from_utf8_lossy(&again.to_canonical_json().unwrap()),
            "canonical manifest JSON is not stable"
        );
    }

    if let Ok(config) = ImageConfig::from_json(json) {
        let canonical = config
            .to_canonical_json()
            .expect("a parsed config serialises");
        let again = ImageConfig::from_json(&canonical).unwrap_or_else(|e| {
            panic!(
                "canonical config does not parse: {}\n{}",
                rbuild::diag::chain(&e),
                String::from_utf8_lossy(&canonical)
            )
        });
        assert_eq!(config, again, "config changed through canonical JSON");
        assert_eq!(
            String::from_utf8_lossy(&canonical),
            String::from_utf8_lossy(&again.to_canonical_json().unwrap()),
            "canonical config JSON is not stable"
        );
    }
}
