//! The recorded form of a result, and the comparison that says what differs.
//!
//! A result is `refused` (the builder rejected the Dockerfile or a step failed) or `built`:
//! then a normalised config, the history and layer counts, and a canonical root-filesystem
//! listing. When the image sits on the corpus's base image (its first layers are the base's),
//! the listing holds only what differs from the base: changed or added paths, and `- path`
//! for paths the image removed. That keeps the recordings independent of the busybox build
//! a machine has; for the same reason a file whose content is one of the base's files shows
//! `content=base:<path>` instead of its size and digest.
//!
//! One line per fact, so a recording reads and diffs well:
//! ```text
//! built
//! config Env ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
//! history 3 entries, 1 empty
//! layers 2
//! rootfs changes from base
//! "/app" d 0755 0:0
//! "/app/x" f 0644 0:0 size=2 sha256=…
//! "/bin/sh" l 0777 0:0 -> "/bin/busybox"
//! - "/etc/motd"
//! ```

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::image::{Content, Entry, Image, Rootfs};

/// The config fields compared, in this order (`config.config` of the image).
pub const CONFIG_FIELDS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "Healthcheck",
    "StopSignal",
    "Shell",
    "OnBuild",
    "ArgsEscaped",
];

/// The base image, as the listing needs it: its layers' diff IDs and its files by content.
pub struct Base {
    pub diff_ids: Vec<String>,
    pub rootfs: Rootfs,
    /// sha256 of each regular file's content → the first path that has it.
    by_content: HashMap<String, String>,
}

impl Base {
    pub fn new(diff_ids: Vec<String>, rootfs: Rootfs) -> Base {
        let mut by_content = HashMap::new();
        for (path, e) in &rootfs {
            if let Content::File { sha256, .. } = &e.content {
                by_content
                    .entry(sha256.clone())
                    .or_insert_with(|| path.clone());
            }
        }
        Base {
            diff_ids,
            rootfs,
            by_content,
        }
    }
}

/// Render a built image in the recorded form.
pub fn render(image: &Image, base: &Base) -> String {
    let mut out = String::from("built\n");
    let cc = &image.config["config"];
    for field in CONFIG_FIELDS {
        if let Some(v) = normal(&cc[*field]) {
            out.push_str(&format!("config {field} {v}\n"));
        }
    }
    if let Some(author) = image.config["author"].as_str().filter(|a| !a.is_empty()) {
        out.push_str(&format!("config Author {}\n", Value::from(author)));
    }
    let history = image.config["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let empty = history
        .iter()
        .filter(|h| h["empty_layer"].as_bool() == Some(true))
        .count();
    out.push_str(&format!(
        "history {} entries, {empty} empty\n",
        history.len()
    ));
    out.push_str(&format!("layers {}\n", image.diff_ids.len()));
    let n = base.diff_ids.len();
    let on_base = image.diff_ids.len() >= n && image.diff_ids[..n] == base.diff_ids[..];
    let fs = image.rootfs(usize::MAX);
    if on_base {
        out.push_str("rootfs changes from base\n");
        for (path, e) in &fs {
            if base.rootfs.get(path) != Some(e) {
                out.push_str(&entry_line(path, e, base));
            }
        }
        for path in base.rootfs.keys() {
            if !fs.contains_key(path) {
                out.push_str(&format!("- {}\n", Value::from(path.as_str())));
            }
        }
    } else {
        out.push_str("rootfs full\n");
        for (path, e) in &fs {
            out.push_str(&entry_line(path, e, base));
        }
    }
    out
}

/// A config value as recorded: `None` for absent, null, empty lists, maps and strings
/// (the Go encoders BuildKit and rbuild use differ in which of those they write), else its
/// compact JSON with object keys sorted.
fn normal(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Array(a) if a.is_empty() => None,
        Value::Object(o) if o.is_empty() => None,
        Value::String(s) if s.is_empty() => None,
        Value::Bool(false) => None,
        v => Some(serde_json::to_string(v).unwrap()),
    }
}

fn entry_line(path: &str, e: &Entry, base: &Base) -> String {
    let mut line = format!(
        "{} {} {:04o} {}:{}",
        Value::from(path),
        e.kind,
        e.mode,
        e.uid,
        e.gid
    );
    match &e.content {
        Content::None => {}
        Content::File { size, sha256 } => match base.by_content.get(sha256) {
            Some(from) => line.push_str(&format!(" content=base:{from}")),
            None => line.push_str(&format!(" size={size} sha256={sha256}")),
        },
        Content::Link(target) => line.push_str(&format!(" -> {}", Value::from(target.as_str()))),
        Content::Device(major, minor) => line.push_str(&format!(" dev={major},{minor}")),
    }
    for (k, v) in &e.xattrs {
        line.push_str(&format!(" xattr:{k}={}", super::image::hex(v)));
    }
    line.push('\n');
    line
}

