//! The Dockerfile parser: text → [`Dockerfile`] (directives, one [`Node`] per instruction,
//! warnings). It follows BuildKit's `parser.Parse` line for line in behaviour (byte-for-byte
//! identical dumps on BuildKit's own test files) and adds what BuildKit lacks: exact spans on
//! every word, so errors can put a caret under the offending text.
//!
//! Grammar: grammar/dockerfile.ebnf. Pure: no I/O.

use std::ops::Range;

use super::ast::{Arg, Heredoc, Node};
use super::directive::{Directive, DirectiveParser};
use super::heredoc;
use super::line_parser::{self, LineError, Word};
use crate::diag::{Source, Span, SpannedError, chain};

/// Why parsing failed, with where.
pub type ParseError = SpannedError;

/// BuildKit reads lines with Go's `bufio.Scanner`, whose token limit is 64 KiB.
pub(crate) const MAX_LINE: usize = 65535;

/// A parsed Dockerfile.
#[derive(Clone, Debug)]
pub struct Dockerfile {
    pub(crate) directives: Vec<Directive>,
    pub(crate) escape: char,
    pub nodes: Vec<Node>,
    pub warnings: Vec<ParseWarning>,
}

impl Dockerfile {
    pub(crate) fn directive(&self, name: &str) -> Option<&Directive> {
        self.directives.iter().find(|d| d.name == name)
    }
}

/// A parse-time warning (an empty continuation line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseWarning {
    pub message: String,
    pub(crate) line: usize,
    pub(crate) span: Span,
}

/// One physical line: its text (line ending included) and where it starts.
#[derive(Clone, Copy)]
struct PhysLine<'a> {
    raw: &'a str,
    start: usize,
    no: usize,
}

impl<'a> PhysLine<'a> {
    /// Text without trailing `\r`/`\n` (BuildKit `trimNewline`).
    fn body(&self) -> &'a str {
        self.raw.trim_end_matches(['\r', '\n'])
    }

    fn body_span(&self) -> Span {
        Span::new(self.start, self.start + self.body().len())
    }
}

struct Lines<'a> {
    text: &'a str,
    pos: usize,
    no: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = PhysLine<'a>;

    fn next(&mut self) -> Option<PhysLine<'a>> {
        if self.pos >= self.text.len() {
            return None;
        }
        let rest = &self.text[self.pos..];
        let len = rest.find('\n').map(|i| i + 1).unwrap_or(rest.len());
        let line = PhysLine {
            raw: &rest[..len],
            start: self.pos,
            no: self.no + 1,
        };
        self.pos += len;
        self.no += 1;
        Some(line)
    }
}

/// Maps byte offsets of a logical (joined) line back to the source.
#[derive(Default)]
struct LineMap {
    /// (offset in the logical line, offset in the source) at the start of each piece.
    pieces: Vec<(usize, usize)>,
}

impl LineMap {
    fn src(&self, off: usize, is_end: bool) -> usize {
        let idx = self
            .pieces
            .iter()
            .rposition(|&(j, _)| if is_end && off > 0 { j < off } else { j <= off })
            .unwrap_or(0);
        let (j, s) = self.pieces[idx];
        s + (off - j)
    }

    fn span(&self, r: Range<usize>, base: usize) -> Span {
        Span::new(
            self.src(r.start + base, false),
            self.src(r.end + base, true),
        )
    }
}

fn is_comment(raw: &str) -> bool {
    raw.trim_start().starts_with('#')
}

/// The escape character at the end of a line continues it, unless it is itself escaped
/// (BuildKit `lineContinuationRegex`: `([^\\])\\[ \t]*$|^\\[ \t]*$`).
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    let Some(before) = t.strip_suffix(escape) else {
        return (line, true);
    };
    if before.ends_with(escape) {
        return (line, true);
    }
    (before, false)
}

