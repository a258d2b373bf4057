//! The build engine end to end through the real binary, on a busybox image that the build
//! itself makes (`FROM scratch` + `COPY` of Debian's busybox-static, see
//! `common::busybox_context`): stages (which run, side by side, the config, history and
//! ONBUILD triggers they leave), how a failing or interrupted RUN is reported, progress
//! output, the platform check, and both snapshotters building the same image. What steps do
//! is `build_steps`; outputs, the cache and prune are `build_outputs`.

use std::path::PathBuf;
use std::process::Command;

use crate::common::busybox_context::BusyboxContext;
use crate::common::{describe, rbuild_bin, require};

#[test]
fn a_failing_run_says_where_why_and_what_it_printed_and_tags_nothing() {
    let Some(ctx) = BusyboxContext::new(
        "build-fail",
        "FROM base\nRUN echo first line && echo to-stderr >&2 && exit 3\n",
    ) else {
        return;
    };
    let stderr = ctx.build_fails(&["-t", "broken:1"]);
    for want in [
        "did not complete successfully: exit code 3",
        "Dockerfile:5",
        "RUN echo first line",
        "first line",
        "to-stderr",
        "step-",
    ] {
        assert!(stderr.contains(want), "missing {want:?}:\n{stderr}");
    }
    let images = ctx.rbuild(&["images"]);
    assert!(
        !String::from_utf8_lossy(&images.stdout).contains("broken"),
        "a failed build tagged its image"
    );
    // The full log is kept under the state root.
    let log_line = stderr
        .lines()
        .find(|l| l.contains("the whole output is in"))
        .expect("log hint");
    let path = log_line.rsplit(' ').next().unwrap();
    let log = std::fs::read_to_string(path).unwrap();
    assert!(
        log.contains("first line") && log.contains("to-stderr"),
        "{log}"
    );
}

