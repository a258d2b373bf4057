//! Word expansion and splitting tests: the expander against tables of words, environments
//! and expected results.

use super::*;

/// The environment of every table below.
fn env() -> Vec<(String, String)> {
    [
        ("PWD", "/home"),
        ("X", "x"),
        ("EMPTY", ""),
        ("SPACED", " a  b "),
        ("FILE", "archive.tar.gz"),
        ("WORD", "foo"),
        ("BRACKETS", "[ab]x"),
        ("NL", "a\nb"),
        ("HASH", "#a"),
        ("한국어", "korean"),
        ("X", "x, the last duplicate"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn plain() -> Lexer {
    Lexer::new('\\')
}

fn with(set: impl FnOnce(&mut Lexer)) -> Lexer {
    let mut lexer = plain();
    set(&mut lexer);
    lexer
}

/// `expands! { lexer: L; name: input => output; ... }`: one word, no splitting.
macro_rules! expands {
    (lexer: $lexer:expr; $($name:ident: $input:expr => $want:expr;)*) => {$(
        #[test]
        fn $name() {
            let lexer = $lexer;
            let got = lexer.process_word($input, &env());
            assert_eq!(got.as_deref(), Ok($want), "input {:?}", $input);
        }
    )*};
}

/// `fails! { lexer: L; name: input => Variant at offset; ... }`.
macro_rules! fails {
    (lexer: $lexer:expr; $($name:ident: $input:expr => $variant:ident at $offset:expr;)*) => {$(
        #[test]
        fn $name() {
            let lexer = $lexer;
            let got = lexer.process_word($input, &env());
            let Err(err) = got else {
                panic!("input {:?}: expected {}, got {got:?}", $input, stringify!($variant));
            };
            assert!(matches!(err, ShellError::$variant { .. }), "input {:?}: {err:?}", $input);
            assert_eq!(err.offset(), $offset, "input {:?}: {err:?}", $input);
        }
    )*};
}

/// `splits! { lexer: L; name: input => [words]; ... }`: with word splitting.
macro_rules! splits {
    (lexer: $lexer:expr; $($name:ident: $input:expr => [$($word:expr),* $(,)?];)*) => {$(
        #[test]
        fn $name() {
            let lexer = $lexer;
            let got = lexer.process_words($input, &env());
            let want: Vec<String> = vec![$($word.to_string()),*];
            assert_eq!(got, Ok(want), "input {:?}", $input);
        }
    )*};
}

expands! {
    lexer: plain();
    // Quotes and escapes.
    single_quotes_are_literal: r"'a $X \n'" => r"a $X \n";
    double_quotes_expand: r#""[$X]""# => "[x, the last duplicate]";
    double_quotes_escape_quote_dollar_escape: r#""\"\$\\\a""# => r#""$\\a"#;
    double_quotes_do_not_escape_backtick: r#""\`""# => r"\`";
    escape_outside_quotes_takes_next_char: r"\a\ \'\$X" => r"a '$X";
    trailing_escape_is_dropped: r"abc\" => "abc";
    escaped_escape_is_kept: r"abc\\" => r"abc\";
    quotes_join_one_word: r#"a'b'"c"d"# => "abcd";
    empty_input: "" => "";
    // Names.
    lone_dollar_is_literal: "$" => "$";
    dollar_before_non_name: "$.x$ y" => "$.x$ y";
    name_stops_at_punctuation: "$X-y" => "x, the last duplicate-y";
    braces_delimit_name: "${WORD}bar" => "foobar";
    unset_is_empty: "[$UNSET][${UNSET}]" => "[][]";
    unicode_letters_make_names: "$한국어!" => "korean!";
    // Go's IsLetter is category L: U+216B ROMAN NUMERAL TWELVE (Nl) ends a name, though
    // Rust's is_alphabetic accepts it.
    letter_number_is_not_a_name: "$\u{216B}" => "$\u{216B}";
    // Go's IsDigit is category Nd, so an Arabic-Indic digit starts a positional name.
    non_ascii_digit_is_positional: "$\u{0663}\u{0664}x" => "x";
    positional_reads_all_digits: "$10x${001}y" => "xy";
    special_parameter_is_one_char: "$@@${#}$$$-a" => "@a";
    // Go's text/scanner skips a byte-order mark at the very start of its input only.
    leading_bom_is_dropped: "\u{feff}$WORD\u{feff}" => "foo\u{feff}";
    // Defaults and alternatives.
    default_unset: "${UNSET-d}${UNSET:-d}" => "dd";
    default_empty: "[${EMPTY-d}][${EMPTY:-d}]" => "[][d]";
    default_set: "${WORD-d}${WORD:-d}" => "foofoo";
    default_word_is_expanded: "${UNSET:-$WORD 'a b' \\}}" => "foo a b }";
    nested_defaults: "${U:-${V:-${WORD}}}" => "foo";
    alternative_unset: "[${UNSET+a}][${UNSET:+a}]" => "[][]";
    alternative_empty: "[${EMPTY+a}][${EMPTY:+a}]" => "[a][]";
    alternative_set: "${WORD+a}${WORD:+a}" => "aa";
    required_set: "${WORD?m}${WORD:?m}" => "foofoo";
    required_empty_without_colon: "[${EMPTY?m}]" => "[]";
    // Prefix and suffix removal: shortest with one operator, longest with two.
    prefix_shortest: "${FILE#*.}" => "tar.gz";
    prefix_longest: "${FILE##*.}" => "gz";
    suffix_shortest: "${FILE%.*}" => "archive.tar";
    suffix_longest: "${FILE%%.*}" => "archive";
    prefix_no_match: "${FILE#x}" => "archive.tar.gz";
    prefix_of_unset: "[${UNSET#x}]" => "[]";
    question_mark_is_one_char: "${FILE#?r}" => "chive.tar.gz";
    brackets_are_literal: "${BRACKETS#[ab]}" => "x";
    star_does_not_cross_newline: "${NL#*b}" => "a\nb";
    escaped_star_is_literal: r"${FILE#\*}" => "archive.tar.gz";
    // The doubling is checked after expansion: P starting with `#` makes it greedy.
    doubled_operator_from_expansion: "${HASH#$HASH}" => "#a";
    // Replacement.
    replace_first: "${FILE/a/A}" => "Archive.tar.gz";
    replace_all: "${FILE//a/A}" => "Archive.tAr.gz";
    replace_is_greedy: "${FILE/.*/}" => "archive";
    replace_empty_pattern_prepends: "${WORD/$EMPTY/>}" => ">foo";
    replace_with_nothing: "${WORD//o/}x" => "fx";
    replace_escaped_slash_and_brace: r"${PWD//\//\}}" => r"\}home";
    // Go's ReplaceAllString treats the replacement as a template: `$0` is the match.
    // A literal `$` only gets there escaped, and then the escape stays too.
    replace_all_template: r"${WORD//o/\$0}" => r"f\o\o";
    replace_first_is_literal: r"${WORD/o/\$0}" => r"f\$0o";
}

fails! {
    lexer: plain();
    unterminated_single_quote: "ab'cd" => UnterminatedQuote at 2;
    unterminated_double_quote: r#"a"b\""# => UnterminatedQuote at 1;
    escaped_quote_unterminated: r"a\\'b" => UnterminatedQuote at 3;
    empty_braces: "x${}" => BadSubstitution at 1;
    brace_after_brace: "${{X}" => BadSubstitution at 0;
    colon_without_name: "${:-a}" => BadSubstitution at 0;
    dot_is_no_modifier: "${.}" => UnsupportedModifier at 2;
    assign_default_is_refused: "${X=a}" => UnsupportedModifier at 3;
    colon_assign_is_refused: "${X:=a}" => UnsupportedModifier at 3;
    colon_other_is_refused: "${X:YYY}" => UnsupportedModifier at 3;
    colon_hash_is_refused: "${X:#a}" => UnsupportedModifier at 3;
    colon_percent_is_refused: "${X:%a}" => UnsupportedModifier at 3;
    length_is_unsupported: "${#X}" => UnsupportedModifier at 3;
    open_brace_at_end: "a${" => MissingBrace at 1;
    name_at_end: "a${X" => MissingBrace at 1;
    colon_at_end: "${X:" => MissingBrace at 0;
    default_unterminated: "${X:-a b" => MissingBrace at 0;
    // Any failure inside a word that runs to the end is reported as the missing brace.
    quote_in_word_at_end: "${X:-'a}" => MissingBrace at 0;
    required_in_word_at_end: "${X:-${U?}" => MissingBrace at 0;
    nested_failure_before_end: "${X:-${}}" => BadSubstitution at 5;
    pattern_without_slash: "${X/a}" => MissingSlash at 0;
    replace_all_without_slash: "${X//a}" => MissingSlash at 0;
    replacement_unterminated: "${X/a/b" => MissingBrace at 0;
    required_unset: "a${U?}" => MissingRequired at 1;
    required_colon_empty: "${EMPTY:?}" => MissingRequired at 0;
    invalid_escape_in_pattern: r"${X#\.}" => InvalidPattern at 0;
    invalid_escape_in_suffix_pattern: r"${X%a\b}" => InvalidPattern at 0;
    invalid_escape_in_replacement_pattern: r"${X/\a/b}" => InvalidPattern at 0;
    offsets_count_bytes: "한국어${}" => BadSubstitution at 9;
}

splits! {
    lexer: plain();
    splits_on_blanks: " a \t b\nc " => ["a", "b", "c"];
    splits_unicode_space: "a\u{a0}b\u{3000}c" => ["a", "b", "c"];
    unquoted_expansion_splits: "<$SPACED>" => ["<", "a", "b", ">"];
    quoted_expansion_stays: "<\"$SPACED\">" => ["< a  b >"];
    escaped_blank_joins: r"a\ b c" => ["a b", "c"];
    quoted_blank_joins: "a' 'b \"c d\"" => ["a b", "c d"];
    // BuildKit keeps a word only if it has a character: quoted-empty words vanish.
    empty_quotes_are_dropped: "a '' \"\" b" => ["a", "b"];
    empty_expansion_is_dropped: "$EMPTY $UNSET" => [];
    default_word_splits: "${U:-\"x y\"}" => ["x", "y"];
    // BuildKit's current lex.go shares one word buffer between nested words, so the
    // `pre` here would be lost; we keep it (see the docs of `Words`).
    text_before_nested_word_is_kept: "pre${U:-x}post z" => ["prexpost", "z"];
}

expands! {
    lexer: with(|l| l.raw_escapes = true);
    default_word_ignores_raw_escapes: r"${U:-\$X}\a" => r"$X\a";
    raw_escapes_keep_escapes: r"a\ b\" => r"a\ b\";
    // In double quotes a non-escapable escape is written twice in raw mode, as upstream.
    raw_escapes_double_in_quotes: r#""\a\$""# => r"\\a\$";
}

expands! {
    lexer: with(|l| l.raw_quotes = true);
    raw_quotes_keep_quotes: r#"'a'"$X""# => r#"'a'"x, the last duplicate""#;
}

expands! {
    lexer: with(|l| l.skip_process_quotes = true);
    skip_process_quotes_keeps_quotes_literal: r#"'$WORD' "a"# => r#"'foo' "a"#;
}

expands! {
    lexer: with(|l| l.skip_unset_env = true);
    skip_unset_keeps_unset_text: "$U ${U} ${U:-d} ${U+a} ${U?} ${U#p} ${U:=x}"
        => "$U ${U} ${U:-d} ${U+a} ${U?} ${U#p} ${U:=x}";
    skip_unset_writes_one_slash_back: "${U//a/b}" => "${U/a/b}";
    skip_unset_keeps_expanded_word: "${U:-'$WORD'}" => "${U:-$WORD}";
    skip_unset_expands_set: "$WORD ${EMPTY:-d}" => "foo d";
}

expands! {
    lexer: Lexer::new('`');
    backtick_escape: "a`$X\\b\"`\"\"" => "a$X\\b\"";
    backtick_pattern_escape_is_literal: r"${WORD#\*}" => "foo";
}

fails! {
    lexer: with(|l| l.skip_unset_env = true);
    required_empty_still_fails_when_skipping_unset: "${EMPTY:?}" => MissingRequired at 0;
}

splits! {
    lexer: with(|l| l.raw_quotes = true);
    raw_quotes_words: "\"a b\" c" => ["\"a b\"", "c"];
}

splits! {
    lexer: with(|l| l.skip_process_quotes = true);
    skip_process_quotes_words: "\"a b\"" => ["\"a", "b\""];
}

splits! {
    lexer: with(|l| l.raw_escapes = true);
    raw_escapes_words: r"a\ b" => [r"a\ b"];
}

#[test]
fn matches_report_set_and_unset_names() {
    let got = plain()
        .process_word_with_matches("$X ${EMPTY:-$U} ${V#$W} $1", &env())
        .expect("expands");
    assert_eq!(got.result, "x, the last duplicate   ");
    let names = |s: &[&str]| s.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(got.matched, names(&["EMPTY", "X"]));
    assert_eq!(got.unmatched, names(&["1", "U", "V", "W"]));
}

#[test]
fn every_env_impl_looks_up_the_same() {
    let list = env();
    let hash: HashMap<String, String> = list.iter().cloned().collect();
    let btree: BTreeMap<String, String> = list.iter().cloned().collect();
    let slice = list.as_slice();
    let envs: [&dyn Env; 4] = [&list, &slice, &hash, &btree];
    for env in envs {
        assert_eq!(env.lookup("X"), Some("x, the last duplicate"));
        assert_eq!(env.lookup("EMPTY"), Some(""));
        assert_eq!(env.lookup("x"), None, "names are case-sensitive");
    }
    assert_eq!(EmptyEnv.lookup("PWD"), None);
    assert_eq!(
        plain().process_word("${PWD:-none}", &EmptyEnv),
        Ok("none".into())
    );
}

#[test]
fn messages_match_buildkit() {
    let msg = |input: &str| plain().process_word(input, &env()).unwrap_err().to_string();
    assert_eq!(
        msg("${}"),
        r#"failed to process "${}": syntax error: bad substitution"#
    );
    assert_eq!(
        msg("${X"),
        r#"failed to process "${X": syntax error: missing '}'"#
    );
    assert_eq!(
        msg("${X:=a}"),
        r#"failed to process "${X:=a}": unsupported modifier (:=) in substitution"#
    );
    assert_eq!(
        msg("'a"),
        r#"failed to process "'a": unexpected end of statement while looking for matching single-quote"#
    );
    assert_eq!(
        msg("${U?}"),
        r#"failed to process "${U?}": U: is not allowed to be unset"#
    );
    assert_eq!(
        msg("${EMPTY:?}"),
        r#"failed to process "${EMPTY:?}": EMPTY: is not allowed to be empty"#
    );
    assert_eq!(
        msg("${U:?need $WORD}"),
        r#"failed to process "${U:?need $WORD}": U: need foo"#
    );
    assert_eq!(
        msg(r"${X#\.}"),
        r#"failed to process "${X#\\.}": invalid pattern (\.) in substitution: invalid escape '\.'"#
    );
}

#[test]
fn deepest_nesting_fits_in_one_mib_of_stack() {
    // Double quotes between levels add frames; this is the costliest shape per level.
    let half = MAX_DEPTH / 2;
    let word = format!("{}x{}", "${U:-\"${V:-".repeat(half), "}\"}".repeat(half));
    let expanded = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || plain().process_word(&word, &EmptyEnv))
        .expect("spawn")
        .join()
        .expect("no panic");
    assert_eq!(expanded, Ok("x".into()));
}

#[test]
fn nesting_is_bounded() {
    let nest = |n: usize| format!("{}x{}", "${U:-".repeat(n), "}".repeat(n));
    assert_eq!(
        plain().process_word(&nest(MAX_DEPTH), &EmptyEnv),
        Ok("x".into())
    );
    let err = plain()
        .process_word(&nest(MAX_DEPTH + 1), &EmptyEnv)
        .unwrap_err();
    assert!(matches!(err, ShellError::TooDeep { offset, .. } if offset == 5 * MAX_DEPTH));
}
