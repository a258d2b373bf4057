//! The words of a history entry's `created_by`, as BuildKit's Dockerfile frontend writes them
//! (`dockerfile2llb/convert.go`: `commitToHistory` and the `dispatch*` functions that call it).
//!
//! Several are Go `fmt` renderings of Go values — `%q` and `%v` of string slices, `%v` of a
//! `map[string]struct{}`, `%+v` of the healthcheck struct with its `time.Duration` fields — so
//! they are re-stated here byte for byte: `docker history` shows them, and tools that turn
//! history back into a Dockerfile parse them.
//!
//! Owns: formatting only. What a step does to the config is `stage_image.rs`'s business.

use std::collections::BTreeSet;

use crate::dockerfile::ast::go_quote;
use crate::dockerfile::instruction::SourcesAndDest;
use crate::oci::config::Healthcheck;

/// The `comment` of every entry the Dockerfile frontend commits.
pub(crate) const COMMENT: &str = "buildkit.dockerfile.v0";

/// What BuildKit appends to the entries of steps that run in the build graph (RUN, COPY,
/// ADD): `commitToHistory` adds it whenever it is handed the LLB state.
const IN_GRAPH: &str = " # buildkit";

/// Go's `%q` of a `[]string`: `["a" "b"]` (CMD, ENTRYPOINT).
pub(crate) fn quoted(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `%v` of a `[]string`: `[a b]` (VOLUME, SHELL).
pub(crate) fn plain(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Go's `%v` of the `nat.PortSet` BuildKit up to v0.24 builds for EXPOSE: a map printed with
/// sorted keys, `map[443/tcp:{} 80/tcp:{}]`. BuildKit v0.25 changed this to the `%v` of a
/// list in source order (moby/buildkit#6218); rbuild follows the frontend Docker 25–28 ship.
pub(crate) fn exposed(ports: &BTreeSet<String>) -> String {
    let entries: Vec<String> = ports.iter().map(|p| format!("{p}:{{}}")).collect();
    format!("EXPOSE map[{}]", entries.join(" "))
}

/// `HEALTHCHECK` and Go's `%+v` of moby's `HealthcheckConfig`:
/// `{Test:[CMD-SHELL curl -f http://x/] Interval:30s Timeout:0s StartPeriod:0s StartInterval:0s Retries:3}`.
pub(crate) fn healthcheck(h: &Healthcheck) -> String {
    format!(
        "HEALTHCHECK {{Test:{} Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
        plain(&h.test),
        duration(h.interval),
        duration(h.timeout),
        duration(h.start_period),
        duration(h.start_interval),
        h.retries
    )
}

/// `RUN [|N K=V…] args… # buildkit` (BuildKit `runCommandString`): every ARG the stage has
/// declared so far, once each in first-declaration order, valued from the environment when
/// the key is set there (so an ENV of the same name shows its value) and from the declaration
/// otherwise (empty when it has none).
pub(crate) fn run(
    args: &[String],
    declared: &[(String, Option<String>)],
    env: impl Fn(&str) -> Option<String>,
) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    for (key, declared_value) in declared {
        let value = env(key).unwrap_or_else(|| declared_value.clone().unwrap_or_default());
        match pairs.iter_mut().find(|(k, _)| k == key) {
            Some(pair) => pair.1 = value,
            None => pairs.push((key, value)),
        }
    }
    let mut words: Vec<String> = Vec::new();
    if !pairs.is_empty() {
        words.push(format!("|{}", pairs.len()));
        words.extend(pairs.iter().map(|(k, v)| format!("{k}={v}")));
    }
    words.extend(args.iter().cloned());
    format!("RUN {}{IN_GRAPH}", words.join(" "))
}

/// `COPY`/`ADD` as BuildKit's `dispatchCopy` words it: `--parents`, `--chown` and `--chmod`
/// when set (never `--from`, `--link`, `--exclude`, `--checksum`), the sources as expanded,
/// `<<NAME` for each heredoc source, the destination as written.
pub(crate) fn copy(
    keyword: &str,
    parents: bool,
    chown: Option<&str>,
    chmod: Option<&str>,
    paths: &SourcesAndDest,
) -> String {
    let mut s = keyword.to_string();
    if parents {
        s.push_str(" --parents");
    }
    if let Some(chown) = chown.filter(|c| !c.is_empty()) {
        s.push_str(" --chown=");
        s.push_str(chown);
    }
    if let Some(chmod) = chmod.filter(|c| !c.is_empty()) {
        s.push_str(" --chmod=");
        s.push_str(chmod);
    }
    for src in &paths.sources {
        s.push(' ');
        s.push_str(&src.value);
    }
    for doc in &paths.inline {
        s.push_str(" <<");
        s.push_str(&doc.path);
    }
    s.push(' ');
    s.push_str(&paths.dest.value);
    s.push_str(IN_GRAPH);
    s
}

/// Go's `time.Duration.String()`: `0s`, `500ms`, `1.5µs`, `1m30s`, `1h0m0s`.
pub(crate) fn duration(ns: i64) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let u = ns.unsigned_abs();
    if u == 0 {
        return "0s".to_string();
    }
    if u < 1_000_000_000 {
        let (unit, precision) = match u {
            1..1_000 => ("ns", 0),
            1_000..1_000_000 => ("µs", 3),
            _ => ("ms", 6),
        };
        let (whole, fraction) = split_fraction(u, precision);
        return format!("{sign}{whole}{fraction}{unit}");
    }
    let (seconds, fraction) = split_fraction(u, 9);
    let (minutes, seconds) = (seconds / 60, seconds % 60);
    let (hours, minutes) = (minutes / 60, minutes % 60);
    match (hours, minutes) {
        (0, 0) => format!("{sign}{seconds}{fraction}s"),
        (0, _) => format!("{sign}{minutes}m{seconds}{fraction}s"),
        _ => format!("{sign}{hours}h{minutes}m{seconds}{fraction}s"),
    }
}

