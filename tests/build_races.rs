//! Stages and processes racing on one store: parallel stages FROM a base that is stored but
//! not unpacked, and identical steps in parallel stages, in several processes at once. Each
//! layer is unpacked once (an `flock` turn per chain ID) and each cache record published
//! whole (a unique temporary name, renamed); every build succeeds and they agree. The code
//! before temporary names were unique per thread fails this (`RBUILD_TEST_BINARY` runs it
//! against another build of rbuild) with "mkdir: File exists" and "No such file".

use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::busybox_context::BusyboxContext;
use crate::common::process::Process;
use crate::common::{describe, rbuild_bin};

/// Stages per Dockerfile and processes per round.
const STAGES: usize = 8;
const PROCESSES: usize = 4;
const ROUNDS: usize = 3;

/// `STAGES` stages on `base:1`, each running one step all stages share and one of its
/// own, and a last stage copying a file from each.
fn dockerfile() -> String {
    let mut text = String::new();
    for s in 0..STAGES {
        text.push_str(&format!(
            "FROM base:1 AS s{s}\nRUN echo same > /same && mkdir -p /a/b/c && ln -s /a /a/b/c/up\nRUN echo {s} > /own\n"
        ));
    }
    text.push_str("FROM base:1\n");
    for s in 0..STAGES {
        text.push_str(&format!("COPY --from=s{s} /own /own{s}\n"));
    }
    text
}

fn load(root: &Path, archive: &Path, cwd: &Path) {
    let out = Command::new(rbuild_bin())
        .args(["--root"])
        .arg(root)
        .args(["load", "-i"])
        .arg(archive)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&["load"], &out));
}

#[test]
fn parallel_stages_and_processes_unpack_and_publish_once() {
    let Some(ctx) = BusyboxContext::new("races", "FROM base\nRUN echo base > /base\n") else {
        return;
    };
    // The base as an archive, loaded into each round's fresh store: stored, not unpacked.
    let archive = ctx.home.join("base.tar");
    let dest = format!("type=docker,dest={}", archive.display());
    ctx.build_ok(&["-t", "base:1", "-o", &dest]);
    ctx.write("Dockerfile", &dockerfile());
    for round in 0..ROUNDS {
        let root = ctx.home.join(format!("round-{round}"));
        load(&root, &archive, &ctx.dir);
        let builds: Vec<Process> = (0..PROCESSES)
            .map(|p| {
                Process::spawn(
                    Command::new(rbuild_bin())
                        .arg("--root")
                        .arg(&root)
                        .args(["build", "--progress=plain", "-t"])
                        .arg(format!("race:{p}"))
                        .arg(".")
                        .current_dir(&ctx.dir)
                        .env("NO_COLOR", "1")
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped()),
                )
            })
            .collect();
        let mut ids = Vec::new();
        for (p, build) in builds.into_iter().enumerate() {
            let out = build.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}, process {p}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            ids.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "round {round}: the builds disagree: {ids:?}");
    }
}
