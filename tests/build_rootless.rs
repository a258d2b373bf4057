//! Rootless builds with the real binary. A busybox image is made `FROM scratch` (a context
//! holding Debian's static busybox, no registry), then a stage on it runs steps that need
//! root in the build — files of other owners (`chown 1000:1000`, `COPY --chown`), a
//! deleted base file (a whiteout), a cache mount — and is exported as an OCI layout and as
//! files. The layout is read back with rbuild's own tar reading of the layers (owners in the
//! tar headers) and with `umoci unpack --rootless` as an independent reader; the rebuild is
//! fully cached with the same image ID; `prune` removes what the build left, which files
//! owned by subordinate ids make impossible from outside the user namespace.
//!
//! Run by an unprivileged user (CI runs this binary as nobody, which has a subordinate
//! range), the build is rootless. Run as root, the same build runs as root, and the
//! rootless builds are run too, by dropping to nobody (with its range) and to a user with no
//! range (only root mapped) through `setpriv`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common;
use crate::common::require::{self, Need};

/// Where Debian's busybox-static puts its binary.
const BUSYBOX: &str = "/bin/busybox";
/// The applets the Dockerfiles use.
const APPLETS: [&str; 10] = [
    "sh", "ls", "mkdir", "chown", "chmod", "rm", "cat", "echo", "cp", "id",
];
const NOBODY: u32 = 65534;
/// A user with no passwd entry and, checked before use, no subordinate range.
const NO_RANGE_UID: u32 = 4321;

const DOCKERFILE: &str = r#"FROM scratch AS base
COPY rootfs/ /

FROM base
RUN mkdir -p /data/app && echo hello > /data/hello \
 && echo mine > /data/owned && chown 1000:1000 /data/owned \
 && echo private > /data/app/f && chown -R 1000:1000 /data/app && chmod 700 /data/app
RUN rm /etc/removeme
COPY --chown=1000:1000 file.txt /data/copied
RUN --mount=type=cache,target=/cache echo cached > /cache/c && cp /cache/c /data/fromcache
"#;

/// Who runs rbuild: this process's user, or another one through `setpriv`.
#[derive(Clone, Copy, Debug)]
enum As {
    Myself,
    User(u32),
}

impl As {
    fn uid(self) -> u32 {
        match self {
            As::Myself => rustix::process::geteuid().as_raw(),
            As::User(u) => u,
        }
    }

    fn rootless(self) -> bool {
        self.uid() != 0
    }
}

/// One test's directory (owned by the user who runs rbuild), with the build context, the
/// state root, a home that does not exist and the outputs.
struct Work {
    dir: PathBuf,
    who: As,
}

impl Work {
    fn new(name: &str, who: As) -> Work {
        let dir = common::temp_home(&format!("rootless-{name}"));
        let ctx = dir.join("ctx");
        let rootfs = ctx.join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
        for a in APPLETS {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
        }
        std::fs::write(rootfs.join("etc/removeme"), "base file\n").unwrap();
        std::fs::write(ctx.join("file.txt"), "copied\n").unwrap();
        std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
        if let As::User(uid) = who {
            chown_tree(&dir, uid);
        }
        Work { dir, who }
    }

    fn root(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// `program` as `self.who`.
    fn command(&self, program: &Path) -> Command {
        match self.who {
            As::Myself => Command::new(program),
            As::User(uid) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={uid}"))
                    .arg("--clear-groups")
                    .arg(program);
                c
            }
        }
    }

    /// `rbuild --root <state> ARGS` in the context, as `self.who`, with no state root or
    /// home from the environment.
    fn rbuild(&self, args: &[&str]) -> Output {
        self.command(&common::rbuild_bin())
            .arg("--root")
            .arg(self.root())
            .args(args)
            .current_dir(self.dir.join("ctx"))
            .env_remove("RBUILD_ROOT")
            .env("HOME", self.dir.join("no-home"))
            .env("NO_COLOR", "1")
            .output()
            .expect("run rbuild")
    }