/// Parse a Dockerfile.
pub fn parse(source: &Source) -> Result<Dockerfile, ParseError> {
    let text = source.text.as_str();
    let mut lines = Lines {
        text,
        pos: 0,
        no: 0,
    }
    .peekable();
    let mut directives = DirectiveParser::default();
    let mut escape = '\\';
    let mut nodes: Vec<Node> = Vec::new();
    let mut warnings = Vec::new();
    let mut comments: Vec<String> = Vec::new();

    for phys in (Lines {
        text,
        pos: 0,
        no: 0,
    }) {
        if phys.body().len() > MAX_LINE {
            return Err(ParseError::new(
                format!("dockerfile line greater than max allowed size of {MAX_LINE}"),
                Span::new(phys.start, phys.start + 1),
            ));
        }
    }

    while let Some(phys) = lines.next() {
        let mut first = phys;
        if first.no == 1
            && let Some(stripped) = first.raw.strip_prefix('\u{feff}')
        {
            first.raw = stripped;
            first.start += '\u{feff}'.len_utf8();
        }
        if is_comment(first.raw) {
            comments.push(first.raw.trim_start()[1..].trim().to_string());
        }
        let body = first.body();
        let token = body.trim_start();
        let token_at = first.start + (body.len() - token.len());
        let directive = directives
            .offer(token, first.no, Span::new(token_at, token_at + token.len()))
            .map_err(|e| ParseError::new(chain(&e), first.body_span()))?;
        if let Some(d) = directive
            && d.name == "escape"
        {
            escape = d.value.chars().next().unwrap_or('\\');
        }
        let token = if token.starts_with('#') { "" } else { token };
        let (piece, mut at_end) = trim_continuation(token, escape);
        if at_end && piece.is_empty() {
            continue;
        }

        let mut joined = String::from(piece);
        let mut map = LineMap {
            pieces: vec![(0, token_at)],
        };
        let mut last = first;
        let mut empty_continuation = false;
        while !at_end {
            let Some(next) = lines.next() else { break };
            last = next;
            let body = next.body();
            directives
                .offer(body, next.no, next.body_span())
                .map_err(|e| ParseError::new(chain(&e), next.body_span()))?;
            if is_comment(next.raw) {
                continue;
            }
            if body.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (piece, end) = trim_continuation(body, escape);
            at_end = end;
            map.pieces.push((joined.len(), next.start));
            joined.push_str(piece);
        }

        let node_start = token_at;
        if empty_continuation {
            warnings.push(ParseWarning {
                message: format!("Empty continuation line found in: {joined}"),
                line: last.no,
                span: Span::new(node_start, last.start + last.body().len()),
            });
        }

        let mut node = node_from_line(&joined, escape, &map, 0)?;

        // Most lines hold no `<<`; only those need the word lexer (BuildKit does the same).
        if joined.contains("<<") && can_contain_heredoc(&node) {
            let docs = heredoc::from_line(&joined).map_err(|e| {
                ParseError::new(
                    format!("invalid heredoc: {}", chain(&e)),
                    Span::new(node_start, first.start + first.body().len()),
                )
            })?;
            for mut doc in docs {
                let mut terminated = false;
                for body_line in lines.by_ref() {
                    last = body_line;
                    let mut candidate = body_line.body();
                    if doc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == doc.name {
                        terminated = true;
                        break;
                    }
                    doc.content.push_str(body_line.raw);
                }
                if !terminated {
                    return Err(unterminated(&doc, &joined, &map, node_start, last));
                }
                node.heredocs.push(doc);
            }
        }

        node.start_line = first.no;
        node.end_line = last.no;
        node.span = Span::new(node_start, last.start + last.body().len());
        node.prev_comment = std::mem::take(&mut comments);
        nodes.push(node);
    }

    if nodes.is_empty() {
        let end = text.len();
        return Err(ParseError::new(
            "file with no instructions",
            Span::new(end.saturating_sub(1), end),
        )
        .with_hint("a Dockerfile needs at least a FROM instruction"));
    }

    Ok(Dockerfile {
        directives: directives.found,
        escape,
        nodes,
        warnings,
    })
}

fn unterminated(
    doc: &Heredoc,
    joined: &str,
    map: &LineMap,
    start: usize,
    last: PhysLine,
) -> ParseError {
    let marker = format!("<<{}", if doc.chomp { "-" } else { "" });
    let span = joined
        .find(&format!("{marker}{}", doc.name))
        .or_else(|| joined.find(&marker))
        .map(|i| map.span(i..i + marker.len() + doc.name.len(), 0))
        .unwrap_or(Span::new(start, last.start + last.body().len()));
    ParseError::new("unterminated heredoc", span).with_hint(format!(
        "end the heredoc with a line that holds only `{}`",
        doc.name
    ))
}

