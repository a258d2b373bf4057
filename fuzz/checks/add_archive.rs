//! ADD's extraction of a local archive (`engine::copy::archive`) from any bytes: recognised
//! by content (tar, gzip, bzip2, xz, zstd), unpacked as hostile input.
//!
//! Input: the archive file's bytes.
//!
//! Invariants:
//! - nothing outside the extraction root changes, and no symlink leading out of it (ADD
//!   resolves every path with the root as `/`) is followed ([`Jail`]);
//! - what is not an archive leaves the root as it was;
//! - extraction is deterministic: a second extraction into a fresh root gives the same
//!   answer (or the same error) and the same tree.

use std::io::Write;

use super::jail::Jail;

pub fn check(data: &[u8]) {
    let shm = std::path::Path::new("/dev/shm");
    let mut file = if shm.is_dir() {
        tempfile::NamedTempFile::new_in(shm)
    } else {
        tempfile::NamedTempFile::new()
    }
    .expect("temporary file");
    file.write_all(data).unwrap();
    file.flush().unwrap();

    let jail = Jail::new();
    let untouched = jail.tree();
    let first = rbuild::engine::unpack_archive(file.path(), &jail.root);
    jail.assert_contained();
    if first == Ok(false) {
        assert_eq!(
            untouched,
            jail.tree(),
            "a file that is no archive changed the root"
        );
    }

    let second = Jail::new();
    let again = rbuild::engine::unpack_archive(file.path(), &second.root);
    second.assert_contained();
    // Messages may name the root; compare them without it.
    let shown = |r: Result<bool, String>, root: &std::path::Path| {
        r.map_err(|e| e.replace(&root.display().to_string(), "<root>"))
    };
    assert_eq!(
        shown(first, &jail.root),
        shown(again, &second.root),
        "extraction is not deterministic"
    );
    assert_eq!(
        jail.tree(),
        second.tree(),
        "extraction is not deterministic: the trees differ"
    );
}
