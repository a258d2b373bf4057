//! `RUN --mount` against the host: cache ids and sources that climb out of the cache root
//! (Buildah CVE-2024-9675, BuildKit CVE-2024-23651), mount-point stubs made through the
//! image's symlinks and removed after the step (BuildKit CVE-2024-23652), bind sources that
//! are a stage's symlinks to `/` or `..` (Buildah CVE-2024-1753), and stages racing on one
//! cache (Buildah CVE-2024-11218). The host sentinel beside the state root must stay
//! unread and unchanged, and what the steps write must land in the cache or the layer.

use std::path::Path;

use super::{Ctx, shows_sentinel};

/// Every file named `name` below `dir` (symlinks not followed).
fn find_named(dir: &Path, name: &str, found: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if e.file_name() == name {
            found.push(path.clone());
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            find_named(&path, name, found);
        }
    }
}

/// Files named `names` the steps wrote lie below `within` (the cache directories, or the
/// state root, which also holds the layers a step writes through a link in its cache to
/// its own `/`) or nowhere; never beside the state root or the cache root, nor at the
/// host's root.
fn assert_written_only_below(ctx: &Ctx, within: &Path, names: &[&str]) {
    for name in names {
        let mut found = Vec::new();
        find_named(&ctx.home, name, &mut found);
        for path in &found {
            assert!(
                path.starts_with(within),
                "{name} was written outside {}: {}",
                within.display(),
                path.display()
            );
        }
        for dir in [&ctx.root, &ctx.root.join("cache"), &ctx.home] {
            assert!(!dir.join(name).exists(), "{name} in {}", dir.display());
        }
        assert!(
            !Path::new("/").join(name).exists(),
            "{name} was written at the host's root"
        );
    }
}

const EVIL_STAGE: &str = "FROM base AS evil\nRUN ln -s / /rootlink && ln -s ../../../.. /up && mkdir -p /srv/etc /inside && echo stage-etc > /srv/etc/marker && ln -s /srv/etc /etclink && echo stage > /inside/marker\n";

#[test]
fn cache_ids_and_sources_stay_in_the_cache_root() {
    let steps = [
        "RUN --mount=type=cache,id=../../..,target=/c touch /c/w1 && ls -a /c > /s1",
        "RUN --mount=type=cache,id=/,target=/c touch /c/w2 && ls -a /c > /s2",
        "RUN --mount=type=cache,id=../../sentinel,target=/c touch /c/w3 && ls -a /c > /s3",
        // A cache holding links out, then mounted by them.
        "RUN --mount=type=cache,id=links,target=/c ln -sfn / /c/rootlink && ln -sfn ../../../.. /c/up",
        "RUN --mount=type=cache,id=links,target=/c,source=rootlink ls -a /c/ > /s4; touch /c/w4; true",
        "RUN --mount=type=cache,id=links,target=/c,source=up ls -a /c/ > /s5; touch /c/w5; true",
        "RUN --mount=type=cache,id=links,target=/c,source=/../../.. ls -a /c/ > /s6; touch /c/w6; true",
        // Seeded from a stage through its links to `/` and `..`: that stage's root.
        "RUN --mount=type=cache,id=seed-root,from=evil,source=rootlink,target=/c ls -a /c/ > /s7",
        "RUN --mount=type=cache,id=seed-up,from=evil,source=up,target=/c ls -a /c/ > /s8",
        "RUN --mount=type=cache,target=/c/../../x touch /x/w9 && ls -a / > /s9",
    ];
    let Some(ctx) = Ctx::new(
        "cache-ids",
        &format!("{EVIL_STAGE}FROM base\n{}\n", steps.join("\n")),
    ) else {
        return;
    };
    let fs = ctx.files("fs");
    for n in 1..=9 {
        let seen = std::fs::read_to_string(fs.join(format!("s{n}"))).unwrap();
        assert!(!shows_sentinel(&seen), "s{n} lists the host:\n{seen}");
        if n == 7 || n == 8 {
            assert!(
                seen.lines().any(|l| l == "inside"),
                "s{n}: a cache seeded through a link to / holds the stage's root:\n{seen}"
            );
        }
    }
    assert_written_only_below(
        &ctx,
        &ctx.root.join("cache/mounts"),
        &["w1", "w2", "w3", "w4", "w5", "w6"],
    );
    assert!(
        !fs.join("x/w9").exists(),
        "a cache's files are not in the layer"
    );
    ctx.assert_host_untouched(&["fs"]);
}

