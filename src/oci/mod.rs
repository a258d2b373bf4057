//! The OCI and Docker image model: platforms, digests, image references, media types, the
//! image config, canonical JSON and manifests. Pure values and parsers: nothing here touches
//! the network or the filesystem (the digesting adapters wrap any `Read`/`Write` they are
//! given); fetching, storing and exporting live in `registry`, `store` and `archive`.

pub(crate) mod canonical;
pub mod config;
pub mod digest;
pub mod manifest;
pub mod media_type;
pub mod platform;
pub mod reference;

pub(crate) use config::{ConfigError, ImageConfig};
pub use digest::{
    Algorithm, Digest, DigestAndSize, DigestError, Digester, DigestingReader, DigestingWriter,
};
pub(crate) use manifest::ManifestError;
pub use media_type::{Compression, MediaType};
pub use platform::{Platform, PlatformError};
pub use reference::{Reference, ReferenceError};
