//! `cargo bench --bench layer`: write a synthetic tree (half random, half compressible text;
//! `LAYER_BENCH_MIB`, default 512) as a layer with each compressor, and compress the same tar
//! with `gzip -6` and `pigz -6 -p2` when installed. Prints a markdown table for
//! `docs/benchmarks.md`: throughput over the uncompressed tar, ratio to pigz, and peak RSS
//! (VmHWM, reset through `/proc/self/clear_refs` before each run).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use rbuild::layer::{LayerOptions, write_layer};
use rbuild::oci::media_type::Compression;
use rbuild::snapshot::change::{Change, ChangeKind};

const FILE: usize = 8 << 20;

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Half the files random, half words drawn from a small vocabulary (compresses ~3-4×).
fn make_tree(root: &Path, mib: usize) -> Vec<Change> {
    const WORDS: &[&str] = &[
        "layer",
        "image",
        "build",
        "the",
        "of",
        "container",
        "digest",
        "sha256",
        "config",
        "manifest",
        "registry",
        "tar",
        "gzip",
        "zstd",
        "snapshot",
        "overlay",
        "\n",
        "{",
        "}",
        "0",
        "1",
        "2",
        "error",
        "warning",
        "info",
        "/usr/lib/",
        "x86_64",
        "linux",
    ];
    let mut changes = vec![Change {
        path: "data".into(),
        kind: ChangeKind::Upsert,
    }];
    fs::create_dir(root.join("data")).unwrap();
    let mut x = 0x9e3779b97f4a7c15u64;
    for i in 0..(mib << 20) / FILE {
        let path = format!("data/f{i:04}");
        let mut out = BufWriter::new(File::create(root.join(&path)).unwrap());
        let mut written = 0;
        let mut chunk = Vec::with_capacity(1 << 20);
        while written < FILE {
            chunk.clear();
            if i % 2 == 0 {
                while chunk.len() < 1 << 20 {
                    chunk.extend_from_slice(&xorshift(&mut x).to_le_bytes());
                }
            } else {
                while chunk.len() < 1 << 20 {
                    let w = WORDS[(xorshift(&mut x) % WORDS.len() as u64) as usize];
                    chunk.extend_from_slice(w.as_bytes());
                    chunk.push(b' ');
                }
            }
            chunk.truncate((FILE - written).min(1 << 20));
            out.write_all(&chunk).unwrap();
            written += chunk.len();
        }
        changes.push(Change {
            path,
            kind: ChangeKind::Upsert,
        });
    }
    changes
}

fn reset_peak() {
    let _ = fs::write("/proc/self/clear_refs", "5");
}

fn peak_mib() -> f64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024.0
}

/// Time a peer compressing the tar from stdin; its peak RSS comes from GNU `/usr/bin/time
/// -f %M` when installed.
fn run_tool(tool: &str, args: &[&str], input: &Path) -> Option<(f64, u64, Option<f64>)> {
    Command::new(tool).arg("--version").output().ok()?;
    let timed = Command::new("/usr/bin/time")
        .arg("--version")
        .output()
        .is_ok();
    let start = Instant::now();
    let mut cmd = if timed {
        let mut c = Command::new("/usr/bin/time");
        c.args(["-f", "%M", tool]);
        c
    } else {
        Command::new(tool)
    };
    let out = cmd
        .args(args)
        .stdin(File::open(input).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert!(out.status.success(), "{tool}");
    let rss = timed
        .then(|| {
            String::from_utf8_lossy(&out.stderr)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .flatten()
        .map(|kib| kib / 1024.0);
    Some((secs, out.stdout.len() as u64, rss))
}

fn main() {
    let mib: usize = std::env::var("LAYER_BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(512);
    let dir = tempfile::tempdir_in(std::env::var("LAYER_BENCH_DIR").unwrap_or("/var/tmp".into()))
        .unwrap();
    let tree = dir.path().join("tree");
    fs::create_dir(&tree).unwrap();
    let changes = make_tree(&tree, mib);
    let tar_path = dir.path().join("layer.tar");

    // (name, seconds, compressed bytes, peak RSS MiB)
    let mut rows: Vec<(String, f64, u64, Option<f64>)> = Vec::new();
    let mut tar_size = 0;
    let cases = [
        ("rbuild tar only (uncompressed)", Compression::None, 1),
        ("rbuild gzip -6, threads=1", Compression::Gzip, 1),
        ("rbuild gzip -6, threads=2", Compression::Gzip, 2),
        ("rbuild zstd -3, threads=2", Compression::Zstd, 2),
    ];
    for (name, compression, threads) in cases {
        let opts = LayerOptions {
            compression,
            level: None,
            threads,
            source_date_epoch: None,
        };
        let out: Box<dyn Write> = if compression == Compression::None {
            Box::new(BufWriter::new(File::create(&tar_path).unwrap()))
        } else {
            Box::new(std::io::sink())
        };
        reset_peak();
        let start = Instant::now();
        let got = write_layer(&tree, &changes, &opts, out).unwrap();
        let secs = start.elapsed().as_secs_f64();
        tar_size = got.uncompressed_size;
        rows.push((name.into(), secs, got.size, Some(peak_mib())));
    }
    let tar_s = tar_path.to_str().unwrap();
    let _ = fs::read(tar_s); // warm the page cache for the peers
    for (name, tool, args) in [
        ("gzip -6 (GNU gzip, C zlib-like)", "gzip", vec!["-6", "-c"]),
        ("pigz -6 -p2", "pigz", vec!["-6", "-p2", "-c"]),
        ("pigz -6 -p1", "pigz", vec!["-6", "-p1", "-c"]),
    ] {
        match run_tool(tool, &args, &tar_path) {
            Some((secs, size, rss)) => rows.push((name.into(), secs, size, rss)),
            None => eprintln!("{tool} not installed: skipped"),
        }
    }
    let pigz = rows
        .iter()
        .find(|r| r.0 == "pigz -6 -p2")
        .map(|r| tar_size as f64 / r.1);
    let single = rows[1].1;
    println!(
        "Layer: {mib} MiB of files (half random, half text), tar {tar_size} bytes; \
         throughput over the uncompressed tar."
    );
    println!();
    println!(
        "| writer | time | MB/s | compressed | speed vs pigz -p2 | vs rbuild 1 thread | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, secs, size, rss) in &rows {
        let mbs = tar_size as f64 / secs / 1e6;
        let vs_pigz = pigz.map_or("–".into(), |p| {
            format!("{:.2}×", tar_size as f64 / secs / p)
        });
        let rss = rss.map_or("–".into(), |r| format!("{r:.0} MiB"));
        println!(
            "| {name} | {secs:.2} s | {mbs:.0} | {:.1} MB ({:.1}%) | {vs_pigz} | {:.2}× | {rss} |",
            *size as f64 / 1e6,
            *size as f64 * 100.0 / tar_size as f64,
            single / secs,
        );
    }
}
