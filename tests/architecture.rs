//! The crate's shape, checked from its sources: modules are layered (a module imports only
//! the ones below it in [`LAYERS`]), no two files import each other, directly or through
//! others, no file passes [`MAX_LINES`], and `unsafe` lives only in `src/sys/`.
//!
//! Imports are read from the text: `use` paths and inline `crate::`/`super::`/`self::`
//! paths, comments and `#[cfg(test)]` modules left out. A path is resolved to the deepest
//! module file it names (`crate::engine::cache::KeyEncoder` is `src/engine/cache/mod.rs`),
//! so a file that takes an item its parent re-exports depends on that parent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The library's top-level modules, lowest first. A module may import only modules
/// before it: data flows one way, from the Dockerfile's text to the image (STYLE.md).
/// `cli` is the binary's and may import anything.
const LAYERS: &[&str] = &[
    "sys",
    "suggest",
    "diag",
    "rootpath",
    "oci",
    "context",
    "dockerfile",
    "plan",
    "progress",
    "store",
    "sandbox",
    "snapshot",
    "layer",
    "registry",
    "archive",
    "gc",
    "engine",
    "fsck",
];

/// Files longer than this are split (STYLE.md: a file holds one concept).
const MAX_LINES: usize = 800;

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// A file's module path: `src/engine/cache/key.rs` is `["engine", "cache", "key"]`;
/// `mod.rs`, `lib.rs` and `main.rs` are their directory's module.
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The file that defines module `path`, if it has a file of its own.
fn file_of(path: &[String]) -> Option<PathBuf> {
    if path.is_empty() {
        return Some(src().join("lib.rs"));
    }
    let base = path.iter().fold(src(), |p, s| p.join(s));
    let flat = base.with_extension("rs");
    if flat.is_file() {
        return Some(flat);
    }
    let nested = base.join("mod.rs");
    nested.is_file().then_some(nested)
}

/// The code of a file without comments and without its `#[cfg(test)]` modules (which
/// stand at the end of a file by the house style).
fn code_of(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let end = (0..lines.len())
        .find(|&i| {
            lines[i].trim_start().starts_with("#[cfg(test)]")
                && lines[i + 1..]
                    .iter()
                    .take(2)
                    .any(|l| l.contains("mod tests"))
        })
        .unwrap_or(lines.len());
    lines[..end]
        .iter()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module paths a file's code names, resolved from `module` (the file's own module;
/// for `mod.rs` its directory's): `crate::a::b`, `super::x`, `self::x`, and in a
/// directory's module the paths through its child modules (`pub use builder::Builder`,
/// `run::prepare(…)` in `mod.rs`).
fn imports(module: &[String], is_dir_module: bool, code: &str) -> Vec<Vec<String>> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = Vec::new();
    // `super` of a file `a/b.rs` (module a::b) is a; of `a/b/mod.rs` (module a::b) also a.
    let parent: Vec<String> = module[..module.len().saturating_sub(1)].to_vec();
    let children: BTreeSet<String> = if is_dir_module {
        let dir = module.iter().fold(src(), |p, s| p.join(s));
        std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| {
                    let p = e.ok()?.path();
                    let name = p.file_stem()?.to_string_lossy().to_string();
                    (name != "mod").then_some(name)
                })
                .collect()
            })
            .unwrap_or_default()
    } else {
        BTreeSet::new()
    };
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        // A path starts at an identifier not preceded by another path segment.
        if !ident(bytes[i]) || (i > 0 && (ident(bytes[i - 1]) || bytes[i - 1] == ':')) {
            i += 1;
            continue;
        }
        let mut j = i;
        let mut segments = Vec::new();
        loop {
            let start = j;
            while j < bytes.len() && ident(bytes[j]) {
                j += 1;
            }
            segments.push(bytes[start..j].iter().collect::<String>());
            if j + 2 < bytes.len() && bytes[j] == ':' && bytes[j + 1] == ':' && ident(bytes[j + 2])
            {
                j += 2;
            } else {
                break;
            }
        }
        // `x::{a, b::c}` names `x::a` and `x::b::c`; `x::*` names module `x`.
        let mut paths = vec![segments.clone()];
        let grouped = j + 2 < bytes.len()
            && bytes[j] == ':'
            && bytes[j + 1] == ':'
            && matches!(bytes[j + 2], '{' | '*');
        if grouped && bytes[j + 2] == '{' {
            let close = (j + 3..bytes.len())
                .find(|&k| bytes[k] == '}')
                .unwrap_or(bytes.len());
            let inner: String = bytes[j + 3..close].iter().collect();
            paths = inner
                .split(',')
                .map(|item| {
                    let item: String = item
                        .trim()
                        .chars()
                        .take_while(|c| ident(*c) || *c == ':')
                        .collect();
                    segments
                        .iter()
                        .cloned()
                        .chain(
                            item.split("::")
                                .filter(|p| !p.is_empty() && *p != "self")
                                .map(str::to_string),
                        )
                        .collect()
                })
                .collect();
            j = close;
        }
        for segments in paths {
            // A bare `super`, `self` or `crate` is a visibility (`pub(super)`), not a path.
            if segments.len() < 2 {
                continue;
            }
            let resolved = match segments[0].as_str() {
                "crate" => Some(segments[1..].to_vec()),
                "super" => {
                    let mut base = parent.clone();
                    let mut rest = &segments[1..];
                    while rest.first().map(String::as_str) == Some("super") {
                        base.pop();
                        rest = &rest[1..];
                    }
                    Some(base.into_iter().chain(rest.iter().cloned()).collect())
                }
                "self" => Some(module.iter().chain(&segments[1..]).cloned().collect()),
                first if children.contains(first) => {
                    Some(module.iter().chain(&segments).cloned().collect())
                }
                _ => None,
            };
            if let Some(path) = resolved
                && !path.is_empty()
            {
                out.push(path);
            }
        }
        i = j;
    }
    out
}

