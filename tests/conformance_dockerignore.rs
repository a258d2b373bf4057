//! Conformance of `rbuild::context` with Docker's `.dockerignore` behaviour, using the vectors in
//! `../shared/conformance/dockerignore` (see its README, section dockerignore):
//! `cases.tsv` (matcher), `ignorefile.json` (reader) and `walk_cases.json` (filtered walks).
//! Every failure is collected and reported together with both sides.

use std::path::Path;

use rbuild::context::{
    EntryKind, Filter, FilterError, Matcher, PatternError, Walk, WalkError, read_ignore_file,
};
use serde_json::Value;

use crate::common::require;

fn load_json(dir: &Path, name: &str) -> Value {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().expect("string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn report(file: &str, total: usize, failures: &[String]) {
    println!(
        "dockerignore/{file}: {}/{total} passed",
        total - failures.len()
    );
    assert!(
        failures.is_empty(),
        "dockerignore/{file}: {} of {total} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Does `err` have the kind a cases.tsv `error` column names?
fn error_kind_is(err: &PatternError, kind: &str) -> bool {
    match kind {
        "bad_pattern" => matches!(
            err,
            PatternError::Syntax { .. } | PatternError::Unmatchable { .. }
        ),
        "illegal_exclusion" => matches!(err, PatternError::IllegalExclusion),
        _ => false,
    }
}

#[test]
fn matcher_cases_tsv() {
    let Some(dir) = require::shared("conformance/dockerignore") else {
        return;
    };
    let text = std::fs::read_to_string(dir.join("cases.tsv")).expect("read cases.tsv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let (id, api, pats, path, expected, error, platform) = (
        col("id"),
        col("api"),
        col("patterns"),
        col("path"),
        col("expected"),
        col("error"),
        col("platform"),
    );
    let mut failures = Vec::new();
    let mut total = 0;
    let mut per_api = std::collections::BTreeMap::<String, usize>::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        if f[platform] == "windows" {
            continue;
        }
        total += 1;
        *per_api.entry(f[api].to_string()).or_default() += 1;
        let patterns: Vec<String> = serde_json::from_str(f[pats]).expect("patterns JSON");
        let result = Matcher::new(&patterns).and_then(|m| match f[api] {
            "matches_or_parent" => m.matches(f[path]),
            "matches_legacy" => m.matches_legacy(f[path]),
            other => panic!("{}: unknown api {other}", f[id]),
        });
        let want_error = f[error];
        let ok = match (&result, want_error) {
            (Ok(got), "") => got.to_string() == f[expected],
            (Err(e), kind) if !kind.is_empty() => error_kind_is(e, kind),
            _ => false,
        };
        if !ok {
            let want = if want_error.is_empty() {
                f[expected]
            } else {
                want_error
            };
            failures.push(format!(
                "  {} {} patterns={} path={:?}: expected {want}, got {result:?}",
                f[id], f[api], f[pats], f[path]
            ));
        }
    }
    println!("dockerignore/cases.tsv rows per api: {per_api:?}");
    report("cases.tsv", total, &failures);
}

#[test]
fn ignorefile_json() {
    let Some(dir) = require::shared("conformance/dockerignore") else {
        return;
    };
    let doc = load_json(&dir, "ignorefile.json");
    let cases = doc["cases"].as_array().expect("cases");
    let mut failures = Vec::new();
    for case in cases {
        // `null` is "no file", which reads as no patterns, like an empty file.
        let input = case["input"].as_str().unwrap_or("");
        let want = strings(&case["expected"]);
        let got = read_ignore_file(input);
        if got != want {
            failures.push(format!(
                "  {} input={:?}: expected {want:?}, got {got:?}",
                case["id"], case["input"]
            ));
        }
    }
    report("ignorefile.json", cases.len(), &failures);
}

/// Create the case's tree under `root`; returns the paths whose mode was changed.
fn build_tree(root: &Path, tree: &Value) -> Vec<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let mut chmods = Vec::new();
    for item in tree.as_array().expect("tree") {
        let path = root.join(item["path"].as_str().expect("path"));
        match item["type"].as_str().expect("type") {
            "dir" => std::fs::create_dir_all(&path).expect("mkdir"),
            "file" => std::fs::write(&path, b"").expect("write"),
            "symlink" => {
                let target = item["target"].as_str().expect("target");
                std::os::unix::fs::symlink(target, &path).expect("symlink");
            }
            other => panic!("unknown tree type {other}"),
        }
        if let Some(mode) = item["mode"].as_str() {
            chmods.push((path, u32::from_str_radix(mode, 8).expect("octal mode")));
        }
    }
    // Modes last, so that an unreadable directory can still be filled first.
    for (path, mode) in chmods.iter().rev() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode)).expect("chmod");
    }
    chmods.into_iter().map(|(p, _)| p).collect()
}