    /// Remove the whole directory as the user who built in it.
    fn remove(self) {
        let out = self
            .command(Path::new("rm"))
            .arg("-rf")
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success() && !self.dir.exists(),
            "removing {} as uid {}: {}",
            self.dir.display(),
            self.who.uid(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.rbuild(args);
        assert!(
            out.status.success(),
            "as {:?}: {}",
            self.who,
            common::describe(args, &out)
        );
        out
    }
}

fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
    if path.is_dir() && !path.is_symlink() {
        for e in std::fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), uid);
        }
    }
}

/// Whether a build as `who` can run here; a skip that says why when it cannot (a failure
/// when CI requires the tools).
fn can_build(who: As, needs_range: bool) -> bool {
    let mut missing = Vec::new();
    if !Path::new(BUSYBOX).is_file() {
        missing.push(format!("{BUSYBOX} (Debian's busybox-static)"));
    }
    if who.rootless() {
        for tool in ["/usr/bin/newuidmap", "/usr/bin/newgidmap"] {
            if !Path::new(tool).exists() {
                missing.push(format!("{tool} (Debian's uidmap)"));
            }
        }
        if needs_range && !has_range(who.uid()) {
            missing.push(format!(
                "a range for uid {} in /etc/subuid and /etc/subgid",
                who.uid()
            ));
        }
    }
    if let As::User(_) = who
        && Command::new("setpriv").arg("--version").output().is_err()
    {
        missing.push("setpriv".into());
    }
    if missing.is_empty() {
        return true;
    }
    require::skip(
        Need::Install,
        format_args!("a rootless build needs {missing:?}"),
    );
    false
}

/// Whether `uid` (or its login name) has a range in both subordinate id files.
fn has_range(uid: u32) -> bool {
    let name = std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
        });
    ["/etc/subuid", "/etc/subgid"].iter().all(|file| {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .any(|l| {
                let owner = l.split(':').next().unwrap_or("");
                owner == uid.to_string() || Some(owner) == name.as_deref()
            })
    })
}

/// A layer entry as its tar header records it.
#[derive(Debug)]
struct Entry {
    path: String,
    uid: u64,
    gid: u64,
    content: Vec<u8>,
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()
}

/// The entries of every layer of the layout's one image, lowest layer first.
fn layers(layout: &Path) -> Vec<Vec<Entry>> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&blob(
        layout,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    let mut out = Vec::new();
    for layer in manifest["layers"].as_array().unwrap() {
        let bytes = blob(layout, layer["digest"].as_str().unwrap());
        let media = layer["mediaType"].as_str().unwrap();
        let reader: Box<dyn std::io::Read> = if media.ends_with("+gzip") {
            Box::new(flate2::read::GzDecoder::new(&bytes[..]))
        } else if media.ends_with("+zstd") {
            Box::new(zstd::stream::read::Decoder::new(&bytes[..]).unwrap())
        } else {
            Box::new(&bytes[..])
        };
        let mut archive = tar::Archive::new(reader);
        let mut entries = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let mut content = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut content).unwrap();
            let h = e.header();
            entries.push(Entry {
                path: e.path().unwrap().display().to_string(),
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                content,
            });
        }
        out.push(entries);
    }
    out
}

/// The last record of `path` across the layers (a whiteout of it counts).
fn find<'a>(layers: &'a [Vec<Entry>], path: &str) -> Option<&'a Entry> {
    layers
        .iter()
        .rev()
        .find_map(|l| l.iter().find(|e| e.path.trim_end_matches('/') == path))
}

/// The image ID from the summary line (`built sha256:… in …`).
fn image_id(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    err.lines()
        .find_map(|l| l.strip_prefix("built "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no summary line in:\n{err}"))
        .to_string()
}

/// Mount points at or below `dir` as the host sees them.
fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(dir))
        .map(str::to_string)
        .collect()
}

