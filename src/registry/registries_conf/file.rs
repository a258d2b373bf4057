//! One registries.conf file: TOML text → a validated [`FileConf`], with every error naming
//! the file, the line and column, and the key (containers-registries.conf(5); c/image
//! `sysregistriesv2.loadConfigFile` + `postProcessRegistries`, `shortnames.go`).
//!
//! Owns: the TOML schema, the version 1 → version 2 conversion, and the per-file checks
//! (prefix/location forms, `pull-from-mirror` values, conflicting `insecure`/`blocked` for
//! one location, alias forms). Must not read files or merge files: `sources.rs` decides
//! which files and in which order, and merges what this returns.
//!
//! Unknown keys are ignored, as c/image ignores them (only a debug log there): files written
//! for newer podman (`credential-helpers`, `additional-layer-store-auth-helper`, …) must not
//! stop rbuild. `credential-helpers` in particular is accepted and not used: credentials
//! come from `credentials.rs`, which reads the files those helpers default to.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::prefix::{Prefix, clean_location};
use super::{
    Alias, ConfigError, Mirror, Position, PullFromMirror, RegistryEntry, ShortNameMode,
    is_short_name,
};
use crate::oci::reference::Reference;

/// What one file says. `None`/absent means "not set here", so that a later drop-in only
/// overrides what it sets (containers-registries.conf.d(5)).
#[derive(Debug, Default)]
pub(super) struct FileConf {
    pub(super) search: Option<(Vec<String>, Position)>,
    pub(super) short_name_mode: Option<ShortNameMode>,
    /// `None` as the value erases an alias set by an earlier file (`"name" = ""`).
    pub(super) aliases: Vec<(String, Option<Alias>)>,
    /// One table per prefix: the first wins within a file, as in c/image.
    pub(super) registries: Vec<RegistryEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct FileToml {
    unqualified_search_registries: Option<Spanned<Vec<Spanned<String>>>>,
    short_name_mode: Option<Spanned<String>>,
    aliases: Option<BTreeMap<String, Spanned<String>>>,
    registry: Option<Vec<Spanned<RegistryToml>>>,
    /// Version 1: `[registries.search]`, `[registries.insecure]`, `[registries.block]`.
    registries: Option<Spanned<V1Toml>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RegistryToml {
    prefix: Option<Spanned<String>>,
    location: Option<Spanned<String>>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    mirror_by_digest_only: bool,
    #[serde(default)]
    mirror: Vec<Spanned<MirrorToml>>,
    /// Only valid on a mirror; read here to reject it with a clear message.
    pull_from_mirror: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct MirrorToml {
    location: Option<Spanned<String>>,
    #[serde(default)]
    insecure: bool,
    pull_from_mirror: Option<Spanned<String>>,
}

#[derive(Deserialize)]
struct V1Toml {
    search: Option<V1List>,
    insecure: Option<V1List>,
    block: Option<V1List>,
}

#[derive(Deserialize)]
struct V1List {
    #[serde(default)]
    registries: Vec<Spanned<String>>,
}

/// Turns byte offsets of one file into [`Position`]s and builds errors.
struct Locator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Locator<'_> {
    fn at(&self, offset: usize) -> Position {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            path: self.path.to_path_buf(),
            line,
            column: before[line_start..].chars().count() + 1,
        }
    }

    fn invalid(
        &self,
        offset: usize,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::InvalidValue {
            at: self.at(offset),
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Parse and check one file. `allow_v1` is false for drop-ins, which must use version 2
/// (containers-registries.conf.d(5)).
pub(super) fn parse_file(text: &str, path: &Path, allow_v1: bool) -> Result<FileConf, ConfigError> {
    let loc = Locator { path, text };
    let toml: FileToml = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        let at = loc.at(offset);
        let line = text
            .lines()
            .nth(at.line - 1)
            .unwrap_or_default()
            .to_string();
        ConfigError::ParseToml {
            key: key_at(text, at.line),
            at,
            message: e.message().trim_end().to_string(),
            line,
        }
    })?;

    if let Some(v1) = toml.registries {
        let v2_present = toml.unqualified_search_registries.is_some()
            || toml.short_name_mode.is_some()
            || toml.aliases.is_some()
            || toml.registry.is_some();
        if !allow_v1 {
            return Err(ConfigError::V1DropIn {
                at: loc.at(v1.span().start),
            });
        }
        if v2_present {
            return Err(ConfigError::MixedVersions {
                at: loc.at(v1.span().start),
            });
        }
        return convert_v1(&loc, v1.into_inner());
    }

    let mut conf = FileConf::default();
    if let Some(list) = toml.unqualified_search_registries {
        let at = loc.at(list.span().start);
        let mut registries = Vec::new();
        for (i, entry) in list.into_inner().into_iter().enumerate() {
            registries.push(search_registry(&loc, i, &entry)?);
        }
        conf.search = Some((registries, at));
    }
    if let Some(mode) = toml.short_name_mode {
        conf.short_name_mode = match mode.get_ref().as_str() {
            // An empty value means "not set" (c/image `loadConfigFile`).
            "" => None,
            "enforcing" => Some(ShortNameMode::Enforcing),
            "permissive" => Some(ShortNameMode::Permissive),
            "disabled" => Some(ShortNameMode::Disabled),
            other => {
                return Err(loc.invalid(
                    mode.span().start,
                    "short-name-mode",
                    format!("{other:?} is not one of \"enforcing\", \"permissive\", \"disabled\""),
                ));
            }
        };
    }
    for (name, value) in toml.aliases.unwrap_or_default() {
        conf.aliases.push(alias(&loc, name, value)?);
    }
    let mut entries = Vec::new();
    for (i, table) in toml.registry.unwrap_or_default().into_iter().enumerate() {
        entries.push(registry(&loc, i, table)?);
    }
    check_conflicts(&entries)?;
    conf.registries = first_per_prefix(entries);
    Ok(conf)
}

/// The key an error on 1-based `line` is about, as `registry[1].mirror[0].insecure`:
/// the table headers above it (counting `[[array]]` entries) and the key before `=` on the
/// line. Best effort for messages only: a value continued over several lines gives just the
/// table, and anything unreadable gives `""`.
fn key_at(text: &str, line: usize) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut table = String::new();
    for source in text.lines().take(line.saturating_sub(1)) {
        let source = source.trim();
        let (name, array) = if let Some(rest) = source.strip_prefix("[[") {
            (rest.split("]]").next().unwrap_or_default(), true)
        } else if let Some(rest) = source.strip_prefix('[') {
            (rest.split(']').next().unwrap_or_default(), false)
        } else {
            continue;
        };
        let name: String = name
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '"')
            .collect();
        if array {
            *counts.entry(name.clone()).or_default() += 1;
            let nested = format!("{name}.");
            counts.retain(|k, _| !k.starts_with(&nested));
        }
        let mut path = String::new();
        let mut prefix = String::new();
        for part in name.split('.') {
            if !prefix.is_empty() {
                prefix.push('.');
                path.push('.');
            }
            prefix.push_str(part);
            path.push_str(part);
            if let Some(n) = counts.get(&prefix) {
                path.push_str(&format!("[{}]", n - 1));
            }
        }
        table = path;
    }
    let this = text
        .lines()
        .nth(line.saturating_sub(1))
        .unwrap_or_default()
        .trim();
    let key = match this.split_once('=') {
        Some((key, _)) if !this.starts_with('[') => key.trim().trim_matches('"'),
        _ => "",
    };
    match (table.is_empty(), key.is_empty()) {
        (_, true) => table,
        (true, false) => key.to_string(),
        (false, false) => format!("{table}.{key}"),
    }
}

