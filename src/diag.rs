//! Source-located diagnostics, rendered the way rustc and uv render them.
//!
//! A [`Diagnostic`] owns everything it needs to print itself (message, file name, the
//! source lines, caret columns, hint), so it can travel through error types and be rendered
//! once at the CLI edge. It never reads files: callers hand it a [`Source`].
//!
//! ```text
//! error: unknown instruction: RUNN
//!  --> Dockerfile:3:1
//!   |
//! 3 | RUNN echo hi
//!   | ^^^^
//!   |
//!   = hint: did you mean RUN?
//! ```

use std::fmt;

use serde::Serialize;

/// A byte range in a source text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub(crate) struct Span {
    pub(crate) start: usize,
    pub(crate) end: usize,
}

impl Span {
    pub(crate) fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }
}

/// A named source text with a line index, used to turn byte offsets into lines and columns.
#[derive(Clone, Debug)]
pub struct Source {
    pub name: String,
    pub text: String,
    line_starts: Vec<usize>,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Source {
        let text = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source {
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// 1-based line and 1-based column (in characters) of a byte offset.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let col = self.text[start..floor_char_boundary(&self.text, offset)]
            .chars()
            .count();
        (line + 1, col + 1)
    }

    /// The text of a 1-based line, without its line ending.
    pub(crate) fn line(&self, line: usize) -> &str {
        let Some(&start) = self.line_starts.get(line.wrapping_sub(1)) else {
            return "";
        };
        let end = self
            .line_starts
            .get(line)
            .copied()
            .unwrap_or(self.text.len());
        self.text[start..end].trim_end_matches(['\n', '\r'])
    }

    pub(crate) fn line_count(&self) -> usize {
        self.line_starts.len()
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// An error located by a byte span in a source text, with an optional hint: what the parser,
/// the instruction typer and flag checking return, rendered once with [`Diagnostic`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SpannedError {
    pub message: String,
    pub(crate) span: Span,
    pub(crate) hint: Option<String>,
}

impl SpannedError {
    pub(crate) fn new(message: impl Into<String>, span: Span) -> SpannedError {
        SpannedError {
            message: message.into(),
            span,
            hint: None,
        }
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> SpannedError {
        self.hint = Some(hint.into());
        self
    }

    /// Render against the source it came from.
    pub(crate) fn diagnostic(&self, source: &Source) -> Diagnostic {
        let d = Diagnostic::error(&self.message).at(source, self.span);
        match &self.hint {
            Some(h) => d.with_hint(h),
            None => d,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// Where a diagnostic points: file, 1-based line/column, and the lines to show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Location {
    pub(crate) file: String,
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) end_line: usize,
    /// The source lines shown, with their numbers (the first one holds the caret).
    #[serde(skip)]
    pub(crate) snippet: Vec<(usize, String)>,
    /// Caret position on the first snippet line: 1-based column and width in characters.
    #[serde(skip)]
    pub(crate) caret: Option<(usize, usize)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub(crate) severity: Severity,
    /// The lint rule name, for rule diagnostics (`StageNameCasing`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rule: Option<Box<str>>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) location: Option<Box<Location>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) hint: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) notes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) url: Option<Box<str>>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Error, message)
    }

    pub(crate) fn warning(message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Warning, message)
    }

    fn new(severity: Severity, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity,
            rule: None,
            message: message.into(),
            location: None,
            hint: None,
            notes: Vec::new(),
            url: None,
        }
    }

    /// Point at a byte span of `source`; the caret covers the span's first line.
    /// Multi-line spans show up to three lines.
    pub(crate) fn at(mut self, source: &Source, span: Span) -> Diagnostic {
        let (line, column) = source.line_col(span.start);
        let (end_line, end_col) = source.line_col(span.end.max(span.start));
        let first = source.line(line);
        let width = if end_line == line {
            end_col.saturating_sub(column).max(1)
        } else {
            (first.chars().count() + 1).saturating_sub(column).max(1)
        };
        let last_shown = end_line.min(line + 2);
        let snippet = (line..=last_shown)
            .map(|n| (n, source.line(n).to_string()))
            .collect();
        self.location = Some(Box::new(Location {
            file: source.name.clone(),
            line,
            column,
            end_line,
            snippet,
            caret: Some((column, width)),
        }));
        self
    }

    /// Point at whole lines (1-based, inclusive) when no finer span is known.
    pub(crate) fn at_lines(mut self, source: &Source, line: usize, end_line: usize) -> Diagnostic {
        let line = line.clamp(1, source.line_count());
        let end_line = end_line.clamp(line, source.line_count());
        let snippet = (line..=end_line.min(line + 2))
            .map(|n| (n, source.line(n).to_string()))
            .collect();
        self.location = Some(Box::new(Location {
            file: source.name.clone(),
            line,
            column: 1,
            end_line,
            snippet,
            caret: None,
        }));
        self
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    pub(crate) fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    pub(crate) fn with_rule(mut self, rule: &str, url: Option<String>) -> Diagnostic {
        self.rule = Some(rule.into());
        self.url = url.map(String::into_boxed_str);
        self
    }

    /// Render as text; `color` adds ANSI styling.
    pub fn render(&self, color: bool) -> String {
        let paint = |code: &str, s: &str| {
            if color {
                format!("\x1b[{code}m{s}\x1b[0m")
            } else {
                s.to_string()
            }
        };
        let (sev_code, sev) = match self.severity {
            Severity::Error => ("1;31", "error"),
            Severity::Warning => ("1;33", "warning"),
        };
        let mut out = String::new();
        out.push_str(&paint(sev_code, sev));
        if let Some(rule) = &self.rule {
            out.push_str(&paint(sev_code, &format!("[{rule}]")));
        }
        out.push_str(&paint("1", &format!(": {}", self.message)));
        out.push('\n');
        if let Some(loc) = &self.location {
            let gutter_w = loc
                .snippet
                .last()
                .map(|(n, _)| n.to_string().len())
                .unwrap_or(1);
            let pad = " ".repeat(gutter_w);
            out.push_str(&format!(
                "{pad}{} {}:{}:{}\n",
                paint("1;34", "-->"),
                loc.file,
                loc.line,
                loc.column
            ));
            if !loc.snippet.is_empty() {
                out.push_str(&format!("{pad} {}\n", paint("1;34", "|")));
                for (i, (n, text)) in loc.snippet.iter().enumerate() {
                    let text = text.replace('\t', "    ");
                    out.push_str(&format!(
                        "{} {} {}\n",
                        paint("1;34", &format!("{n:>gutter_w$}")),
                        paint("1;34", "|"),
                        text
                    ));
                    if i == 0
                        && let Some((col, width)) = loc.caret
                    {
                        let raw = &loc.snippet[0].1;
                        // Tabs were widened to four columns above; widen the offset too.
                        let lead: usize = raw
                            .chars()
                            .take(col - 1)
                            .map(|c| if c == '\t' { 4 } else { 1 })
                            .sum();
                        out.push_str(&format!(
                            "{pad} {} {}{}\n",
                            paint("1;34", "|"),
                            " ".repeat(lead),
                            paint(sev_code, &"^".repeat(width))
                        ));
                    }
                }
                if loc.end_line > loc.snippet.last().map(|s| s.0).unwrap_or(0) {
                    out.push_str(&format!("{pad} {} ...\n", paint("1;34", "|")));
                }
            }
        }
        for note in &self.notes {
            out.push_str(&format!("  = note: {note}\n"));
        }
        if let Some(hint) = &self.hint {
            out.push_str(&format!("  = {}: {hint}\n", paint("1;36", "hint")));
        }
        if let Some(url) = &self.url {
            out.push_str(&format!("  = see: {url}\n"));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.render(false).trim_end())
    }
}

impl std::error::Error for Diagnostic {}

/// An error with its causes on one line, `message: cause: cause`, for the places that must
/// fold a chain into one string (a diagnostic's message, a progress event). Error messages
/// never print their own source, so nothing is said twice; the CLI renders a chain it
/// receives whole as `Caused by:` lines instead.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_chars_from_one() {
        let s = Source::new("Dockerfile", "FROM a\nRUN é x\n");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(7), (2, 1));
        // "x" is after "RUN é " (é is two bytes)
        assert_eq!(s.line_col(7 + 7), (2, 7));
        assert_eq!(s.line(2), "RUN é x");
        assert_eq!(s.line(3), "");
    }

    #[test]
    fn renders_rustc_style_with_caret_and_hint() {
        let s = Source::new("Dockerfile", "FROM alpine\nRUNN echo hi\n");
        let d = Diagnostic::error("unknown instruction: RUNN")
            .at(&s, Span::new(12, 16))
            .with_hint("did you mean RUN?");
        let text = d.render(false);
        assert_eq!(
            text,
            "error: unknown instruction: RUNN\n \
             --> Dockerfile:2:1\n  \
             |\n\
             2 | RUNN echo hi\n  \
             | ^^^^\n  \
             = hint: did you mean RUN?\n"
        );
    }

    #[test]
    fn caret_follows_tabs() {
        let s = Source::new("Dockerfile", "\tRUNN x\n");
        let text = Diagnostic::error("m").at(&s, Span::new(1, 5)).render(false);
        assert!(text.contains("1 |     RUNN x\n  |     ^^^^\n"), "{text}");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{message}")]
    struct Step {
        message: &'static str,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    }

    fn step(message: &'static str, source: Option<Step>) -> Step {
        Step {
            message,
            source: source.map(|s| Box::new(s) as _),
        }
    }

    macro_rules! chains {
        ($($name:ident: $err:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(chain(&$err), $want);
            }
        )*};
    }

    chains! {
        chain_of_one_is_the_message: step("pulling a", None) => "pulling a";
        chain_folds_each_cause_once_in_order:
            step("pulling a", Some(step("GET /v2/", Some(step("connection refused", None)))))
            => "pulling a: GET /v2/: connection refused";
        chain_reads_through_io_errors: std::io::Error::other(step(
            "reading the spec",
            Some(step("unexpected end of file", None)),
        )) => "reading the spec: unexpected end of file";
    }

    #[test]
    fn multi_line_span_shows_following_lines() {
        let s = Source::new("Dockerfile", "RUN a \\\n  b \\\n  c \\\n  d\n");
        let text = Diagnostic::error("m")
            .at(&s, Span::new(0, s.text.len() - 1))
            .render(false);
        assert!(text.contains("1 | RUN a \\\n"), "{text}");
        assert!(text.contains("3 |   c \\\n"), "{text}");
        assert!(text.contains("  | ...\n"), "{text}");
    }
}
