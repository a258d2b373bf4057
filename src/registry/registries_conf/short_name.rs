//! Short-name expansion: what a name typed without a registry (`busybox`, `user/app:1`)
//! may mean (containers-registries.conf(5) "Short-Name Aliasing" and "Modes"; c/image
//! `pkg/shortnames`), and the test for "typed without a registry" itself.
//!
//! Owns: [`RegistriesConf::expand_short_name`] and [`is_short_name`]. Must not prompt (rbuild
//! has no TTY interaction, so `enforcing` turns the prompt into an error), must not record
//! aliases (podman's `short-name-aliases.conf` cache is out of scope), and must not contact
//! a registry: trying the candidates in order is the caller's job.

use super::{ConfigError, RegistriesConf, ShortNameMode, ShortNames};
use crate::oci::reference::{DOCKER_HUB, Reference};

impl RegistriesConf {
    /// The references a user-typed name may mean, in the order to try them.
    ///
    /// "Short name" is decided on the text as typed, the way distribution/reference's
    /// `splitDockerDomain` decides it, because `Reference::parse` has already normalised
    /// `busybox` to `docker.io/library/busybox`: the name is short when it has no `/`, or when
    /// its first component contains no `.` or `:`, is not `localhost`, and is lowercase.
    /// A fully qualified name returns itself. A short name returns its `[aliases]` target
    /// (tag and digest carried over) if one is set, else one candidate per
    /// `unqualified-search-registries` entry. With no search registries we fall back to
    /// `docker.io`, as Docker does (podman errors instead). With `short-name-mode =
    /// "enforcing"` and more than one search registry, the choice would need a prompt, which
    /// rbuild never shows, so it is an error.
    pub(crate) fn expand_short_name(&self, input: &str) -> Result<Vec<Reference>, ConfigError> {
        let parse = |text: &str| {
            Reference::parse(text).map_err(|source| ConfigError::ParseReference {
                input: text.to_string(),
                source,
            })
        };
        let parsed = parse(input)?;
        if !is_short_name(input) || self.short_names == ShortNames::Docker {
            // A Docker reference normalises a short name to docker.io (and `library/`).
            return Ok(vec![parsed]);
        }
        // Man page: "tags and digests are stripped off a user-specified short name for alias
        // resolution … and later appended to the resolved alias".
        let name_len = input.find([':', '@']).unwrap_or(input.len());
        let (name, suffix) = input.split_at(name_len);
        if let Some(alias) = self.aliases.get(name) {
            return Ok(vec![parse(&format!("{}{suffix}", alias.target))?]);
        }
        let registries = match &self.search {
            Some((list, at)) if !list.is_empty() => {
                if self.short_name_mode == ShortNameMode::Enforcing && list.len() > 1 {
                    return Err(ConfigError::AmbiguousShortName {
                        name: name.to_string(),
                        registries: list.clone(),
                        at: at.clone(),
                    });
                }
                list.clone()
            }
            _ => vec![DOCKER_HUB.to_string()],
        };
        registries
            .iter()
            .map(|registry| parse(&format!("{registry}/{input}")))
            .collect()
    }
}

