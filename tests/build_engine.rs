//! The build engine end to end through the real binary, on a busybox image that the build
//! itself makes (`FROM scratch` + `COPY` of Debian's busybox-static): RUN failures, stages,
//! mounts (cache, secret, bind), the image config and history, outputs read back by
//! independent tools (skopeo, umoci), reproducibility, the cache and prune.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::registry::tools_present;
use common::{describe, temp_home};

/// A context whose `rootfs/` holds busybox, and a Dockerfile starting with a `base` stage
/// that installs busybox's applets, followed by `rest`.
struct Ctx {
    home: PathBuf,
    dir: PathBuf,
    root: PathBuf,
}

const BASE: &str = "FROM scratch AS base\nCOPY rootfs/ /\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";

impl Ctx {
    fn new(name: &str, rest: &str) -> Option<Ctx> {
        if !rustix::process::geteuid().is_root() {
            eprintln!("SKIPPED (needs root): builds mount overlays");
            println!("SKIPPED (needs root): builds mount overlays");
            return None;
        }
        if !Path::new("/bin/busybox").exists() {
            panic!("/bin/busybox (Debian's busybox-static) is needed; .ci/run installs it");
        }
        let home = temp_home(name);
        let dir = home.join("ctx");
        std::fs::create_dir_all(dir.join("rootfs/bin")).unwrap();
        std::fs::create_dir_all(dir.join("rootfs/etc")).unwrap();
        std::fs::copy("/bin/busybox", dir.join("rootfs/bin/busybox")).unwrap();
        std::fs::write(
            dir.join("rootfs/etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(dir.join("rootfs/etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
        std::fs::write(dir.join("Dockerfile"), format!("{BASE}{rest}")).unwrap();
        Some(Ctx {
            root: home.join("state"),
            home,
            dir,
        })
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn rbuild(&self, args: &[&str]) -> Output {
        self.rbuild_env(args, &[])
    }

    fn rbuild_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(common::rbuild_bin());
        cmd.args(args)
            .current_dir(&self.dir)
            .env("RBUILD_ROOT", &self.root)
            .env("NO_COLOR", "1")
            .env_remove("SOURCE_DATE_EPOCH");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run rbuild")
    }

    fn build_ok(&self, args: &[&str]) -> String {
        let mut all = vec!["build", "--progress=plain"];
        all.extend_from_slice(args);
        all.push(".");
        let out = self.rbuild(&all);
        assert!(out.status.success(), "{}", describe(&all, &out));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Start `rbuild build ARGS .` in the background and wait (30 s at most) until a step
    /// prints a line ending in ` started`; returns the build, whether that happened, and a
    /// thread that collects the build's whole stderr.
    fn build_until_started(
        &self,
        args: &[&str],
    ) -> (std::process::Child, bool, std::thread::JoinHandle<String>) {
        let mut child = Command::new(common::rbuild_bin())
            .args(["build", "--progress=plain"])
            .args(args)
            .arg(".")
            .current_dir(&self.dir)
            .env("RBUILD_ROOT", &self.root)
            .env("NO_COLOR", "1")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            let mut seen = String::new();
            for line in std::io::BufReader::new(stderr).lines() {
                let line = line.unwrap();
                if line.ends_with(" started") {
                    let _ = tx.send(());
                }
                seen.push_str(&line);
                seen.push('\n');
            }
            seen
        });
        let started = rx.recv_timeout(std::time::Duration::from_secs(30)).is_ok();
        (child, started, reader)
    }

    fn inspect(&self, image: &str) -> serde_json::Value {
        let out = self.rbuild(&["inspect", image]);
        assert!(out.status.success(), "{}", describe(&["inspect"], &out));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

#[test]
fn a_failing_run_says_where_why_and_what_it_printed_and_tags_nothing() {
    let Some(ctx) = Ctx::new(
        "build-fail",
        "FROM base\nRUN echo first line && echo to-stderr >&2 && exit 3\n",
    ) else {
        return;
    };
    let args = ["build", "--progress=plain", "-t", "broken:1", "."];
    let out = ctx.rbuild(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&args, &out));
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
    let Some(ctx) = Ctx::new(
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
fn cache_mounts_persist_secrets_stay_out_and_binds_discard_writes() {
    let Some(ctx) = Ctx::new(
        "build-mounts",
        "FROM base AS data\nRUN mkdir /d && echo from-stage > /d/f\n\
         FROM base\n\
         RUN --mount=type=cache,target=/cache echo run-$(date +%s%N) >> /cache/log && cp /cache/log /cache-seen\n\
         RUN --mount=type=secret,id=token,required=true cat /run/secrets/token | wc -c > /secret-length\n\
         RUN --mount=type=secret,id=token,env=TOKEN test \"${#TOKEN}\" = 12 && echo ok > /secret-env\n\
         RUN --mount=type=bind,from=data,source=/d,target=/mnt,rw echo scribble > /mnt/new && cat /mnt/f > /bound\n\
         RUN --mount=type=bind,target=/ctx cat /ctx/input.txt > /from-context && test ! -e /ctx/ignored.txt\n",
    ) else {
        return;
    };
    ctx.write("input.txt", "context input\n");
    ctx.write("ignored.txt", "must not be seen\n");
    ctx.write(".dockerignore", "ignored.txt\n");
    let secret = ctx.home.join("token");
    std::fs::write(&secret, "s3cr3t-value").unwrap();
    let spec = format!("id=token,src={}", secret.display());
    let dest = ctx.home.join("image.tar");
    let oci = format!("type=oci,dest={}", dest.display());
    ctx.build_ok(&["--secret", &spec, "-o", &oci]);
    // A second build that cannot use the step cache still sees the cache mount's file.
    let out = ctx.home.join("fs");
    ctx.build_ok(&[
        "--no-cache",
        "--secret",
        &spec,
        "-o",
        &format!("type=local,dest={}", out.display()),
    ]);
    let seen = std::fs::read_to_string(out.join("cache-seen")).unwrap();
    assert_eq!(
        seen.lines().count(),
        2,
        "cache mount did not persist: {seen}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("secret-length"))
            .unwrap()
            .trim(),
        "12"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("secret-env")).unwrap(),
        "ok\n"
    );
    assert!(!out.join("run/secrets/token").exists());
    assert_eq!(
        std::fs::read_to_string(out.join("bound")).unwrap(),
        "from-stage\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("from-context")).unwrap(),
        "context input\n"
    );
    // No layer of the exported image holds the secret.
    let bytes = std::fs::read(&dest).unwrap();
    assert!(
        !contains(&bytes, b"s3cr3t-value"),
        "the archive holds the secret"
    );
    for layer in oci_layers(&ctx.home, &dest) {
        assert!(
            !contains(&layer, b"s3cr3t-value"),
            "a layer holds the secret"
        );
        assert!(
            !contains(&layer, b"scribble"),
            "a bind mount's write reached a layer"
        );
    }
}

#[test]
fn outputs_read_back_by_skopeo_and_umoci() {
    if !tools_present(&["skopeo", "umoci"]) {
        return;
    }
    let Some(ctx) = Ctx::new(
        "build-outputs",
        "FROM base\nRUN echo out > /out.txt\nCMD [\"cat\", \"/out.txt\"]\n",
    ) else {
        return;
    };
    let tar = ctx.home.join("oci.tar");
    let layout = ctx.home.join("layout");
    let docker = ctx.home.join("docker.tar");
    let fs_tar = ctx.home.join("fs.tar");
    ctx.build_ok(&[
        "-t",
        "outputs:1",
        "-o",
        &format!("type=oci,dest={}", tar.display()),
        "-o",
        &format!("type=oci,dest={},tar=false", layout.display()),
        "-o",
        &format!("type=docker,dest={}", docker.display()),
        "-o",
        &format!("type=tar,dest={}", fs_tar.display()),
    ]);
    let local = ctx.inspect("outputs:1");
    let digest = local["digest"].as_str().unwrap().to_string();
    for source in [
        format!("oci-archive:{}", tar.display()),
        format!("oci:{}", layout.display()),
    ] {
        let out = Command::new("skopeo")
            .args(["inspect", "--raw", &source])
            .output()
            .unwrap();
        assert!(out.status.success(), "skopeo inspect {source}: {out:?}");
        let raw = out.stdout;
        assert_eq!(
            format!("sha256:{}", sha256_hex(&raw)),
            digest,
            "{source} holds another manifest"
        );
    }
    let out = Command::new("skopeo")
        .args(["inspect", &format!("docker-archive:{}", docker.display())])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect docker-archive: {out:?}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["Layers"].as_array().map(Vec::len),
        local["manifest"]["layers"].as_array().map(Vec::len),
        "{v}"
    );
    // docker load names the image from manifest.json's RepoTags.
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(&docker)
        .arg("manifest.json")
        .output()
        .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m[0]["RepoTags"], serde_json::json!(["outputs:1"]), "{m}");

    // umoci unpacks the layout into the same files.
    let bundle = ctx.home.join("bundle");
    let tag = "1";
    let out = Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:{tag}", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(out.status.success(), "umoci unpack: {out:?}");
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/out.txt")).unwrap(),
        "out\n"
    );
    // The flat tar has the file too.
    let list = Command::new("tar")
        .arg("-tf")
        .arg(&fs_tar)
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&list.stdout);
    assert!(
        names
            .lines()
            .any(|l| l.trim_start_matches("./") == "out.txt"),
        "{names}"
    );
}