/// The deepest file along `path` (the module an item lives in).
fn target_file(path: &[String]) -> Option<PathBuf> {
    (1..=path.len()).rev().find_map(|n| file_of(&path[..n]))
}

struct Crate {
    /// File → the files it imports from.
    edges: BTreeMap<PathBuf, BTreeSet<PathBuf>>,
    /// File → its text.
    texts: BTreeMap<PathBuf, String>,
}

fn read_crate() -> Crate {
    let mut edges = BTreeMap::new();
    let mut texts = BTreeMap::new();
    for file in rust_files(&src()) {
        let text = std::fs::read_to_string(&file).unwrap();
        let module = module_of(&file);
        let name = file.file_name().unwrap().to_string_lossy();
        let is_dir_module = matches!(name.as_ref(), "mod.rs" | "lib.rs" | "main.rs");
        let mut to = BTreeSet::new();
        for path in imports(&module, is_dir_module, &code_of(&text)) {
            if let Some(target) = target_file(&path)
                && target != file
                && !target.ends_with("lib.rs")
            {
                to.insert(target);
            }
        }
        edges.insert(file.clone(), to);
        texts.insert(file, text);
    }
    Crate { edges, texts }
}

fn rel(p: &Path) -> String {
    p.strip_prefix(src().parent().unwrap())
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn no_file_imports_itself_through_others() {
    let krate = read_crate();
    // Depth-first search with colours; a grey node reached again closes a cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour: BTreeMap<&PathBuf, Colour> =
        krate.edges.keys().map(|k| (k, Colour::White)).collect();
    let mut cycles = Vec::new();
    fn visit<'a>(
        node: &'a PathBuf,
        edges: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        colour: &mut BTreeMap<&'a PathBuf, Colour>,
        stack: &mut Vec<&'a PathBuf>,
        cycles: &mut Vec<String>,
    ) {
        colour.insert(node, Colour::Grey);
        stack.push(node);
        for next in &edges[node] {
            match colour.get(next).copied().unwrap_or(Colour::Black) {
                Colour::White => visit(next, edges, colour, stack, cycles),
                Colour::Grey => {
                    let from = stack.iter().position(|n| *n == next).unwrap();
                    let names: Vec<String> = stack[from..]
                        .iter()
                        .chain(std::iter::once(&next))
                        .map(|p| rel(p))
                        .collect();
                    cycles.push(names.join(" -> "));
                }
                Colour::Black => {}
            }
        }
        stack.pop();
        colour.insert(node, Colour::Black);
    }
    let nodes: Vec<&PathBuf> = krate.edges.keys().collect();
    for node in nodes {
        if colour[node] == Colour::White {
            visit(
                node,
                &krate.edges,
                &mut colour,
                &mut Vec::new(),
                &mut cycles,
            );
        }
    }
    assert!(
        cycles.is_empty(),
        "import cycles (each file imports the next):\n{}",
        cycles.join("\n")
    );
}

