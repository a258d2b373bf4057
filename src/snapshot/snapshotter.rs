//! Choosing a snapshotter: overlayfs where this process can mount it, the native copy
//! otherwise, or what `--snapshotter` asks for. Detection test-mounts a tiny overlay once
//! under the state root and caches the answer there (with the kernel release, so a kernel
//! change re-detects). It does not run steps or read layers.

use std::path::Path;

use super::{diff, overlay};

/// Which snapshotter runs the steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Mount overlayfs over the layer snapshots; the upper dir is the diff.
    Overlay,
    /// Copy the root filesystem; compare metadata afterwards.
    Native,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown snapshotter {given:?}: expected \"overlay\" or \"native\"")]
pub struct ParseKindError {
    pub(crate) given: String,
}

impl Kind {
    /// The `--snapshotter` flag's value.
    pub fn parse(s: &str) -> Result<Kind, ParseKindError> {
        match s {
            "overlay" | "overlayfs" => Ok(Kind::Overlay),
            "native" => Ok(Kind::Native),
            other => Err(ParseKindError {
                given: other.to_string(),
            }),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Overlay => "overlay",
            Kind::Native => "native",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Kind {
    type Err = ParseKindError;
    fn from_str(s: &str) -> Result<Kind, ParseKindError> {
        Kind::parse(s)
    }
}

/// The cache file, under the state root. Root and rootless answers differ (`trusted.` vs
/// `user.` xattrs, mount privileges), so the file is per effective user, and root of a
/// user namespace (a rootless build) is not root of the host.
fn cache_file(state_root: &Path) -> std::path::PathBuf {
    let uid = rustix::process::geteuid().as_raw();
    if crate::sys::userns::in_user_namespace() {
        let user = crate::sys::userns::host_uid();
        state_root.join(format!("snapshotter-{uid}-userns-{user}"))
    } else {
        state_root.join(format!("snapshotter-{uid}"))
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Overlay when a test mount under `state_root` works, Native otherwise; the answer is
/// cached under `state_root` for this kernel release.
pub fn detect(state_root: &Path) -> Kind {
    let release = kernel_release();
    let cache = cache_file(state_root);
    if let Ok(text) = std::fs::read_to_string(&cache)
        && let Some((kind, rel)) = text.trim().split_once(' ')
        && rel == release
        && let Ok(kind) = Kind::parse(kind)
    {
        return kind;
    }
    let kind = if probe(state_root) {
        Kind::Overlay
    } else {
        Kind::Native
    };
    // Caching is an optimisation: a read-only state root just probes every time.
    let tmp = cache.with_extension(format!("tmp-{}", crate::store::unique_suffix()));
    if std::fs::write(&tmp, format!("{kind} {release}\n")).is_ok() {
        let _ = std::fs::rename(&tmp, &cache);
    }
    kind
}

/// Mount a one-file overlay, write through it, and check the write landed in the upper
/// dir as overlay form reports it.
fn probe(state_root: &Path) -> bool {
    let dir = state_root.join(format!("tmp-detect-{}", crate::store::unique_suffix()));
    let _ = std::fs::remove_dir_all(&dir);
    let ok = (|| -> Option<()> {
        let lower = dir.join("lower");
        std::fs::create_dir_all(&lower).ok()?;
        std::fs::write(lower.join("probe"), b"lower").ok()?;
        let m = overlay::prepare(std::slice::from_ref(&lower), &dir.join("step")).ok()?;
        (std::fs::read(m.merged().join("probe")).ok()? == b"lower").then_some(())?;
        std::fs::write(m.merged().join("probe"), b"upper").ok()?;
        std::fs::remove_file(m.merged().join("probe")).ok()?;
        // A removed lower file must leave a whiteout, not vanish from the upper dir.
        let changes = diff::overlay_changes(m.upper()).ok()?;
        (changes.len() == 1 && changes[0].kind == super::change::ChangeKind::Delete)
            .then_some(())?;
        m.unmount().ok()
    })()
    .is_some();
    let _ = std::fs::remove_dir_all(&dir);
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! parses {
        ($name:ident, $in:expr, $out:expr) => {
            #[test]
            fn $name() {
                assert_eq!(Kind::parse($in).ok(), $out);
            }
        };
    }

    parses!(overlay, "overlay", Some(Kind::Overlay));
    parses!(overlayfs_alias, "overlayfs", Some(Kind::Overlay));
    parses!(native, "native", Some(Kind::Native));
    parses!(unknown, "vfs", None);
    parses!(case_matters, "Overlay", None);

    #[test]
    fn unknown_names_the_value() {
        let e = Kind::parse("btrfs").unwrap_err();
        assert!(e.to_string().contains("\"btrfs\""), "{e}");
    }

    #[test]
    fn round_trips_through_display() {
        for k in [Kind::Overlay, Kind::Native] {
            assert_eq!(k.to_string().parse::<Kind>().unwrap(), k);
        }
    }

    #[test]
    fn cached_answer_is_used_for_this_kernel_only() {
        let d = tempfile::tempdir().unwrap();
        let cache = cache_file(d.path());
        std::fs::write(&cache, format!("native {}\n", kernel_release())).unwrap();
        assert_eq!(detect(d.path()), Kind::Native);
        // A cache from another kernel is ignored and rewritten.
        std::fs::write(&cache, "overlay 0.0.0-old\n").unwrap();
        let k = detect(d.path());
        let text = std::fs::read_to_string(&cache).unwrap();
        assert_eq!(text, format!("{k} {}\n", kernel_release()));
    }

    #[test]
    fn detects_overlay_as_root() {
        if !crate::sys::userns::is_host_root() {
            eprintln!("SKIPPED (needs root)");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        assert_eq!(detect(d.path()), Kind::Overlay);
        assert!(cache_file(d.path()).is_file());
        // The probe cleans up after itself.
        let left: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
    }
}
