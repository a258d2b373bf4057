//! What a build leaves behind, through the real binary on the busybox base of
//! `common::busybox_context`: outputs read back by independent tools (skopeo, umoci, tar), a
//! push to a real registry, each name tagged once, the same image from two state roots under
//! `SOURCE_DATE_EPOCH`, and the cache: what its keys tell apart, prune, and prune waiting for
//! a running build.

use std::path::Path;
use std::process::Command;

use crate::common::busybox_context::BusyboxContext;
use crate::common::registry::{Registry, skopeo_raw_manifest};
use crate::common::{describe, mirror_conf, rbuild_bin, require};

#[test]
fn outputs_read_back_by_skopeo_and_umoci() {
    if !require::tools(&["skopeo", "umoci"]) {
        return;
    }
    let Some(ctx) = BusyboxContext::new(
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
fn push_sends_the_built_image_to_its_registry() {
    if !require::tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let Some(ctx) = BusyboxContext::new("build-push", "FROM base\nRUN echo pushed > /p.txt\n")
    else {
        return;
    };
    let reg = Registry::start(None);
    let conf = mirror_conf(&ctx.home, "127.0.0.1:1", &[reg.addr.as_str()]);
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
    let raw = skopeo_raw_manifest(&name, None);
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
    assert_eq!(skopeo_raw_manifest(&other, None), raw);
}

#[test]
fn each_name_is_tagged_once() {
    let Some(ctx) = BusyboxContext::new("build-names", "FROM base\n") else {
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
fn source_date_epoch_builds_the_same_image_anywhere_and_builder_prune_clears_the_cache() {
    let Some(ctx) = BusyboxContext::new(
        "build-repro",
        "FROM base\nCOPY input.txt /\nRUN cat /input.txt > /copy.txt\n",
    ) else {
        return;
    };
    ctx.write("input.txt", "same\n");
    let env = [("SOURCE_DATE_EPOCH", "1700000000")];
    let build = |root: &Path| {
        let mut cmd = Command::new(rbuild_bin());
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
        let out = Command::new(rbuild_bin())
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

    // A rebuild is all cache; plain prune keeps the build cache (docker's `image prune`);
    // after `prune --build-cache` (`builder prune`), the steps run again.
    let again = build(&ctx.root);
    assert_eq!(again.matches(" CACHED").count(), 4, "{again}");
    let out = ctx.rbuild(&["prune", "--grace", "0s"]);
    assert!(out.status.success(), "{}", describe(&["prune"], &out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("kept the build cache"),
        "{}",
        describe(&["prune"], &out)
    );
    let kept = build(&ctx.root);
    assert_eq!(kept.matches(" CACHED").count(), 4, "{kept}");
    let out = ctx.rbuild(&["builder", "prune", "--grace", "0s"]);
    assert!(
        out.status.success(),
        "{}",
        describe(&["builder", "prune"], &out)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("build cache record"),
        "{}",
        describe(&["builder", "prune"], &out)
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
fn the_cache_tells_compressions_and_source_date_epochs_apart() {
    let Some(ctx) = BusyboxContext::new("build-cache-layers", "FROM base\nRUN echo x > /x\n")
    else {
        return;
    };
    // As saved: the store keeps the layers built here uncompressed (docs/store.md), and
    // a save compresses them as their build asked.
    let media_types = |ctx: &BusyboxContext| -> Vec<String> {
        let dir = ctx.home.join("saved");
        let _ = std::fs::remove_dir_all(&dir);
        let args = [
            "save",
            "--format",
            "oci-dir",
            "-o",
            dir.to_str().unwrap(),
            "layers:1",
        ];
        let out = ctx.rbuild(&args);
        assert!(out.status.success(), "{}", describe(&args, &out));
        let blob = |digest: &str| {
            let path = dir
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:"));
            serde_json::from_slice::<serde_json::Value>(&std::fs::read(path).unwrap()).unwrap()
        };
        let index = serde_json::from_slice::<serde_json::Value>(
            &std::fs::read(dir.join("index.json")).unwrap(),
        )
        .unwrap();
        blob(index["manifests"][0]["digest"].as_str().unwrap())["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["mediaType"].as_str().unwrap().to_string())
            .collect()
    };
    ctx.build_ok(&["-t", "layers:1"]);
    let local: Vec<String> = ctx.inspect("layers:1")["manifest"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap().to_string())
        .collect();
    assert!(
        local
            .iter()
            .all(|m| m == "application/vnd.oci.image.layer.v1.tar"),
        "{local:?}"
    );
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
fn prune_waits_for_a_running_build() {
    let Some(ctx) = BusyboxContext::new(
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

fn sha256_hex(bytes: &[u8]) -> String {
    rbuild::oci::digest::Digest::sha256(bytes).hex().to_string()
}