/// Mount targets through the image's symlinks to the host directory (absolute and by
/// `..`), onto existing files and directories, and new ones: the stubs rbuild makes are
/// made in the image and removed after the step, the image's own files are left as they
/// were, and nothing on the host is made or removed (an empty file and an empty directory
/// are what a stub cleanup gone astray would take).
#[test]
fn mount_stub_cleanup_stays_in_the_layer() {
    let Some(ctx) = Ctx::new("stubs", "") else {
        return;
    };
    let home = ctx.home.display().to_string();
    let ups = "../".repeat(12);
    let host = home.trim_start_matches('/');
    ctx.dockerfile(&format!(
        "FROM base AS links\nRUN ln -s {home} /abs && ln -s {ups}{host} /rel && ln -s ../../.. /run2 && echo keep > /existing && mkdir /existing-dir && echo inner > /existing-dir/f\n\
         FROM links\n\
         RUN --mount=type=tmpfs,target=/abs/empty-dir --mount=type=tmpfs,target=/rel/stub-dir/deeper --mount=type=bind,source=rootfs/etc/passwd,target=/abs/empty-sentinel --mount=type=bind,source=rootfs/etc/group,target=/rel/new-file --mount=type=bind,source=rootfs/etc/passwd,target=/existing --mount=type=tmpfs,target=/existing-dir --mount=type=tmpfs,target=/run2{home}/run-stub cat /abs/empty-sentinel > /seen-through-link\n\
         RUN ls -a /existing-dir > /after-dir && cat /existing > /after-file\n"
    ));
    let fs = ctx.files("fs");
    assert_eq!(
        std::fs::read_to_string(fs.join("seen-through-link")).unwrap(),
        "root:x:0:0:root:/root:/bin/sh\n",
        "the bind was made at the link's target inside the image"
    );
    assert_eq!(
        std::fs::read_to_string(fs.join("after-file")).unwrap(),
        "keep\n"
    );
    assert_eq!(
        std::fs::read_to_string(fs.join("after-dir")).unwrap(),
        ".\n..\nf\n"
    );
    assert_eq!(
        std::fs::read_to_string(fs.join("existing")).unwrap(),
        "keep\n"
    );
    // The stubs made for the targets (under the image's own `/tmp/...`) are gone, as they
    // are from BuildKit's layers; the links are the image's.
    assert!(
        !fs.join(host).exists() && !fs.join("tmp").exists(),
        "mount stubs were left in the layer"
    );
    for link in ["abs", "rel", "run2"] {
        assert!(fs.join(link).is_symlink(), "/{link}");
    }
    ctx.assert_host_untouched(&["fs"]);
}

