//! BuildKit's own word-expansion vectors (`../shared/conformance/buildkit-shell`), read in the
//! formats its README describes, run through `rbuild::dockerfile::shell`. Each test collects
//! every failing vector and reports them all in one assertion.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use rbuild::dockerfile::shell::{Env, Lexer};
use serde::Deserialize;

use crate::common::require;

fn read(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn report(file: &str, ran: usize, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{file}: {} of {ran} vectors failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!("{file}: {ran} vectors passed");
}

/// `platform | input | expected`, one word, escape `\`, a fixed environment.
#[test]
fn env_var_test() {
    let Some(dir) = require::shared("conformance/buildkit-shell") else {
        return;
    };
    let env: Vec<(String, String)> = [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let lexer = Lexer::new('\\');
    let (mut ran, mut windows_only, mut failures) = (0, 0, Vec::new());
    for (n, line) in read(&dir, "envVarTest").lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.trim().split('|').map(str::trim).collect();
        let [platform, input, expected] = fields[..] else {
            panic!("envVarTest:{}: not 3 fields: {line:?}", n + 1);
        };
        match platform {
            "W" => {
                windows_only += 1;
                continue;
            }
            "A" | "U" => {}
            other => panic!("envVarTest:{}: unknown platform {other:?}", n + 1),
        }
        ran += 1;
        let got = lexer.process_word(input, &env);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(word), want) => word == want,
            (Err(_), _) => false,
        };
        if !ok {
            failures.push(format!(
                "  line {}: {input:?}: expected {expected:?}, got {got:?}",
                n + 1
            ));
        }
    }
    assert_eq!((ran, windows_only), (228, 2), "envVarTest was misread");
    report("envVarTest", ran, &failures);
}

/// `ENV name=value` lines accumulate; `input | word,word,...` lines split into words.
#[test]
fn words_test() {
    let Some(dir) = require::shared("conformance/buildkit-shell") else {
        return;
    };
    let lexer = Lexer::new('\\');
    let mut env: Vec<(String, String)> = Vec::new();
    let (mut ran, mut failures) = (0, Vec::new());
    for (n, line) in read(&dir, "wordsTest").lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(entry) = line.strip_prefix("ENV ") {
            // Trailing spaces are part of the value.
            let entry = entry.trim_start_matches(' ');
            let (name, value) = entry.split_once('=').unwrap_or((entry, ""));
            env.push((name.to_owned(), value.to_owned()));
            continue;
        }
        let [input, expected] = line.split('|').collect::<Vec<_>>()[..] else {
            panic!("wordsTest:{}: not exactly one '|': {line:?}", n + 1);
        };
        let (input, expected) = (input.trim(), expected.trim_start_matches(' '));
        ran += 1;
        let got = lexer.process_words(input, &env);
        let ok = match &got {
            Err(_) => expected == "error",
            Ok(words) => *words == expected.split(',').collect::<Vec<_>>(),
        };
        if !ok {
            failures.push(format!(
                "  line {}: {input:?}: expected {expected:?}, got {got:?}",
                n + 1
            ));
        }
    }
    assert_eq!(ran, 24, "wordsTest was misread");
    report("wordsTest", ran, &failures);
}

#[derive(Deserialize)]
struct Cases {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    id: String,
    api: String,
    input: String,
    env: Option<BTreeMap<String, String>>,
    env_slice: Option<Vec<String>>,
    expected: Option<String>,
    error: bool,
    error_contains: Option<String>,
    matched: Option<Vec<String>>,
    unmatched: Option<Vec<String>>,
}

/// JSON cases for `process_word` and `process_word_with_matches`.
#[test]
fn process_word_cases() {
    let Some(dir) = require::shared("conformance/buildkit-shell") else {
        return;
    };
    let cases: Cases = serde_json::from_str(&read(&dir, "process_word_cases.json"))
        .expect("process_word_cases.json parses");
    let lexer = Lexer::new('\\');
    let mut failures = Vec::new();
    for case in &cases.cases {
        let slice: Vec<(String, String)>;
        let env: &dyn Env = match (&case.env, &case.env_slice) {
            (Some(map), None) => map,
            (None, Some(list)) => {
                // A bare `NAME` is set to empty; the last duplicate wins.
                slice = list
                    .iter()
                    .map(|e| {
                        let (k, v) = e.split_once('=').unwrap_or((e, ""));
                        (k.to_owned(), v.to_owned())
                    })
                    .collect();
                &slice
            }
            _ => panic!("{}: needs exactly one of env, env_slice", case.id),
        };
        let mut problems = String::new();
        let got = match case.api.as_str() {
            "process_word" => lexer.process_word(&case.input, env).map(|r| (r, None)),
            "process_word_with_matches" => lexer
                .process_word_with_matches(&case.input, env)
                .map(|e| (e.result, Some((e.matched, e.unmatched)))),
            other => panic!("{}: unknown api {other:?}", case.id),
        };
        match (&got, case.error) {
            (Err(e), true) => {
                if let Some(want) = &case.error_contains
                    && !e.to_string().contains(want.as_str())
                {
                    let _ = write!(problems, " error {:?} lacks {want:?};", e.to_string());
                }
            }
            (Ok((result, sets)), false) => {
                if Some(result) != case.expected.as_ref() {
                    let _ = write!(problems, " expected {:?}, got {result:?};", case.expected);
                }
                if let Some((matched, unmatched)) = sets {
                    let matched: Vec<_> = matched.iter().cloned().collect();
                    let unmatched: Vec<_> = unmatched.iter().cloned().collect();
                    if case.matched.as_ref().is_some_and(|m| *m != matched) {
                        let _ = write!(problems, " matched {matched:?}, want {:?};", case.matched);
                    }
                    if case.unmatched.as_ref().is_some_and(|u| *u != unmatched) {
                        let _ = write!(
                            problems,
                            " unmatched {unmatched:?}, want {:?};",
                            case.unmatched
                        );
                    }
                }
            }
            (Ok((result, _)), true) => {
                let _ = write!(problems, " expected an error, got {result:?};");
            }
            (Err(e), false) => {
                let _ = write!(problems, " expected {:?}, got error {e};", case.expected);
            }
        }
        if !problems.is_empty() {
            failures.push(format!("  {} {:?}:{problems}", case.id, case.input));
        }
    }
    assert_eq!(cases.cases.len(), 63, "process_word_cases.json was misread");
    report("process_word_cases.json", cases.cases.len(), &failures);
}
