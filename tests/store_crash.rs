//! Crash injection: rbuild killed with SIGKILL at points spread over a pull, a build and a
//! prune (seven each, timed across the operation's measured length), each followed by
//! `rbuild fsck`. No kill may lose an image that was tagged before it or leave damage that
//! fsck does not report: every fsck must find the store sound (exit 0), leftovers of the
//! killed run aside. At least 20 of the kills must land while the operation runs.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::busybox_context::{BASE, BusyboxContext};
use crate::common::process::Process;
use crate::common::registry::Registry;
use crate::common::{describe, mirror_conf, rbuild_bin, require};

/// Kill points per operation.
const POINTS: u32 = 7;

struct Lab<'a> {
    ctx: &'a BusyboxContext,
    conf: String,
}

impl Lab<'_> {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(rbuild_bin());
        cmd.args(args)
            .current_dir(&self.ctx.dir)
            .env("RBUILD_ROOT", &self.ctx.root)
            .env("CONTAINERS_REGISTRIES_CONF", &self.conf)
            .env("NO_COLOR", "1");
        cmd
    }

    fn ok(&self, args: &[&str]) {
        let out = self.command(args).output().unwrap();
        assert!(out.status.success(), "{}", describe(args, &out));
    }

    /// How long `args` takes, run to the end.
    fn timed(&self, args: &[&str]) -> Duration {
        let start = Instant::now();
        self.ok(args);
        start.elapsed()
    }

    /// Start `args`, SIGKILL rbuild alone after `after`; whether it was still running. One
    /// that ended first must have succeeded.
    fn kill_after(&self, args: &[&str], after: Duration) -> bool {
        let mut cmd = self.command(args);
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut p = Process::spawn(&mut cmd);
        let mut stderr = p.child().stderr.take().unwrap();
        let log = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
            text
        });
        std::thread::sleep(after);
        let ended = p.child().try_wait().unwrap();
        let _ = p.child().kill();
        p.wait().unwrap();
        let log = log.join().unwrap();
        if let Some(status) = ended {
            assert!(
                status.success(),
                "rbuild {args:?} ended before the kill: {status}\n{log}"
            );
        }
        ended.is_none()
    }

    /// `rbuild fsck` must find nothing wrong.
    fn sound(&self, when: &str) {
        let out = self.command(&["fsck"]).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "after {when}: {}",
            describe(&["fsck"], &out)
        );
    }
}

/// The `k`th kill point over an operation of length `d`: spread over its first 90 %
/// (`d * 0.9 * (k + 1/2) / POINTS`); a try whose operation ended first is tried again
/// earlier (`k ≥ POINTS` halves the time each round).
fn point(d: Duration, k: u32) -> Duration {
    let spread = 0.9 * (f64::from(k % POINTS) + 0.5) / f64::from(POINTS);
    d.mul_f64(spread / f64::from(1u32 << (k / POINTS).min(8)))
}

/// Kill `op` (after `before` readies the store) at successive points until `POINTS` kills
/// land mid-operation or two rounds of points are used; each kill is followed by fsck.
/// Returns how many landed.
fn kill_points(
    lab: &Lab,
    name: &str,
    op: &[&str],
    d: Duration,
    mut before: impl FnMut(u32),
) -> u32 {
    let mut landed = 0;
    for k in 0..2 * POINTS {
        if landed == POINTS {
            break;
        }
        before(k);
        landed += u32::from(lab.kill_after(op, point(d, k)));
        lab.sound(&format!("{name} killed after {:?}", point(d, k)));
    }
    eprintln!("crash injection: {landed} kills landed during {name} ({d:?} long)");
    landed
}

#[test]
fn kills_during_pull_build_and_prune_lose_nothing_fsck_does_not_see() {
    if !require::tools(&["docker-registry"]) {
        return;
    }
    let Some(ctx) = BusyboxContext::new("crash", "FROM base\nRUN echo kept > /kept\n") else {
        return;
    };
    let reg = Registry::start(None);
    let conf = mirror_conf(&ctx.home, &reg.addr, &[&reg.addr]);
    let lab = Lab {
        ctx: &ctx,
        conf: conf.display().to_string(),
    };
    // What must survive every kill: an image built here (its layers deferred: snapshots
    // only) under two names.
    lab.ok(&["build", "-q", "-t", "kept:1", "."]);
    lab.ok(&["tag", "kept:1", "alsokept:1"]);
    // What the pulls fetch: 30 MB, in the registry only.
    let remote = format!("{}/crash/big:1", reg.addr);
    ctx.write(
        "big.Dockerfile",
        &format!("{BASE}FROM base\nRUN head -c 30000000 /dev/urandom > /big\n"),
    );
    lab.ok(&["build", "-q", "-f", "big.Dockerfile", "-t", "big:1", "."]);
    lab.ok(&["push", "big:1", &remote]);
    lab.ok(&["rmi", "big:1"]);
    lab.sound("the setup");
    let mut landed = 0;

    // Pull: the pulled name and its blobs go before each try, so each pull fetches.
    let fresh = || {
        let _ = lab.command(&["rmi", &remote]).output();
        lab.ok(&["prune", "--build-cache", "--grace", "0s"]);
    };
    let d = (0..3)
        .map(|_| {
            fresh();
            lab.timed(&["pull", &remote])
        })
        .min()
        .unwrap();
    landed += kill_points(&lab, "a pull", &["pull", &remote], d, |_| fresh());
    lab.ok(&["pull", &remote]);

    // Build: every step runs (--no-cache), on the kept image.
    ctx.write(
        "Dockerfile",
        "FROM alsokept:1\nRUN head -c 10000000 /dev/urandom > /r && echo x > /x\nCOPY Dockerfile /ctx/\nRUN cat /kept /x > /both\n",
    );
    let build = ["build", "--no-cache", "-q", "-t", "built:1", "."];
    let d = (0..3).map(|_| lab.timed(&build)).min().unwrap();
    landed += kill_points(&lab, "a build", &build, d, |_| {});

    // Prune: garbage made before each try (built, then untagged), with the build cache.
    let garbage = |lab: &Lab, k: u32| {
        ctx.write(
            "Dockerfile",
            &format!(
                "FROM alsokept:1\nRUN mkdir /g && cd /g && for i in $(seq 400); do echo {k} > $i; done\nRUN echo {k} > /n\n"
            ),
        );
        lab.ok(&["build", "-q", "-t", "garbage:1", "."]);
        lab.ok(&["rmi", "garbage:1"]);
    };
    let prune = ["prune", "--build-cache", "--grace", "0s"];
    let _ = lab.command(&["rmi", "built:1"]).output();
    garbage(&lab, 100);
    let d = lab.timed(&prune);
    landed += kill_points(&lab, "a prune", &prune, d, |k| garbage(&lab, k));

    // Nothing lost: the kept images build and run steps, and the pulled one still pulls
    // as it is.
    ctx.write("Dockerfile", "FROM alsokept:1\nRUN cat /kept > /again\n");
    let files = ctx.build_files("files", &[]);
    assert_eq!(
        std::fs::read_to_string(files.join("again")).unwrap(),
        "kept\n"
    );
    lab.ok(&["pull", &remote]);
    lab.sound("the end");
    assert!(
        landed >= 20,
        "only {landed} kills landed while an operation ran (each must have something to interrupt)"
    );
    let _ = Path::new(&reg.dir);
}
