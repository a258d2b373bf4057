//! The Dockerfile front end: parser directives, logical lines, heredocs, the syntax tree,
//! word expansion, typed instructions and lint rules. Pure: text in, values out; no I/O.
//! The grammar it implements is written down in `grammar/dockerfile.ebnf` and
//! `grammar/word-expansion.ebnf`.

pub mod shell;
