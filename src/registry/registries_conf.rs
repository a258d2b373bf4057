//! Registry configuration compatible with podman and buildah: containers-registries.conf(5)
//! version 2 (and the deprecated version 1, converted), with the drop-in directories of
//! containers-registries.conf.d(5). Answers three questions for the HTTP client:
//! `RegistriesConf::resolve` (where to pull a reference from, mirrors first),
//! [`RegistriesConf::push_endpoint`] (where to push it) and
//! `RegistriesConf::expand_short_name` (what `busybox` may mean).
//!
//! Owns: the model of the merged configuration and those three answers, plus `api_host`,
//! the single place that knows Docker Hub's API is served by `registry-1.docker.io`. Must not
//! open connections, prompt, or write files. Which files are read is `config/sources.rs`;
//! the TOML schema and per-file checks are `config/file.rs`; prefix matching is
//! `config/prefix.rs`; short names are `config/short_name.rs`.
//!
//! Out of scope, on purpose: the machine-written short-name alias cache
//! (`/var/cache/containers/short-name-aliases.conf`, `$HOME/.cache/containers/…`), which
//! podman writes after a prompted choice (we never prompt, so never record, and do not read
//! it either); `credential-helpers` (accepted, unused: see `file.rs`); registries.d(5)
//! signature lookaside; certs.d(5).

mod file;
mod prefix;
mod short_name;
mod sources;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::oci::reference::{DOCKER_HUB, DOCKER_HUB_LEGACY, Reference, ReferenceError};
use prefix::Prefix;
use short_name::is_short_name;
pub(crate) use sources::ConfigSources;

/// The host that serves the registry API for a registry name. Docker Hub is named
/// `docker.io` (and, in older references, `index.docker.io`) but its v2 API lives at
/// `registry-1.docker.io` (moby `registry/config.go` `DefaultRegistryHost`; containerd
/// `docker/resolver.go`). This is the only place rbuild makes that mapping: configuration,
/// credentials and logs keep using `docker.io`.
pub(crate) fn api_host(registry: &str) -> &str {
    match registry {
        DOCKER_HUB | DOCKER_HUB_LEGACY => "registry-1.docker.io",
        other => other,
    }
}

/// `short-name-mode` (man page "Short-Name Aliasing: Modes"). rbuild never prompts, so
/// `Enforcing` is "error when more than one search registry could be meant" and
/// `Permissive`/`Disabled` both mean "try every search registry in order".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum ShortNameMode {
    Enforcing,
    /// The default when no file sets a mode.
    #[default]
    Permissive,
    Disabled,
}

/// `pull-from-mirror` of one `[[registry.mirror]]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PullFromMirror {
    All,
    DigestOnly,
    TagOnly,
}

/// A place in a configuration file, rendered `path:line:column`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub(crate) path: PathBuf,
    pub(crate) line: usize,
    pub(crate) column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

/// One registry to try: the host and repository to talk to, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    reference: Reference,
    insecure: bool,
    is_mirror: bool,
}

impl Endpoint {
    /// `host[:port]` as configured (`docker.io`, not its API host: see [`Endpoint::api_host`]).
    /// Also the name to look credentials up under.
    pub(crate) fn host(&self) -> &str {
        self.reference.registry()
    }

    /// Where to send HTTP requests: `api_host` of `Endpoint::host`.
    pub fn api_host(&self) -> &str {
        api_host(self.host())
    }

    /// The repository path on that host (`library/busybox`).
    pub(crate) fn repository(&self) -> &str {
        self.reference.repository()
    }

    /// The rewritten reference: host, repository and the tag/digest to request (a prefix
    /// that names a tag can rewrite the tag, so take it from here, not from the input).
    #[doc(hidden)]
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// Plain HTTP and unverified TLS are allowed (`insecure = true` for this location).
    pub fn insecure(&self) -> bool {
        self.insecure
    }

    /// A `[[registry.mirror]]`, not the primary location.
    #[doc(hidden)]
    pub fn is_mirror(&self) -> bool {
        self.is_mirror
    }
}

/// Where to pull one reference from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// In the order to try them: the usable mirrors, then the primary location. Never empty.
    pub(crate) endpoints: Vec<Endpoint>,
    /// The `[[registry]]` table that decided, if any (for logs and error messages).
    pub(crate) table: Option<Position>,
}

