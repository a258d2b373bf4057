//! Media types of the OCI image format and of Docker's image manifest v2 schema 2: the string
//! constants, the [`MediaType`] enum that classifies them, and layer [`Compression`].
//!
//! Sources: image-spec `media-types.md` and `layer.md` (OCI), distribution's
//! `docs/spec/manifest-v2-2.md` (Docker), and containerd `core/images/mediatypes.go` for the
//! Docker zstd and uncompressed layer types that only exist in practice.
//!
//! This file only names and classifies; conversions to `oci-spec`'s `MediaType` live in
//! `manifest.rs`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub(crate) const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub(crate) const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Deprecated by image-spec v1.1 ("Non-distributable layers"), still read.
pub(crate) const OCI_LAYER_NONDIST: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar";
pub(crate) const OCI_LAYER_NONDIST_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
pub(crate) const OCI_LAYER_NONDIST_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
/// The empty descriptor's type (image-spec `manifest.md` "Guidance for an Empty Descriptor").
pub(crate) const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The type of the `oci-layout` file (image-spec `image-layout.md`).
pub(crate) const OCI_LAYOUT_HEADER: &str = "application/vnd.oci.layout.header.v1+json";

pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub(crate) const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub(crate) const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Written by BuildKit for zstd under Docker media types; Docker Engine only reads it from
/// 23.0 on (docker/cli#5011), so rbuild pairs zstd with OCI media types.
pub(crate) const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
/// Windows base layers that registries must not serve (manifest-v2-2.md `urls`).
pub(crate) const DOCKER_FOREIGN_LAYER: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar";
pub(crate) const DOCKER_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Docker schema 1, unsigned and signed: recognised only to be refused clearly.
pub(crate) const DOCKER_MANIFEST_SCHEMA1: &str =
    "application/vnd.docker.distribution.manifest.v1+json";
pub(crate) const DOCKER_MANIFEST_SCHEMA1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// How a layer's tar stream is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// A compression by the name buildx's `compression=` gives it (what `Display` prints).
    pub fn from_name(name: &str) -> Option<Compression> {
        [Compression::None, Compression::Gzip, Compression::Zstd]
            .into_iter()
            .find(|c| c.to_string() == name)
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

/// A media type, classified. Unknown types are kept verbatim in [`MediaType::Other`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MediaType {
    OciManifest,
    OciIndex,
    OciConfig,
    OciLayer,
    OciLayerGzip,
    OciLayerZstd,
    OciLayerNonDistributable,
    OciLayerNonDistributableGzip,
    OciLayerNonDistributableZstd,
    OciEmpty,
    OciLayoutHeader,
    DockerManifest,
    DockerManifestList,
    DockerConfig,
    DockerLayer,
    DockerLayerGzip,
    DockerLayerZstd,
    DockerForeignLayer,
    DockerForeignLayerGzip,
    DockerManifestSchema1,
    DockerManifestSchema1Signed,
    Other(String),
}

/// Every known type with its string, in one table so that parsing and printing agree.
const KNOWN: &[(MediaType, &str)] = &[
    (MediaType::OciManifest, OCI_MANIFEST),
    (MediaType::OciIndex, OCI_INDEX),
    (MediaType::OciConfig, OCI_CONFIG),
    (MediaType::OciLayer, OCI_LAYER),
    (MediaType::OciLayerGzip, OCI_LAYER_GZIP),
    (MediaType::OciLayerZstd, OCI_LAYER_ZSTD),
    (MediaType::OciLayerNonDistributable, OCI_LAYER_NONDIST),
    (
        MediaType::OciLayerNonDistributableGzip,
        OCI_LAYER_NONDIST_GZIP,
    ),
    (
        MediaType::OciLayerNonDistributableZstd,
        OCI_LAYER_NONDIST_ZSTD,
    ),
    (MediaType::OciEmpty, OCI_EMPTY),
    (MediaType::OciLayoutHeader, OCI_LAYOUT_HEADER),
    (MediaType::DockerManifest, DOCKER_MANIFEST),
    (MediaType::DockerManifestList, DOCKER_MANIFEST_LIST),
    (MediaType::DockerConfig, DOCKER_CONFIG),
    (MediaType::DockerLayer, DOCKER_LAYER),
    (MediaType::DockerLayerGzip, DOCKER_LAYER_GZIP),
    (MediaType::DockerLayerZstd, DOCKER_LAYER_ZSTD),
    (MediaType::DockerForeignLayer, DOCKER_FOREIGN_LAYER),
    (MediaType::DockerForeignLayerGzip, DOCKER_FOREIGN_LAYER_GZIP),
    (MediaType::DockerManifestSchema1, DOCKER_MANIFEST_SCHEMA1),
    (
        MediaType::DockerManifestSchema1Signed,
        DOCKER_MANIFEST_SCHEMA1_SIGNED,
    ),
];

