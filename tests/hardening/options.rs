//! Hostile `--mount` option strings (Buildah CVE-2024-9407: `bind-propagation=` passed
//! through to the mount as options). rbuild takes only the keys it knows, each typed
//! (a mode, an id, a size are numbers; sharing one of three words), and hands the sandbox
//! paths, never option text: so every other key, and every value that is not its type, is
//! refused at its line before anything runs; what is accepted lands as a literal path.

use super::{Ctx, shows_sentinel};

/// `--mount` values refused when the Dockerfile is read (exit 2), and what the error says.
const REFUSED: &[(&str, &str)] = &[
    (
        "type=bind,target=/m,bind-propagation=rshared",
        "unexpected key 'bind-propagation'",
    ),
    (
        "type=bind,target=/m,bind-propagation=shared,rw",
        "unexpected key 'bind-propagation'",
    ),
    (
        "type=cache,target=/c,bind-propagation=rshared,sharing=shared",
        "unexpected key 'bind-propagation'",
    ),
    (
        "type=bind,target=/m,options=rbind",
        "unexpected key 'options'",
    ),
    (
        "type=bind,target=/m,propagation=shared",
        "unexpected key 'propagation'",
    ),
    (
        "type=tmpfs,target=/t,size=1m,nr_inodes=1",
        "unexpected key 'nr_inodes'",
    ),
    (
        "type=tmpfs,target=/t,size=\"1m,uid=0\"",
        "uid not allowed for \"tmpfs\" type mounts",
    ),
    (
        "type=tmpfs,target=/t,size=1m;exec",
        "invalid value for size",
    ),
    (
        "type=cache,target=/c,sharing=shared,locked",
        "invalid field 'locked' must be a key=value pair",
    ),
    (
        "type=cache,target=/c,sharing=rshared",
        "unrecognized sharing mode",
    ),
    (
        "type=cache,target=/c,gid=0;rm",
        "invalid value for gid: 0;rm",
    ),
    ("type=cache,target=/c,uid=-1", "invalid value for uid: -1"),
    (
        "type=cache,target=/c,mode=4777,suid",
        "invalid field 'suid' must be a key=value pair",
    ),
    (
        "type=cache,target=/c,mode=99999999999",
        "invalid value 99999999999 for mode",
    ),
    ("type=bind,target=/m,rw=yes", "invalid value for rw: yes"),
    ("type=bind,target=/m,ro=1,exec", "invalid field 'exec'"),
    (
        "type=overlay,target=/c",
        "unsupported mount type \"overlay\"",
    ),
    (
        "type=bind,target=/m,mode=0755",
        "mode not allowed for \"bind\" type mounts",
    ),
    ("type=tmpfs,target=", "mount type tmpfs requires a target"),
    ("type=bind,target=/m,=x", "unexpected key '' in '=x'"),
];

#[test]
fn hostile_mount_options_are_refused_at_their_line() {
    let Some(ctx) = Ctx::new("mount-options", "") else {
        return;
    };
    for (spec, message) in REFUSED {
        // Line 5 of the Dockerfile (after the three lines of the base stage and FROM).
        ctx.dockerfile(&format!("FROM base\nRUN --mount={spec} ls /\n"));
        let stderr = ctx.fails(2);
        assert!(
            stderr.contains(message) && stderr.contains("--> Dockerfile:5:"),
            "--mount={spec}: expected {message:?} at Dockerfile:5:\n{stderr}"
        );
        assert!(!shows_sentinel(&stderr));
        assert!(
            !stderr.contains(" started"),
            "--mount={spec}: nothing runs before the Dockerfile is refused:\n{stderr}"
        );
    }
    // The same refusal over a continuation line, and as the second mount of a step.
    ctx.dockerfile(
        "FROM base\nRUN --mount=type=tmpfs,target=/t \\\n    --mount=type=bind,target=/m,bind-propagation=rshared ls /\n",
    );
    let stderr = ctx.fails(2);
    assert!(
        stderr.contains("unexpected key 'bind-propagation'") && stderr.contains("Dockerfile:6:"),
        "{stderr}"
    );
    ctx.assert_host_untouched(&[]);
}

/// What is accepted is taken as written: quotes and escapes make no option of a value, a
/// duplicate key keeps its last value (as BuildKit's CSV reading does), a very long id is
/// only hashed, and a path too long for the kernel fails the step at its line.
#[test]
fn accepted_mount_values_are_literal() {
    let long_id = "x".repeat(20_000);
    let Some(ctx) = Ctx::new(
        "mount-literals",
        &format!(
            "FROM base\n\
             RUN --mount=type=tmpfs,target=/t,target=/u test -d /u && ! test -e /t && grep ' /u ' /proc/self/mountinfo > /dup\n\
             RUN --mount=type=bind,source=rootfs/etc,target=/m\\0x,rw=false sh -c 'ls -d /m*; ls /m*' > /nul-like\n\
             RUN --mount=type=cache,id={long_id},target=/c touch /c/long && ls /c > /long-id\n\
             RUN --mount=type=tmpfs,\"target=/q,size=8k\" sh -c 'grep \" /q \" /proc/self/mountinfo > /quoted; dd if=/dev/zero of=/q/f bs=1k count=64 2>/dev/null; echo $? >> /quoted'\n"
        ),
    ) else {
        return;
    };
    let fs = ctx.files("fs");
    let dup = std::fs::read_to_string(fs.join("dup")).unwrap();
    assert!(dup.contains(" /u ") && dup.contains("tmpfs"), "{dup}");
    assert!(
        !fs.join("t").exists() && !fs.join("u").exists(),
        "stubs left"
    );
    // The Dockerfile's escape character takes the backslash; the rest is the path.
    let nul = std::fs::read_to_string(fs.join("nul-like")).unwrap();
    assert!(
        nul.starts_with("/m") && nul.contains("0x\ngroup\npasswd\n"),
        "{nul}"
    );
    assert_eq!(
        std::fs::read_to_string(fs.join("long-id")).unwrap(),
        "long\n"
    );
    // The quotes go with the flag's word; what is left is the CSV `target=/q,size=8k`: a
    // typed size, the only option text rbuild writes (a number), so 64 KiB do not fit.
    let quoted = std::fs::read_to_string(fs.join("quoted")).unwrap();
    assert!(
        quoted.contains("size=8k") && quoted.ends_with("1\n"),
        "{quoted}"
    );

    let long_target = format!("/{}", "a".repeat(5000));
    ctx.dockerfile(&format!(
        "FROM base\nRUN --mount=type=tmpfs,target={long_target} true\n"
    ));
    let stderr = ctx.fails(1);
    assert!(
        stderr.contains("File name too long") && stderr.contains("--> Dockerfile:5:"),
        "{stderr}"
    );
    ctx.assert_host_untouched(&["fs"]);
}
