//! Applying one layer (a tar changeset, OCI image-spec `layer.md`) to a directory, treating
//! the layer as hostile. Every path is resolved from the target's directory descriptor with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`: an entry whose path climbs with `..`,
//! or that would be written through a symlink that is absolute or leaves the target, or a
//! hardlink to something outside, fails with an error naming the layer and the entry —
//! nothing is ever written outside the target. Symlinks that stay inside are followed for
//! parent directories, as Docker and containerd do.
//!
//! Two modes: `Whiteouts::Apply` deletes what whiteouts name (layers applied in order onto one tree:
//! the native snapshotter and `type=local` output); `Whiteouts::Overlay` unpacks a single layer as an
//! overlayfs lower directory, whiteouts becoming 0:0 character devices and opaque
//! directories an `overlay.opaque` xattr. The uncompressed stream is hashed on the way: its
//! digest is the layer's diff ID, checked against the image config when given.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;

use crate::oci::digest::{Digest, DigestingReader};
use crate::oci::media_type::Compression;

/// How whiteouts are represented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whiteouts {
    /// Delete what whiteouts name (layers applied in order onto one tree).
    Apply,
    /// Keep whiteouts for overlayfs: char 0:0 devices, opaque xattrs (`user.` namespace
    /// when the overlay is mounted with `userxattr`, `trusted.` otherwise).
    Overlay { userxattr: bool },
}

/// What applying did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub diff_id: Digest,
    /// Bytes of the uncompressed tar.
    pub size: u64,
    /// Device nodes not created (only root may create them).
    pub skipped_devices: u64,
    /// Extended attributes the filesystem or our privileges refused (`trusted.*` as a user).
    pub skipped_xattrs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("layer {layer}: entry {entry:?}: {reason}")]
    Hostile {
        layer: String,
        entry: String,
        reason: String,
    },
    #[error("layer {layer}: entry {entry:?}: {op}: {source}")]
    Entry {
        layer: String,
        entry: String,
        op: &'static str,
        source: io::Error,
    },
    #[error("layer {layer}: reading the archive: {source}")]
    Read { layer: String, source: io::Error },
    #[error("layer {layer}: diff ID mismatch: expected {expected}, got {actual}")]
    DiffId {
        layer: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("opening the target directory {path}: {source}")]
    Target { path: String, source: io::Error },
}

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// Apply `layer` (compressed as `compression`) onto `target`.
pub fn apply(
    target: &Path,
    layer: impl Read,
    compression: Compression,
    name: &str,
    mode: Whiteouts,
    expected_diff_id: Option<&Digest>,
) -> Result<Applied, ApplyError> {
    let root = rustix::fs::open(
        target,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ApplyError::Target {
        path: target.display().to_string(),
        source: e.into(),
    })?;
    let read = |source| ApplyError::Read {
        layer: name.to_string(),
        source,
    };
    let decompressed: Box<dyn Read> = match compression {
        Compression::None => Box::new(layer),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(layer)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(layer).map_err(read)?),
    };
    let mut applier = Applier {
        root,
        layer: name.to_string(),
        mode,
        privileged: rustix::process::geteuid().is_root(),
        created: HashSet::new(),
        dir_times: Vec::new(),
        skipped_devices: 0,
        skipped_xattrs: 0,
    };
    let mut archive = tar::Archive::new(DigestingReader::new(decompressed));
    for entry in archive.entries().map_err(read)? {
        let mut entry = entry.map_err(read)?;
        applier.entry(&mut entry)?;
    }
    applier.finish()?;
    // Whatever follows the end-of-archive blocks is part of the diff ID too.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(read)?;
    let (_, hashed) = rest.finish();
    if let Some(expected) = expected_diff_id
        && expected != &hashed.digest
    {
        return Err(ApplyError::DiffId {
            layer: name.to_string(),
            expected: expected.clone(),
            actual: hashed.digest,
        });
    }
    Ok(Applied {
        diff_id: hashed.digest,
        size: hashed.size,
        skipped_devices: applier.skipped_devices,
        skipped_xattrs: applier.skipped_xattrs,
    })
}

/// An entry's path as components; `..` anywhere is hostile, `.` and empty parts vanish and a
/// leading `/` means the layer root.
fn clean(raw: &str) -> Result<Vec<String>, &'static str> {
    let mut out = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("the path climbs out with `..`"),
            p => out.push(p.to_string()),
        }
    }
    Ok(out)
}

