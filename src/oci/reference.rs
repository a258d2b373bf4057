//! Image references (`busybox`, `ghcr.io/org/app:1.2@sha256:…`): the [`Reference`] newtype,
//! parsed and normalised exactly as Docker does it (`distribution/reference`
//! `ParseNormalizedNamed`, `normalize.go` + `regexp.go`), so that `FROM busybox` means
//! `docker.io/library/busybox` here as it does for `docker build`.
//!
//! The grammar is written down in `grammar/reference.ebnf` (productions, constraints C1–C3,
//! normalisation rules N1–N7); the parser below follows it and names the productions in
//! comments. Where upstream's regular expression
//! accepts something Docker then cannot use, we reject it and say so at the site.
//!
//! This file resolves nothing: no DNS, no registry mirrors, no credential lookup.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use super::digest::{Digest, DigestError};

/// Docker Hub's canonical domain (`normalize.go` `defaultDomain`).
pub(crate) const DOCKER_HUB: &str = "docker.io";
/// The legacy Hub domain that normalises to [`DOCKER_HUB`] (`legacyDefaultDomain`).
pub(crate) const DOCKER_HUB_LEGACY: &str = "index.docker.io";
/// The namespace of Docker Hub's official images (`officialRepoPrefix`).
pub(crate) const OFFICIAL_NAMESPACE: &str = "library";
/// The tag meant when none is given (`defaultTag`).
pub(crate) const DEFAULT_TAG: &str = "latest";
/// Longest repository path (`RepositoryNameTotalLengthMax`; upstream counts the path only,
/// not the domain).
pub(crate) const MAX_PATH_LEN: usize = 255;
/// Longest tag: one leading word character and up to 127 more (`regexp.go` `tag`).
pub(crate) const MAX_TAG_LEN: usize = 128;

/// A normalised image reference: always a registry and a repository, optionally a tag and a
/// digest. Fields are private so that a `Reference` is always valid; `Display` gives the full
/// form (`docker.io/library/busybox:latest`), `Reference::familiar` the short one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why an image reference was rejected. Every variant quotes the input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReferenceError {
    #[error("invalid reference format: the reference is empty")]
    Empty,
    #[error(
        "invalid repository name ({input}): cannot specify 64-byte hexadecimal strings (use sha256:{input} for an image ID)"
    )]
    HexIdentifier { input: String },
    #[error("invalid reference format {input:?}: repository name ({repository}) must be lowercase")]
    Uppercase { input: String, repository: String },
    #[error(
        "invalid reference format {input:?}: {domain:?} is not a registry host[:port] (letters, digits, '-', '.', or a [IPv6] address)"
    )]
    InvalidDomain { input: String, domain: String },
    #[error(
        "invalid reference {input:?}: registry {domain:?} would be read as a Docker Hub namespace (a registry needs a '.', a ':port', or to be localhost)"
    )]
    AmbiguousRegistry { input: String, domain: String },
    #[error(
        "invalid reference format {input:?}: path component {component:?} must be lowercase letters and digits separated by '.', '_', '__' or dashes"
    )]
    InvalidPathComponent { input: String, component: String },
    #[error(
        "invalid reference format {input:?}: tag {tag:?} must be 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'"
    )]
    InvalidTag { input: String, tag: String },
    #[error("invalid reference format {input:?}")]
    InvalidDigest { input: String, source: DigestError },
    #[error(
        "invalid reference format {input:?}: repository name is {length} characters, more than {MAX_PATH_LEN}"
    )]
    NameTooLong { input: String, length: usize },
}

