//! The `prefix` (and `location`) value of a `[[registry]]` table, and the rule deciding whether
//! an image name falls under it (containers-registries.conf(5), "Choosing a `[[registry]]`
//! TOML table"; c/image `sysregistriesv2.refMatchingPrefix`).
//!
//! Owns: validating a prefix/location string and matching one prefix against one full image
//! name (`host[:port]/path[:tag][@digest]`). Must not pick among several tables (the caller
//! applies "longest prefix wins") and must not build references.
//!
//! Deviations from c/image, both where its own comments call the behaviour unintended:
//! - A prefix that is only `host` does not match `host:port/…` (c/image lets `example.com`
//!   match `example.com:5000/x` and says "DON'T RELY ON THE CURRENT BEHAVIOR"). The man page's
//!   rule is "continue with the appropriate separator", and after a host that is `/`.
//! - A wildcard `*.example.com` matches the whole `host[:port]` component, so a `location`
//!   replaces the port too; c/image replaces the host and keeps the port glued to the location.

/// A validated `prefix`. Either exact (`host[:port][/namespace…][/repo][:tag|@digest]`) or a
/// leading-wildcard host (`*.example.com`, any number of subdomains, any port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Prefix {
    Exact(String),
    /// The text including the leading `*`.
    Wildcard(String),
}

impl Prefix {
    /// Validate a prefix as c/image's `parseLocation` does (trailing `/` trimmed, no URL
    /// scheme) plus the wildcard rule of the man page (`*.` only at the start, no `/`, `@`
    /// or `:` after it). `Err` carries the reason, for the caller to attach a position to.
    pub(super) fn parse(text: &str) -> Result<Prefix, String> {
        let text = clean_location(text)?;
        match text.strip_prefix("*.") {
            Some(rest) => {
                if rest.is_empty() || rest.contains(['/', '@', ':', '*']) {
                    return Err(format!(
                        "wildcard prefix {text:?} must have the form *.example.com (no port, path, tag or digest, one leading *)"
                    ));
                }
                Ok(Prefix::Wildcard(text))
            }
            None if text.contains('*') => Err(format!(
                "{text:?}: a wildcard is only allowed as a leading `*.` (as in *.example.com)"
            )),
            None => Ok(Prefix::Exact(text)),
        }
    }

    /// The prefix as configured; drop-in files replace tables whose prefix text is equal.
    pub(super) fn as_str(&self) -> &str {
        match self {
            Prefix::Exact(text) | Prefix::Wildcard(text) => text,
        }
    }

    pub(super) fn is_wildcard(&self) -> bool {
        matches!(self, Prefix::Wildcard(_))
    }

    /// How specific the prefix is for the "longest match wins" rule: the configured length,
    /// as c/image measures it; on equal length an exact prefix beats a wildcard (c/image lets
    /// whichever sorts first win, which is the wildcard since `*` sorts before letters).
    pub(super) fn specificity(&self) -> (usize, bool) {
        (self.as_str().len(), !self.is_wildcard())
    }

    /// If `name` (`host[:port]/path[:tag][@digest]`, as `Reference`'s `Display` writes it)
    /// falls under this prefix, the number of bytes of `name` it covers; a `location`
    /// replaces exactly those bytes.
    pub(super) fn matched_len(&self, name: &str) -> Option<usize> {
        match self {
            Prefix::Exact(prefix) => {
                let rest = name.strip_prefix(prefix.as_str())?;
                let boundary = match rest.as_bytes().first() {
                    None | Some(b'/') => true,
                    // A tag or digest can only follow a repository, never a bare host
                    // (where `:` would start a port).
                    Some(b':' | b'@') => prefix.contains('/'),
                    Some(_) => false,
                };
                boundary.then_some(prefix.len())
            }
            Prefix::Wildcard(prefix) => {
                let suffix = &prefix[1..]; // ".example.com"
                let host_port = name.split('/').next().unwrap_or_default();
                if host_port.starts_with('[') {
                    return None; // an IPv6 literal has no DNS suffix
                }
                let host = host_port.split(':').next().unwrap_or_default();
                (host.len() > suffix.len() && host.ends_with(suffix)).then_some(host_port.len())
            }
        }
    }
}

