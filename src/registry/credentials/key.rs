//! What registry (and namespace) an `auths` or `credHelpers` key names, with Docker's and
//! c/image's normalisations, so that every spelling of one registry finds the same entry.
//!
//! Owns: [`AuthKey`] (parse a key, say how well it applies to a repository, give the key to
//! write and the server URLs to ask a helper for). Must not read files or run helpers.
//!
//! The rules, from the two implementations users' files come from:
//! - Docker Hub has four spellings: `docker.io`, `index.docker.io`, `registry-1.docker.io`
//!   and `https://index.docker.io/v1/` (moby `registry.IndexServer`, the key `docker login`
//!   writes). All are one registry here; we write the last one, as Docker does.
//! - A key with a URL scheme is a URL: its path (`/v1/`) is not a namespace, only the host
//!   counts (docker/cli `ConvertToHostname`, c/image `normalizeAuthFileKey`).
//! - A key without a scheme may carry a repository namespace (`quay.io/org`): a
//!   containers-auth.json(5) extension that c/image also honours in Docker's file. It applies
//!   to that namespace and everything below it, on component boundaries, and the most
//!   specific key wins. (Docker itself would strip the path and use the key for all of
//!   `quay.io`; we follow c/image, which is the only reader that writes such keys.)

use crate::oci::reference::{DOCKER_HUB, DOCKER_HUB_LEGACY};

/// The key Docker writes for Docker Hub (moby `registry.IndexServer`).
pub(crate) const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// A parsed `auths`/`credHelpers` key, or a caller's registry argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct AuthKey {
    /// `host[:port]`, with every Docker Hub spelling turned into `docker.io`.
    host: String,
    /// Repository namespace below the host (`org`, `org/app`), if the key has one.
    namespace: Option<String>,
}

impl AuthKey {
    pub(super) fn parse(key: &str) -> AuthKey {
        let key = key.trim();
        let (without_scheme, is_url) = match key
            .strip_prefix("https://")
            .or_else(|| key.strip_prefix("http://"))
        {
            Some(rest) => (rest, true),
            None => (key, false),
        };
        let trimmed = without_scheme.trim_end_matches('/');
        let (host, path) = match trimmed.split_once('/') {
            Some((host, path)) => (host, Some(path)),
            None => (trimmed, None),
        };
        let host = match host {
            DOCKER_HUB | DOCKER_HUB_LEGACY | "registry-1.docker.io" => DOCKER_HUB,
            other => other,
        };
        AuthKey {
            host: host.to_string(),
            namespace: path
                .filter(|p| !is_url && !p.is_empty())
                .map(str::to_string),
        }
    }

    /// The normalised host (`docker.io` for Docker Hub).
    pub(super) fn host(&self) -> &str {
        &self.host
    }

    pub(super) fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// This key without its namespace.
    pub(super) fn registry(&self) -> AuthKey {
        AuthKey {
            host: self.host.clone(),
            namespace: None,
        }
    }

