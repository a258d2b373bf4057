//! Go's character classes, as the expander reads names: Go's `unicode.IsLetter`
//! (category L) and `unicode.IsDigit` (category Nd), which differ from Rust's
//! `is_alphabetic` (adds Nl and Other_Alphabetic marks) and `is_numeric` (adds Nl and No).

use std::sync::LazyLock;

use regex::Regex;

static GO_LETTER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\p{L}$").expect("constant regex compiles"));
static GO_DIGIT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\p{Nd}$").expect("constant regex compiles"));

fn is_go_letter(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphabetic()
    } else {
        GO_LETTER.is_match(c.encode_utf8(&mut [0; 4]))
    }
}

pub(crate) fn is_go_digit(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_digit()
    } else {
        GO_DIGIT.is_match(c.encode_utf8(&mut [0; 4]))
    }
}

/// A character that may continue a name: Go's letter, digit or `_`.
pub(crate) fn is_name_char(c: char) -> bool {
    is_go_letter(c) || is_go_digit(c) || c == '_'
}
