//! RUN overhead: `RUN true` from an overlay on a busybox lower to the change list, phase by
//! phase, median of 30 runs. Then a RUN that writes `RUN_BENCH_WRITE_MIB` (default 1024; 0
//! skips) of files, half random and half decimal text, from the step to the committed gzip
//! layer, with the commit timed on 2 threads and on 1.
//! Needs root (overlay mounts). Run: `cargo bench --bench run`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rbuild::sandbox::{Network, Spec, spawn_with, standard_files};
use rbuild::snapshot::{diff, overlay};

fn busybox(dir: &Path) {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    for a in ["sh", "true", "head", "od", "mkdir"] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(a)).unwrap();
    }
    for d in ["proc", "dev", "sys"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    for f in ["etc/hosts", "etc/hostname", "etc/resolv.conf"] {
        std::fs::write(dir.join(f), "").unwrap();
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: the RUN benchmark mounts overlays and needs root");
        return;
    }
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_rbuild"));
    let work = std::env::temp_dir().join(format!("rbuild-bench-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let lower = work.join("lower");
    busybox(&lower);
    let files = standard_files(&work.join("files"), "rbuild", Network::Host, &[]).unwrap();
    let (mut mount, mut run, mut changes, mut umount, mut total) =
        (vec![], vec![], vec![], vec![], vec![]);
    for i in 0..33 {
        let dir = work.join(format!("step{i}"));
        let t0 = Instant::now();
        let m = overlay::prepare(std::slice::from_ref(&lower), &dir).unwrap();
        let t1 = Instant::now();
        let spec = Spec {
            network: Network::Host,
            binds: files.clone(),
            ..Spec::new(m.merged(), vec!["/bin/true".into()])
        };
        let status = spawn_with(&exe, &spec, Stdio::null(), Stdio::null())
            .unwrap()
            .wait()
            .unwrap();
        assert!(status.success());
        let t2 = Instant::now();
        let c = diff::overlay_changes(m.upper()).unwrap();
        let t3 = Instant::now();
        m.unmount().unwrap();
        let t4 = Instant::now();
        assert!(c.is_empty(), "RUN true changes nothing: {c:?}");
        if i >= 3 {
            mount.push(t1 - t0);
            run.push(t2 - t1);
            changes.push(t3 - t2);
            umount.push(t4 - t3);
            total.push(t4 - t0);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
    println!("| phase of `RUN true` | median of 30 |");
    println!("|---|---|");
    println!("| overlay mount | {} |", ms(median(mount)));
    println!(
        "| sandbox: helper, namespaces, PID 1, mounts, exec, exit | {} |",
        ms(median(run))
    );
    println!("| upper-dir diff | {} |", ms(median(changes)));
    println!("| unmount | {} |", ms(median(umount)));
    println!("| total (target ≤ 30 ms) | {} |", ms(median(total)));

    let mib: u64 = std::env::var("RUN_BENCH_WRITE_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    if mib > 0 {
        big_write(&exe, &lower, &files, &work.join("big"), mib);
    }
    let _ = std::fs::remove_dir_all(&work);
}

/// `RUN` writing `mib` MiB in 8 MiB pairs of files (4 MiB random, 4 MiB of `od` text), then
/// the upper-dir diff and the gzip layer; the layer is written twice, on 2 threads and on 1.
fn big_write(exe: &Path, lower: &Path, files: &[rbuild::sandbox::Bind], dir: &Path, mib: u64) {
    use rbuild::layer::{LayerOptions, write_layer};
    use rbuild::oci::media_type::Compression;
    let pairs = mib.div_ceil(8);
    let script = format!(
        "mkdir /data && i=0 && while [ $i -lt {pairs} ]; do \
         head -c 4194304 /dev/urandom > /data/r$i && \
         od -A n -t u2 /dev/urandom | head -c 4194304 > /data/t$i && i=$((i+1)); done"
    );
    let t0 = Instant::now();
    let m = overlay::prepare(&[lower.to_path_buf()], dir).unwrap();
    let spec = Spec {
        network: Network::Host,
        binds: files.to_vec(),
        ..Spec::new(m.merged(), vec!["/bin/sh".into(), "-c".into(), script])
    };
    let status = spawn_with(exe, &spec, Stdio::null(), Stdio::inherit())
        .unwrap()
        .wait()
        .unwrap();
    assert!(status.success());
    let t_run = t0.elapsed();
    let t1 = Instant::now();
    let changes = diff::overlay_changes(m.upper()).unwrap();
    let t_diff = t1.elapsed();
    let commit = |threads| {
        let opts = LayerOptions {
            compression: Compression::Gzip,
            level: None,
            threads,
            source_date_epoch: None,
        };
        let t = Instant::now();
        let got = write_layer(m.upper(), &changes, &opts, std::io::sink()).unwrap();
        (t.elapsed(), got)
    };
    let (t2, two) = commit(2);
    let (t1c, one) = commit(1);
    assert_eq!(two.diff_id, one.diff_id, "the same tar twice");
    assert_eq!(two.digest, one.digest, "the same bytes on 1 and 2 threads");
    m.unmount().unwrap();
    let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    let mbs = |d: Duration| two.uncompressed_size as f64 / 1e6 / d.as_secs_f64();
    println!();
    println!(
        "RUN writing {} MiB: {} changes (the files and /data); tar {} bytes, gzip layer {} bytes",
        pairs * 8,
        changes.len(),
        two.uncompressed_size,
        two.size
    );
    println!();
    println!("| phase | time | MB/s of tar |");
    println!("|---|---|---|");
    println!(
        "| overlay mount + sandboxed step (writes the files) | {} | |",
        secs(t_run)
    );
    println!("| upper-dir diff | {} | |", secs(t_diff));
    println!(
        "| commit: gzip layer, threads=2 | {} | {:.0} |",
        secs(t2),
        mbs(t2)
    );
    println!(
        "| commit: gzip layer, threads=1 | {} | {:.0} |",
        secs(t1c),
        mbs(t1c)
    );
    println!(
        "| commit speed-up, 2 threads vs single-core zlib-rs (target ≥ 1.8×) | {:.2}× | |",
        t1c.as_secs_f64() / t2.as_secs_f64()
    );
    println!(
        "| step to committed layer (2 threads) | {} | |",
        secs(t_run + t_diff + t2)
    );
    let _ = std::fs::remove_dir_all(dir);
}
