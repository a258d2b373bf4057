//! The registry credentials a user already has: what `docker login`, `podman login`,
//! `buildah login` and `skopeo login` left behind, found the way those tools find them, and
//! (for `rbuild login`/`logout`) stored and erased the way `docker login` does.
//!
//! Owns: `CredentialSources` (which files, which `PATH` for helpers — injectable),
//! `CredentialStore` (`lookup`, `store`, `erase`) and `Credential`. Must not talk to a
//! registry (turning a credential into a token is the HTTP client's job) and must never put
//! a secret into a `Debug`, `Display` or error string. Which files is `credentials/sources.rs`,
//! key spellings are `credentials/key.rs`, reading one file is `credentials/auth_file.rs`,
//! editing one is `credentials/document.rs`, the helper protocol is `credentials/helper.rs`.
//!
//! Files are read in the order of containers-auth.json(5) (c/image `getAuthFilePaths`):
//! 1. `$REGISTRY_AUTH_FILE` if set — and then only that file, as c/image does for an
//!    explicitly chosen file;
//! 2. else `$XDG_RUNTIME_DIR/containers/auth.json`, or without `XDG_RUNTIME_DIR`
//!    `/run/containers/<uid>/auth.json` (so `/run/containers/0/auth.json` for root), then
//!    `$XDG_CONFIG_HOME/containers/auth.json` (`~/.config/…`), then Docker's
//!    `$DOCKER_CONFIG/config.json` (`~/.docker/config.json`).
//!
//! The first file that yields a credential wins. Within one file: a `credHelpers` entry for
//! the registry decides alone; else a `credsStore` helper is asked; else, when the helper has
//! nothing (or there is none), the most specific `auths` entry. (Docker stops at the
//! `credsStore` answer; c/image ignores `credsStore`; falling through serves both.)
//! Not read: the legacy `~/.dockercfg`, and registries.conf's `credential-helpers`.

mod auth_file;
mod document;
mod helper;
mod key;
mod sources;

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::PathBuf;

use thiserror::Error;

use auth_file::{AuthFile, encode_auth};
use document::Document;
use helper::Helpers;
use key::AuthKey;
pub(crate) use sources::CredentialSources;

/// A credential for one registry. `Debug` shows the username but never a secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// Basic authentication (the `auth` field, or a helper's username and secret).
    Basic { username: String, password: String },
    /// An OAuth2 refresh token (`identitytoken`, or a helper's `<token>` user), exchanged
    /// for a bearer token at the registry's token endpoint.
    IdentityToken(String),
    /// A bearer token to send as it is (`registrytoken`).
    RegistryToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = format_args!("<redacted>");
        match self {
            Credential::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &hidden)
                .finish(),
            Credential::IdentityToken(_) => f.debug_tuple("IdentityToken").field(&hidden).finish(),
            Credential::RegistryToken(_) => f.debug_tuple("RegistryToken").field(&hidden).finish(),
        }
    }
}

/// Why credentials could not be read, stored or erased. No variant holds a secret.
#[derive(Debug, Error)]
pub enum CredentialError {
    #[error("cannot read credentials file {}", path.display())]
    ReadAuthFile { path: PathBuf, source: io::Error },
    #[error("{}:{line}:{column}: {problem} in credentials file", path.display())]
    ParseAuthFile {
        path: PathBuf,
        line: usize,
        column: usize,
        problem: &'static str,
    },
    #[error("{}: auths entry {key:?}: {reason}", path.display())]
    DecodeAuth {
        path: PathBuf,
        key: String,
        reason: &'static str,
    },
    #[error("cannot write credentials file {}", path.display())]
    WriteAuthFile { path: PathBuf, source: io::Error },
    #[error("credential helper name {name:?} is not usable as docker-credential-<name>")]
    HelperName { name: String },
    #[error("credential helper {program} not found in PATH ({})", path.to_string_lossy())]
    HelperNotFound { program: String, path: OsString },
    #[error("cannot run credential helper {} {action}", program.display())]
    RunHelper {
        program: PathBuf,
        action: &'static str,
        source: io::Error,
    },
    #[error("credential helper {} {action} for {server_url} failed ({status}): {message}", program.display())]
    HelperFailed {
        program: PathBuf,
        action: &'static str,
        server_url: String,
        status: String,
        message: String,
    },
    #[error("credential helper {} get for {server_url}: answer is not the expected JSON (line {line}, column {column})", program.display())]
    HelperAnswer {
        program: PathBuf,
        server_url: String,
        line: usize,
        column: usize,
    },
    #[error(
        "username {username:?} contains ':', which `auth` (base64 of username:password) cannot represent"
    )]
    UsernameWithColon { username: String },
    #[error("credential helper {helper:?} stores whole registries only, not the namespace {key:?}")]
    NamespacedHelperKey { key: String, helper: String },
}

