//! Reading one credentials file — Docker's `config.json` or a containers `auth.json`, which
//! share the format (containers-auth.json(5); docker/cli `configfile.ConfigFile`) — and
//! deciding what it says about one registry and repository.
//!
//! Owns: the read-side schema (`auths` with `auth`/`username`/`password`/`identitytoken`/
//! `registrytoken`, `credHelpers`, `credsStore`), decoding `auth`, and choosing the entry or
//! helper that applies. Must not run helpers (the caller does, in the order this file's
//! [`AuthFile`] methods describe) and must not write (`document.rs`).
//!
//! Parse errors carry a position and serde's category only: serde_json's messages quote
//! the offending value, which in these files is a password.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;

use super::key::AuthKey;
use super::{Credential, CredentialError};

/// Standard base64, padding optional when decoding (Docker writes padding; hand-written
/// files sometimes lack it).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The fields of a credentials file that rbuild reads; everything else is ignored here and
/// preserved by `document.rs` when writing.
#[derive(Debug, Default, Deserialize)]
pub(super) struct AuthFile {
    #[serde(skip)]
    path: PathBuf,
    #[serde(default)]
    auths: Option<BTreeMap<String, AuthEntry>>,
    #[serde(rename = "credHelpers", default)]
    cred_helpers: Option<BTreeMap<String, String>>,
    #[serde(rename = "credsStore", default)]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, alias = "identityToken")]
    identitytoken: Option<String>,
    #[serde(default, alias = "registryToken")]
    registrytoken: Option<String>,
}

impl AuthFile {
    /// Read `path`; `None` when it does not exist. An empty file is an empty configuration
    /// (docker/cli tolerates it; `docker login` can leave one behind).
    pub(super) fn read(path: &Path) -> Result<Option<AuthFile>, CredentialError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CredentialError::ReadAuthFile {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        AuthFile::parse(&text, path).map(Some)
    }

    pub(super) fn parse(text: &str, path: &Path) -> Result<AuthFile, CredentialError> {
        if text.trim().is_empty() {
            return Ok(AuthFile {
                path: path.to_path_buf(),
                ..AuthFile::default()
            });
        }
        let mut file: AuthFile = serde_json::from_str(text).map_err(|e| json_error(path, &e))?;
        file.path = path.to_path_buf();
        Ok(file)
    }

    /// The `credHelpers` helper for `registry` (a whole-registry key), if any. When one is
    /// configured, "the base64 encoded authentication will not be used"
    /// (containers-auth.json(5)): its answer is this file's answer.
    pub(super) fn cred_helper(&self, registry: &AuthKey) -> Option<&str> {
        let helpers = self.cred_helpers.as_ref()?;
        best(
            helpers.iter().filter_map(|(written, helper)| {
                let key = AuthKey::parse(written);
                let applies = key.namespace().is_none() && key.host() == registry.host();
                applies.then_some((written.as_str(), 0, helper.as_str()))
            }),
            registry,
        )
        .filter(|helper| !helper.is_empty())
    }

    /// The global `credsStore` helper, if any (Docker-only; `""` means none).
    pub(super) fn creds_store(&self) -> Option<&str> {
        self.creds_store.as_deref().filter(|s| !s.is_empty())
    }

    /// The credential of the most specific `auths` key that applies to `repository` on
    /// `registry`: a namespace key beats the registry key, and among spellings of the same
    /// key the one Docker writes wins, then the first in byte order. Entries without any
    /// credential (`{}`, which `docker login` leaves next to a `credsStore`) are passed over.
    pub(super) fn auth_for(
        &self,
        registry: &AuthKey,
        repository: &str,
    ) -> Result<Option<Credential>, CredentialError> {
        let Some(auths) = &self.auths else {
            return Ok(None);
        };
        let mut candidates: Vec<(&str, usize, &AuthEntry)> = auths
            .iter()
            .filter_map(|(written, entry)| {
                let key = AuthKey::parse(written);
                let specificity = key.specificity_for(registry.host(), repository)?;
                Some((written.as_str(), specificity, entry))
            })
            .collect();
        // Most specific first; then Docker's spelling; then byte order (the map's order).
        candidates.sort_by_key(|(written, specificity, _)| {
            let canonical = AuthKey::parse(written).is_canonical_spelling(written);
            (std::cmp::Reverse(*specificity), !canonical)
        });
        for (written, _, entry) in candidates {
            if let Some(credential) = self.credential(written, entry)? {
                return Ok(Some(credential));
            }
        }
        Ok(None)
    }

