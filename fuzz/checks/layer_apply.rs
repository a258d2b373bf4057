//! Applying a layer (`snapshot::apply`) from any bytes, in both whiteout modes, plain, gzip
//! or zstd.
//!
//! Input: one byte, then the layer. The byte's value modulo 5 says what the rest is: 0 a
//! tar, 1 a gzip stream, 2 a zstd stream, 3 a tar the check gzips, 4 a tar the check
//! compresses with zstd; its value divided by 5, modulo 3, picks the mode: delete what
//! whiteouts name, or keep them for overlayfs (`trusted.` or `user.` xattrs).
//!
//! Invariants:
//! - nothing outside the root changes, and no symlink leading out of it is followed
//!   ([`Jail`]), whether the layer applies or fails;
//! - a layer that applies reports the SHA-256 and size of its whole uncompressed stream as
//!   its diff ID, as the image config will check them;
//! - applying is deterministic: the same layer applied again in a fresh root, this time with
//!   its diff ID expected, succeeds with the same result and leaves the same tree;
//! - in overlay mode, the unpacked root read back as an upper directory
//!   (`snapshot::diff::overlay_changes`) and written as a layer (`layer::write_tar`) applies
//!   to the same tree: what rbuild unpacks, it can pack again without loss.

use std::io::{Read, Write};

use rbuild::layer::{TarOptions, write_tar};
use rbuild::oci::Compression;
use rbuild::snapshot::apply::{Whiteouts, apply};
use rbuild::snapshot::diff::overlay_changes;

use super::jail::Jail;

pub fn check(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (compression, layer) = match selector % 5 {
        0 => (Compression::None, rest.to_vec()),
        1 => (Compression::Gzip, rest.to_vec()),
        2 => (Compression::Zstd, rest.to_vec()),
        3 => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(rest).unwrap();
            (Compression::Gzip, gz.finish().unwrap())
        }
        _ => (Compression::Zstd, zstd::encode_all(rest, 1).unwrap()),
    };
    let mode = match (selector / 5) % 3 {
        0 => Whiteouts::Apply,
        1 => Whiteouts::Overlay { userxattr: false },
        _ => Whiteouts::Overlay { userxattr: true },
    };

    let jail = Jail::new();
    let applied = apply(
        &jail.root,
        layer.as_slice(),
        compression,
        "fuzz",
        mode,
        None,
    );
    jail.assert_contained();
    let Ok(applied) = applied else {
        return;
    };

    let uncompressed = match compression {
        Compression::None => layer.clone(),
        Compression::Gzip => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(layer.as_slice())
                .read_to_end(&mut out)
                .expect("the layer applied, so its gzip stream decodes");
            out
        }
        _ => zstd::decode_all(layer.as_slice())
            .expect("the layer applied, so its zstd stream decodes"),
    };
    assert_eq!(
        applied.diff_id.to_string(),
        format!("sha256:{}", super::sha256_hex(&uncompressed)),
        "diff ID is not the hash of the uncompressed stream"
    );
    assert_eq!(
        applied.size,
        uncompressed.len() as u64,
        "size is not the uncompressed length"
    );

    let tree = jail.tree();
    let second = Jail::new();
    let again = apply(
        &second.root,
        layer.as_slice(),
        compression,
        "fuzz",
        mode,
        Some(&applied.diff_id),
    );
    second.assert_contained();
    let again =
        again.expect("the same layer, with its own diff ID expected, failed the second time");
    assert_eq!(applied, again, "applying is not deterministic");
    assert_eq!(
        tree,
        second.tree(),
        "applying is not deterministic: the trees differ"
    );

    if mode != Whiteouts::Apply {
        let changes = overlay_changes(&jail.root).expect("reading the unpacked root back");
        let mut repacked = Vec::new();
        write_tar(&jail.root, &changes, &TarOptions::default(), &mut repacked)
            .expect("packing the unpacked root");
        let third = Jail::new();
        apply(
            &third.root,
            repacked.as_slice(),
            Compression::None,
            "repacked",
            mode,
            None,
        )
        .expect("the repacked layer does not apply");
        third.assert_contained();
        // Symlinks copied from the first root may name its jail.
        let own = jail.path().display().to_string();
        let repacked_tree: Vec<String> = third
            .tree()
            .into_iter()
            .map(|e| e.replace(&own, "<jail>"))
            .collect();
        assert_eq!(
            tree, repacked_tree,
            "unpacking, packing and unpacking again changed the tree"
        );
    }
}
