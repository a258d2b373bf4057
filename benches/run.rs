//! RUN overhead: `RUN true` from an overlay on a busybox lower to the change list (and, once
//! the layer writer lands, the committed layer), phase by phase, median of 30 runs.
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
    for a in ["sh", "true"] {
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
    let files = standard_files(&work.join("files"), "rbuild", Network::Host).unwrap();
    let (mut mount, mut run, mut changes, mut umount, mut total) =
        (vec![], vec![], vec![], vec![], vec![]);
    for i in 0..33 {
        let dir = work.join(format!("step{i}"));
        let t0 = Instant::now();
        let m = overlay::prepare(std::slice::from_ref(&lower), &dir).unwrap();
        let t1 = Instant::now();
        let spec = Spec {
            rootfs: m.merged().to_path_buf(),
            args: vec!["/bin/true".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            groups: vec![0],
            hostname: "rbuild".into(),
            network: Network::Host,
            binds: files.clone(),
            tmpfs: Vec::new(),
            limits: Default::default(),
            external_idmap: false,
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
    let _ = std::fs::remove_dir_all(&work);
}
