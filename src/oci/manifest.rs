//! Image manifests, image indexes, descriptors and the `oci-layout` file: the `oci-spec`
//! crate's types, re-exported, with the few constructors and conversions rbuild needs, and
//! [`parse_manifest_any`] that reads whatever a registry or an OCI layout hands us (OCI
//! manifest or index, Docker v2 schema 2 manifest or manifest list; image-spec
//! `manifest.md`, `image-index.md`; distribution `manifest-v2-2.md`).
//!
//! Two `oci-spec` 0.10 defects are worked around here, and only here:
//! - its descriptor `Platform` names the fields `os_version`/`os_features` on the wire
//!   instead of `os.version`/`os.features` (youki-dev/oci-spec-rs#163, unmerged): parsing
//!   re-reads each index entry's platform with our own [`Platform`] and patches the value,
//!   and `to_canonical_oci` renames the keys back before anything is written;
//! - its `Arch::from("armbe")` yields `arm64be`: `oci_platform` maps it itself.
//!
//! Never hash `oci-spec`'s own serialisation (its annotations are `HashMap`s): write through
//! `to_canonical_oci`. Callers keep pulled manifests as the raw bytes they were served
//! and hash those; the values parsed here are for reading, not for re-serialising.
//! This file does no I/O.

use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

pub(crate) use oci_spec::image::{
    Arch, Descriptor, Digest as OciDigest, ImageIndex, ImageManifest, MediaType as OciMediaType,
    OciLayout, Os, Platform as OciPlatform,
};

use super::canonical::{CanonicalError, to_canonical_vec};
use super::digest::{Digest, DigestError};
use super::media_type::MediaType;
use super::platform::Platform;

/// The OCI layout version rbuild writes (image-spec `image-layout.md` `oci-layout`).
pub(crate) const OCI_LAYOUT_VERSION: &str = "1.0.0";

/// A parsed manifest document: a single image, or a list of them.
#[derive(Clone, Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one short-lived value per pulled document; boxing would only add noise at every match"
)]
pub enum Manifest {
    Image(ImageManifest),
    Index(ImageIndex),
}

/// Why a manifest document could not be read or written.
#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("invalid manifest JSON (served as {media_type})")]
    Json {
        media_type: String,
        source: serde_json::Error,
    },
    #[error(
        "Docker image manifest schema 1 ({media_type}) is not supported: the image must be re-pushed with schema 2 or OCI"
    )]
    Schema1 { media_type: String },
    #[error("{media_type} is not a manifest or an index media type")]
    NotAManifest { media_type: String },
    #[error(
        "cannot tell whether this is an image manifest or an index: no mediaType, no Content-Type, and neither \"manifests\" nor \"config\" and \"layers\""
    )]
    UnknownKind,
    #[error("the Content-Type says {header} but the document's mediaType is {body}")]
    KindMismatch { header: String, body: String },
    #[error("unsupported manifest schemaVersion: expected 2, got {got}")]
    SchemaVersion { got: String },
    #[error("invalid {kind} ({media_type})")]
    Decode {
        kind: &'static str,
        media_type: String,
        source: serde_json::Error,
    },
    #[error("invalid descriptor digest {digest:?}")]
    DescriptorDigest { digest: String, source: DigestError },
    #[error(transparent)]
    Serialize(#[from] CanonicalError),
}

/// The kind of document, decided before decoding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Image,
    Index,
}

