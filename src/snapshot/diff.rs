//! The changes recorded in an overlayfs upper directory, read by walking only that directory
//! (cost proportional to what changed, never to the image). Overlay form
//! (kernel `Documentation/filesystems/overlayfs.rst`, "whiteouts and opaque directories"):
//! a 0:0 character device is a whiteout (`Delete`), a directory with
//! `trusted.overlay.opaque=y` (or `user.overlay.opaque=y` under `userxattr`) hides the
//! lower directory (`Opaque`), everything else is new or copied up (`Upsert`) — including
//! directories overlay copied up only to hold a changed child, as BuildKit's overlay differ
//! reports them. It reads metadata only: it never opens, reads or hashes file contents.

use std::path::Path;

use rustix::fs::FileType;
use rustix::io::Errno;

use super::change::{Change, ChangeKind};

#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("reading upper directory entry {path}")]
    ReadUpper {
        path: String,
        source: std::io::Error,
    },
}

/// The opaque markers overlayfs sets on a directory; value `y` (`x` marks a lower dir that
/// merely *contains* xwhiteouts, which is not opaque).
const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

/// The changes in `upper`, sorted by path (parents before children).
pub fn overlay_changes(upper: &Path) -> Result<Vec<Change>, DiffError> {
    let mut out = Vec::new();
    walk(upper, "", &mut out)?;
    out.sort();
    Ok(out)
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<Change>) -> Result<(), DiffError> {
    let err = |path: &Path| {
        let path = path.display().to_string();
        move |e: std::io::Error| DiffError::ReadUpper { path, source: e }
    };
    for entry in std::fs::read_dir(dir).map_err(err(dir))? {
        let entry = entry.map_err(err(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let full = entry.path();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let st = rustix::fs::lstat(&full).map_err(|e| err(&full)(e.into()))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::CharacterDevice if st.st_rdev == 0 => out.push(Change {
                path: rel,
                kind: ChangeKind::Delete,
            }),
            FileType::Directory => {
                let kind = if is_opaque(&full).map_err(err(&full))? {
                    ChangeKind::Opaque
                } else {
                    ChangeKind::Upsert
                };
                out.push(Change {
                    path: rel.clone(),
                    kind,
                });
                walk(&full, &rel, out)?;
            }
            _ => out.push(Change {
                path: rel,
                kind: ChangeKind::Upsert,
            }),
        }
    }
    Ok(())
}

/// All extended attributes of `path` itself (a symlink is not followed), sorted by name.
/// Lists and values that change between the size query and the read are read again; an
/// attribute removed meanwhile is left out; a filesystem without xattrs has none.
pub(crate) fn xattrs(path: &Path) -> std::io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    use rustix::io::Errno;
    use std::os::unix::ffi::OsStrExt;
    let mut names = Vec::new();
    loop {
        let len = match rustix::fs::llistxattr_query(path) {
            Ok(len) => len,
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        if len == 0 {
            return Ok(Vec::new());
        }
        names.resize(len, 0);
        match rustix::fs::llistxattr(path, &mut names[..]) {
            Ok(n) => {
                names.truncate(n);
                break;
            }
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name_os = std::ffi::OsStr::from_bytes(name);
        let mut value = Vec::new();
        loop {
            let len = match rustix::fs::lgetxattr_query(path, name_os) {
                Ok(len) => len,
                Err(Errno::NODATA) => break,
                Err(e) => return Err(e.into()),
            };
            value.resize(len, 0);
            match rustix::fs::lgetxattr(path, name_os, &mut value[..]) {
                Ok(n) => {
                    value.truncate(n);
                    out.push((name.to_vec(), std::mem::take(&mut value)));
                    break;
                }
                Err(Errno::RANGE) => continue,
                Err(Errno::NODATA) => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Whether an xattr found on an upper-dir entry is overlayfs bookkeeping that must not
/// reach a layer. Copy-up records `trusted.overlay.origin` (a file handle of the lower
/// inode) even with `index=off`, and the upper root gets `overlay.uuid` and `overlay.impure`
/// (seen on Linux 6.18); under `userxattr` the same names live in `user.overlay.*`.
pub(crate) fn is_overlay_private_xattr(name: &str) -> bool {
    name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.")
}

/// Whether `dir` carries an overlay opaque marker with value `y`.
pub(crate) fn is_opaque(dir: &Path) -> std::io::Result<bool> {
    for name in OPAQUE_XATTRS {
        let mut buf = [0u8; 4];
        match rustix::fs::lgetxattr(dir, name, &mut buf) {
            Ok(n) if &buf[..n] == b"y" => return Ok(true),
            Ok(_) => {}
            // Absent, not supported here, or not readable by us (`trusted.*` as a user):
            // not a marker we can honour.
            Err(Errno::NODATA | Errno::NOTSUP | Errno::PERM | Errno::ACCESS | Errno::RANGE) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(p: &str) -> Change {
        Change {
            path: p.to_string(),
            kind: ChangeKind::Upsert,
        }
    }

    fn opaque(p: &str) -> Change {
        Change {
            path: p.to_string(),
            kind: ChangeKind::Opaque,
        }
    }

    /// An upper dir built from `(path, what)` pairs: `"dir"`, `"file"`, `"opaque"` (a dir
    /// with `user.overlay.opaque=y`, settable without privileges).
    macro_rules! upper {
        ($name:ident, [$(($p:expr, $what:expr)),* $(,)?], $expected:expr) => {
            #[test]
            fn $name() {
                let d = tempfile::tempdir().unwrap();
                $(
                    let p = d.path().join($p);
                    match $what {
                        "dir" => std::fs::create_dir_all(&p).unwrap(),
                        "file" => std::fs::write(&p, b"x").unwrap(),
                        "opaque" | "opaque_x" => {
                            std::fs::create_dir_all(&p).unwrap();
                            let value: &[u8] = if $what == "opaque" { b"y" } else { b"x" };
                            if rustix::fs::setxattr(
                                &p,
                                "user.overlay.opaque",
                                value,
                                rustix::fs::XattrFlags::empty(),
                            )
                            .is_err()
                            {
                                eprintln!("SKIPPED (user xattrs not supported here)");
                                return;
                            }
                        }
                        other => panic!("unknown kind {other}"),
                    }
                )*
                let expected: Vec<Change> = $expected;
                assert_eq!(overlay_changes(d.path()).unwrap(), expected);
            }
        };
    }

    upper!(empty_upper_no_changes, [], vec![]);
    upper!(
        files_and_parents_sorted,
        [
            ("b", "dir"),
            ("b/x", "file"),
            ("a", "file"),
            ("b.c", "file")
        ],
        vec![upsert("a"), upsert("b"), upsert("b.c"), upsert("b/x")]
    );
    upper!(
        opaque_dir_and_contents,
        [("o", "opaque"), ("o/new", "file")],
        vec![opaque("o"), upsert("o/new")]
    );
    upper!(
        opaque_value_x_is_not_opaque,
        [("d", "opaque_x"), ("d/f", "file")],
        vec![upsert("d"), upsert("d/f")]
    );

    macro_rules! private {
        ($name:ident, $xattr:expr, $want:expr) => {
            #[test]
            fn $name() {
                assert_eq!(is_overlay_private_xattr($xattr), $want);
            }
        };
    }

    private!(origin_is_private, "trusted.overlay.origin", true);
    private!(user_namespace_is_private, "user.overlay.impure", true);
    private!(capabilities_are_not, "security.capability", false);
    private!(user_data_is_not, "user.mime_type", false);

    #[test]
    fn missing_upper_names_the_path() {
        let e = overlay_changes(Path::new("/nonexistent/upper")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/upper"), "{e}");
    }
}