    /// One entry's credential. A registry token is used as-is and an identity token is
    /// exchanged for one, both ahead of the password (moby `registry/auth.go`
    /// `loginV2`/`NewAuthorizer` order).
    fn credential(
        &self,
        key: &str,
        entry: &AuthEntry,
    ) -> Result<Option<Credential>, CredentialError> {
        let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        if let Some(token) = nonempty(&entry.registrytoken) {
            return Ok(Some(Credential::RegistryToken(token)));
        }
        if let Some(token) = nonempty(&entry.identitytoken) {
            return Ok(Some(Credential::IdentityToken(token)));
        }
        if let Some(auth) = nonempty(&entry.auth) {
            let (username, password) =
                decode_auth(&auth).map_err(|reason| CredentialError::DecodeAuth {
                    path: self.path.clone(),
                    key: key.to_string(),
                    reason,
                })?;
            return Ok(Some(Credential::Basic { username, password }));
        }
        match (nonempty(&entry.username), nonempty(&entry.password)) {
            (Some(username), Some(password)) => Ok(Some(Credential::Basic { username, password })),
            _ => Ok(None),
        }
    }
}

/// Among `(written key, specificity, value)` candidates, the most specific, preferring the
/// canonical spelling, then byte order.
fn best<'a, T>(
    candidates: impl Iterator<Item = (&'a str, usize, T)>,
    registry: &AuthKey,
) -> Option<T> {
    candidates
        .map(|(written, specificity, value)| {
            let canonical = registry.is_canonical_spelling(written);
            ((std::cmp::Reverse(specificity), !canonical, written), value)
        })
        .min_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, value)| value)
}

/// `auth` is base64 of `username:password` (docker/cli `configfile.decodeAuth`): the
/// username is everything before the first `:`, must not be empty, and NULs around the
/// password are trimmed as Docker trims them. The reason never contains the decoded text.
pub(super) fn decode_auth(auth: &str) -> Result<(String, String), &'static str> {
    let bytes = BASE64
        .decode(auth.trim())
        .map_err(|_| "`auth` is not valid base64")?;
    let text = String::from_utf8(bytes).map_err(|_| "`auth` does not decode to UTF-8 text")?;
    match text.split_once(':') {
        Some((username, password)) if !username.is_empty() => Ok((
            username.to_string(),
            password.trim_matches('\0').to_string(),
        )),
        _ => Err("`auth` does not decode to username:password"),
    }
}

/// `auth` for `username` and `password`.
pub(super) fn encode_auth(username: &str, password: &str) -> String {
    BASE64.encode(format!("{username}:{password}"))
}

pub(super) fn json_error(path: &Path, e: &serde_json::Error) -> CredentialError {
    CredentialError::ParseAuthFile {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        problem: match e.classify() {
            serde_json::error::Category::Syntax => "invalid JSON",
            serde_json::error::Category::Eof => "unexpected end of file",
            serde_json::error::Category::Data => "a field has the wrong type",
            serde_json::error::Category::Io => "read error",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for (user, pass) in [
            ("u", "p"),
            ("user", "pa:ss:word"),
            ("ü", ""),
            ("a", "é\u{1F512}"),
        ] {
            assert_eq!(
                decode_auth(&encode_auth(user, pass)).unwrap(),
                (user.into(), pass.into())
            );
        }
        assert_eq!(encode_auth("user", "pass"), "dXNlcjpwYXNz");
    }

    /// `name: auth text => Ok((user, pass)) | Err(reason)`.
    macro_rules! decodes {
        ($($name:ident: $auth:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                let got = decode_auth($auth).map(|(u, p)| (u, p));
                assert_eq!(got, $want.map(|(u, p): (&str, &str)| (u.to_string(), p.to_string())));
            }
        )*};
    }

    decodes! {
        padded: "dXNlcjpwYXNz" => Ok::<_, &str>(("user", "pass"));
        unpadded: "dTpw" => Ok::<_, &str>(("u", "p"));
        unpadded_needing_padding: "dTpwcA" => Ok::<_, &str>(("u", "pp"));
        nul_trimmed: &BASE64.encode("u:p\0\0") => Ok::<_, &str>(("u", "p"));
        empty_password: &BASE64.encode("u:") => Ok::<_, &str>(("u", ""));
        not_base64: "!!!" => Err::<(&str, &str), _>("`auth` is not valid base64");
        no_colon: &BASE64.encode("user") => Err::<(&str, &str), _>("`auth` does not decode to username:password");
        empty_username: &BASE64.encode(":pass") => Err::<(&str, &str), _>("`auth` does not decode to username:password");
        not_utf8: &BASE64.encode([0xff, b':', b'p']) => Err::<(&str, &str), _>("`auth` does not decode to UTF-8 text");
    }

    #[test]
    fn parse_errors_do_not_quote_values() {
        let err = AuthFile::parse(
            r#"{"auths": {"r.io": {"auth": 12345678}}}"#,
            Path::new("/c.json"),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(!msg.contains("12345678"), "{msg}");
        assert!(msg.contains("/c.json:1:"), "{msg}");
        assert!(AuthFile::parse("  \n", Path::new("/c.json")).is_ok());
        assert!(
            AuthFile::parse(
                r#"{"auths": null, "credsStore": null}"#,
                Path::new("/c.json")
            )
            .is_ok()
        );
    }
}
