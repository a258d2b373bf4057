//! The tar half of the layer writer: [`write_tar`] turns a change list and the tree holding
//! the new content into an OCI layer changeset (image-spec `layer.md`), streaming each
//! regular file from disk. It owns the archive's bytes: entry order, header encoding, PAX
//! records, whiteouts and hardlinks. It must not compress, hash or invent changes.
//!
//! Determinism: entries are sorted by path bytes (a parent sorts before its children, since
//! it is their prefix); headers are USTAR with numeric ids only (empty uname/gname), seconds
//! mtimes clamped to `SOURCE_DATE_EPOCH`, no atime/ctime; PAX records (in a fixed order, and
//! xattrs sorted by name) only where USTAR cannot hold a value, as Go's `archive/tar` does for
//! BuildKit and Docker; the archive ends with two zero blocks (1024 bytes, as Go writes).
//!
//! Parent directories are not invented: the caller lists what changed. containerd's
//! `archive.WriteDiff`, which BuildKit uses, does add missing parents of each entry
//! (`changeWriter.includeParents`); moby's `ExportChanges` does not, relying on the overlay
//! walk to report modified parents as changes — which is what rbuild's snapshotters do.
//!
//! Whiteouts are empty regular files, mode 0, owner 0:0, mtime `SOURCE_DATE_EPOCH` or 0
//! (containerd writes the same shape with its own fixed time). Xattrs used by overlayfs
//! itself (`trusted.overlay.*`, `user.overlay.*`) describe the upper directory, not the
//! content, and are left out. Sockets cannot be stored in tar; they are skipped and counted,
//! as moby does (`addTarFile` logs and continues).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags, Stat};

use super::error::LayerError;
use crate::snapshot::change::{Change, ChangeKind};

const BLOCK: usize = 512;
const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";
/// Largest value of an 8-byte and a 12-byte octal USTAR field.
const MAX_OCTAL_8: u64 = 0o7_777_777;
const MAX_OCTAL_12: u64 = 0o77_777_777_777;
const COPY_BUFFER: usize = 128 * 1024;

/// What to write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TarOptions {
    /// Clamp every mtime to this (never later); whiteouts get it as their mtime.
    pub(crate) source_date_epoch: Option<i64>,
}

/// What was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TarStats {
    /// Archive entries, whiteouts included (PAX extension headers not counted).
    pub(crate) entries: u64,
    /// Entries written as hardlinks to an earlier entry.
    pub(crate) hardlinks: u64,
    /// Whiteouts and opaque markers.
    pub(crate) whiteouts: u64,
    /// Sockets left out (tar cannot hold them).
    pub(crate) skipped_sockets: u64,
    /// Bytes of the archive.
    pub(crate) size: u64,
}

/// What one archive entry is, before encoding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Meta {
    /// Archive path, without a trailing `/` (added for directories when encoding).
    path: String,
    kind: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: i64,
    link: String,
    dev: (u32, u32),
    xattrs: Vec<(String, Vec<u8>)>,
}

/// What to emit for one sorted archive path.
enum Item<'a> {
    /// An entry read from the tree; `true` when it must be a directory (an opaque one).
    Tree(&'a str, bool),
    /// A `.wh.` file or an opaque marker.
    Whiteout,
}

/// Write the tar changeset for `changes` (content read from `root`) to `out`.
pub fn write_tar(
    root: &Path,
    changes: &[Change],
    opts: &TarOptions,
    out: impl Write,
) -> Result<TarStats, LayerError> {
    write_tar_dirs(&[("", root, changes)], opts, out)
}

