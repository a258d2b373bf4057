//! Every `../shared/conformance/dockerignore/context_scenarios.json` scenario through a real
//! build: the scenario's context, its ignore file, a Dockerfile `FROM scratch` + `COPY . /`,
//! `rbuild build -o type=local` — then the files that reached the image are compared with
//! what Docker lets through. All failures are reported together.

use std::path::Path;

use serde_json::Value;

use crate::common;
use crate::common::require;

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn context_scenarios_through_a_real_build() {
    if !require::root("builds mount overlays") {
        return;
    }
    let Some(dir) = require::shared("conformance/dockerignore") else {
        return;
    };
    let text = std::fs::read_to_string(dir.join("context_scenarios.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let scenarios = doc["scenarios"].as_array().expect("scenarios");
    let work = common::temp_home("build-context");
    let root = work.join("state");
    let mut failures = Vec::new();
    for (n, sc) in scenarios.iter().enumerate() {
        let id = sc["id"].as_str().unwrap_or("?");
        let ctx = work.join(format!("ctx-{n}"));
        let out = work.join(format!("out-{n}"));
        let dockerfile = sc["dockerfile"].as_str().unwrap_or("Dockerfile");
        for f in strings(&sc["files"]) {
            let p = ctx.join(&f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, format!("{f}\n")).unwrap();
        }
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join(dockerfile), "FROM scratch\nCOPY . /\n").unwrap();
        let ignore_file = sc["ignore_file"].as_str().unwrap_or(".dockerignore");
        std::fs::write(
            ctx.join(ignore_file),
            sc["ignore_text"].as_str().unwrap_or(""),
        )
        .unwrap();
        let dest = format!("type=local,dest={}", out.display());
        let df = ctx.join(dockerfile).display().to_string();
        let args = [
            "build",
            "--progress=plain",
            "-f",
            df.as_str(),
            "-o",
            dest.as_str(),
            ".",
        ];
        let o = common::rbuild(&ctx, &root, &args);
        let want_error = !sc["expect_error"].is_null();
        if want_error {
            if o.status.success() {
                failures.push(format!("{id}: the build should have failed"));
            }
            continue;
        }
        if !o.status.success() {
            failures.push(format!("{id}: {}", common::describe(&args, &o)));
            continue;
        }
        for p in strings(&sc["expect_present"]) {
            if std::fs::symlink_metadata(out.join(&p)).is_err() {
                failures.push(format!("{id}: {p} should be in the image"));
            }
        }
        for p in strings(&sc["expect_absent"]) {
            if std::fs::symlink_metadata(out.join(&p)).is_ok() {
                failures.push(format!("{id}: {p} should not be in the image"));
            }
        }
        // Nothing the context did not hold appears (the build adds no files of its own).
        for entry in walk(&out) {
            if !ctx.join(&entry).exists() {
                failures.push(format!("{id}: {entry} is in the image but not the context"));
            }
        }
    }
    println!(
        "dockerignore/context_scenarios.json through builds: {}/{} scenarios without failures",
        scenarios.len()
            - failures
                .iter()
                .map(|f| f.split(':').next())
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
        scenarios.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let _ = std::fs::remove_dir_all(&work);
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(p);
            }
        }
    }
    out
}