/// Parse a manifest or an index, OCI or Docker.
///
/// `content_type` is the registry's `Content-Type` (or the descriptor's `mediaType`), when
/// known; parameters such as `; charset=utf-8` are ignored. The kind is decided by, in order:
/// the document's own `mediaType` field; `content_type`; the shape of the document
/// (`manifests` → index; `config` and `layers` → image), since `mediaType` is only a SHOULD
/// in image-spec and older OCI writers left it out. Header and body must agree on the kind
/// (image-spec `manifest.md`: `mediaType` "MUST" match the descriptor's), but OCI and Docker
/// spellings of the same kind are accepted together. Docker schema 1 is refused.
pub fn parse_manifest_any(
    bytes: &[u8],
    content_type: Option<&str>,
) -> Result<Manifest, ManifestError> {
    let header = content_type.map(MediaType::parse);
    let served_as = || content_type.unwrap_or("no Content-Type").to_string();
    let value: Value = serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
        media_type: served_as(),
        source,
    })?;
    let body = value
        .get("mediaType")
        .and_then(Value::as_str)
        .map(MediaType::parse);

    for declared in [&body, &header].into_iter().flatten() {
        if declared.is_docker_schema1() {
            return Err(ManifestError::Schema1 {
                media_type: declared.to_string(),
            });
        }
    }
    match value.get("schemaVersion").and_then(Value::as_u64) {
        Some(2) => {}
        Some(1) => {
            return Err(ManifestError::Schema1 {
                media_type: served_as(),
            });
        }
        other => {
            return Err(ManifestError::SchemaVersion {
                got: other.map_or_else(|| "none".to_string(), |v| v.to_string()),
            });
        }
    }

    let kind_of = |t: &MediaType| -> Result<Option<Kind>, ManifestError> {
        if t.is_manifest() {
            Ok(Some(Kind::Image))
        } else if t.is_index() {
            Ok(Some(Kind::Index))
        } else if t.is_layer() || t.is_config() || matches!(t, MediaType::OciEmpty) {
            Err(ManifestError::NotAManifest {
                media_type: t.to_string(),
            })
        } else {
            // `application/json`, `application/octet-stream`, an artifact type…: no opinion.
            Ok(None)
        }
    };
    let from_body = body.as_ref().map(kind_of).transpose()?.flatten();
    let from_header = header.as_ref().map(kind_of).transpose()?.flatten();
    if let (Some(b), Some(h)) = (from_body, from_header) {
        if b != h {
            return Err(ManifestError::KindMismatch {
                header: served_as(),
                body: body.map(|t| t.to_string()).unwrap_or_default(),
            });
        }
    }
    let sniffed = if value.get("manifests").is_some() {
        Some(Kind::Index)
    } else if value.get("config").is_some() && value.get("layers").is_some() {
        Some(Kind::Image)
    } else {
        None
    };
    let media_type = body
        .as_ref()
        .or(header.as_ref())
        .map_or_else(|| "no media type".to_string(), |t| t.to_string());
    match from_body.or(from_header).or(sniffed) {
        Some(Kind::Image) => serde_json::from_slice(bytes)
            .map(Manifest::Image)
            .map_err(|source| ManifestError::Decode {
                kind: "image manifest",
                media_type,
                source,
            }),
        Some(Kind::Index) => {
            let mut index: ImageIndex =
                serde_json::from_slice(bytes).map_err(|source| ManifestError::Decode {
                    kind: "image index",
                    media_type: media_type.clone(),
                    source,
                })?;
            patch_index_platforms(&mut index, &value).map_err(|source| ManifestError::Decode {
                kind: "image index platform",
                media_type,
                source,
            })?;
            Ok(Manifest::Index(index))
        }
        None => Err(ManifestError::UnknownKind),
    }
}

/// Re-read every `manifests[i].platform` with our [`Platform`] (right field names) and put
/// the result back into the `oci-spec` value (see the file header).
fn patch_index_platforms(index: &mut ImageIndex, raw: &Value) -> Result<(), serde_json::Error> {
    let raw_entries = raw.get("manifests").and_then(Value::as_array);
    // oci-spec 0.10 gives `ImageIndex` no mutable getter: take the list out and put it back.
    let mut manifests = index.manifests().clone();
    for (i, descriptor) in manifests.iter_mut().enumerate() {
        let raw_platform = raw_entries
            .and_then(|entries| entries.get(i))
            .and_then(|entry| entry.get("platform"))
            .filter(|p| !p.is_null());
        if let Some(raw_platform) = raw_platform {
            let ours: Platform = serde_json::from_value(raw_platform.clone())?;
            descriptor.set_platform(Some(oci_platform(&ours)));
        }
    }
    index.set_manifests(manifests);
    Ok(())
}

