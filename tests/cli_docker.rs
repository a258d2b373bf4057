//! The docker user's habits through the real binary: `docker build` flags (`--iidfile`,
//! `--metadata-file`, `--label`, `--add-host`, `--shm-size`, and the no-ops `--load`,
//! `--rm`, `--force-rm`, `--provenance=false`), clear answers for flags rbuild lacks,
//! docker's two-word commands (`image ls`), subcommand typos, `rbuild version`, and one
//! exit-code policy.

use crate::common::busybox_context::BusyboxContext;
use std::path::PathBuf;

use crate::common::{describe, rbuild, temp_home};

#[test]
fn docker_build_flags_do_what_docker_does() {
    let Some(ctx) = BusyboxContext::new(
        "cli-docker-flags",
        "FROM base\nLABEL from=dockerfile over=dockerfile\nRUN grep -w db /etc/hosts > /hosts && df -k /dev/shm | tail -n 1 | awk '{print $2}' > /shm && ulimit -Sn > /nofile && ulimit -Hn >> /nofile\n",
    ) else {
        return;
    };
    let iid = ctx.home.join("iid");
    let meta = ctx.home.join("meta.json");
    let out = ctx.home.join("fs");
    let args = [
        "--iidfile",
        iid.to_str().unwrap(),
        "--metadata-file",
        meta.to_str().unwrap(),
        "--label",
        "over=cli",
        "--label",
        "bare",
        "--add-host",
        "db:10.1.2.3",
        "--shm-size",
        "128m",
        "--ulimit",
        "nofile=1000:2000",
        "--load",
        "--rm",
        "--force-rm=false",
        "--provenance=false",
        "--sbom=false",
        "-t",
        "flags:1",
        "-o",
        &format!("type=local,dest={}", out.display()),
    ];
    ctx.build_ok(&args);
    assert_eq!(
        std::fs::read_to_string(out.join("hosts")).unwrap(),
        "10.1.2.3\tdb\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("shm")).unwrap(),
        "131072\n"
    );
    let inspect = ctx.inspect("flags:1");
    let labels = &inspect["config"]["config"]["Labels"];
    assert_eq!(labels["from"], "dockerfile");
    assert_eq!(labels["over"], "cli", "--label wins over LABEL: {labels}");
    assert_eq!(labels["bare"], "");
    let id = std::fs::read_to_string(&iid).unwrap();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    assert_eq!(meta["containerimage.config.digest"], id.as_str(), "{meta}");
    assert_eq!(meta["image.name"], "docker.io/library/flags:1", "{meta}");
    let digest = meta["containerimage.digest"].as_str().unwrap();
    assert_eq!(
        meta["containerimage.descriptor"]["digest"], digest,
        "{meta}"
    );
    assert_eq!(
        inspect["digest"], digest,
        "the manifest's digest: {inspect}"
    );
    // Another host entry is another RUN: the step is not taken from the cache.
    let again = ctx.build_files("fs2", &["--add-host", "db:10.9.9.9"]);
    assert_eq!(
        std::fs::read_to_string(again.join("hosts")).unwrap(),
        "10.9.9.9\tdb\n"
    );
}