/// c/image `parseLocation`: trailing slashes trimmed; a URL scheme is an error (the man page
/// formats are `host[:port]/…`, and `insecure` is the way to say "plain HTTP").
pub(super) fn clean_location(text: &str) -> Result<String, String> {
    let trimmed = text.trim_end_matches('/');
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        return Err(format!(
            "{text:?}: URI schemes are not supported; write host[:port][/path] (and `insecure = true` for plain HTTP)"
        ));
    }
    if trimmed.is_empty() {
        return Err("must not be empty".to_string());
    }
    if trimmed.contains(char::is_whitespace) {
        return Err(format!("{text:?} contains white space"));
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Prefix {
        Prefix::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// `name: prefix, image name => matched length or None`.
    macro_rules! matches {
        ($($name:ident: $prefix:expr, $image:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(p($prefix).matched_len($image), $want, "{} vs {}", $prefix, $image);
            }
        )*};
    }

    matches! {
        host_matches_its_repositories: "example.com", "example.com/foo/bar:1" => Some(11);
        host_does_not_match_longer_host: "example.com", "example.community/x" => None;
        host_does_not_match_host_with_port: "example.com", "example.com:5000/x" => None;
        host_port_matches: "example.com:5000", "example.com:5000/x" => Some(16);
        host_port_is_not_another_port: "example.com:5000", "example.com:50001/x" => None;
        namespace_on_component_boundary: "example.com/foo", "example.com/foo/bar" => Some(15);
        namespace_not_mid_component: "example.com/foo", "example.com/foobar/x" => None;
        repository_then_tag: "example.com/foo/bar", "example.com/foo/bar:1" => Some(19);
        repository_then_digest: "example.com/foo/bar", "example.com/foo/bar@sha256:00" => Some(19);
        exact_name: "example.com/foo/bar", "example.com/foo/bar" => Some(19);
        tag_in_prefix: "example.com/foo/bar:1", "example.com/foo/bar:1" => Some(21);
        tag_in_prefix_is_not_longer_tag: "example.com/foo/bar:1", "example.com/foo/bar:10" => None;
        hub_library_needs_library: "docker.io/alpine", "docker.io/library/alpine" => None;
        hub_namespace_alpine: "docker.io/alpine", "docker.io/alpine/git" => Some(16);
        wildcard_one_level: "*.example.com", "blah.example.com/foo/img:1" => Some(16);
        wildcard_many_levels: "*.example.com", "foo.bar.example.com/x" => Some(19);
        wildcard_not_apex: "*.example.com", "example.com/x" => None;
        wildcard_not_suffix_text: "*.example.com", "fooexample.com/x" => None;
        wildcard_not_in_path: "*.example.com", "evil.org/a.example.com/x" => None;
        wildcard_not_followed_by_more_host: "*.example.com", "a.example.com.evil.org/x" => None;
        wildcard_takes_the_port: "*.example.com", "a.example.com:5000/x" => Some(18);
        wildcard_not_ipv6: "*.example.com", "[::1]:5000/x" => None;
    }

    /// `name: text => Ok(kind) | Err(substring of the reason)`.
    macro_rules! parses {
        ($($name:ident: $text:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                let got = Prefix::parse($text).map_err(|e| e.to_string());
                match ($want, got) {
                    (Ok(want), Ok(got)) => assert_eq!(got, want),
                    (Err(want), Err(got)) => assert!(got.contains(want), "{got}"),
                    (want, got) => panic!("{}: want {want:?}, got {got:?}", $text),
                }
            }
        )*};
    }

    parses! {
        trailing_slash_trimmed: "example.com/foo/" => Ok::<_, &str>(Prefix::Exact("example.com/foo".into()));
        wildcard: "*.example.com" => Ok::<_, &str>(Prefix::Wildcard("*.example.com".into()));
        scheme_rejected: "https://example.com" => Err::<Prefix, _>("URI schemes are not supported");
        empty_rejected: "/" => Err::<Prefix, _>("must not be empty");
        wildcard_with_path: "*.example.com/foo" => Err::<Prefix, _>("*.example.com");
        wildcard_with_port: "*.example.com:5000" => Err::<Prefix, _>("*.example.com");
        wildcard_in_middle: "example.*.com" => Err::<Prefix, _>("leading `*.`");
        bare_star: "*." => Err::<Prefix, _>("*.example.com");
        space: "example.com/a b" => Err::<Prefix, _>("white space");
    }

    #[test]
    fn exact_beats_wildcard_of_equal_length() {
        assert!(p("a.b.com").specificity() > p("*.b.com").specificity());
        assert!(p("*.bb.com").specificity() > p("a.b.com").specificity());
    }
}
