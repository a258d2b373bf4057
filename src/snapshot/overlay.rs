//! The overlay snapshotter: mounts overlayfs over a stack of unpacked layers (from
//! [`super::Snapshots::ensure`]) so a step writes into a fresh, empty upper directory that
//! afterwards *is* the step's diff ([`super::diff::overlay_changes`]). It owns the
//! `upper/`, `work/`, `merged/` directories under a step's work dir and the mount's
//! lifetime; it does not read or write layer contents, and it never unmounts anything it
//! did not mount.
//!
//! Options (kernel `Documentation/filesystems/overlayfs.rst`):
//! - `redirect_dir=off` (`nofollow` with `userxattr`, the only value the kernel takes
//!   then): renaming a merged directory fails with `EXDEV`, so tools fall back
//!   to copy + delete and the upper dir never holds `overlay.redirect` xattrs pointing into
//!   a lower layer (section "Renaming directories") — a redirect cannot be expressed in a
//!   tar changeset.
//! - `metacopy=off`: a chmod/chown copies data up too; with `metacopy=on` the upper file
//!   would be a metadata-only stub whose data lives in a lower layer (section "Metadata only
//!   copy up").
//! - `index=off`: no `index/` dir of hardlinked copy-ups in the work dir, no origin
//!   verification that would tie the upper dir to these exact lower inodes
//!   (section "Inode index").
//! - `xino=off`: inode numbers are not composed with layer bits; we never rely on them.
//! - `volatile` (Linux ≥ 5.10): no sync of the upper filesystem, above all none at unmount,
//!   which would otherwise flush every dirty page of the state root's filesystem after each
//!   step (0.14 s after unpacking a 150 MB base image here, and whatever else is being
//!   written on the machine). A step's upper directory becomes a snapshot, a cache that
//!   `super::journal` drops if the machine goes down before it reached the disk.
//! - `userxattr` unless we are root of the initial user namespace: the `user.overlay.*`
//!   namespace instead of `trusted.*`, required when mounting from inside a user namespace
//!   (section "Permission model", "userxattr") — a rootless build's own namespace
//!   ([`crate::sandbox::unshare`]) or a container's, where `trusted.*` xattrs cannot be set.
//!
//! Layers are passed with the new mount API (`fsopen`/`fsconfig`/`fsmount`/`move_mount`),
//! one `lowerdir+` per layer (Linux ≥ 6.8), as a file descriptor when the kernel accepts one
//! (Linux ≥ 6.13) so that no path length limit applies. Older kernels get the classic
//! `mount(2)` data string, which is limited to one page (4096 bytes); when the real paths
//! would not fit, `/proc/self/fd/<n>` names of open directory descriptors are used instead.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
};

/// The longest string `fsconfig(FSCONFIG_SET_STRING)` copies from user space
/// (`strndup_user(value, 256)` in `fs/fsopen.c`), terminating NUL included.
const FSCONFIG_STRING_MAX: usize = 255;
/// `mount(2)` copies at most one page of option data (`copy_mount_options`).
const MOUNT_DATA_MAX: usize = 4095;

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("creating {path}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("opening layer {path}")]
    OpenLayer {
        path: String,
        source: std::io::Error,
    },
    #[error("overlayfs is not available (fsopen(\"overlay\"))")]
    Fsopen { source: std::io::Error },
    #[error("configuring overlay {key}={value}{log}")]
    Configure {
        key: String,
        value: String,
        source: std::io::Error,
        log: String,
    },
    #[error("creating the overlay for {merged}{log}")]
    Create {
        merged: String,
        source: std::io::Error,
        log: String,
    },
    #[error("mounting overlay at {merged}")]
    Mount {
        merged: String,
        source: std::io::Error,
    },
    #[error(
        "mounting overlay at {merged}: {layers} lower layers do not fit in one page of mount options"
    )]
    TooManyLayers { merged: String, layers: usize },
}

