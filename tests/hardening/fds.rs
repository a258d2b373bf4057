//! No descriptor of rbuild's reaches a RUN step (runc CVE-2024-21626): rbuild is started
//! with descriptors of host directories left open (5, 7 and 9, not close-on-exec, as a CI
//! runner or a shell may leave them), and a step lists `/proc/self/fd`, and makes its
//! working directory `/proc/self/fd/N` for several N, which must fail or stay in the
//! container.

use std::process::Command;

use super::{Ctx, SECRET, shows_sentinel};
use crate::common::describe;

/// `rbuild build ARGS .` in `ctx`, started by a shell that leaves descriptors 5 and 7 open
/// on the host directory holding the sentinel and 9 on the sentinel itself.
fn build_leaking(ctx: &Ctx, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(r#"exec 5<"$HOST" 7<"$HOST" 9<"$HOST/sentinel"; exec "$RBUILD" build --progress=plain "$@" ."#)
        .arg("bash")
        .args(args)
        .current_dir(&ctx.dir)
        .env("HOST", &ctx.home)
        .env("RBUILD", crate::common::rbuild_bin())
        .env("RBUILD_ROOT", &ctx.root)
        .env("NO_COLOR", "1");
    cmd.output().expect("run bash")
}

#[test]
fn a_step_sees_only_the_standard_descriptors() {
    let Some(ctx) = Ctx::new(
        "fds-list",
        "FROM base\nRUN ls /proc/self/fd > /fds; ls -l /proc/self/fd/ > /fds-long\n",
    ) else {
        return;
    };
    let out_dir = ctx.home.join("fs");
    let dest = format!("type=local,dest={}", out_dir.display());
    let out = build_leaking(&ctx, &["-o", &dest]);
    assert!(out.status.success(), "{}", describe(&["build"], &out));
    // `ls` lists its own directory descriptor (3) too.
    let fds = std::fs::read_to_string(out_dir.join("fds")).unwrap();
    assert_eq!(fds, "0\n1\n2\n3\n", "{fds}");
    let long = std::fs::read_to_string(out_dir.join("fds-long")).unwrap();
    assert!(
        !long.contains(ctx.home.to_str().unwrap()),
        "a host path reached the step:\n{long}"
    );
    ctx.assert_host_untouched(&["fs"]);
}

/// `WORKDIR /proc/self/fd/N` for the leaked numbers and their neighbours: the step fails
/// to start there (no such descriptor in the sandbox's PID 1), or runs inside the
/// container; it never lists, reads or writes the host directory.
#[test]
fn workdir_through_proc_self_fd_stays_in_the_container() {
    let Some(ctx) = Ctx::new("fds-workdir", "") else {
        return;
    };
    for n in [3, 4, 5, 6, 7, 8, 9, 10, 11, 20] {
        ctx.dockerfile(&format!(
            "FROM base\nWORKDIR /proc/self/fd/{n}\nRUN ls -a . ../../.. > /seen 2>&1; cat sentinel >> /seen 2>&1; echo escaped > written; true\n"
        ));
        let out_dir = ctx.home.join("fs");
        let _ = std::fs::remove_dir_all(&out_dir);
        let dest = format!("type=local,dest={}", out_dir.display());
        let out = build_leaking(&ctx, &["-o", &dest]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            let seen = std::fs::read_to_string(out_dir.join("seen")).unwrap();
            assert!(
                !shows_sentinel(&seen),
                "WORKDIR /proc/self/fd/{n} reached the host:\n{seen}"
            );
        } else {
            assert_eq!(out.status.code(), Some(1), "{}", describe(&["build"], &out));
            assert!(
                stderr.contains("working directory /proc/self/fd/"),
                "WORKDIR /proc/self/fd/{n}: {stderr}"
            );
        }
        assert!(!stderr.contains(SECRET), "{stderr}");
        ctx.assert_host_untouched(&["fs"]);
    }
}
