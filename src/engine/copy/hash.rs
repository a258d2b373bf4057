//! The cache key of a COPY's inputs: a BLAKE3 digest over exactly the entries the copy
//! would take, in the order it takes them, and a persistent cache of file content hashes so
//! that an unchanged file is never read twice across builds.
//!
//! Owns: the digest's byte format and [`HashCache`]. For every item: its position, the name
//! it was matched by and what it is; for every entry below it: its path relative to the
//! item, type, permission bits, owner (trees only: the context's owners are never copied),
//! symlink target, device number, hard-link group, size and content hash. Modification times
//! are left out on purpose: like BuildKit's content hash (`cache/contenthash`), touching a
//! file does not invalidate the step. Must not write to the destination.
//!
//! The content cache is keyed by the file's host path and trusted only while `(dev, ino,
//! size, mtime, ctime)` are all unchanged. `ctime` cannot be set from user space, so a file
//! rewritten with its size and mtime restored is still noticed. A file changed within the
//! kernel's timestamp granularity after it was hashed would keep the same times ("racy git",
//! git's `Documentation/technical/racy-git.txt`); an entry whose times are that close to the
//! moment it was hashed is therefore hashed again next time.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::error::CopyError;
use super::selection::{Event, Item, What, walk_item};
use super::source::View;
use crate::context::{EntryKind, Matcher};

/// The file name of the cache inside the directory given to [`HashCache::load`].
const FILE_NAME: &str = "copy-hashes.v1";
/// First bytes of the cache file; anything else is ignored and rebuilt.
const MAGIC: &[u8] = b"rbuild copy content hashes v1\n";
/// Closest a file's times may be to the moment it was hashed for the hash to be reused, on
/// filesystems with nanosecond timestamps (which the kernel updates from a clock that ticks
/// every 1-10 ms); filesystems that store whole seconds get two seconds.
const RACY_NS: i128 = 50_000_000;
const RACY_COARSE_NS: i128 = 2_000_000_000;

/// Counters of one [`HashCache`], for progress output and for tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct HashStats {
    /// Files whose cached hash was reused.
    pub(crate) hits: u64,
    /// Files whose content was read.
    pub(crate) files_read: u64,
    pub(crate) bytes_read: u64,
}

/// What a cached hash was computed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cached {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    hashed_at_ns: i128,
    hash: [u8; 32],
}

impl Cached {
    fn identity(meta: &Metadata) -> (u64, u64, u64, i128, i128) {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        (
            meta.dev(),
            meta.ino(),
            meta.size(),
            ns(meta.mtime(), meta.mtime_nsec()),
            ns(meta.ctime(), meta.ctime_nsec()),
        )
    }

    fn reusable_for(&self, meta: &Metadata) -> bool {
        let id = Self::identity(meta);
        if id != (self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns) {
            return false;
        }
        let coarse = self.mtime_ns % 1_000_000_000 == 0 && self.ctime_ns % 1_000_000_000 == 0;
        let margin = if coarse { RACY_COARSE_NS } else { RACY_NS };
        self.mtime_ns.max(self.ctime_ns) + margin < self.hashed_at_ns
    }
}

/// Content hashes of files, kept between builds.
#[derive(Debug, Default)]
pub(crate) struct HashCache {
    /// Where it is saved; `None` for a cache that lives in memory only.
    file: Option<PathBuf>,
    entries: HashMap<PathBuf, Cached>,
    dirty: bool,
    stats: HashStats,
}

impl HashCache {
    /// A cache that is never saved.
    pub(crate) fn in_memory() -> HashCache {
        HashCache::default()
    }