/// distribution/reference `splitDockerDomain`: the text names no registry host.
pub(super) fn is_short_name(input: &str) -> bool {
    match input.split_once('/') {
        None => true,
        Some((first, _)) => {
            !first.contains(['.', ':'])
                && first != "localhost"
                && !first.bytes().any(|b| b.is_ascii_uppercase())
        }
    }
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

    const SHORT: &str = r#"
        unqualified-search-registries = ["registry.fedoraproject.org", "quay.io", "docker.io"]
        [aliases]
        "fedora" = "registry.fedoraproject.org/fedora"
        "org/tool" = "ghcr.io/org/tool"
    "#;

    /// `name: config, typed name => [candidates]`.
    macro_rules! expands {
        ($($name:ident: $conf:expr, $input:expr => [$($want:expr),* $(,)?];)*) => {$(
            #[test]
            fn $name() {
                let got = conf($conf).expand_short_name(&$input).unwrap_or_else(|e| panic!("{e}"));
                let got: Vec<String> = got.iter().map(ToString::to_string).collect();
                let want: Vec<String> = vec![$($want.to_string()),*];
                assert_eq!(got, want);
            }
        )*};
    }

    expands! {
        search_in_order: SHORT, "busybox" => [
            "registry.fedoraproject.org/busybox",
            "quay.io/busybox",
            "docker.io/library/busybox",
        ];
        search_keeps_tag_and_namespace: SHORT, "user/app:1" => [
            "registry.fedoraproject.org/user/app:1",
            "quay.io/user/app:1",
            "docker.io/user/app:1",
        ];
        alias_wins: SHORT, "fedora" => ["registry.fedoraproject.org/fedora"];
        alias_gets_the_tag: SHORT, "fedora:40" => ["registry.fedoraproject.org/fedora:40"];
        alias_gets_the_digest: SHORT, format!("fedora@{DIGEST}") => [format!("registry.fedoraproject.org/fedora@{DIGEST}")];
        alias_with_namespace: SHORT, "org/tool:2" => ["ghcr.io/org/tool:2"];
        qualified_is_itself: SHORT, "quay.io/x/y:1" => ["quay.io/x/y:1"];
        hub_qualified_is_itself: SHORT, "docker.io/busybox" => ["docker.io/library/busybox"];
        localhost_is_a_host: SHORT, "localhost/app" => ["localhost/app"];
        port_is_a_host: SHORT, "reg:5000/app" => ["reg:5000/app"];
        uppercase_first_is_a_host: SHORT, "Reg/app" => ["Reg/app"];
        no_search_means_docker_hub: "", "busybox" => ["docker.io/library/busybox"];
        empty_search_means_docker_hub: "unqualified-search-registries = []", "user/app" => ["docker.io/user/app"];
        hub_search: "unqualified-search-registries = [\"docker.io\"]", "alpine:3.20" => ["docker.io/library/alpine:3.20"];
        enforcing_with_one_registry_is_unambiguous: "short-name-mode = \"enforcing\"\nunqualified-search-registries = [\"quay.io\"]", "app" => ["quay.io/app"];
        enforcing_alias_is_unambiguous: "short-name-mode = \"enforcing\"\nunqualified-search-registries = [\"a.io\", \"b.io\"]\n[aliases]\n\"app\" = \"b.io/app\"", "app" => ["b.io/app"];
    }

    #[test]
    fn enforcing_with_several_registries_is_an_error() {
        let conf = conf(
            "short-name-mode = \"enforcing\"\nunqualified-search-registries = [\"a.io\", \"b.io\"]\n",
        );
        let err = conf.expand_short_name("app:1").unwrap_err();
        assert!(
            matches!(err, ConfigError::AmbiguousShortName { .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("\"app\"") && msg.contains("/t/registries.conf:2:33"),
            "{msg}"
        );
        assert_eq!(conf.expand_short_name("a.io/app").unwrap().len(), 1);
    }

    #[test]
    fn expand_rejects_invalid_names() {
        let err = conf("").expand_short_name("Busybox").unwrap_err();
        assert!(matches!(err, ConfigError::ParseReference { .. }), "{err:?}");
    }

    /// Docker's policy (rbuild's default): a short name is docker.io's, whatever aliases
    /// and search registries the files hold; a full name is unchanged.
    #[test]
    fn docker_policy_ignores_aliases_and_search_registries() {
        let text = "unqualified-search-registries = [\"quay.io\", \"docker.io\"]\n\
                    [aliases]\n\"centos\" = \"quay.io/centos/centos\"\n";
        let files = conf(text);
        let names = |c: &RegistriesConf, n: &str| -> Vec<String> {
            c.expand_short_name(n)
                .unwrap()
                .iter()
                .map(|r| r.to_string())
                .collect()
        };
        assert_eq!(names(&files, "centos:7"), vec!["quay.io/centos/centos:7"]);
        let docker = files.with_short_names(ShortNames::Docker);
        assert_eq!(
            names(&docker, "centos:7"),
            vec!["docker.io/library/centos:7"]
        );
        assert_eq!(names(&docker, "team/app"), vec!["docker.io/team/app"]);
        assert_eq!(names(&docker, "quay.io/x/y:1"), vec!["quay.io/x/y:1"]);
    }
}
