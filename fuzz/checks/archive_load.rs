//! `rbuild load` (`archive::load`) of any bytes as a docker-archive or an oci-archive, into a
//! fresh store.
//!
//! Input: the archive's bytes (a tar).
//!
//! Invariants:
//! - whatever load accepts or refuses, every blob in the store matches its digest;
//! - every name an accepted archive tags resolves to a blob the store holds, of the size its
//!   descriptor says;
//! - loading is deterministic: the same archive loaded into another fresh store tags the
//!   same names and stores the same blobs;
//! - a blob named by its digest is checked: the first `blobs/sha256/<hex>` file of an
//!   accepted archive, with one byte of its content changed, makes the load fail.

use rbuild::archive::load::load;
use rbuild::oci::Digest;
use rbuild::oci::manifest::descriptor_digest;
use rbuild::store::Store;

pub fn check(data: &[u8]) {
    let dir = super::jail::scratch();

    let (loaded, blobs) = load_into(&dir.path().join("a"), data);
    let Ok(tags) = loaded else {
        return;
    };
    let (again, blobs_again) = load_into(&dir.path().join("b"), data);
    assert_eq!(Ok(tags), again, "loading is not deterministic");
    assert_eq!(
        blobs, blobs_again,
        "loading is not deterministic: the stores differ"
    );

    if let Some(at) = first_named_blob(data) {
        let mut corrupted = data.to_vec();
        corrupted[at] ^= 0x01;
        let (refused, _) = load_into(&dir.path().join("c"), &corrupted);
        assert!(
            refused.is_err(),
            "a blob whose content is not its digest was loaded (byte {at} changed)"
        );
    }
}

/// Load `data` into a new store at `root`: the names tagged (or the error), and the blobs
/// stored, each checked against its digest.
fn load_into(root: &std::path::Path, data: &[u8]) -> (Result<Vec<String>, String>, Vec<Digest>) {
    let store = Store::open(root).expect("a new store");
    let result = load(&store, data)
        .map(|tags| tags.iter().map(|t| t.to_string()).collect::<Vec<_>>())
        .map_err(|e| rbuild::diag::chain(&e));
    let blobs: Vec<Digest> = store.blobs().list().expect("listing blobs").collect();
    for digest in &blobs {
        let verified = store.blobs().verify(digest).unwrap_or_else(|e| {
            panic!(
                "stored blob {digest} fails its check: {}",
                rbuild::diag::chain(&e)
            )
        });
        assert_eq!(&verified.digest, digest);
    }
    if let Ok(tags) = &result {
        for name in tags {
            let reference = rbuild::oci::Reference::parse(name).expect("a tagged name parses");
            let descriptor = store
                .resolve(&reference)
                .expect("resolving a tag")
                .unwrap_or_else(|| panic!("{name} was reported tagged but is not"));
            let digest = descriptor_digest(&descriptor).expect("a stored descriptor's digest");
            let size = store.blobs().size(&digest).unwrap_or_else(|e| {
                panic!(
                    "{name} names {digest}, which the store lacks: {}",
                    rbuild::diag::chain(&e)
                )
            });
            assert_eq!(
                size,
                descriptor.size(),
                "{name} names {digest} of {} bytes; the store's has {size}",
                descriptor.size()
            );
        }
    }
    (result, blobs)
}

/// The offset of the first content byte of the archive's first regular file named
/// `blobs/sha256/<hex>` with a valid digest and some content.
fn first_named_blob(data: &[u8]) -> Option<usize> {
    let mut archive = tar::Archive::new(data);
    for entry in archive.entries().ok()? {
        let entry = entry.ok()?;
        if entry.header().entry_type() != tar::EntryType::Regular || entry.size() == 0 {
            continue;
        }
        let path = entry.path().ok()?.to_string_lossy().into_owned();
        let path: Vec<&str> = path
            .split('/')
            .filter(|s| !s.is_empty() && *s != ".")
            .collect();
        let named = path.len() == 3
            && path[0] == "blobs"
            && path[1] == "sha256"
            && format!("sha256:{}", path[2]).parse::<Digest>().is_ok();
        if named {
            return usize::try_from(entry.raw_file_position()).ok();
        }
    }
    None
}