/// The whole scenario, as `who`.
fn build_and_check(name: &str, who: As) {
    let work = Work::new(name, who);
    let layout = work.dir.join("out/layout");
    let local = work.dir.join("out/local");
    std::fs::create_dir_all(work.dir.join("out")).unwrap();
    if let As::User(uid) = who {
        chown_tree(&work.dir.join("out"), uid);
    }
    let oci = format!("type=oci,tar=false,dest={}", layout.display());
    let files = format!("type=local,dest={}", local.display());
    let args = [
        "build",
        "--progress=plain",
        "-t",
        "rootless:1",
        "-o",
        oci.as_str(),
        "-o",
        files.as_str(),
        ".",
    ];
    let first = work.ok(&args);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        !stderr.contains("only root mapped"),
        "a user with ranges gets them mapped:\n{stderr}"
    );
    assert!(
        mounts_under(&work.dir).is_empty(),
        "the build's mounts stay in its mount namespace: {:?}",
        mounts_under(&work.dir)
    );

    // The layers say who owns what, whoever built them.
    let layers = layers(&layout);
    let owner = |path: &str| {
        let e = find(&layers, path).unwrap_or_else(|| panic!("{path} is in no layer"));
        (e.uid, e.gid)
    };
    assert_eq!(owner("data/owned"), (1000, 1000), "RUN chown");
    assert_eq!(owner("data/app"), (1000, 1000), "RUN chown -R, a directory");
    assert_eq!(owner("data/app/f"), (1000, 1000));
    assert_eq!(owner("data/copied"), (1000, 1000), "COPY --chown");
    assert_eq!(owner("data/hello"), (0, 0));
    assert_eq!(owner("bin/busybox"), (0, 0));
    assert!(
        find(&layers, "etc/.wh.removeme").is_some(),
        "RUN rm of a base file is a whiteout"
    );
    assert_eq!(
        find(&layers, "data/fromcache").unwrap().content,
        b"cached\n"
    );
    assert_eq!(find(&layers, "data/copied").unwrap().content, b"copied\n");

    // The files, given to whoever built them when rootless.
    let meta = |p: &str| std::fs::symlink_metadata(local.join(p)).unwrap();
    assert!(!local.join("etc/removeme").exists());
    assert_eq!(
        std::fs::read_to_string(local.join("data/app/f")).unwrap(),
        "private\n"
    );
    let want = if who.rootless() { who.uid() } else { 1000 };
    for p in ["data/owned", "data/app", "data/app/f", "data/copied"] {
        assert_eq!(meta(p).uid(), want, "owner of {p} in type=local");
    }
    assert_eq!(meta("data/hello").uid(), who.uid());

    // An independent reader agrees (umoci unpacks rootless whoever runs it).
    if require::tools(&["umoci"]) {
        let bundle = work.dir.join("out/bundle");
        let umoci = work
            .command(Path::new("umoci"))
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:1", layout.display()))
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(umoci.status.success(), "umoci: {umoci:?}");
        let rootfs = bundle.join("rootfs");
        assert_eq!(
            std::fs::read_to_string(rootfs.join("data/fromcache")).unwrap(),
            "cached\n"
        );
        assert_eq!(
            std::fs::read_to_string(rootfs.join("data/owned")).unwrap(),
            "mine\n"
        );
        assert!(
            !rootfs.join("etc/removeme").exists(),
            "umoci applied the whiteout"
        );
        assert!(rootfs.join("bin/sh").is_symlink());
    }

    // Everything is cached the second time, and gives the same image.
    let again = work.ok(&["build", "--progress=plain", "."]);
    assert_eq!(image_id(&again), image_id(&first));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("(0 step(s) run"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // An edit below rootfs/: its COPY runs again and takes the unchanged files (busybox)
    // from its previous snapshot, as links made in the upper directory (in the user
    // namespace when rootless); the image holds the edit and still runs.
    let edited = work.dir.join("ctx/rootfs/etc/edited");
    std::fs::write(&edited, "edited\n").unwrap();
    if let As::User(uid) = who {
        chown_tree(&edited, uid);
    }
    let inc = work.ok(&["build", "--progress=plain", "-t", "rootless:edited", "."]);
    let said = String::from_utf8_lossy(&inc.stderr);
    assert!(
        said.contains("1 file(s) copied") && said.contains("unchanged taken"),
        "{said}"
    );
    let out = work.ok(&[
        "run",
        "rootless:edited",
        "cat",
        "/etc/edited",
        "/data/copied",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "edited\ncopied\n");

    // A build that only tags makes no blob; a later save makes them (in the compression
    // the build asked for) from snapshots whose files belong to subordinate ids when
    // rootless, so it reads them from a user namespace as the build does.
    work.ok(&[
        "build",
        "--progress=plain",
        "-t",
        "rootless:zstd",
        "-o",
        "type=image,compression=zstd",
        ".",
    ]);
    let saved = work.dir.join("out/saved");
    work.ok(&[
        "save",
        "--format",
        "oci-dir",
        "-o",
        saved.to_str().unwrap(),
        "rootless:zstd",
    ]);
    let again = crate::build_rootless::layers(&saved);
    assert_eq!(again.len(), layers.len());
    let owner = |path: &str| {
        let e = find(&again, path).unwrap_or_else(|| panic!("{path} is in no layer"));
        (e.uid, e.gid)
    };
    assert_eq!(owner("data/owned"), (1000, 1000), "saved: RUN chown");
    assert_eq!(find(&again, "data/app/f").unwrap().content, b"private\n");

    // fsck (in the user namespace when rootless, where snapshots of subordinate ids can be
    // read) finds the store sound, and sees a snapshot changed behind its back.
    let fsck = work.ok(&["fsck"]);
    assert!(
        String::from_utf8_lossy(&fsck.stdout).contains(": 0 problem(s)"),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    let hello = std::fs::read_dir(work.root().join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("data/hello"))
        .find(|p| p.is_file())
        .expect("a snapshot holds /data/hello");
    let changed = work
        .command(Path::new("sh"))
        .args(["-c", "echo changed > \"$1\"", "sh"])
        .arg(&hello)
        .status()
        .unwrap();
    assert!(changed.success());
    let fsck = work.rbuild(&["fsck"]);
    assert_eq!(
        fsck.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    assert!(String::from_utf8_lossy(&fsck.stdout).contains("is corrupt: its files give"));

    // prune (in the user namespace when rootless) removes what the build left, including
    // files of subordinate ids (the build cache too: its layers are snapshots); then the
    // whole directory can be removed from outside.
    work.ok(&["rmi", "rootless:1", "rootless:zstd", "rootless:edited"]);
    work.ok(&["prune", "--build-cache", "--grace", "0s"]);
    let left: Vec<_> = std::fs::read_dir(work.root().join("snapshots"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "snapshots left after prune: {left:?}");
    work.remove();
}

#[test]
fn builds_as_whoever_runs_the_tests() {
    if !can_build(As::Myself, true) {
        return;
    }
    build_and_check("myself", As::Myself);
}

#[test]
fn builds_rootless_as_nobody_when_run_as_root() {
    if !require::root(
        "to drop to nobody (as another user, builds_as_whoever_runs_the_tests is the rootless build)",
    ) {
        return;
    }
    if !can_build(As::User(NOBODY), true) {
        return;
    }
    build_and_check("nobody", As::User(NOBODY));
}

/// A user without subordinate ranges: only root is mapped, which the build says; files of
/// root build, and other owners fail with a message that names the cause.
#[test]
fn without_ranges_only_root_is_mapped() {
    if !require::root("to run as a user without ranges") {
        return;
    }
    let who = As::User(NO_RANGE_UID);
    assert!(
        !has_range(NO_RANGE_UID),
        "uid {NO_RANGE_UID} was meant to have no range"
    );
    if !can_build(who, false) {
        return;
    }
    let work = Work::new("norange", who);
    let dockerfile = work.dir.join("ctx/Dockerfile");
    let write = |text: &str| {
        std::fs::write(&dockerfile, text).unwrap();
        std::os::unix::fs::chown(&dockerfile, Some(NO_RANGE_UID), Some(NO_RANGE_UID)).unwrap();
    };
    write(
        "FROM scratch\nCOPY rootfs/ /\nRUN rm /etc/removeme && echo hi > /hi && id -u > /uid\nRUN --mount=type=cache,target=/c echo c > /c/c && cp /c/c /fromcache\n",
    );
    let out = work.ok(&[
        "build",
        "--progress=plain",
        "-o",
        "type=local,dest=../out",
        ".",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("note: rootless build with only root mapped")
            && stderr.contains("/etc/subuid")
            && stderr.contains("sudo usermod --add-subuids"),
        "{stderr}"
    );
    let out_dir = work.dir.join("out");
    assert_eq!(std::fs::read_to_string(out_dir.join("uid")).unwrap(), "0\n");
    assert_eq!(
        std::fs::read_to_string(out_dir.join("fromcache")).unwrap(),
        "c\n"
    );
    assert!(!out_dir.join("etc/removeme").exists());

    // A base image with a file of uid 1000, built by root and loaded by the user: unpacked
    // with the file as root's, not an error.
    let base = Work::new("norange-base", As::Myself);
    std::fs::write(
        base.dir.join("ctx/Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\nRUN chown 1000:1000 /etc/removeme\n",
    )
    .unwrap();
    let archive = work.dir.join("base.tar");
    let dest = format!("type=oci,dest={}", archive.display());
    base.ok(&[
        "build",
        "-q",
        "-t",
        "norange-base:1",
        "-o",
        dest.as_str(),
        ".",
    ]);
    std::os::unix::fs::chown(&archive, Some(NO_RANGE_UID), Some(NO_RANGE_UID)).unwrap();
    base.remove();
    let archive = archive.display().to_string();
    work.ok(&["load", "-i", archive.as_str()]);
    write("FROM norange-base:1\nRUN ls -ln /etc/removeme > /owner\n");
    work.ok(&[
        "build",
        "--progress=plain",
        "-o",
        "type=local,dest=../out2",
        ".",
    ]);
    let owner = std::fs::read_to_string(work.dir.join("out2/owner")).unwrap();
    let fields: Vec<&str> = owner.split_whitespace().collect();
    assert_eq!(fields[2..4], ["0", "0"], "unpacked as root's: {owner}");

    write("FROM scratch\nCOPY rootfs/ /\nCOPY --chown=1000:1000 file.txt /f\n");
    let out = work.rbuild(&["build", "--progress=plain", "."]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not mapped in this rootless build's user namespace"),
        "{stderr}"
    );
    work.ok(&["prune", "--grace", "0s"]);
    work.remove();
}

/// SIGKILL to the rootless rbuild (the PID its caller knows) mid-RUN: the process in the
/// user namespace and the step die with it, and nothing stays mounted. As root, dropped to
/// nobody; as nobody, as itself.
#[test]
fn a_rootless_build_killed_mid_run_leaves_no_process_and_no_mount() {
    let who = if rustix::process::geteuid().is_root() {
        As::User(NOBODY)
    } else {
        As::Myself
    };
    if !can_build(who, false) {
        return;
    }
    let work = Work::new("killed", who);
    let marker = format!("{}", 800_000 + std::process::id() % 100_000);
    std::fs::write(
        work.dir.join("ctx/Dockerfile"),
        format!("FROM scratch\nCOPY rootfs/ /\nRUN sleep {marker}\n"),
    )
    .unwrap();
    let mut cmd = work.command(&common::rbuild_bin());
    cmd.arg("--root")
        .arg(work.root())
        .args(["build", "--progress=plain", "."])
        .current_dir(work.dir.join("ctx"))
        .env_remove("RBUILD_ROOT")
        .env("HOME", work.dir.join("no-home"))
        .stderr(std::process::Stdio::null());
    let mut build = common::process::Process::spawn(&mut cmd);
    let running = || -> bool {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker))
        })
    };
    let start = std::time::Instant::now();
    while !running() && start.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(running(), "the step never started");
    build.child().kill().unwrap();
    build.wait().unwrap();
    let start = std::time::Instant::now();
    while running() && start.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!running(), "the step outlived the build");
    assert_eq!(mounts_under(&work.dir), Vec::<String>::new());
    // The next build removes the dead one's work directory (the overlay's own `work/work`
    // is mode 000, owned by the user namespace's root: only a build can remove it).
    std::fs::write(
        work.dir.join("ctx/Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\n",
    )
    .unwrap();
    work.ok(&["build", "--progress=plain", "."]);
    let left: Vec<_> = std::fs::read_dir(work.root().join("work"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "work directories left: {left:?}");
    work.remove();
}
