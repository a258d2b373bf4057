//! "Did you mean …?" suggestions by edit distance, for instructions, flags, mount keys and
//! stage names (BuildKit does the same in `util/suggest`).

/// The closest candidate to `input` (case-insensitively) when it is close enough to be a
/// plausible typo: at most a third of the input's length away, and never more than 3 edits.
pub fn did_you_mean<'a, I>(input: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let needle = input.to_ascii_lowercase();
    if needle.is_empty() {
        return None;
    }
    let limit = (needle.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (levenshtein(&needle, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j + 1] + 1).min(cur[j] + 1).min(prev[j] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! suggests {
        ($($name:ident: $input:expr, $cands:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(did_you_mean($input, $cands.iter().copied()), $want);
            }
        )*};
    }

    const INSTR: [&str; 6] = [
        "RUN",
        "COPY",
        "FROM",
        "WORKDIR",
        "ENTRYPOINT",
        "HEALTHCHECK",
    ];

    suggests! {
        one_extra_letter: "RUNN", INSTR => Some("RUN");
        lowercase_typo: "copi", INSTR => Some("COPY");
        transposed: "WROKDIR", INSTR => Some("WORKDIR");
        long_word_three_edits: "ENTRYPONT", INSTR => Some("ENTRYPOINT");
        nothing_close: "BANANA", INSTR => None;
        empty_input: "", INSTR => None;
    }

    #[test]
    fn distance_table() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("abc", "abc"), 0);
    }
}
