//! `rbuild check` through the real binary: exit codes, rendered diagnostics (golden files in
//! `testdata/check/`), JSON output, and every BuildKit parser case and negative case.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::require;
use crate::common::{describe, rbuild};

fn workdir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn check(args: &[&str]) -> std::process::Output {
    let root = tempfile_root();
    rbuild(&workdir(), &root, args)
}

fn tempfile_root() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rbuild-test-root-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every `testdata/check/NAME.Dockerfile` has `NAME.stderr` (the exact rendering) and
/// `NAME.code` (the exit code). `RBUILD_BLESS=1` rewrites them from the current output.
#[test]
fn golden_diagnostics() {
    let dir = workdir().join("testdata/check");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".Dockerfile").map(str::to_string))
        .collect();
    names.sort();
    assert!(names.len() >= 9, "golden cases missing: {names:?}");
    let bless = std::env::var_os("RBUILD_BLESS").is_some();
    let mut failures = Vec::new();
    for name in &names {
        let file = format!("testdata/check/{name}.Dockerfile");
        let args = ["check", "-f", file.as_str()];
        let out = check(&args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let code = out.status.code().unwrap().to_string();
        let (want_err, want_code) = (
            dir.join(format!("{name}.stderr")),
            dir.join(format!("{name}.code")),
        );
        if bless {
            fs::write(&want_err, &stderr).unwrap();
            fs::write(&want_code, format!("{code}\n")).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&want_err).unwrap_or_default();
        let expected_code = fs::read_to_string(&want_code).unwrap_or_default();
        if stderr != expected || code != expected_code.trim() {
            failures.push(format!(
                "{name}: want exit {expected_code}{expected}\n{}",
                describe(&args, &out)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n=====\n"));
}

#[test]
fn json_format_reports_rules_and_exit_code() {
    let out = check(&[
        "check",
        "--format",
        "json",
        "-f",
        "testdata/check/lint-error.Dockerfile",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let rules: Vec<&str> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, vec!["StageNameCasing", "JSONArgsRecommended"]);
    assert_eq!(v["warnings"][0]["location"]["line"], 2);

    let out = check(&[
        "check",
        "--format",
        "json",
        "-f",
        "testdata/check/unknown-instruction.Dockerfile",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["message"], "unknown instruction: RUNN");
    assert_eq!(v["error"]["hint"], "did you mean RUN?");
}

#[test]
fn context_dockerfile_is_the_default() {
    let out = check(&["check", "testdata/flask-watchlist"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        describe(&["check", "testdata/flask-watchlist"], &out)
    );
}

#[test]
fn docker_habit_routes_to_build() {
    // `rbuild -t NAME DIR` builds: a FROM scratch context needs no registry. Before the
    // build runs, the Dockerfile is planned and linted like `rbuild check` does.
    let ctx = std::env::temp_dir().join(format!("rbuild-habit-{}", std::process::id()));
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), "FROM scratch\nENV A 1\n").unwrap();
    let dir = ctx.display().to_string();
    let args = ["-t", "habit:1", "--progress=plain", dir.as_str()];
    let out = check(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&args, &out));
    assert!(
        stderr.contains("LegacyKeyValueFormat")
            && stderr.contains("tagged docker.io/library/habit:1"),
        "{}",
        describe(&args, &out)
    );
    let _ = fs::remove_dir_all(&ctx);
}

#[test]
fn build_rejects_a_bad_tag_before_planning() {
    let args = ["-t", "BAD::TAG", "testdata/flask-watchlist"];
    let out = check(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A bad flag value is the command line's fault: exit 2, as clap's own errors.
    assert_eq!(out.status.code(), Some(2), "{}", describe(&args, &out));
    assert!(
        stderr.starts_with("error: -t BAD::TAG\n\nCaused by:\n  invalid image name \"BAD::TAG\"\n")
            && stderr.contains("must be lowercase")
            && !stderr.contains("valid ("),
        "{}",
        describe(&args, &out)
    );
}

fn case_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// BuildKit parser fixtures that parse (their dumps match: see conformance_parser.rs) but
/// are not buildable Dockerfiles, so `rbuild check` rejects them as `docker build --check`
/// does; see docs/check.md. Each must fail with exactly this first line and a location.
const UNBUILDABLE: &[(&str, &str)] = &[
    (
        "env",
        "error: failed to process \"'a\\\\'b'\": unexpected end of statement while looking for matching single-quote",
    ),
    (
        "escapes",
        "error: failed to process \"\\\\conf\\\\\\\\\\\"\": unexpected end of statement while looking for matching double-quote",
    ),
    ("flags", "error: unknown flag: --user"),
    (
        "health",
        "error: HEALTHCHECK requires at least one argument",
    ),
    (
        "jeztah-invalid-json-json-inside-string",
        "error: dockerfile contains no stages to build",
    ),
    (
        "jeztah-invalid-json-json-inside-string-double",
        "error: dockerfile contains no stages to build",
    ),
    (
        "jeztah-invalid-json-single-quotes",
        "error: dockerfile contains no stages to build",
    ),
    (
        "jeztah-invalid-json-unterminated-bracket",
        "error: dockerfile contains no stages to build",
    ),
    (
        "jeztah-invalid-json-unterminated-string",
        "error: dockerfile contains no stages to build",
    ),
    ("json", "error: dockerfile contains no stages to build"),
];

#[test]
fn every_buildkit_parser_case_has_its_pinned_outcome() {
    let Some(pos) = require::shared("conformance/buildkit-parser") else {
        return;
    };
    let mut failures = Vec::new();
    let mut ok = 0;
    for case in case_dirs(&pos) {
        let name = case.file_name().unwrap().to_str().unwrap().to_string();
        let f = case.join("Dockerfile");
        let args = ["check", "-f", f.to_str().unwrap()];
        let out = check(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        match UNBUILDABLE.iter().find(|(n, _)| *n == name) {
            None if out.status.code() == Some(0) => ok += 1,
            None => failures.push(describe(&args, &out)),
            Some((_, first)) => {
                let located = stderr.contains(&format!("--> {}:", f.display()));
                if out.status.code() != Some(2) || stderr.lines().next() != Some(*first) || !located
                {
                    failures.push(format!(
                        "want exit 2 and {first:?}\n{}",
                        describe(&args, &out)
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n=====\n"));
    assert_eq!(ok + UNBUILDABLE.len(), 33, "{ok} cases checked clean");
}

#[test]
fn every_negative_case_fails_with_exit_2_and_location() {
    let Some(neg) = require::shared("conformance/buildkit-parser-negative") else {
        return;
    };
    let mut failures = Vec::new();
    for case in case_dirs(&neg) {
        let f = case.join("Dockerfile");
        let args = ["check", "-f", f.to_str().unwrap()];
        let out = check(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let located = stderr.contains(&format!("--> {}:", f.display()));
        if out.status.code() != Some(2) || !located || !stderr.starts_with("error: ") {
            failures.push(describe(&args, &out));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n=====\n"));
}
