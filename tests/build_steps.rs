//! What a build's steps do, through the real binary on the busybox base of
//! `common::busybox_context`: RUN mounts (cache, secret, bind, ssh agents), proxy build args
//! that reach RUN but not the image, and COPY/ADD: heredocs, archives, `--chmod`/`--chown`/
//! `--exclude`/`--parents`, `SOURCE_DATE_EPOCH` times, and remote sources served on
//! loopback by Python's HTTP server and `git daemon`, both stopped with the test.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::busybox_context::{BASE, BusyboxContext};
use crate::common::process::Process;
use crate::common::servers;
use crate::common::{describe, require};

#[test]
fn cache_mounts_persist_secrets_stay_out_and_binds_discard_writes() {
    let Some(ctx) = BusyboxContext::new(
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
fn ssh_agents_reach_run_through_ssh_flags() {
    if !require::tools(&["ssh-agent"]) {
        return;
    }
    let Some(ctx) = BusyboxContext::new(
        "build-ssh",
        "FROM base\nRUN --mount=type=ssh test -S \"$SSH_AUTH_SOCK\" && echo \"$SSH_AUTH_SOCK\" > /sock-path\n\
         RUN --mount=type=ssh,id=deploy,target=/run/deploy.sock test -S /run/deploy.sock && echo deploy > /deploy\n",
    ) else {
        return;
    };
    let sock = ctx.home.join("agent.sock");
    let _agent = Process::spawn(
        Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
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
    let stderr = ctx.build_fails(&["--no-cache"]);
    assert!(stderr.contains("--ssh default"), "{stderr}");
}

#[test]
fn proxy_build_args_reach_run_but_not_the_cache_key_or_image() {
    let Some(ctx) = BusyboxContext::new(
        "build-proxy",
        "FROM base\nRUN echo \"$HTTP_PROXY $http_proxy\" > /proxy.txt\n",
    ) else {
        return;
    };
    let out = ctx.build_files("fs", &["--build-arg", "HTTP_PROXY=http://proxy-a:3128"]);
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
fn heredocs_archives_and_copy_flags_through_a_build() {
    let Some(ctx) = BusyboxContext::new(
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
fn source_date_epoch_sets_the_times_of_copied_files() {
    let Some(ctx) = BusyboxContext::new("build-sde-copy", "FROM base\nCOPY input.txt /in/\n")
    else {
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

#[test]
fn add_downloads_urls_with_checksums_and_clones_git_repositories() {
    if !require::tools(&["python3", "git"]) {
        return;
    }
    let Some(ctx) = BusyboxContext::new("build-add-remote", "") else {
        return;
    };
    // An HTTP server (Python's) with one file.
    let site = ctx.home.join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("hello.txt"), "hello over http\n").unwrap();
    let sum = rbuild::oci::digest::Digest::sha256(b"hello over http\n");
    let (_http, http_port) = servers::http(&site);
    // A Git repository served by git daemon.
    let repos = ctx.home.join("repos");
    let work = ctx.home.join("repo-work");
    std::fs::create_dir_all(work.join("docs")).unwrap();
    std::fs::write(work.join("docs/guide.md"), "# guide\n").unwrap();
    std::fs::write(work.join("README"), "repo readme\n").unwrap();
    let (_git, git_port) = servers::git_daemon(&work, &repos);

    let url = format!("http://127.0.0.1:{http_port}/hello.txt");
    let repo = format!("git://127.0.0.1:{git_port}/repo.git");
    std::fs::write(
        ctx.dir.join("Dockerfile"),
        format!(
            "{BASE}FROM base\nADD {url} /downloads/\nADD --checksum={sum} {url} /checked.txt\n\
             ADD {repo}#v1 /src\nADD {repo}#main:docs /docs\nADD {url} local.txt /mixed\n"
        ),
    )
    .unwrap();
    ctx.write("local.txt", "from the context\n");
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
    // Remote and local sources in one ADD: both land in the destination directory.
    assert_eq!(
        std::fs::read_to_string(out.join("mixed/hello.txt")).unwrap(),
        "hello over http\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("mixed/local.txt")).unwrap(),
        "from the context\n"
    );

    // A Git source's --checksum is the commit it must check out.
    let head = {
        let out = Command::new("git")
            .args(["-C", work.to_str().unwrap(), "rev-parse", "v1^{commit}"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    std::fs::write(
        ctx.dir.join("Dockerfile"),
        format!("{BASE}FROM base\nADD --checksum={head} {repo}#v1 /pinned\n"),
    )
    .unwrap();
    let pinned = ctx.home.join("pinned");
    ctx.build_ok(&["-o", &format!("type=local,dest={}", pinned.display())]);
    assert_eq!(
        std::fs::read_to_string(pinned.join("pinned/README")).unwrap(),
        "repo readme\n"
    );
    let other = "0".repeat(40);
    std::fs::write(
        ctx.dir.join("Dockerfile"),
        format!("{BASE}FROM base\nADD --checksum={other} {repo}#v1 /pinned\n"),
    )
    .unwrap();
    let stderr = ctx.build_fails(&[]);
    assert!(
        stderr.contains(&head) && stderr.contains(&other),
        "the error names both commits: {stderr}"
    );

    // A wrong checksum fails the build and names both digests.
    let wrong = rbuild::oci::digest::Digest::sha256(b"something else");
    std::fs::write(
        ctx.dir.join("Dockerfile"),
        format!("{BASE}FROM base\nADD --checksum={wrong} {url} /x\n"),
    )
    .unwrap();
    let stderr = ctx.build_fails(&[]);
    assert!(
        stderr.contains(&wrong.to_string()) && stderr.contains(&sum.to_string()),
        "{stderr}"
    );
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
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
