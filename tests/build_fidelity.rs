//! Docker fidelity: builds whose result must be what `docker build` (BuildKit) gives for
//! the same Dockerfile, each a behaviour once seen to differ. Built from the busybox
//! fixture (`common::busybox_context`) and read back as files or config.

use crate::common::busybox_context::BusyboxContext;

/// RUN gets HOME as runc gives it: the user's passwd home, `/` for a user without an
/// entry, and the image's own HOME when its ENV sets one; the image config never gets it.
#[test]
fn run_gets_home_from_passwd_unless_env_sets_it() {
    let Some(ctx) = BusyboxContext::new(
        "build-home",
        "FROM base\nRUN mkdir -m 1777 /out && echo \"$HOME\" > /out/root\nUSER app\nRUN echo \"$HOME\" > /out/app\nUSER 4242\nRUN echo \"$HOME\" > /out/none\nUSER root\nENV HOME=/custom\nRUN echo \"$HOME\" > /out/env\n",
    ) else {
        return;
    };
    let out = ctx.build_files("fs", &["-t", "home:1"]);
    let read = |f: &str| std::fs::read_to_string(out.join("out").join(f)).unwrap();
    assert_eq!(read("root"), "/root\n");
    assert_eq!(read("app"), "/home/app\n");
    assert_eq!(read("none"), "/\n");
    assert_eq!(read("env"), "/custom\n");
    let env = ctx.inspect("home:1")["config"]["config"]["Env"].clone();
    let homes: Vec<&str> = env
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str())
        .filter(|e| e.starts_with("HOME="))
        .collect();
    assert_eq!(
        homes,
        vec!["HOME=/custom"],
        "only ENV's HOME is in the image: {env}"
    );
}

/// ONBUILD triggers of a stage run in the first stage built FROM it, as an image's do,
/// and go no further: a stage built FROM that one runs none, and no config keeps them.
#[test]
fn onbuild_triggers_of_a_stage_run_once_in_its_child() {
    let Some(ctx) = BusyboxContext::new(
        "build-onbuild-stage",
        "FROM base AS parent\nONBUILD RUN echo ran >> /count\nFROM parent AS child\nRUN test -f /count\nFROM child\nRUN echo end >> /count\n",
    ) else {
        return;
    };
    let out = ctx.build_files("fs", &["-t", "onbuild:1"]);
    assert_eq!(
        std::fs::read_to_string(out.join("count")).unwrap(),
        "ran\nend\n"
    );
    let config = ctx.inspect("onbuild:1")["config"]["config"].clone();
    assert!(
        config
            .get("OnBuild")
            .is_none_or(|t| t.is_null() || t.as_array().is_some_and(|a| a.is_empty())),
        "{config}"
    );
}

/// WORKDIR after a USER the image does not know (no passwd entry; a scratch stage with no
/// passwd file at all) creates the directory 0:0 and the build goes on, as BuildKit does.
#[test]
fn workdir_for_an_unknown_user_is_made_by_root() {
    let Some(ctx) = BusyboxContext::new(
        "build-workdir-user",
        "FROM base AS named\nUSER ghost\nWORKDIR /srv/app\nUSER root\nRUN stat -c '%u:%g %a' /srv/app > /owner\n\
         FROM scratch AS bare\nUSER root\nWORKDIR /w\n\
         FROM named\nCOPY --from=bare /w /w-copy\n",
    ) else {
        return;
    };
    let out = ctx.build_files("fs", &[]);
    assert_eq!(
        std::fs::read_to_string(out.join("owner")).unwrap(),
        "0:0 755\n"
    );
}

/// A RUN in a scratch stage leaves `/proc`, `/dev` and `/sys` in its layer, empty and
/// 0755 root, as runc leaves them under Docker; the other mount points it needed
/// (`/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`, a cache mount's target) go.
#[test]
fn run_in_scratch_keeps_proc_dev_sys_and_nothing_else() {
    use std::os::unix::fs::MetadataExt;
    let Some(ctx) = BusyboxContext::new(
        "build-scratch-mounts",
        "FROM base\nRUN --mount=type=cache,target=/var/cache/x true\n",
    ) else {
        return;
    };
    let out = ctx.build_files("fs", &[]);
    for d in ["proc", "dev", "sys"] {
        let m = std::fs::metadata(out.join(d)).unwrap_or_else(|e| panic!("/{d}: {e}"));
        assert!(m.is_dir(), "/{d}");
        assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o755, 0, 0), "/{d}");
        assert_eq!(
            std::fs::read_dir(out.join(d)).unwrap().count(),
            0,
            "/{d} is empty"
        );
    }
    for gone in ["etc/hosts", "etc/resolv.conf", "etc/hostname", "var"] {
        assert!(!out.join(gone).exists(), "/{gone} was left behind");
    }
}