fn search_registry(
    loc: &Locator,
    i: usize,
    entry: &Spanned<String>,
) -> Result<String, ConfigError> {
    let key = format!("unqualified-search-registries[{i}]");
    let bad = |message: String| loc.invalid(entry.span().start, &key, message);
    let host = clean_location(entry.get_ref()).map_err(bad)?;
    // Each entry is prepended to a short name, so it must read as a registry host: a bare
    // `myregistry/busybox` would be a Docker Hub namespace.
    if host.contains('/') || Reference::from_parts(&host, "x", None, None).is_err() {
        return Err(bad(format!(
            "{host:?} is not a registry host[:port] (a registry needs a '.', a ':port', or to be localhost)"
        )));
    }
    Ok(host)
}

/// `[aliases]`: `"name" = "registry/repo"`, or `""` to erase (man page "Short-Name
/// Aliasing"; c/image `validateShortName`, `parseShortNameValue`).
fn alias(
    loc: &Locator,
    name: String,
    value: Spanned<String>,
) -> Result<(String, Option<Alias>), ConfigError> {
    let key = format!("aliases.{name:?}");
    let at = value.span().start;
    let short_ok =
        is_short_name(&name) && !name.contains([':', '@']) && Reference::parse(&name).is_ok();
    if !short_ok {
        return Err(loc.invalid(
            at,
            &key,
            format!("alias name {name:?} must be a short name: no registry host, tag or digest"),
        ));
    }
    if value.get_ref().is_empty() {
        return Ok((name, None));
    }
    let text = value.get_ref();
    let target =
        Reference::parse(text).map_err(|e| loc.invalid(at, &key, crate::diag::chain(&e)))?;
    if is_short_name(text) || target.tag().is_some() || target.digest().is_some() {
        return Err(loc.invalid(
            at,
            &key,
            format!("alias value {text:?} must be registry/repository, without tag or digest"),
        ));
    }
    let at = loc.at(at);
    Ok((name, Some(Alias { target, at })))
}