#[test]
fn flags_rbuild_lacks_get_what_to_do_instead() {
    let home = temp_home("cli-docker-lacks");
    let root = home.join("state");
    for (args, says) in [
        (
            &["build", "--squash", "."][..],
            "rbuild does not support --squash yet",
        ),
        (
            &["build", "--cache-to", "type=gha", "."][..],
            "type=gha is not supported",
        ),
        (
            &["build", "--attest", "type=sbom", "."][..],
            "rbuild does not support --attest yet",
        ),
        (
            &["build", "--provenance=mode=max", "."][..],
            "makes no attestations yet",
        ),
        (
            &["build", "--iidfil", "x", "."][..],
            "did you mean --iidfile?",
        ),
        (
            &["build", "--progress=fancy", "."][..],
            "invalid --progress",
        ),
        (&["build", "--add-host", "db", "."][..], "expected NAME:IP"),
        (
            &["build", "--ulimit", "files=1", "."][..],
            "unknown limit \"files\"",
        ),
    ] {
        let out = rbuild(&home, &root, args);
        assert_eq!(out.status.code(), Some(2), "{}", describe(args, &out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("use '--"), "no clap tip: {stderr}");
    }
}

#[test]
fn docker_commands_typos_and_version() {
    let home = temp_home("cli-docker-commands");
    let root = home.join("state");
    let out = rbuild(&home, &root, &["image", "ls"]);
    assert!(out.status.success(), "{}", describe(&["image", "ls"], &out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("REPOSITORY"));
    let out = rbuild(&home, &root, &["imgaes"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("'imgaes'") && stderr.contains("'images'"),
        "{stderr}"
    );
    let out = rbuild(&home, &root, &["build", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Examples:") && help.contains("rbuild build -t app:1 ."),
        "{help}"
    );
    let out = rbuild(&home, &root, &["version"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("rbuild {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
}

/// Contexts that are not a directory here: `-` (a Dockerfile, or a tar of the context),
/// an http(s) URL of a tarball, a Git URL with `#ref:subdir`; and a `Containerfile` found
/// when there is no `Dockerfile`. Each build's result is read back as files.
#[test]
fn contexts_from_stdin_urls_and_git_and_containerfiles() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    use crate::common::servers;

    if !crate::common::require::root("builds mount overlays")
        || !crate::common::require::tools(&["git", "python3", "tar"])
    {
        return;
    }
    let home = temp_home("cli-docker-contexts");
    let root = home.join("state");
    let src = home.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(
        src.join("sub/Dockerfile"),
        "FROM scratch\nCOPY a.txt /from-sub\n",
    )
    .unwrap();
    std::fs::write(src.join("sub/a.txt"), "sub\n").unwrap();
    std::fs::write(src.join("Containerfile"), "FROM scratch\nCOPY a.txt /a\n").unwrap();
    std::fs::write(src.join("a.txt"), "top\n").unwrap();
    let files = |name: &str| home.join(name);
    let build = |name: &str, context: &str, stdin: Option<Vec<u8>>| {
        let dest = format!("type=local,dest={}", files(name).display());
        let mut child = Command::new(crate::common::rbuild_bin())
            .args(["build", "-q", "-o", &dest, context])
            .current_dir(&src)
            .env("RBUILD_ROOT", &root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(bytes) = stdin {
            input.write_all(&bytes).unwrap();
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", describe(&[context], &out));
    };
    let read =
        |p: PathBuf| std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));

    // A Containerfile when there is no Dockerfile.
    build("local", ".", None);
    assert_eq!(read(files("local").join("a")), "top\n");
    // The Dockerfile alone on stdin: an empty context.
    build(
        "dockerfile-stdin",
        "-",
        Some(b"FROM scratch\nENV A=1\nWORKDIR /w\n".to_vec()),
    );
    assert!(files("dockerfile-stdin").join("w").is_dir());
    // A gzip tar of the context on stdin.
    let tar = Command::new("tar")
        .args(["-czf", "-", "-C"])
        .arg(src.join("sub"))
        .arg(".")
        .output()
        .unwrap();
    assert!(tar.status.success());
    build("tar-stdin", "-", Some(tar.stdout.clone()));
    assert_eq!(read(files("tar-stdin").join("from-sub")), "sub\n");
    // The same tarball over http.
    let site = home.join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("ctx.tar.gz"), &tar.stdout).unwrap();
    let (_http, http_port) = servers::http(&site);
    // A Git repository with the context in a subdirectory, served by git daemon.
    let work = home.join("repo-work");
    std::fs::create_dir_all(work.join("app")).unwrap();
    std::fs::write(work.join("app/Dockerfile"), "FROM scratch\nCOPY . /repo\n").unwrap();
    std::fs::write(work.join("app/file"), "from git\n").unwrap();
    let (_git, git_port) = servers::git_daemon(&work, &home.join("repos"));
    build(
        "http",
        &format!("http://127.0.0.1:{http_port}/ctx.tar.gz"),
        None,
    );
    assert_eq!(read(files("http").join("from-sub")), "sub\n");
    build(
        "git",
        &format!("git://127.0.0.1:{git_port}/repo.git#v1:app"),
        None,
    );
    assert_eq!(read(files("git").join("repo/file")), "from git\n");
}

/// What would fail only after the whole build fails before it (a `type=local` directory
/// that is not empty, a missing archive directory, a secret file that cannot be read), and
/// the last line says where the result went.
#[test]
fn destinations_and_secrets_are_checked_first_and_the_result_is_told() {
    let Some(ctx) = BusyboxContext::new("cli-docker-checks", "FROM base\nRUN echo ran > /ran\n")
    else {
        return;
    };
    let full = ctx.home.join("full");
    std::fs::create_dir_all(&full).unwrap();
    std::fs::write(full.join("keep"), "mine").unwrap();
    for (args, says) in [
        (
            vec![
                "-o".to_string(),
                format!("type=local,dest={}", full.display()),
            ],
            "the directory is not empty",
        ),
        (
            vec!["-o".into(), "type=oci,dest=/no/such/dir/app.tar".into()],
            "the directory /no/such/dir does not exist",
        ),
        (
            vec!["--secret".into(), "id=tok,src=/no/such/secret".into()],
            "--secret id=tok: cannot read /no/such/secret",
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stderr = ctx.build_fails(&args);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("RUN echo"), "nothing was built: {stderr}");
    }
    assert_eq!(std::fs::read_to_string(full.join("keep")).unwrap(), "mine");
    let archive = ctx.home.join("app.tar");
    let dest = format!("type=oci,dest={}", archive.display());
    let stderr = ctx.build_ok(&["-t", "told:1", "-o", &dest]);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("tagged docker.io/library/told:1")
            && last.contains(&format!("wrote {}", archive.display())),
        "{last}"
    );
}

/// Errors point at the cause: a missing COPY source under its own word (with what to do
/// when `.dockerignore` excludes it), a RUN that failed without the secret it mounts.
#[test]
fn errors_point_at_the_cause() {
    let Some(ctx) = BusyboxContext::new(
        "cli-docker-errors",
        "FROM base AS copy\nCOPY a.txt nope.txt secret.key /dst/\nFROM base AS ignored\nCOPY a.txt secret.key /dst/\nFROM base AS secret\nRUN --mount=type=secret,id=tok cat /run/secrets/tok\n",
    ) else {
        return;
    };
    ctx.write("a.txt", "a\n");
    ctx.write("secret.key", "k\n");
    ctx.write(".dockerignore", "secret.key\n");
    let stderr = ctx.build_fails(&["--target", "copy"]);
    assert!(
        stderr.contains("COPY a.txt nope.txt secret.key /dst/\n  |            ^^^^^^^^\n"),
        "the caret under nope.txt:\n{stderr}"
    );
    let stderr = ctx.build_fails(&["--target", "ignored"]);
    assert!(
        stderr.contains("a .dockerignore pattern excludes /secret.key")
            && stderr.contains("`!secret.key`"),
        "{stderr}"
    );
    let stderr = ctx.build_fails(&["--target", "secret"]);
    assert!(
        stderr.contains("the secret \"tok\" was not given to this build")
            && stderr.contains("--secret id=tok,src=FILE"),
        "{stderr}"
    );
}

/// `--build-context NAME=DIR` is what `COPY --from=NAME` reads; `NAME=docker-image://REF`
/// is the image `FROM NAME` (and `--from=NAME`) starts from; a directory cannot be a base.
#[test]
fn named_build_contexts() {
    let Some(ctx) = BusyboxContext::new(
        "cli-docker-named",
        "FROM base AS image\nRUN echo from-image > /marker\nFROM tools\nCOPY --from=files greeting.txt /greeting\nCOPY --from=tools /marker /marker-again\n",
    ) else {
        return;
    };
    // The image the context names, built first under its own name.
    ctx.build_ok(&["--target", "image", "-t", "tools-image:1"]);
    let files = ctx.home.join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("greeting.txt"), "hello from a named context\n").unwrap();
    let files_ctx = format!("files={}", files.display());
    let out = ctx.build_files(
        "fs",
        &[
            "--build-context",
            &files_ctx,
            "--build-context",
            "tools=docker-image://tools-image:1",
        ],
    );
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap();
    assert_eq!(read("greeting"), "hello from a named context\n");
    assert_eq!(read("marker"), "from-image\n");
    assert_eq!(read("marker-again"), "from-image\n");
    // The same image from an OCI layout directory (`oci-layout://PATH[:TAG]`).
    let layout = ctx.home.join("layout");
    let dest = format!("type=oci,tar=false,dest={}", layout.display());
    ctx.build_ok(&["--target", "image", "-o", &dest]);
    let from_layout = format!("tools=oci-layout://{}", layout.display());
    let out = ctx.build_files(
        "fs-layout",
        &[
            "--build-context",
            &files_ctx,
            "--build-context",
            &from_layout,
        ],
    );
    assert_eq!(
        std::fs::read_to_string(out.join("marker")).unwrap(),
        "from-image\n"
    );
    // A directory as a base is refused at its FROM (exit 2: the build cannot be planned),
    // saying what to do.
    let tools_dir = format!("tools={}", files.display());
    let args = ["build", "--build-context", &tools_dir, "."];
    let out = ctx.rbuild(&args);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&args, &out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the build context tools is a directory")
            && stderr.contains("docker-image://"),
        "{stderr}"
    );
}

/// A RUN step gets descriptors 0, 1 and 2 only, whatever rbuild's caller left open (here
/// fd 7): a leaked descriptor is how runc's CVE-2024-21626 let a step reach the host.
#[test]
fn run_steps_get_no_inherited_descriptor() {
    let Some(ctx) =
        BusyboxContext::new("cli-docker-fds", "FROM base\nRUN ls /proc/self/fd > /fds\n")
    else {
        return;
    };
    let out_dir = ctx.home.join("fs");
    let out = std::process::Command::new("bash")
        .args([
            "-c",
            "exec 7</dev/null; \"$RBUILD\" build -q -o \"type=local,dest=$OUT\" .",
        ])
        .current_dir(&ctx.dir)
        .env("RBUILD", crate::common::rbuild_bin())
        .env("RBUILD_ROOT", &ctx.root)
        .env("OUT", &out_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `ls` lists its own directory descriptor (3) too.
    assert_eq!(
        std::fs::read_to_string(out_dir.join("fds")).unwrap(),
        "0\n1\n2\n3\n"
    );
}
