//! The build cache that travels (docs/cache.md), through the real binary: two state roots
//! stand for two CI machines, a real registry (or a directory) carries the cache between
//! them. What a machine takes from the cache is read from the build's own summary (steps
//! run, steps cached, layers fetched) and checked against the image it makes.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::busybox_context::BusyboxContext;
use crate::common::busybox_image;
use crate::common::registry::{Registry, skopeo_raw_manifest};
use crate::common::{describe, mirror_conf, require};

/// A multi-stage build: a `builder` stage whose file the final stage copies, then the
/// context's `app.txt` and a RUN that reads it.
const DOCKERFILE: &str = "FROM base AS builder\nRUN echo built > /artifact\n\nFROM base\nCOPY --from=builder /artifact /artifact\nCOPY app.txt /app/\nRUN cat /app/app.txt /artifact > /out.txt\n";

/// One test's context, registry and registries.conf; `build` runs on any state root.
struct Machines {
    ctx: BusyboxContext,
    reg: Option<Registry>,
    conf: PathBuf,
}

impl Machines {
    fn new(name: &str, registry: bool) -> Option<Machines> {
        if registry && !require::tools(&["docker-registry", "skopeo"]) {
            return None;
        }
        let ctx = BusyboxContext::new(name, DOCKERFILE)?;
        ctx.write("app.txt", "v1\n");
        let reg = registry.then(|| Registry::start(None));
        let insecure: Vec<&str> = reg.iter().map(|r| r.addr.as_str()).collect();
        let conf = mirror_conf(&ctx.home, "127.0.0.1:1", &insecure);
        Some(Machines { ctx, reg, conf })
    }

    fn addr(&self) -> &str {
        &self.reg.as_ref().expect("a registry").addr
    }

    /// A machine's state root (`a`, `b`, ...).
    fn root(&self, machine: &str) -> PathBuf {
        self.ctx.home.join(format!("state-{machine}"))
    }

    /// `rbuild build --progress=plain ARGS .` on `machine`'s state root.
    fn run(&self, machine: &str, args: &[&str]) -> Output {
        self.build_cmd(machine, &self.ctx.dir, args)
            .output()
            .expect("run rbuild")
    }

    /// `rbuild build --progress=plain ARGS .` in `dir`, on `machine`'s state root.
    fn build_cmd(&self, machine: &str, dir: &Path, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(crate::common::rbuild_bin());
        cmd.args(["build", "--progress=plain"])
            .args(args)
            .arg(".")
            .current_dir(dir)
            .env("RBUILD_ROOT", self.root(machine))
            .env("CONTAINERS_REGISTRIES_CONF", &self.conf)
            .env("DOCKER_CONFIG", self.ctx.home.join("docker"))
            .env("NO_COLOR", "1")
            .env_remove("SOURCE_DATE_EPOCH");
        cmd
    }

    /// A build that must succeed; returns its summary.
    fn build(&self, machine: &str, args: &[&str]) -> Summary {
        let out = self.run(machine, args);
        assert!(out.status.success(), "{}", describe(args, &out));
        Summary::of(&String::from_utf8_lossy(&out.stderr))
    }
}

/// What a build's last line and warnings say.
#[derive(Debug)]
struct Summary {
    image_id: String,
    ran: usize,
    cached: usize,
    fetched: usize,
    warnings: Vec<String>,
    stderr: String,
}

impl Summary {
    fn of(stderr: &str) -> Summary {
        let line = stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("built sha256:"))
            .unwrap_or_else(|| panic!("no summary line in:\n{stderr}"));
        let number_before = |what: &str| -> usize {
            line.find(what)
                .map(|i| {
                    line[..i]
                        .rsplit(|c: char| !c.is_ascii_digit())
                        .find(|s| !s.is_empty())
                        .unwrap()
                        .parse()
                        .unwrap()
                })
                .unwrap_or(0)
        };
        Summary {
            image_id: line.split_whitespace().nth(1).unwrap().to_string(),
            ran: number_before(" step(s) run"),
            cached: number_before(" cached)"),
            fetched: number_before(" layer(s) fetched"),
            warnings: stderr
                .lines()
                .filter(|l| l.starts_with("warning: "))
                .map(str::to_string)
                .collect(),
            stderr: stderr.to_string(),
        }
    }
}

