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
//!
//! Owners are set when we are root where we stand; device nodes are made only by root of
//! the initial user namespace (mknod(2) checks `CAP_MKNOD` there; the overlay whiteout 0:0
//! is the kernel's one exception). A user outside any namespace gets every file as its own
//! and no device nodes; root of a user namespace (a rootless build) gets every owner that
//! is mapped into it, and an unmapped owner (`EINVAL`: a base image's file of uid 70000
//! with a 65536-id range, or any non-root owner when only root is mapped) leaves the entry
//! root's. Both are counted in [`Applied`] rather than failing the unpack: the image's own
//! layers stay as they are, only this unpacked copy differs.

use std::collections::{BTreeMap, HashSet};
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
    /// Device nodes not created (only root of the initial user namespace may create them).
    pub skipped_devices: u64,
    /// Entries left owned by root because their owner is not mapped in this user namespace.
    pub(crate) skipped_owners: u64,
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
    #[error("layer {layer}: entry {entry:?}: {op}")]
    Entry {
        layer: String,
        entry: String,
        op: &'static str,
        source: io::Error,
    },
    #[error("layer {layer}: reading the archive")]
    Read { layer: String, source: io::Error },
    #[error("layer {layer}: diff ID mismatch: expected {expected}, got {actual}")]
    DiffId {
        layer: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("opening the target directory {path}")]
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
        chown: rustix::process::geteuid().is_root(),
        mknod: crate::sys::userns::is_host_root(),
        in_userns: crate::sys::userns::in_user_namespace(),
        created: HashSet::new(),
        dir_times: Vec::new(),
        skipped_devices: 0,
        skipped_owners: 0,
        skipped_xattrs: 0,
    };
    let mut archive = tar::Archive::new(DigestingReader::new(decompressed));
    // Raw entries: extended headers are parsed here, by their length prefixes, because the
    // tar crate splits PAX records at newlines, and binary xattr values (a file
    // capability with bits 1 and 3, say) can contain one.
    let mut global: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut local: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut long_name: Option<Vec<u8>> = None;
    let mut long_link: Option<Vec<u8>> = None;
    for entry in archive.entries().map_err(read)?.raw(true) {
        let mut e = entry.map_err(read)?;
        let h = e.header().clone();
        let kind = h.entry_type();
        if matches!(
            kind,
            tar::EntryType::XHeader
                | tar::EntryType::XGlobalHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            let mut data = Vec::new();
            (&mut e)
                .take(EXTENSION_LIMIT + 1)
                .read_to_end(&mut data)
                .map_err(read)?;
            let at = String::from_utf8_lossy(&h.path_bytes()).into_owned();
            if data.len() as u64 > EXTENSION_LIMIT {
                return Err(applier.hostile(
                    &at,
                    format!("extended header larger than {EXTENSION_LIMIT} bytes"),
                ));
            }
            match kind {
                tar::EntryType::XHeader | tar::EntryType::XGlobalHeader => {
                    let records = pax_records(&data)
                        .map_err(|r| applier.hostile(&at, format!("malformed PAX header: {r}")))?;
                    let map = if kind == tar::EntryType::XHeader {
                        &mut local
                    } else {
                        &mut global
                    };
                    for (k, v) in records {
                        map.insert(k, v);
                    }
                }
                tar::EntryType::GNULongName => long_name = Some(trim_nul(data)),
                _ => long_link = Some(trim_nul(data)),
            }
            continue;
        }
        let pax = |k: &str| {
            local
                .get(k)
                .or_else(|| global.get(k))
                .filter(|v| !v.is_empty())
        };
        let text = |v: &Vec<u8>| String::from_utf8_lossy(v).into_owned();
        let path = pax("path")
            .map(text)
            .or_else(|| long_name.take().map(|v| text(&v)))
            .unwrap_or_else(|| String::from_utf8_lossy(&h.path_bytes()).into_owned());
        if let Some(size) = pax("size").map(text)
            && size.parse::<u64>().ok() != h.entry_size().ok()
        {
            return Err(applier.hostile(
                &path,
                "a PAX size override (a file of 8 GiB or more) is not supported yet",
            ));
        }
        let num = |k: &str| {
            pax(k)
                .map(text)
                .and_then(|v| v.split('.').next().and_then(|i| i.parse::<i64>().ok()))
        };
        let meta = Meta {
            link: pax("linkpath")
                .map(text)
                .or_else(|| long_link.take().map(|v| text(&v)))
                .or_else(|| {
                    h.link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                }),
            kind,
            mode: h.mode().unwrap_or(0o644) & 0o7777,
            uid: num("uid")
                .map(|v| v as u32)
                .unwrap_or_else(|| h.uid().unwrap_or(0) as u32),
            gid: num("gid")
                .map(|v| v as u32)
                .unwrap_or_else(|| h.gid().unwrap_or(0) as u32),
            mtime: num("mtime").unwrap_or_else(|| h.mtime().unwrap_or(0) as i64),
            major: h.device_major().ok().flatten().unwrap_or(0),
            minor: h.device_minor().ok().flatten().unwrap_or(0),
            xattrs: global
                .iter()
                .chain(local.iter())
                .filter_map(|(k, v)| {
                    k.strip_prefix("SCHILY.xattr.")
                        .map(|n| (n.to_string(), v.clone()))
                })
                .collect(),
            path,
        };
        applier.entry(&meta, &mut e)?;
        local.clear();
        long_name = None;
        long_link = None;
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
        skipped_owners: applier.skipped_owners,
        skipped_xattrs: applier.skipped_xattrs,
    })
}