/// A recording, split for comparison: the lines that are not path entries, by their key
/// (`config Env`, `history`, ...), and the path entries by path.
struct Parsed {
    facts: BTreeMap<String, String>,
    paths: BTreeMap<String, String>,
}

/// Lines starting with `#` are comments.
fn parse(text: &str) -> Parsed {
    let mut facts = BTreeMap::new();
    let mut paths = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        if line.starts_with('"') || line.starts_with("- \"") {
            let quoted = line.trim_start_matches("- ");
            let mut de = serde_json::Deserializer::from_str(quoted).into_iter::<String>();
            let path = de.next().and_then(Result::ok).unwrap_or_default();
            paths.insert(path, line.to_string());
        } else {
            let key = match line.split_once(' ') {
                Some(("config", rest)) => format!("config {}", rest.split(' ').next().unwrap()),
                Some((k, _)) => k.to_string(),
                None => line.to_string(),
            };
            facts.insert(key, line.to_string());
        }
    }
    Parsed { facts, paths }
}

/// Whether the recording says the build was refused.
pub fn is_refused(expected: &str) -> bool {
    parse(expected).facts.contains_key("refused")
}

/// What differs between the `expected` recording and `actual` (rbuild's, rendered), one
/// line each: which fact or path, and both sides. Empty when they match.
pub fn differences(expected: &str, actual: &str) -> Vec<String> {
    let (e, a) = (parse(expected), parse(actual));
    let mut out = Vec::new();
    let keys: std::collections::BTreeSet<&String> = e.facts.keys().chain(a.facts.keys()).collect();
    for k in keys {
        match (e.facts.get(k), a.facts.get(k)) {
            (Some(x), Some(y)) if x == y => {}
            (x, y) => out.push(format!(
                "{k}:\n    docker: {}\n    rbuild: {}",
                x.map_or("(none)", |s| s.as_str()),
                y.map_or("(none)", |s| s.as_str())
            )),
        }
    }
    let paths: std::collections::BTreeSet<&String> = e.paths.keys().chain(a.paths.keys()).collect();
    for p in paths {
        match (e.paths.get(p), a.paths.get(p)) {
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) => out.push(format!(
                "path {p}: {}\n    docker: {x}\n    rbuild: {y}",
                field_diff(x, y)
            )),
            (Some(x), None) => out.push(format!("path {p}: only docker has it: {x}")),
            (None, Some(y)) => out.push(format!("path {p}: only rbuild has it: {y}")),
            (None, None) => {}
        }
    }
    out
}

/// Name the fields of two entry lines that differ: type, mode, owner, content, link, xattrs.
fn field_diff(x: &str, y: &str) -> String {
    let names = ["type", "mode", "owner"];
    let xs: Vec<&str> = x.split(' ').skip(1).collect();
    let ys: Vec<&str> = y.split(' ').skip(1).collect();
    let mut diffs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if xs.get(i) != ys.get(i) {
            diffs.push(format!(
                "{name} {} vs {}",
                xs.get(i).unwrap_or(&"-"),
                ys.get(i).unwrap_or(&"-")
            ));
        }
    }
    if xs.get(3..) != ys.get(3..) {
        diffs.push("content, link target or xattrs".to_string());
    }
    diffs.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_the_field_and_both_sides() {
        let docker = "built\nconfig Env [\"A=1\"]\nlayers 2\nrootfs changes from base\n\"/a\" f 0644 0:0 size=1 sha256=aa\n\"/b\" d 0755 0:0\n";
        let rbuild = "built\nconfig Env [\"A=2\"]\nlayers 2\nrootfs changes from base\n\"/a\" f 0755 0:0 size=1 sha256=aa\n\"/c\" d 0755 0:0\n";
        let d = differences(docker, rbuild);
        assert_eq!(d.len(), 4, "{d:#?}");
        assert!(d[0].starts_with("config Env:") && d[0].contains("A=1") && d[0].contains("A=2"));
        assert!(d[1].starts_with("path /a: mode 0644 vs 0755"), "{}", d[1]);
        assert!(d[2].starts_with("path /b: only docker"), "{}", d[2]);
        assert!(d[3].starts_with("path /c: only rbuild"), "{}", d[3]);
        assert!(differences(docker, docker).is_empty());
        assert!(is_refused("# why\nrefused\n"));
        assert!(!is_refused(docker));
    }
}