/// Why the registry configuration could not be read or used.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read registries configuration {}", path.display())]
    ReadFile { path: PathBuf, source: io::Error },
    #[error("cannot list registries drop-in directory {}", path.display())]
    ReadDropInDir { path: PathBuf, source: io::Error },
    /// TOML syntax or type error; `key` is our best reading of which key (empty when the
    /// line does not tell), `line` the source line.
    #[error("{at}: {key}{}invalid registries configuration: {message}\n  | {line}", if key.is_empty() { "" } else { ": " })]
    ParseToml {
        at: Position,
        key: String,
        message: String,
        line: String,
    },
    #[error("RBUILD_SHORT_NAMES={value:?}: expected docker (the default) or registries.conf")]
    ShortNamePolicy { value: String },
    #[error("{at}: {key}: {message}")]
    InvalidValue {
        at: Position,
        key: String,
        message: String,
    },
    #[error(
        "{at}: mixes the version 1 [registries.*] tables with version 2 settings; convert the file to version 2 (containers-registries.conf(5))"
    )]
    MixedVersions { at: Position },
    #[error(
        "{at}: drop-in files must use the version 2 format, not the [registries.*] tables (containers-registries.conf.d(5))"
    )]
    V1DropIn { at: Position },
    #[error(
        "{at}: registry {location:?} is defined more than once with conflicting `{setting}` settings (other definition at {other})"
    )]
    ConflictingRegistry {
        at: Position,
        location: String,
        setting: &'static str,
        other: Position,
    },
    #[error("registry {prefix:?} is blocked by {at} (blocked = true): refusing {reference}")]
    Blocked {
        reference: String,
        prefix: String,
        at: Position,
    },
    #[error(transparent)]
    RewriteReference(Box<RewriteError>),
    #[error("invalid image name {input:?}")]
    ParseReference {
        input: String,
        source: ReferenceError,
    },
    #[error(
        "short name {name:?} is ambiguous: short-name-mode is \"enforcing\" and it could come from any of {registries:?} ({at}); use a fully qualified name or add an [aliases] entry"
    )]
    AmbiguousShortName {
        name: String,
        registries: Vec<String>,
        at: Position,
    },
}

/// A `location` that, put in place of the matched prefix, does not give a valid reference.
#[derive(Debug, Error)]
#[error(
    "{at}: {key} {location:?} rewrites {reference} to {rewritten:?}, which is not a valid reference: {reason}"
)]
pub struct RewriteError {
    pub(crate) at: Position,
    pub(crate) key: String,
    pub(crate) location: String,
    pub(crate) reference: String,
    pub(crate) rewritten: String,
    pub(crate) reason: String,
}

/// The merged registries configuration. Build it with [`RegistriesConf::load_default`],
/// `RegistriesConf::load` or (one file) `RegistriesConf::parse`.
#[derive(Clone, Debug, Default)]
pub struct RegistriesConf {
    /// Whether short names follow Docker (`docker.io` only) or the files' aliases and
    /// search registries.
    short_names: ShortNames,
    /// `unqualified-search-registries` and where it was last set.
    search: Option<(Vec<String>, Position)>,
    short_name_mode: ShortNameMode,
    aliases: BTreeMap<String, Alias>,
    /// By prefix text: a drop-in replaces the table with the same prefix.
    registries: BTreeMap<String, RegistryEntry>,
    files: Vec<PathBuf>,
}

/// How a short name (`centos:7`, `team/app`) becomes a full reference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ShortNames {
    /// As the files say: `[aliases]` and `shortnames.conf`, then
    /// `unqualified-search-registries` (containers-registries.conf(5)).
    #[default]
    RegistriesConf,
    /// As Docker does: `docker.io`, `library/` for one-word names; aliases and search
    /// registries are not consulted (mirrors of docker.io still are).
    Docker,
}

impl ShortNames {
    /// The environment variable that chooses the policy.
    pub const ENV: &'static str = "RBUILD_SHORT_NAMES";

    /// `docker` (also when unset or empty) or `registries.conf`.
    pub fn from_env() -> Result<ShortNames, ConfigError> {
        match std::env::var(Self::ENV).as_deref() {
            Err(_) | Ok("") | Ok("docker") => Ok(ShortNames::Docker),
            Ok("registries.conf") => Ok(ShortNames::RegistriesConf),
            Ok(other) => Err(ConfigError::ShortNamePolicy {
                value: other.to_string(),
            }),
        }
    }
}

/// A short-name alias target: `registry/repository`, no tag, no digest.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Alias {
    target: Reference,
    at: Position,
}

