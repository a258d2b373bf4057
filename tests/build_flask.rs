//! The seed app end to end through the real binary: `rbuild build` of testdata/flask-watchlist
//! with docker.io mirrored by a loopback registry that serves the Python base image as
//! `library/python:3.10-alpine`; `rbuild save` as a docker-archive; podman loads and runs it
//! (an independent runtime) and `GET /api/` lists the four movies init_db.py seeds. Then the
//! build cache: a rebuild with no change reports every step cached, and after an edit of
//! app.py the steps before `COPY . .` stay cached while `COPY . .` and `RUN python init_db.py`
//! run again.
//!
//! Needs root (RUN sandboxes; the base image is bootstrapped with mmdebstrap) and is skipped
//! otherwise (`common::require`); the pip step needs PyPI.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::podman::{PodmanCleanup, podman};
use crate::common::process::Process;
use crate::common::python::{PYTHON_BASE_TAG, python_base_layout};
use crate::common::registry::{Registry, free_port, skopeo_push};
use crate::common::require;
use crate::common::{mirror_conf, rbuild_cmd, temp_home};

const IMAGE: &str = "flask-watchlist:1.0";

/// What init_db.py seeds, in id order.
const MOVIES: [&str; 4] = ["Fight Club", "The Matrix", "Donnie Darko", "Inception"];

/// The Dockerfile's COPY and RUN steps, each named by a piece of its instruction text.
const COPY_REQUIREMENTS: &str = "COPY requirements.txt /app";
const RUN_PIP: &str = "pip3 install -r requirements.txt";
const COPY_APP: &str = "COPY . .";
const RUN_INIT_DB: &str = "RUN python init_db.py";

#[test]
fn flask_watchlist_builds_runs_and_rebuilds_from_cache() {
    if !require::root("RUN sandboxes, and mmdebstrap for the base image") {
        return;
    }
    if !require::tools(&[
        "docker-registry",
        "skopeo",
        "podman",
        "runc",
        "slirp4netns",
        "curl",
    ]) {
        return;
    }
    let Some((reg, home, conf, ctx)) = seed_lab("build-flask") else {
        return;
    };

    let progress = build(&home, &conf, &ctx, "first build");
    assert_cache(
        &progress,
        &[
            (COPY_REQUIREMENTS, false),
            (RUN_PIP, false),
            (COPY_APP, false),
            (RUN_INIT_DB, false),
        ],
        "a build into an empty state root",
    );

    let archive = home.join("img.tar");
    rbuild_ok(
        &home,
        &conf,
        &ctx,
        &[
            "save",
            "--format",
            "docker-archive",
            "-o",
            archive.to_str().unwrap(),
            IMAGE,
        ],
    );
    {
        let _cleanup = PodmanCleanup(&home);
        let name = podman_load(&home, &archive);
        let body = serve_and_get(&home, &name, "/api/");
        assert_eq!(titles(&body), MOVIES, "GET /api/ gave {body}");
    }
    {
        // `rbuild run -p` serves it too, as the tutorial's `docker run -p` does: with the
        // host's network the app's own port 5000 is the host's (when something else has
        // it, the app is told another), and rbuild relays a free port to it.
        let inside = if std::net::TcpListener::bind(("0.0.0.0", 5000)).is_ok() {
            5000
        } else {
            free_port()
        };
        let outside = free_port();
        let publish = format!("{outside}:{inside}");
        let bind = format!("0.0.0.0:{inside}");
        let mut args = vec!["run", "-p", publish.as_str(), IMAGE];
        if inside != 5000 {
            args.extend(["gunicorn", "-w", "2", "-b", bind.as_str(), "app:app"]);
        }
        let _run = Process::spawn(
            rbuild_cmd(&home, &conf)
                .args(&args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null()),
        );
        let url = format!("http://127.0.0.1:{outside}/api/");
        let start = Instant::now();
        let body = loop {
            let out = Command::new("curl")
                .args(["-fsS", "--max-time", "2", &url])
                .output()
                .expect("run curl");
            if out.status.success() {
                break String::from_utf8_lossy(&out.stdout).into_owned();
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "rbuild run -p {publish}: {url} did not answer in 60 s"
            );
            std::thread::sleep(Duration::from_millis(250));
        };
        assert_eq!(titles(&body), MOVIES, "rbuild run: GET /api/ gave {body}");
    }

    let progress = build(&home, &conf, &ctx, "rebuild, no change");
    assert_cache(
        &progress,
        &[
            (COPY_REQUIREMENTS, true),
            (RUN_PIP, true),
            (COPY_APP, true),
            (RUN_INIT_DB, true),
        ],
        "a rebuild with no change",
    );

    let app = ctx.join("app.py");
    let mut text = std::fs::read_to_string(&app).unwrap();
    text.push_str("# edited by the rebuild test\n");
    std::fs::write(&app, text).unwrap();
    let progress = build(&home, &conf, &ctx, "rebuild after an app.py edit");
    assert_cache(
        &progress,
        &[
            (COPY_REQUIREMENTS, true),
            (RUN_PIP, true),
            (COPY_APP, false),
            (RUN_INIT_DB, false),
        ],
        "a rebuild after app.py changed",
    );

    drop(reg);
    let _ = std::fs::remove_dir_all(&home);
}