/// `--mount=type=bind,from=STAGE,source=LINK`: the source's symlinks are the stage's,
/// resolved with its root as `/`, as BuildKit resolves them; a link to `/` or `../..`
/// mounts that stage's root, a read-write mount's writes go nowhere, and a link to a host
/// path names a missing path in the stage.
#[test]
fn bind_sources_resolve_in_their_stage() {
    let Some(ctx) = Ctx::new("bind-links", "") else {
        return;
    };
    let home = ctx.home.display().to_string();
    ctx.dockerfile(&format!(
        "{EVIL_STAGE}FROM evil AS evil2\nRUN ln -s {home} /hostpath\n\
         FROM base\n\
         RUN --mount=type=bind,from=evil,source=rootlink,target=/m ls -a /m > /s1\n\
         RUN --mount=type=bind,from=evil,source=up,target=/m,rw touch /m/written-through-up && ls -a /m > /s2\n\
         RUN --mount=type=bind,from=evil,source=etclink,target=/m cat /m/marker > /s3\n\
         RUN --mount=type=bind,from=evil,source=/up/srv/../../..,target=/m ls -a /m > /s4\n"
    ));
    let fs = ctx.files("fs");
    for n in [1, 2, 4] {
        let seen = std::fs::read_to_string(fs.join(format!("s{n}"))).unwrap();
        assert!(!shows_sentinel(&seen), "s{n} lists the host:\n{seen}");
        assert!(
            seen.lines().any(|l| l == "inside") && seen.lines().any(|l| l == "srv"),
            "s{n}: the stage's root:\n{seen}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(fs.join("s3")).unwrap(),
        "stage-etc\n",
        "an absolute link names the stage's directory"
    );
    assert!(!fs.join("written-through-up").exists());
    assert!(!Path::new("/written-through-up").exists());

    ctx.dockerfile(&format!(
        "{EVIL_STAGE}FROM evil AS evil2\nRUN ln -s {home} /hostpath\n\
         FROM base\nRUN --mount=type=bind,from=evil2,source=hostpath,target=/m ls -a /m\n"
    ));
    let stderr = ctx.fails(1);
    assert!(
        stderr.contains("bind mount source \"hostpath\"") && stderr.contains("Dockerfile:"),
        "{stderr}"
    );
    assert!(!shows_sentinel(&stderr), "{stderr}");
    ctx.assert_host_untouched(&["fs"]);
}

/// Independent stages, which rbuild runs at once, race on one cache id: swapping links to
/// `/` and `..` in it while others mount it (through those links too) and mount the same
/// targets. Nothing lands outside the cache, nothing of the host is seen.
#[test]
fn stages_racing_on_one_cache_touch_no_host_file() {
    // Each stage's command differs (`: a`), or the others would wait for the first one's
    // identical step and take its result.
    let churn = |what: &str| {
        format!("sh -c 'i=0; while [ $i -lt 200 ]; do {what}; i=$((i+1)); done; true' : ")
    };
    let swap = churn(
        "ln -sfn / /c/x; rm -f /c/x; mkdir -p /c/x; rmdir /c/x 2>/dev/null; ln -sfn ../../../.. /c/x; rm -f /c/x; ln -sfn /c /c/x",
    );
    let look = churn("ls -a /c/x/ >> /seen 2>&1; touch /c/x/w-race 2>/dev/null");
    let Some(ctx) = Ctx::new(
        "race",
        &format!(
            "FROM base AS a\nRUN --mount=type=cache,id=race,target=/c {swap}a\n\
             FROM base AS b\nRUN --mount=type=cache,id=race,target=/c {swap}b\n\
             FROM base AS c\nRUN --mount=type=cache,id=race,target=/c,source=x {look}c\n\
             FROM base AS d\nRUN --mount=type=cache,id=race,target=/c --mount=type=tmpfs,target=/c2 {look}d\n\
             FROM base AS e\nRUN --mount=type=cache,id=race,target=/c/x,sharing=private --mount=type=tmpfs,target=/c2 {look}e\n\
             FROM base\nCOPY --from=c /seen /seen-c\nCOPY --from=d /seen /seen-d\nCOPY --from=e /seen /seen-e\nCOPY --from=a /bin/busybox /a\nCOPY --from=b /bin/busybox /b\n"
        ),
    ) else {
        return;
    };
    let fs = ctx.files("fs");
    for s in ["seen-c", "seen-d", "seen-e"] {
        let seen = std::fs::read_to_string(fs.join(s)).unwrap();
        assert!(!shows_sentinel(&seen), "{s} lists the host");
    }
    assert_written_only_below(&ctx, &ctx.root, &["w-race"]);
    ctx.assert_host_untouched(&["fs"]);
}
