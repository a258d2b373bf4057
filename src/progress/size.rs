//! Sizes for people: what progress lines, `rbuild images` and prune say.

/// go-units `HumanSize`: SI units, `%.4g` (four significant digits, no trailing zeros).
pub fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let int_digits = if v < 1.0 {
        1
    } else {
        v.log10().floor() as usize + 1
    };
    let decimals = 4usize.saturating_sub(int_digits);
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", units[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(1_036_575), "1.037MB");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(54_500_000), "54.5MB");
        assert_eq!(human_size(1_000), "1kB");
    }
}