/// The seed app on CI machines that start empty (docs/cache.md): machine A builds it and
/// exports its cache (`mode=max,mounts=all`) to a registry; machine B takes every step from
/// it and pushes without downloading a layer; machine C, after an app.py edit, runs only
/// the last two steps. (That the pip cache mount travels is not checked here: the PyPI
/// this machine reaches answers without caching headers, so pip leaves its HTTP cache
/// empty. `build_cache::cache_mounts_travel_and_are_restored_before_the_step_that_mounts_them`
/// checks the mechanism, with a download that `--network none` would make fail.)
#[test]
fn the_seed_app_builds_from_a_registry_cache_on_empty_machines() {
    if !require::root("RUN sandboxes, and mmdebstrap for the base image") {
        return;
    }
    if !require::tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let Some((reg, home, conf, ctx)) = seed_lab("build-flask-ci") else {
        return;
    };
    let cache = format!("{}/ci/cache:flask", reg.addr);
    // Each machine: a home (and state root) of its own.
    let machine = |name: &str, args: &[&str]| -> String {
        let h = home.join(name);
        std::fs::create_dir_all(&h).unwrap();
        let mut all = vec!["build", "--progress=plain"];
        all.extend_from_slice(args);
        all.push(".");
        let out = rbuild_ok(&h, &conf, &ctx, &all);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let to = format!("type=registry,ref={cache},mode=max,mounts=all");
    let a = machine("a", &["--cache-to", &to, "-t", IMAGE]);
    assert_cache(
        &a,
        &[(RUN_PIP, false), (RUN_INIT_DB, false)],
        "machine A, empty",
    );

    let pushed = format!("{}/ci/flask:1", reg.addr);
    let before = reg.blob_gets().len();
    let b = machine("b", &["--cache-from", &cache, "-t", &pushed, "--push"]);
    assert_cache(
        &b,
        &[
            (COPY_REQUIREMENTS, true),
            (RUN_PIP, true),
            (COPY_APP, true),
            (RUN_INIT_DB, true),
        ],
        "machine B, from the cache",
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&crate::common::registry::skopeo_raw_manifest(&pushed, None))
            .unwrap();
    let gets = reg.blob_gets()[before..].to_vec();
    for layer in manifest["layers"].as_array().unwrap() {
        let digest = layer["digest"].as_str().unwrap();
        assert!(
            !gets.iter().any(|g| g == digest),
            "{digest} downloaded\n{b}"
        );
    }

    let app = ctx.join("app.py");
    let text = std::fs::read_to_string(&app).unwrap();
    std::fs::write(&app, format!("{text}# edited on machine C\n")).unwrap();
    let c = machine("c", &["--cache-from", &cache, "-t", IMAGE]);
    assert_cache(
        &c,
        &[
            (COPY_REQUIREMENTS, true),
            (RUN_PIP, true),
            (COPY_APP, false),
            (RUN_INIT_DB, false),
        ],
        "machine C, after an app.py edit",
    );

    drop(reg);
    let _ = std::fs::remove_dir_all(&home);
}

/// A registry serving the Python base image as docker.io's `library/python` (through a
/// registries.conf mirror, which also lets the registry be spoken to over plain HTTP), and
/// a copy of the seed app: (registry, home, registries.conf, context). None after a skip.
fn seed_lab(
    name: &str,
) -> Option<(
    Registry,
    std::path::PathBuf,
    std::path::PathBuf,
    std::path::PathBuf,
)> {
    let layout = python_base_layout()?;
    let reg = Registry::start(None);
    skopeo_push(
        &layout,
        PYTHON_BASE_TAG,
        &format!("{}/library/python:{PYTHON_BASE_TAG}", reg.addr),
        None,
    );
    let home = temp_home(name);
    let conf = mirror_conf(&home, &reg.addr, &[&reg.addr]);
    let ctx = home.join("ctx");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/flask-watchlist"),
        &ctx,
    );
    Some((reg, home, conf, ctx))
}