    /// Load the cache kept in `dir` (created on [`HashCache::save`] if missing). A missing,
    /// truncated or foreign file is an empty cache: it only ever saves work.
    pub(crate) fn load(dir: &Path) -> Result<HashCache, CopyError> {
        let path = dir.join(FILE_NAME);
        let mut cache = HashCache {
            file: Some(path.clone()),
            ..HashCache::default()
        };
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(cache),
            Err(source) => return Err(CopyError::LoadHashCache { path, source }),
        };
        let mut input = BufReader::new(file);
        let mut magic = vec![0; MAGIC.len()];
        if input.read_exact(&mut magic).is_err() || magic != MAGIC {
            return Ok(cache);
        }
        while let Ok(Some((key, entry))) = read_record(&mut input) {
            cache.entries.insert(key, entry);
        }
        Ok(cache)
    }

    /// Write the cache back if it changed: to a temporary file in the same directory, then
    /// renamed over the old one, so a crash leaves the old cache or the new, never half.
    pub(crate) fn save(&mut self) -> Result<(), CopyError> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        if !self.dirty {
            return Ok(());
        }
        let failed = |path: &Path, source| CopyError::SaveHashCache {
            path: path.to_path_buf(),
            source,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
        let tmp = dir.join(format!("{FILE_NAME}.tmp-{}", crate::store::unique_suffix()));
        let write = || -> io::Result<()> {
            let mut out = BufWriter::new(File::create(&tmp)?);
            out.write_all(MAGIC)?;
            let mut keys: Vec<&PathBuf> = self.entries.keys().collect();
            keys.sort();
            for key in keys {
                write_record(&mut out, key, &self.entries[key])?;
            }
            out.into_inner().map_err(|e| e.into_error())?.sync_all()
        };
        write().map_err(|e| failed(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| failed(path, e))?;
        self.dirty = false;
        Ok(())
    }

    /// What this cache has done since it was loaded.
    #[cfg(test)]
    pub(crate) fn stats(&self) -> HashStats {
        self.stats
    }

    /// The hash this cache holds for the file at `host` whose `lstat` is `meta`, if it was
    /// computed from exactly this file (same device, inode, size and times). For a copy
    /// right after its key was computed, which rehashed whatever was not trustworthy.
    pub(crate) fn known(&self, host: &Path, meta: &Metadata) -> Option<[u8; 32]> {
        let cached = self.entries.get(host)?;
        let id = Cached::identity(meta);
        (id == (
            cached.dev,
            cached.ino,
            cached.size,
            cached.mtime_ns,
            cached.ctime_ns,
        ))
            .then_some(cached.hash)
    }

    /// The BLAKE3 hash of the content of the file at `host`, whose `lstat` is `meta`, read
    /// through `open` only when no trustworthy cached hash exists.
    fn content_hash(
        &mut self,
        host: &Path,
        meta: &Metadata,
        open: impl FnOnce() -> Result<File, CopyError>,
    ) -> Result<[u8; 32], CopyError> {
        if let Some(cached) = self.entries.get(host)
            && cached.reusable_for(meta)
        {
            self.stats.hits += 1;
            return Ok(cached.hash);
        }
        let started = now_ns();
        let mut file = open()?;
        let mut hasher = blake3::Hasher::new();
        let read = io::copy(&mut file, &mut hasher).map_err(|source| CopyError::ReadSource {
            path: host.to_path_buf(),
            source,
        })?;
        self.stats.files_read += 1;
        self.stats.bytes_read += read;
        let (dev, ino, size, mtime_ns, ctime_ns) = Cached::identity(meta);
        let hash = *hasher.finalize().as_bytes();
        self.entries.insert(
            host.to_path_buf(),
            Cached {
                dev,
                ino,
                size,
                mtime_ns,
                ctime_ns,
                hashed_at_ns: started,
                hash,
            },
        );
        self.dirty = true;
        Ok(hash)
    }
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

fn write_record(out: &mut impl Write, key: &Path, c: &Cached) -> io::Result<()> {
    let key = key.as_os_str().as_bytes();
    out.write_all(&(key.len() as u32).to_le_bytes())?;
    out.write_all(key)?;
    for n in [c.dev, c.ino, c.size] {
        out.write_all(&n.to_le_bytes())?;
    }
    for n in [c.mtime_ns, c.ctime_ns, c.hashed_at_ns] {
        out.write_all(&n.to_le_bytes())?;
    }
    out.write_all(&c.hash)
}

/// One record, `None` at a clean end of file.
fn read_record(input: &mut impl Read) -> io::Result<Option<(PathBuf, Cached)>> {
    let mut len = [0; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut key = vec![0; u32::from_le_bytes(len) as usize];
    input.read_exact(&mut key)?;
    let mut u = [0u64; 3];
    for n in &mut u {
        let mut b = [0; 8];
        input.read_exact(&mut b)?;
        *n = u64::from_le_bytes(b);
    }
    let mut t = [0i128; 3];
    for n in &mut t {
        let mut b = [0; 16];
        input.read_exact(&mut b)?;
        *n = i128::from_le_bytes(b);
    }
    let mut hash = [0; 32];
    input.read_exact(&mut hash)?;
    let key = PathBuf::from(std::ffi::OsStr::from_bytes(&key));
    Ok(Some((
        key,
        Cached {
            dev: u[0],
            ino: u[1],
            size: u[2],
            mtime_ns: t[0],
            ctime_ns: t[1],
            hashed_at_ns: t[2],
            hash,
        },
    )))
}

/// Feeds the digest; every field is tagged and length-prefixed so that no two different
/// selections can produce the same byte stream.
struct Digest<'c> {
    hasher: blake3::Hasher,
    cache: &'c mut HashCache,
    /// Trees copy owners; the context's are always replaced.
    owners: bool,
    /// First path (item index, relative path) of each multiply linked inode.
    links: HashMap<(u64, u64), String>,
}

impl Digest<'_> {
    fn field(&mut self, tag: u8, bytes: &[u8]) {
        self.hasher.update(&[tag]);
        self.hasher.update(&(bytes.len() as u64).to_le_bytes());
        self.hasher.update(bytes);
    }

    fn number(&mut self, tag: u8, n: u64) {
        self.field(tag, &n.to_le_bytes());
    }

    /// One entry: `source_rel` locates it in the source root, `rel` names it in the item.
    fn entry(
        &mut self,
        view: &View,
        item: usize,
        source_rel: &str,
        rel: &str,
        kind: &EntryKind,
        meta: &Metadata,
    ) -> Result<(), CopyError> {
        self.field(b'p', rel.as_bytes());
        self.number(b'm', u64::from(meta.mode() & 0o7777));
        if self.owners {
            self.number(b'u', u64::from(meta.uid()));
            self.number(b'g', u64::from(meta.gid()));
        }
        match kind {
            EntryKind::Dir => self.field(b't', b"dir"),
            EntryKind::Symlink { target } => {
                self.field(b't', b"symlink");
                self.field(b'l', target.as_os_str().as_bytes());
            }
            EntryKind::Other => {
                self.field(b't', b"special");
                self.number(b'T', u64::from(meta.mode() & 0o170000));
                self.number(b'r', meta.rdev());
            }
            EntryKind::File => {
                self.field(b't', b"file");
                if meta.nlink() > 1 {
                    let here = format!("{item}:{rel}");
                    if let Some(first) = self.links.get(&(meta.dev(), meta.ino())) {
                        let first = first.clone();
                        self.field(b'h', first.as_bytes());
                        return Ok(());
                    }
                    self.links.insert((meta.dev(), meta.ino()), here);
                }
                self.number(b's', meta.size());
                let host = view.host_path(source_rel);
                let hash = self
                    .cache
                    .content_hash(&host, meta, || view.open_file(source_rel))?;
                self.field(b'c', &hash);
            }
        }
        Ok(())
    }
}