/// Several trees in one archive, each `(dir, root, changes)` under the directory `dir`
/// (with an entry of its own, 0755 root; `""` puts it at the top), as a multi-platform
/// `type=tar` output holds one root filesystem per platform (`linux_amd64/`, ...).
pub(crate) fn write_tar_dirs(
    parts: &[(&str, &Path, &[Change])],
    opts: &TarOptions,
    out: impl Write,
) -> Result<TarStats, LayerError> {
    let mut w = TarWriter {
        out: Counting { inner: out, n: 0 },
        stats: TarStats::default(),
        links: HashMap::new(),
        opts,
        buf: vec![0; COPY_BUFFER],
        prefix: String::new(),
    };
    for (dir, root, changes) in parts {
        let items = plan(changes)?;
        w.prefix = String::new();
        w.links.clear();
        if !dir.is_empty() {
            check_path(dir)?;
            let meta = Meta {
                path: dir.to_string(),
                kind: b'5',
                mode: 0o755,
                mtime: opts.source_date_epoch.unwrap_or(0),
                ..Meta::default()
            };
            w.write(dir, &encode(&meta))?;
            w.stats.entries += 1;
            w.prefix = format!("{dir}/");
        }
        for (path, item) in &items {
            match item {
                Item::Tree(rel, is_dir) => w.tree_entry(root, path, rel, *is_dir)?,
                Item::Whiteout => w.whiteout(path)?,
            }
        }
    }
    w.out
        .write_all(&[0; 2 * BLOCK])
        .and_then(|()| w.out.flush())
        .map_err(|source| LayerError::WriteArchive {
            path: "end-of-archive".into(),
            source,
        })?;
    w.stats.size = w.out.n;
    Ok(w.stats)
}

/// Validate the changes and sort what they become by archive path.
fn plan(changes: &[Change]) -> Result<Vec<(String, Item<'_>)>, LayerError> {
    let mut items = Vec::with_capacity(changes.len() + 1);
    for c in changes {
        check_path(&c.path)?;
        match c.kind {
            ChangeKind::Upsert => items.push((c.path.clone(), Item::Tree(&c.path, false))),
            ChangeKind::Opaque => {
                items.push((c.path.clone(), Item::Tree(&c.path, true)));
                items.push((format!("{}/{OPAQUE}", c.path), Item::Whiteout));
            }
            ChangeKind::Delete => {
                let name = match c.path.rsplit_once('/') {
                    Some((dir, base)) => format!("{dir}/{WHITEOUT}{base}"),
                    None => format!("{WHITEOUT}{}", c.path),
                };
                items.push((name, Item::Whiteout));
            }
        }
    }
    items.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    if let Some(dup) = items.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(LayerError::DuplicateChange {
            path: dup[0].0.clone(),
        });
    }
    Ok(items)
}

/// The change-list contract (`snapshot::change`): relative, `/`-separated, no `.`/`..` or
/// empty components; and no name that a reader would take for a whiteout.
fn check_path(path: &str) -> Result<(), LayerError> {
    let bad = |reason| {
        Err(LayerError::BadChange {
            path: path.to_string(),
            reason,
        })
    };
    if path.is_empty() {
        return bad("the path is empty");
    }
    if path.contains('\0') {
        return bad("the path contains a NUL byte");
    }
    for part in path.split('/') {
        match part {
            "" if path.starts_with('/') => return bad("the path is absolute"),
            "" => return bad("the path has an empty component"),
            "." | ".." => return bad("the path has a `.` or `..` component"),
            p if p.starts_with(WHITEOUT) => {
                return bad("a name starting with `.wh.` would be read as a whiteout");
            }
            _ => {}
        }
    }
    Ok(())
}

struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct TarWriter<'o, W> {
    out: Counting<W>,
    stats: TarStats,
    /// (dev, ino) of multiply-linked inodes already written → their archive path.
    links: HashMap<(u64, u64), String>,
    opts: &'o TarOptions,
    buf: Vec<u8>,
    /// Put before every archive path (`linux_amd64/`): see [`write_tar_dirs`].
    prefix: String,
}