#[test]
fn stages_config_history_and_unused_stages() {
    let Some(ctx) = BusyboxContext::new(
        "build-stages",
        "FROM base AS builder\nRUN mkdir -p /out && echo built > /out/artifact\n\
         FROM base AS never\nRUN exit 1\n\
         FROM base\nCOPY --from=builder /out/artifact /app/\n\
         WORKDIR /app\nUSER app\nRUN id -u > /app/uid-seen || true\nENV GREETING=hello\nLABEL org.example.k=v\n\
         EXPOSE 8080/tcp 53/udp\nENTRYPOINT [\"/bin/sh\", \"-c\"]\nCMD [\"echo hi\"]\n",
    ) else {
        return;
    };
    let progress = ctx.build_ok(&["-t", "stages:1"]);
    assert!(
        !progress.contains("[never"),
        "an unused stage ran:\n{progress}"
    );
    let v = ctx.inspect("stages:1");
    let c = &v["config"]["config"];
    assert_eq!(c["WorkingDir"], "/app");
    assert_eq!(c["User"], "app");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(c["Cmd"], serde_json::json!(["echo hi"]));
    assert_eq!(c["Labels"]["org.example.k"], "v");
    assert!(c["ExposedPorts"]["8080/tcp"].is_object() && c["ExposedPorts"]["53/udp"].is_object());
    assert!(
        c["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "GREETING=hello"),
        "{c}"
    );
    let history: Vec<String> = v["config"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["created_by"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        history
            .iter()
            .any(|h| h == "COPY /out/artifact /app/ # buildkit"),
        "{history:#?}"
    );
    assert!(
        history.iter().any(|h| h == "ENV GREETING=hello"),
        "{history:#?}"
    );
    // One diff ID per non-empty history entry.
    let non_empty = v["config"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["empty_layer"] != true)
        .count();
    assert_eq!(
        non_empty,
        v["config"]["rootfs"]["diff_ids"].as_array().unwrap().len()
    );

    // The files: from the build stage, and written as USER app.
    let out = ctx.home.join("fs");
    ctx.build_ok(&["-o", &format!("type=local,dest={}", out.display())]);
    assert_eq!(
        std::fs::read_to_string(out.join("app/artifact")).unwrap(),
        "built\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("app/uid-seen")).unwrap_or_default(),
        "",
        "/app is root's (WORKDIR before USER), so user app cannot write there"
    );
}

#[test]
fn independent_stages_run_side_by_side() {
    if !require::cores(2, "on one core, stages run one at a time") {
        return;
    }
    // Each stage waits (up to 20 s) for the other to have started, through a shared cache
    // mount: run one after the other, the first would give up and fail.
    let wait = |me: &str, other: &str| {
        format!(
            "RUN --mount=type=cache,id=rendezvous,sharing=shared,target=/r \
             touch /r/{me} && i=0; while [ ! -e /r/{other} ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; \
             test -e /r/{other} && echo {me} > /{me}.txt\n"
        )
    };
    let rest = format!(
        "FROM base AS a\n{}FROM base AS b\n{}FROM base\nCOPY --from=a /a.txt /\nCOPY --from=b /b.txt /\n",
        wait("a", "b"),
        wait("b", "a")
    );
    let Some(ctx) = BusyboxContext::new("build-parallel", &rest) else {
        return;
    };
    let out = ctx.home.join("fs");
    ctx.build_ok(&["-o", &format!("type=local,dest={}", out.display())]);
    assert_eq!(std::fs::read_to_string(out.join("a.txt")).unwrap(), "a\n");
    assert_eq!(std::fs::read_to_string(out.join("b.txt")).unwrap(), "b\n");
}

#[test]
fn words_on_an_image_base_expand_with_the_image_env() {
    let Some(ctx) = BusyboxContext::new("build-image-env", "ENV HOME_DIR=/home/app\n") else {
        return;
    };
    ctx.build_ok(&["-t", "busybase:1"]);
    std::fs::write(
        ctx.dir.join("Dockerfile"),
        "FROM busybase:1\nENV PATH=/opt/tools/bin:$PATH\nWORKDIR $HOME_DIR/src\nRUN echo \"$PATH\" > path.txt\n",
    )
    .unwrap();
    let out = ctx.home.join("fs");
    ctx.build_ok(&[
        "-t",
        "onbase:1",
        "-o",
        "type=image",
        "-o",
        &format!("type=local,dest={}", out.display()),
    ]);
    let v = ctx.inspect("onbase:1");
    let env = v["config"]["config"]["Env"].as_array().unwrap().clone();
    let path = "PATH=/opt/tools/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    assert!(env.iter().any(|e| e == path), "{env:?}");
    assert_eq!(v["config"]["config"]["WorkingDir"], "/home/app/src");
    assert_eq!(
        std::fs::read_to_string(out.join("home/app/src/path.txt")).unwrap(),
        format!("{}\n", &path[5..])
    );
}

#[test]
fn onbuild_triggers_run_after_from_in_the_child() {
    let Some(ctx) = BusyboxContext::new(
        "build-onbuild",
        "WORKDIR /app\nONBUILD COPY trig.txt ./\nONBUILD RUN cat trig.txt > /app/ran.txt\n",
    ) else {
        return;
    };
    ctx.build_ok(&["-t", "parent:1"]);
    let parent = ctx.inspect("parent:1");
    assert_eq!(
        parent["config"]["config"]["OnBuild"],
        serde_json::json!(["COPY trig.txt ./", "RUN cat trig.txt > /app/ran.txt"])
    );
    ctx.write("trig.txt", "triggered\n");
    std::fs::write(
        ctx.dir.join("Dockerfile"),
        "FROM parent:1\nRUN cat /app/ran.txt > /app/child.txt\n",
    )
    .unwrap();
    let out = ctx.home.join("fs");
    let progress = ctx.build_ok(&[
        "-t",
        "child:1",
        "-o",
        "type=image",
        "-o",
        &format!("type=local,dest={}", out.display()),
    ]);
    assert!(
        progress.contains("RUN cat trig.txt > /app/ran.txt"),
        "{progress}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("app/child.txt")).unwrap(),
        "triggered\n"
    );
    let child = ctx.inspect("child:1");
    assert!(
        child["config"]["config"]["OnBuild"].is_null(),
        "triggers are not inherited: {}",
        child["config"]["config"]
    );

    // A failing trigger is reported at the FROM that brought it.
    std::fs::write(ctx.dir.join("Dockerfile"), "FROM parent:1\n").unwrap();
    std::fs::remove_file(ctx.dir.join("trig.txt")).unwrap();
    let stderr = ctx.build_fails(&[]);
    assert!(
        stderr.contains("ONBUILD trigger `COPY trig.txt ./`") && stderr.contains("Dockerfile:1"),
        "{stderr}"
    );
}

/// RUN for an architecture this machine has no QEMU handler for is refused before any
/// step runs (here a machine without handlers: an empty binfmt_misc directory), saying how
/// to install one; nothing is tagged.
#[test]
fn run_for_an_architecture_without_emulation_is_refused_before_building() {
    let Some(ctx) = BusyboxContext::new("build-platform", "FROM base\nRUN true\n") else {
        return;
    };
    let other = if cfg!(target_arch = "aarch64") {
        ("linux/amd64", "amd64")
    } else {
        ("linux/arm64", "arm64")
    };
    let empty = ctx.home.join("binfmt_misc");
    std::fs::create_dir_all(&empty).unwrap();
    let args = [
        "build",
        "--progress=plain",
        "--platform",
        other.0,
        "-t",
        "foreign:1",
        ".",
    ];
    let out = ctx.rbuild_env(&args, &[("RBUILD_BINFMT_MISC", empty.to_str().unwrap())]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&args, &out));
    assert!(
        stderr.contains(&format!("no binfmt_misc handler for {}", other.1))
            && stderr.contains("qemu-user-static"),
        "{stderr}"
    );
    assert!(!stderr.contains("[base 2/3]"), "no step ran: {stderr}");
    let images = ctx.rbuild(&["images"]);
    assert!(!String::from_utf8_lossy(&images.stdout).contains("foreign"));
}

#[test]
fn ctrl_c_stops_the_run_unmounts_and_says_so() {
    let Some(ctx) =
        BusyboxContext::new("build-sigint", "FROM base\nRUN echo started && sleep 60\n")
    else {
        return;
    };
    // Wait until the step runs (its log line appears), then Ctrl-C.
    let (mut build, saw_start, reader) = ctx.build_until_started(&["-t", "sigint:1"]);
    let started = std::time::Instant::now();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(build.child().id() as i32).unwrap(),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let status = build.wait().unwrap();
    let elapsed = started.elapsed();
    let output = reader.join().unwrap();
    assert!(saw_start, "the step never started:\n{output}");
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(output.contains("interrupted"), "{output}");
    assert!(
        elapsed.as_secs() < 10,
        "the RUN was not stopped ({elapsed:?})"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = ctx.root.display().to_string();
    assert!(
        !mounts.contains(&root),
        "mounts left under the state root:\n{mounts}"
    );
    let work: Vec<_> = std::fs::read_dir(ctx.root.join("work"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(work.is_empty(), "work directories left: {work:?}");
    let images = ctx.rbuild(&["images"]);
    assert!(!String::from_utf8_lossy(&images.stdout).contains("sigint"));
}

#[test]
fn rawjson_progress_is_one_event_per_line() {
    let Some(ctx) = BusyboxContext::new("build-json", "FROM base\nRUN echo hello-json\n") else {
        return;
    };
    let out = ctx.rbuild(&["build", "--progress=rawjson", "."]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stderr);
    let events: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "log" && e["line"] == "hello-json\n"),
        "{text}"
    );
    assert!(events.iter().any(|e| e["event"] == "done"), "{text}");
}

#[test]
fn quiet_prints_only_the_image_id() {
    let Some(ctx) = BusyboxContext::new("build-quiet", "FROM base\nRUN echo noisy\n") else {
        return;
    };
    for flag in ["-q", "--progress=quiet"] {
        let out = ctx.rbuild(&["build", flag, "."]);
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let id = stdout.trim();
        assert!(
            id.starts_with("sha256:") && id.len() == 71 && !stdout.contains("noisy"),
            "{flag}: {stdout:?}"
        );
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("noisy"),
            "{flag}"
        );
    }
}

#[test]
fn the_native_snapshotter_builds_the_same_image_as_overlay() {
    let Some(ctx) = BusyboxContext::new(
        "build-native",
        "FROM base AS lib\nRUN mkdir -p /opt/lib && echo lib > /opt/lib/a && echo gone > /opt/lib/b\n\
         FROM lib\nCOPY input.txt /opt/\n\
         RUN rm /opt/lib/b && echo changed > /opt/lib/a && ln /opt/lib/a /opt/lib/hard && ln -s a /opt/lib/sym\n\
         RUN rm -rf /opt/lib && mkdir /opt/lib && echo fresh > /opt/lib/c && chown 1000:1000 /opt/lib/c && chmod 4755 /opt/lib/c\n\
         RUN --mount=type=bind,from=lib,source=/opt/lib,target=/mnt,rw echo scribble > /mnt/x && cat /mnt/a > /from-lib\n\
         WORKDIR /work\n",
    ) else {
        return;
    };
    ctx.write("input.txt", "input\n");
    let env = [("SOURCE_DATE_EPOCH", "1700000000")];
    let mut digests = Vec::new();
    for (kind, root) in [("overlay", "state-overlay"), ("native", "state-native")] {
        let root = ctx.home.join(root);
        let out = ctx.home.join(format!("fs-{kind}"));
        let dest = format!("type=local,dest={}", out.display());
        let args = [
            "build",
            "--progress=plain",
            "--snapshotter",
            kind,
            "-t",
            "snap:1",
            "-o",
            "type=image",
            "-o",
            dest.as_str(),
            ".",
        ];
        let mut cmd = Command::new(rbuild_bin());
        cmd.args(args)
            .current_dir(&ctx.dir)
            .env("RBUILD_ROOT", &root)
            .env("NO_COLOR", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{kind}: {}", describe(&args, &o));
        assert_eq!(
            std::fs::read_to_string(out.join("opt/lib/c")).unwrap(),
            "fresh\n"
        );
        assert!(!out.join("opt/lib/a").exists() && !out.join("opt/lib/b").exists());
        assert_eq!(
            std::fs::read_to_string(out.join("from-lib")).unwrap(),
            "lib\n"
        );
        let o = Command::new(rbuild_bin())
            .args(["inspect", "snap:1"])
            .env("RBUILD_ROOT", &root)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        digests.push(v["digest"].as_str().unwrap().to_string());
    }
    assert_eq!(
        digests[0], digests[1],
        "overlay and native snapshotters built different images"
    );
    // Each used its own snapshotter: native keeps whole trees, overlay layer snapshots.
    let count = |dir: PathBuf| std::fs::read_dir(dir).map_or(0, |rd| rd.count());
    assert!(count(ctx.home.join("state-native/trees")) > 0);
    assert_eq!(count(ctx.home.join("state-native/snapshots")), 0);
    assert_eq!(count(ctx.home.join("state-overlay/trees")), 0);
    assert!(count(ctx.home.join("state-overlay/snapshots")) > 0);
    // The rw bind mount's write reached neither image nor the stage it read.
    assert!(!ctx.home.join("fs-native/opt/lib/x").exists());
}