    /// If this key applies to `repository` on `host` (both already normalised), how
    /// specific it is: 0 for a whole-registry key, else the number of namespace components.
    pub(super) fn specificity_for(&self, host: &str, repository: &str) -> Option<usize> {
        if self.host != host {
            return None;
        }
        match &self.namespace {
            None => Some(0),
            Some(ns) => {
                let below = repository
                    .strip_prefix(ns.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
                below.then(|| ns.split('/').count())
            }
        }
    }

    /// The key to write into an `auths` object: Docker's for Docker Hub, else `host` or
    /// `host/namespace`.
    pub(super) fn storage_key(&self) -> String {
        match (&self.namespace, self.host.as_str()) {
            (None, DOCKER_HUB) => DOCKER_HUB_AUTH_KEY.to_string(),
            (None, host) => host.to_string(),
            (Some(ns), host) => format!("{host}/{ns}"),
        }
    }

    /// Whether `written` is the spelling [`AuthKey::storage_key`] would produce; among
    /// several keys naming the same registry, that one is preferred.
    pub(super) fn is_canonical_spelling(&self, written: &str) -> bool {
        written == self.storage_key()
    }

    /// The server URLs to give a credential helper, in the order to ask: for Docker Hub
    /// the URL Docker stores under, then `docker.io` (which podman uses); else the host.
    pub(super) fn helper_server_urls(&self) -> Vec<String> {
        if self.host == DOCKER_HUB {
            vec![DOCKER_HUB_AUTH_KEY.to_string(), DOCKER_HUB.to_string()]
        } else {
            vec![self.host.clone()]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `name: key => (host, namespace)`.
    macro_rules! parses {
        ($($name:ident: $key:expr => ($host:expr, $ns:expr);)*) => {$(
            #[test]
            fn $name() {
                let key = AuthKey::parse($key);
                assert_eq!((key.host(), key.namespace()), ($host, $ns), "{}", $key);
            }
        )*};
    }

    parses! {
        hub_plain: "docker.io" => ("docker.io", None);
        hub_legacy: "index.docker.io" => ("docker.io", None);
        hub_api_host: "registry-1.docker.io" => ("docker.io", None);
        hub_docker_key: "https://index.docker.io/v1/" => ("docker.io", None);
        hub_http_url: "http://registry-1.docker.io/v2/" => ("docker.io", None);
        hub_namespace: "docker.io/myorg" => ("docker.io", Some("myorg"));
        host: "quay.io" => ("quay.io", None);
        host_trailing_slash: "quay.io/" => ("quay.io", None);
        url_path_is_not_a_namespace: "https://quay.io/v1/" => ("quay.io", None);
        url_host_port: "http://localhost:5000" => ("localhost:5000", None);
        host_port: "localhost:5000" => ("localhost:5000", None);
        namespace: "quay.io/org" => ("quay.io", Some("org"));
        deep_namespace: "quay.io/org/team/app/" => ("quay.io", Some("org/team/app"));
    }

    /// `name: key, host, repository => specificity`.
    macro_rules! applies {
        ($($name:ident: $key:expr, $host:expr, $repo:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(AuthKey::parse($key).specificity_for($host, $repo), $want);
            }
        )*};
    }

    applies! {
        registry_key_applies_everywhere: "quay.io", "quay.io", "org/app" => Some(0);
        other_registry: "quay.io", "ghcr.io", "org/app" => None;
        namespace_applies_below: "quay.io/org", "quay.io", "org/app" => Some(1);
        namespace_applies_to_itself: "quay.io/org/app", "quay.io", "org/app" => Some(2);
        namespace_not_a_sibling: "quay.io/org", "quay.io", "organisation/app" => None;
        namespace_not_above: "quay.io/org/app", "quay.io", "org" => None;
        hub_url_key_applies_to_hub: "https://index.docker.io/v1/", "docker.io", "library/busybox" => Some(0);
        hub_library_namespace: "docker.io/library", "docker.io", "library/busybox" => Some(1);
        port_is_part_of_the_host: "localhost", "localhost:5000", "x" => None;
    }

    #[test]
    fn storage_keys_and_helper_urls() {
        assert_eq!(
            AuthKey::parse("registry-1.docker.io").storage_key(),
            DOCKER_HUB_AUTH_KEY
        );
        assert_eq!(AuthKey::parse("https://quay.io/").storage_key(), "quay.io");
        assert_eq!(AuthKey::parse("quay.io/org").storage_key(), "quay.io/org");
        assert_eq!(
            AuthKey::parse("docker.io/org").storage_key(),
            "docker.io/org"
        );
        assert_eq!(
            AuthKey::parse("docker.io").helper_server_urls(),
            [DOCKER_HUB_AUTH_KEY, "docker.io"]
        );
        assert_eq!(
            AuthKey::parse("quay.io/org").helper_server_urls(),
            ["quay.io"]
        );
        assert!(AuthKey::parse("docker.io").is_canonical_spelling(DOCKER_HUB_AUTH_KEY));
        assert!(!AuthKey::parse("docker.io").is_canonical_spelling("docker.io"));
    }
}
