//! The Dockerfile front end on any text: parser, typing of every instruction, planning.
//!
//! Invariants:
//! - the parser loses no line: every physical line that is neither blank nor a comment lies
//!   within some instruction's lines (`start_line..=end_line`, heredoc bodies included), and
//!   instructions come in source order without overlapping;
//! - re-rendering the instructions (the lines before the first one, which hold the parser
//!   directives, then each instruction's logical line and heredoc bodies) parses to the same
//!   tree (BuildKit's dump) and the same heredocs (which also shows parsing deterministic);
//! - planning fails when parsing or typing fails, with the parser's message; its diagnostics,
//!   and a plan's lint findings, render.

use rbuild::diag::Source;
use rbuild::dockerfile::{ast, instruction, parser};
use rbuild::plan;

pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    let source = Source::new("Dockerfile", text.clone());
    let planned = plan::plan(&source, &plan::Options::default());
    let df = match parser::parse(&source) {
        Ok(df) => df,
        Err(e) => {
            let d = planned.expect_err("plan accepted what the parser refused");
            assert_eq!(
                d.message, e.message,
                "plan reports another error than the parser"
            );
            assert!(!d.render(false).is_empty());
            return;
        }
    };

    lines_are_covered(&text, &df.nodes);
    round_trips(&text, &df.nodes);

    let typed: Vec<_> = df.nodes.iter().map(instruction::parse).collect();
    match planned {
        Ok(p) => {
            assert!(
                typed.iter().all(Result::is_ok),
                "plan accepted an instruction typing refused"
            );
            for lint in &p.lints {
                assert!(!lint.render(false).is_empty());
            }
        }
        Err(d) => {
            assert!(!d.render(false).is_empty());
        }
    }
}

/// A physical line's text without its line ending, as the parser reads it.
fn body(raw: &str) -> &str {
    raw.trim_end_matches(['\r', '\n'])
}

/// The source's physical lines (split after `\n`), the first without a byte-order mark.
fn physical_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    if let Some(first) = lines.first_mut() {
        *first = first.strip_prefix('\u{feff}').unwrap_or(first);
    }
    lines
}

fn lines_are_covered(text: &str, nodes: &[ast::Node]) {
    let lines = physical_lines(text);
    let mut previous_end = 0;
    for n in nodes {
        assert!(
            n.start_line > previous_end && n.start_line <= n.end_line && n.end_line <= lines.len(),
            "instruction lines {}..={} out of order or out of the file ({} lines, previous ended at {})",
            n.start_line,
            n.end_line,
            lines.len(),
            previous_end
        );
        previous_end = n.end_line;
    }
    for (i, raw) in lines.iter().enumerate() {
        let no = i + 1;
        let token = body(raw).trim_start();
        if token.is_empty() || token.starts_with('#') {
            continue;
        }
        assert!(
            nodes
                .iter()
                .any(|n| (n.start_line..=n.end_line).contains(&no)),
            "line {no} ({token:?}) belongs to no instruction"
        );
    }
}

fn round_trips(text: &str, nodes: &[ast::Node]) {
    // A logical line that ends in an escape character (the file ended in a continuation,
    // `RUN a \` + EOF, leaving `a \ ` with a blank) would continue when written alone, and a
    // logical line of blanks (continuations of nothing) would vanish: neither is a line the
    // parser lost, so such files are not re-rendered.
    if nodes.iter().any(|n| {
        let t = n.original.trim_end_matches([' ', '\t']);
        t.ends_with(['\\', '`']) || n.original.trim().is_empty()
    }) {
        return;
    }
    let lines = physical_lines(text);
    let mut rendered: String = lines[..nodes[0].start_line - 1].concat();
    if !rendered.is_empty() && !rendered.ends_with('\n') {
        rendered.push('\n');
    }
    // The parser drops one byte-order mark at the start of the file: a file that starts
    // with one more (`\u{feff}\u{feff}FROM`, where the instruction's keyword keeps it) is
    // written with it too.
    if rendered.is_empty() && nodes[0].original.starts_with('\u{feff}') {
        rendered.push('\u{feff}');
    }
    for n in nodes {
        rendered.push_str(&n.original);
        rendered.push('\n');
        for h in &n.heredocs {
            rendered.push_str(&h.content);
            rendered.push_str(&h.name);
            rendered.push('\n');
        }
    }
    if rendered.lines().any(|l| l.len() > 65535) {
        return;
    }
    let again = parser::parse(&Source::new("Dockerfile", rendered.clone()))
        .unwrap_or_else(|e| panic!("re-rendered file does not parse: {}\n{rendered}", e.message));
    assert_eq!(
        ast::dump(nodes),
        ast::dump(&again.nodes),
        "re-rendered file parses differently:\n{rendered}"
    );
    let docs = |ns: &[ast::Node]| ns.iter().map(|n| n.heredocs.clone()).collect::<Vec<_>>();
    assert_eq!(
        docs(nodes),
        docs(&again.nodes),
        "heredocs differ after re-rendering:\n{rendered}"
    );
}