fn registry(
    loc: &Locator,
    i: usize,
    table: Spanned<RegistryToml>,
) -> Result<RegistryEntry, ConfigError> {
    let key = format!("registry[{i}]");
    let table_at = table.span().start;
    let table = table.into_inner();
    if let Some(pfm) = &table.pull_from_mirror {
        return Err(loc.invalid(
            pfm.span().start,
            format!("{key}.pull-from-mirror"),
            "is only allowed in a [[registry.mirror]] table, not on the registry itself",
        ));
    }
    let location = match &table.location {
        Some(l) => Some(
            clean_location(l.get_ref())
                .map_err(|m| loc.invalid(l.span().start, format!("{key}.location"), m))?,
        ),
        None => None,
    };
    let prefix = match (&table.prefix, &location) {
        (Some(p), _) => Prefix::parse(p.get_ref())
            .map_err(|m| loc.invalid(p.span().start, format!("{key}.prefix"), m))?,
        // "the prefix field can be missing; if so, it defaults to the value of the location
        // field".
        (None, Some(l)) => {
            Prefix::parse(l).map_err(|m| loc.invalid(table_at, format!("{key}.location"), m))?
        }
        (None, None) => {
            return Err(loc.invalid(table_at, key, "needs a `location` or a `prefix`"));
        }
    };
    if location.is_none() && !prefix.is_wildcard() {
        return Err(loc.invalid(
            table_at,
            format!("{key}.location"),
            "may only be left out when the prefix is a wildcard (*.example.com)",
        ));
    }
    let mut mirrors = Vec::new();
    for (j, mirror) in table.mirror.into_iter().enumerate() {
        let mkey = format!("{key}.mirror[{j}]");
        let mirror_at = mirror.span().start;
        let mirror = mirror.into_inner();
        let location = match &mirror.location {
            Some(l) => clean_location(l.get_ref())
                .map_err(|m| loc.invalid(l.span().start, format!("{mkey}.location"), m))?,
            None => return Err(loc.invalid(mirror_at, format!("{mkey}.location"), "is missing")),
        };
        let pull_from_mirror = match &mirror.pull_from_mirror {
            None => PullFromMirror::All,
            Some(value) => {
                let fail = |m: String| {
                    loc.invalid(value.span().start, format!("{mkey}.pull-from-mirror"), m)
                };
                if table.mirror_by_digest_only && !value.get_ref().is_empty() {
                    return Err(fail(format!(
                        "cannot be set when {key}.mirror-by-digest-only is true (c/image rejects the combination)"
                    )));
                }
                match value.get_ref().as_str() {
                    "" | "all" => PullFromMirror::All,
                    "digest-only" => PullFromMirror::DigestOnly,
                    "tag-only" => PullFromMirror::TagOnly,
                    other => {
                        return Err(fail(format!(
                            "{other:?} is not one of \"all\", \"digest-only\", \"tag-only\""
                        )));
                    }
                }
            }
        };
        mirrors.push(Mirror {
            location,
            insecure: mirror.insecure,
            pull_from_mirror,
            at: loc.at(mirror_at),
            key: mkey,
        });
    }
    Ok(RegistryEntry {
        prefix,
        location,
        insecure: table.insecure,
        blocked: table.blocked,
        mirror_by_digest_only: table.mirror_by_digest_only,
        mirrors,
        at: loc.at(table_at),
        key,
    })
}

