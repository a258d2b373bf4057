//! Turning a list of changes into an OCI layer blob in one streaming pass: tar (`tar`) →
//! sha256 (the diff ID) → compression (`compress`) → sha256 (the blob digest) → the
//! caller's writer (the store's `BlobWriter`). This module wires the stages together; it
//! never buffers the layer, never writes it twice and never decides where it is stored.

pub(crate) mod compress;
pub mod deferred;
pub(crate) mod error;
pub(crate) mod tar;

use std::io::{self, Write};
use std::path::Path;

pub(crate) use self::compress::Compressor;
pub(crate) use self::error::LayerError;
pub use self::tar::{TarOptions, TarStats, write_tar};
use crate::oci::digest::{Digest, Digester, DigestingWriter};
use crate::oci::media_type::Compression;
use crate::snapshot::change::Change;

/// How to write a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerOptions {
    pub compression: Compression,
    /// None: gzip 6, zstd 3.
    pub level: Option<i32>,
    /// Compression threads (≥ 1). The bytes written do not depend on it.
    pub threads: usize,
    /// Clamp mtimes to this (reproducible builds, `SOURCE_DATE_EPOCH`).
    pub source_date_epoch: Option<i64>,
}

impl Default for LayerOptions {
    fn default() -> LayerOptions {
        LayerOptions {
            compression: Compression::Gzip,
            level: None,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            source_date_epoch: None,
        }
    }
}

/// What a descriptor and an image config need to know about a written layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerDigests {
    /// sha256 of the uncompressed tar (the image config's `rootfs.diff_ids`).
    pub diff_id: Digest,
    /// sha256 of the blob as written (the manifest's layer descriptor).
    pub digest: Digest,
    /// Bytes of the blob as written (compressed).
    pub size: u64,
    /// Bytes of the uncompressed tar.
    pub uncompressed_size: u64,
}

/// Write the layer for `changes` (content read from `root`) to `out`, returning its digests.
pub fn write_layer(
    root: &Path,
    changes: &[Change],
    opts: &LayerOptions,
    out: impl Write,
) -> Result<LayerDigests, LayerError> {
    let tar_opts = TarOptions {
        source_date_epoch: opts.source_date_epoch,
    };
    pipeline(opts, out, |sink| {
        write_tar(root, changes, &tar_opts, sink).map(|_| ())
    })
}

/// Compress a layer's tar stream, read from `tar`, to `out` (a blob made later than its
/// layer: `deferred`), returning its digests; the diff ID is computed on the way.
pub(crate) fn compress_tar(
    mut tar: impl io::Read,
    opts: &LayerOptions,
    out: impl Write,
) -> Result<LayerDigests, LayerError> {
    pipeline(opts, out, |sink| {
        io::copy(&mut tar, sink)
            .map(|_| ())
            .map_err(|source| LayerError::WriteArchive {
                path: "the layer's tar stream".into(),
                source,
            })
    })
}

/// tar (written by `produce`) → sha256 → compression → sha256 → `out`. Uncompressed, the
/// blob is the tar itself and is hashed once.
fn pipeline(
    opts: &LayerOptions,
    out: impl Write,
    produce: impl FnOnce(&mut dyn Write) -> Result<(), LayerError>,
) -> Result<LayerDigests, LayerError> {
    let compression = opts.compression;
    let compressor = Compressor::new(
        DigestingWriter::new(out),
        compression,
        opts.level,
        opts.threads,
    )
    .map_err(|source| LayerError::StartCompressor {
        compression,
        source,
    })?;
    let mut sink = DiffIdWriter {
        diff_id: (compression != Compression::None).then(Digester::default),
        inner: compressor,
    };
    produce(&mut sink)?;
    let DiffIdWriter { diff_id, inner } = sink;
    let finish = |source| LayerError::FinishCompressor {
        compression,
        source,
    };
    let mut compressed = inner.finish().map_err(finish)?;
    compressed.flush().map_err(finish)?;
    let (_, blob) = compressed.finish();
    let (diff_id, uncompressed_size) = match diff_id {
        Some(d) => {
            let size = d.size();
            (d.finish(), size)
        }
        None => (blob.digest.clone(), blob.size),
    };
    Ok(LayerDigests {
        diff_id,
        digest: blob.digest,
        size: blob.size,
        uncompressed_size,
    })
}

/// Hashes the uncompressed stream on its way into the compressor (not when the compressor
/// passes it through: the blob's own digest is the diff ID then).
struct DiffIdWriter<W> {
    diff_id: Option<Digester>,
    inner: W,
}

impl<W: Write> Write for DiffIdWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(d) = &mut self.diff_id {
            d.update(&buf[..n]);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::snapshot::change::ChangeKind;

    fn tree() -> (tempfile::TempDir, Vec<Change>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
        let changes = ["etc", "etc/hosts"]
            .map(|p| Change {
                path: p.into(),
                kind: ChangeKind::Upsert,
            })
            .to_vec();
        (dir, changes)
    }

    /// `name: compression => the digests describe exactly the bytes written`.
    macro_rules! digests_describe_the_bytes {
        ($($name:ident: $compression:expr;)*) => {$(
            #[test]
            fn $name() {
                let (dir, changes) = tree();
                let opts = LayerOptions { compression: $compression, threads: 2, ..LayerOptions::default() };
                let mut blob = Vec::new();
                let got = write_layer(dir.path(), &changes, &opts, &mut blob).unwrap();
                assert_eq!(got.digest, Digest::sha256(&blob));
                assert_eq!(got.size, blob.len() as u64);
                let mut tar = Vec::new();
                let mut r: Box<dyn Read> = match $compression {
                    Compression::None => Box::new(&blob[..]),
                    Compression::Gzip => Box::new(flate2::read::GzDecoder::new(&blob[..])),
                    Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(&blob[..]).unwrap()),
                };
                r.read_to_end(&mut tar).unwrap();
                assert_eq!(got.diff_id, Digest::sha256(&tar));
                assert_eq!(got.uncompressed_size, tar.len() as u64);
                assert_eq!(tar.len() % 512, 0);
            }
        )*};
    }

    digests_describe_the_bytes! {
        digests_none: Compression::None;
        digests_gzip: Compression::Gzip;
        digests_zstd: Compression::Zstd;
    }

    #[test]
    fn missing_path_is_named() {
        let (dir, _) = tree();
        let changes = [Change {
            path: "nope".into(),
            kind: ChangeKind::Upsert,
        }];
        let err =
            write_layer(dir.path(), &changes, &LayerOptions::default(), io::sink()).unwrap_err();
        assert!(matches!(err, LayerError::Stat { .. }), "{err:?}");
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
