//! Word expansion (`dockerfile::shell`) on any word, with either escape character.
//!
//! Input: one byte choosing the escape character (`\` when even, `` ` `` when odd), then the
//! word.
//!
//! Invariants:
//! - `process_word` and `process_word_with_matches` agree;
//! - a variable is reported matched only when the environment sets it, unmatched only when
//!   it does not, never both;
//! - text without `$`, quotes or the escape character expands to itself, and splits into its
//!   whitespace-separated words;
//! - without quotes or escapes, and with no whitespace in any value, `process_words` gives
//!   the words of what `process_word` gives (splitting happens after expansion, on the same
//!   characters).

use std::collections::BTreeMap;

use rbuild::dockerfile::shell::Lexer;

pub fn check(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let escape = if mode % 2 == 0 { '\\' } else { '`' };
    let word = String::from_utf8_lossy(rest).into_owned();
    let lexer = Lexer::new(escape);

    // Values without whitespace, then one with.
    let plain: BTreeMap<String, String> = [
        ("A", "alpha"),
        ("E", ""),
        ("P", "a*b?c[d]"),
        ("S", "/x/y/"),
        ("N", "123"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut spaced = plain.clone();
    spaced.insert("W".to_string(), " two  words ".to_string());

    for env in [&plain, &spaced] {
        let one = lexer.process_word(&word, env);
        let with = lexer.process_word_with_matches(&word, env);
        match (&one, &with) {
            (Ok(one), Ok(with)) => {
                assert_eq!(
                    *one, with.result,
                    "process_word_with_matches disagrees on {word:?}"
                );
                for name in &with.matched {
                    assert!(env.contains_key(name), "{name} reported set on {word:?}");
                }
                for name in &with.unmatched {
                    assert!(!env.contains_key(name), "{name} reported unset on {word:?}");
                }
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            _ => panic!(
                "process_word and process_word_with_matches disagree on {word:?}: {one:?} / {with:?}"
            ),
        }
        // The rest needs no whitespace in values: regex compilation for `#`, `%` and `/`
        // patterns makes each expansion dear under instrumentation, so it runs once.
        if !std::ptr::eq(env, &plain) {
            continue;
        }
        let words = lexer.process_words(&word, env);

        let special = |c: char| c == '$' || c == '\'' || c == '"' || c == escape;
        if !word.contains(special) && !word.starts_with('\u{feff}') {
            assert_eq!(
                one.as_deref().ok(),
                Some(word.as_str()),
                "plain text changed: {word:?}"
            );
            let expected: Vec<&str> = word
                .split(char::is_whitespace)
                .filter(|w| !w.is_empty())
                .collect();
            assert_eq!(
                words
                    .as_ref()
                    .ok()
                    .map(|w| w.iter().map(String::as_str).collect::<Vec<_>>()),
                Some(expected),
                "plain text split differently: {word:?}"
            );
        }
        let quoted = |c: char| c == '\'' || c == '"' || c == escape;
        if !word.contains(quoted) {
            match (&one, &words) {
                (Ok(one), Ok(words)) => {
                    let expected: Vec<&str> = one
                        .split(char::is_whitespace)
                        .filter(|w| !w.is_empty())
                        .collect();
                    assert_eq!(
                        words.iter().map(String::as_str).collect::<Vec<_>>(),
                        expected,
                        "process_words is not the split of process_word on {word:?}"
                    );
                }
                (Err(_), Err(_)) => {}
                _ => panic!(
                    "process_word and process_words disagree on {word:?}: {one:?} / {words:?}"
                ),
            }
        }
    }
}