impl Manifest {
    /// The document's media type: its `mediaType` field, or the OCI type of its kind.
    pub(crate) fn media_type(&self) -> MediaType {
        let (declared, default) = match self {
            Manifest::Image(m) => (m.media_type().as_ref(), MediaType::OciManifest),
            Manifest::Index(i) => (i.media_type().as_ref(), MediaType::OciIndex),
        };
        declared.map_or(default, media_type_from_oci)
    }

    #[cfg(test)]
    pub(crate) fn as_image(&self) -> Option<&ImageManifest> {
        match self {
            Manifest::Image(m) => Some(m),
            Manifest::Index(_) => None,
        }
    }

    #[cfg(test)]
    pub(crate) fn as_index(&self) -> Option<&ImageIndex> {
        match self {
            Manifest::Index(i) => Some(i),
            Manifest::Image(_) => None,
        }
    }

    /// Canonical JSON (see [`to_canonical_oci`]). Public for the fuzz targets (`fuzz/`),
    /// which check that what parses re-serialises and re-parses to the same value.
    #[doc(hidden)]
    pub fn to_canonical_json(&self) -> Result<Vec<u8>, ManifestError> {
        match self {
            Manifest::Image(m) => to_canonical_oci(m),
            Manifest::Index(i) => to_canonical_oci(i),
        }
    }
}

/// Canonical JSON of an `oci-spec` value, with every `platform` object's keys corrected to
/// `os.version` / `os.features` (see the file header). Use this, never `oci-spec`'s own
/// `to_string`, for anything that is written or hashed.
pub(crate) fn to_canonical_oci<T: Serialize>(value: &T) -> Result<Vec<u8>, ManifestError> {
    let mut value = serde_json::to_value(value).map_err(|source| CanonicalError::ToJson {
        type_name: std::any::type_name::<T>(),
        source,
    })?;
    fix_platform_keys(&mut value);
    Ok(to_canonical_vec(&value)?)
}

fn fix_platform_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(platform)) = map.get_mut("platform") {
                for (wrong, right) in [("os_version", "os.version"), ("os_features", "os.features")]
                {
                    if let Some(v) = platform.remove(wrong) {
                        platform.insert(right.to_string(), v);
                    }
                }
            }
            map.values_mut().for_each(fix_platform_keys);
        }
        Value::Array(items) => items.iter_mut().for_each(fix_platform_keys),
        _ => {}
    }
}

/// The index entry to pull for a host of platform `wanted`: the best match by
/// [`Platform::best_match`] among the entries that are manifests and declare a platform.
/// Entries without a platform are skipped (containerd would fetch their config to find out;
/// that is I/O, so it is the caller's fallback), as are nested indexes.
pub(crate) fn select_manifest<'a>(
    index: &'a ImageIndex,
    wanted: &Platform,
) -> Option<&'a Descriptor> {
    let candidates: Vec<(&Descriptor, Platform)> = index
        .manifests()
        .iter()
        .filter(|d| media_type_from_oci(d.media_type()).is_manifest())
        .filter_map(|d| d.platform().as_ref().map(|p| (d, Platform::from(p))))
        .collect();
    let (i, _) = wanted.best_match(candidates.iter().map(|(_, p)| p))?;
    Some(candidates[i].0)
}

/// A descriptor for content of `media_type`, `digest` and `size`.
pub fn descriptor(media_type: &MediaType, digest: &Digest, size: u64) -> Descriptor {
    Descriptor::new(oci_media_type(media_type), size, oci_digest(digest))
}