fn render(kind: &EntryKind, path: &str) -> String {
    match kind {
        EntryKind::Dir => format!("dir {path}"),
        EntryKind::File => format!("file {path}"),
        EntryKind::Symlink { target } => format!("symlink:{} {path}", target.display()),
        EntryKind::Other => format!("other {path}"),
    }
}

fn filters_of(case: &Value) -> Result<Vec<Filter>, FilterError> {
    match case["filter_layers"].as_array() {
        Some(layers) => layers
            .iter()
            .map(|l| Filter::new(&strings(&l["include"]), &strings(&l["exclude"])))
            .collect(),
        None => Ok(vec![Filter::new(
            &strings(&case["include"]),
            &strings(&case["exclude"]),
        )?]),
    }
}

/// Run one walk case; `Err` describes the mismatch.
fn run_walk_case(case: &Value) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let chmodded = build_tree(tmp.path(), &case["tree"]);
    let outcome = (|| {
        let filters = match filters_of(case) {
            Ok(f) => f,
            // `expected_error: "creating the filter fails"`.
            Err(_) if case["expected_error"].is_string() => return Ok(()),
            Err(e) => return Err(format!("filter did not compile: {e}")),
        };
        if let Some(open) = case["open"].as_object() {
            for (path, want) in open {
                let got = filters[0].admits(path).map_err(|e| e.to_string())?;
                if Some(got) != want.as_bool() {
                    return Err(format!("open {path:?}: expected {want}, got {got}"));
                }
            }
        }
        let walk = Walk::new(tmp.path(), filters).map_err(|e| e.to_string())?;
        let got: Result<Vec<String>, WalkError> =
            walk.map(|e| e.map(|e| render(&e.kind, &e.path))).collect();
        match (got, case["expected_error"].as_str()) {
            (Ok(got), None) => {
                let want = strings(&case["expected_walk"]);
                if got == want {
                    Ok(())
                } else {
                    Err(format!("expected walk {want:?}, got {got:?}"))
                }
            }
            (Err(e), Some(want)) if want.contains("permission denied") => {
                if e.io_kind() == Some(std::io::ErrorKind::PermissionDenied) {
                    Ok(())
                } else {
                    Err(format!("expected {want}, got error {e}"))
                }
            }
            (Ok(got), Some(want)) => Err(format!("expected error {want:?}, got walk {got:?}")),
            (Err(e), want) => Err(format!("expected {want:?}, got error {e}")),
        }
    })();
    // Let the temporary directory be removed.
    for path in chmodded {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755));
    }
    outcome
}

#[test]
fn walk_cases_json() {
    let Some(dir) = require::shared("conformance/dockerignore") else {
        return;
    };
    let doc = load_json(&dir, "walk_cases.json");
    let cases = doc["cases"].as_array().expect("cases");
    let mut failures = Vec::new();
    let mut skipped = 0;
    for case in cases {
        let id = case["id"].as_str().expect("id");
        if case["requires"].is_string() && !require::unprivileged(&format!("case {id}")) {
            skipped += 1;
            continue;
        }
        if let Err(why) = run_walk_case(case) {
            failures.push(format!(
                "  {id} include={} exclude={} layers={}: {why}",
                case["include"], case["exclude"], case["filter_layers"]
            ));
        }
    }
    println!("dockerignore/walk_cases.json: {skipped} skipped");
    report("walk_cases.json", cases.len() - skipped, &failures);
}