struct Applier {
    root: OwnedFd,
    layer: String,
    mode: Whiteouts,
    privileged: bool,
    /// Paths this layer created (an opaque marker spares them).
    created: HashSet<String>,
    /// Directory mtimes, set last (creating children changes them).
    dir_times: Vec<(Vec<String>, i64)>,
    skipped_devices: u64,
    skipped_xattrs: u64,
}

impl Applier {
    fn hostile(&self, entry: &str, reason: impl Into<String>) -> ApplyError {
        ApplyError::Hostile {
            layer: self.layer.clone(),
            entry: entry.to_string(),
            reason: reason.into(),
        }
    }

    fn io(&self, entry: &str, op: &'static str, e: impl Into<io::Error>) -> ApplyError {
        ApplyError::Entry {
            layer: self.layer.clone(),
            entry: entry.to_string(),
            op,
            source: e.into(),
        }
    }

    /// Open a directory below the root (creating missing components when `create`).
    fn dir(&self, parts: &[String], create: bool, entry: &str) -> Result<OwnedFd, ApplyError> {
        let how = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let rel = if parts.is_empty() {
            ".".to_string()
        } else {
            parts.join("/")
        };
        match rustix::fs::openat2(&self.root, &rel, flags, Mode::empty(), how) {
            Ok(fd) => Ok(fd),
            Err(Errno::XDEV) => Err(self.hostile(
                entry,
                format!("{rel:?} is reached through a symlink that leaves the layer root"),
            )),
            Err(Errno::NOENT) if create => {
                // Create the missing components one at a time, each checked the same way.
                let mut fd = rustix::fs::openat2(&self.root, ".", flags, Mode::empty(), how)
                    .map_err(|e| self.io(entry, "open root", e))?;
                for p in parts {
                    fd = match rustix::fs::openat2(&fd, p.as_str(), flags, Mode::empty(), how) {
                        Ok(next) => next,
                        Err(Errno::NOENT) => {
                            rustix::fs::mkdirat(&fd, p.as_str(), Mode::from_raw_mode(0o755))
                                .map_err(|e| self.io(entry, "mkdir parent", e))?;
                            rustix::fs::openat2(&fd, p.as_str(), flags, Mode::empty(), how)
                                .map_err(|e| self.io(entry, "open parent", e))?
                        }
                        Err(Errno::XDEV) => {
                            return Err(self.hostile(
                                entry,
                                format!("{p:?} is a symlink that leaves the layer root"),
                            ));
                        }
                        Err(e) => return Err(self.io(entry, "open parent", e)),
                    };
                }
                Ok(fd)
            }
            Err(e) => Err(self.io(entry, "open parent", e)),
        }
    }

    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<(), ApplyError> {
        let raw = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let parts = clean(&raw).map_err(|r| self.hostile(&raw, r))?;
        let Some((base, parent_parts)) = parts.split_last() else {
            return Ok(()); // the layer root itself
        };
        let kind = e.header().entry_type();

        if let Some(hidden) = base.strip_prefix(WHITEOUT) {
            return self.whiteout(&raw, parent_parts, base, hidden);
        }

        let parent = self.dir(parent_parts, true, &raw)?;
        let existing = rustix::fs::statat(&parent, base.as_str(), AtFlags::SYMLINK_NOFOLLOW).ok();
        let existing_dir = existing
            .as_ref()
            .is_some_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory);
        if existing.is_some() && !(kind.is_dir() && existing_dir) {
            remove_all(&parent, base).map_err(|err| self.io(&raw, "replace", err))?;
        }
        let header_mode = e.header().mode().unwrap_or(0o644) & 0o7777;
        let uid = e.header().uid().unwrap_or(0) as u32;
        let gid = e.header().gid().unwrap_or(0) as u32;
        let mtime = e.header().mtime().unwrap_or(0) as i64;
        let xattrs = self.xattrs(e, &raw)?;