impl Reference {
    /// Parse and normalise a reference as `docker pull`/`FROM` take it
    /// (`ParseNormalizedNamed`): a first component that is `localhost` or holds `.`, `:` or
    /// an uppercase letter is the registry, otherwise the registry is `docker.io`;
    /// `index.docker.io` becomes `docker.io`; a one-component Hub path gets `library/`.
    /// The tag is left absent when none is written (see [`Reference::with_default_tag`]).
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        // `anchoredIdentifierRegexp`: a bare image ID is not a repository name.
        if input.len() == 64
            && input
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(ReferenceError::HexIdentifier {
                input: input.to_string(),
            });
        }
        let (registry, remainder) = split_docker_domain(input);

        // The lowercase check comes before the grammar so that `docker/Docker` gets the
        // helpful message rather than "invalid format" (`ParseNormalizedNamed`).
        let remote = remainder.split([':', '@']).next().unwrap_or_default();
        if remote.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase {
                input: input.to_string(),
                repository: remote.to_string(),
            });
        }

        // reference := name [ ":" tag ] [ "@" digest ]
        let (name_and_tag, digest) = match remainder.split_once('@') {
            Some((before, digest)) => (before, Some(digest)),
            None => (remainder.as_str(), None),
        };
        let (repository, tag) = match name_and_tag.split_once(':') {
            Some((path, tag)) => (path, Some(tag)),
            None => (name_and_tag, None),
        };
        validate_domain(input, &registry)?;
        validate_path(input, repository)?;
        if let Some(tag) = tag {
            validate_tag(input, tag)?;
        }
        let digest = digest
            .map(|d| {
                Digest::parse(d).map_err(|source| ReferenceError::InvalidDigest {
                    input: input.to_string(),
                    source,
                })
            })
            .transpose()?;
        Ok(Reference {
            registry,
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// Build a reference from parts that are already split. The Hub is normalised as in
    /// [`Reference::parse`] (`index.docker.io` → `docker.io`, `docker.io` + `x` →
    /// `docker.io/library/x`), so that `Display` of the result parses back to it; for the
    /// same reason a registry must read as one (`localhost`, or holding `.`, `:` or an
    /// uppercase letter): a bare `myregistry/x` would be read as a Hub namespace.
    pub(crate) fn from_parts(
        registry: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<Digest>,
    ) -> Result<Reference, ReferenceError> {
        let input = format!("{registry}/{repository}");
        let registry = if registry == DOCKER_HUB_LEGACY {
            DOCKER_HUB
        } else {
            registry
        };
        if registry != DOCKER_HUB && !looks_like_domain(registry) {
            return Err(ReferenceError::AmbiguousRegistry {
                input,
                domain: registry.to_string(),
            });
        }
        validate_domain(&input, registry)?;
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("{OFFICIAL_NAMESPACE}/{repository}")
        } else {
            repository.to_string()
        };
        validate_path(&input, &repository)?;
        if let Some(tag) = tag {
            validate_tag(&input, tag)?;
        }
        Ok(Reference {
            registry: registry.to_string(),
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The registry `host[:port]`, e.g. `docker.io`, `localhost:5000`, `[::1]:5000`.
    pub(crate) fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path within the registry, e.g. `library/busybox`.
    pub(crate) fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub(crate) fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The tag, or `latest` when there is none.
    pub(crate) fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or(DEFAULT_TAG)
    }

    /// `registry/repository`, without tag or digest.
    pub(crate) fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What to put in `/v2/<name>/manifests/<reference>` (distribution-spec "Pulling
    /// manifests"): the digest when there is one (Docker pulls `name:tag@digest` by digest
    /// and ignores the tag, `ParseDockerRef`), else the tag, else `latest`.
    pub(crate) fn manifest_reference(&self) -> &str {
        match &self.digest {
            Some(digest) => digest.as_str(),
            None => self.tag_or_latest(),
        }
    }

    /// This reference with `tag` (any digest is kept, as `WithTag` does).
    #[cfg(test)]
    pub(crate) fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        validate_tag(tag, tag)?;
        Ok(Reference {
            tag: Some(tag.to_string()),
            ..self.clone()
        })
    }

    /// This reference with `digest` (any tag is kept, as `WithDigest` does).
    pub(crate) fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// This reference without tag or digest (`TrimNamed`).
    pub(crate) fn without_tag_or_digest(&self) -> Reference {
        Reference {
            tag: None,
            digest: None,
            ..self.clone()
        }
    }

    /// `latest` added when there is neither tag nor digest (`TagNameOnly`): `busybox` →
    /// `docker.io/library/busybox:latest`.
    pub fn with_default_tag(self) -> Reference {
        if self.tag.is_none() && self.digest.is_none() {
            Reference {
                tag: Some(DEFAULT_TAG.to_string()),
                ..self
            }
        } else {
            self
        }
    }

    /// The name as Docker prints it (`familiarizeName`): `docker.io/` dropped, and
    /// `library/` dropped from one-level official images.
    ///
    /// Deviation: upstream also drops `docker.io/` from Hub repositories whose first path
    /// component looks like a registry (`docker.io/foo.bar/x` → `foo.bar/x`), which then
    /// parses back as registry `foo.bar`. We keep `docker.io/` in that case so that the
    /// familiar form always parses back to the same reference.
    pub fn familiar_name(&self) -> String {
        if self.registry != DOCKER_HUB {
            return self.name();
        }
        if let Some(rest) = self.repository.strip_prefix("library/") {
            if !rest.contains('/') {
                return rest.to_string();
            }
        }
        let first = self.repository.split('/').next().unwrap_or_default();
        if self.repository.contains('/') && !looks_like_domain(first) {
            self.repository.clone()
        } else {
            self.name()
        }
    }

    /// The short form Docker prints (`FamiliarString`): `busybox:latest`,
    /// `user/app@sha256:…`, `ghcr.io/o/a:1`.
    pub(crate) fn familiar(&self) -> String {
        let mut out = self.familiar_name();
        push_tag_and_digest(&mut out, self.tag.as_deref(), self.digest.as_ref());
        out
    }
}

/// The full form, `registry/repository[:tag][@digest]`.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.name();
        push_tag_and_digest(&mut out, self.tag.as_deref(), self.digest.as_ref());
        f.write_str(&out)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Reference, ReferenceError> {
        Reference::parse(s)
    }
}

impl Serialize for Reference {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Reference, D::Error> {
        let s = String::deserialize(d)?;
        Reference::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn push_tag_and_digest(out: &mut String, tag: Option<&str>, digest: Option<&Digest>) {
    if let Some(tag) = tag {
        out.push(':');
        out.push_str(tag);
    }
    if let Some(digest) = digest {
        out.push('@');
        out.push_str(digest.as_str());
    }
}

/// `normalize.go` `splitDockerDomain`: pick the registry out of a familiar name.
fn split_docker_domain(input: &str) -> (String, String) {
    let Some((first, rest)) = input.split_once('/') else {
        // A single component is always a Hub official image, even `localhost` or
        // `localhost:5000` (which becomes `library/localhost` with tag `5000`), as upstream.
        return (
            DOCKER_HUB.to_string(),
            format!("{OFFICIAL_NAMESPACE}/{input}"),
        );
    };
    let (registry, remote) = if first == DOCKER_HUB_LEGACY {
        (DOCKER_HUB, rest)
    } else if looks_like_domain(first) {
        (first, rest)
    } else {
        (DOCKER_HUB, input)
    };
    if registry == DOCKER_HUB && !remote.contains('/') {
        return (
            registry.to_string(),
            format!("{OFFICIAL_NAMESPACE}/{remote}"),
        );
    }
    (registry.to_string(), remote.to_string())
}

/// Upstream's test for "this first component is a registry": `localhost`, or it contains
/// `.` or `:`, or it has an uppercase letter (repository paths are lowercase, so an
/// uppercase first component can only be a host name).
fn looks_like_domain(first: &str) -> bool {
    first == "localhost"
        || first.contains(['.', ':'])
        || first.bytes().any(|b| b.is_ascii_uppercase())
}

/// domain := host [ ":" port-number ]; host := domain-name | "[" IPv6address "]".
///
/// Deviation: upstream's regular expression, failing to read an invalid host such as
/// `foo_bar.com` as a domain, re-reads the whole `foo_bar.com/x` as a Hub-less path and
/// returns a reference with an empty domain, which no client can pull. We reject it.
fn validate_domain(input: &str, domain: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::InvalidDomain {
        input: input.to_string(),
        domain: domain.to_string(),
    };
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        // IPv6 in brackets: hex digits and colons only (no zone, no embedded IPv4).
        let (addr, after) = rest.split_once(']').ok_or_else(bad)?;
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(bad());
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(bad)?),
        };
        (None, port)
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(domain), None),
        }
    };
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return Err(bad());
    }
    if let Some(host) = host {
        // domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !c.starts_with('-')
                && !c.ends_with('-')
        };
        if !host.split('.').all(component_ok) {
            return Err(bad());
        }
    }
    Ok(())
}