/// An OCI image manifest (schemaVersion 2, `mediaType` set as image-spec recommends).
pub(crate) fn image_manifest(config: Descriptor, layers: Vec<Descriptor>) -> ImageManifest {
    oci_spec::image::ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(OciMediaType::ImageManifest)
        .config(config)
        .layers(layers)
        .build()
        .expect("every required ImageManifest field is set")
}

/// An OCI image index (schemaVersion 2, `mediaType` set).
pub(crate) fn image_index(manifests: Vec<Descriptor>) -> ImageIndex {
    oci_spec::image::ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(OciMediaType::ImageIndex)
        .manifests(manifests)
        .build()
        .expect("every required ImageIndex field is set")
}

/// The `oci-layout` file's content.
#[cfg(test)]
pub(crate) fn oci_layout() -> OciLayout {
    oci_spec::image::OciLayoutBuilder::default()
        .image_layout_version(OCI_LAYOUT_VERSION)
        .build()
        .expect("every required OciLayout field is set")
}

/// Our digest as `oci-spec`'s (which accepts every digest ours can hold).
pub(crate) fn oci_digest(digest: &Digest) -> OciDigest {
    digest
        .as_str()
        .parse()
        .expect("oci-spec accepts every registered-algorithm digest")
}

/// A descriptor's digest as ours; fails for algorithms rbuild does not support.
pub fn descriptor_digest(descriptor: &Descriptor) -> Result<Digest, ManifestError> {
    let text = descriptor.digest().to_string();
    Digest::parse(&text).map_err(|source| ManifestError::DescriptorDigest {
        digest: text,
        source,
    })
}

pub(crate) fn oci_media_type(media_type: &MediaType) -> OciMediaType {
    OciMediaType::from(media_type.as_str())
}

pub(crate) fn media_type_from_oci(media_type: &OciMediaType) -> MediaType {
    MediaType::parse(media_type.as_ref())
}

/// Our platform as `oci-spec`'s.
pub(crate) fn oci_platform(platform: &Platform) -> OciPlatform {
    let mut out = OciPlatform::default();
    out.set_architecture(match platform.architecture.as_str() {
        // oci-spec 0.10 maps "armbe" to Arch::ARM64be (see the file header).
        "armbe" => Arch::ARMbe,
        other => Arch::from(other),
    });
    out.set_os(Os::from(platform.os.as_str()));
    out.set_variant(platform.variant.clone());
    out.set_os_version(platform.os_version.clone());
    out.set_os_features((!platform.os_features.is_empty()).then(|| platform.os_features.clone()));
    out
}

impl From<&OciPlatform> for Platform {
    /// As written, not normalised.
    fn from(p: &OciPlatform) -> Platform {
        Platform {
            os: p.os().to_string(),
            architecture: p.architecture().to_string(),
            variant: p.variant().clone().filter(|v| !v.is_empty()),
            os_version: p.os_version().clone().filter(|v| !v.is_empty()),
            os_features: p.os_features().clone().unwrap_or_default(),
        }
    }
}

