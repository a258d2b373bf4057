//! BuildKit's own parser and instruction vectors (`../shared/conformance`): every
//! `buildkit-parser` case must reproduce its `result` dump byte for byte, every negative case
//! must fail, and the extra heredoc, word, line-number and JSON vectors must all hold.

use std::fs;
use std::path::Path;

use rbuild::diag::Source;
use rbuild::dockerfile::ast::dump;
use rbuild::dockerfile::instruction::{self, Kind};
use rbuild::dockerfile::{heredoc, line_parser, parser};
use serde_json::Value;

use crate::common::require;

fn parse_file(path: &Path) -> Result<parser::Dockerfile, parser::ParseError> {
    let bytes = fs::read(path).unwrap();
    let text = String::from_utf8(bytes).expect("conformance Dockerfiles are UTF-8");
    parser::parse(&Source::new(path.display().to_string(), text))
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn report(name: &str, total: usize, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{name}: {} of {total} failed:\n{}",
        failures.len(),
        failures.join("\n---\n")
    );
    println!("{name}: {total} of {total} passed");
}

#[test]
fn buildkit_parser_dumps_match() {
    let Some(dir) = require::shared("conformance/buildkit-parser") else {
        return;
    };
    let mut cases: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert_eq!(cases.len(), 33, "expected 33 buildkit-parser cases");
    let mut failures = Vec::new();
    for case in &cases {
        let want = fs::read_to_string(case.join("result"))
            .unwrap()
            .replace("\r\n", "\n");
        match parse_file(&case.join("Dockerfile")) {
            Ok(df) => {
                let got = dump(&df.nodes);
                if got != want {
                    failures.push(format!(
                        "{}\n--- want\n{want}--- got\n{got}",
                        case.display()
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: parse error: {e}", case.display())),
        }
    }
    report("buildkit-parser", cases.len(), failures);
}

#[test]
fn buildkit_parser_negative_cases_fail() {
    let Some(dir) = require::shared("conformance/buildkit-parser-negative") else {
        return;
    };
    let mut cases: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert_eq!(cases.len(), 4);
    let mut failures = Vec::new();
    for case in &cases {
        if let Ok(df) = parse_file(&case.join("Dockerfile")) {
            failures.push(format!(
                "{}: parsed, dump:\n{}",
                case.display(),
                dump(&df.nodes)
            ));
        }
    }
    report("buildkit-parser-negative", cases.len(), failures);
}

fn heredoc_json(h: &rbuild::dockerfile::ast::Heredoc) -> Value {
    serde_json::json!({"name": h.name, "content": h.content, "expand": h.expand, "chomp": h.chomp, "fd": h.fd})
}

#[test]
fn heredoc_extraction_matches() {
    let Some(dir) = require::shared("conformance/buildkit-parser-extra") else {
        return;
    };
    let mut failures = Vec::new();
    let mut total = 0;
    for case in ["heredoc", "json-heredoc"] {
        let df = parse_file(&dir.join(case).join("Dockerfile")).unwrap();
        let want_dump = fs::read_to_string(dir.join(case).join("result")).unwrap();
        if dump(&df.nodes) != want_dump {
            failures.push(format!(
                "{case}: dump\n--- want\n{want_dump}--- got\n{}",
                dump(&df.nodes)
            ));
        }
        let expected = json(&dir.join(case).join("expected.json"));
        let instrs = expected["instructions"].as_array().unwrap();
        if instrs.len() != df.nodes.len() {
            failures.push(format!(
                "{case}: {} instructions, want {}",
                df.nodes.len(),
                instrs.len()
            ));
        }
        for (want, node) in instrs.iter().zip(&df.nodes) {
            total += 1;
            let got_docs: Vec<Value> = node.heredocs.iter().map(heredoc_json).collect();
            let mut problems = Vec::new();
            if want["original"] != node.original.as_str() {
                problems.push(format!("original {:?}", node.original));
            }
            if want["heredocs"] != Value::Array(got_docs.clone()) {
                problems.push(format!("heredocs {}", Value::Array(got_docs)));
            }
            if let Some(l) = want.get("start_line")
                && (l != node.start_line || want["end_line"] != node.end_line)
            {
                problems.push(format!("lines {}-{}", node.start_line, node.end_line));
            }
            if !problems.is_empty() {
                failures.push(format!(
                    "{case}[{}]: want {want}\n got {}",
                    want["index"],
                    problems.join("; ")
                ));
            }
        }
    }
    report("heredoc extraction", total, failures);
}

#[test]
fn heredoc_words_match() {
    let Some(dir) = require::shared("conformance/buildkit-parser-extra") else {
        return;
    };
    let v = json(&dir.join("heredoc-words.json"));
    let mut failures = Vec::new();
    let mut total = 0;
    for c in v["parse_heredoc_word"].as_array().unwrap() {
        total += 1;
        let word = c["word"].as_str().unwrap();
        let got = match heredoc::parse_word(word) {
            Err(_) => serde_json::json!({"result": "error"}),
            Ok(None) => serde_json::json!({"result": "none"}),
            Ok(Some(h)) => {
                serde_json::json!({"result": "heredoc", "name": h.name, "expand": h.expand, "chomp": h.chomp, "fd": h.fd})
            }
        };
        let want: serde_json::Map<String, Value> = c
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k != "word")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if Value::Object(want.clone()) != got {
            failures.push(format!(
                "parse_heredoc_word {word:?}: want {}, got {got}",
                Value::Object(want)
            ));
        }
    }
    for c in v["heredocs_from_line"].as_array().unwrap() {
        total += 1;
        let line = c["line"].as_str().unwrap();
        let names: Vec<String> = heredoc::from_line(line)
            .unwrap()
            .into_iter()
            .map(|h| h.name)
            .collect();
        if c["names"] != serde_json::json!(names) {
            failures.push(format!(
                "heredocs_from_line {line:?}: want {}, got {names:?}",
                c["names"]
            ));
        }
    }
    for c in v["chomp"].as_array().unwrap() {
        total += 1;
        let got = heredoc::chomp(c["input"].as_str().unwrap());
        if c["expected"] != got.as_str() {
            failures.push(format!("chomp {}: got {got:?}", c["input"]));
        }
    }
    report("heredoc words", total, failures);
}

#[test]
fn line_numbers_and_warnings_match() {
    let Some(dir) = require::shared("conformance/buildkit-parser-extra") else {
        return;
    };
    let df = parse_file(&dir.join("line-numbers/Dockerfile")).unwrap();
    let want = json(&dir.join("line-numbers/expected.json"));
    let got: Vec<[usize; 2]> = df
        .nodes
        .iter()
        .map(|n| [n.start_line, n.end_line])
        .collect();
    assert_eq!(serde_json::json!(got), want["children"], "line numbers");
    let root = [df.nodes[0].start_line, df.nodes.last().unwrap().end_line];
    assert_eq!(serde_json::json!(root), want["root"]);

    let case = dir.join("empty-continuation-warnings");
    let df = parse_file(&case.join("Dockerfile")).unwrap();
    let want = json(&case.join("expected.json"));
    assert_eq!(
        df.warnings.len() as u64,
        want["warning_count"].as_u64().unwrap()
    );
    for (w, frags) in df
        .warnings
        .iter()
        .zip(want["warnings_contain"].as_array().unwrap())
    {
        for f in frags.as_array().unwrap() {
            assert!(
                w.message.contains(f.as_str().unwrap()),
                "{} lacks {f}",
                w.message
            );
        }
    }
    assert_eq!(
        dump(&df.nodes),
        fs::read_to_string(case.join("result")).unwrap()
    );
}

#[test]
fn words_and_json_arrays_match() {
    let Some(dir) = require::shared("conformance/buildkit-parser-extra") else {
        return;
    };
    let words = json(&dir.join("parse-words.json"));
    for c in words["cases"].as_array().unwrap() {
        let got: Vec<String> = line_parser::parse_words(c["input"].as_str().unwrap(), '\\')
            .into_iter()
            .map(|w| w.value)
            .collect();
        assert_eq!(
            serde_json::json!(got),
            c["words"],
            "parse_words {}",
            c["input"]
        );
    }
    let arrays = json(&dir.join("json-arrays.json"));
    for c in arrays["valid"].as_array().unwrap() {
        let got = line_parser::parse_json(c["input"].as_str().unwrap()).unwrap();
        assert_eq!(serde_json::json!(got), c["elements"], "json {}", c["input"]);
    }
    for c in arrays["invalid_non_string"].as_array().unwrap() {
        assert!(
            line_parser::parse_json(c.as_str().unwrap()).is_err(),
            "json {c} must be rejected"
        );
    }
}

#[test]
fn buildkit_instruction_cases_match() {
    let Some(dir) = require::shared("conformance/buildkit-instructions") else {
        return;
    };
    let v = json(&dir.join("cases.json"));
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 40);
    let mut failures = Vec::new();
    for c in cases {
        let id = c["id"].as_str().unwrap();
        let text = c["dockerfile"].as_str().unwrap();
        let typed = parser::parse(&Source::new("Dockerfile", text))
            .map_err(|e| e.message)
            .and_then(|df| instruction::parse(&df.nodes[0]).map_err(|e| e.message));
        match (c["expect"].as_str().unwrap(), typed) {
            ("error", Ok(_)) => failures.push(format!("{id}: {text:?} parsed, want error")),
            ("error", Err(msg)) => {
                let want = c["error_contains"].as_str().unwrap();
                if !msg.contains(want) {
                    failures.push(format!("{id}: error {msg:?} lacks {want:?}"));
                }
            }
            (_, Err(msg)) => failures.push(format!("{id}: {text:?} failed: {msg}")),
            (_, Ok(i)) => {
                if let Some(want) = c.get("result").filter(|r| !r.is_null())
                    && let Err(e) = check_result(&i.kind, &i.flags.used(), want)
                {
                    failures.push(format!("{id}: {e}"));
                }
            }
        }
    }
    report("buildkit-instructions", cases.len(), failures);
}

fn check_result(kind: &Kind, flags: &[&str], want: &Value) -> Result<(), String> {
    let got = match (kind, want["kind"].as_str().unwrap()) {
        (Kind::Copy(c), "copy") => {
            let sources: Vec<&str> = c.paths.sources.iter().map(|a| a.value.as_str()).collect();
            let contents: Vec<Value> = c
                .paths
                .inline
                .iter()
                .map(|s| serde_json::json!({"path": s.path, "data": s.data, "expand": s.expand}))
                .collect();
            serde_json::json!({
                "kind": "copy",
                "dest": c.paths.dest.value,
                "source_paths": if sources.is_empty() { Value::Null } else { serde_json::json!(sources) },
                "source_contents": contents,
            })
        }
        (Kind::Run(r), "run") => {
            let files: Vec<Value> = r
                .cmd
                .files
                .iter()
                .map(|h| serde_json::json!({"name": h.name, "data": h.content, "chomp": h.chomp}))
                .collect();
            serde_json::json!({
                "kind": "run",
                "prepend_shell": r.cmd.prepend_shell,
                "cmdline": r.cmd.args,
                "files": files,
                "flags_used": flags,
            })
        }
        (Kind::Healthcheck(h), "healthcheck") => {
            serde_json::json!({"kind": "healthcheck", "test": h.test})
        }
        (k, w) => return Err(format!("kind {w} wanted, got {k:?}")),
    };
    // Compare only the fields the vector states.
    for (k, v) in want.as_object().unwrap() {
        if got.get(k) != Some(v) {
            return Err(format!(
                "{k}: want {v}, got {}",
                got.get(k).unwrap_or(&Value::Null)
            ));
        }
    }
    Ok(())
}