/// One validated `[[registry]]` table.
#[derive(Clone, Debug)]
struct RegistryEntry {
    prefix: Prefix,
    /// `None` only for a wildcard prefix: "no reference rewrite will occur".
    location: Option<String>,
    insecure: bool,
    blocked: bool,
    mirror_by_digest_only: bool,
    mirrors: Vec<Mirror>,
    at: Position,
    key: String,
}

#[derive(Clone, Debug)]
struct Mirror {
    location: String,
    insecure: bool,
    pull_from_mirror: PullFromMirror,
    at: Position,
    key: String,
}

impl RegistriesConf {
    /// The configuration podman would use in this process's environment
    /// (`ConfigSources::from_env`).
    /// The user's registries configuration, with short names resolved as Docker resolves
    /// them unless `RBUILD_SHORT_NAMES=registries.conf` asks for the files' aliases and
    /// search registries (docs/registry.md, "Short names").
    pub fn load_default() -> Result<RegistriesConf, ConfigError> {
        let mut conf = RegistriesConf::load(&ConfigSources::from_env())?;
        conf.short_names = ShortNames::from_env()?;
        Ok(conf)
    }

    /// How short names are resolved.
    #[cfg(test)]
    pub(crate) fn with_short_names(mut self, policy: ShortNames) -> RegistriesConf {
        self.short_names = policy;
        self
    }

    /// Read and merge the files of `sources`.
    pub(crate) fn load(sources: &ConfigSources) -> Result<RegistriesConf, ConfigError> {
        sources::load(sources)
    }

    /// One file's text, as if it were the only file (version 1 allowed). `path` is only
    /// used in error messages. Public (hidden) for the fuzz targets (`fuzz/`).
    #[doc(hidden)]
    pub fn parse(text: &str, path: &std::path::Path) -> Result<RegistriesConf, ConfigError> {
        let mut conf = RegistriesConf::default();
        conf.merge(file::parse_file(text, path, true)?);
        conf.files.push(path.to_path_buf());
        Ok(conf)
    }

    /// The files that were read, in order.
    #[cfg(test)]
    pub(crate) fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// `unqualified-search-registries` after merging (may be empty).
    #[cfg(test)]
    pub(crate) fn unqualified_search_registries(&self) -> &[String] {
        self.search.as_ref().map_or(&[], |(list, _)| list)
    }

    #[cfg(test)]
    pub(crate) fn short_name_mode(&self) -> ShortNameMode {
        self.short_name_mode
    }

    /// The table whose prefix matches `name` longest (man page: "(only) the TOML table with
    /// the longest match is used"), with the matched length.
    fn find(&self, name: &str) -> Option<(&RegistryEntry, usize)> {
        self.registries
            .values()
            .filter_map(|e| e.prefix.matched_len(name).map(|len| (e, len)))
            .max_by_key(|(e, _)| e.prefix.specificity())
    }

    /// Where to pull `reference` from: the mirrors allowed for it, in configured order, then
    /// the primary location (c/image `PullSourcesFromReference`). A mirror is skipped when
    /// `mirror-by-digest-only` is set and the reference has no digest, or when its own
    /// `pull-from-mirror` is `digest-only` (reference without digest) or `tag-only` (reference
    /// with a digest). A reference no table matches is pulled from where it names, over TLS.
    pub(crate) fn resolve(&self, reference: &Reference) -> Result<Resolved, ConfigError> {
        let name = reference.to_string();
        let Some((entry, matched)) = self.find(&name) else {
            return Ok(Resolved {
                endpoints: vec![Endpoint {
                    reference: reference.clone(),
                    insecure: false,
                    is_mirror: false,
                }],
                table: None,
            });
        };
        entry.check_not_blocked(&name)?;
        let by_digest = reference.digest().is_some();
        let mut endpoints = Vec::new();
        for mirror in &entry.mirrors {
            let usable = if entry.mirror_by_digest_only {
                by_digest
            } else {
                match mirror.pull_from_mirror {
                    PullFromMirror::All => true,
                    PullFromMirror::DigestOnly => by_digest,
                    PullFromMirror::TagOnly => !by_digest,
                }
            };
            if usable {
                endpoints.push(Endpoint {
                    reference: rewrite(&name, matched, &mirror.location, &mirror.at, &mirror.key)?,
                    insecure: mirror.insecure,
                    is_mirror: true,
                });
            }
        }
        let primary = match &entry.location {
            Some(location) => rewrite(&name, matched, location, &entry.at, &entry.key)?,
            None => reference.clone(),
        };
        endpoints.push(Endpoint {
            reference: primary,
            insecure: entry.insecure,
            is_mirror: false,
        });
        Ok(Resolved {
            endpoints,
            table: Some(entry.at.clone()),
        })
    }