/// Extended headers larger than this are refused (PAX records are metadata).
const EXTENSION_LIMIT: u64 = 1 << 20;

/// One entry's metadata, after PAX and GNU extended headers are applied.
struct Meta {
    path: String,
    link: Option<String>,
    kind: tar::EntryType,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    major: u32,
    minor: u32,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// POSIX.1-2001 pax records, `"<len> <key>=<value>\n"`, where `<len>` counts the whole
/// record: values may hold newlines, so records are split by length, never at newlines.
fn pax_records(data: &[u8]) -> Result<Vec<(String, Vec<u8>)>, &'static str> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        // Trailing NUL padding after the last record is not a record.
        if rest.iter().all(|b| *b == 0) {
            break;
        }
        let sp = rest
            .iter()
            .position(|b| *b == b' ')
            .ok_or("a record has no length")?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("a record length is not a number")?;
        if len <= sp + 1 || len > rest.len() {
            return Err("a record length is out of range");
        }
        let record = rest[sp + 1..len]
            .strip_suffix(b"\n")
            .ok_or("a record does not end with a newline")?;
        let eq = record
            .iter()
            .position(|b| *b == b'=')
            .ok_or("a record has no '='")?;
        out.push((
            String::from_utf8_lossy(&record[..eq]).into_owned(),
            record[eq + 1..].to_vec(),
        ));
        rest = &rest[len..];
    }
    Ok(out)
}