impl<W: Write> TarWriter<'_, W> {
    fn write(&mut self, path: &str, bytes: &[u8]) -> Result<(), LayerError> {
        self.out
            .write_all(bytes)
            .map_err(|source| LayerError::WriteArchive {
                path: path.to_string(),
                source,
            })
    }

    fn whiteout(&mut self, path: &str) -> Result<(), LayerError> {
        let meta = Meta {
            path: format!("{}{path}", self.prefix),
            kind: b'0',
            mtime: self.opts.source_date_epoch.unwrap_or(0),
            ..Meta::default()
        };
        self.write(path, &encode(&meta))?;
        self.stats.entries += 1;
        self.stats.whiteouts += 1;
        Ok(())
    }

    fn tree_entry(
        &mut self,
        root: &Path,
        path: &str,
        rel: &str,
        must_be_dir: bool,
    ) -> Result<(), LayerError> {
        let full = root.join(rel);
        let st = rustix::fs::lstat(&full).map_err(|e| LayerError::Stat {
            path: full.clone(),
            source: e.into(),
        })?;
        let ft = FileType::from_raw_mode(st.st_mode);
        if must_be_dir && ft != FileType::Directory {
            return Err(LayerError::OpaqueNotDirectory { path: full });
        }
        let mtime = match self.opts.source_date_epoch {
            Some(epoch) => st.st_mtime.min(epoch),
            None => st.st_mtime,
        };
        let mut meta = Meta {
            path: format!("{}{path}", self.prefix),
            mode: st.st_mode & 0o7777,
            uid: st.st_uid.into(),
            gid: st.st_gid.into(),
            mtime,
            ..Meta::default()
        };
        if ft != FileType::Directory && st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key) {
                meta.kind = b'1';
                meta.link = first.clone();
                self.write(path, &encode(&meta))?;
                self.stats.entries += 1;
                self.stats.hardlinks += 1;
                return Ok(());
            }
            self.links.insert(key, meta.path.clone());
        }
        meta.xattrs = read_xattrs(&full)?;
        match ft {
            FileType::Directory => meta.kind = b'5',
            FileType::Symlink => {
                meta.kind = b'2';
                let target =
                    rustix::fs::readlink(&full, Vec::new()).map_err(|e| LayerError::ReadLink {
                        path: full.clone(),
                        source: e.into(),
                    })?;
                // Not UTF-8 in a `String` change list is impossible for the path, but a
                // target may be any bytes; keep them all (lossless through PAX).
                meta.link = String::from_utf8_lossy(target.as_bytes()).into_owned();
                if meta.link.as_bytes() != target.as_bytes() {
                    return Err(LayerError::ReadLink {
                        path: full,
                        source: io::Error::new(
                            io::ErrorKind::InvalidData,
                            "the symlink target is not UTF-8",
                        ),
                    });
                }
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                meta.kind = match ft {
                    FileType::CharacterDevice => b'3',
                    FileType::BlockDevice => b'4',
                    _ => b'6',
                };
                if ft != FileType::Fifo {
                    meta.dev = (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
                }
            }
            FileType::RegularFile => return self.regular(&full, meta, &st),
            _ => {
                self.stats.skipped_sockets += 1;
                return Ok(());
            }
        }
        self.write(path, &encode(&meta))?;
        self.stats.entries += 1;
        Ok(())
    }

    /// A regular file: header, exactly `st_size` bytes streamed from disk, padding.
    fn regular(&mut self, full: &Path, mut meta: Meta, lst: &Stat) -> Result<(), LayerError> {
        let fd = rustix::fs::open(
            full,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        )
        .map_err(|e| LayerError::OpenFile {
            path: full.to_path_buf(),
            source: e.into(),
        })?;
        let st = rustix::fs::fstat(&fd).map_err(|e| LayerError::Stat {
            path: full.to_path_buf(),
            source: e.into(),
        })?;
        if (st.st_dev, st.st_ino) != (lst.st_dev, lst.st_ino) {
            return Err(LayerError::FileChanged {
                path: full.to_path_buf(),
                what: "it was replaced between stat and open".into(),
            });
        }
        meta.kind = b'0';
        meta.size = st.st_size as u64;
        let path = meta.path.clone();
        self.write(&path, &encode(&meta))?;
        let mut file = std::fs::File::from(fd);
        let mut left = meta.size;
        let read_err = |source| LayerError::ReadFile {
            path: full.to_path_buf(),
            source,
        };
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = match file.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(LayerError::FileChanged {
                        path: full.to_path_buf(),
                        what: format!("it shrank by {left} bytes"),
                    });
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_err(e)),
            };
            self.out
                .write_all(&self.buf[..n])
                .map_err(|source| LayerError::WriteArchive {
                    path: path.clone(),
                    source,
                })?;
            left -= n as u64;
        }
        if file.read(&mut self.buf[..1]).map_err(read_err)? != 0 {
            return Err(LayerError::FileChanged {
                path: full.to_path_buf(),
                what: "it grew".into(),
            });
        }
        let pad = (BLOCK - (meta.size % BLOCK as u64) as usize) % BLOCK;
        self.write(&path, &[0; BLOCK][..pad])?;
        self.stats.entries += 1;
        Ok(())
    }
}

