//! Where saved files go: a directory, or a tar stream with deterministic headers (mtime 0,
//! owner 0:0, mode 0644 for files and 0755 for directories), so saving the same images twice
//! gives the same bytes.

use std::io::{self, Read, Write};
use std::path::PathBuf;

pub(crate) trait Sink {
    fn dir(&mut self, path: &str) -> io::Result<()>;
    fn file(&mut self, path: &str, size: u64, data: &mut dyn Read) -> io::Result<()>;
    fn finish(self: Box<Self>) -> io::Result<()>;
}

pub(crate) struct DirSink {
    pub(crate) root: PathBuf,
}

impl Sink for DirSink {
    fn dir(&mut self, path: &str) -> io::Result<()> {
        std::fs::create_dir_all(self.root.join(path))
    }

    fn file(&mut self, path: &str, _size: u64, data: &mut dyn Read) -> io::Result<()> {
        let dest = self.root.join(path);
        let tmp = dest.with_extension("partial");
        let mut f = std::fs::File::create(&tmp)?;
        io::copy(data, &mut f)?;
        f.sync_all()?;
        std::fs::rename(tmp, dest)
    }

    fn finish(self: Box<Self>) -> io::Result<()> {
        Ok(())
    }
}

pub(crate) struct TarSink<W: Write> {
    pub(crate) builder: tar::Builder<W>,
}

impl<W: Write> TarSink<W> {
    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h
    }
}

impl<W: Write> Sink for TarSink<W> {
    fn dir(&mut self, path: &str) -> io::Result<()> {
        let mut h = Self::header(tar::EntryType::Directory, 0o755, 0);
        self.builder
            .append_data(&mut h, format!("{path}/"), io::empty())
    }

    fn file(&mut self, path: &str, size: u64, data: &mut dyn Read) -> io::Result<()> {
        let mut h = Self::header(tar::EntryType::Regular, 0o644, size);
        self.builder.append_data(&mut h, path, data)
    }

    fn finish(self: Box<Self>) -> io::Result<()> {
        self.builder.into_inner()?.flush()
    }
}
