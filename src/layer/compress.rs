//! Layer compression as an `io::Write` adapter: [`Compressor`] takes the uncompressed tar and
//! writes `none`, gzip or zstd to the writer below it, in one pass. It owns the bytes of the
//! compressed stream and must produce the same bytes for the same input whatever the thread
//! count; it never opens files, never hashes (the caller stacks digesters around it) and
//! never holds more than O(threads × block) of the layer in memory.
//!
//! gzip is a pigz-style parallel deflate: the input is cut into 128 KiB blocks (pigz's
//! default `-b 128`), each block is deflated on its own with the previous 32 KiB of input as
//! its dictionary, and every block but the last ends with a sync flush (an empty stored
//! block, RFC 1951 §3.2.4), so the outputs concatenate into one valid deflate stream. Each
//! block's output is a function of (level, dictionary, block, last) only, so the result is the
//! same for 1 thread or 64. The CRC-32 runs sequentially on the input as it passes (crc32fast
//! is SIMD and far cheaper than deflate). Threads = 1 compresses inline with the same
//! function. The header is fixed: no name, mtime 0, OS 255 "unknown" and XFL as Go's
//! `compress/gzip` writes them (what BuildKit and Docker emit without pigz).
//!
//! zstd is libzstd's multithreaded encoder (`ZSTD_c_nbWorkers`). Its output does not depend
//! on the worker count once that is ≥ 1: jobs are cut at sizes derived from the parameters,
//! not from the workers (`zstd_same_for_all_worker_counts` checks 1, 2 and 4 workers on
//! 24 MiB, several jobs). Single-threaded mode (`nbWorkers = 0`) gives other bytes (measured
//! with the zstd 1.5 CLI on 30 MB: `--single-thread` differs, `-T1` and `-T2` agree), so we
//! always ask for at least one worker, even for `threads = 1`.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, FlushCompress, Status};

use crate::oci::media_type::Compression;

/// Input bytes per parallel deflate block (pigz `-b 128`).
pub(crate) const GZIP_BLOCK: usize = 128 * 1024;
/// The deflate window: each block is primed with this much of the input before it.
const WINDOW: usize = 32 * 1024;
/// gzip header OS byte: 255, "unknown", as Go's `compress/gzip` writes it.
pub(crate) const GZIP_OS: u8 = 255;
/// zstd's job size for multithreaded compression (see `Compressor::new`).
pub(crate) const ZSTD_JOB_SIZE: u32 = 4 << 20;

/// Default levels: gzip 6 (gzip's and pigz's default), zstd 3 (zstd's).
pub(crate) const DEFAULT_GZIP_LEVEL: i32 = 6;
pub(crate) const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// A compressing writer over `W`. Call [`Compressor::finish`] to write the trailer and get
/// `W` back; dropping it unfinished leaves a truncated stream.
pub(crate) enum Compressor<W: Write> {
    None(W),
    Gzip(Box<ParallelGzip<W>>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Compressor<W> {
    /// `level` None means the default of the algorithm; `threads` is clamped to ≥ 1.
    pub(crate) fn new(
        out: W,
        compression: Compression,
        level: Option<i32>,
        threads: usize,
    ) -> io::Result<Compressor<W>> {
        let threads = threads.max(1);
        Ok(match compression {
            Compression::None => Compressor::None(out),
            Compression::Gzip => {
                let level = level.unwrap_or(DEFAULT_GZIP_LEVEL);
                if !(0..=9).contains(&level) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("gzip level {level} is not in 0..=9"),
                    ));
                }
                Compressor::Gzip(Box::new(ParallelGzip::new(out, level as u32, threads)?))
            }
            Compression::Zstd => {
                let level = level.unwrap_or(DEFAULT_ZSTD_LEVEL);
                let mut enc = zstd::stream::write::Encoder::new(out, level)?;
                enc.multithread(threads as u32)?;
                // Each worker buffers a job plus its window; zstd's default job size makes a
                // 2-worker encode peak above 100 MiB. 4 MiB jobs keep it small. Part of the
                // output format: changing it changes every zstd layer digest.
                enc.set_parameter(zstd::zstd_safe::CParameter::JobSize(ZSTD_JOB_SIZE))?;
                Compressor::Zstd(enc)
            }
        })
    }

    /// Flush everything, write the trailer, and hand back the inner writer.
    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            Compressor::None(w) => Ok(w),
            Compressor::Gzip(g) => g.finish(),
            Compressor::Zstd(z) => z.finish(),
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::None(w) => w.write(buf),
            Compressor::Gzip(g) => g.write(buf),
            Compressor::Zstd(z) => z.write(buf),
        }
    }

    /// Passes through to the inner writer only: a sync flush mid-stream would change the
    /// compressed bytes, so flushing never touches the compressor state.
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::None(w) => w.flush(),
            Compressor::Gzip(g) => g.out.flush(),
            Compressor::Zstd(z) => z.get_mut().flush(),
        }
    }
}

