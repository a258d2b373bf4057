//! The docker user's habits through the real binary: `docker build` flags (`--iidfile`,
//! `--metadata-file`, `--label`, `--add-host`, `--shm-size`, and the no-ops `--load`,
//! `--rm`, `--force-rm`, `--provenance=false`), clear answers for flags rbuild lacks,
//! docker's two-word commands (`image ls`), subcommand typos, `rbuild version`, and one
//! exit-code policy.

use crate::common::busybox_context::BusyboxContext;
use crate::common::{describe, rbuild, temp_home};

#[test]
fn docker_build_flags_do_what_docker_does() {
    let Some(ctx) = BusyboxContext::new(
        "cli-docker-flags",
        "FROM base\nLABEL from=dockerfile over=dockerfile\nRUN grep -w db /etc/hosts > /hosts && df -k /dev/shm | tail -n 1 | awk '{print $2}' > /shm\n",
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
            &["build", "--cache-to", "type=local,dest=x", "."][..],
            "does not support --cache-to",
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
    let out = rbuild(&home, &root, &["version"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("rbuild {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
}