/// How the layers were handed to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerSpec {
    /// `fsconfig(FSCONFIG_SET_FD, "lowerdir+", fd)` (Linux ≥ 6.13).
    Fd,
    /// `fsconfig(FSCONFIG_SET_STRING, "lowerdir+", path)` (Linux ≥ 6.8).
    LowerdirPlus,
    /// One `lowerdir=a:b:c` string in a `mount(2)` data page.
    DataString,
}

/// An overlay mounted at `merged`; unmounted (lazily, `MNT_DETACH`) on drop.
#[derive(Debug)]
pub struct Mounted {
    merged: PathBuf,
    upper: PathBuf,
    spec: LayerSpec,
    mounted: bool,
}

impl Mounted {
    /// Where the step sees its root filesystem.
    pub fn merged(&self) -> &Path {
        &self.merged
    }

    /// What the step changed, in overlay form (whiteouts, opaque xattrs).
    pub fn upper(&self) -> &Path {
        &self.upper
    }

    /// How the layers were passed to the kernel.
    pub fn layer_spec(&self) -> LayerSpec {
        self.spec
    }

    /// Unmount now, reporting failure (drop only tries).
    pub fn unmount(mut self) -> Result<(), OverlayError> {
        self.mounted = false;
        rustix::mount::unmount(&self.merged, UnmountFlags::DETACH).map_err(|e| {
            OverlayError::Mount {
                merged: self.merged.display().to_string(),
                source: e.into(),
            }
        })
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.mounted {
            let _ = rustix::mount::unmount(&self.merged, UnmountFlags::DETACH);
        }
    }
}

/// Whether to use the `user.overlay.*` xattr namespace: in a user namespace (rootless),
/// even as its root, and as any user but root.
pub(crate) fn userxattr() -> bool {
    !crate::sys::userns::is_host_root()
}

/// Create `upper/`, `work/`, `merged/` under `work_dir` and mount an overlay at `merged`
/// over `lowers` (lowest first, as [`super::Snapshots::ensure`] returns them). No lowers
/// (`FROM scratch`) mounts over an empty `work_dir/empty/`.
pub fn prepare(lowers: &[PathBuf], work_dir: &Path) -> Result<Mounted, OverlayError> {
    prepare_with(lowers, work_dir, None)
}

/// [`prepare`], optionally skipping the newer ways of passing layers (`oldest`) so the
/// fallbacks can be tested on a kernel that would not need them.
fn prepare_with(
    lowers: &[PathBuf],
    work_dir: &Path,
    oldest: Option<LayerSpec>,
) -> Result<Mounted, OverlayError> {
    let upper = work_dir.join("upper");
    let work = work_dir.join("work");
    let merged = work_dir.join("merged");
    let mut dirs = vec![upper.clone(), work.clone(), merged.clone()];
    let empty = work_dir.join("empty");
    let mut lowers: Vec<PathBuf> = lowers.to_vec();
    if lowers.is_empty() {
        // overlayfs needs at least one lower layer.
        dirs.push(empty.clone());
        lowers.push(empty);
    }
    for d in &dirs {
        std::fs::create_dir_all(d).map_err(|source| OverlayError::CreateDir {
            path: d.display().to_string(),
            source,
        })?;
    }
    // overlayfs lists lower layers highest first.
    lowers.reverse();
    let open = |p: &Path| {
        rustix::fs::open(
            p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| OverlayError::OpenLayer {
            path: p.display().to_string(),
            source: e.into(),
        })
    };
    let lower_fds = lowers
        .iter()
        .map(|p| open(p))
        .collect::<Result<Vec<_>, _>>()?;
    let upper_fd = open(&upper)?;
    let work_fd = open(&work)?;
    let layers = Layers {
        lowers: &lowers,
        lower_fds: &lower_fds,
        upper: (&upper, &upper_fd),
        work: (&work, &work_fd),
    };
    let fsconfig = match oldest {
        Some(LayerSpec::DataString) => None,
        _ => mount_fsconfig(&layers, &merged, oldest == Some(LayerSpec::LowerdirPlus))?,
    };
    let spec = match fsconfig {
        Some(spec) => spec,
        None => mount_data(&layers, &merged)?,
    };
    Ok(Mounted {
        merged,
        upper,
        spec,
        mounted: true,
    })
}