    /// The endpoints of [`RegistriesConf::resolve`], for the fuzz targets (`fuzz/`).
    #[doc(hidden)]
    pub fn pull_endpoints(&self, reference: &Reference) -> Result<Vec<Endpoint>, ConfigError> {
        Ok(self.resolve(reference)?.endpoints)
    }

    /// Where to push `reference`: the registry it names, never a mirror, and — as the man
    /// page says, "Redirection and mirrors are currently processed only when reading images,
    /// not when pushing" — never a `location` rewrite either (pushing `docker.io/me/app` goes
    /// to Docker Hub even when docker.io pulls are redirected to a cache). A blocked table
    /// refuses the push, as c/image's `newDockerClient` does. `insecure` is honoured only when
    /// it describes the host being pushed to: on a table that redirects elsewhere it belongs
    /// to the other location, so the push keeps TLS.
    pub fn push_endpoint(&self, reference: &Reference) -> Result<Endpoint, ConfigError> {
        let name = reference.to_string();
        let insecure = match self.find(&name) {
            None => false,
            Some((entry, _)) => {
                entry.check_not_blocked(&name)?;
                let location_host = entry
                    .location
                    .as_deref()
                    .map(|l| l.split('/').next().unwrap_or(l));
                entry.insecure && location_host.is_none_or(|host| host == reference.registry())
            }
        };
        Ok(Endpoint {
            reference: reference.clone(),
            insecure,
            is_mirror: false,
        })
    }
}

impl RegistryEntry {
    fn check_not_blocked(&self, name: &str) -> Result<(), ConfigError> {
        if self.blocked {
            return Err(ConfigError::Blocked {
                reference: name.to_string(),
                prefix: self.prefix.as_str().to_string(),
                at: self.at.clone(),
            });
        }
        Ok(())
    }
}