impl From<&Platform> for OciPlatform {
    fn from(p: &Platform) -> OciPlatform {
        oci_platform(p)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;
    use crate::oci::media_type::{
        DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_SCHEMA1_SIGNED, OCI_INDEX,
        OCI_LAYER_GZIP, OCI_MANIFEST,
    };

    const C: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    const L: &str = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

    fn d(i: u8) -> String {
        format!("sha256:{}", format!("{i:02x}").repeat(32))
    }

    fn image_json(media_type: Option<&str>, config_type: &str, layer_type: &str) -> Vec<u8> {
        let mut v = json!({
            "schemaVersion": 2,
            "config": {"mediaType": config_type, "size": 1470, "digest": C},
            "layers": [{"mediaType": layer_type, "size": 3208, "digest": L}]
        });
        if let Some(t) = media_type {
            v["mediaType"] = json!(t);
        }
        serde_json::to_vec(&v).unwrap()
    }

    fn entry(i: u8, media_type: &str, platform: Value) -> Value {
        json!({"mediaType": media_type, "size": 500 + u64::from(i), "digest": d(i), "platform": platform})
    }

    /// Like a Docker official image index: several platforms and BuildKit attestations.
    fn official_index(media_type: Option<&str>) -> Vec<u8> {
        let m = OCI_MANIFEST;
        let mut v = json!({
            "schemaVersion": 2,
            "manifests": [
                entry(1, m, json!({"architecture": "amd64", "os": "linux"})),
                entry(2, m, json!({"architecture": "arm", "os": "linux", "variant": "v6"})),
                entry(3, m, json!({"architecture": "arm", "os": "linux", "variant": "v7"})),
                entry(4, m, json!({"architecture": "arm64", "os": "linux", "variant": "v8"})),
                entry(5, m, json!({"architecture": "386", "os": "linux"})),
                entry(6, m, json!({"architecture": "unknown", "os": "unknown"})),
                entry(7, m, json!({"architecture": "ppc64le", "os": "linux"})),
            ]
        });
        if let Some(t) = media_type {
            v["mediaType"] = json!(t);
        }
        serde_json::to_vec(&v).unwrap()
    }

    /// `bytes, content type => Image | Index`.
    macro_rules! parses_as {
        ($($name:ident: $bytes:expr, $ct:expr => $kind:ident;)*) => {$(
            #[test]
            fn $name() {
                let got = parse_manifest_any(&$bytes, $ct).unwrap();
                assert!(matches!(got, Manifest::$kind(_)), "{got:?}");
            }
        )*};
    }

    macro_rules! refuses {
        ($($name:ident: $bytes:expr, $ct:expr => $variant:ident;)*) => {$(
            #[test]
            fn $name() {
                let err = parse_manifest_any(&$bytes, $ct).unwrap_err();
                assert!(matches!(err, ManifestError::$variant { .. }), "{err:?}");
            }
        )*};
    }

    /// `wanted platform => digest index of the chosen entry`.
    macro_rules! selects {
        ($($name:ident: $wanted:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                let Manifest::Index(index) = parse_manifest_any(&official_index(None), None).unwrap() else {
                    panic!("not an index");
                };
                let wanted = Platform::parse($wanted).unwrap();
                let got = select_manifest(&index, &wanted).map(|d| d.digest().to_string());
                assert_eq!(got, $want.map(d), "for {}", $wanted);
            }
        )*};
    }

    const CFG: &str = "application/vnd.oci.image.config.v1+json";
    const DCFG: &str = "application/vnd.docker.container.image.v1+json";
    const DLAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

    parses_as! {
        oci_image_with_header: image_json(Some(OCI_MANIFEST), CFG, OCI_LAYER_GZIP), Some(OCI_MANIFEST) => Image;
        oci_image_no_header: image_json(Some(OCI_MANIFEST), CFG, OCI_LAYER_GZIP), None => Image;
        oci_image_no_media_type_anywhere: image_json(None, CFG, OCI_LAYER_GZIP), None => Image;
        oci_image_header_only: image_json(None, CFG, OCI_LAYER_GZIP), Some(OCI_MANIFEST) => Image;
        docker_v2_with_header: image_json(Some(DOCKER_MANIFEST), DCFG, DLAYER), Some(DOCKER_MANIFEST) => Image;
        docker_v2_no_header: image_json(Some(DOCKER_MANIFEST), DCFG, DLAYER), None => Image;
        header_with_charset: image_json(None, CFG, OCI_LAYER_GZIP), Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8") => Image;
        generic_json_header: image_json(None, CFG, OCI_LAYER_GZIP), Some("application/json") => Image;
        oci_and_docker_spellings_agree: image_json(Some(DOCKER_MANIFEST), DCFG, DLAYER), Some(OCI_MANIFEST) => Image;
        oci_index: official_index(Some(OCI_INDEX)), Some(OCI_INDEX) => Index;
        oci_index_sniffed: official_index(None), None => Index;
        docker_list_body_only: official_index(Some(DOCKER_MANIFEST_LIST)), None => Index;
        docker_list_header_only: official_index(None), Some(DOCKER_MANIFEST_LIST) => Index;
    }