/// c/image `postProcessRegistries`: one location (or, without one, one wildcard prefix)
/// cannot be both secure and insecure, or both blocked and not.
fn check_conflicts(entries: &[RegistryEntry]) -> Result<(), ConfigError> {
    let id = |e: &RegistryEntry| {
        e.location
            .clone()
            .unwrap_or_else(|| e.prefix.as_str().to_string())
    };
    for (i, a) in entries.iter().enumerate() {
        for b in &entries[..i] {
            if id(a) != id(b) {
                continue;
            }
            let setting = if a.insecure != b.insecure {
                "insecure"
            } else if a.blocked != b.blocked {
                "blocked"
            } else {
                continue;
            };
            return Err(ConfigError::ConflictingRegistry {
                at: a.at.clone(),
                location: id(a),
                setting,
                other: b.at.clone(),
            });
        }
    }
    Ok(())
}

/// "the first longest prefix always wins, rendering later items with the same prefix
/// non-existent" (c/image `postProcessRegistries`).
fn first_per_prefix(entries: Vec<RegistryEntry>) -> Vec<RegistryEntry> {
    let mut out: Vec<RegistryEntry> = Vec::new();
    for entry in entries {
        if !out.iter().any(|e| e.prefix == entry.prefix) {
            out.push(entry);
        }
    }
    out
}

/// c/image `ConvertToV2`: search → `unqualified-search-registries`; each blocked or
/// insecure registry becomes a table whose prefix and location are that registry.
fn convert_v1(loc: &Locator, v1: V1Toml) -> Result<FileConf, ConfigError> {
    let mut conf = FileConf::default();
    if let Some(search) = v1.search {
        let at = search.registries.first().map_or(0, |r| r.span().start);
        let mut registries = Vec::new();
        for (i, entry) in search.registries.iter().enumerate() {
            let host = search_registry(loc, i, entry)
                .map_err(|e| rename_key(e, "registries.search.registries"))?;
            registries.push(host);
        }
        conf.search = Some((registries, loc.at(at)));
    }
    let lists = [("block", v1.block), ("insecure", v1.insecure)];
    for (table, list) in lists {
        for (i, entry) in list
            .map(|l| l.registries)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let key = format!("registries.{table}.registries[{i}]");
            let location = clean_location(entry.get_ref())
                .map_err(|m| loc.invalid(entry.span().start, &key, m))?;
            let prefix =
                Prefix::parse(&location).map_err(|m| loc.invalid(entry.span().start, &key, m))?;
            let existing = conf.registries.iter_mut().find(|e| e.prefix == prefix);
            let reg = match existing {
                Some(reg) => reg,
                None => {
                    conf.registries.push(RegistryEntry {
                        prefix,
                        location: Some(location),
                        insecure: false,
                        blocked: false,
                        mirror_by_digest_only: false,
                        mirrors: Vec::new(),
                        at: loc.at(entry.span().start),
                        key,
                    });
                    conf.registries.last_mut().expect("just pushed")
                }
            };
            match table {
                "block" => reg.blocked = true,
                _ => reg.insecure = true,
            }
        }
    }
    Ok(conf)
}

