//! Registry authentication, the pure half: `WWW-Authenticate` challenges (RFC 7235, with the
//! Docker token-auth extensions), token scopes, token responses and a cache with expiry.
//! No network here: the HTTP client asks a challenge's realm for a token and stores it here.
//!
//! References: the distribution token spec (docs/spec/auth/token.md): a 401 carries
//! `Bearer realm="…",service="…",scope="repository:name:pull"`; the client GETs
//! `realm?service=…&scope=…` (Basic credentials if it has them) and gets
//! `{"token"|"access_token", "expires_in", "issued_at"}`; `expires_in` defaults to 60 s.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// One authentication challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic {
        realm: String,
    },
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("unsupported authentication scheme in WWW-Authenticate: {0:?}")]
    UnsupportedScheme(String),
    #[error("malformed WWW-Authenticate header {header:?}: {reason}")]
    Malformed {
        header: String,
        reason: &'static str,
    },
    #[error("Bearer challenge without a realm: {0:?}")]
    NoRealm(String),
}

/// Parse a `WWW-Authenticate` header value. The first supported challenge wins, Bearer
/// before Basic when both are offered (a token carries scopes; Basic sends the password on
/// every request).
pub fn parse_challenges(header: &str) -> Result<Challenge, ChallengeError> {
    let malformed = |reason| ChallengeError::Malformed {
        header: header.to_string(),
        reason,
    };
    let mut found: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    let mut rest = header.trim();
    while !rest.is_empty() {
        // scheme token
        let end = rest.find([' ', ',']).unwrap_or(rest.len());
        let scheme = rest[..end].to_ascii_lowercase();
        rest = rest[end..].trim_start_matches([' ', ',']);
        let mut params = BTreeMap::new();
        // auth-params: name=value or name="quoted", comma separated, until the next scheme
        while let Some(eq) = rest.find('=') {
            let name = rest[..eq].trim_end();
            if name.contains([' ', ',']) || name.is_empty() {
                break; // the next challenge's scheme
            }
            let after = rest[eq + 1..].trim_start();
            let (value, used) = if let Some(q) = after.strip_prefix('"') {
                let mut out = String::new();
                let mut chars = q.char_indices();
                let mut close = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                out.push(n);
                            }
                        }
                        '"' => {
                            close = Some(i);
                            break;
                        }
                        c => out.push(c),
                    }
                }
                let close = close.ok_or_else(|| malformed("unterminated quoted string"))?;
                (out, 1 + close + 1)
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_string(), end)
            };
            params.insert(name.trim().to_ascii_lowercase(), value);
            rest = after[used..].trim_start_matches([' ', ',']);
        }
        if scheme.is_empty() {
            return Err(malformed("empty scheme"));
        }
        found.push((scheme, params));
    }
    let bearer = found.iter().find(|(s, _)| s == "bearer");
    if let Some((_, p)) = bearer {
        let realm = p
            .get("realm")
            .cloned()
            .ok_or_else(|| ChallengeError::NoRealm(header.to_string()))?;
        return Ok(Challenge::Bearer {
            realm,
            service: p.get("service").cloned(),
            scope: p.get("scope").cloned(),
        });
    }
    if let Some((_, p)) = found.iter().find(|(s, _)| s == "basic") {
        return Ok(Challenge::Basic {
            realm: p.get("realm").cloned().unwrap_or_default(),
        });
    }
    Err(ChallengeError::UnsupportedScheme(
        found.first().map(|(s, _)| s.clone()).unwrap_or_default(),
    ))
}

/// What a token must allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Access {
    Pull,
    PushPull,
}

/// `repository:NAME:pull` or `repository:NAME:pull,push`.
pub(crate) fn scope(repository: &str, access: Access) -> String {
    match access {
        Access::Pull => format!("repository:{repository}:pull"),
        Access::PushPull => format!("repository:{repository}:pull,push"),
    }
}

/// The scopes a push needs: push+pull on the target and, for a cross-repository blob mount,
/// pull on the source repository (in the same token, as the spec's mount flow requires).
pub(crate) fn push_scopes(target: &str, mount_from: Option<&str>) -> Vec<String> {
    let mut v = vec![scope(target, Access::PushPull)];
    if let Some(src) = mount_from.filter(|s| *s != target) {
        v.push(scope(src, Access::Pull));
    }
    v
}

/// A token endpoint's answer (`token` or, OAuth2-style, `access_token`).
#[derive(Clone, Debug, Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub(crate) token: Option<String>,
    #[serde(default)]
    pub(crate) access_token: Option<String>,
    #[serde(default)]
    pub(crate) expires_in: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token response from {realm} is not JSON: {reason}")]
    NotJson { realm: String, reason: String },
    #[error("token response from {realm} holds no token")]
    Empty { realm: String },
}

/// The token spec's default lifetime when `expires_in` is absent, and its minimum.
pub(crate) const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

impl TokenResponse {
    pub fn parse(realm: &str, body: &[u8]) -> Result<(String, Duration), TokenError> {
        let r: TokenResponse = serde_json::from_slice(body).map_err(|e| TokenError::NotJson {
            realm: realm.to_string(),
            reason: e.to_string(),
        })?;
        let token = r
            .token
            .filter(|t| !t.is_empty())
            .or(r.access_token.filter(|t| !t.is_empty()))
            .ok_or_else(|| TokenError::Empty {
                realm: realm.to_string(),
            })?;
        let life = r
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME)
            .max(DEFAULT_TOKEN_LIFETIME);
        Ok((token, life))
    }
}