#[test]
fn modules_import_only_lower_layers() {
    let krate = read_crate();
    let top = |f: &Path| module_of(f).first().cloned().unwrap_or_default();
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    let mut wrong = Vec::new();
    for (file, to) in &krate.edges {
        let from = top(file);
        if from.is_empty() || from == "cli" {
            continue;
        }
        let Some(r) = rank(&from) else {
            wrong.push(format!(
                "{}: module {from} is not in LAYERS (tests/architecture.rs): place it",
                rel(file)
            ));
            continue;
        };
        for target in to {
            let m = top(target);
            if m == from || m.is_empty() {
                continue;
            }
            match rank(&m) {
                Some(t) if t < r => {}
                _ => wrong.push(format!(
                    "{} imports {} ({from} is below {m})",
                    rel(file),
                    rel(target)
                )),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn files_stay_short() {
    let krate = read_crate();
    let long: Vec<String> = krate
        .texts
        .iter()
        .filter(|(_, t)| t.lines().count() > MAX_LINES)
        .map(|(f, t)| format!("{}: {} lines", rel(f), t.lines().count()))
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines (split them by concept):\n{}",
        long.join("\n")
    );
}

#[test]
fn unsafe_only_in_sys() {
    let krate = read_crate();
    let sys = src().join("sys");
    let outside: Vec<String> = krate
        .texts
        .iter()
        .filter(|(f, _)| !f.starts_with(&sys))
        .filter(|(_, t)| {
            code_of(t)
                .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .any(|w| w == "unsafe")
        })
        .map(|(f, _)| rel(f))
        .collect();
    assert!(outside.is_empty(), "`unsafe` outside src/sys: {outside:?}");
}

/// The checker itself: a cycle it is shown is a cycle it finds, and paths resolve to the
/// files that define them.
#[test]
fn the_checker_sees_paths() {
    let m = |s: &str| s.split("::").map(str::to_string).collect::<Vec<_>>();
    let code = "use super::cache::KeyEncoder;\nuse crate::oci::digest::Digest;\nfn f() { crate::diag::chain(&e); }";
    let found = imports(&m("engine::step::run"), false, code);
    assert!(found.contains(&m("engine::step::cache::KeyEncoder")));
    assert!(found.contains(&m("oci::digest::Digest")));
    assert!(found.contains(&m("diag::chain")));
    assert_eq!(
        target_file(&m("engine::cache::KeyEncoder")),
        Some(src().join("engine/cache/mod.rs"))
    );
    assert_eq!(
        target_file(&m("oci::digest::Digest")),
        Some(src().join("oci/digest.rs"))
    );
    let children = imports(&m("engine"), true, "pub use builder::{Builder, Outcome};");
    assert_eq!(
        children,
        vec![m("engine::builder::Builder"), m("engine::builder::Outcome")]
    );
    let group = imports(
        &m("engine::step::runner"),
        false,
        "use super::{copy, run::X};",
    );
    assert_eq!(
        group,
        vec![m("engine::step::copy"), m("engine::step::run::X")]
    );
    assert!(
        imports(
            &m("a::b"),
            false,
            "pub(super) struct S; pub(crate) fn f() {}"
        )
        .is_empty()
    );
    assert_eq!(
        code_of("use a::b;\n#[cfg(test)]\npub(super) mod tests {\nuse c::d;\n}"),
        "use a::b;"
    );
}
