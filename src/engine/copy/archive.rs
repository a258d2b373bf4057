//! ADD of a local archive: recognised by its content, never its name, and unpacked into the
//! destination directory (BuildKit `solver/llbsolver/file/unpack.go` and `unpack_root.go`).
//!
//! Owns: the "is this an archive" test (a gzip, bzip2, xz or zstd stream, or none, whose
//! first tar header reads cleanly, as `isArchivePath` decides) and extraction. Extraction
//! treats the archive as hostile: entry names are cleaned from the extraction root, so a
//! `..` cannot climb out (`../x` lands at `x`, as under `docker build`), and every path, link targets included, is resolved with the
//! extraction directory as `/` through [`Target`], so a symlink in the archive or already in
//! the image never redirects a write outside it (BuildKit refuses a symlink that points out;
//! here it is clamped to the extraction root instead, which writes nothing outside either).
//! Entries keep the archive's owners, even with `--chown` (BuildKit gives that owner only
//! to the destination directory it creates), and their modes and modification times; a path that exists is replaced unless both are directories; missing
//! parents are created 0755, owned by root; device nodes and FIFOs are refused, as upstream.
//! `--chmod` does not apply to archive contents (BuildKit does not pass it to the unpacker).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

use super::error::CopyError;
use super::op::CopyStats;
use super::target::{self, DirAttrs, Target};

/// Whether `file` is a (possibly compressed) tar archive.
pub(super) fn is_archive(file: File) -> bool {
    let Ok(stream) = decompress(BufReader::new(file)) else {
        return false;
    };
    let mut archive = tar::Archive::new(stream);
    let first = archive.entries().ok().and_then(|mut e| e.next());
    matches!(first, Some(Ok(_)))
}

/// The decompressed stream, chosen by magic number as `archiveutil.DecompressStream` does.
fn decompress(mut input: BufReader<File>) -> io::Result<Box<dyn Read>> {
    let head = input.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        Box::new(flate2::read::MultiGzDecoder::new(input))
    } else if head.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(input))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Box::new(liblzma::read::XzDecoder::new_multi_decoder(input))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(input)?)
    } else {
        Box::new(input)
    })
}

