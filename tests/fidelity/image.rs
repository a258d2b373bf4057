//! An image as the corpus compares it: read from a docker-archive (what `docker save` writes
//! and `rbuild build -o type=docker` writes), its layers applied in order to a map of paths
//! (whiteouts, opaque directories and hard links resolved, as an unpacker would), and its
//! config. Nothing is unpacked to disk but the archive's own members; layers are streamed.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// What a path is in the root filesystem: everything the listing compares except times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `f` file, `d` directory, `l` symlink, `c`/`b` device, `p` fifo.
    pub kind: char,
    /// Permission bits with set-id and sticky (`0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub content: Content,
    /// Extended attributes from PAX `SCHILY.xattr.*` records.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    None,
    File { size: u64, sha256: String },
    Link(String),
    Device(u32, u32),
}

/// A root filesystem: absolute, clean paths (`/` itself left out).
pub type Rootfs = BTreeMap<String, Entry>;

/// An image read back: its config and its layers applied one after another.
pub struct Image {
    pub config: Value,
    /// `rootfs.diff_ids` of the config.
    pub diff_ids: Vec<String>,
    /// The layer files, in order, as extracted from the archive.
    layers: Vec<std::path::PathBuf>,
}

impl Image {
    /// Read the docker-archive at `archive`, extracting its members under `scratch`.
    pub fn from_docker_archive(archive: &Path, scratch: &Path) -> Image {
        std::fs::create_dir_all(scratch).unwrap();
        let mut outer = tar::Archive::new(BufReader::new(File::open(archive).unwrap()));
        outer
            .unpack(scratch)
            .unwrap_or_else(|e| panic!("unpack {}: {e}", archive.display()));
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(scratch.join("manifest.json")).unwrap()).unwrap();
        let m = &manifest[0];
        let config: Value = serde_json::from_slice(
            &std::fs::read(scratch.join(m["Config"].as_str().unwrap())).unwrap(),
        )
        .unwrap();
        let layers = m["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| scratch.join(l.as_str().unwrap()))
            .collect();
        let diff_ids = config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| a.iter().map(|d| d.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        Image {
            config,
            diff_ids,
            layers,
        }
    }

    /// The root filesystem after the first `n` layers (all of them with `usize::MAX`).
    pub fn rootfs(&self, n: usize) -> Rootfs {
        apply_layers(&self.layers[..n.min(self.layers.len())])
    }
}

/// The root filesystem the layer files at `paths` make, applied in order.
pub fn apply_layers(paths: &[std::path::PathBuf]) -> Rootfs {
    let mut fs = Rootfs::new();
    for layer in paths {
        apply_layer(&mut fs, &|| open_layer(layer));
    }
    fs
}

/// A layer file, decompressed when it is gzip (docker-archives hold plain tars, but nothing
/// forbids compressed ones).
pub fn open_layer(path: &Path) -> Box<dyn Read> {
    let mut f = BufReader::new(File::open(path).unwrap());
    let mut magic = [0u8; 2];
    let gz = {
        use std::io::BufRead;
        let buf = f.fill_buf().unwrap();
        if buf.len() >= 2 {
            magic.copy_from_slice(&buf[..2]);
        }
        magic == [0x1f, 0x8b]
    };
    if gz {
        Box::new(flate2::read::GzDecoder::new(f))
    } else {
        Box::new(f)
    }
}

/// `./a/b/` or `a/b` → `/a/b`; `.` and `./` → `/`.
fn clean(name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in name.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// Remove `path` and everything under it.
fn remove_tree(fs: &mut Rootfs, path: &str) {
    fs.remove(path);
    remove_children(fs, path);
}

/// Remove everything under `dir`, keeping `dir`.
fn remove_children(fs: &mut Rootfs, dir: &str) {
    let prefix = if dir == "/" {
        "/".to_string()
    } else {
        format!("{dir}/")
    };
    let doomed: Vec<String> = fs
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, _)| k.clone())
        .collect();
    for k in doomed {
        fs.remove(&k);
    }
}

/// Directories a layer names only through their children exist as `0755 0:0`, as an
/// unpacker makes them.
fn ensure_parents(fs: &mut Rootfs, path: &str) {
    let p = parent(path);
    if p == "/" || fs.get(p).is_some_and(|e| e.kind == 'd') {
        return;
    }
    ensure_parents(fs, p);
    fs.insert(
        p.to_string(),
        Entry {
            kind: 'd',
            mode: 0o755,
            uid: 0,
            gid: 0,
            content: Content::None,
            xattrs: BTreeMap::new(),
        },
    );
}