/// `v / 10^precision` and the fraction as `.ddd` without trailing zeros (empty when zero),
/// as Go's `fmtFrac`.
fn split_fraction(v: u64, precision: u32) -> (u64, String) {
    let scale = 10u64.pow(precision);
    let fraction = v % scale;
    if fraction == 0 {
        return (v / scale, String::new());
    }
    let digits = format!("{fraction:0width$}", width = precision as usize);
    (v / scale, format!(".{}", digits.trim_end_matches('0')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Span;
    use crate::dockerfile::ast::Arg;
    use crate::dockerfile::instruction::InlineSource;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    macro_rules! durations {
        ($($name:ident: $ns:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(duration($ns), $want);
            }
        )*};
    }

    durations! {
        zero: 0 => "0s";
        nanoseconds: 999 => "999ns";
        microseconds: 1_500 => "1.5µs";
        milliseconds: 1_000_000 => "1ms";
        fractional_milliseconds: 1_250_000 => "1.25ms";
        seconds: 5_000_000_000 => "5s";
        fractional_seconds: 1_500_000_000 => "1.5s";
        minutes_keep_zero_seconds: 120_000_000_000 => "2m0s";
        minutes_and_seconds: 90_000_000_000 => "1m30s";
        hours_keep_zero_minutes: 3_600_000_000_000 => "1h0m0s";
        hours_minutes_fraction: 3_723_500_000_000 => "1h2m3.5s";
        negative: -1_500_000_000 => "-1.5s";
    }

    macro_rules! words {
        ($($name:ident: $got:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!($got, $want);
            }
        )*};
    }

    fn paths(sources: &[&str], inline: &[&str], dest: &str) -> SourcesAndDest {
        let arg = |s: &str| Arg {
            value: s.to_string(),
            span: Span::new(0, 0),
        };
        SourcesAndDest {
            sources: sources.iter().map(|s| arg(s)).collect(),
            inline: inline
                .iter()
                .map(|p| InlineSource {
                    path: p.to_string(),
                    data: String::new(),
                    expand: false,
                })
                .collect(),
            dest: arg(dest),
        }
    }

    fn declared(pairs: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect()
    }

    words! {
        quoted_cmd: quoted(&strings(&["gunicorn", "-w", "2", "app:app"])) => r#"["gunicorn" "-w" "2" "app:app"]"#;
        quoted_escapes: quoted(&strings(&["echo \"hi\"\n"])) => r#"["echo \"hi\"\n"]"#;
        quoted_empty: quoted(&[]) => "[]";
        plain_volume: plain(&strings(&["/data", "/logs"])) => "[/data /logs]";
        exposed_sorts_as_strings: exposed(&["80/tcp".to_string(), "443/tcp".to_string()].into()) => "EXPOSE map[443/tcp:{} 80/tcp:{}]";
        healthcheck_shell: healthcheck(&Healthcheck {
            test: strings(&["CMD-SHELL", "curl -f http://localhost/ || exit 1"]),
            interval: 30_000_000_000,
            timeout: 5_000_000_000,
            start_period: 120_000_000_000,
            retries: 3,
            ..Healthcheck::default()
        }) => "HEALTHCHECK {Test:[CMD-SHELL curl -f http://localhost/ || exit 1] Interval:30s Timeout:5s StartPeriod:2m0s StartInterval:0s Retries:3}";
        healthcheck_none: healthcheck(&Healthcheck { test: strings(&["NONE"]), ..Healthcheck::default() })
            => "HEALTHCHECK {Test:[NONE] Interval:0s Timeout:0s StartPeriod:0s StartInterval:0s Retries:0}";
        run_without_args: run(&strings(&["/bin/sh", "-c", "pip3 install -r requirements.txt"]), &[], |_| None)
            => "RUN /bin/sh -c pip3 install -r requirements.txt # buildkit";
        run_with_args: run(&strings(&["/bin/sh", "-c", "make"]), &declared(&[("B", Some("1")), ("A", None)]), |_| None)
            => "RUN |2 B=1 A= /bin/sh -c make # buildkit";
        run_arg_redeclared_keeps_first_place: run(&strings(&["x"]), &declared(&[("A", Some("1")), ("B", Some("2")), ("A", Some("3"))]), |_| None)
            => "RUN |2 A=3 B=2 x # buildkit";
        run_arg_valued_from_env: run(&strings(&["x"]), &declared(&[("V", Some("arg"))]), |k| (k == "V").then(|| "env".to_string()))
            => "RUN |1 V=env x # buildkit";
        copy_plain: copy("COPY", false, None, None, &paths(&["requirements.txt"], &[], "/app"))
            => "COPY requirements.txt /app # buildkit";
        copy_flags: copy("COPY", true, Some("1000:1000"), Some("0644"), &paths(&["a", "b"], &[], "dst/"))
            => "COPY --parents --chown=1000:1000 --chmod=0644 a b dst/ # buildkit";
        copy_empty_chown_left_out: copy("ADD", false, Some(""), None, &paths(&["x.tar"], &[], "/"))
            => "ADD x.tar / # buildkit";
        copy_heredocs_after_paths: copy("COPY", false, None, None, &paths(&["a"], &["EOF", "two"], "/d"))
            => "COPY a <<EOF <<two /d # buildkit";
    }
}
