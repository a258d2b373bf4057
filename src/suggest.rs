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

/// Edit distance over characters where swapping two adjacent characters counts as one
/// edit (optimal string alignment), so `--form` is one edit from `--from`.
pub(crate) fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for (i, row) in d.chunks_mut(w).enumerate() {
        row[0] = i;
    }
    for (j, cell) in d.iter_mut().take(w).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
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
        assert_eq!(levenshtein("form", "from"), 1);
    }
}
