//! The Dockerfile front end: parser directives, logical lines, heredocs, the syntax tree,
//! word expansion, typed instructions and lint rules. Pure: text in, values out; no I/O.
//! The grammar it implements is written down in `grammar/dockerfile.ebnf` and
//! `grammar/word-expansion.ebnf`.

pub mod ast;
pub(crate) mod directive;
pub(crate) mod flags;
pub mod heredoc;
pub mod instruction;
pub mod line_parser;
pub(crate) mod lint;
pub mod mount;
pub mod parser;
pub mod shell;
pub mod units;