/// A GNU long name or link: the data up to its terminating NUL.
fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    if let Some(i) = v.iter().position(|b| *b == 0) {
        v.truncate(i);
    }
    v
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
    /// Set owners (we are root here, in whichever user namespace).
    chown: bool,
    /// Create device nodes (we are root of the initial user namespace).
    mknod: bool,
    /// An unmapped owner is skipped rather than an error.
    in_userns: bool,
    /// Paths this layer created (an opaque marker spares them).
    created: HashSet<String>,
    /// Directory mtimes, set last (creating children changes them).
    dir_times: Vec<(Vec<String>, i64)>,
    skipped_devices: u64,
    skipped_owners: u64,
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

    fn entry(&mut self, m: &Meta, e: &mut dyn Read) -> Result<(), ApplyError> {
        let raw = m.path.clone();
        let parts = clean(&raw).map_err(|r| self.hostile(&raw, r))?;
        let Some((base, parent_parts)) = parts.split_last() else {
            return Ok(()); // the layer root itself
        };
        let kind = m.kind;

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
        let (header_mode, uid, gid, mtime) = (m.mode, m.uid, m.gid, m.mtime);

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
                self.finish_fd(&fd, &raw, header_mode, uid, gid, &m.xattrs)?;
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
                self.finish_fd(&fd, &raw, header_mode, uid, gid, &m.xattrs)?;
                rustix::fs::futimens(&fd, &timestamps(mtime))
                    .map_err(|err| self.io(&raw, "set times", err))?;
            }
            tar::EntryType::Symlink => {
                let target = m.link.clone().unwrap_or_default();
                rustix::fs::symlinkat(target.as_str(), &parent, base.as_str())
                    .map_err(|err| self.io(&raw, "symlink", err))?;
                // A symlink has no mode of its own on Linux.
                self.finish_at(&parent, base, &raw, None, uid, gid, mtime)?;
            }
            tar::EntryType::Link => {
                let target = m.link.clone().unwrap_or_default();
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
                if ft != FileType::Fifo && !self.mknod {
                    self.skipped_devices += 1;
                    return Ok(());
                }
                let dev = rustix::fs::makedev(m.major, m.minor);
                rustix::fs::mknodat(
                    &parent,
                    base.as_str(),
                    ft,
                    Mode::from_raw_mode(header_mode),
                    dev,
                )
                .map_err(|err| self.io(&raw, "mknod", err))?;
                // mknod's mode went through the umask: set the layer's mode again.
                self.finish_at(&parent, base, &raw, Some(header_mode), uid, gid, mtime)?;
            }
            // PAX and GNU extension records were consumed in `apply`; anything else (sockets
            // cannot be in a tar) is refused rather than dropped.
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

    /// The result of a chown: `EINVAL` in a user namespace means the owner is not mapped
    /// there, and the entry stays root's (counted); anything else is an error.
    fn owned(&mut self, result: rustix::io::Result<()>, raw: &str) -> Result<(), ApplyError> {
        match result {
            Ok(()) => Ok(()),
            Err(Errno::INVAL) if self.in_userns => {
                self.skipped_owners += 1;
                Ok(())
            }
            Err(e) => Err(self.io(raw, "chown", e)),
        }
    }

    /// Owner, mode (when it has one) and times of an entry that cannot be opened: a
    /// symlink, device or fifo, by name in `parent`, never following a symlink.
    #[allow(clippy::too_many_arguments)]
    fn finish_at(
        &mut self,
        parent: &OwnedFd,
        base: &str,
        raw: &str,
        mode: Option<u32>,
        uid: u32,
        gid: u32,
        mtime: i64,
    ) -> Result<(), ApplyError> {
        if self.chown {
            let owned = rustix::fs::chownat(
                parent,
                base,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            );
            self.owned(owned, raw)?;
        }
        if let Some(mode) = mode {
            // After chown, which clears set-id bits. The entry was just made by mknod, so it
            // is not a symlink for chmod to follow.
            rustix::fs::chmodat(parent, base, Mode::from_raw_mode(mode), AtFlags::empty())
                .map_err(|e| self.io(raw, "chmod", e))?;
        }
        rustix::fs::utimensat(parent, base, &timestamps(mtime), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.io(raw, "set times", e))
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
        if self.chown {
            let owned = rustix::fs::fchown(
                fd,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
            );
            self.owned(owned, raw)?;
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
            // `dir` is an O_PATH descriptor: futimens would refuse it, "." through it works.
            rustix::fs::utimensat(&dir, ".", &timestamps(mtime), AtFlags::empty())
                .map_err(|e| self.io(&raw, "set times", e))?;
        }
        Ok(())
    }
}

/// A layer carries one time per entry; it becomes both atime and mtime.
fn timestamps(secs: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_split_by_length_not_newlines() {
        let data = b"29 SCHILY.xattr.user.a=x\ny\nz\n21 path=dir/file.txt\n\0\0\0";
        let got = pax_records(data).unwrap();
        assert_eq!(
            got[0],
            ("SCHILY.xattr.user.a".to_string(), b"x\ny\nz".to_vec())
        );
        assert_eq!(got[1], ("path".to_string(), b"dir/file.txt".to_vec()));
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn malformed_pax_records_are_errors() {
        assert!(pax_records(b"99 path=x\n").is_err(), "length past the end");
        assert!(pax_records(b"x path=y\n").is_err(), "length not a number");
        assert!(pax_records(b"11 pathxyz\n").is_err(), "no '='");
        assert!(pax_records(b"9 path=yy").is_err(), "no newline");
    }
}