/// The files of `image` in `machine`'s store, read through `rbuild run`.
fn out_txt(m: &Machines, machine: &str, image: &str) -> String {
    let out = m.ctx.rbuild_env(
        &["run", "--rm", image, "cat", "/out.txt"],
        &[("RBUILD_ROOT", m.root(machine).to_str().unwrap())],
    );
    assert!(out.status.success(), "{}", describe(&["run", image], &out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_registry_cache_makes_an_empty_machine_build_from_cache() {
    let Some(m) = Machines::new("cache-registry", true) else {
        return;
    };
    let cache = format!("{}/ci/cache:app", m.addr());
    let to = format!("type=registry,ref={cache},mode=max");
    let from = format!("type=registry,ref={cache}");

    // Machine A: nothing cached, no cache to read yet (a warning, not a failure).
    let a = m.build(
        "a",
        &["--cache-from", &from, "--cache-to", &to, "-t", "app:1"],
    );
    assert_eq!((a.ran, a.cached), (6, 0), "{}", a.stderr);
    assert!(
        a.warnings.iter().any(|w| w.contains("no cache there yet")),
        "{:?}",
        a.warnings
    );
    assert!(a.stderr.contains("exporting cache to"), "{}", a.stderr);
    // The cache is an OCI index in the registry, naming the rbuild cache manifest.
    let index: serde_json::Value =
        serde_json::from_slice(&skopeo_raw_manifest(&cache, None)).unwrap();
    assert_eq!(
        index["manifests"][0]["artifactType"], "application/vnd.rbuild.cache.v1",
        "{index}"
    );

    // Machine B, empty: every step from the cache, the very image A made, and its layers
    // fetched only because the image is tagged in B's store.
    let b = m.build("b", &["--cache-from", &from, "-t", "app:1"]);
    assert_eq!((b.ran, b.cached), (0, 6), "{}", b.stderr);
    assert_eq!(b.image_id, a.image_id, "{}", b.stderr);
    assert!(b.warnings.is_empty(), "{:?}", b.warnings);
    assert_eq!(out_txt(&m, "b", "app:1"), "v1\nbuilt\n");

    // An edit of app.txt on machine C (empty): the builder stage and the first COPY come
    // from the cache, only the COPY of app.txt and the RUN after it run.
    m.ctx.write("app.txt", "v2\n");
    let c = m.build("c", &["--cache-from", &from, "-t", "app:2"]);
    assert_eq!((c.ran, c.cached), (2, 4), "{}", c.stderr);
    assert_eq!(out_txt(&m, "c", "app:2"), "v2\nbuilt\n");
}

/// Machine B builds from A's registry cache and pushes to the same registry: every step is
/// cached, and not one layer is downloaded — not the base image's, not the steps' — since
/// each is mounted across repositories or already there. The name is then not tagged in
/// B's store (it would need the layers); a build that runs a step fetches what it needs,
/// and tags the base image it pulled once it is whole.
#[test]
fn a_push_from_an_imported_cache_downloads_no_layer() {
    let Some(m) = Machines::new("cache-push", true) else {
        return;
    };
    let base = format!("{}/lib/busybox:1", m.addr());
    busybox_image::publish(
        &m.ctx.home.join("base-oci"),
        &base,
        &[("amd64", Path::new("/bin/busybox"))],
    );
    m.ctx.write(
        "Dockerfile",
        &format!("FROM {base}\nCOPY app.txt /app/\nRUN cat /app/app.txt > /out.txt\n"),
    );
    let cache = format!("{}/ci/cache:app", m.addr());
    let app1 = format!("{}/ci/app:1", m.addr());
    let app2 = format!("{}/ci/app:2", m.addr());
    let a = m.build(
        "a",
        &[
            "--cache-to",
            &format!("type=registry,ref={cache},mode=max"),
            "-t",
            &app1,
            "--push",
        ],
    );
    assert_eq!(a.ran, 2, "{}", a.stderr);
    let manifest: serde_json::Value =
        serde_json::from_slice(&skopeo_raw_manifest(&app1, None)).unwrap();
    let layers: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(layers.len(), 3, "{manifest}");

    let before = m.reg.as_ref().unwrap().blob_gets().len();
    let b = m.build("b", &["--cache-from", &cache, "-t", &app2, "--push"]);
    assert_eq!((b.ran, b.cached), (0, 2), "{}", b.stderr);
    let gets = m.reg.as_ref().unwrap().blob_gets()[before..].to_vec();
    for layer in &layers {
        assert!(
            !gets.contains(layer),
            "layer {layer} was downloaded: {gets:?}\n{}",
            b.stderr
        );
    }
    assert_eq!(b.fetched, 0, "{}", b.stderr);
    // The same image, under the new name.
    assert_eq!(
        skopeo_raw_manifest(&app2, None),
        skopeo_raw_manifest(&app1, None)
    );
    assert_eq!(b.image_id, a.image_id);
    // Not tagged in B's store: it holds none of the layers.
    let images = m.ctx.rbuild_env(
        &["images"],
        &[("RBUILD_ROOT", m.root("b").to_str().unwrap())],
    );
    assert!(
        !String::from_utf8_lossy(&images.stdout).contains("ci/app"),
        "{}",
        String::from_utf8_lossy(&images.stdout)
    );
    assert!(b.stderr.contains("not tagged here"), "{}", b.stderr);

    // Machine C, without the cache: the base's layer is fetched for the steps that run,
    // and the base is tagged in C's store once whole; the result is tagged as usual.
    let c = m.build("c", &["-t", "app:c"]);
    assert_eq!(c.ran, 2);
    // The step that needed it said so.
    assert!(
        c.stderr
            .contains(&format!("fetching {}", &layers[0]["sha256:".len()..][..12])),
        "{}",
        c.stderr
    );
    // (The access log does show downloads: this one fetched the base's layer.)
    assert!(
        m.reg.as_ref().unwrap().blob_gets().contains(&layers[0]),
        "{}",
        c.stderr
    );
    let images = m.ctx.rbuild_env(
        &["images"],
        &[("RBUILD_ROOT", m.root("c").to_str().unwrap())],
    );
    let listed = String::from_utf8_lossy(&images.stdout);
    assert!(
        listed.contains("lib/busybox") && listed.contains("app"),
        "{listed}"
    );
    assert_eq!(out_txt(&m, "c", "app:c"), "v1\n");
}

/// `mounts=` carries a `RUN --mount=type=cache` directory: machine B, after an edit, runs
/// the step again with the directory A filled, restored before the step, and needs no
/// network for what A downloaded into it. The same contents make the same layer.
#[test]
fn cache_mounts_travel_and_are_restored_before_the_step_that_mounts_them() {
    let Some(m) = Machines::new("cache-mounts", true) else {
        return;
    };
    let files = m.ctx.home.join("www");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("data"), "downloaded once\n").unwrap();
    let (_server, port) = crate::common::servers::http(&files);
    m.ctx.write(
        "Dockerfile",
        &format!(
            "{}FROM base\nCOPY app.txt /app/\nRUN --mount=type=cache,id=dl,target=/cache,uid=1000 sh -c 'test -f /cache/data || wget -q -O /cache/data http://127.0.0.1:{port}/data; cat /cache/data /app/app.txt > /out.txt'\n",
            crate::common::busybox_context::BASE
        ),
    );
    let cache = format!("{}/ci/cache:mounts", m.addr());
    let to = format!("type=registry,ref={cache},mode=max,mounts=dl");
    let digest_of = |s: &Summary| -> String {
        let line = s
            .stderr
            .lines()
            .find(|l| l.contains("cache mount(s),"))
            .unwrap_or_else(|| panic!("no export line: {}", s.stderr))
            .to_string();
        assert!(line.contains(" 1 cache mount(s)"), "{line}");
        line.rsplit(' ').next().unwrap().to_string()
    };
    let a = m.build("a", &["--cache-to", &to, "-t", "app:1"]);
    assert_eq!(out_txt(&m, "a", "app:1"), "downloaded once\nv1\n");
    // Exported again, unchanged: the very same cache, byte for byte.
    let again = m.build("a", &["--cache-to", &to, "-t", "app:1"]);
    assert_eq!(again.ran, 0);
    assert_eq!(digest_of(&again), digest_of(&a));

    // Machine B, an edit, and no network: the RUN runs again and finds /cache/data.
    m.ctx.write("app.txt", "v2\n");
    let b = m.build(
        "b",
        &[
            "--cache-from",
            &cache,
            "--network",
            "none",
            "--cache-to",
            &to,
            "-t",
            "app:2",
        ],
    );
    // (`--network none` is in every RUN's key: the base's RUN runs again too.)
    assert_eq!(b.ran, 3, "{}", b.stderr);
    assert_eq!(out_txt(&m, "b", "app:2"), "downloaded once\nv2\n");
    // B exported it again (it was restored, and the step left it as it was).
    assert!(b.stderr.contains(" 1 cache mount(s),"), "{}", b.stderr);
    // Without the cache mount's contents the same build needs the network, and fails: it
    // is the restore that made B's build work.
    let plain = format!("type=registry,ref={}/ci/cache:nomounts,mode=max", m.addr());
    m.build("a", &["--cache-to", &plain, "-t", "app:1"]);
    let d = m.run(
        "d",
        &[
            "--cache-from",
            &format!("{}/ci/cache:nomounts", m.addr()),
            "--network",
            "none",
        ],
    );
    assert_eq!(
        d.status.code(),
        Some(1),
        "the cache mount was not carried, so wget had to run: {}",
        String::from_utf8_lossy(&d.stderr)
    );
}

/// `--cache-to type=inline` puts the final image's records in its manifest: any image built
/// that way is a cache, and `--cache-from IMAGE` makes an empty machine's build cached.
#[test]
fn an_inline_cache_travels_in_the_pushed_image() {
    let Some(m) = Machines::new("cache-inline", true) else {
        return;
    };
    let image = format!("{}/ci/app:1", m.addr());
    let a = m.build("a", &["--cache-to", "type=inline", "-t", &image, "--push"]);
    assert_eq!(a.ran, 6);
    let manifest: serde_json::Value =
        serde_json::from_slice(&skopeo_raw_manifest(&image, None)).unwrap();
    let records = manifest["annotations"]["dev.rbuild.cache.v1"]
        .as_str()
        .unwrap_or_else(|| panic!("no inline cache in {manifest}"));
    // min: the final image's five steps, not the builder stage's RUN.
    let records: serde_json::Value = serde_json::from_str(records).unwrap();
    assert_eq!(records["records"].as_array().unwrap().len(), 5, "{records}");

    let b = m.build("b", &["--cache-from", &image, "-t", "app:1"]);
    assert_eq!((b.ran, b.cached), (1, 5), "{}", b.stderr);
    assert!(b.warnings.is_empty(), "{:?}", b.warnings);
    assert_eq!(
        b.image_id, a.image_id,
        "the annotation leaves the image ID alone"
    );

    // Inline with nothing pushed: said, not silently useless.
    let c = m.build("c", &["--cache-to", "type=inline", "-t", "app:1"]);
    assert!(
        c.warnings.iter().any(|w| w.contains("push the image")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn mode_min_exports_only_the_final_images_steps() {
    let Some(m) = Machines::new("cache-min", true) else {
        return;
    };
    let cache = format!("{}/ci/cache:min", m.addr());
    let a = m.build(
        "a",
        &[
            "--cache-to",
            &format!("type=registry,ref={cache}"),
            "-t",
            "app:1",
        ],
    );
    assert_eq!(a.ran, 6, "{}", a.stderr);
    // The builder stage's RUN is not in a min cache: machine B runs it, and since it makes
    // the same key, everything after it is found in the cache.
    let b = m.build("b", &["--cache-from", &cache, "-t", "app:1"]);
    assert_eq!((b.ran, b.cached), (1, 5), "{}", b.stderr);
    assert_eq!(b.image_id, a.image_id);
}

#[test]
fn a_local_cache_directory_carries_the_cache_and_bad_caches_only_warn() {
    if !require::tools(&["skopeo"]) {
        return;
    }
    let Some(m) = Machines::new("cache-local", false) else {
        return;
    };
    let dir = m.ctx.home.join("ci-cache");
    let to = format!("type=local,dest={},mode=max", dir.display());
    let from = format!("type=local,src={}", dir.display());
    let a = m.build("a", &["--cache-to", &to, "-t", "app:1"]);
    assert_eq!(a.ran, 6);
    // An OCI layout, read by skopeo (an independent reader): the tag names the cache index.
    assert!(dir.join("oci-layout").is_file() && dir.join("index.json").is_file());
    let raw = crate::common::registry::run(
        std::process::Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}:latest", dir.display())),
    );
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        index["manifests"][0]["artifactType"], "application/vnd.rbuild.cache.v1",
        "{raw}"
    );

    let b = m.build("b", &["--cache-from", &from, "-t", "app:1"]);
    assert_eq!((b.ran, b.cached), (0, 6), "{}", b.stderr);
    assert_eq!(b.image_id, a.image_id);
    assert!(b.fetched > 0, "{}", b.stderr);

    // A cache missing one layer blob: its records are skipped (a warning), the rest used.
    let copy = m.ctx.home.join("ci-cache-partial");
    copy_dir(&dir, &copy);
    let layer = largest_blob(&copy);
    std::fs::remove_file(&layer).unwrap();
    let c = m.build(
        "c",
        &[
            "--cache-from",
            &format!("type=local,src={}", copy.display()),
            "-t",
            "app:1",
        ],
    );
    assert!(c.ran >= 1 && c.cached >= 1, "{}", c.stderr);
    assert!(
        c.warnings.iter().any(|w| w.contains("skipped")),
        "{:?}",
        c.warnings
    );
    assert_eq!(out_txt(&m, "c", "app:1"), "v1\nbuilt\n");

    // Truncated documents, a foreign directory, a tag that is not there: a warning each and
    // a normal build.
    let index = dir.join("index.json");
    let text = std::fs::read(&index).unwrap();
    std::fs::write(&index, &text[..text.len() / 2]).unwrap();
    let foreign = m.ctx.home.join("not-a-cache");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(
        foreign.join("index.json"),
        b"{\"schemaVersion\":2,\"manifests\":[]}",
    )
    .unwrap();
    for (machine, spec, said) in [
        ("d", from.clone(), "not used"),
        (
            "e",
            format!("type=local,src={}", foreign.display()),
            "no cache tagged",
        ),
        (
            "f",
            format!("type=local,src={},tag=other", copy.display()),
            "no cache tagged \"other\"",
        ),
    ] {
        let s = m.build(machine, &["--cache-from", &spec, "-t", "app:1"]);
        assert_eq!((s.ran, s.cached), (6, 0), "{spec}: {}", s.stderr);
        assert!(
            s.warnings.iter().any(|w| w.contains(said)),
            "{spec}: {:?}",
            s.warnings
        );
        assert_eq!(out_txt(&m, machine, "app:1"), "v1\nbuilt\n", "{spec}");
    }
}

#[test]
fn a_cache_that_cannot_be_written_fails_the_build_unless_errors_are_ignored() {
    let Some(m) = Machines::new("cache-unreachable", true) else {
        return;
    };
    // Nothing listens on port 1.
    let out = m.run(
        "a",
        &[
            "--cache-to",
            "type=registry,ref=127.0.0.1:1/ci/cache:x",
            "-t",
            "app:1",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        describe(&["--cache-to"], &out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("exporting the build cache to 127.0.0.1:1/ci/cache:x")
            && err.contains("ignore-error=true"),
        "{err}"
    );
    let s = m.build(
        "a",
        &[
            "--cache-to",
            "type=registry,ref=127.0.0.1:1/ci/cache:x,ignore-error=true",
            "-t",
            "app:1",
        ],
    );
    assert!(
        s.warnings.iter().any(|w| w.contains("not written")),
        "{:?}",
        s.warnings
    );
    // A registry image that is not a cache: a warning, and the build goes on.
    let image = format!("{}/ci/app:1", m.addr());
    m.build("a", &["-t", &image, "--push"]);
    let s = m.build("b", &["--cache-from", &image, "-t", "app:1"]);
    assert_eq!(s.cached, 0);
    assert!(
        s.warnings.iter().any(|w| w.contains("not an rbuild cache")),
        "{:?}",
        s.warnings
    );
    // Flags that are not understood are refused before anything is built: a bad value as
    // a usage error (2), a request that cannot be built as asked as a failed build (1).
    for (flag, spec, code, said) in [
        ("--cache-to", "type=gha", 2, "type=gha is not supported"),
        (
            "--cache-to",
            "type=registry,ref=a/b:c,mode=all",
            2,
            "expected min or max",
        ),
        (
            "--cache-from",
            "type=local,dest=x",
            2,
            "unknown or unsupported attribute",
        ),
        (
            "--cache-to",
            "type=registry,ref=a/b:c,compression=zstd",
            1,
            "which are gzip",
        ),
    ] {
        let out = m.run("a", &[flag, spec]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{spec}: {err}");
        assert!(!err.contains("#1 "), "refused before any work: {err}");
        assert!(err.contains(said), "{spec}: {err}");
    }
}

#[test]
fn concurrent_exports_to_one_ref_leave_one_whole_cache() {
    let Some(m) = Machines::new("cache-concurrent", true) else {
        return;
    };
    let cache = format!("{}/ci/cache:shared", m.addr());
    let to = format!("type=registry,ref={cache},mode=max");
    // Two different builds (the second with another app.txt) export to one ref at once.
    let first = m.ctx.dir.join("app.txt");
    let second = m.ctx.home.join("ctx2");
    copy_dir(&m.ctx.dir, &second);
    std::fs::write(second.join("app.txt"), "other\n").unwrap();
    let spawn = |machine: &str, dir: &Path| {
        m.build_cmd(machine, dir, &["--cache-to", &to])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (x, y) = (spawn("x", first.parent().unwrap()), spawn("y", &second));
    for child in [x, y] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Whichever won, the cache is whole: a build of its context is all cached, and one of
    // the other context runs only the two steps that read app.txt.
    let mut ran = Vec::new();
    for (machine, dir) in [("a", first.parent().unwrap()), ("b", second.as_path())] {
        let out = m
            .build_cmd(machine, dir, &["--cache-from", &cache])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s = Summary::of(&String::from_utf8_lossy(&out.stderr));
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        assert_eq!(s.ran + s.cached, 6, "{}", s.stderr);
        ran.push(s.ran);
    }
    ran.sort();
    assert_eq!(ran, [0, 2], "one whole cache, of one of the two builds");
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// The largest file under `dir/blobs` (a layer).
fn largest_blob(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap()
}

/// `rbuild df` rows, by type: (count, size in bytes as printed, reclaimable).
fn df(
    ctx: &BusyboxContext,
) -> (
    std::collections::BTreeMap<String, (String, String, String)>,
    u64,
) {
    let out = ctx.rbuild(&["df"]);
    assert!(out.status.success(), "{}", describe(&["df"], &out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut rows = std::collections::BTreeMap::new();
    let mut total = None;
    for line in text.lines().skip(1) {
        if let Some(n) = line.strip_prefix("(total bytes: ") {
            total = Some(n.trim_end_matches(')').parse().unwrap());
            continue;
        }
        // The type may be two words; the last three columns are count, size, reclaimable.
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() >= 4 {
            let n = cols.len();
            rows.insert(
                cols[..n - 3].join(" "),
                (cols[n - 3].into(), cols[n - 2].into(), cols[n - 1].into()),
            );
        }
    }
    (rows, total.unwrap_or_else(|| panic!("no total in {text}")))
}

/// Bytes of the regular files under `dir`, each inode once, as GNU find counts them.
fn files_bytes(dir: &Path) -> u64 {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("find \"$1\" -type f -printf '%i %s\\n' | sort -u | awk '{s+=$2} END {print s+0}'")
        .arg("sh")
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// `rbuild df` counts every byte of the state root once; `prune --keep-storage` keeps the
/// build cache, cache mounts and snapshots under a size without waiting for a running
/// build, and leaves what that build uses; `[gc] keep-storage` in the root's config.toml
/// does it after every build.
#[test]
fn df_adds_up_and_keep_storage_spares_a_running_build() {
    let Some(ctx) = BusyboxContext::new(
        "cache-gc",
        "FROM base\nRUN --mount=type=cache,target=/c sh -c 'head -c 300000 /dev/urandom > /c/blob'\nRUN head -c 200000 /dev/urandom > /r && sleep 3\n",
    ) else {
        return;
    };
    ctx.build_ok(&["-t", "gc:1"]);
    let (rows, total) = df(&ctx);
    assert_eq!(total, files_bytes(&ctx.root), "{rows:?}");
    assert_eq!(rows["Images"].0, "1", "{rows:?}");
    assert_eq!(rows["Build cache"].0, "4", "{rows:?}");
    assert_eq!(rows["Cache mounts"].0, "1", "{rows:?}");
    assert!(rows["Cache mounts"].1.ends_with("kB"), "{rows:?}");

    // A second build of another image, running its sleeping step while a collection to
    // zero runs: the collection does not wait, spares what the build holds, and the build
    // finishes whole.
    ctx.write(
        "Dockerfile",
        &format!(
            "{}FROM base\nRUN echo started && echo other > /o && sleep 4\n",
            crate::common::busybox_context::BASE
        ),
    );
    let (mut build, started, reader) = ctx.build_until_started(&["-t", "gc:2"]);
    assert!(started, "the step never started");
    let t = std::time::Instant::now();
    let prune = ctx.rbuild(&["prune", "--keep-storage", "0"]);
    assert!(prune.status.success(), "{}", describe(&["prune"], &prune));
    assert!(
        t.elapsed() < std::time::Duration::from_secs(3),
        "it did not wait for the build"
    );
    let said = String::from_utf8_lossy(&prune.stderr);
    assert!(said.contains("that running builds use"), "{said}");
    let status = build.wait().unwrap();
    let output = reader.join().unwrap();
    assert!(status.success(), "{output}");
    // Both images are whole: their files read back.
    for (image, file, want) in [("gc:1", "/r", None), ("gc:2", "/o", Some("other\n"))] {
        let out = ctx.rbuild(&["run", image, "cat", file]);
        assert!(out.status.success(), "{}", describe(&["run", image], &out));
        if let Some(want) = want {
            assert_eq!(String::from_utf8_lossy(&out.stdout), want);
        }
    }
    // Nothing running: everything of the cache goes, and the rows say so.
    let prune = ctx.rbuild(&["prune", "--keep-storage", "0"]);
    assert!(prune.status.success());
    let (rows, total) = df(&ctx);
    assert_eq!(total, files_bytes(&ctx.root), "{rows:?}");
    assert_eq!(rows["Build cache"].0, "0", "{rows:?}");
    assert_eq!(rows["Cache mounts"].0, "0", "{rows:?}");
    assert_eq!(rows["Snapshots"].0, "0", "{rows:?}");
    assert_eq!(rows["Images"].0, "2", "{rows:?}");

    // A limit in config.toml: applied after each build (here: nothing may stay).
    std::fs::create_dir_all(&ctx.root).unwrap();
    std::fs::write(ctx.root.join("config.toml"), "[gc]\nkeep-storage = \"0\"\n").unwrap();
    let progress = ctx.build_ok(&["-t", "gc:2"]);
    assert!(
        progress.contains("keeping the build cache under 0B"),
        "{progress}"
    );
    let (rows, _) = df(&ctx);
    assert_eq!(rows["Build cache"].0, "0", "{rows:?}");
    std::fs::write(
        ctx.root.join("config.toml"),
        "[gc]\nkeep-storage = \"lots\"\n",
    )
    .unwrap();
    let out = ctx.rbuild(&["build", "--progress=plain", "."]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("warning: "),
        "a bad limit is a warning: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