fn rename_key(err: ConfigError, base: &str) -> ConfigError {
    match err {
        ConfigError::InvalidValue { at, key, message } => ConfigError::InvalidValue {
            at,
            key: key.replace("unqualified-search-registries", base),
            message,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FileConf, ConfigError> {
        parse_file(text, Path::new("/etc/containers/registries.conf"), true)
    }

    /// `name: TOML => "the whole error message"` — each names file, line, column and key.
    macro_rules! rejects {
        ($($name:ident: $text:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                match parse($text) {
                    Ok(conf) => panic!("accepted: {conf:?}"),
                    Err(err) => assert_eq!(err.to_string(), $want),
                }
            }
        )*};
    }

    const F: &str = "/etc/containers/registries.conf";

    rejects! {
        bad_toml: "[[registry]\nlocation = \"a.io\"\n" =>
            format!("{F}:1:12: invalid registries configuration: unclosed array table, expected `]`\n  | [[registry]");
        duplicate_key: "[aliases]\n\"a\" = \"quay.io/a\"\n\"a\" = \"quay.io/b\"\n" =>
            format!("{F}:3:1: aliases.a: invalid registries configuration: duplicate key\n  | \"a\" = \"quay.io/b\"");
        wrong_type: "[[registry]]\nlocation = \"a.io\"\ninsecure = \"yes\"\n" =>
            format!("{F}:3:12: registry[0].insecure: invalid registries configuration: invalid type: string \"yes\", expected a boolean\n  | insecure = \"yes\"");
        wrong_type_in_second_mirror: "[[registry]]\nlocation = \"a.io\"\n[[registry]]\nlocation = \"b.io\"\n[[registry.mirror]]\nlocation = \"m\"\n[[registry.mirror]]\n\"insecure\" = 1\n" =>
            format!("{F}:8:14: registry[1].mirror[1].insecure: invalid registries configuration: invalid type: integer `1`, expected a boolean\n  | \"insecure\" = 1");
        wrong_type_top_level: "\nunqualified-search-registries = \"docker.io\"\n" =>
            format!("{F}:2:33: unqualified-search-registries: invalid registries configuration: invalid type: string \"docker.io\", expected a sequence\n  | unqualified-search-registries = \"docker.io\"");
        scheme_in_location: "[[registry]]\nlocation = \"https://a.io\"\n" =>
            format!("{F}:2:12: registry[0].location: \"https://a.io\": URI schemes are not supported; write host[:port][/path] (and `insecure = true` for plain HTTP)");
        no_location_no_prefix: "[[registry]]\ninsecure = true\n" =>
            format!("{F}:1:1: registry[0]: needs a `location` or a `prefix`");
        prefix_without_location: "[[registry]]\nprefix = \"a.io\"\n" =>
            format!("{F}:1:1: registry[0].location: may only be left out when the prefix is a wildcard (*.example.com)");
        bad_wildcard: "[[registry]]\nprefix = \"*.a.io/x\"\nlocation = \"b.io\"\n" =>
            format!("{F}:2:10: registry[0].prefix: wildcard prefix \"*.a.io/x\" must have the form *.example.com (no port, path, tag or digest, one leading *)");
        pull_from_mirror_on_primary: "[[registry]]\nlocation = \"a.io\"\npull-from-mirror = \"all\"\n" =>
            format!("{F}:3:20: registry[0].pull-from-mirror: is only allowed in a [[registry.mirror]] table, not on the registry itself");
        pull_from_mirror_unknown: "[[registry]]\nlocation = \"a.io\"\n[[registry.mirror]]\nlocation = \"m.io\"\npull-from-mirror = \"sometimes\"\n" =>
            format!("{F}:5:20: registry[0].mirror[0].pull-from-mirror: \"sometimes\" is not one of \"all\", \"digest-only\", \"tag-only\"");
        pull_from_mirror_with_digest_only: "[[registry]]\nlocation = \"a.io\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m.io\"\npull-from-mirror = \"tag-only\"\n" =>
            format!("{F}:6:20: registry[0].mirror[0].pull-from-mirror: cannot be set when registry[0].mirror-by-digest-only is true (c/image rejects the combination)");
        mirror_without_location: "[[registry]]\nlocation = \"a.io\"\n[[registry.mirror]]\ninsecure = true\n" =>
            format!("{F}:3:1: registry[0].mirror[0].location: is missing");
        short_name_mode_unknown: "short-name-mode = \"strict\"\n" =>
            format!("{F}:1:19: short-name-mode: \"strict\" is not one of \"enforcing\", \"permissive\", \"disabled\"");
        search_not_a_host: "unqualified-search-registries = [\"quay.io\", \"myregistry\"]\n" =>
            format!("{F}:1:45: unqualified-search-registries[1]: \"myregistry\" is not a registry host[:port] (a registry needs a '.', a ':port', or to be localhost)");
        search_with_path: "unqualified-search-registries = [\"quay.io/org\"]\n" =>
            format!("{F}:1:34: unqualified-search-registries[0]: \"quay.io/org\" is not a registry host[:port] (a registry needs a '.', a ':port', or to be localhost)");
        alias_name_qualified: "[aliases]\n\"quay.io/app\" = \"quay.io/org/app\"\n" =>
            format!("{F}:2:17: aliases.\"quay.io/app\": alias name \"quay.io/app\" must be a short name: no registry host, tag or digest");
        alias_name_localhost: "[aliases]\n\"localhost/app\" = \"quay.io/org/app\"\n" =>
            format!("{F}:2:19: aliases.\"localhost/app\": alias name \"localhost/app\" must be a short name: no registry host, tag or digest");
        alias_name_tag: "[aliases]\n\"app:1\" = \"quay.io/org/app\"\n" =>
            format!("{F}:2:11: aliases.\"app:1\": alias name \"app:1\" must be a short name: no registry host, tag or digest");
        alias_value_short: "[aliases]\n\"app\" = \"org/app\"\n" =>
            format!("{F}:2:9: aliases.\"app\": alias value \"org/app\" must be registry/repository, without tag or digest");
        alias_value_tag: "[aliases]\n\"app\" = \"quay.io/org/app:1\"\n" =>
            format!("{F}:2:9: aliases.\"app\": alias value \"quay.io/org/app:1\" must be registry/repository, without tag or digest");
        conflicting_insecure: "[[registry]]\nprefix = \"a.io/x\"\nlocation = \"m.io\"\n[[registry]]\nprefix = \"a.io/y\"\nlocation = \"m.io\"\ninsecure = true\n" =>
            format!("{F}:4:1: registry \"m.io\" is defined more than once with conflicting `insecure` settings (other definition at {F}:1:1)");
        mixed_versions: "unqualified-search-registries = [\"a.io\"]\n[registries.search]\nregistries = [\"b.io\"]\n" =>
            format!("{F}:2:2: mixes the version 1 [registries.*] tables with version 2 settings; convert the file to version 2 (containers-registries.conf(5))");
        v1_bad_entry: "[registries.insecure]\nregistries = [\"http://a.io\"]\n" =>
            format!("{F}:2:15: registries.insecure.registries[0]: \"http://a.io\": URI schemes are not supported; write host[:port][/path] (and `insecure = true` for plain HTTP)");
    }

    #[test]
    fn v1_is_converted() {
        let conf = parse(
            "[registries.search]\nregistries = ['r1.io', 'r2.io']\n\
             [registries.insecure]\nregistries = ['r3.io', 'r4.io']\n\
             [registries.block]\nregistries = ['bad.io', 'r4.io']\n",
        )
        .unwrap();
        assert_eq!(conf.search.as_ref().unwrap().0, ["r1.io", "r2.io"]);
        let got: Vec<(&str, bool, bool)> = conf
            .registries
            .iter()
            .map(|e| (e.prefix.as_str(), e.insecure, e.blocked))
            .collect();
        // Blocked ones first, then insecure ones (c/image `ConvertToV2` order), merged per host.
        assert_eq!(
            got,
            [
                ("bad.io", false, true),
                ("r4.io", true, true),
                ("r3.io", true, false)
            ]
        );
        assert_eq!(conf.registries[0].location.as_deref(), Some("bad.io"));
    }

    #[test]
    fn first_table_per_prefix_wins_and_unknown_keys_are_ignored() {
        let conf = parse(
            "credential-helpers = [\"containers-auth.json\"]\nfuture-key = 1\n\
             [[registry]]\nprefix = \"a.io\"\nlocation = \"one.io\"\n\
             [[registry]]\nprefix = \"a.io\"\nlocation = \"two.io\"\n",
        )
        .unwrap();
        assert_eq!(conf.registries.len(), 1);
        assert_eq!(conf.registries[0].location.as_deref(), Some("one.io"));
    }

    #[test]
    fn prefix_defaults_to_location_and_mirrors_are_kept_in_order() {
        let conf = parse(
            "[[registry]]\nlocation = \"a.io/ns/\"\n\
             [[registry.mirror]]\nlocation = \"m1.io\"\n\
             [[registry.mirror]]\nlocation = \"m2.io\"\ninsecure = true\npull-from-mirror = \"digest-only\"\n",
        )
        .unwrap();
        let entry = &conf.registries[0];
        assert_eq!(entry.prefix, Prefix::Exact("a.io/ns".into()));
        let mirrors: Vec<(&str, bool, PullFromMirror, &str)> = entry
            .mirrors
            .iter()
            .map(|m| {
                (
                    m.location.as_str(),
                    m.insecure,
                    m.pull_from_mirror,
                    m.key.as_str(),
                )
            })
            .collect();
        assert_eq!(
            mirrors,
            [
                ("m1.io", false, PullFromMirror::All, "registry[0].mirror[0]"),
                (
                    "m2.io",
                    true,
                    PullFromMirror::DigestOnly,
                    "registry[0].mirror[1]"
                ),
            ]
        );
        assert_eq!(
            (entry.mirrors[1].at.line, entry.mirrors[1].at.column),
            (5, 1)
        );
    }

    #[test]
    fn empty_alias_value_erases() {
        let conf = parse("[aliases]\n\"app\" = \"\"\n\"tool\" = \"docker.io/tool\"\n").unwrap();
        let got: Vec<(&str, Option<String>)> = conf
            .aliases
            .iter()
            .map(|(name, alias)| (name.as_str(), alias.as_ref().map(|a| a.target.to_string())))
            .collect();
        assert_eq!(
            got,
            [
                ("app", None),
                ("tool", Some("docker.io/library/tool".into()))
            ]
        );
    }
}