        match kind {
            tar::EntryType::Directory => {
                if !existing_dir {
                    rustix::fs::mkdirat(&parent, base.as_str(), Mode::from_raw_mode(0o700))
                        .map_err(|err| self.io(&raw, "mkdir", err))?;
                }
                let fd = rustix::fs::openat(
                    &parent,
                    base.as_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|err| self.io(&raw, "open dir", err))?;
                self.finish_fd(&fd, &raw, header_mode, uid, gid, &xattrs)?;
                self.dir_times.push((parts.clone(), mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let fd = rustix::fs::openat(
                    &parent,
                    base.as_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|err| self.io(&raw, "create", err))?;
                let mut file = std::fs::File::from(fd);
                io::copy(e, &mut file).map_err(|err| self.io(&raw, "write", err))?;
                file.flush().map_err(|err| self.io(&raw, "write", err))?;
                let fd = OwnedFd::from(file);
                self.finish_fd(&fd, &raw, header_mode, uid, gid, &xattrs)?;
                let t = Timespec {
                    tv_sec: mtime,
                    tv_nsec: 0,
                };
                rustix::fs::futimens(
                    &fd,
                    &Timestamps {
                        last_access: t,
                        last_modification: t,
                    },
                )
                .map_err(|err| self.io(&raw, "set times", err))?;
            }
            tar::EntryType::Symlink => {
                let target = e
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                rustix::fs::symlinkat(target.as_str(), &parent, base.as_str())
                    .map_err(|err| self.io(&raw, "symlink", err))?;
                if self.privileged {
                    rustix::fs::chownat(
                        &parent,
                        base.as_str(),
                        Some(rustix::fs::Uid::from_raw(uid)),
                        Some(rustix::fs::Gid::from_raw(gid)),
                        AtFlags::SYMLINK_NOFOLLOW,
                    )
                    .map_err(|err| self.io(&raw, "chown", err))?;
                }
                let t = Timespec {
                    tv_sec: mtime,
                    tv_nsec: 0,
                };
                rustix::fs::utimensat(
                    &parent,
                    base.as_str(),
                    &Timestamps {
                        last_access: t,
                        last_modification: t,
                    },
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|err| self.io(&raw, "set times", err))?;
            }
            tar::EntryType::Link => {
                let target = e
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let tparts = clean(&target)
                    .map_err(|r| self.hostile(&raw, format!("hardlink target {target:?}: {r}")))?;
                let Some((tbase, tparent)) = tparts.split_last() else {
                    return Err(self.hostile(&raw, "hardlink to the layer root"));
                };
                let tdir = self.dir(tparent, false, &raw)?;
                rustix::fs::linkat(
                    &tdir,
                    tbase.as_str(),
                    &parent,
                    base.as_str(),
                    AtFlags::empty(),
                )
                .map_err(|err| self.io(&raw, "hardlink", err))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                if ft != FileType::Fifo && !self.privileged {
                    self.skipped_devices += 1;
                    return Ok(());
                }
                let dev = rustix::fs::makedev(
                    e.header().device_major().ok().flatten().unwrap_or(0),
                    e.header().device_minor().ok().flatten().unwrap_or(0),
                );
                rustix::fs::mknodat(
                    &parent,
                    base.as_str(),
                    ft,
                    Mode::from_raw_mode(header_mode),
                    dev,
                )
                .map_err(|err| self.io(&raw, "mknod", err))?;
                let t = Timespec {
                    tv_sec: mtime,
                    tv_nsec: 0,
                };
                rustix::fs::utimensat(
                    &parent,
                    base.as_str(),
                    &Timestamps {
                        last_access: t,
                        last_modification: t,
                    },
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|err| self.io(&raw, "set times", err))?;
                if self.privileged {
                    rustix::fs::chownat(
                        &parent,
                        base.as_str(),
                        Some(rustix::fs::Uid::from_raw(uid)),
                        Some(rustix::fs::Gid::from_raw(gid)),
                        AtFlags::SYMLINK_NOFOLLOW,
                    )
                    .map_err(|err| self.io(&raw, "chown", err))?;
                }
            }
            // PAX and GNU extension headers are consumed by the tar reader; anything else
            // (sockets cannot be in a tar) is refused rather than dropped.
            other => return Err(self.hostile(&raw, format!("unsupported entry type {other:?}"))),
        }
        self.created.insert(parts.join("/"));
        Ok(())
    }

    fn whiteout(
        &mut self,
        raw: &str,
        parent_parts: &[String],
        base: &str,
        hidden: &str,
    ) -> Result<(), ApplyError> {
        match self.mode {
            Whiteouts::Apply => {
                let Ok(parent) = self.dir(parent_parts, false, raw) else {
                    return Ok(()); // nothing below to hide
                };
                if base == OPAQUE {
                    let prefix = parent_parts.join("/");
                    let keep = |name: &str| {
                        let full = if prefix.is_empty() {
                            name.to_string()
                        } else {
                            format!("{prefix}/{name}")
                        };
                        self.created.contains(&full)
                    };
                    for name in children(&parent).map_err(|e| self.io(raw, "list for opaque", e))? {
                        if !keep(&name) {
                            remove_all(&parent, &name).map_err(|e| self.io(raw, "opaque", e))?;
                        }
                    }
                } else if rustix::fs::statat(&parent, hidden, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
                    remove_all(&parent, hidden).map_err(|e| self.io(raw, "whiteout", e))?;
                }
            }
            Whiteouts::Overlay { userxattr } => {
                let parent = self.dir(parent_parts, true, raw)?;
                if base == OPAQUE {
                    let fd = rustix::fs::openat(
                        &parent,
                        ".",
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| self.io(raw, "open opaque dir", e))?;
                    let attr = if userxattr {
                        "user.overlay.opaque"
                    } else {
                        "trusted.overlay.opaque"
                    };
                    rustix::fs::fsetxattr(&fd, attr, b"y", XattrFlags::empty())
                        .map_err(|e| self.io(raw, "set opaque xattr", e))?;
                } else {
                    if rustix::fs::statat(&parent, hidden, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
                        remove_all(&parent, hidden).map_err(|e| self.io(raw, "whiteout", e))?;
                    }
                    rustix::fs::mknodat(
                        &parent,
                        hidden,
                        FileType::CharacterDevice,
                        Mode::empty(),
                        rustix::fs::makedev(0, 0),
                    )
                    .map_err(|e| self.io(raw, "create overlay whiteout", e))?;
                }
            }
        }
        Ok(())
    }

    fn xattrs<R: Read>(
        &self,
        e: &mut tar::Entry<'_, R>,
        raw: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, ApplyError> {
        let mut out = Vec::new();
        if let Some(exts) = e
            .pax_extensions()
            .map_err(|err| self.io(raw, "read PAX headers", err))?
        {
            for ext in exts {
                let ext = ext.map_err(|err| self.io(raw, "read PAX headers", err))?;
                if let Ok(key) = ext.key()
                    && let Some(name) = key.strip_prefix("SCHILY.xattr.")
                {
                    out.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
        Ok(out)
    }

    /// Owner, mode and xattrs of an opened file or directory.
    fn finish_fd(
        &mut self,
        fd: &OwnedFd,
        raw: &str,
        mode: u32,
        uid: u32,
        gid: u32,
        xattrs: &[(String, Vec<u8>)],
    ) -> Result<(), ApplyError> {
        if self.privileged {
            rustix::fs::fchown(
                fd,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
            )
            .map_err(|e| self.io(raw, "chown", e))?;
        }
        // After chown: chown clears set-id bits.
        rustix::fs::fchmod(fd, Mode::from_raw_mode(mode)).map_err(|e| self.io(raw, "chmod", e))?;
        for (name, value) in xattrs {
            match rustix::fs::fsetxattr(fd, name.as_str(), value, XattrFlags::empty()) {
                Ok(()) => {}
                Err(Errno::PERM | Errno::NOTSUP | Errno::ACCESS) => self.skipped_xattrs += 1,
                Err(e) => return Err(self.io(raw, "set xattr", e)),
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ApplyError> {
        // Deepest first, so setting a parent's time is not undone by its children.
        self.dir_times
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        for (parts, mtime) in std::mem::take(&mut self.dir_times) {
            let raw = parts.join("/");
            let dir = self.dir(&parts, false, &raw)?;
            let t = Timespec {
                tv_sec: mtime,
                tv_nsec: 0,
            };
            rustix::fs::utimensat(
                &dir,
                ".",
                &Timestamps {
                    last_access: t,
                    last_modification: t,
                },
                AtFlags::empty(),
            )
            .map_err(|e| self.io(&raw, "set times", e))?;
        }
        Ok(())
    }
}

/// Names in a directory (not `.`/`..`).
fn children(dir: &OwnedFd) -> io::Result<Vec<String>> {
    let fd = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(&fd)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != "." && name != ".." {
            names.push(name);
        }
    }
    Ok(names)
}

/// Remove `name` in `dir`, recursively for directories, never following symlinks.
fn remove_all(dir: &impl AsFd, name: &str) -> io::Result<()> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let sub = rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        for child in children(&sub)? {
            remove_all(&sub, &child)?;
        }
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
    }
    Ok(())
}
