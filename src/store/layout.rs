//! The store's on-disk layout under its root: the names, where the root is by default, the
//! `oci-layout` marker, and the permissions of what we create. The root is an OCI image
//! layout (image-spec `image-layout.md`), so `skopeo`/`umoci` can read it as `oci:<root>`.
//!
//! Directories we create get mode 0700 whoever runs us: unpacked snapshots will live under
//! the same root, and a world-traversable root exposes their setuid binaries and secrets to
//! every local user (moby CVE-2021-41091, containerd CVE-2021-41103). An existing root keeps
//! the mode it has. This file does not touch blobs or tags.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use super::error::StoreError;
use super::temp;
use crate::oci::manifest::{OCI_LAYOUT_VERSION, OciLayout};

/// The layout marker file's name (image-spec `image-layout.md` "oci-layout file").
pub const OCI_LAYOUT_FILE: &str = "oci-layout";
/// The root of a store run by root.
pub const SYSTEM_ROOT: &str = "/var/lib/rbuild";
/// Mode of `oci-layout`.
const LAYOUT_FILE_MODE: u32 = 0o644;

/// The default store root: [`SYSTEM_ROOT`] for root, else `$XDG_DATA_HOME/rbuild`, else
/// `$HOME/.local/share/rbuild` (XDG Base Directory spec); `None` when neither variable is
/// set for a non-root user. Root of a user namespace is the user who made it: a rootless
/// build keeps the user's state root.
pub fn default_root() -> Option<PathBuf> {
    default_root_for(
        crate::sys::userns::is_host_root(),
        std::env::var_os("XDG_DATA_HOME").as_deref(),
        std::env::var_os("HOME").as_deref(),
    )
}

/// [`default_root`] as a pure function of who we are and the environment. Relative
/// `XDG_DATA_HOME` values are ignored, as the XDG spec says.
pub fn default_root_for(
    is_root: bool,
    xdg_data_home: Option<&OsStr>,
    home: Option<&OsStr>,
) -> Option<PathBuf> {
    if is_root {
        return Some(PathBuf::from(SYSTEM_ROOT));
    }
    let usable = |v: &&OsStr| Path::new(v).is_absolute();
    if let Some(xdg) = xdg_data_home.filter(usable) {
        return Some(Path::new(xdg).join("rbuild"));
    }
    home.filter(usable)
        .map(|h| Path::new(h).join(".local/share/rbuild"))
}

/// Create `oci-layout` unless it exists, or check the version of the one that does.
pub(crate) fn ensure_oci_layout(root: &Path, tmp: &Path) -> Result<(), StoreError> {
    let path = root.join(OCI_LAYOUT_FILE);
    // Canonical JSON of `oci_layout()` by construction (one key).
    let bytes = format!(r#"{{"imageLayoutVersion":"{OCI_LAYOUT_VERSION}"}}"#);
    if temp::create_file(tmp, &path, bytes.as_bytes(), LAYOUT_FILE_MODE)? {
        return Ok(());
    }
    check_oci_layout(&path)
}

/// Check that `path` is an `oci-layout` file of the version we read.
pub(crate) fn check_oci_layout(path: &Path) -> Result<(), StoreError> {
    let bytes = fs::read(path).map_err(|source| StoreError::ReadLayoutFile {
        path: path.to_path_buf(),
        source,
    })?;
    let layout: OciLayout =
        serde_json::from_slice(&bytes).map_err(|source| StoreError::ParseLayoutFile {
            path: path.to_path_buf(),
            source,
        })?;
    let got = layout.image_layout_version();
    if got != OCI_LAYOUT_VERSION {
        return Err(StoreError::LayoutVersion {
            path: path.to_path_buf(),
            expected: OCI_LAYOUT_VERSION,
            got: got.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(root?, XDG_DATA_HOME, HOME) => root`.
    macro_rules! default_roots {
        ($($name:ident: $is_root:expr, $xdg:expr, $home:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                let xdg: Option<&str> = $xdg;
                let home: Option<&str> = $home;
                let got = default_root_for($is_root, xdg.map(OsStr::new), home.map(OsStr::new));
                let want: Option<&str> = $want;
                assert_eq!(got, want.map(PathBuf::from));
            }
        )*};
    }

    default_roots! {
        root_uses_var_lib: true, Some("/x"), Some("/root") => Some("/var/lib/rbuild");
        user_uses_xdg: false, Some("/data"), Some("/home/u") => Some("/data/rbuild");
        user_falls_back_to_home: false, None, Some("/home/u") => Some("/home/u/.local/share/rbuild");
        relative_xdg_is_ignored: false, Some("data"), Some("/home/u") => Some("/home/u/.local/share/rbuild");
        nothing_set: false, None, None => None;
        relative_home_is_ignored: false, None, Some("home") => None;
    }

    /// `oci-layout content => accepted?`
    macro_rules! layout_files {
        ($($name:ident: $content:expr => $ok:expr;)*) => {$(
            #[test]
            fn $name() {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join(OCI_LAYOUT_FILE);
                fs::write(&path, $content).unwrap();
                let got = check_oci_layout(&path);
                assert_eq!(got.is_ok(), $ok, "{got:?}");
                if let Err(e) = got {
                    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
                }
            }
        )*};
    }

    layout_files! {
        version_1_0_0: r#"{"imageLayoutVersion":"1.0.0"}"# => true;
        version_2: r#"{"imageLayoutVersion":"2.0.0"}"# => false;
        not_json: "1.0.0" => false;
        no_version: "{}" => false;
    }

    #[test]
    fn creates_the_marker_once() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        ensure_oci_layout(dir.path(), &tmp).unwrap();
        let path = dir.path().join(OCI_LAYOUT_FILE);
        let canonical =
            crate::oci::canonical::to_canonical_vec(&crate::oci::manifest::oci_layout()).unwrap();
        assert_eq!(fs::read(&path).unwrap(), canonical);
        ensure_oci_layout(dir.path(), &tmp).unwrap();
        fs::write(&path, r#"{"imageLayoutVersion":"9"}"#).unwrap();
        let err = ensure_oci_layout(dir.path(), &tmp).unwrap_err();
        assert!(
            err.to_string()
                .contains("expected imageLayoutVersion 1.0.0, got 9"),
            "{err}"
        );
    }
}
