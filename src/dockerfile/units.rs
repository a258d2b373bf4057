//! Durations and byte sizes as Docker writes them: Go's `time.ParseDuration` (HEALTHCHECK
//! `--interval=1m30s`) and go-units' `RAMInBytes` (tmpfs `size=64m`).

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("time: invalid duration {0:?}")]
    Duration(String),
    #[error("invalid size: '{0}'")]
    Size(String),
}

/// Go's `time.ParseDuration`, in nanoseconds: `300ms`, `-1.5h`, `2h45m`, `1µs`, `0`.
pub(crate) fn parse_duration(s: &str) -> Result<i64, UnitError> {
    let bad = || UnitError::Duration(s.to_string());
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(bad());
        }
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit: f64 = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += num.parse::<f64>().map_err(|_| bad())? * unit;
    }
    if total > i64::MAX as f64 {
        return Err(bad());
    }
    let ns = total.round() as i64;
    Ok(if neg { -ns } else { ns })
}

/// Render nanoseconds the way Go's `Duration.String` does for whole units (`1m30s`, `5s`,
/// `500ms`), used in messages.
#[cfg(test)]
pub(crate) fn format_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    if ns % 1_000_000_000 != 0 {
        if ns % 1_000_000 == 0 {
            return format!("{}ms", ns / 1_000_000);
        }
        return format!("{ns}ns");
    }
    let mut secs = ns / 1_000_000_000;
    let mut out = String::new();
    if secs >= 3600 {
        out.push_str(&format!("{}h", secs / 3600));
        secs %= 3600;
        out.push_str(&format!("{}m", secs / 60));
        secs %= 60;
    } else if secs >= 60 {
        out.push_str(&format!("{}m", secs / 60));
        secs %= 60;
    }
    out.push_str(&format!("{secs}s"));
    out
}

/// go-units `RAMInBytes`: a number with an optional binary suffix (`k`, `m`, `g`, `t`, `p`,
/// each optionally followed by `i` and/or `b`, any case): `64m` = 64 MiB.
pub fn parse_ram_size(s: &str) -> Result<u64, UnitError> {
    let bad = || UnitError::Size(s.to_string());
    let t = s.trim();
    let num_len = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let num: f64 = t[..num_len].parse().map_err(|_| bad())?;
    let suffix = t[num_len..].trim_start_matches(' ').to_ascii_lowercase();
    let mut chars = suffix.chars();
    let mult: u64 = match chars.next() {
        None => 1,
        Some('b') if suffix.len() == 1 => 1,
        Some('k') => 1 << 10,
        Some('m') => 1 << 20,
        Some('g') => 1 << 30,
        Some('t') => 1 << 40,
        Some('p') => 1 << 50,
        _ => return Err(bad()),
    };
    let tail: String = chars.collect();
    if mult > 1 && !matches!(tail.as_str(), "" | "i" | "b" | "ib") {
        return Err(bad());
    }
    Ok((num * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! durations {
        ($($name:ident: $s:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(parse_duration($s).ok(), $want);
            }
        )*};
    }

    durations! {
        seconds: "5s" => Some(5_000_000_000);
        compound: "1h30m" => Some(5_400_000_000_000);
        fraction: "1.5s" => Some(1_500_000_000);
        micro_sign: "2µs" => Some(2_000);
        greek_mu: "2μs" => Some(2_000);
        nanos: "50ns" => Some(50);
        zero: "0" => Some(0);
        zero_ms: "0ms" => Some(0);
        negative: "-1m" => Some(-60_000_000_000);
        no_unit: "10" => None;
        bad_unit: "10x" => None;
        empty: "" => None;
        dot_only: ".s" => None;
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_duration(90_000_000_000), "1m30s");
        assert_eq!(format_duration(1_000_000), "1ms");
        assert_eq!(format_duration(3_600_000_000_000), "1h0m0s");
    }

    #[test]
    fn ram_sizes() {
        assert_eq!(parse_ram_size("64m").unwrap(), 64 << 20);
        assert_eq!(parse_ram_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_ram_size("512kb").unwrap(), 512 << 10);
        assert_eq!(parse_ram_size("100").unwrap(), 100);
        assert!(parse_ram_size("12x").is_err());
        assert!(parse_ram_size("m").is_err());
    }
}