/// Where [`CredentialStore::store`] put a credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredIn {
    File(PathBuf),
    /// The helper's name (`docker-credential-<name>`).
    Helper(String),
}

/// Looks credentials up in, and stores them into, the files of a `CredentialSources`.
#[derive(Clone, Debug)]
pub struct CredentialStore {
    sources: CredentialSources,
}

impl CredentialStore {
    pub(crate) fn new(sources: CredentialSources) -> CredentialStore {
        CredentialStore { sources }
    }

    /// The store for this process's environment.
    pub fn from_env() -> CredentialStore {
        CredentialStore::new(CredentialSources::from_env())
    }

    /// A store that reads and edits the one file `path` and finds no credential helper.
    /// Public (hidden) for the fuzz targets (`fuzz/`).
    #[doc(hidden)]
    pub fn for_file(path: PathBuf) -> CredentialStore {
        CredentialStore::new(CredentialSources {
            files: vec![path.clone()],
            write_file: path,
            helper_path: None,
        })
    }

    fn helpers(&self) -> Helpers<'_> {
        Helpers {
            path: self.sources.helper_path.as_deref(),
        }
    }

    /// The credential for `repository` (`library/busybox`) on `registry` (`docker.io`,
    /// `quay.io`, `localhost:5000`; any Docker Hub spelling, with or without `https://`).
    /// `Ok(None)`: anonymous access.
    pub fn lookup(
        &self,
        registry: &str,
        repository: &str,
    ) -> Result<Option<Credential>, CredentialError> {
        let target = AuthKey::parse(registry).registry();
        let helpers = self.helpers();
        for path in &self.sources.files {
            let Some(file) = AuthFile::read(path)? else {
                continue;
            };
            if let Some(helper) = file.cred_helper(&target) {
                match ask(&helpers, helper, &target)? {
                    Some(credential) => return Ok(Some(credential)),
                    None => continue,
                }
            }
            if let Some(store) = file.creds_store() {
                if let Some(credential) = ask(&helpers, store, &target)? {
                    return Ok(Some(credential));
                }
            }
            if let Some(credential) = file.auth_for(&target, repository)? {
                return Ok(Some(credential));
            }
        }
        Ok(None)
    }

    /// Save `username`/`password` for `registry` (`docker login`): into the file's
    /// `credHelpers` helper for that registry, else its `credsStore`, else as `auth` in
    /// `auths` under Docker's key (`https://index.docker.io/v1/` for Docker Hub). `registry`
    /// may name a namespace (`quay.io/org`) when the file stores it.
    pub fn store(
        &self,
        registry: &str,
        username: &str,
        password: &str,
    ) -> Result<StoredIn, CredentialError> {
        if username.contains(':') {
            return Err(CredentialError::UsernameWithColon {
                username: username.to_string(),
            });
        }
        let key = AuthKey::parse(registry);
        let path = &self.sources.write_file;
        let file = AuthFile::read(path)?.unwrap_or_default();
        if let Some(helper) = file.cred_helper(&key.registry()).or(file.creds_store()) {
            if key.namespace().is_some() {
                return Err(CredentialError::NamespacedHelperKey {
                    key: key.storage_key(),
                    helper: helper.to_string(),
                });
            }
            let server_url = &key.helper_server_urls()[0];
            self.helpers()
                .store(helper, server_url, username, password)?;
            return Ok(StoredIn::Helper(helper.to_string()));
        }
        let mut document = Document::read(path)?;
        document.set_auth(&key.storage_key(), &encode_auth(username, password))?;
        document.write()?;
        Ok(StoredIn::File(path.clone()))
    }

    /// Forget `registry` (`docker logout`): erase it from the helper that would store it, and
    /// remove every `auths` key naming exactly that registry (or namespace) in any spelling.
    /// Other entries and fields stay as they are. `Ok(false)`: there was nothing to erase.
    pub fn erase(&self, registry: &str) -> Result<bool, CredentialError> {
        let key = AuthKey::parse(registry);
        let path = &self.sources.write_file;
        let Some(file) = AuthFile::read(path)? else {
            return Ok(false);
        };
        let mut erased = false;
        if key.namespace().is_none() {
            if let Some(helper) = file.cred_helper(&key).or(file.creds_store()) {
                for server_url in key.helper_server_urls() {
                    erased |= self.helpers().erase(helper, &server_url)?;
                }
            }
        }
        let mut document = Document::read(path)?;
        if document.remove_auths(|written| AuthKey::parse(written) == key)? {
            document.write()?;
            erased = true;
        }
        Ok(erased)
    }
}