    refuses! {
        not_json: *b"<html>rate limited</html>", Some(OCI_MANIFEST) => Json;
        header_index_body_image: image_json(Some(OCI_MANIFEST), CFG, OCI_LAYER_GZIP), Some(OCI_INDEX) => KindMismatch;
        header_image_body_list: official_index(Some(DOCKER_MANIFEST_LIST)), Some(DOCKER_MANIFEST) => KindMismatch;
        schema1_header: json!({"schemaVersion": 1, "name": "x", "fsLayers": []}).to_string().into_bytes(), Some(DOCKER_MANIFEST_SCHEMA1_SIGNED) => Schema1;
        schema1_by_version: json!({"schemaVersion": 1, "name": "x", "fsLayers": []}).to_string().into_bytes(), None => Schema1;
        schema_version_3: json!({"schemaVersion": 3, "manifests": []}).to_string().into_bytes(), None => SchemaVersion;
        no_schema_version: json!({"manifests": []}).to_string().into_bytes(), None => SchemaVersion;
        layer_header: image_json(None, CFG, OCI_LAYER_GZIP), Some(OCI_LAYER_GZIP) => NotAManifest;
        config_header: image_json(None, CFG, OCI_LAYER_GZIP), Some(CFG) => NotAManifest;
        shapeless: json!({"schemaVersion": 2}).to_string().into_bytes(), None => UnknownKind;
        missing_config: json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}).to_string().into_bytes(), None => Decode;
    }

    selects! {
        amd64_gets_amd64: "linux/amd64" => Some(1);
        arm64_gets_v8_entry: "linux/arm64" => Some(4);
        arm_v7_gets_v7: "linux/arm/v7" => Some(3);
        arm_v6_gets_v6: "linux/arm/v6" => Some(2);
        ppc64le_gets_ppc64le: "linux/ppc64le" => Some(7);
        riscv64_gets_nothing: "linux/riscv64" => None::<u8>;
        windows_gets_nothing: "windows/amd64" => None::<u8>;
    }

    #[test]
    fn docker_manifest_keeps_its_types() {
        let m = parse_manifest_any(&image_json(Some(DOCKER_MANIFEST), DCFG, DLAYER), None).unwrap();
        assert_eq!(m.media_type(), MediaType::DockerManifest);
        let image = m.as_image().unwrap();
        assert_eq!(
            media_type_from_oci(image.config().media_type()),
            MediaType::DockerConfig
        );
        assert_eq!(
            media_type_from_oci(image.layers()[0].media_type()),
            MediaType::DockerLayerGzip
        );
        assert_eq!(descriptor_digest(image.config()).unwrap().as_str(), C);
        assert!(m.as_index().is_none());
    }

    #[test]
    fn media_type_defaults_to_oci_when_absent() {
        let m = parse_manifest_any(&official_index(None), None).unwrap();
        assert_eq!(m.media_type(), MediaType::OciIndex);
    }

    #[test]
    fn windows_os_version_is_read_matched_and_written_correctly() {
        let m = OCI_MANIFEST;
        let bytes = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                entry(1, m, json!({"architecture": "amd64", "os": "windows", "os.version": "10.0.17763.5820"})),
                entry(2, m, json!({"architecture": "amd64", "os": "windows", "os.version": "10.0.20348.2461", "os.features": ["win32k"]})),
            ]
        }))
        .unwrap();
        let Manifest::Index(index) = parse_manifest_any(&bytes, None).unwrap() else {
            panic!("not an index")
        };
        let second = index.manifests()[1].platform().as_ref().unwrap();
        assert_eq!(second.os_version().as_deref(), Some("10.0.20348.2461"));
        assert_eq!(
            second.os_features().as_deref(),
            Some(&["win32k".to_string()][..])
        );

        let ltsc2022 = Platform::parse("windows(10.0.20348+win32k)/amd64").unwrap();
        let chosen = select_manifest(&index, &ltsc2022).unwrap();
        assert_eq!(chosen.digest().to_string(), d(2));

        let written: Value =
            serde_json::from_slice(&Manifest::Index(index).to_canonical_json().unwrap()).unwrap();
        let platform = &written["manifests"][1]["platform"];
        assert_eq!(platform["os.version"], "10.0.20348.2461");
        assert_eq!(platform["os.features"], json!(["win32k"]));
        assert!(platform.get("os_version").is_none(), "{platform}");
    }

    #[test]
    fn canonical_bytes_do_not_depend_on_annotation_order() {
        let pairs: Vec<(String, String)> = (0..32)
            .map(|i| (format!("org.example.{i}"), i.to_string()))
            .collect();
        let build = |pairs: &mut dyn Iterator<Item = (String, String)>| {
            let mut index = image_index(vec![descriptor(
                &MediaType::OciManifest,
                &Digest::parse(L).unwrap(),
                7,
            )]);
            let annotations: HashMap<String, String> = pairs.collect();
            index.set_annotations(Some(annotations));
            to_canonical_oci(&index).unwrap()
        };
        let a = build(&mut pairs.clone().into_iter());
        let b = build(&mut pairs.into_iter().rev());
        assert_eq!(a, b);
    }

    #[test]
    fn constructors_write_what_image_spec_expects() {
        let config = descriptor(&MediaType::OciConfig, &Digest::parse(C).unwrap(), 2);
        let layer = descriptor(&MediaType::OciLayerGzip, &Digest::parse(L).unwrap(), 32);
        let text =
            String::from_utf8(to_canonical_oci(&image_manifest(config, vec![layer])).unwrap())
                .unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"config":{{"digest":"{C}","mediaType":"application/vnd.oci.image.config.v1+json","size":2}},"layers":[{{"digest":"{L}","mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":32}}],"mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}}"#
            )
        );
        assert_eq!(
            to_canonical_oci(&oci_layout()).unwrap(),
            br#"{"imageLayoutVersion":"1.0.0"}"#
        );
        let index = String::from_utf8(to_canonical_oci(&image_index(vec![])).unwrap()).unwrap();
        assert_eq!(
            index,
            r#"{"manifests":[],"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}"#
        );
    }

    #[test]
    fn a_written_manifest_parses_back() {
        let config = descriptor(&MediaType::OciConfig, &Digest::parse(C).unwrap(), 2);
        let written = Manifest::Image(image_manifest(config, vec![]));
        let bytes = written.to_canonical_json().unwrap();
        assert_eq!(
            parse_manifest_any(&bytes, Some(OCI_MANIFEST)).unwrap(),
            written
        );
    }

    #[test]
    fn platform_conversions_round_trip() {
        for spec in [
            "linux/amd64",
            "linux/arm/v7",
            "linux/arm64/v8.2",
            "windows(10.0.17763+win32k)/amd64",
        ] {
            let ours = Platform::parse(spec).unwrap();
            assert_eq!(Platform::from(&OciPlatform::from(&ours)), ours, "{spec}");
        }
        let armbe = Platform {
            os: "linux".into(),
            architecture: "armbe".into(),
            ..Platform::default()
        };
        assert_eq!(Platform::from(&oci_platform(&armbe)).architecture, "armbe");
    }

    #[test]
    fn sha384_descriptor_digest_is_refused_clearly() {
        let mut desc = descriptor(&MediaType::OciConfig, &Digest::parse(C).unwrap(), 2);
        desc.set_digest(format!("sha384:{}", "ab".repeat(48)).parse().unwrap());
        let err = crate::diag::chain(&descriptor_digest(&desc).unwrap_err());
        assert!(err.contains("unsupported algorithm \"sha384\""), "{err}");
    }
}