struct Layers<'a> {
    /// Highest first.
    lowers: &'a [PathBuf],
    lower_fds: &'a [OwnedFd],
    upper: (&'a Path, &'a OwnedFd),
    work: (&'a Path, &'a OwnedFd),
}

/// The fixed options; see the module comment for why.
fn flags() -> Vec<(&'static str, &'static str)> {
    flags_for(userxattr())
}

fn flags_for(userxattr: bool) -> Vec<(&'static str, &'static str)> {
    // With `userxattr` the kernel accepts only `redirect_dir=nofollow` (anything else is
    // EINVAL, "redirect_dir=off incompatible with userxattr", `ovl_fs_params_verify`);
    // `nofollow` creates no redirects either, so renaming a merged directory still fails
    // with EXDEV.
    let redirect = if userxattr { "nofollow" } else { "off" };
    let mut out = vec![
        ("redirect_dir", redirect),
        ("metacopy", "off"),
        ("index", "off"),
        ("xino", "off"),
        ("volatile", ""),
    ];
    if userxattr {
        out.push(("userxattr", ""));
    }
    out
}

/// A path as fsconfig can take it: itself when short enough, else the descriptor's
/// `/proc/self/fd` name.
fn short(path: &Path, fd: &OwnedFd) -> String {
    let s = path.display().to_string();
    if s.len() <= FSCONFIG_STRING_MAX {
        s
    } else {
        format!("/proc/self/fd/{}", fd.as_raw_fd())
    }
}

/// Mount with the new mount API. `Ok(None)` when the kernel does not know `lowerdir+`
/// (Linux < 6.8): the caller falls back to `mount(2)`.
fn mount_fsconfig(
    layers: &Layers<'_>,
    merged: &Path,
    no_fds: bool,
) -> Result<Option<LayerSpec>, OverlayError> {
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| OverlayError::Fsopen { source: e.into() })?;
    let configure = |key: &str, value: &str, e: Errno| OverlayError::Configure {
        key: key.to_string(),
        value: value.to_string(),
        source: e.into(),
        log: kernel_log(&fs),
    };
    // Probe with the first (highest) layer: fd first, then a path string.
    let first = (&layers.lowers[0], &layers.lower_fds[0]);
    let by_fd = if no_fds {
        Err(Errno::INVAL)
    } else {
        rustix::mount::fsconfig_set_fd(&fs, "lowerdir+", first.1)
    };
    let spec = match by_fd {
        Ok(()) => LayerSpec::Fd,
        Err(Errno::INVAL | Errno::BADF) => {
            let _ = kernel_log(&fs);
            let value = short(first.0, first.1);
            match rustix::mount::fsconfig_set_string(&fs, "lowerdir+", value.as_str()) {
                Ok(()) => LayerSpec::LowerdirPlus,
                Err(Errno::INVAL) => return Ok(None),
                Err(e) => return Err(configure("lowerdir+", &value, e)),
            }
        }
        Err(e) => return Err(configure("lowerdir+", &first.0.display().to_string(), e)),
    };
    let set = |key: &str, path: &Path, fd: &OwnedFd| match spec {
        LayerSpec::Fd => rustix::mount::fsconfig_set_fd(&fs, key, fd)
            .map_err(|e| configure(key, &path.display().to_string(), e)),
        _ => {
            let value = short(path, fd);
            rustix::mount::fsconfig_set_string(&fs, key, value.as_str())
                .map_err(|e| configure(key, &value, e))
        }
    };
    for (path, fd) in layers.lowers.iter().zip(layers.lower_fds).skip(1) {
        set("lowerdir+", path, fd)?;
    }
    set("upperdir", layers.upper.0, layers.upper.1)?;
    set("workdir", layers.work.0, layers.work.1)?;
    for (key, value) in flags() {
        let r = if value.is_empty() {
            rustix::mount::fsconfig_set_flag(&fs, key)
        } else {
            rustix::mount::fsconfig_set_string(&fs, key, value)
        };
        r.map_err(|e| configure(key, value, e))?;
    }
    let create = |e: Errno| OverlayError::Create {
        merged: merged.display().to_string(),
        source: e.into(),
        log: kernel_log(&fs),
    };
    rustix::mount::fsconfig_create(&fs).map_err(create)?;
    let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .map_err(create)?;
    rustix::mount::move_mount(
        mnt.as_fd(),
        "",
        CWD,
        merged,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| OverlayError::Mount {
        merged: merged.display().to_string(),
        source: e.into(),
    })?;
    Ok(Some(spec))
}