/// Replace the matched part of `name` by `location` and parse the result, which must come
/// back unchanged: c/image parses it with `ParseNamed`, which rejects non-canonical names
/// (`location = "docker.io"` under `prefix = "docker.io/library"` would give
/// `docker.io/busybox`, silently a different repository once normalised).
fn rewrite(
    name: &str,
    matched: usize,
    location: &str,
    at: &Position,
    key: &str,
) -> Result<Reference, ConfigError> {
    let rewritten = format!("{location}{}", &name[matched..]);
    let fail = |reason: String| {
        ConfigError::RewriteReference(Box::new(RewriteError {
            at: at.clone(),
            key: format!("{key}.location"),
            location: location.to_string(),
            reference: name.to_string(),
            rewritten: rewritten.clone(),
            reason,
        }))
    };
    let reference = Reference::parse(&rewritten).map_err(|e| fail(crate::diag::chain(&e)))?;
    if reference.to_string() != rewritten {
        return Err(fail(format!("it normalises to {reference}")));
    }
    Ok(reference)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    fn conf(text: &str) -> RegistriesConf {
        RegistriesConf::parse(text, Path::new("/t/registries.conf"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn r(text: &str) -> Reference {
        Reference::parse(text).unwrap()
    }

    /// An endpoint as `[mirror ][http ]reference`.
    fn show(e: &Endpoint) -> String {
        format!(
            "{}{}{}",
            if e.is_mirror() { "mirror " } else { "" },
            if e.insecure() { "http " } else { "" },
            e.reference()
        )
    }

    /// The same shape as the lab's drop-in (`/work/shared/lab/04-peers-config.sh`): Docker Hub
    /// mirrored by a plain-HTTP local registry that is also a registry of its own.
    const LAB: &str = r#"
        # local registry as insecure registry and docker.io mirror
        unqualified-search-registries = ["docker.io"]

        [[registry]]
        prefix = "docker.io"
        location = "docker.io"
        [[registry.mirror]]
        location = "127.0.0.1:5000"
        insecure = true

        [[registry]]
        prefix = "127.0.0.1:5000"
        location = "127.0.0.1:5000"
        insecure = true
    "#;

    /// The man page's EXAMPLE.
    const MAN_PAGE: &str = r#"
        unqualified-search-registries = ["example.com"]

        [[registry]]
        prefix = "example.com/foo"
        insecure = false
        blocked = false
        location = "internal-registry-for-example.com/bar"

        [[registry.mirror]]
        location = "example-mirror-0.local/mirror-for-foo"

        [[registry.mirror]]
        location = "example-mirror-1.local/mirrors/foo"
        insecure = true

        [[registry]]
        location = "registry.com"

        [[registry.mirror]]
        location = "mirror.registry.com"
    "#;

    const FILTERS: &str = r#"
        [[registry]]
        prefix = "digest.io"
        location = "digest.io"
        mirror-by-digest-only = true
        [[registry.mirror]]
        location = "m.digest.io"

        [[registry]]
        prefix = "mixed.io"
        location = "mixed.io"
        [[registry.mirror]]
        location = "all.mixed.io"
        [[registry.mirror]]
        location = "digest.mixed.io"
        pull-from-mirror = "digest-only"
        [[registry.mirror]]
        location = "tag.mixed.io"
        pull-from-mirror = "tag-only"
    "#;

    const PREFIXES: &str = r#"
        [[registry]]
        prefix = "example.com"
        location = "example.com"
        insecure = true

        [[registry]]
        prefix = "example.com/team"
        location = "cache.local:5000/team-cache"

        [[registry]]
        prefix = "docker.io/library/alpine"
        location = "cache.local:5000/alpine"

        [[registry]]
        prefix = "*.corp.example"
        insecure = true
        [[registry.mirror]]
        location = "corp-mirror.local/corp"

        [[registry]]
        prefix = "*.lab.example"
        location = "lab-cache.local"

        [[registry]]
        prefix = "a.lab.example"
        location = "a-cache.local"
    "#;

    /// `name: config, reference => [endpoints as shown by show()]`.
    macro_rules! resolves {
        ($($name:ident: $conf:expr, $reference:expr => [$($want:expr),* $(,)?];)*) => {$(
            #[test]
            fn $name() {
                let got = conf($conf).resolve(&r(&$reference)).unwrap_or_else(|e| panic!("{e}"));
                let got: Vec<String> = got.endpoints.iter().map(show).collect();
                let want: Vec<String> = vec![$($want.to_string()),*];
                assert_eq!(got, want);
            }
        )*};
    }

    resolves! {
        lab_hub_goes_to_the_local_mirror_first: LAB, "busybox" => [
            "mirror http 127.0.0.1:5000/library/busybox",
            "docker.io/library/busybox",
        ];
        lab_hub_tag_is_kept: LAB, "user/app:1" => [
            "mirror http 127.0.0.1:5000/user/app:1",
            "docker.io/user/app:1",
        ];
        lab_local_registry_is_plain_http: LAB, "127.0.0.1:5000/x/y:t" => ["http 127.0.0.1:5000/x/y:t"];
        lab_other_registry_untouched: LAB, "quay.io/org/app" => ["quay.io/org/app"];
        man_page_example: MAN_PAGE, "example.com/foo/image:latest" => [
            "mirror example-mirror-0.local/mirror-for-foo/image:latest",
            "mirror http example-mirror-1.local/mirrors/foo/image:latest",
            "internal-registry-for-example.com/bar/image:latest",
        ];
        man_page_mirrors_belong_to_their_table: MAN_PAGE, "registry.com/image:latest" => [
            "mirror mirror.registry.com/image:latest",
            "registry.com/image:latest",
        ];
        man_page_unmatched_namespace: MAN_PAGE, "example.com/other/image" => ["example.com/other/image"];
        by_digest_only_skips_mirror_for_tag: FILTERS, "digest.io/a:1" => ["digest.io/a:1"];
        by_digest_only_uses_mirror_for_digest: FILTERS, format!("digest.io/a@{DIGEST}") => [
            format!("mirror m.digest.io/a@{DIGEST}"),
            format!("digest.io/a@{DIGEST}"),
        ];
        pull_from_mirror_for_tag: FILTERS, "mixed.io/a:1" => [
            "mirror all.mixed.io/a:1",
            "mirror tag.mixed.io/a:1",
            "mixed.io/a:1",
        ];
        pull_from_mirror_for_digest: FILTERS, format!("mixed.io/a:1@{DIGEST}") => [
            format!("mirror all.mixed.io/a:1@{DIGEST}"),
            format!("mirror digest.mixed.io/a:1@{DIGEST}"),
            format!("mixed.io/a:1@{DIGEST}"),
        ];
        longest_prefix_wins: PREFIXES, "example.com/team/app:2" => ["cache.local:5000/team-cache/app:2"];
        shorter_prefix_for_the_rest: PREFIXES, "example.com/solo/app" => ["http example.com/solo/app"];
        hub_library_prefix: PREFIXES, "alpine:3.20" => ["cache.local:5000/alpine:3.20"];
        hub_library_prefix_not_other_namespaces: PREFIXES, "alpine/git" => ["docker.io/alpine/git"];
        wildcard_without_location_keeps_the_name: PREFIXES, "reg.corp.example/app" => [
            "mirror corp-mirror.local/corp/app",
            "http reg.corp.example/app",
        ];
        wildcard_location_replaces_host: PREFIXES, "x.y.lab.example/app:1" => ["lab-cache.local/app:1"];
        exact_host_beats_wildcard: PREFIXES, "a.lab.example/app:1" => ["a-cache.local/app:1"];
    }

    #[test]
    fn lab_endpoints_in_detail() {
        let lab = conf(LAB);
        let pull = lab.resolve(&r("busybox:1.36")).unwrap();
        let [mirror, primary] = &pull.endpoints[..] else {
            panic!("{pull:?}")
        };
        assert_eq!(
            (mirror.host(), mirror.api_host(), mirror.repository()),
            ("127.0.0.1:5000", "127.0.0.1:5000", "library/busybox")
        );
        assert_eq!(
            (primary.host(), primary.api_host(), primary.repository()),
            ("docker.io", "registry-1.docker.io", "library/busybox")
        );
        assert_eq!(pull.table.unwrap().line, 5);

        let push = lab.push_endpoint(&r("127.0.0.1:5000/me/app:1")).unwrap();
        assert_eq!(show(&push), "http 127.0.0.1:5000/me/app:1");
        let push = lab.push_endpoint(&r("me/app:1")).unwrap();
        assert_eq!(show(&push), "docker.io/me/app:1");
        assert_eq!(lab.unqualified_search_registries(), ["docker.io"]);
    }

    #[test]
    fn push_ignores_location_and_its_insecure_flag() {
        let conf = conf(
            r#"
            [[registry]]
            prefix = "docker.io"
            location = "127.0.0.1:5000"
            insecure = true
            [[registry.mirror]]
            location = "mirror.local"
            "#,
        );
        let push = conf.push_endpoint(&r("me/app")).unwrap();
        assert_eq!(show(&push), "docker.io/me/app");
        let pull = conf.resolve(&r("me/app")).unwrap();
        assert_eq!(
            pull.endpoints.last().map(show).unwrap(),
            "http 127.0.0.1:5000/me/app"
        );
    }

    #[test]
    fn blocked_names_the_registry_and_the_file() {
        let conf = conf("[[registry]]\nlocation = \"bad.io\"\nblocked = true\n");
        for err in [
            conf.resolve(&r("bad.io/x")).unwrap_err(),
            conf.push_endpoint(&r("bad.io/x")).unwrap_err(),
        ] {
            assert!(matches!(err, ConfigError::Blocked { .. }), "{err:?}");
            assert_eq!(
                err.to_string(),
                "registry \"bad.io\" is blocked by /t/registries.conf:1:1 (blocked = true): refusing bad.io/x"
            );
        }
        assert!(conf.resolve(&r("bad.iox/x")).is_ok());
    }

    #[test]
    fn rewrite_to_a_non_canonical_name_is_an_error() {
        let conf = conf("[[registry]]\nprefix = \"docker.io/library\"\nlocation = \"docker.io\"\n");
        let err = conf.resolve(&r("busybox")).unwrap_err();
        assert!(matches!(err, ConfigError::RewriteReference(_)), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.starts_with("/t/registries.conf:1:1: registry[0].location"),
            "{msg}"
        );
        assert!(msg.contains("docker.io/busybox"), "{msg}");
    }

    #[test]
    fn api_host_is_only_special_for_docker_hub() {
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("index.docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("quay.io"), "quay.io");
        assert_eq!(api_host("registry-1.docker.io"), "registry-1.docker.io");
    }

    #[test]
    fn short_name_mode_default_is_permissive() {
        assert_eq!(conf("").short_name_mode(), ShortNameMode::Permissive);
        assert_eq!(
            conf("short-name-mode = \"\"").short_name_mode(),
            ShortNameMode::Permissive
        );
    }
}