/// A bind mount of one context file puts that file at the target, not a directory
/// holding it; the stub it needed is gone afterwards.
#[test]
fn a_bind_mount_of_one_file_is_a_file() {
    let Some(ctx) = BusyboxContext::new(
        "build-bind-file",
        "FROM base\nRUN --mount=type=bind,source=conf/app.conf,target=/etc/app.conf test -f /etc/app.conf && cat /etc/app.conf > /seen\n",
    ) else {
        return;
    };
    ctx.write("conf/app.conf", "key=value\n");
    let out = ctx.build_files("fs", &[]);
    assert_eq!(
        std::fs::read_to_string(out.join("seen")).unwrap(),
        "key=value\n"
    );
    assert!(
        !out.join("etc/app.conf").exists(),
        "the mount point stub is removed"
    );
}

/// `RUN --mount=type=cache,from=STAGE,source=DIR` starts the cache as a copy of DIR in
/// the stage; once filled, the cache keeps what steps wrote and is not seeded again.
#[test]
fn a_cache_mount_is_seeded_from_a_stage() {
    let Some(ctx) = BusyboxContext::new(
        "build-cache-from",
        "FROM base AS seed\nRUN mkdir -p /seed/data && echo seeded > /seed/data/file\n\
         FROM base\nRUN --mount=type=cache,target=/c,from=seed,source=/seed/data cat /c/file > /out1 && echo more > /c/extra\n\
         RUN --mount=type=cache,target=/c,from=seed,source=/seed/data ls /c > /out2\n",
    ) else {
        return;
    };
    let out = ctx.build_files("fs", &[]);
    assert_eq!(
        std::fs::read_to_string(out.join("out1")).unwrap(),
        "seeded\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("out2")).unwrap(),
        "extra\nfile\n"
    );
    assert!(
        !out.join("c/file").exists(),
        "the cache stays out of the layer"
    );
}

/// `RUN --security=insecure` is refused unless the build passes `--allow
/// security.insecure`; allowed, the step keeps every capability (Docker's privileged
/// mode) and no seccomp filter, while other steps keep Docker's default set and filter.
#[test]
fn insecure_run_needs_the_entitlement_and_gets_every_capability() {
    let Some(ctx) = BusyboxContext::new(
        "build-insecure",
        "FROM base\nRUN grep CapEff /proc/self/status > /caps-default && \
         grep '^Seccomp:' /proc/self/status > /seccomp-default\n\
         RUN --security=insecure grep CapEff /proc/self/status > /caps-insecure && \
         grep '^Seccomp:' /proc/self/status > /seccomp-insecure\n",
    ) else {
        return;
    };
    let stderr = ctx.build_fails(&[]);
    assert!(stderr.contains("--allow security.insecure"), "{stderr}");

    let out = ctx.build_files("fs", &["--allow", "security.insecure"]);
    let caps = |f: &str| {
        let text = std::fs::read_to_string(out.join(f)).unwrap();
        u64::from_str_radix(text.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    // moby's default set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
    // NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
    assert_eq!(caps("caps-default"), 0xa80425fb);
    let insecure = caps("caps-insecure");
    assert_eq!(insecure & 0xa80425fb, 0xa80425fb);
    assert!(insecure & (1 << 21) != 0, "CAP_SYS_ADMIN: {insecure:x}");
    // Mode 2 is a seccomp filter; 0 is none.
    let seccomp = |f: &str| std::fs::read_to_string(out.join(f)).unwrap();
    assert_eq!(seccomp("seccomp-default"), "Seccomp:\t2\n");
    assert_eq!(seccomp("seccomp-insecure"), "Seccomp:\t0\n");
}

/// `RUN <<EOF` whose body starts with `#!` runs the body as its own executable file,
/// `/dev/pipes/EOF`, as BuildKit does; nothing of it stays in the image.
#[test]
fn a_shebang_heredoc_runs_as_a_script_file() {
    let Some(ctx) = BusyboxContext::new(
        "build-shebang",
        "FROM base\nRUN <<EOF\n#!/bin/sh\necho \"script $0\" > /script-out\nEOF\n",
    ) else {
        return;
    };
    let out = ctx.build_files("fs", &[]);
    assert_eq!(
        std::fs::read_to_string(out.join("script-out")).unwrap(),
        "script /dev/pipes/EOF\n"
    );
    assert!(
        !out.join("dev/pipes").exists(),
        "the script's mount point is gone"
    );
}