#[test]
fn source_date_epoch_builds_the_same_image_anywhere_and_prune_clears_the_cache() {
    let Some(ctx) = Ctx::new(
        "build-repro",
        "FROM base\nCOPY input.txt /\nRUN cat /input.txt > /copy.txt\n",
    ) else {
        return;
    };
    ctx.write("input.txt", "same\n");
    let env = [("SOURCE_DATE_EPOCH", "1700000000")];
    let build = |root: &Path| {
        let mut cmd = Command::new(common::rbuild_bin());
        cmd.args(["build", "--progress=plain", "-t", "repro:1", "."])
            .current_dir(&ctx.dir)
            .env("RBUILD_ROOT", root)
            .env("NO_COLOR", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    build(&ctx.root);
    let second_root = ctx.home.join("state2");
    build(&second_root);
    let digest = |root: &Path| {
        let out = Command::new(common::rbuild_bin())
            .args(["inspect", "repro:1"])
            .env("RBUILD_ROOT", root)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (v["digest"].clone(), v["config"]["created"].clone())
    };
    let (a, created) = digest(&ctx.root);
    assert_eq!(a, digest(&second_root).0, "two state roots, two images");
    assert_eq!(created, "2023-11-14T22:13:20Z");

    // A rebuild is all cache; after prune, the steps run again.
    let again = build(&ctx.root);
    assert_eq!(again.matches(" CACHED").count(), 4, "{again}");
    let out = ctx.rbuild(&["prune", "--grace", "0s"]);
    assert!(out.status.success(), "{}", describe(&["prune"], &out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("build cache record"),
        "{}",
        describe(&["prune"], &out)
    );
    let after = build(&ctx.root);
    assert_eq!(after.matches(" CACHED").count(), 0, "{after}");
    assert_eq!(
        digest(&ctx.root).0,
        a,
        "the same inputs give the same image"
    );
}

#[test]
fn rawjson_progress_is_one_event_per_line() {
    let Some(ctx) = Ctx::new("build-json", "FROM base\nRUN echo hello-json\n") else {
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

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn sha256_hex(bytes: &[u8]) -> String {
    rbuild::oci::digest::Digest::sha256(bytes).hex().to_string()
}

/// Every layer of an OCI archive, decompressed.
fn oci_layers(home: &Path, archive: &Path) -> Vec<Vec<u8>> {
    let dir = home.join("unpacked-archive");
    std::fs::create_dir_all(&dir).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| {
        dir.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let out = Command::new("gzip")
                .arg("-dc")
                .arg(blob(l["digest"].as_str().unwrap()))
                .output()
                .unwrap();
            assert!(out.status.success());
            out.stdout
        })
        .collect()
}

#[test]
fn ctrl_c_stops_the_run_unmounts_and_says_so() {
    let Some(ctx) = Ctx::new("build-sigint", "FROM base\nRUN echo started && sleep 60\n") else {
        return;
    };
    // Wait until the step runs (its log line appears), then Ctrl-C.
    let (mut child, saw_start, reader) = ctx.build_until_started(&["-t", "sigint:1"]);
    let started = std::time::Instant::now();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let status = child.wait().unwrap();
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
fn independent_stages_run_side_by_side() {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("SKIPPED: one core, stages run one at a time");
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
    let Some(ctx) = Ctx::new("build-parallel", &rest) else {
        return;
    };
    let out = ctx.home.join("fs");
    ctx.build_ok(&["-o", &format!("type=local,dest={}", out.display())]);
    assert_eq!(std::fs::read_to_string(out.join("a.txt")).unwrap(), "a\n");
    assert_eq!(std::fs::read_to_string(out.join("b.txt")).unwrap(), "b\n");
}

#[test]
fn run_for_another_architecture_is_refused_clearly() {
    let Some(ctx) = Ctx::new("build-platform", "FROM base\nRUN true\n") else {
        return;
    };
    let other = if cfg!(target_arch = "aarch64") {
        "linux/amd64"
    } else {
        "linux/arm64"
    };
    let args = ["build", "--progress=plain", "--platform", other, "."];
    let out = ctx.rbuild(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&args, &out));
    assert!(
        stderr.contains("does not emulate other architectures") && stderr.contains("Dockerfile:3"),
        "{stderr}"
    );
}

/// A child process killed when dropped (a server for one test).
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("nothing listens on 127.0.0.1:{port}");
}

#[test]
fn add_downloads_urls_with_checksums_and_clones_git_repositories() {
    if !tools_present(&["python3", "git"]) {
        return;
    }
    let Some(ctx) = Ctx::new("build-add-remote", "") else {
        return;
    };
    // An HTTP server (Python's) with one file.
    let site = ctx.home.join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("hello.txt"), "hello over http\n").unwrap();
    let sum = rbuild::oci::digest::Digest::sha256(b"hello over http\n");
    let http_port = common::registry::free_port();
    let _http = Server(
        Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(http_port.to_string())
            .current_dir(&site)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // A Git repository served by git daemon.
    let repos = ctx.home.join("repos");
    let work = ctx.home.join("repo-work");
    std::fs::create_dir_all(&work).unwrap();
    let git = |dir: &Path, args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    };
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(work.join("docs")).unwrap();
    std::fs::write(work.join("docs/guide.md"), "# guide\n").unwrap();
    std::fs::write(work.join("README"), "repo readme\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "first"]);
    git(&work, &["tag", "v1"]);
    std::fs::create_dir_all(&repos).unwrap();
    git(
        &repos,
        &["clone", "-q", "--bare", work.to_str().unwrap(), "repo.git"],
    );
    let git_port = common::registry::free_port();
    let _git = Server(
        Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
            ])
            .arg(format!("--port={git_port}"))
            .arg(format!("--base-path={}", repos.display()))
            .arg(&repos)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(http_port);
    wait_for_port(git_port);

    let url = format!("http://127.0.0.1:{http_port}/hello.txt");
    let repo = format!("git://127.0.0.1:{git_port}/repo.git");
    std::fs::write(
        ctx.dir.join("Dockerfile"),
        format!(
            "{BASE}FROM base\nADD {url} /downloads/\nADD --checksum={sum} {url} /checked.txt\n\
             ADD {repo}#v1 /src\nADD {repo}#main:docs /docs\n"
        ),
    )
    .unwrap();
    let out = ctx.home.join("fs");
    ctx.build_ok(&["-o", &format!("type=local,dest={}", out.display())]);
    assert_eq!(
        std::fs::read_to_string(out.join("downloads/hello.txt")).unwrap(),
        "hello over http\n"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out.join("checked.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "a downloaded file is 0600");
    assert_eq!(
        std::fs::read_to_string(out.join("src/README")).unwrap(),
        "repo readme\n"
    );
    assert!(
        !out.join("src/.git").exists(),
        ".git is left out by default"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("docs/guide.md")).unwrap(),
        "# guide\n"
    );

    // A wrong checksum fails the build and names both digests.
    let wrong = rbuild::oci::digest::Digest::sha256(b"something else");
    std::fs::write(
        ctx.dir.join("Dockerfile"),
        format!("{BASE}FROM base\nADD --checksum={wrong} {url} /x\n"),
    )
    .unwrap();
    let args = ["build", "--progress=plain", "."];
    let o = ctx.rbuild(&args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&args, &o));
    assert!(
        stderr.contains(&wrong.to_string()) && stderr.contains(&sum.to_string()),
        "{stderr}"
    );
}

#[test]
fn ssh_agents_reach_run_through_ssh_flags() {
    if !tools_present(&["ssh-agent"]) {
        return;
    }
    let Some(ctx) = Ctx::new(
        "build-ssh",
        "FROM base\nRUN --mount=type=ssh test -S \"$SSH_AUTH_SOCK\" && echo \"$SSH_AUTH_SOCK\" > /sock-path\n\
         RUN --mount=type=ssh,id=deploy,target=/run/deploy.sock test -S /run/deploy.sock && echo deploy > /deploy\n",
    ) else {
        return;
    };
    let sock = ctx.home.join("agent.sock");
    let _agent = Server(
        Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..100 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = ctx.home.join("fs");
    let deploy = format!("deploy={}", sock.display());
    let dest = format!("type=local,dest={}", out.display());
    let args = [
        "build",
        "--progress=plain",
        "--ssh",
        "default",
        "--ssh",
        deploy.as_str(),
        "-o",
        dest.as_str(),
        ".",
    ];
    let o = ctx.rbuild_env(&args, &[("SSH_AUTH_SOCK", sock.to_str().unwrap())]);
    assert!(o.status.success(), "{}", describe(&args, &o));
    assert_eq!(
        std::fs::read_to_string(out.join("sock-path")).unwrap(),
        "/run/buildkit/ssh_agent.0\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("deploy")).unwrap(),
        "deploy\n"
    );
    assert!(
        !out.join("run/deploy.sock").exists(),
        "the socket stayed out of the image"
    );

    // Without --ssh, the step fails and says which flag is missing.
    let args = ["build", "--progress=plain", "--no-cache", "."];
    let o = ctx.rbuild(&args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&args, &o));
    assert!(stderr.contains("--ssh default"), "{stderr}");
}

#[test]
fn the_native_snapshotter_builds_the_same_image_as_overlay() {
    let Some(ctx) = Ctx::new(
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
        let mut cmd = Command::new(common::rbuild_bin());
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
        let o = Command::new(common::rbuild_bin())
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

#[test]
fn heredocs_archives_and_copy_flags_through_a_build() {
    let Some(ctx) = Ctx::new(
        "build-copyflags",
        "FROM base\n\
         COPY <<\"EOF\" /etc/motd\nhello $USER\nEOF\n\
         ENV WHO=world\n\
         COPY <<EOF /etc/greeting\nhello $WHO\nEOF\n\
         RUN <<EOF\nset -e\necho from-heredoc > /heredoc.txt\nEOF\n\
         ADD bundle.tar.gz /opt/\n\
         COPY --chmod=0750 --chown=app:app tool.sh /usr/local/bin/tool\n\
         COPY --exclude=*.log logs/ /logs/\n\
         COPY --parents src/./a/b.txt /tree/\n",
    ) else {
        return;
    };
    ctx.write("tool.sh", "#!/bin/sh\necho tool\n");
    ctx.write("logs/keep.txt", "keep\n");
    ctx.write("logs/drop.log", "drop\n");
    ctx.write("src/a/b.txt", "b\n");
    // A gzip tar made by the system's tar: ADD unpacks it.
    let staging = ctx.home.join("staging");
    std::fs::create_dir_all(staging.join("pkg")).unwrap();
    std::fs::write(staging.join("pkg/data.txt"), "packed\n").unwrap();
    let st = Command::new("tar")
        .arg("-czf")
        .arg(ctx.dir.join("bundle.tar.gz"))
        .arg("-C")
        .arg(&staging)
        .arg("pkg")
        .status()
        .unwrap();
    assert!(st.success());
    let out = ctx.home.join("fs");
    ctx.build_ok(&["-o", &format!("type=local,dest={}", out.display())]);
    let read =
        |p: &str| std::fs::read_to_string(out.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert_eq!(
        read("etc/motd"),
        "hello $USER\n",
        "a quoted heredoc is not expanded"
    );
    assert_eq!(
        read("etc/greeting"),
        "hello world\n",
        "an unquoted heredoc is"
    );
    assert_eq!(read("heredoc.txt"), "from-heredoc\n");
    assert_eq!(read("opt/pkg/data.txt"), "packed\n");
    use std::os::unix::fs::MetadataExt;
    let tool = std::fs::metadata(out.join("usr/local/bin/tool")).unwrap();
    assert_eq!(tool.mode() & 0o7777, 0o750);
    assert!(out.join("logs/keep.txt").exists() && !out.join("logs/drop.log").exists());
    assert_eq!(read("tree/a/b.txt"), "b\n");
    // Owners are in the image's layers (a local output as root keeps them).
    assert_eq!((tool.uid(), tool.gid()), (1000, 1000));
}

#[test]
fn words_on_an_image_base_expand_with_the_image_env() {
    let Some(ctx) = Ctx::new("build-image-env", "ENV HOME_DIR=/home/app\n") else {
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
    let Some(ctx) = Ctx::new(
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
    let args = ["build", "--progress=plain", "."];
    let o = ctx.rbuild(&args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&args, &o));
    assert!(
        stderr.contains("ONBUILD trigger `COPY trig.txt ./`") && stderr.contains("Dockerfile:1"),
        "{stderr}"
    );
}

#[test]
fn prune_waits_for_a_running_build() {
    let Some(ctx) = Ctx::new(
        "build-prune-wait",
        "FROM base\nRUN echo started && sleep 2 && echo finished > /done.txt\n",
    ) else {
        return;
    };
    let (mut build, started, reader) = ctx.build_until_started(&["-t", "busy:1"]);
    assert!(started, "the step never started");
    // The build's step is running: prune must wait for it, then free what is unused.
    let prune = ctx.rbuild(&["prune", "--grace", "0s"]);
    let status = build.wait().unwrap();
    let output = reader.join().unwrap();
    assert!(status.success(), "{output}");
    assert!(prune.status.success(), "{}", describe(&["prune"], &prune));
    assert!(
        String::from_utf8_lossy(&prune.stderr).contains("waiting for running builds"),
        "{}",
        describe(&["prune"], &prune)
    );
    // The tagged result survived the prune and is whole.
    let out = ctx.home.join("fs");
    ctx.build_ok(&["-o", &format!("type=local,dest={}", out.display())]);
    assert_eq!(
        std::fs::read_to_string(out.join("done.txt")).unwrap(),
        "finished\n"
    );
}

#[test]
fn the_cache_tells_compressions_and_source_date_epochs_apart() {
    let Some(ctx) = Ctx::new("build-cache-layers", "FROM base\nRUN echo x > /x\n") else {
        return;
    };
    let media_types = |ctx: &Ctx| -> Vec<String> {
        ctx.inspect("layers:1")["manifest"]["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["mediaType"].as_str().unwrap().to_string())
            .collect()
    };
    ctx.build_ok(&["-t", "layers:1"]);
    assert!(media_types(&ctx).iter().all(|m| m.ends_with("+gzip")));
    // Asking for zstd must not reuse the gzip layers from the cache.
    let progress = ctx.build_ok(&["-t", "layers:1", "-o", "type=image,compression=zstd"]);
    assert!(!progress.contains("CACHED"), "{progress}");
    assert!(
        media_types(&ctx).iter().all(|m| m.ends_with("+zstd")),
        "{:?}",
        media_types(&ctx)
    );
    // Nor a SOURCE_DATE_EPOCH build the layers of one without.
    let out = ctx.rbuild_env(
        &["build", "--progress=plain", "-t", "layers:1", "."],
        &[("SOURCE_DATE_EPOCH", "1700000000")],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("CACHED"));
}

#[test]
fn proxy_build_args_reach_run_but_not_the_cache_key_or_image() {
    let Some(ctx) = Ctx::new(
        "build-proxy",
        "FROM base\nRUN echo \"$HTTP_PROXY $http_proxy\" > /proxy.txt\n",
    ) else {
        return;
    };
    let out = ctx.home.join("fs");
    let dest = format!("type=local,dest={}", out.display());
    ctx.build_ok(&["--build-arg", "HTTP_PROXY=http://proxy-a:3128", "-o", &dest]);
    assert_eq!(
        std::fs::read_to_string(out.join("proxy.txt")).unwrap(),
        "http://proxy-a:3128 http://proxy-a:3128\n"
    );
    let progress = ctx.build_ok(&[
        "--build-arg",
        "HTTP_PROXY=http://proxy-b:3128",
        "-t",
        "proxy:1",
    ]);
    assert_eq!(progress.matches(" CACHED").count(), 3, "{progress}");
    let v = ctx.inspect("proxy:1");
    let text = v["config"].to_string();
    assert!(
        !text.contains("proxy-a") && !text.contains("proxy-b"),
        "{text}"
    );
}

#[test]
fn push_sends_the_built_image_to_its_registry() {
    if !tools_present(&["docker-registry", "skopeo"]) {
        return;
    }
    let Some(ctx) = Ctx::new("build-push", "FROM base\nRUN echo pushed > /p.txt\n") else {
        return;
    };
    let reg = common::registry::Registry::start(None);
    let conf = common::mirror_conf(&ctx.home, "127.0.0.1:1", &[reg.addr.as_str()]);
    let name = format!("{}/team/app:1", reg.addr);
    let args = [
        "build",
        "--progress=plain",
        "--push",
        "-t",
        name.as_str(),
        ".",
    ];
    let out = ctx.rbuild_env(
        &args,
        &[
            ("CONTAINERS_REGISTRIES_CONF", conf.to_str().unwrap()),
            ("DOCKER_CONFIG", ctx.home.join("docker").to_str().unwrap()),
        ],
    );
    assert!(out.status.success(), "{}", describe(&args, &out));
    // The registry serves the very manifest the store holds.
    let local = ctx.inspect(&name);
    let raw = common::registry::skopeo_raw_manifest(&name, None);
    assert_eq!(
        format!("sha256:{}", sha256_hex(&raw)),
        local["digest"].as_str().unwrap()
    );
    // And a second name through type=registry.
    let other = format!("{}/team/other:2", reg.addr);
    let spec = format!("type=registry,name={other}");
    let args = ["build", "--progress=plain", "-o", spec.as_str(), "."];
    let out = ctx.rbuild_env(
        &args,
        &[
            ("CONTAINERS_REGISTRIES_CONF", conf.to_str().unwrap()),
            ("DOCKER_CONFIG", ctx.home.join("docker").to_str().unwrap()),
        ],
    );
    assert!(out.status.success(), "{}", describe(&args, &out));
    assert_eq!(common::registry::skopeo_raw_manifest(&other, None), raw);
}

#[test]
fn each_name_is_tagged_once() {
    let Some(ctx) = Ctx::new("build-names", "FROM base\n") else {
        return;
    };
    // `-o type=image` without name= takes the -t names: they must not be tagged twice.
    let progress = ctx.build_ok(&["-t", "a:1", "-t", "b:1", "-o", "type=image"]);
    assert_eq!(
        progress.matches("naming to docker.io/library/a:1").count(),
        1,
        "{progress}"
    );
    assert_eq!(
        progress.matches("naming to docker.io/library/b:1").count(),
        1,
        "{progress}"
    );
}

#[test]
fn quiet_prints_only_the_image_id() {
    let Some(ctx) = Ctx::new("build-quiet", "FROM base\nRUN echo noisy\n") else {
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
fn source_date_epoch_sets_the_times_of_copied_files() {
    let Some(ctx) = Ctx::new("build-sde-copy", "FROM base\nCOPY input.txt /in/\n") else {
        return;
    };
    ctx.write("input.txt", "x\n");
    let out = ctx.home.join("fs");
    let dest = format!("type=local,dest={}", out.display());
    let o = ctx.rbuild_env(
        &["build", "--progress=plain", "-o", dest.as_str(), "."],
        &[("SOURCE_DATE_EPOCH", "1700000000")],
    );
    assert!(o.status.success(), "{o:?}");
    use std::os::unix::fs::MetadataExt;
    for p in ["in/input.txt", "in"] {
        let m = std::fs::metadata(out.join(p)).unwrap();
        assert_eq!(m.mtime(), 1_700_000_000, "{p}");
    }
}
