//! `WWW-Authenticate` challenges and token-endpoint responses (`registry::auth`) from any
//! bytes, as a hostile registry or token server sends them.
//!
//! Input: read both as a header value (UTF-8, lossily) and as a token response body.
//!
//! Invariants:
//! - challenge parsing is deterministic and ignores surrounding blanks; a parsed challenge,
//!   written back with every parameter quoted (RFC 7235 `quoted-string`, `\` escaping `"`
//!   and `\`), parses to the same challenge;
//! - a token response yields a non-empty token and a lifetime of at least the spec's 60 s;
//!   the token is the document's `token`, else its `access_token`, and the lifetime its
//!   `expires_in` when that is longer.

use std::time::Duration;

use rbuild::registry::auth::{Challenge, TokenResponse, parse_challenges};
use serde_json::Value;

pub fn check(data: &[u8]) {
    let header = String::from_utf8_lossy(data).into_owned();
    let parsed = parse_challenges(&header);
    assert_eq!(
        parsed,
        parse_challenges(&header),
        "challenge parsing is not deterministic"
    );
    assert_eq!(
        parsed.as_ref().ok(),
        parse_challenges(&format!(" {header} ")).as_ref().ok(),
        "surrounding blanks changed the challenge of {header:?}"
    );
    if let Ok(challenge) = &parsed {
        let written = write(challenge);
        assert_eq!(
            parse_challenges(&written).as_ref(),
            Ok(challenge),
            "{challenge:?} written as {written:?} parses differently"
        );
    }

    let realm = "https://auth.example/token";
    if let Ok((token, life)) = TokenResponse::parse(realm, data) {
        assert!(!token.is_empty(), "empty token accepted");
        assert!(
            life >= Duration::from_secs(60),
            "token lifetime {life:?} under 60 s"
        );
        if let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(data) {
            let field = |k: &str| doc.get(k).and_then(Value::as_str).filter(|t| !t.is_empty());
            assert_eq!(
                Some(token.as_str()),
                field("token").or(field("access_token")),
                "the token is not the document's"
            );
            if let Some(secs) = doc.get("expires_in").and_then(Value::as_u64) {
                assert_eq!(
                    life,
                    Duration::from_secs(secs.max(60)),
                    "lifetime is not expires_in"
                );
            }
        }
    }
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn write(challenge: &Challenge) -> String {
    match challenge {
        Challenge::Basic { realm } => format!("Basic realm={}", quote(realm)),
        Challenge::Bearer {
            realm,
            service,
            scope,
        } => {
            let mut s = format!("Bearer realm={}", quote(realm));
            if let Some(service) = service {
                s.push_str(&format!(",service={}", quote(service)));
            }
            if let Some(scope) = scope {
                s.push_str(&format!(",scope={}", quote(scope)));
            }
            s
        }
    }
}
