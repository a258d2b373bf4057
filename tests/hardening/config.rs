//! Cache poisoning by a missing input (moby CVE-2024-24557): a build that differs from a
//! cached one in a single field of a single instruction must not get the cached result.
//! Layer steps hash their fields into their keys (table tests beside each key, in
//! `src/engine/step/run.rs` and `copy.rs`); here, every instruction that edits the image
//! config changes, one field at a time, the image the build makes, and building the
//! original again gives the original image back.

use super::Ctx;
use crate::common::describe;

/// One field of one instruction changed, against [`BASE`].
const VARIANTS: &[&str] = &[
    "ENV A=1 B=3",
    "LABEL l=2",
    "USER 1000",
    "USER 0:1000",
    "WORKDIR /srv",
    "EXPOSE 8081",
    "EXPOSE 8080/udp",
    "VOLUME /data2",
    "STOPSIGNAL SIGINT",
    "SHELL [\"/bin/sh\", \"-e\", \"-c\"]",
    "ENTRYPOINT [\"/bin/sh\", \"-x\"]",
    "CMD [\"echo\", \"bye\"]",
    "CMD echo hi",
    "HEALTHCHECK --interval=31s --timeout=5s --start-period=1s --retries=3 CMD true",
    "HEALTHCHECK --interval=30s --timeout=6s --start-period=1s --retries=3 CMD true",
    "HEALTHCHECK --interval=30s --timeout=5s --start-period=2s --retries=3 CMD true",
    "HEALTHCHECK --interval=30s --timeout=5s --start-period=1s --retries=4 CMD true",
    "HEALTHCHECK --interval=30s --timeout=5s --start-period=1s --start-interval=2s --retries=3 CMD true",
    "HEALTHCHECK --interval=30s --timeout=5s --start-period=1s --retries=3 CMD false",
    "HEALTHCHECK NONE",
    "ONBUILD RUN echo other",
    "ONBUILD COPY a b",
];

/// The instructions the variants change, each at its first value.
const BASE: &[(&str, &str)] = &[
    ("ENV", "ENV A=1 B=2"),
    ("LABEL", "LABEL l=1"),
    ("USER", "USER 0"),
    ("WORKDIR", "WORKDIR /app"),
    ("EXPOSE", "EXPOSE 8080"),
    ("VOLUME", "VOLUME /data"),
    ("STOPSIGNAL", "STOPSIGNAL SIGTERM"),
    ("SHELL", "SHELL [\"/bin/sh\", \"-c\"]"),
    ("ENTRYPOINT", "ENTRYPOINT [\"/bin/sh\"]"),
    ("CMD", "CMD [\"echo\", \"hi\"]"),
    (
        "HEALTHCHECK",
        "HEALTHCHECK --interval=30s --timeout=5s --start-period=1s --retries=3 CMD true",
    ),
    ("ONBUILD", "ONBUILD RUN echo hi"),
];

/// A Dockerfile of one COPY then [`BASE`], with the instruction `variant` changes
/// replaced by it.
fn dockerfile(variant: Option<&str>) -> String {
    let mut text = String::from("FROM scratch\nCOPY rootfs/etc/passwd /etc/passwd\n");
    for (kind, line) in BASE {
        let line = match variant {
            Some(v) if v.split_whitespace().next() == Some(kind) => v,
            _ => line,
        };
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// The image ID a build of `text` makes, and its config.
fn build(ctx: &Ctx, text: &str) -> (String, serde_json::Value) {
    std::fs::write(ctx.dir.join("Dockerfile"), text).unwrap();
    let (args, out) = ctx.build(&["-t", "poison:1"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert!(out.status.success(), "{text}\n{}", describe(&args, &out));
    let inspect = ctx.rbuild(&["inspect", "poison:1"]);
    assert!(
        inspect.status.success(),
        "{}",
        describe(&["inspect"], &inspect)
    );
    let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let id = stderr
        .lines()
        .find_map(|l| l.strip_prefix("built "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no summary line in:\n{stderr}"))
        .to_string();
    (id, v)
}

#[test]
fn every_config_field_reaches_the_image() {
    let Some(ctx) = Ctx::new("config-fields", "") else {
        return;
    };
    let (base_id, base) = build(&ctx, &dockerfile(None));
    let mut seen = vec![base_id.clone()];
    for variant in VARIANTS {
        let (id, config) = build(&ctx, &dockerfile(Some(variant)));
        assert!(
            !seen.contains(&id),
            "{variant}: the image of another build ({id}):\n{config:#}"
        );
        assert_ne!(config, base, "{variant}: the same config");
        seen.push(id);
        // The original again: its own image, not the variant's (nor one cached from it).
        let (again, _) = build(&ctx, &dockerfile(None));
        assert_eq!(again, base_id, "after {variant}");
    }
    ctx.assert_host_untouched(&[]);
}