/// Extended attributes of `path` itself (not a symlink's target), sorted by name, without
/// overlayfs's own.
fn read_xattrs(path: &Path) -> Result<Vec<(String, Vec<u8>)>, LayerError> {
    let all = crate::snapshot::diff::xattrs(path).map_err(|source| LayerError::ReadXattrs {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(all
        .into_iter()
        // PAX keys are UTF-8; a name that is not cannot be written as one.
        .filter_map(|(name, value)| String::from_utf8(name).ok().map(|n| (n, value)))
        .filter(|(name, _)| !crate::snapshot::diff::is_overlay_private_xattr(name))
        .collect())
}

/// One entry's header blocks: an optional PAX extended header (type `x`) and the USTAR one.
fn encode(m: &Meta) -> Vec<u8> {
    let mut name = m.path.clone();
    if m.kind == b'5' {
        name.push('/');
    }
    let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
    let split = ustar_name(&name);
    if split.is_none() {
        pax.push(("path".into(), name.clone().into_bytes()));
    }
    if !m.link.is_ascii() || m.link.len() > 100 {
        pax.push(("linkpath".into(), m.link.clone().into_bytes()));
    }
    let size = big(&mut pax, "size", m.size, MAX_OCTAL_12);
    let uid = big(&mut pax, "uid", m.uid, MAX_OCTAL_8);
    let gid = big(&mut pax, "gid", m.gid, MAX_OCTAL_8);
    let mtime = match u64::try_from(m.mtime) {
        Ok(t) if t <= MAX_OCTAL_12 => t,
        _ => {
            pax.push(("mtime".into(), m.mtime.to_string().into_bytes()));
            0
        }
    };
    for (k, v) in &m.xattrs {
        pax.push((format!("SCHILY.xattr.{k}"), v.clone()));
    }

    let mut out = Vec::with_capacity(3 * BLOCK);
    if !pax.is_empty() {
        let mut body = Vec::new();
        for (k, v) in &pax {
            body.extend_from_slice(&pax_record(k, v));
        }
        let base = name.trim_end_matches('/').rsplit('/').next().unwrap_or("");
        let mut pax_name = format!("PaxHeaders.0/{base}").into_bytes();
        pax_name.truncate(100);
        let h = ustar(
            &pax_name,
            &[],
            b'x',
            0o644,
            0,
            0,
            body.len() as u64,
            0,
            "",
            (0, 0),
        );
        out.extend_from_slice(&h);
        out.extend_from_slice(&body);
        out.resize(out.len().next_multiple_of(BLOCK), 0);
    }
    let (prefix, short) = split.unwrap_or((&[], &name.as_bytes()[..name.len().min(100)]));
    let link = if m.link.is_ascii() && m.link.len() <= 100 {
        m.link.as_str()
    } else {
        ""
    };
    out.extend_from_slice(&ustar(
        short, prefix, m.kind, m.mode, uid, gid, size, mtime, link, m.dev,
    ));
    out
}

/// `value` for a numeric field, or 0 plus a PAX record when it does not fit.
fn big(pax: &mut Vec<(String, Vec<u8>)>, key: &str, value: u64, max: u64) -> u64 {
    if value <= max {
        value
    } else {
        pax.push((key.into(), value.to_string().into_bytes()));
        0
    }
}

/// Split an ASCII name into USTAR (prefix, name): name ≤ 100 bytes, prefix ≤ 155 split at
/// a `/`. `None` when it cannot be stored (then it goes in a PAX `path` record).
fn ustar_name(name: &str) -> Option<(&[u8], &[u8])> {
    if !name.is_ascii() {
        return None;
    }
    let b = name.as_bytes();
    if b.len() <= 100 {
        return Some((&[], b));
    }
    // The name part must not be empty; a trailing `/` of a directory stays in it.
    let body = &b[..b.len() - 1];
    let i = body
        .iter()
        .enumerate()
        .filter(|(i, c)| **c == b'/' && *i <= 155 && b.len() - i - 1 <= 100)
        .map(|(i, _)| i)
        .next()?;
    Some((&b[..i], &b[i + 1..]))
}

/// A PAX record: `"<len> <key>=<value>\n"`, where `<len>` counts the whole record, itself
/// included (POSIX `pax` "extended header").
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// One USTAR header block (POSIX `ustar` format), every numeric field octal.
#[allow(clippy::too_many_arguments)]
fn ustar(
    name: &[u8],
    prefix: &[u8],
    kind: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    link: &str,
    dev: (u32, u32),
) -> [u8; BLOCK] {
    fn octal(field: &mut [u8], v: u64) {
        let s = format!("{v:0width$o}", width = field.len() - 1);
        field[..s.len()].copy_from_slice(s.as_bytes());
        field[s.len()] = 0;
    }
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name);
    octal(&mut h[100..108], mode.into());
    octal(&mut h[108..116], uid);
    octal(&mut h[116..124], gid);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime);
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    if matches!(kind, b'3' | b'4') {
        octal(&mut h[329..337], dev.0.into());
        octal(&mut h[337..345], dev.1.into());
    }
    h[345..345 + prefix.len()].copy_from_slice(prefix);
    // The checksum is computed with its own field as eight spaces (POSIX `ustar`).
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `name: path => Ok | Err,` for the change-path contract.
    macro_rules! paths {
        ($($name:ident: $path:expr => $ok:expr;)*) => {$(
            #[test]
            fn $name() {
                let got = check_path($path);
                assert_eq!(got.is_ok(), $ok, "{:?}: {got:?}", $path);
                if let Err(e) = got {
                    assert!(e.to_string().contains(&format!("{:?}", $path)), "{e}");
                }
            }
        )*};
    }

    paths! {
        path_plain: "a/b/c" => true;
        path_dotfile: "a/.profile" => true;
        path_empty: "" => false;
        path_absolute: "/etc" => false;
        path_dotdot: "a/../b" => false;
        path_dot: "./a" => false;
        path_double_slash: "a//b" => false;
        path_trailing_slash: "a/" => false;
        path_whiteout_name: "a/.wh.b" => false;
        path_nul: "a\0b" => false;
    }

    /// `name: key, value => the exact record`.
    macro_rules! records {
        ($($name:ident: $key:expr, $value:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(pax_record($key, $value), $want.as_bytes());
            }
        )*};
    }

    records! {
        record_short: "uid", b"3000000" => "15 uid=3000000\n";
        // 9 + 91 = 100 bytes: the length itself grows from 2 to 3 digits.
        record_length_rolls_over: "path", &[b'a'; 91] => format!("101 path={}\n", "a".repeat(91));
        record_just_below: "path", &[b'a'; 90] => format!("99 path={}\n", "a".repeat(90));
        // Values may hold any byte, newlines too: the length, not the newline, delimits.
        record_binary_value: "SCHILY.xattr.user.x", b"a\nb" => "27 SCHILY.xattr.user.x=a\nb\n";
    }

    /// `name: archive name => (prefix, name) or None`.
    macro_rules! splits {
        ($($name:ident: $input:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                let input: String = $input;
                let want: Option<(String, String)> = $want;
                let got = ustar_name(&input).map(|(p, n)| {
                    (String::from_utf8(p.to_vec()).unwrap(), String::from_utf8(n.to_vec()).unwrap())
                });
                assert_eq!(got, want);
            }
        )*};
    }

    splits! {
        split_short: "a/b".into() => Some(("".into(), "a/b".into()));
        split_exactly_100: "x".repeat(100) => Some(("".into(), "x".repeat(100)));
        split_long: format!("{}/{}", "d".repeat(120), "f".repeat(50))
            => Some(("d".repeat(120), "f".repeat(50)));
        split_no_slash: "x".repeat(101) => None;
        split_name_too_long: format!("d/{}", "f".repeat(101)) => None;
        split_non_ascii: "é".into() => None;
        split_long_dir: format!("{}/{}/", "d".repeat(120), "e".repeat(99))
            => Some(("d".repeat(120), format!("{}/", "e".repeat(99))));
    }

    /// Each encoded header must parse back with the `tar` crate to the same fields.
    macro_rules! encodes {
        ($($name:ident: $meta:expr;)*) => {$(
            #[test]
            fn $name() {
                let m: Meta = $meta;
                let mut bytes = encode(&m);
                bytes.resize(bytes.len() + m.size.min(4096) as usize, 0);
                bytes.resize(bytes.len() + 2 * BLOCK, 0);
                let mut ar = ::tar::Archive::new(&bytes[..]);
                let mut entries = ar.entries().unwrap();
                let mut e = entries.next().unwrap().unwrap();
                let path = String::from_utf8(e.path_bytes().to_vec()).unwrap();
                assert_eq!(path.trim_end_matches('/'), m.path);
                let h = e.header().clone();
                assert_eq!(h.entry_type().as_byte(), m.kind);
                assert_eq!(h.mode().unwrap(), m.mode);
                assert_eq!(h.mtime().unwrap() as i64, m.mtime.max(0));
                assert_eq!(e.size(), m.size);
                if !m.link.is_empty() {
                    let link = e.link_name_bytes().unwrap();
                    assert_eq!(String::from_utf8_lossy(&link), m.link);
                }
                let mut xattrs = Vec::new();
                for ext in e.pax_extensions().unwrap().into_iter().flatten() {
                    let ext = ext.unwrap();
                    if let Some(k) = ext.key().unwrap().strip_prefix("SCHILY.xattr.") {
                        xattrs.push((k.to_string(), ext.value_bytes().to_vec()));
                    }
                    if ext.key().unwrap() == "uid" {
                        assert_eq!(ext.value().unwrap(), m.uid.to_string());
                    }
                }
                assert_eq!(xattrs, m.xattrs);
                if m.uid <= MAX_OCTAL_8 {
                    assert_eq!(h.uid().unwrap(), m.uid);
                }
            }
        )*};
    }

    fn meta(path: &str, kind: u8) -> Meta {
        Meta {
            path: path.into(),
            kind,
            mode: 0o644,
            mtime: 1_700_000_000,
            ..Meta::default()
        }
    }

    encodes! {
        encode_file: Meta { size: 10, ..meta("etc/passwd", b'0') };
        encode_dir: Meta { mode: 0o1777, ..meta("tmp", b'5') };
        encode_long_path: meta(&format!("{}/{}", "d".repeat(200), "f".repeat(120)), b'0');
        encode_unicode_path: meta("usr/share/ünïcödé", b'0');
        encode_long_symlink: Meta { link: "t".repeat(300), ..meta("l", b'2') };
        encode_hardlink: Meta { link: "a/first".into(), ..meta("a/second", b'1') };
        encode_big_uid: Meta { uid: 100_000_000, gid: 100_000_000, ..meta("f", b'0') };
        encode_xattrs: Meta {
            xattrs: vec![
                ("security.capability".into(), vec![1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0]),
                // Not a newline: the `tar` crate's reader (0.4.46, `pax.rs`) splits records
                // on b'\n' instead of using their length, so it cannot read such values.
                ("user.note".into(), b"hi there\t\x00\xff".to_vec()),
            ],
            ..meta("bin/ping", b'0')
        };
        encode_device: Meta { dev: (1, 3), mode: 0o666, ..meta("dev/null", b'3') };
    }

    #[test]
    fn header_fields_are_exact() {
        let h = &encode(&meta("a", b'0'))[..BLOCK];
        assert_eq!(&h[100..108], b"0000644\0");
        assert_eq!(&h[257..265], b"ustar\x0000");
        assert!(h[265..329].iter().all(|b| *b == 0), "no uname/gname");
    }

    #[test]
    fn plan_sorts_by_bytes_and_rejects_duplicates() {
        let ch = |p: &str, k| Change {
            path: p.into(),
            kind: k,
        };
        let changes = [
            ch("a/b", ChangeKind::Upsert),
            ch("a.txt", ChangeKind::Delete),
            ch("a", ChangeKind::Opaque),
            ch("B", ChangeKind::Upsert),
        ];
        let items = plan(&changes).unwrap();
        let names: Vec<&str> = items.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(names, [".wh.a.txt", "B", "a", "a/.wh..wh..opq", "a/b"]);
        let dup = [ch("x", ChangeKind::Upsert), ch("x", ChangeKind::Opaque)];
        assert!(matches!(
            plan(&dup),
            Err(LayerError::DuplicateChange { .. })
        ));
    }

    #[test]
    fn an_opaque_change_on_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "not a directory").unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        let opaque = |p: &str| Change {
            path: p.into(),
            kind: ChangeKind::Opaque,
        };
        let got = write_tar(
            dir.path(),
            &[opaque("f")],
            &TarOptions::default(),
            std::io::sink(),
        );
        assert!(
            matches!(got, Err(LayerError::OpaqueNotDirectory { .. })),
            "{got:?}"
        );
        write_tar(
            dir.path(),
            &[opaque("d")],
            &TarOptions::default(),
            std::io::sink(),
        )
        .expect("an opaque directory is fine");
    }
}