/// Apply one layer, read twice from `open`: its whiteouts first, wherever they are in the
/// tar (they hide only what lower layers have), then its entries in order.
fn apply_layer(fs: &mut Rootfs, open: &dyn Fn() -> Box<dyn Read>) {
    let whiteouts = |path: &str| -> Option<(String, bool)> {
        let name = path.rsplit('/').next().unwrap_or_default();
        if name == ".wh..wh..opq" {
            return Some((parent(path).to_string(), true));
        }
        let hidden = name.strip_prefix(".wh.")?;
        let dir = parent(path);
        let target = if dir == "/" {
            format!("/{hidden}")
        } else {
            format!("{dir}/{hidden}")
        };
        Some((target, false))
    };
    let mut archive = tar::Archive::new(open());
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let path = clean(&String::from_utf8_lossy(&entry.path_bytes()));
        match whiteouts(&path) {
            Some((dir, true)) => remove_children(fs, &dir),
            Some((target, false)) => remove_tree(fs, &target),
            None => {}
        }
    }
    let mut archive = tar::Archive::new(open());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = clean(&String::from_utf8_lossy(&entry.path_bytes()));
        if path == "/" || whiteouts(&path).is_some() {
            continue;
        }
        let header = entry.header().clone();
        let xattrs = xattrs_of(&mut entry);
        let mode = header.mode().unwrap() & 0o7777;
        let uid = header.uid().unwrap();
        let gid = header.gid().unwrap();
        let kind = header.entry_type();
        let new = if kind.is_hard_link() {
            let target = clean(&String::from_utf8_lossy(
                &entry.link_name_bytes().expect("hard link target"),
            ));
            let Some(linked) = fs.get(&target).cloned() else {
                panic!("hard link {path} to {target}, which the layer has not written");
            };
            linked
        } else {
            let (kind, content) = if kind.is_dir() {
                ('d', Content::None)
            } else if kind.is_symlink() {
                let target = String::from_utf8_lossy(&entry.link_name_bytes().unwrap_or_default())
                    .into_owned();
                ('l', Content::Link(target))
            } else if kind.is_character_special() || kind.is_block_special() {
                let c = if kind.is_character_special() {
                    'c'
                } else {
                    'b'
                };
                let dev = Content::Device(
                    header.device_major().unwrap().unwrap_or(0),
                    header.device_minor().unwrap().unwrap_or(0),
                );
                (c, dev)
            } else if kind.is_fifo() {
                ('p', Content::None)
            } else {
                let mut hasher = Sha256::new();
                let mut size = 0u64;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = entry.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    size += n as u64;
                }
                let sha256 = hex(&hasher.finalize());
                ('f', Content::File { size, sha256 })
            };
            Entry {
                kind,
                mode,
                uid,
                gid,
                content,
                xattrs,
            }
        };
        if new.kind != 'd' || fs.get(&path).is_some_and(|e| e.kind != 'd') {
            remove_children(fs, &path);
        }
        ensure_parents(fs, &path);
        fs.insert(path, new);
    }
}

fn xattrs_of<R: Read>(entry: &mut tar::Entry<R>) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    if let Ok(Some(exts)) = entry.pax_extensions() {
        for ext in exts.flatten() {
            if let Ok(key) = ext.key()
                && let Some(name) = key.strip_prefix("SCHILY.xattr.")
            {
                out.insert(name.to_string(), ext.value_bytes().to_vec());
            }
        }
    }
    out
}

pub use crate::common::busybox_image::hex;

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_size(if kind.is_file() { data.len() as u64 } else { 0 });
            if kind.is_hard_link() || kind.is_symlink() {
                h.set_link_name(std::str::from_utf8(data).unwrap()).unwrap();
            }
            h.set_cksum();
            let body: &[u8] = if kind.is_file() { data } else { &[] };
            b.append_data(&mut h, name, body).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn whiteouts_opaque_dirs_and_hard_links_apply_as_an_unpacker_would() {
        use tar::EntryType::{Directory as D, Link as H, Regular as F};
        let mut fs = Rootfs::new();
        let one = layer(&[
            ("a/", D, b""),
            ("a/x", F, b"x"),
            ("a/y", F, b"y"),
            ("b/", D, b""),
            ("b/z", F, b"z"),
            ("c/deep/f", F, b"f"),
        ]);
        apply_layer(&mut fs, &|| Box::new(std::io::Cursor::new(one.clone())));
        assert_eq!(fs["/c"].mode, 0o755, "implicit parent");
        // The opaque marker after an entry of its own layer hides only the lower layers'.
        let two = layer(&[
            ("a/-new", F, b"n"),
            ("a/.wh..wh..opq", F, b""),
            ("a/new", F, b"n"),
            ("b/.wh.z", F, b""),
            ("c", F, b"now a file"),
            ("h", H, b"a/new"),
        ]);
        apply_layer(&mut fs, &|| Box::new(std::io::Cursor::new(two.clone())));
        let paths: Vec<&str> = fs.keys().map(|k| k.as_str()).collect();
        assert_eq!(paths, ["/a", "/a/-new", "/a/new", "/b", "/c", "/h"]);
        assert_eq!(fs["/h"].content, fs["/a/new"].content);
    }
}