/// The movie titles of a `GET /api/` answer, in order.
fn titles(body: &str) -> Vec<String> {
    let movies: serde_json::Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("GET /api/ is not JSON ({e}): {body}"));
    movies
        .as_array()
        .unwrap_or_else(|| panic!("GET /api/ is not a list: {body}"))
        .iter()
        .map(|m| m["title"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// `rbuild build -t IMAGE .` in the context; returns its progress (stderr, then stdout).
fn build(home: &Path, conf: &Path, ctx: &Path, what: &str) -> String {
    let start = Instant::now();
    let out = rbuild_ok(home, conf, ctx, &["build", "-t", IMAGE, "."]);
    eprintln!("{what}: {:.2} s", start.elapsed().as_secs_f64());
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    )
}

/// Run rbuild in `cwd` with the test's state root and registries.conf; panic with the
/// command, directory and both streams unless it succeeds.
fn rbuild_ok(home: &Path, conf: &Path, cwd: &Path, args: &[&str]) -> Output {
    let out = rbuild_cmd(home, conf)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run rbuild");
    assert!(
        out.status.success(),
        "rbuild {}\ncwd: {}\nstatus: {}\n--- stdout\n{}\n--- stderr\n{}",
        args.join(" "),
        cwd.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Which build steps a build's progress output reports as cached, in the order they appear:
/// `(step title, cached)`. This is the one place that knows the progress format, so it is
/// the one to adapt if rbuild's plain progress changes.
///
/// The format read is BuildKit's `--progress=plain`: a step is announced by a line
/// `#<n> [<stage> <i>/<total>] <instruction>` (the header may repeat when steps interleave),
/// and a line `#<n> CACHED` says that step came from the cache:
///
/// ```text
/// #7 [3/6] COPY requirements.txt /app
/// #7 CACHED
/// ```
fn cached_steps(progress: &str) -> Vec<(String, bool)> {
    let mut steps: Vec<(&str, String, bool)> = Vec::new();
    for line in progress.lines() {
        let Some((id, text)) = line.strip_prefix('#').and_then(|l| l.split_once(' ')) else {
            continue;
        };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let text = text.trim();
        if text.starts_with('[') {
            if !steps.iter().any(|s| s.0 == id) {
                steps.push((id, text.to_string(), false));
            }
        } else if text == "CACHED"
            && let Some(step) = steps.iter_mut().find(|s| s.0 == id)
        {
            step.2 = true;
        }
    }
    steps.into_iter().map(|(_, t, c)| (t, c)).collect()
}

/// Assert, for each `(piece of instruction text, cached)`, that exactly one step of the
/// progress output matches and that it was (or was not) reported cached.
fn assert_cache(progress: &str, expected: &[(&str, bool)], what: &str) {
    let steps = cached_steps(progress);
    let listing = || {
        steps
            .iter()
            .map(|(t, c)| format!("  {} {t}", if *c { "CACHED" } else { "ran   " }))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for (needle, cached) in expected {
        let matching: Vec<&(String, bool)> =
            steps.iter().filter(|(t, _)| t.contains(needle)).collect();
        assert!(
            matching.len() == 1,
            "{what}: expected one step containing {needle:?} in the progress output, found {}\nsteps:\n{}\n--- output\n{progress}",
            matching.len(),
            listing()
        );
        assert_eq!(
            matching[0].1,
            *cached,
            "{what}: step {:?} should {}be cached\nsteps:\n{}\n--- output\n{progress}",
            matching[0].0,
            if *cached { "" } else { "not " },
            listing()
        );
    }
}

/// Copy a directory tree of regular files (the build context) into a new directory.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// `podman load -i archive`; returns the name podman gave the loaded image.
fn podman_load(home: &Path, archive: &Path) -> String {
    let out = podman(home, &["load", "-i", archive.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "podman load: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "Loaded image: docker.io/library/flask-watchlist:1.0" (podman 4)
    stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("Loaded image")
                .and_then(|r| r.split_once(": "))
        })
        .map(|(_, names)| names.split(", ").next().unwrap().trim().to_string())
        .unwrap_or_else(|| panic!("podman load named no image: {stdout}"))
}

/// Run `image` with its own CMD, publishing container port 5000 on a free loopback port, and
/// return the body of `GET path` once the server answers.
fn serve_and_get(home: &Path, image: &str, path: &str) -> String {
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:5000");
    let out = podman(
        home,
        &[
            "run",
            "-d",
            "--network",
            "slirp4netns",
            "-p",
            &publish,
            image,
        ],
    );
    assert!(
        out.status.success(),
        "podman run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let url = format!("http://127.0.0.1:{port}{path}");
    let start = Instant::now();
    loop {
        let out = Command::new("curl")
            .args(["-fsS", "--max-time", "2", &url])
            .output()
            .expect("run curl");
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        let running = podman(home, &["inspect", "--format", "{{.State.Running}}", &id]);
        let logs = || {
            let l = podman(home, &["logs", &id]);
            format!(
                "{}{}",
                String::from_utf8_lossy(&l.stdout),
                String::from_utf8_lossy(&l.stderr)
            )
        };
        assert!(
            String::from_utf8_lossy(&running.stdout).trim() == "true",
            "the container exited before answering {url}; its log:\n{}",
            logs()
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{url} did not answer in 60 s: {}\ncontainer log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The progress parser on real BuildKit output (dockerd 20.10, `--progress plain`, the
/// seed app rebuilt after an app.py edit), so the assertions above are known to read the
/// format they claim to.
#[test]
fn cached_steps_reads_buildkit_plain_progress() {
    let progress = include_str!("../testdata/progress/buildkit-plain-edit.txt");
    let steps = cached_steps(progress);
    let cached = |needle: &str| {
        steps
            .iter()
            .find(|(t, _)| t.contains(needle))
            .unwrap_or_else(|| panic!("no step {needle:?} in {steps:?}"))
            .1
    };
    assert!(cached(COPY_REQUIREMENTS));
    assert!(cached(RUN_PIP));
    assert!(!cached(COPY_APP));
    assert!(!cached(RUN_INIT_DB));
}