/// One block of work for the deflate pool.
struct Job {
    dict: Vec<u8>,
    data: Vec<u8>,
    last: bool,
    reply: SyncSender<io::Result<Vec<u8>>>,
}

/// Worker threads that deflate blocks; joined on drop.
struct Pool {
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    fn new(threads: usize, level: u32) -> io::Result<Pool> {
        let (tx, rx) = sync_channel::<Job>(threads);
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let handle = std::thread::Builder::new()
                .name(format!("rbuild-gzip-{i}"))
                .spawn(move || {
                    loop {
                        // A poisoned lock means a sibling panicked: stop too.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        let out = deflate_block(level, &job.dict, &job.data, job.last);
                        // The writer may have given up (error or drop): nobody to tell.
                        let _ = job.reply.send(out);
                    }
                })?;
            workers.push(handle);
        }
        Ok(Pool {
            jobs: Some(tx),
            workers,
        })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// How blocks get deflated: inline (threads = 1) or by a pool.
enum Engine {
    Inline(u32),
    Pool {
        pool: Pool,
        pending: VecDeque<Receiver<io::Result<Vec<u8>>>>,
        max_pending: usize,
    },
}

/// pigz-style gzip writer; see the module comment for the format.
pub(crate) struct ParallelGzip<W: Write> {
    out: W,
    crc: crc32fast::Hasher,
    size: u64,
    block: Vec<u8>,
    /// The last [`WINDOW`] bytes of input before `block`.
    dict: Vec<u8>,
    engine: Engine,
}

impl<W: Write> ParallelGzip<W> {
    /// Write the gzip header and start `threads` workers (none for 1).
    pub(crate) fn new(mut out: W, level: u32, threads: usize) -> io::Result<ParallelGzip<W>> {
        out.write_all(&gzip_header(level))?;
        let engine = if threads <= 1 {
            Engine::Inline(level)
        } else {
            Engine::Pool {
                pool: Pool::new(threads, level)?,
                pending: VecDeque::new(),
                // Two blocks per worker keeps every worker busy while the writer drains.
                max_pending: threads * 2,
            }
        };
        Ok(ParallelGzip {
            out,
            crc: crc32fast::Hasher::new(),
            size: 0,
            block: Vec::with_capacity(GZIP_BLOCK),
            dict: Vec::with_capacity(WINDOW),
            engine,
        })
    }