/// Escape `\`, `:` and `,` for overlayfs option parsing (`ovl_unescape`).
fn escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '\\' | ':' | ',') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The classic `mount(2)` data string, all options in one page.
fn data_string(layers: &Layers<'_>, proc_fds: bool) -> String {
    let name = |p: &Path, fd: &OwnedFd| {
        if proc_fds {
            format!("/proc/self/fd/{}", fd.as_raw_fd())
        } else {
            escape(&p.display().to_string())
        }
    };
    let lower: Vec<String> = layers
        .lowers
        .iter()
        .zip(layers.lower_fds)
        .map(|(p, fd)| name(p, fd))
        .collect();
    let mut opts = vec![
        format!("lowerdir={}", lower.join(":")),
        format!("upperdir={}", name(layers.upper.0, layers.upper.1)),
        format!("workdir={}", name(layers.work.0, layers.work.1)),
    ];
    for (key, value) in flags() {
        opts.push(if value.is_empty() {
            key.to_string()
        } else {
            format!("{key}={value}")
        });
    }
    opts.join(",")
}

fn mount_data(layers: &Layers<'_>, merged: &Path) -> Result<LayerSpec, OverlayError> {
    let mut data = data_string(layers, false);
    if data.len() > MOUNT_DATA_MAX {
        data = data_string(layers, true);
    }
    if data.len() > MOUNT_DATA_MAX {
        return Err(OverlayError::TooManyLayers {
            merged: merged.display().to_string(),
            layers: layers.lowers.len(),
        });
    }
    let data = std::ffi::CString::new(data).map_err(|_| OverlayError::Mount {
        merged: merged.display().to_string(),
        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    })?;
    rustix::mount::mount(
        "overlay",
        merged,
        "overlay",
        MountFlags::empty(),
        Some(data.as_c_str()),
    )
    .map_err(|e| OverlayError::Mount {
        merged: merged.display().to_string(),
        source: e.into(),
    })?;
    Ok(LayerSpec::DataString)
}