/// Tokens by (realm, service, scopes), reused until shortly before they expire.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    tokens: BTreeMap<(String, String, String), (String, Instant)>,
}

/// Refresh this long before expiry so a token does not lapse mid-request.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);

impl TokenCache {
    fn key(realm: &str, service: &str, scopes: &[String]) -> (String, String, String) {
        let mut s = scopes.to_vec();
        s.sort();
        (realm.to_string(), service.to_string(), s.join(" "))
    }

    pub(crate) fn get(
        &self,
        realm: &str,
        service: &str,
        scopes: &[String],
        now: Instant,
    ) -> Option<&str> {
        self.tokens
            .get(&Self::key(realm, service, scopes))
            .filter(|(_, until)| now + EXPIRY_MARGIN < *until)
            .map(|(t, _)| t.as_str())
    }

    pub(crate) fn put(
        &mut self,
        realm: &str,
        service: &str,
        scopes: &[String],
        token: String,
        life: Duration,
        now: Instant,
    ) {
        self.tokens
            .insert(Self::key(realm, service, scopes), (token, now + life));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! challenges {
        ($($name:ident: $h:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(parse_challenges($h), $want);
            }
        )*};
    }

    fn bearer(
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> Result<Challenge, ChallengeError> {
        Ok(Challenge::Bearer {
            realm: realm.into(),
            service: service.map(Into::into),
            scope: scope.map(Into::into),
        })
    }

    challenges! {
        docker_hub: r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#
            => bearer("https://auth.docker.io/token", Some("registry.docker.io"), Some("repository:library/busybox:pull"));
        scope_with_comma: r#"Bearer realm="https://r/t",service="r",scope="repository:a/b:pull,push""#
            => bearer("https://r/t", Some("r"), Some("repository:a/b:pull,push"));
        spaces_and_case: r#"bearer   realm = "https://r/t" , service="svc""#
            => bearer("https://r/t", Some("svc"), None);
        unquoted_values: "Bearer realm=https://r/t,service=svc"
            => bearer("https://r/t", Some("svc"), None);
        escaped_quote: r#"Bearer realm="https://r/t?a=\"b\"""#
            => bearer("https://r/t?a=\"b\"", None, None);
        basic: r#"Basic realm="rbuild-test""#
            => Ok(Challenge::Basic { realm: "rbuild-test".into() });
        bearer_preferred_over_basic: r#"Basic realm="x", Bearer realm="https://r/t",service="s""#
            => bearer("https://r/t", Some("s"), None);
        bearer_without_realm: "Bearer service=\"s\""
            => Err(ChallengeError::NoRealm("Bearer service=\"s\"".into()));
        unknown_scheme: "Negotiate abc"
            => Err(ChallengeError::UnsupportedScheme("negotiate".into()));
        unterminated: "Bearer realm=\"https://r"
            => Err(ChallengeError::Malformed { header: "Bearer realm=\"https://r".into(), reason: "unterminated quoted string" });
    }

    #[test]
    fn push_scopes_add_mount_source() {
        assert_eq!(push_scopes("a/b", None), vec!["repository:a/b:pull,push"]);
        assert_eq!(
            push_scopes("a/b", Some("a/b")),
            vec!["repository:a/b:pull,push"]
        );
        assert_eq!(
            push_scopes("a/b", Some("c/d")),
            vec!["repository:a/b:pull,push", "repository:c/d:pull"]
        );
    }

    #[test]
    fn token_responses() {
        let (t, life) = TokenResponse::parse("r", br#"{"token":"abc","expires_in":300}"#).unwrap();
        assert_eq!((t.as_str(), life), ("abc", Duration::from_secs(300)));
        let (t, life) = TokenResponse::parse("r", br#"{"access_token":"xyz"}"#).unwrap();
        assert_eq!((t.as_str(), life), ("xyz", DEFAULT_TOKEN_LIFETIME));
        // Lifetimes under the spec's minimum are raised to it.
        let (_, life) = TokenResponse::parse("r", br#"{"token":"a","expires_in":5}"#).unwrap();
        assert_eq!(life, DEFAULT_TOKEN_LIFETIME);
        assert!(matches!(
            TokenResponse::parse("r", b"{}"),
            Err(TokenError::Empty { .. })
        ));
        assert!(matches!(
            TokenResponse::parse("r", b"<html>"),
            Err(TokenError::NotJson { .. })
        ));
    }

    #[test]
    fn cache_expires_with_margin_and_ignores_scope_order() {
        let mut c = TokenCache::default();
        let t0 = Instant::now();
        let scopes = vec!["b".to_string(), "a".to_string()];
        c.put(
            "realm",
            "svc",
            &scopes,
            "tok".into(),
            Duration::from_secs(60),
            t0,
        );
        let reordered = vec!["a".to_string(), "b".to_string()];
        assert_eq!(c.get("realm", "svc", &reordered, t0), Some("tok"));
        assert_eq!(
            c.get("realm", "svc", &reordered, t0 + Duration::from_secs(49)),
            Some("tok")
        );
        assert_eq!(
            c.get("realm", "svc", &reordered, t0 + Duration::from_secs(51)),
            None
        );
        assert_eq!(c.get("realm", "other", &reordered, t0), None);
    }
}