    /// Hand the full (or final) block to the engine; write whatever is ready, in order.
    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(GZIP_BLOCK));
        let dict = std::mem::take(&mut self.dict);
        // The next block's dictionary: the last 32 KiB of input, which may reach back
        // into this block's dictionary when the block is short (only the final one is).
        let mut next = Vec::with_capacity(WINDOW);
        if data.len() < WINDOW {
            next.extend_from_slice(&dict[dict.len().saturating_sub(WINDOW - data.len())..]);
        }
        next.extend_from_slice(&data[data.len().saturating_sub(WINDOW)..]);
        self.dict = next;
        match &mut self.engine {
            Engine::Inline(level) => {
                let out = deflate_block(*level, &dict, &data, last)?;
                self.out.write_all(&out)
            }
            Engine::Pool {
                pool,
                pending,
                max_pending,
            } => {
                while pending.len() >= *max_pending {
                    write_next(pending, &mut self.out)?;
                }
                let (reply, rx) = sync_channel(1);
                let job = Job {
                    dict,
                    data,
                    last,
                    reply,
                };
                let sent = pool.jobs.as_ref().map(|tx| tx.send(job));
                if !matches!(sent, Some(Ok(()))) {
                    return Err(io::Error::other("gzip worker threads stopped"));
                }
                pending.push_back(rx);
                if last {
                    while !pending.is_empty() {
                        write_next(pending, &mut self.out)?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Compress the final block, write the trailer (CRC-32 and size mod 2^32, RFC 1952
    /// §2.3.1), and return the inner writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.dispatch(true)?;
        let crc = self.crc.clone().finalize();
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&crc.to_le_bytes());
        trailer[4..].copy_from_slice(&(self.size as u32).to_le_bytes());
        self.out.write_all(&trailer)?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = GZIP_BLOCK - self.block.len();
        let n = buf.len().min(room);
        self.block.extend_from_slice(&buf[..n]);
        self.crc.update(&buf[..n]);
        self.size += n as u64;
        if self.block.len() == GZIP_BLOCK {
            self.dispatch(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Wait for the oldest block and write it.
fn write_next(
    pending: &mut VecDeque<Receiver<io::Result<Vec<u8>>>>,
    out: &mut impl Write,
) -> io::Result<()> {
    let Some(rx) = pending.pop_front() else {
        return Ok(());
    };
    let block = rx
        .recv()
        .map_err(|_| io::Error::other("a gzip worker thread died"))??;
    out.write_all(&block)
}

/// The fixed 10-byte gzip header (RFC 1952 §2.3): no FNAME, MTIME 0, XFL as Go writes it
/// (2 at level 9, 4 at level 1, else 0), OS [`GZIP_OS`].
fn gzip_header(level: u32) -> [u8; 10] {
    let xfl = match level {
        9 => 2,
        1 => 4,
        _ => 0,
    };
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, GZIP_OS]
}

/// Raw-deflate one block primed with `dict`; a sync flush ends it unless it is the `last`.
///
/// Each block gets a fresh deflate state. A reset state keeps its window bytes, and zlib-rs
/// can let matches depend on those stale bytes: with a reused state per worker, the output
/// depended on which blocks a worker had compressed before (measured: 1 and 2 threads gave
/// different bytes on random data followed by decimal text; zlib-rs 0.6.8 here, the bug is
/// zlib-rs issue #459, also in zlib-ng). A new state costs an allocation per 128 KiB block,
/// small beside deflating it, and does not rely on any zlib-rs version's fix.
fn deflate_block(level: u32, dict: &[u8], data: &[u8], last: bool) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(flate2::Compression::new(level), false);
    let c = &mut c;
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() + data.len() / 8 + 64);
    let mut input = data;
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(4096));
        }
        let before = c.total_in();
        let status = c
            .compress_vec(input, &mut out, flush)
            .map_err(io::Error::other)?;
        input = &input[(c.total_in() - before) as usize..];
        match status {
            Status::StreamEnd => return Ok(out),
            // A sync flush is complete once all input is taken and output space is left
            // over (zlib.h, `deflate`: "avail_out is greater than zero").
            Status::Ok | Status::BufError
                if !last && input.is_empty() && out.len() < out.capacity() =>
            {
                return Ok(out);
            }
            Status::Ok | Status::BufError => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// Deterministic pseudo-random bytes (xorshift), half of them text-like.
    pub(crate) fn sample(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (out.len() / 100_000) % 2 == 0 {
                out.extend_from_slice(&x.to_le_bytes());
            } else {
                out.extend_from_slice(b"the quick brown fox ");
            }
        }
        out.truncate(len);
        out
    }

    fn compress(data: &[u8], c: Compression, level: Option<i32>, threads: usize) -> Vec<u8> {
        let mut z = Compressor::new(Vec::new(), c, level, threads).unwrap();
        // Odd write sizes, so block boundaries never line up with writes.
        for chunk in data.chunks(7919) {
            z.write_all(chunk).unwrap();
        }
        z.finish().unwrap()
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// `name: input length, level => round-trips and is identical for 1, 2, 3, 8 threads`.
    macro_rules! gzip_same_for_all_threads {
        ($($name:ident: $len:expr, $level:expr;)*) => {$(
            #[test]
            fn $name() {
                let data = sample($len, 42);
                let one = compress(&data, Compression::Gzip, $level, 1);
                assert_eq!(gunzip(&one), data, "round trip");
                for threads in [2, 3, 8] {
                    let many = compress(&data, Compression::Gzip, $level, threads);
                    assert!(many == one, "{threads} threads differ from 1");
                }
            }
        )*};
    }

    gzip_same_for_all_threads! {
        gzip_empty: 0, None;
        gzip_tiny: 10, None;
        gzip_one_byte_short_of_a_block: GZIP_BLOCK - 1, None;
        gzip_exactly_one_block: GZIP_BLOCK, None;
        gzip_block_and_a_bit: GZIP_BLOCK + 100, None;
        gzip_two_exact_blocks: 2 * GZIP_BLOCK, None;
        gzip_many_blocks: 20 * GZIP_BLOCK + 12345, None;
        gzip_level_1: 5 * GZIP_BLOCK + 7, Some(1);
        gzip_level_9: 5 * GZIP_BLOCK + 7, Some(9);
        gzip_level_0_stored: 3 * GZIP_BLOCK + 7, Some(0);
    }

    /// Random blocks then `od -t u2`-like decimal text, in 512 KiB runs: what a RUN writing
    /// random and numeric files gives. Matches that reach into stale window bytes of a reused
    /// deflate state would make the output depend on which worker compressed which block.
    #[test]
    fn gzip_same_for_all_threads_on_numeric_text() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        const HALF: usize = 512 << 10;
        let mut data = Vec::new();
        for round in 1..=2 {
            while data.len() < (2 * round - 1) * HALF {
                data.extend_from_slice(&next().to_le_bytes());
            }
            while data.len() < 2 * round * HALF {
                for _ in 0..8 {
                    let n = next() as u16;
                    data.extend_from_slice(format!(" {n:>6}").as_bytes());
                }
                data.push(b'\n');
            }
            data.truncate(2 * round * HALF);
        }
        let one = compress(&data, Compression::Gzip, None, 1);
        assert_eq!(gunzip(&one), data, "round trip");
        for threads in [2, 3] {
            let many = compress(&data, Compression::Gzip, None, threads);
            assert!(many == one, "{threads} threads differ from 1");
        }
    }

    #[test]
    fn gzip_header_is_pinned() {
        let out = compress(b"", Compression::Gzip, None, 1);
        assert_eq!(&out[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        let out = compress(b"", Compression::Gzip, Some(9), 1);
        assert_eq!(out[8], 2);
    }

    #[test]
    fn gzip_block_is_primed_with_its_dictionary() {
        // Noise seen in the dictionary compresses to a few back-references.
        let noise = sample(4096, 9);
        let primed = deflate_block(6, &noise, &noise, false).unwrap();
        let cold = deflate_block(6, &[], &noise, false).unwrap();
        assert!(primed.len() < 100, "{} bytes", primed.len());
        assert!(cold.len() > 4000, "{} bytes", cold.len());
        // A sync flush ends with the empty stored block 00 00 ff ff.
        assert_eq!(&primed[primed.len() - 4..], &[0, 0, 0xff, 0xff]);
    }

    #[test]
    fn gzip_rejects_bad_level() {
        assert!(Compressor::new(Vec::new(), Compression::Gzip, Some(10), 1).is_err());
    }

    #[test]
    fn none_passes_through() {
        let data = sample(1000, 1);
        assert_eq!(compress(&data, Compression::None, None, 4), data);
    }

    /// zstd's multithreaded output must not depend on the worker count (≥ 1); if this ever
    /// fails, pin the worker count instead (see the module comment).
    #[test]
    fn zstd_same_for_all_worker_counts() {
        // Several jobs' worth (a level-3 job is a few MiB), so workers really split it.
        let data = sample(24 << 20, 7);
        let one = compress(&data, Compression::Zstd, None, 1);
        let back = zstd::stream::decode_all(&one[..]).unwrap();
        assert!(back == data, "round trip");
        for workers in [2, 4] {
            let many = compress(&data, Compression::Zstd, None, workers);
            assert!(many == one, "{workers} workers differ from 1");
        }
    }
}

#[cfg(test)]
mod golden_multijob {
    use super::*;
    use std::io::Write;

    /// 12 MiB from a fixed linear congruential sequence: half noise, half text, spanning
    /// several zstd jobs and many gzip blocks.
    fn input() -> Vec<u8> {
        let mut x: u64 = 0x5eed;
        let mut v = Vec::with_capacity(12 << 20);
        while v.len() < 12 << 20 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if (v.len() / 4096) % 2 == 0 {
                v.extend_from_slice(&x.to_le_bytes());
            } else {
                v.extend_from_slice(b"rbuild golden text ");
            }
        }
        v
    }

    fn digest(c: Compression) -> String {
        let mut enc = Compressor::new(Vec::new(), c, None, 2).unwrap();
        enc.write_all(&input()).unwrap();
        crate::oci::digest::Digest::sha256(&enc.finish().unwrap()).to_string()
    }

    /// Pinned output across several zstd jobs and gzip blocks. A change here means a
    /// different compressor or compressor setting (a C zlib in the dependency graph, a new
    /// zstd job size): every layer digest rbuild produces would change. Never update these
    /// casually.
    #[test]
    fn pinned_across_jobs() {
        assert_eq!(
            digest(Compression::Zstd),
            "sha256:3aaea41763cd8a386fb5e440469d9d25b255e1b0805280b112affeeda998e365"
        );
        assert_eq!(
            digest(Compression::Gzip),
            "sha256:0e8422685ad0d8b271b8d12c8162af5c20520ddcf30e377044c597f72bee7751"
        );
    }
}