/// path := path-component ( "/" path-component )*, at most [`MAX_PATH_LEN`] long.
fn validate_path(input: &str, path: &str) -> Result<(), ReferenceError> {
    for component in path.split('/') {
        if !is_path_component(component) {
            return Err(ReferenceError::InvalidPathComponent {
                input: input.to_string(),
                component: component.to_string(),
            });
        }
    }
    if path.len() > MAX_PATH_LEN {
        return Err(ReferenceError::NameTooLong {
            input: input.to_string(),
            length: path.len(),
        });
    }
    Ok(())
}

/// path-component := alpha-numeric ( separator alpha-numeric )*,
/// alpha-numeric := [a-z0-9]+, separator := "." | "_" | "__" | "-"+.
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let is_alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        // An alpha-numeric run.
        let start = i;
        while i < bytes.len() && is_alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        // A separator run.
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        match &component[start..i] {
            "." | "_" | "__" => {}
            dashes if dashes.bytes().all(|b| b == b'-') => {}
            _ => return false,
        }
    }
}

/// tag := [\w][\w.-]{0,127}, \w := [A-Za-z0-9_].
fn validate_tag(input: &str, tag: &str) -> Result<(), ReferenceError> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let ok = match tag.as_bytes() {
        [first, rest @ ..] => {
            word(*first)
                && rest.len() < MAX_TAG_LEN
                && rest.iter().all(|&b| word(b) || b == b'.' || b == b'-')
        }
        [] => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ReferenceError::InvalidTag {
            input: input.to_string(),
            tag: tag.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";
    const HEX: &str = "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `input => full, familiar`; both forms must parse back to the same reference.
    macro_rules! normalizes {
        ($($name:ident: $input:expr => $full:expr, $familiar:expr;)*) => {$(
            #[test]
            fn $name() {
                let got = r(&$input);
                assert_eq!(got.to_string(), $full, "full form of {:?}", $input);
                assert_eq!(got.familiar(), $familiar, "familiar form of {:?}", $input);
                assert_eq!(r(&got.to_string()), got, "full form parses back");
                assert_eq!(r(&got.familiar()), got, "familiar form parses back");
            }
        )*};
    }

    /// `input => (registry, repository)`.
    macro_rules! splits {
        ($($name:ident: $input:expr => $registry:expr, $repository:expr;)*) => {$(
            #[test]
            fn $name() {
                let got = r($input);
                assert_eq!((got.registry(), got.repository()), ($registry, $repository), "{:?}", $input);
            }
        )*};
    }

    macro_rules! rejects {
        ($($name:ident: $input:expr => $variant:ident;)*) => {$(
            #[test]
            fn $name() {
                let input: String = $input.into();
                let err = Reference::parse(&input).unwrap_err();
                assert!(matches!(err, ReferenceError::$variant { .. }), "{input:?} gave {err:?}");
            }
        )*};
    }

    normalizes! {
        official: "busybox" => "docker.io/library/busybox", "busybox";
        official_tagged: "busybox:latest" => "docker.io/library/busybox:latest", "busybox:latest";
        official_digest: format!("redis@{D}") => format!("docker.io/library/redis@{D}"), format!("redis@{D}");
        official_tag_and_digest: format!("busybox:1.36@{D}") => format!("docker.io/library/busybox:1.36@{D}"), format!("busybox:1.36@{D}");
        user_repo: "dmcgowan/myapp" => "docker.io/dmcgowan/myapp", "dmcgowan/myapp";
        user_repo_tagged: "dmcgowan/myapp:v1.0" => "docker.io/dmcgowan/myapp:v1.0", "dmcgowan/myapp:v1.0";
        hub_short: "docker.io/ubuntu" => "docker.io/library/ubuntu", "ubuntu";
        hub_full: "docker.io/library/ubuntu:22.04" => "docker.io/library/ubuntu:22.04", "ubuntu:22.04";
        legacy_hub: "index.docker.io/library/debian" => "docker.io/library/debian", "debian";
        legacy_hub_short: "index.docker.io/debian" => "docker.io/library/debian", "debian";
        legacy_hub_user: "index.docker.io/fooo/bar" => "docker.io/fooo/bar", "fooo/bar";
        library_nested_keeps_prefix: "library/foo/bar" => "docker.io/library/foo/bar", "library/foo/bar";
        library_alone: "library/ubuntu" => "docker.io/library/ubuntu", "ubuntu";
        three_levels: "store/foo/bar" => "docker.io/store/foo/bar", "store/foo/bar";
        localhost: "localhost/x" => "localhost/x", "localhost/x";
        localhost_port: "localhost:5000/x/y:t" => "localhost:5000/x/y:t", "localhost:5000/x/y:t";
        bare_localhost_is_hub: "localhost" => "docker.io/library/localhost", "localhost";
        bare_localhost_port_is_a_tag: "localhost:5000" => "docker.io/library/localhost:5000", "localhost:5000";
        host_port_tag_digest: format!("host:5000/repo:tag@{D}") => format!("host:5000/repo:tag@{D}"), format!("host:5000/repo:tag@{D}");
        dotted_host: "example.com/privatebase" => "example.com/privatebase", "example.com/privatebase";
        ipv4_port: "127.0.0.1:8000/private/moonbase" => "127.0.0.1:8000/private/moonbase", "127.0.0.1:8000/private/moonbase";
        ipv6_port: "[fc00::1]:5000/docker/docker" => "[fc00::1]:5000/docker/docker", "[fc00::1]:5000/docker/docker";
        ipv6_no_port: "[::1]/x" => "[::1]/x", "[::1]/x";
        punycode_host: "xn--n3h.com:18080/foo" => "xn--n3h.com:18080/foo", "xn--n3h.com:18080/foo";
        uppercase_first_is_a_domain: "Foo/bar" => "Foo/bar", "Foo/bar";
        all_caps_domain: "DOCKER/docker" => "DOCKER/docker", "DOCKER/docker";
        ghcr: "ghcr.io/org/app:1.2.3" => "ghcr.io/org/app:1.2.3", "ghcr.io/org/app:1.2.3";
        ipv4_alone_is_a_repo: "192.168.0.1" => "docker.io/library/192.168.0.1", "192.168.0.1";
        uppercase_tag_is_fine: "busybox:Latest_1.0-rc" => "docker.io/library/busybox:Latest_1.0-rc", "busybox:Latest_1.0-rc";
        separators: "dock__er/do.ck_er---x:t" => "docker.io/dock__er/do.ck_er---x:t", "dock__er/do.ck_er---x:t";
        hex_63_is_a_name: &HEX[..63] => format!("docker.io/library/{}", &HEX[..63]), HEX[..63].to_string();
        single_char_parts: "d/t" => "docker.io/d/t", "d/t";
        sixty_four_letters: "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev"
            => "docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
               "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev";
    }

    #[test]
    fn hex_name_on_hub_familiarises_to_something_that_reparses() {
        // `docker.io/<64 hex>` familiarises to the bare hex, which parses as an image ID;
        // the familiar form is only for display, and we accept that upstream quirk.
        let got = r(&format!("docker.io/{HEX}"));
        assert!(Reference::parse(&got.familiar()).is_err());
    }

    splits! {
        dotted_first_is_registry: "test.com/foo" => "test.com", "foo";
        underscore_first_is_a_path: "test_com/foo" => "docker.io", "test_com/foo";
        plain_first_is_a_path: "docker/migrator" => "docker.io", "docker/migrator";
        port_makes_a_registry: "test-com:8080/foo" => "test-com:8080", "foo";
        nested_on_hub: "docker.io/library/foo/bar" => "docker.io", "library/foo/bar";
        non_hub_keeps_single_path: "quay.io/foo" => "quay.io", "foo";
    }

    rejects! {
        empty: "" => Empty;
        bare_image_id: HEX => HexIdentifier;
        uppercase_repo: "docker/Docker" => Uppercase;
        uppercase_repo_on_host: "docker.io/docker/Docker" => Uppercase;
        uppercase_official: "Busybox" => Uppercase;
        url: "https://github.com/docker/docker" => InvalidDomain;
        leading_dash: "-docker" => InvalidPathComponent;
        leading_dash_namespace: "-docker/docker" => InvalidPathComponent;
        trailing_dash_namespace: "docker-/docker" => InvalidPathComponent;
        leading_dash_host: "-docker.io/docker/docker" => InvalidDomain;
        triple_slash: "docker///docker" => InvalidPathComponent;
        triple_slash_on_host: "docker.io/docker///docker" => InvalidPathComponent;
        no_repository: "docker/" => InvalidPathComponent;
        underscores_only: "____/____" => InvalidPathComponent;
        leading_underscore: "_docker/_docker" => InvalidPathComponent;
        double_dot_reads_as_a_bad_host: "dock..er/docker" => InvalidDomain;
        double_dot_in_path: "docker/dock..er" => InvalidPathComponent;
        underscore_dot: "docker/dock_.er" => InvalidPathComponent;
        dash_dot: "docker/dock-.er" => InvalidPathComponent;
        triple_underscore: "dock___er/docker" => InvalidPathComponent;
        ipv6_without_path: "[fc00::1]:5000" => InvalidPathComponent;
        ipv6_without_brackets: "fc00::1:5000/debian" => InvalidDomain;
        ipv6_zone: "[fe80::1%eth0]:5000/debian" => InvalidDomain;
        ipv6_embedded_ipv4: "[2001:db8:3:4::192.0.2.33]:5000/debian" => InvalidDomain;
        empty_port: "example.com:/x" => InvalidDomain;
        underscore_host: "foo_bar.com/x" => InvalidDomain;
        empty_tag: "busybox:" => InvalidTag;
        tag_leading_dot: "busybox:.x" => InvalidTag;
        tag_leading_dash: "busybox:-x" => InvalidTag;
        tag_bad_char: "busybox:a+b" => InvalidTag;
        tag_too_long: format!("busybox:{}", "a".repeat(129)) => InvalidTag;
        two_tags: "busybox:a:b" => InvalidTag;
        short_digest: "busybox@sha256:abc" => InvalidDigest;
        digest_63_hex: format!("busybox@sha256:{}", &HEX[..63]) => InvalidDigest;
        uppercase_digest_hex: format!("busybox@sha256:{}", HEX.to_uppercase()) => InvalidDigest;
        unknown_digest_algorithm: "busybox@md5:d41d8cd98f00b204e9800998ecf8427e" => InvalidDigest;
        empty_digest: "busybox@" => InvalidDigest;
        name_too_long: format!("a/{}", "b".repeat(254)) => NameTooLong;
        namespace_too_long: format!("{}/docker", "this-is-too-long".repeat(16)) => NameTooLong;
        space: "busy box" => InvalidPathComponent;
    }

    #[test]
    fn longest_tag_and_path_are_fine() {
        let tag = format!("a{}", "b".repeat(127));
        assert_eq!(r(&format!("busybox:{tag}")).tag(), Some(tag.as_str()));
        let path = format!("a/{}", "b".repeat(253));
        assert_eq!(r(&path).repository().len(), 255);
    }

    #[test]
    fn errors_quote_the_input() {
        let err = Reference::parse("docker/Docker").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid reference format \"docker/Docker\": repository name (docker/Docker) must be lowercase"
        );
        let err = Reference::parse("busybox@sha256:abc").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid reference format \"busybox@sha256:abc\""
        );
        let err = crate::diag::chain(&err);
        assert!(err.contains("needs 64 hex digits, got 3"), "{err}");
    }

    #[test]
    fn tags_digests_and_defaults() {
        let plain = r("busybox");
        assert_eq!(plain.tag(), None);
        assert_eq!(plain.tag_or_latest(), "latest");
        assert_eq!(plain.manifest_reference(), "latest");
        assert_eq!(
            plain.clone().with_default_tag().to_string(),
            "docker.io/library/busybox:latest"
        );

        let tagged = plain.with_tag("1.36").unwrap();
        assert_eq!(tagged.to_string(), "docker.io/library/busybox:1.36");
        assert_eq!(tagged.manifest_reference(), "1.36");
        assert!(matches!(
            plain.with_tag("-x"),
            Err(ReferenceError::InvalidTag { .. })
        ));

        let pinned = tagged.with_digest(D.parse().unwrap());
        assert_eq!(pinned.familiar(), format!("busybox:1.36@{D}"));
        assert_eq!(pinned.manifest_reference(), D, "digest wins over tag");
        assert_eq!(
            pinned.clone().with_default_tag(),
            pinned,
            "no latest added next to a digest"
        );
        assert_eq!(
            pinned.without_tag_or_digest().to_string(),
            "docker.io/library/busybox"
        );
        assert_eq!(pinned.name(), "docker.io/library/busybox");
        assert_eq!(pinned.digest().map(|d| d.as_str()), Some(D));
    }

    #[test]
    fn familiar_keeps_hub_when_dropping_it_would_change_meaning() {
        let odd = Reference::from_parts("docker.io", "foo.bar/x", None, None).unwrap();
        assert_eq!(odd.familiar(), "docker.io/foo.bar/x");
        assert_eq!(r(&odd.familiar()), odd);
        let local = Reference::from_parts("docker.io", "localhost/x", None, None).unwrap();
        assert_eq!(local.familiar(), "docker.io/localhost/x");
    }

    #[test]
    fn from_parts_validates() {
        assert!(matches!(
            Reference::from_parts("my_reg.io", "x", None, None),
            Err(ReferenceError::InvalidDomain { .. })
        ));
        assert!(matches!(
            Reference::from_parts("myregistry", "x", None, None),
            Err(ReferenceError::AmbiguousRegistry { .. })
        ));
        let hub = Reference::from_parts("index.docker.io", "x", None, None).unwrap();
        assert_eq!(hub.to_string(), "docker.io/library/x");
        assert!(Reference::from_parts("reg.io", "X", None, None).is_err());
        assert!(Reference::from_parts("reg.io", "x", Some(""), None).is_err());
        let ok = Reference::from_parts("reg:5000", "a/b", Some("t"), None).unwrap();
        assert_eq!(ok.to_string(), "reg:5000/a/b:t");
    }

    #[test]
    fn serde_as_a_string() {
        let got: Reference = serde_json::from_str("\"alpine:3.20\"").unwrap();
        assert_eq!(
            serde_json::to_string(&got).unwrap(),
            "\"docker.io/library/alpine:3.20\""
        );
        assert!(serde_json::from_str::<Reference>("\"Alpine\"").is_err());
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        fn path_component() -> impl Strategy<Value = String> {
            "[a-z0-9]{1,6}(([._]|__|-{1,3})[a-z0-9]{1,6}){0,2}"
        }

        fn domain() -> impl Strategy<Value = String> {
            prop_oneof![
                Just(DOCKER_HUB.to_string()),
                Just("localhost".to_string()),
                "[a-z0-9]{1,8}(\\.[a-z0-9]{1,8}){1,2}(:[0-9]{1,5})?",
                "[A-Z][a-z]{0,5}",
                "[a-z]{1,8}:[0-9]{1,5}",
                "\\[[0-9a-f]{1,4}(::?[0-9a-f]{1,4}){1,3}\\](:[0-9]{1,5})?",
            ]
        }

        fn reference() -> impl Strategy<Value = Reference> {
            (
                domain(),
                prop::collection::vec(path_component(), 1..4),
                prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
                prop::option::of("[0-9a-f]{64}"),
            )
                .prop_map(|(domain, path, tag, hex)| {
                    let digest = hex.map(|h| Digest::parse(&format!("sha256:{h}")).unwrap());
                    Reference::from_parts(&domain, &path.join("/"), tag.as_deref(), digest).unwrap()
                })
        }

        proptest! {
            #[test]
            fn display_parses_back(reference in reference()) {
                prop_assert_eq!(Reference::parse(&reference.to_string()).unwrap(), reference);
            }

            #[test]
            fn familiar_parses_back(reference in reference()) {
                let familiar = reference.familiar();
                // A Hub official image named like an image ID is the one exception.
                prop_assume!(!(familiar.len() == 64 && familiar.bytes().all(|b| b.is_ascii_hexdigit())));
                prop_assert_eq!(Reference::parse(&familiar).unwrap(), reference);
            }

            #[test]
            fn parse_never_panics(s in "\\PC{0,80}") {
                let _ = Reference::parse(&s);
            }
        }
    }
}