/// The digest of `items` as [`super::copy`] would take them.
pub(super) fn digest(
    view: &View,
    items: &[Item],
    exclude: Option<&Matcher>,
    cache: &mut HashCache,
) -> Result<blake3::Hash, CopyError> {
    let mut d = Digest {
        hasher: blake3::Hasher::new(),
        cache,
        owners: !view.is_context(),
        links: HashMap::new(),
    };
    d.hasher.update(b"rbuild copy inputs v1\0");
    for (index, item) in items.iter().enumerate() {
        d.number(b'I', index as u64);
        match &item.what {
            What::Inline { name, data } => {
                d.field(b'n', name.as_bytes());
                d.field(b'i', data.as_bytes());
            }
            What::Path {
                real,
                name,
                meta,
                include,
            } => {
                d.field(b'n', name.as_bytes());
                if !meta.is_dir() {
                    let kind = if meta.is_file() {
                        EntryKind::File
                    } else if meta.is_symlink() {
                        EntryKind::Symlink {
                            target: view.read_link(real)?,
                        }
                    } else {
                        EntryKind::Other
                    };
                    d.entry(view, index, real, "", &kind, meta)?;
                    continue;
                }
                d.field(b't', b"dir item");
                walk_item(view, real, include.as_ref(), exclude, &mut |event| {
                    match event {
                        Event::EnterDir(e) | Event::Leaf(e) => {
                            let source = super::target::join(real, &e.rel);
                            d.entry(view, index, &source, &e.rel, &e.kind, &e.meta)?;
                        }
                        Event::LeaveDir => d.field(b'<', b""),
                    }
                    Ok(())
                })?;
            }
        }
    }
    Ok(d.hasher.finalize())
}