impl MediaType {
    /// Classify a media type as found in a descriptor or a `Content-Type` header.
    /// Parameters (`; charset=utf-8`) and surrounding whitespace are ignored and the match is
    /// case-insensitive (RFC 6838 §4.2: type and subtype names are case-insensitive). An
    /// unknown type is kept exactly as given.
    pub fn parse(s: &str) -> MediaType {
        let essence = s.split(';').next().unwrap_or_default().trim();
        KNOWN
            .iter()
            .find(|(_, name)| name.eq_ignore_ascii_case(essence))
            .map(|(t, _)| t.clone())
            .unwrap_or_else(|| MediaType::Other(s.to_string()))
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            MediaType::Other(s) => s,
            known => KNOWN
                .iter()
                .find(|(t, _)| t == known)
                .map(|(_, name)| *name)
                .expect("every known media type is in KNOWN"),
        }
    }

    /// An image manifest (OCI, or Docker v2 schema 2). Schema 1 is not: see
    /// [`MediaType::is_docker_schema1`].
    pub(crate) fn is_manifest(&self) -> bool {
        matches!(self, MediaType::OciManifest | MediaType::DockerManifest)
    }

    /// A list of manifests (OCI image index, or Docker manifest list).
    pub fn is_index(&self) -> bool {
        matches!(self, MediaType::OciIndex | MediaType::DockerManifestList)
    }

    /// An image config (OCI or Docker).
    pub(crate) fn is_config(&self) -> bool {
        matches!(self, MediaType::OciConfig | MediaType::DockerConfig)
    }

    /// Docker's deprecated schema 1, which rbuild refuses (registries convert on request).
    pub(crate) fn is_docker_schema1(&self) -> bool {
        matches!(
            self,
            MediaType::DockerManifestSchema1 | MediaType::DockerManifestSchema1Signed
        )
    }

    /// A filesystem layer, of any flavour and compression.
    pub(crate) fn is_layer(&self) -> bool {
        self.layer_compression().is_some()
    }

    /// A layer that registries are not expected to serve (OCI non-distributable, Docker
    /// foreign): a pull fetches it from the descriptor's `urls`, a push skips it.
    #[cfg(test)]
    pub(crate) fn is_non_distributable(&self) -> bool {
        matches!(
            self,
            MediaType::OciLayerNonDistributable
                | MediaType::OciLayerNonDistributableGzip
                | MediaType::OciLayerNonDistributableZstd
                | MediaType::DockerForeignLayer
                | MediaType::DockerForeignLayerGzip
        )
    }

    /// How a layer is compressed; `None` when this is not a layer type.
    pub(crate) fn layer_compression(&self) -> Option<Compression> {
        use MediaType::*;
        match self {
            OciLayer | OciLayerNonDistributable | DockerLayer | DockerForeignLayer => {
                Some(Compression::None)
            }
            OciLayerGzip
            | OciLayerNonDistributableGzip
            | DockerLayerGzip
            | DockerForeignLayerGzip => Some(Compression::Gzip),
            OciLayerZstd | OciLayerNonDistributableZstd | DockerLayerZstd => {
                Some(Compression::Zstd)
            }
            _ => None,
        }
    }

    /// The OCI layer type for a compression: what rbuild writes.
    pub(crate) fn oci_layer(compression: Compression) -> MediaType {
        match compression {
            Compression::None => MediaType::OciLayer,
            Compression::Gzip => MediaType::OciLayerGzip,
            Compression::Zstd => MediaType::OciLayerZstd,
        }
    }

    /// The Docker layer type for a compression (for `docker save`-style archives).
    #[cfg(test)]
    pub(crate) fn docker_layer(compression: Compression) -> MediaType {
        match compression {
            Compression::None => MediaType::DockerLayer,
            Compression::Gzip => MediaType::DockerLayerGzip,
            Compression::Zstd => MediaType::DockerLayerZstd,
        }
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MediaType {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<MediaType, Self::Err> {
        Ok(MediaType::parse(s))
    }
}

impl From<&str> for MediaType {
    fn from(s: &str) -> MediaType {
        MediaType::parse(s)
    }
}

impl Serialize for MediaType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MediaType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MediaType, D::Error> {
        Ok(MediaType::parse(&String::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `string => variant, manifest?, index?, config?, compression`.
    macro_rules! classifies {
        ($($name:ident: $s:expr => $t:ident, $manifest:expr, $index:expr, $config:expr, $compression:expr;)*) => {$(
            #[test]
            fn $name() {
                let t = MediaType::parse($s);
                assert_eq!(t, MediaType::$t);
                assert_eq!(t.as_str(), $s, "prints back");
                assert_eq!(
                    (t.is_manifest(), t.is_index(), t.is_config(), t.layer_compression()),
                    ($manifest, $index, $config, $compression)
                );
                assert_eq!(t.is_layer(), $compression.is_some());
            }
        )*};
    }

    const NO: Option<Compression> = None;
    const TAR: Option<Compression> = Some(Compression::None);
    const GZ: Option<Compression> = Some(Compression::Gzip);
    const ZST: Option<Compression> = Some(Compression::Zstd);

    classifies! {
        oci_manifest: OCI_MANIFEST => OciManifest, true, false, false, NO;
        oci_index: OCI_INDEX => OciIndex, false, true, false, NO;
        oci_config: OCI_CONFIG => OciConfig, false, false, true, NO;
        oci_layer: OCI_LAYER => OciLayer, false, false, false, TAR;
        oci_layer_gzip: OCI_LAYER_GZIP => OciLayerGzip, false, false, false, GZ;
        oci_layer_zstd: OCI_LAYER_ZSTD => OciLayerZstd, false, false, false, ZST;
        oci_nondist: OCI_LAYER_NONDIST => OciLayerNonDistributable, false, false, false, TAR;
        oci_nondist_gzip: OCI_LAYER_NONDIST_GZIP => OciLayerNonDistributableGzip, false, false, false, GZ;
        oci_nondist_zstd: OCI_LAYER_NONDIST_ZSTD => OciLayerNonDistributableZstd, false, false, false, ZST;
        oci_empty: OCI_EMPTY => OciEmpty, false, false, false, NO;
        oci_layout_header: OCI_LAYOUT_HEADER => OciLayoutHeader, false, false, false, NO;
        docker_manifest: DOCKER_MANIFEST => DockerManifest, true, false, false, NO;
        docker_list: DOCKER_MANIFEST_LIST => DockerManifestList, false, true, false, NO;
        docker_config: DOCKER_CONFIG => DockerConfig, false, false, true, NO;
        docker_layer: DOCKER_LAYER => DockerLayer, false, false, false, TAR;
        docker_layer_gzip: DOCKER_LAYER_GZIP => DockerLayerGzip, false, false, false, GZ;
        docker_layer_zstd: DOCKER_LAYER_ZSTD => DockerLayerZstd, false, false, false, ZST;
        docker_foreign: DOCKER_FOREIGN_LAYER => DockerForeignLayer, false, false, false, TAR;
        docker_foreign_gzip: DOCKER_FOREIGN_LAYER_GZIP => DockerForeignLayerGzip, false, false, false, GZ;
        docker_schema1: DOCKER_MANIFEST_SCHEMA1 => DockerManifestSchema1, false, false, false, NO;
        docker_schema1_signed: DOCKER_MANIFEST_SCHEMA1_SIGNED => DockerManifestSchema1Signed, false, false, false, NO;
    }

    #[test]
    fn headers_with_parameters_and_case() {
        assert_eq!(
            MediaType::parse("application/vnd.oci.image.index.v1+json; charset=utf-8"),
            MediaType::OciIndex
        );
        assert_eq!(
            MediaType::parse(" Application/VND.Docker.Distribution.Manifest.V2+JSON "),
            MediaType::DockerManifest
        );
    }

    #[test]
    fn unknown_types_are_kept_verbatim() {
        let t = MediaType::parse("application/vnd.in-toto+json");
        assert_eq!(t, MediaType::Other("application/vnd.in-toto+json".into()));
        assert_eq!(t.to_string(), "application/vnd.in-toto+json");
        assert!(!t.is_layer() && !t.is_manifest() && !t.is_index());
        let encrypted = MediaType::parse("application/vnd.oci.image.layer.v1.tar+gzip+encrypted");
        assert_eq!(
            encrypted.layer_compression(),
            None,
            "an encrypted layer is not a tar stream"
        );
    }

    #[test]
    fn non_distributable_and_schema1() {
        assert!(MediaType::DockerForeignLayerGzip.is_non_distributable());
        assert!(MediaType::OciLayerNonDistributableZstd.is_non_distributable());
        assert!(!MediaType::OciLayerGzip.is_non_distributable());
        assert!(MediaType::DockerManifestSchema1Signed.is_docker_schema1());
        assert!(!MediaType::DockerManifest.is_docker_schema1());
    }

    #[test]
    fn layer_constructors_round_trip() {
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            assert_eq!(MediaType::oci_layer(c).layer_compression(), Some(c));
            assert_eq!(MediaType::docker_layer(c).layer_compression(), Some(c));
        }
        assert_eq!(Compression::Zstd.to_string(), "zstd");
    }

    #[test]
    fn serde_as_a_string() {
        let t: MediaType = serde_json::from_str(&format!("\"{OCI_LAYER_GZIP}\"")).unwrap();
        assert_eq!(t, MediaType::OciLayerGzip);
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            format!("\"{OCI_LAYER_GZIP}\"")
        );
    }
}