/// Unpack `file` (the archive `archive`, for messages) into `root`.
pub(super) fn extract(
    file: File,
    archive: &str,
    root: &Target,
    stats: &mut CopyStats,
) -> Result<(), CopyError> {
    let read = |source| CopyError::ReadArchive {
        archive: archive.to_string(),
        source,
    };
    let mut tar = tar::Archive::new(decompress(BufReader::new(file)).map_err(read)?);
    let implied = DirAttrs {
        mode: 0o755,
        uid: 0,
        gid: 0,
        times: None,
    };
    let mut dir_times: Vec<(String, Timestamps)> = Vec::new();
    for entry in tar.entries().map_err(read)? {
        let mut entry = entry.map_err(read)?;
        // A pax global header (`g`, which `git archive` writes first) describes the archive,
        // not a file: moby's untar ignores it, and so does Docker's ADD.
        if entry.header().entry_type() == tar::EntryType::XGlobalHeader {
            continue;
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(name) = entry_name(&raw) else {
            continue;
        };
        let header = entry.header();
        let kind = header.entry_type();
        // An empty numeric field is 0 for Go's archive/tar; the tar crate calls it an error.
        let uid = header.uid().unwrap_or(0) as u32;
        let gid = header.gid().unwrap_or(0) as u32;
        let mode = header.mode().map_err(read)? & 0o7777;
        let mtime = Timespec {
            tv_sec: header.mtime().map_err(read)? as i64,
            tv_nsec: 0,
        };
        let times = Timestamps {
            last_access: mtime,
            last_modification: mtime,
        };
        let (parent, base) = target::split(&name);
        let parent = root.mkdir_all(parent, &implied, &mut Vec::new())?;
        let dir = root.open_dir(&parent)?;
        let real = target::join(&parent, base);
        let shown = root.show(&real);
        let failed = |step, e: Errno| CopyError::WriteDestination {
            path: shown.clone(),
            step,
            source: e.into(),
        };
        match rustix::fs::statat(&dir, base, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st)
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory && kind.is_dir() => {}
            Ok(_) => target::remove_all(&dir, base, &shown)?,
            Err(Errno::NOENT) => {}
            Err(e) => return Err(failed("stat", e)),
        }
        if kind.is_dir() {
            match rustix::fs::mkdirat(&dir, base, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(failed("mkdir", e)),
            }
            target::set_owner(&dir, base, uid, gid, &shown)?;
            rustix::fs::chmodat(&dir, base, Mode::from_raw_mode(mode), AtFlags::empty())
                .map_err(|e| failed("chmod", e))?;
            dir_times.push((real, times));
            stats.dirs += 1;
        } else if kind.is_file() {
            let fd = rustix::fs::openat(
                &dir,
                base,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .map_err(|e| failed("create", e))?;
            let mut out = File::from(fd);
            stats.bytes +=
                io::copy(&mut entry, &mut out).map_err(|source| CopyError::WriteDestination {
                    path: shown.clone(),
                    step: "write",
                    source,
                })?;
            rustix::fs::fchown(
                &out,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
            )
            .map_err(|e| failed("chown", e))?;
            rustix::fs::fchmod(&out, Mode::from_raw_mode(mode)).map_err(|e| failed("chmod", e))?;
            rustix::fs::futimens(&out, &times).map_err(|e| failed("set times", e))?;
            stats.files += 1;
        } else if kind.is_symlink() {
            let link = entry.link_name_bytes().unwrap_or_default();
            let link = String::from_utf8_lossy(&link).into_owned();
            rustix::fs::symlinkat(link.as_str(), &dir, base).map_err(|e| failed("symlink", e))?;
            target::set_owner(&dir, base, uid, gid, &shown)?;
            target::set_times(&dir, base, &times, &shown)?;
            stats.symlinks += 1;
        } else if kind.is_hard_link() {
            let link = entry.link_name_bytes().unwrap_or_default();
            let link = String::from_utf8_lossy(&link).into_owned();
            let Some(link) = entry_name(&link) else {
                return Err(CopyError::ArchiveEntry {
                    archive: archive.to_string(),
                    entry: raw,
                    reason: "hard link to the extraction root".to_string(),
                });
            };
            let (link_dir, link_base) = target::split(&link);
            let link_dir = root.open_dir(&root.resolve(link_dir)?.real)?;
            rustix::fs::linkat(&link_dir, link_base, &dir, base, AtFlags::empty())
                .map_err(|e| failed("link", e))?;
            stats.hardlinks += 1;
        } else {
            return Err(CopyError::ArchiveEntry {
                archive: archive.to_string(),
                entry: raw,
                reason: format!("unsupported entry type {:?}", kind),
            });
        }
    }
    // Directory times last, deepest first: writing into a directory changes its mtime.
    for (real, times) in dir_times.iter().rev() {
        let (parent, base) = target::split(real);
        target::set_times(root.open_dir(parent)?, base, times, &root.show(real))?;
    }
    stats.archives += 1;
    Ok(())
}

/// An entry's name taken from the extraction root, as BuildKit's untar (run chrooted into
/// the destination) takes it: cleaned as `/` + name, so `../x`, `/x` and `a/../../x` all
/// land at `x` inside the root and nothing climbs out; `None` for the root itself.
fn entry_name(raw: &str) -> Option<String> {
    let name = crate::context::clean(&format!("/{raw}"));
    let name = name.trim_start_matches('/');
    (!name.is_empty()).then(|| name.to_string())
}

#[cfg(test)]
pub(super) mod tests {
    use super::{entry_name, is_archive};
    use std::io::Write;

    /// A small tar with a directory, a file and a symlink.
    pub(crate) fn tar_bytes() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o750);
        h.set_uid(7);
        h.set_gid(8);
        h.set_mtime(1_000_000);
        h.set_size(0);
        b.append_data(&mut h, "d/", std::io::empty()).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o4755);
        h.set_uid(7);
        h.set_gid(8);
        h.set_mtime(2_000_000);
        h.set_size(5);
        b.append_data(&mut h, "d/f", &b"hello"[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_uid(7);
        h.set_gid(8);
        h.set_mode(0o777);
        h.set_size(0);
        h.set_mtime(3_000_000);
        b.append_link(&mut h, "d/l", "f").unwrap();
        b.into_inner().unwrap()
    }

    pub(crate) fn compressed(kind: &str, data: &[u8]) -> Vec<u8> {
        match kind {
            "tar" => data.to_vec(),
            "gz" => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            "bz2" => {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            "xz" => {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            "zst" => zstd::encode_all(data, 1).unwrap(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn archives_are_known_by_content() {
        let tmp = tempfile::tempdir().unwrap();
        for kind in ["tar", "gz", "bz2", "xz", "zst"] {
            // A misleading name on purpose.
            let path = tmp.path().join(format!("{kind}.txt"));
            std::fs::write(&path, compressed(kind, &tar_bytes())).unwrap();
            assert!(is_archive(std::fs::File::open(&path).unwrap()), "{kind}");
            let path = tmp.path().join(format!("plain.{kind}"));
            std::fs::write(&path, compressed(kind, &[b'x'; 2000])).unwrap();
            assert!(!is_archive(std::fs::File::open(&path).unwrap()), "{kind}");
        }
        std::fs::write(tmp.path().join("empty.tar"), b"").unwrap();
        assert!(!is_archive(
            std::fs::File::open(tmp.path().join("empty.tar")).unwrap()
        ));
    }

    #[test]
    fn entry_names_are_taken_from_the_root() {
        assert_eq!(entry_name("/a/./b/"), Some("a/b".into()));
        assert_eq!(entry_name("./"), None);
        assert_eq!(entry_name(".."), None);
        assert_eq!(entry_name("a/../../etc"), Some("etc".into()));
        assert_eq!(entry_name("../up.txt"), Some("up.txt".into()));
    }
}
