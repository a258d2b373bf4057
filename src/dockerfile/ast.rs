//! The Dockerfile syntax tree: one [`Node`] per instruction, with its flags, its arguments
//! split the way BuildKit's line parsers split them, heredoc bodies, and source spans.
//!
//! Arguments are still raw text here (quotes kept where BuildKit keeps them); typing and
//! word expansion happen later. `Node::dump` renders BuildKit's S-expression dump
//! (`(copy ["--from=a"] "x" "/y")`), which the conformance tests compare byte for byte.

use crate::diag::Span;

/// One argument (or flag) word and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arg {
    pub value: String,
    pub(crate) span: Span,
}

/// A heredoc attached to an instruction (`<<EOF`, `<<-EOF`, `<<'EOF'`, `3<<EOF`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    /// `3<<EOF` → 3; 0 when absent.
    pub fd: u32,
    /// False when any part of the delimiter is quoted: the body is then taken literally.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the body when it is used.
    pub chomp: bool,
    /// The body, line endings included, tabs not yet stripped.
    pub content: String,
}

/// One instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The keyword as written (`RUN`, `copy`).
    pub(crate) keyword: String,
    pub(crate) keyword_span: Span,
    /// Leading `--name[=value]` words, quotes removed.
    pub(crate) flags: Vec<Arg>,
    /// The arguments, split by the instruction's line parser.
    pub(crate) args: Vec<Arg>,
    /// The nested instruction of `ONBUILD`.
    pub(crate) child: Option<Box<Node>>,
    /// The arguments were a JSON array (exec form).
    pub(crate) json: bool,
    pub heredocs: Vec<Heredoc>,
    /// The logical line (continuations joined), as BuildKit's `Original`.
    pub original: String,
    /// Span of the arguments text (after flags) in the source.
    pub(crate) args_span: Span,
    /// 1-based first and last physical line, heredoc bodies included.
    pub start_line: usize,
    pub end_line: usize,
    /// The whole instruction in the source, heredoc bodies included.
    pub(crate) span: Span,
    /// Comment lines directly above the instruction (text after `#`, trimmed).
    pub(crate) prev_comment: Vec<String>,
}

impl Node {
    /// The keyword in lower case, for dispatch.
    pub(crate) fn command(&self) -> String {
        self.keyword.to_ascii_lowercase()
    }

    /// Argument values.
    pub(crate) fn values(&self) -> Vec<String> {
        self.args.iter().map(|a| a.value.clone()).collect()
    }

    /// BuildKit's `Node.Dump()`: `keyword ["--flags"] "arg" "arg"`, keyword in lower case,
    /// ONBUILD's child in parentheses.
    pub(crate) fn dump(&self) -> String {
        let mut s = self.keyword.to_lowercase();
        if !self.flags.is_empty() {
            let quoted: Vec<String> = self.flags.iter().map(|f| go_quote(&f.value)).collect();
            s.push_str(&format!(" [{}]", quoted.join(" ")));
        }
        for a in &self.args {
            s.push(' ');
            s.push_str(&go_quote(&a.value));
        }
        if let Some(child) = &self.child {
            s.push_str(&format!(" ({})", child.dump()));
        }
        s.trim().to_string()
    }
}

/// Dump a whole file: one `(node)` line per instruction, as BuildKit's root node dumps.
pub fn dump(nodes: &[Node]) -> String {
    let mut out = String::new();
    for n in nodes {
        out.push('(');
        out.push_str(&n.dump());
        out.push_str(")\n");
    }
    out
}

/// Go's `strconv.Quote`: double quotes, Go escapes, printable characters kept literally.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `unicode.IsPrint` without Unicode category tables: ASCII space
/// and graphic characters are printable; controls, non-ASCII spaces, line and paragraph
/// separators, format characters, private use and noncharacters are not.
fn is_go_printable(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(u,
        0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e
        | 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x206f
        | 0xd800..=0xf8ff | 0xfdd0..=0xfdef | 0xfeff | 0xfff9..=0xfffb
        | 0xfffe..=0xffff | 0xe0000..=0xe007f | 0xf0000..)
        && (u & 0xfffe) != 0xfffe
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! quotes {
        ($($name:ident: $input:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(go_quote($input), $want);
            }
        )*};
    }

    quotes! {
        plain: "abc" => "\"abc\"";
        escapes: "\" \\ / \x08 \x0c \n \r \t \0" => r#""\" \\ / \b \f \n \r \t \x00""#;
        bell_and_vtab: "\x07\x0b\x7f" => r#""\a\v\x7f""#;
        printable_unicode: "♥☃àöû" => "\"♥☃àöû\"";
        line_separator: "\u{2028}" => r#""\u2028""#;
        nbsp: "\u{a0}" => r#""\u00a0""#;
        astral_private: "\u{f0000}" => r#""\U000f0000""#;
        emoji_is_printable: "🦀" => "\"🦀\"";
    }
}