/// Ask `helper` for `registry`, trying each server URL spelling (see `key.rs`).
fn ask(
    helpers: &Helpers,
    helper: &str,
    registry: &AuthKey,
) -> Result<Option<Credential>, CredentialError> {
    for server_url in registry.helper_server_urls() {
        if let Some(credential) = helpers.get(helper, &server_url)? {
            return Ok(Some(credential));
        }
    }
    Ok(None)
}

impl CredentialError {
    /// A configured helper program is not installed (a `config.json` copied from another
    /// machine often names `desktop` or `osxkeychain`). Docker fails the pull then; a caller
    /// may prefer to warn and continue anonymously, so this case is easy to tell apart.
    #[cfg(test)]
    pub(crate) fn is_helper_missing(&self) -> bool {
        matches!(self, CredentialError::HelperNotFound { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    const NOT_FOUND: &str = "credentials not found in native keychain";

    /// A temp dir with credential files and fake helpers on a private PATH.
    struct Fixture {
        tmp: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Fixture {
            let tmp = tempfile::tempdir().unwrap();
            fs::create_dir(tmp.path().join("bin")).unwrap();
            Fixture { tmp }
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.tmp.path().join(rel)
        }

        fn file(&self, rel: &str, text: &str) -> PathBuf {
            let path = self.path(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, text).unwrap();
            path
        }

        /// `docker-credential-<name>`: logs `<action> <stdin>` lines, answers `get` and
        /// `erase` for the listed server URLs, and "not found" for the rest.
        fn helper(&self, name: &str, answers: &[(&str, &str)]) {
            let log = self.path(&format!("{name}.log"));
            let cases: String = answers
                .iter()
                .map(|(server, json)| format!("    '{server}') printf '%s' '{json}' ;;\n"))
                .collect();
            let script = format!(
                "#!/bin/sh\ninput=$(cat)\nprintf '%s %s\\n' \"$1\" \"$input\" >> '{log}'\n\
                 case \"$1\" in store) exit 0 ;; esac\n\
                 case \"$input\" in\n{cases}    *) echo '{NOT_FOUND}'; exit 1 ;;\nesac\n",
                log = log.display()
            );
            let path = self.path(&format!("bin/docker-credential-{name}"));
            fs::write(&path, script).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }

        fn log(&self, name: &str) -> String {
            fs::read_to_string(self.path(&format!("{name}.log"))).unwrap_or_default()
        }

        /// A store reading `files` (relative) in order and writing the last one.
        fn store(&self, files: &[&str]) -> CredentialStore {
            let files: Vec<PathBuf> = files.iter().map(|f| self.path(f)).collect();
            CredentialStore::new(CredentialSources {
                write_file: files.last().unwrap().clone(),
                files,
                helper_path: Some(self.path("bin").into_os_string()),
            })
        }
    }

    fn basic(username: &str, password: &str) -> Option<Credential> {
        Some(Credential::Basic {
            username: username.into(),
            password: password.into(),
        })
    }

    fn auth(username: &str, password: &str) -> String {
        encode_auth(username, password)
    }

    /// `name: config.json text, registry, repository => expected credential`.
    macro_rules! looks_up {
        ($($name:ident: $json:expr, $registry:expr, $repo:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                let fx = Fixture::new();
                fx.file("config.json", &$json);
                let got = fx.store(&["config.json"]).lookup($registry, $repo).unwrap();
                assert_eq!(got, $want);
            }
        )*};
    }

    fn one(key: &str) -> String {
        format!(
            r#"{{"auths": {{"{key}": {{"auth": "{}"}}}}}}"#,
            auth("u", "p")
        )
    }

    looks_up! {
        hub_docker_key: one("https://index.docker.io/v1/"), "docker.io", "library/busybox" => basic("u", "p");
        hub_plain_key: one("docker.io"), "docker.io", "library/busybox" => basic("u", "p");
        hub_legacy_key: one("index.docker.io"), "docker.io", "library/busybox" => basic("u", "p");
        hub_api_host_key: one("registry-1.docker.io"), "docker.io", "library/busybox" => basic("u", "p");
        hub_asked_by_api_host: one("https://index.docker.io/v1/"), "registry-1.docker.io", "x/y" => basic("u", "p");
        hub_asked_by_url: one("docker.io"), "https://index.docker.io/v1/", "x/y" => basic("u", "p");
        url_key: one("https://quay.io"), "quay.io", "org/app" => basic("u", "p");
        url_key_with_path: one("https://quay.io/v2/"), "quay.io", "org/app" => basic("u", "p");
        trailing_slash_key: one("quay.io/"), "quay.io", "org/app" => basic("u", "p");
        host_port_key: one("localhost:5000"), "localhost:5000", "app" => basic("u", "p");
        other_port_is_other_registry: one("localhost:5000"), "localhost:5001", "app" => None;
        other_registry: one("quay.io"), "ghcr.io", "org/app" => None;
        hub_key_is_not_quay: one("docker.io"), "quay.io", "org/app" => None;
        no_auths: "{}", "quay.io", "x" => None;
        empty_file: "", "quay.io", "x" => None;
        identity_token: r#"{"auths": {"quay.io": {"auth": "", "identitytoken": "idt"}}}"#, "quay.io", "x"
            => Some(Credential::IdentityToken("idt".into()));
        registry_token_first: format!(r#"{{"auths": {{"quay.io": {{"auth": "{}", "identitytoken": "i", "registrytoken": "rt"}}}}}}"#, auth("u", "p")), "quay.io", "x"
            => Some(Credential::RegistryToken("rt".into()));
        identity_token_before_password: format!(r#"{{"auths": {{"quay.io": {{"auth": "{}", "identitytoken": "i"}}}}}}"#, auth("u", "p")), "quay.io", "x"
            => Some(Credential::IdentityToken("i".into()));
        username_password_fields: r#"{"auths": {"quay.io": {"username": "u", "password": "p"}}}"#, "quay.io", "x" => basic("u", "p");
    }

    const NAMESPACES: &str = r#"{"auths": {
        "quay.io": {"auth": "cmVnOnI="},
        "quay.io/org": {"auth": "b3JnOm8="},
        "quay.io/org/app": {"auth": "YXBwOmE="},
        "quay.io/empty": {}
    }}"#;

    looks_up! {
        namespace_most_specific: NAMESPACES, "quay.io", "org/app" => basic("app", "a");
        namespace_below: NAMESPACES, "quay.io", "org/app/sub" => basic("app", "a");
        namespace_sibling_repository: NAMESPACES, "quay.io", "org/tool" => basic("org", "o");
        namespace_not_a_prefix_of_a_component: NAMESPACES, "quay.io", "organisation/x" => basic("reg", "r");
        namespace_other: NAMESPACES, "quay.io", "other/x" => basic("reg", "r");
        namespace_empty_entry_falls_back: NAMESPACES, "quay.io", "empty/x" => basic("reg", "r");
        docker_spelling_wins_a_tie: format!(r#"{{"auths": {{"docker.io": {{"auth": "{}"}}, "https://index.docker.io/v1/": {{"auth": "{}"}}}}}}"#, auth("plain", "1"), auth("docker", "2")), "docker.io", "x/y"
            => basic("docker", "2");
    }

    #[test]
    fn files_in_order_first_credential_wins() {
        let fx = Fixture::new();
        fx.file("run/auth.json", &one("other.io"));
        fx.file(
            "config/auth.json",
            &format!(
                r#"{{"auths": {{"quay.io": {{"auth": "{}"}}}}}}"#,
                auth("podman", "1")
            ),
        );
        fx.file(
            "docker/config.json",
            &format!(
                r#"{{"auths": {{"quay.io": {{"auth": "{}"}}, "ghcr.io": {{"auth": "{}"}}}}}}"#,
                auth("docker", "2"),
                auth("gh", "3")
            ),
        );
        let store = fx.store(&[
            "missing/auth.json",
            "run/auth.json",
            "config/auth.json",
            "docker/config.json",
        ]);
        assert_eq!(store.lookup("quay.io", "x").unwrap(), basic("podman", "1"));
        assert_eq!(store.lookup("ghcr.io", "x").unwrap(), basic("gh", "3"));
        assert_eq!(store.lookup("other.io", "x").unwrap(), basic("u", "p"));
        assert_eq!(store.lookup("none.io", "x").unwrap(), None);
    }

    #[test]
    fn helpers_cred_helpers_then_creds_store_then_auths() {
        let fx = Fixture::new();
        fx.helper(
            "per",
            &[(
                "quay.io",
                r#"{"ServerURL":"quay.io","Username":"per-user","Secret":"per-secret"}"#,
            )],
        );
        fx.helper(
            "global",
            &[
                (
                    "quay.io",
                    r#"{"ServerURL":"quay.io","Username":"global-user","Secret":"g"}"#,
                ),
                (
                    "ghcr.io",
                    r#"{"ServerURL":"ghcr.io","Username":"<token>","Secret":"refresh"}"#,
                ),
                (
                    "https://index.docker.io/v1/",
                    r#"{"ServerURL":"x","Username":"hub","Secret":"h"}"#,
                ),
            ],
        );
        fx.file(
            "config.json",
            &format!(
                r#"{{"credsStore": "global", "credHelpers": {{"quay.io": "per", "nothing.io": "per"}},
                    "auths": {{"quay.io": {{"auth": "{a}"}}, "ghcr.io": {{"auth": "{a}"}}, "only-file.io": {{"auth": "{a}"}}, "nothing.io": {{"auth": "{a}"}}}}}}"#,
                a = auth("file", "f")
            ),
        );
        let store = fx.store(&["config.json"]);
        assert_eq!(
            store.lookup("quay.io", "x").unwrap(),
            basic("per-user", "per-secret")
        );
        assert_eq!(
            store.lookup("ghcr.io", "x").unwrap(),
            Some(Credential::IdentityToken("refresh".into()))
        );
        assert_eq!(
            store.lookup("docker.io", "library/x").unwrap(),
            basic("hub", "h")
        );
        // credsStore has nothing: the file's auth is used.
        assert_eq!(
            store.lookup("only-file.io", "x").unwrap(),
            basic("file", "f")
        );
        // A credHelpers entry decides alone: its "not found" is the file's answer.
        assert_eq!(store.lookup("nothing.io", "x").unwrap(), None);
        assert_eq!(fx.log("per"), "get quay.io\nget nothing.io\n");
        assert_eq!(
            fx.log("global"),
            "get ghcr.io\nget https://index.docker.io/v1/\nget only-file.io\n"
        );
    }

    #[test]
    fn hub_helper_is_asked_under_both_spellings() {
        let fx = Fixture::new();
        fx.helper(
            "h",
            &[("docker.io", r#"{"Username":"podman","Secret":"p"}"#)],
        );
        fx.file("config.json", r#"{"credHelpers": {"docker.io": "h"}}"#);
        let got = fx
            .store(&["config.json"])
            .lookup("registry-1.docker.io", "library/x")
            .unwrap();
        assert_eq!(got, basic("podman", "p"));
        assert_eq!(
            fx.log("h"),
            "get https://index.docker.io/v1/\nget docker.io\n"
        );
    }

    #[test]
    fn helper_problems_are_errors_that_name_the_helper() {
        let fx = Fixture::new();
        fx.file("config.json", r#"{"credsStore": "desktop"}"#);
        let err = fx
            .store(&["config.json"])
            .lookup("quay.io", "x")
            .unwrap_err();
        assert!(err.is_helper_missing(), "{err:?}");
        assert!(
            err.to_string().contains("docker-credential-desktop"),
            "{err}"
        );

        let broken = fx.path("bin/docker-credential-broken");
        fs::write(&broken, "#!/bin/sh\necho 'keychain locked' >&2\nexit 3\n").unwrap();
        fs::set_permissions(&broken, fs::Permissions::from_mode(0o755)).unwrap();
        fx.file("config.json", r#"{"credsStore": "broken"}"#);
        let err = fx
            .store(&["config.json"])
            .lookup("quay.io", "x")
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("docker-credential-broken get for quay.io failed")
                && msg.contains("keychain locked"),
            "{msg}"
        );

        fx.helper(
            "garbled",
            &[("quay.io", r#"{"Secret": 42, "Username": "u"}"#)],
        );
        fx.file("config.json", r#"{"credsStore": "garbled"}"#);
        let err = fx
            .store(&["config.json"])
            .lookup("quay.io", "x")
            .unwrap_err();
        assert!(
            matches!(err, CredentialError::HelperAnswer { .. }),
            "{err:?}"
        );
        assert!(!format!("{err} {err:?}").contains("42"), "{err:?}");

        fx.file("config.json", r#"{"credsStore": "../evil"}"#);
        let err = fx
            .store(&["config.json"])
            .lookup("quay.io", "x")
            .unwrap_err();
        assert!(matches!(err, CredentialError::HelperName { .. }), "{err:?}");
    }

    #[test]
    fn bad_auth_names_file_and_key_but_not_the_secret() {
        let fx = Fixture::new();
        let bad = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "hunter2-no-colon",
        );
        let path = fx.file(
            "config.json",
            &format!(r#"{{"auths": {{"quay.io": {{"auth": "{bad}"}}}}}}"#),
        );
        let err = fx
            .store(&["config.json"])
            .lookup("quay.io", "x")
            .unwrap_err();
        let msg = format!("{err} {err:?}");
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains("\"quay.io\""),
            "{msg}"
        );
        assert!(!msg.contains("hunter2") && !msg.contains(&bad), "{msg}");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let credentials = [
            basic("alice", "s3cr3t-pass").unwrap(),
            Credential::IdentityToken("s3cr3t-identity".into()),
            Credential::RegistryToken("s3cr3t-bearer".into()),
        ];
        for credential in credentials {
            let shown = format!("{credential:?} {credential:#?}");
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
        }
        assert_eq!(
            format!("{:?}", basic("alice", "x").unwrap()),
            "Basic { username: \"alice\", password: <redacted> }"
        );
    }

    #[test]
    fn store_writes_auth_and_keeps_the_rest_of_the_file() {
        let fx = Fixture::new();
        let path = fx.file(
            "docker/config.json",
            "{\n\t\"auths\": {\n\t\t\"ghcr.io\": {\n\t\t\t\"auth\": \"Z2g6MQ==\"\n\t\t}\n\t},\n\t\"proxies\": {\"default\": {\"httpProxy\": \"http://p:3128\"}},\n\t\"someFutureField\": [1, 2]\n}\n",
        );
        let store = fx.store(&["docker/config.json"]);
        let stored = store.store("registry-1.docker.io", "me", "pa:ss").unwrap();
        assert_eq!(stored, StoredIn::File(path.clone()));
        assert_eq!(
            store.lookup("docker.io", "me/app").unwrap(),
            basic("me", "pa:ss")
        );
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(&format!(
                "\"https://index.docker.io/v1/\": {{\n\t\t\t\"auth\": \"{}\"",
                auth("me", "pa:ss")
            )),
            "{text}"
        );
        assert!(text.contains("\t\"proxies\": {\"default\": {\"httpProxy\": \"http://p:3128\"}},\n\t\"someFutureField\": [1, 2]\n}"), "{text}");
        assert!(
            text.contains("\"ghcr.io\": {\n\t\t\t\"auth\": \"Z2g6MQ==\"\n\t\t}"),
            "{text}"
        );

        store.store("quay.io/org", "ns", "1").unwrap();
        assert_eq!(
            store.lookup("quay.io", "org/app").unwrap(),
            basic("ns", "1")
        );
        assert_eq!(store.lookup("quay.io", "other").unwrap(), None);
    }

    #[test]
    fn store_creates_a_private_file() {
        let fx = Fixture::new();
        let store = fx.store(&["new/.docker/config.json"]);
        store.store("localhost:5000", "u", "p").unwrap();
        let path = fx.path("new/.docker/config.json");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            store.lookup("localhost:5000", "x").unwrap(),
            basic("u", "p")
        );
        let err = store.store("localhost:5000", "a:b", "p").unwrap_err();
        assert!(
            matches!(err, CredentialError::UsernameWithColon { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn store_and_erase_go_to_the_helper_when_configured() {
        let fx = Fixture::new();
        fx.helper("vault", &[("https://index.docker.io/v1/", "")]);
        let path = fx.file(
            "config.json",
            r#"{"credsStore": "vault", "auths": {"docker.io": {}}}"#,
        );
        let store = fx.store(&["config.json"]);
        assert_eq!(
            store.store("docker.io", "me", "pw").unwrap(),
            StoredIn::Helper("vault".into())
        );
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            r#"{"credsStore": "vault", "auths": {"docker.io": {}}}"#,
            "the file is not touched by a helper store"
        );
        let err = store.store("docker.io/org", "me", "pw").unwrap_err();
        assert!(
            matches!(err, CredentialError::NamespacedHelperKey { .. }),
            "{err:?}"
        );

        assert!(store.erase("index.docker.io").unwrap());
        assert_eq!(
            fx.log("vault"),
            "store {\"ServerURL\":\"https://index.docker.io/v1/\",\"Username\":\"me\",\"Secret\":\"pw\"}\n\
             erase https://index.docker.io/v1/\nerase docker.io\n"
        );
        assert!(
            !fs::read_to_string(&path).unwrap().contains("docker.io\""),
            "the empty marker entry is gone too"
        );
    }

    #[test]
    fn erase_removes_every_spelling_of_that_registry_only() {
        let fx = Fixture::new();
        let a = auth("u", "p");
        let path = fx.file(
            "config.json",
            &format!(
                r#"{{"auths": {{"docker.io": {{"auth": "{a}"}}, "https://index.docker.io/v1/": {{"auth": "{a}"}}, "docker.io/org": {{"auth": "{a}"}}, "quay.io": {{"auth": "{a}"}}}}, "x": 1}}"#
            ),
        );
        let store = fx.store(&["config.json"]);
        assert!(store.erase("registry-1.docker.io").unwrap());
        assert_eq!(store.lookup("docker.io", "library/x").unwrap(), None);
        assert_eq!(store.lookup("docker.io", "org/x").unwrap(), basic("u", "p"));
        assert_eq!(store.lookup("quay.io", "x").unwrap(), basic("u", "p"));
        assert!(!store.erase("docker.io").unwrap(), "nothing left to erase");
        assert!(fs::read_to_string(&path).unwrap().contains("\"x\": 1"));
        assert!(!fx.store(&["absent.json"]).erase("quay.io").unwrap());
    }
}