/// Heredocs are read for RUN, COPY and ADD in shell form, also inside ONBUILD.
fn can_contain_heredoc(node: &Node) -> bool {
    let n = match (&node.child, node.command().as_str()) {
        (Some(child), "onbuild") => child.as_ref(),
        _ => node,
    };
    matches!(n.command().as_str(), "run" | "copy" | "add") && !n.json
}

/// Split a logical line (or ONBUILD's nested part of one, at offset `base`) into a node.
fn node_from_line(
    line: &str,
    escape: char,
    map: &LineMap,
    base: usize,
) -> Result<Node, ParseError> {
    let cmd = line_parser::split_command(line);
    let span_of = |r: Range<usize>| map.span(r, base);
    let args_at = cmd.args_at;
    let args_span = span_of(args_at..args_at + cmd.args.len());
    let line_err = |e: LineError| match e {
        LineError::MissingEquals(_, ref r) => {
            let span = span_of(r.start + args_at..r.end + args_at);
            ParseError::new(chain(&e), span)
                .with_hint("use `name=value` pairs, quoting values that hold spaces")
        }
        LineError::MissingValue(_) => ParseError::new(chain(&e), args_span).with_hint(format!(
            "give a value: `{} NAME=value`",
            cmd.keyword.value.to_uppercase()
        )),
        LineError::NotStringArray => ParseError::new(chain(&e), args_span)
            .with_hint("write every element of the array as a \"string\""),
    };

    let lower = cmd.keyword.value.to_ascii_lowercase();
    let mut child = None;
    let (words, json): (Vec<Word>, bool) = match lower.as_str() {
        "add" | "copy" | "volume" => {
            line_parser::parse_maybe_json_to_list(cmd.args).map_err(line_err)?
        }
        "arg" => (line_parser::parse_words(cmd.args, escape), false),
        "cmd" | "entrypoint" | "run" | "shell" => {
            line_parser::parse_maybe_json(cmd.args).map_err(line_err)?
        }
        "env" | "label" => {
            let kw = if lower == "env" { "ENV" } else { "LABEL" };
            (
                line_parser::parse_name_val(cmd.args, kw, escape).map_err(line_err)?,
                false,
            )
        }
        "expose" | "from" => (line_parser::split_blanks(cmd.args), false),
        "healthcheck" => line_parser::parse_health(cmd.args).map_err(line_err)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => {
            let w = if cmd.args.is_empty() {
                Vec::new()
            } else {
                vec![Word {
                    value: cmd.args.to_string(),
                    range: 0..cmd.args.len(),
                }]
            };
            (w, false)
        }
        "onbuild" => {
            if !cmd.args.is_empty() {
                child = Some(Box::new(node_from_line(
                    cmd.args,
                    escape,
                    map,
                    base + args_at,
                )?));
            }
            (Vec::new(), false)
        }
        // Unknown instructions parse (BuildKit keeps them as one empty argument) and are
        // rejected when typed, with a suggestion.
        _ => (
            vec![Word {
                value: String::new(),
                range: 0..cmd.args.len(),
            }],
            false,
        ),
    };

    let args = words
        .into_iter()
        .map(|w| Arg {
            value: w.value,
            span: span_of(w.range.start + args_at..w.range.end + args_at),
        })
        .collect();
    let flags = cmd
        .flags
        .into_iter()
        .map(|w| Arg {
            value: w.value,
            span: span_of(w.range),
        })
        .collect();
    Ok(Node {
        keyword_span: span_of(cmd.keyword.range.clone()),
        keyword: cmd.keyword.value,
        flags,
        args,
        child,
        json,
        heredocs: Vec::new(),
        original: line.to_string(),
        args_span,
        start_line: 0,
        end_line: 0,
        span: span_of(0..line.len()),
        prev_comment: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::ast::dump;
    use super::*;

    fn parse_str(text: &str) -> Dockerfile {
        parse(&Source::new("Dockerfile", text)).unwrap()
    }

    fn dumped(text: &str) -> String {
        dump(&parse_str(text).nodes)
    }

    macro_rules! dumps {
        ($($name:ident: $text:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(dumped($text), $want);
            }
        )*};
    }

    dumps! {
        from_as: "FROM a AS b\n" => "(from \"a\" \"AS\" \"b\")\n";
        keyword_lowercased: "run echo\n" => "(run \"echo\")\n";
        continuation_keeps_indent: "RUN a \\\n  b\n" => "(run \"a   b\")\n";
        continuation_whitespace_after_escape: "RUN a \\  \nb\n" => "(run \"a b\")\n";
        escaped_escape_does_not_continue: "RUN a \\\\\nRUN b\n" => "(run \"a \\\\\\\\\")\n(run \"b\")\n";
        comment_inside_continuation: "RUN a \\\n# c\n b\n" => "(run \"a  b\")\n";
        continuation_at_eof: "RUN a \\" => "(run \"a\")\n";
        bom_stripped: "\u{feff}FROM x\n" => "(from \"x\")\n";
        crlf: "FROM x\r\nRUN y\r\n" => "(from \"x\")\n(run \"y\")\n";
        backtick_escape: "# escape=`\nRUN a `\n b\n" => "(run \"a  b\")\n";
        unknown_instruction: "FOO bar\n" => "(foo \"\")\n";
        onbuild_nested_flags: "ONBUILD COPY --chown=1:1 a b\n" => "(onbuild (copy [\"--chown=1:1\"] \"a\" \"b\"))\n";
        heredoc_body_not_in_dump: "RUN <<EOF\necho hi\nEOF\nRUN x\n" => "(run \"<<EOF\")\n(run \"x\")\n";
        json_run_has_no_heredoc: "RUN [\"<<EOF\"]\nRUN x\n" => "(run \"<<EOF\")\n(run \"x\")\n";
    }

    #[test]
    fn heredocs_are_read_in_order() {
        let df = parse_str("COPY <<A <<-B /d\na1\nA\n\tb1\n\tB\nRUN x\n");
        let n = &df.nodes[0];
        assert_eq!(n.heredocs.len(), 2);
        assert_eq!(n.heredocs[0].content, "a1\n");
        assert_eq!(n.heredocs[1].content, "\tb1\n");
        assert_eq!((n.start_line, n.end_line), (1, 5));
        assert_eq!(df.nodes[1].start_line, 6);
    }

    #[test]
    fn unterminated_heredoc_points_at_opener() {
        let src = Source::new("Dockerfile", "FROM a\nRUN cat <<EOF\nhello\n");
        let err = parse(&src).unwrap_err();
        assert_eq!(err.message, "unterminated heredoc");
        assert_eq!(&src.text[err.span.start..err.span.end], "<<EOF");
    }

    #[test]
    fn spans_survive_continuations() {
        let src = Source::new("Dockerfile", "COPY --from=x \\\n    a   b\n");
        let df = parse(&src).unwrap();
        let n = &df.nodes[0];
        let text = |s: Span| &src.text[s.start..s.end];
        assert_eq!(text(n.keyword_span), "COPY");
        assert_eq!(text(n.flags[0].span), "--from=x");
        assert_eq!(text(n.args[0].span), "a");
        assert_eq!(text(n.args[1].span), "b");
    }

    #[test]
    fn empty_continuation_warns() {
        let df = parse_str("RUN a \\\n\n b\n");
        assert_eq!(df.warnings.len(), 1);
        assert_eq!(
            df.warnings[0].message,
            "Empty continuation line found in: RUN a  b"
        );
    }

    #[test]
    fn negative_cases() {
        for (text, msg) in [
            ("", "file with no instructions"),
            ("# only\n\n", "file with no instructions"),
            ("ENV PATH\n", "ENV must have two arguments"),
            (
                "CMD [ \"echo\", [ \"nested\" ] ]\n",
                "arrays must be comprised of strings only",
            ),
            (
                "# escape=`\n# escape=\\\nFROM x\n",
                "only one escape parser directive can be used",
            ),
            ("LABEL a=b c\n", "can't find = in \"c\""),
        ] {
            let err = parse(&Source::new("Dockerfile", text)).unwrap_err();
            assert!(err.message.contains(msg), "{text:?}: {}", err.message);
        }
    }

    #[test]
    fn overlong_line_is_rejected() {
        let text = format!("RUN {}\n", "a".repeat(MAX_LINE));
        let err = parse(&Source::new("Dockerfile", text)).unwrap_err();
        assert!(err.message.contains("65535"));
    }
}