/// The messages the kernel queued on a filesystem context (`e overlay: …` lines), as a
/// suffix for an error message; empty when there are none.
fn kernel_log(fs: &OwnedFd) -> String {
    let mut lines = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = rustix::io::read(fs, &mut buf) {
        if n == 0 {
            break;
        }
        lines.push(String::from_utf8_lossy(&buf[..n]).trim_end().to_string());
    }
    if lines.is_empty() {
        String::new()
    } else {
        format!(" (kernel: {})", lines.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! escaped {
        ($name:ident, $in:expr, $out:expr) => {
            #[test]
            fn $name() {
                assert_eq!(escape($in), $out);
            }
        };
    }

    escaped!(plain_path_unchanged, "/a/b", "/a/b");
    escaped!(colon_escaped, "/a:b", "/a\\:b");
    escaped!(comma_escaped, "/a,b", "/a\\,b");
    escaped!(backslash_escaped, "/a\\b", "/a\\\\b");

    #[test]
    fn short_paths_stay_long_paths_become_fd_names() {
        let dir = tempfile::tempdir().unwrap();
        let fd = rustix::fs::open(dir.path(), OFlags::RDONLY, Mode::empty()).unwrap();
        assert_eq!(short(Path::new("/x"), &fd), "/x");
        let long = PathBuf::from(format!("/{}", "a".repeat(300)));
        assert!(short(&long, &fd).starts_with("/proc/self/fd/"));
    }

    /// Mount 200 layers at ~330-byte paths (~66 KB of `lowerdir`, sixteen pages; each path
    /// over fsconfig's 255-byte string limit) forcing each way of passing them.
    macro_rules! many_layers {
        ($name:ident, $oldest:expr) => {
            #[test]
            fn $name() {
                if !rustix::process::geteuid().is_root() {
                    eprintln!("SKIPPED (needs root)");
                    return;
                }
                let d = tempfile::tempdir().unwrap();
                let deep = d.path().join("l".repeat(150)).join("m".repeat(150));
                let lowers: Vec<PathBuf> = (0..200)
                    .map(|i| {
                        let l = deep.join(format!("layer-{i:04}"));
                        std::fs::create_dir_all(&l).unwrap();
                        std::fs::write(l.join(format!("f{i}")), "x").unwrap();
                        std::fs::write(l.join("top"), i.to_string()).unwrap();
                        l
                    })
                    .collect();
                let m = prepare_with(&lowers, &d.path().join("step"), $oldest).unwrap();
                let want = $oldest.unwrap_or(LayerSpec::Fd);
                assert_eq!(m.layer_spec(), want);
                assert!(m.merged().join("f0").exists() && m.merged().join("f199").exists());
                let top = std::fs::read_to_string(m.merged().join("top")).unwrap();
                assert_eq!(top, "199", "the last (highest) layer wins");
                m.unmount().unwrap();
            }
        };
    }

    many_layers!(many_layers_by_fd, None);
    many_layers!(
        many_layers_by_lowerdir_plus_path,
        Some(LayerSpec::LowerdirPlus)
    );
    many_layers!(many_layers_by_mount_data_page, Some(LayerSpec::DataString));

    #[test]
    fn userxattr_takes_redirect_dir_nofollow() {
        let get = |u: bool, key: &str| flags_for(u).into_iter().find(|(k, _)| *k == key);
        assert_eq!(get(false, "redirect_dir"), Some(("redirect_dir", "off")));
        assert_eq!(get(false, "userxattr"), None);
        assert_eq!(
            get(true, "redirect_dir"),
            Some(("redirect_dir", "nofollow"))
        );
        assert_eq!(get(true, "userxattr"), Some(("userxattr", "")));
        assert_eq!(get(true, "metacopy"), Some(("metacopy", "off")));
    }

    #[test]
    fn data_string_orders_and_falls_back_to_fd_names() {
        let dir = tempfile::tempdir().unwrap();
        let fd = || rustix::fs::open(dir.path(), OFlags::RDONLY, Mode::empty()).unwrap();
        let lowers = vec![PathBuf::from("/hi"), PathBuf::from("/lo")];
        let fds = vec![fd(), fd()];
        let (u, w) = (fd(), fd());
        let layers = Layers {
            lowers: &lowers,
            lower_fds: &fds,
            upper: (Path::new("/u"), &u),
            work: (Path::new("/w"), &w),
        };
        let s = data_string(&layers, false);
        assert!(s.starts_with("lowerdir=/hi:/lo,upperdir=/u,workdir=/w,redirect_dir="));
        assert!(s.contains("metacopy=off,index=off,xino=off"));
        let s = data_string(&layers, true);
        assert!(s.starts_with("lowerdir=/proc/self/fd/"));
    }
}
