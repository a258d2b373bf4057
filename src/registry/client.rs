//! A synchronous OCI distribution (v1.1) client on `ureq`: requests that authenticate when
//! challenged (Bearer tokens with scopes, or Basic), manifests fetched as their exact bytes
//! and verified, blobs streamed into a writer while their digest is checked, resumed with
//! `Range` after a dropped connection, and idempotent requests retried with backoff.
//!
//! It knows nothing about registries.conf or credential files: callers resolve an
//! [`Origin`] and pass a [`Credentials`] source. Every error names the method, URL, HTTP
//! status and the registry's OCI error code.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::http::Response;
use ureq::{Agent, Body};

use super::auth::{Challenge, TokenCache, TokenResponse, parse_challenges};
use super::http::{backoff, basic_header, expect_ok, header, urlencode, with_auth};
use crate::oci::digest::{Digest, Digester};

mod upload;

pub use super::error::RegistryError;
pub use super::origin::{Anonymous, Credentials, Origin, Static};

/// What pushing a blob did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushedBlob {
    /// The repository had it already (HEAD).
    Existed,
    /// Mounted from another repository of the same registry, no bytes sent.
    Mounted,
    Uploaded,
}

/// A manifest as the registry served it.
#[derive(Clone, Debug)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    /// The `Content-Type` the registry answered with (may be empty).
    pub media_type: String,
    pub digest: Digest,
}

/// The OCI distribution spec's recommended limit for manifests a client accepts.
pub(crate) const MANIFEST_LIMIT: u64 = 4 << 20;

/// What a manifest GET accepts: OCI and Docker schema 2 manifests and lists.
pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// How many times an idempotent request is tried.
const ATTEMPTS: u32 = 4;

pub struct Client {
    agent: Agent,
    credentials: Box<dyn Credentials>,
    tokens: Mutex<TokenCache>,
    /// The last challenge each host answered with, so later requests can authenticate
    /// up front instead of taking a 401 first.
    challenges: Mutex<BTreeMap<String, Challenge>>,
    /// Credentials by (host, repository), looked up once per client: a lookup reads the
    /// auth files and may run a `docker-credential-*` helper.
    creds: Mutex<BTreeMap<(String, String), Option<UserPassword>>>,
}

/// A username and password.
type UserPassword = (String, String);

/// How a request is made, given the Authorization header to send (if any).
type Sender<'a> = dyn FnMut(&Agent, Option<&str>) -> Result<Response<Body>, ureq::Error> + 'a;

impl Client {
    pub fn new(credentials: Box<dyn Credentials>) -> Client {
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .user_agent(concat!("rbuild/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .build();
        Client {
            agent: config.into(),
            credentials,
            tokens: Mutex::new(TokenCache::default()),
            challenges: Mutex::new(BTreeMap::new()),
            creds: Mutex::new(BTreeMap::new()),
        }
    }

    /// The credentials for `host`/`repository`, from the cache or looked up once.
    fn basic(
        &self,
        host: &str,
        repository: &str,
    ) -> Result<Option<(String, String)>, RegistryError> {
        let key = (host.to_string(), repository.to_string());
        if let Some(c) = self.creds.lock().expect("credential lock").get(&key) {
            return Ok(c.clone());
        }
        let found = self.credentials.basic(host, repository).map_err(|reason| {
            RegistryError::Credentials {
                host: host.to_string(),
                reason,
            }
        })?;
        self.creds
            .lock()
            .expect("credential lock")
            .insert(key, found.clone());
        Ok(found)
    }

    /// `GET /v2/`: reachability and whether authentication is needed.
    pub fn ping(&self, origin: &Origin) -> Result<(), RegistryError> {
        let url = format!("{}/v2/", origin.base());
        let resp = self.execute("GET", &url, origin, "", &[], &mut |a, auth| {
            with_auth(a.get(&url), auth).call()
        })?;
        expect_ok("GET", &url, resp).map(drop)
    }

    /// Fetch a manifest by tag or digest, as exact bytes. A digest reference is verified;
    /// for a tag, the registry's `Docker-Content-Digest` (if sent) must match the bytes.
    pub fn get_manifest(
        &self,
        origin: &Origin,
        repository: &str,
        reference: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", origin.base());
        let scopes = [super::auth::scope(repository, super::auth::Access::Pull)];
        self.retrying(|| {
            let resp = self.execute("GET", &url, origin, repository, &scopes, &mut |a, auth| {
                with_auth(a.get(&url), auth)
                    .header("Accept", MANIFEST_ACCEPT)
                    .call()
            })?;
            let mut resp = expect_ok("GET", &url, resp)?;
            let media_type = header(&resp, "content-type").unwrap_or_default();
            let served = header(&resp, "docker-content-digest");
            let bytes = resp
                .body_mut()
                .with_config()
                .limit(MANIFEST_LIMIT)
                .read_to_vec()
                .map_err(|e| match e {
                    ureq::Error::BodyExceedsLimit(_) => RegistryError::ManifestTooLarge {
                        url: url.clone(),
                        limit: MANIFEST_LIMIT,
                    },
                    e => RegistryError::Transport {
                        method: "GET",
                        url: url.clone(),
                        source: e,
                    },
                })?;
            let digest = Digest::sha256(&bytes);
            let expected = match Digest::parse(reference) {
                Ok(d) => Some(d),
                Err(_) => served.and_then(|s| Digest::parse(&s).ok()),
            };
            if let Some(expected) = expected
                && expected != digest
            {
                return Err(RegistryError::DigestMismatch {
                    url: url.clone(),
                    expected,
                    actual: digest,
                });
            }
            Ok(FetchedManifest {
                bytes,
                media_type: media_type
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string(),
                digest,
            })
        })
    }

    /// Stream a blob into `sink`, verifying its digest (and size, when known) as it goes.
    /// A connection dropped mid-blob is resumed with `Range` from the byte reached; the
    /// sink never sees a byte twice. Returns the number of bytes written.
    pub fn get_blob(
        &self,
        origin: &Origin,
        repository: &str,
        digest: &Digest,
        size: Option<u64>,
        sink: &mut dyn Write,
    ) -> Result<u64, RegistryError> {
        let url = format!("{}/v2/{repository}/blobs/{digest}", origin.base());
        let scopes = [super::auth::scope(repository, super::auth::Access::Pull)];
        let mut digester = Digester::default();
        let mut written: u64 = 0;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let from = written;
            let result = self
                .execute("GET", &url, origin, repository, &scopes, &mut |a, auth| {
                    let req = with_auth(a.get(&url), auth);
                    if from > 0 {
                        req.header("Range", format!("bytes={from}-")).call()
                    } else {
                        req.call()
                    }
                })
                .and_then(|resp| expect_ok("GET", &url, resp));
            let mut resp = match result {
                Ok(r) => r,
                Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                    backoff(attempt);
                    continue;
                }
                Err(e) => return Err(e),
            };
            // A server that ignores Range answers 200 with the whole blob: skip what we have.
            let mut skip = if from > 0 && resp.status().as_u16() == 200 {
                from
            } else {
                0
            };
            let mut reader = resp.body_mut().as_reader();
            let mut buf = vec![0u8; 256 << 10];
            let outcome: Result<(), io::Error> = loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break Ok(()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => break Err(e),
                };
                let mut chunk = &buf[..n];
                if skip > 0 {
                    let s = skip.min(chunk.len() as u64) as usize;
                    skip -= s as u64;
                    chunk = &chunk[s..];
                }
                if chunk.is_empty() {
                    continue;
                }
                digester.update(chunk);
                sink.write_all(chunk).map_err(|e| RegistryError::Write {
                    url: url.clone(),
                    source: e,
                })?;
                written += chunk.len() as u64;
                if let Some(limit) = size
                    && written > limit
                {
                    return Err(RegistryError::SizeMismatch {
                        url,
                        expected: limit,
                        actual: written,
                    });
                }
            };
            match outcome {
                Ok(()) => break,
                Err(_) if attempt < ATTEMPTS => {
                    backoff(attempt);
                    continue;
                }
                Err(e) => {
                    return Err(RegistryError::Read {
                        method: "GET",
                        url,
                        source: e,
                    });
                }
            }
        }
        if let Some(expected) = size
            && expected != written
        {
            return Err(RegistryError::SizeMismatch {
                url,
                expected,
                actual: written,
            });
        }
        let actual = digester.finish();
        if &actual != digest {
            return Err(RegistryError::DigestMismatch {
                url,
                expected: digest.clone(),
                actual,
            });
        }
        Ok(written)
    }

    /// `HEAD` a blob: its size if the repository has it.
    pub(crate) fn blob_exists(
        &self,
        origin: &Origin,
        repository: &str,
        digest: &Digest,
        scopes: &[String],
    ) -> Result<Option<u64>, RegistryError> {
        let url = format!("{}/v2/{repository}/blobs/{digest}", origin.base());
        self.retrying(|| {
            let resp = self.execute("HEAD", &url, origin, repository, scopes, &mut |a, auth| {
                with_auth(a.head(&url), auth).call()
            })?;
            if resp.status().as_u16() == 404 {
                return Ok(None);
            }
            let resp = expect_ok("HEAD", &url, resp)?;
            Ok(Some(
                header(&resp, "content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            ))
        })
    }

    /// `PUT` a manifest with its exact bytes; returns its digest, checked against the
    /// registry's `Docker-Content-Digest`.
    pub fn put_manifest(
        &self,
        origin: &Origin,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", origin.base());
        let scopes = super::auth::push_scopes(repository, None);
        let digest = Digest::sha256(bytes);
        self.retrying(|| {
            let resp = self.execute("PUT", &url, origin, repository, &scopes, &mut |a, auth| {
                with_auth(a.put(&url), auth)
                    .header("Content-Type", media_type)
                    .send(bytes)
            })?;
            let resp = expect_ok("PUT", &url, resp)?;
            if let Some(served) =
                header(&resp, "docker-content-digest").and_then(|d| Digest::parse(&d).ok())
                && served != digest
            {
                return Err(RegistryError::DigestMismatch {
                    url: url.clone(),
                    expected: digest.clone(),
                    actual: served,
                });
            }
            Ok(digest.clone())
        })
    }

    /// The upload session URL from a `Location` header (absolute or relative to the host).
    fn location(
        &self,
        origin: &Origin,
        url: &str,
        resp: &Response<Body>,
    ) -> Result<String, RegistryError> {
        let loc = header(resp, "location").ok_or_else(|| RegistryError::Challenge {
            url: url.to_string(),
            reason: "upload response has no Location header".into(),
        })?;
        Ok(
            if loc.starts_with("http://") || loc.starts_with("https://") {
                loc
            } else {
                format!(
                    "{}{}{loc}",
                    origin.base(),
                    if loc.starts_with('/') { "" } else { "/" }
                )
            },
        )
    }

    /// Run `send`; on a 401, authenticate as the challenge asks and send once more.
    fn execute(
        &self,
        method: &'static str,
        url: &str,
        origin: &Origin,
        repository: &str,
        scopes: &[String],
        send: &mut Sender<'_>,
    ) -> Result<Response<Body>, RegistryError> {
        let transport = |e| RegistryError::Transport {
            method,
            url: url.to_string(),
            source: e,
        };
        let known = self
            .challenges
            .lock()
            .expect("challenge lock")
            .get(&origin.host)
            .cloned();
        let mut auth = match &known {
            Some(ch) => self.authorization(ch, origin, repository, scopes, url)?,
            None => None,
        };
        for round in 0..2 {
            let resp = send(&self.agent, auth.as_deref()).map_err(transport)?;
            if resp.status().as_u16() != 401 {
                return Ok(resp);
            }
            let Some(header) = header(&resp, "www-authenticate") else {
                break;
            };
            let ch = parse_challenges(&header).map_err(|e| RegistryError::Challenge {
                url: url.to_string(),
                reason: crate::diag::chain(&e),
            })?;
            let same = known.as_ref() == Some(&ch);
            self.challenges
                .lock()
                .expect("challenge lock")
                .insert(origin.host.clone(), ch.clone());
            // Already answered this very challenge and still refused: give up.
            if round == 1 || (same && auth.is_some()) {
                break;
            }
            auth = self.authorization(&ch, origin, repository, scopes, url)?;
            if auth.is_none() {
                break;
            }
        }
        Err(RegistryError::Unauthorized {
            url: url.to_string(),
            host: origin.host.clone(),
        })
    }

    /// The Authorization header answering a challenge, fetching a token when needed.
    fn authorization(
        &self,
        ch: &Challenge,
        origin: &Origin,
        repository: &str,
        scopes: &[String],
        url: &str,
    ) -> Result<Option<String>, RegistryError> {
        match ch {
            Challenge::Basic { .. } => Ok(self
                .basic(&origin.host, repository)?
                .map(|(u, p)| basic_header(&u, &p))),
            Challenge::Bearer { realm, service, .. } => {
                let service = service.clone().unwrap_or_default();
                let now = Instant::now();
                if let Some(t) = self
                    .tokens
                    .lock()
                    .expect("token lock")
                    .get(realm, &service, scopes, now)
                {
                    return Ok(Some(format!("Bearer {t}")));
                }
                // Only a token that must be fetched needs the credentials.
                let creds = self.basic(&origin.host, repository)?;
                let mut token_url = format!("{realm}?service={}", urlencode(&service));
                for s in scopes {
                    token_url.push_str(&format!("&scope={}", urlencode(s)));
                }
                let mut req = self.agent.get(&token_url);
                if let Some((u, p)) = &creds {
                    req = req.header("Authorization", basic_header(u, p));
                }
                let resp = req.call().map_err(|e| RegistryError::Transport {
                    method: "GET",
                    url: token_url.clone(),
                    source: e,
                })?;
                if resp.status().as_u16() == 401 || resp.status().as_u16() == 403 {
                    return Err(RegistryError::Unauthorized {
                        url: url.to_string(),
                        host: origin.host.clone(),
                    });
                }
                let mut resp = expect_ok("GET", &token_url, resp)?;
                let body = resp
                    .body_mut()
                    .with_config()
                    .limit(1 << 20)
                    .read_to_vec()
                    .map_err(|e| RegistryError::Transport {
                        method: "GET",
                        url: token_url.clone(),
                        source: e,
                    })?;
                let (token, life) =
                    TokenResponse::parse(realm, &body).map_err(|e| RegistryError::Challenge {
                        url: token_url.clone(),
                        reason: crate::diag::chain(&e),
                    })?;
                self.tokens.lock().expect("token lock").put(
                    realm,
                    &service,
                    scopes,
                    token.clone(),
                    life,
                    now,
                );
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Retry an idempotent operation on transient failures, with exponential backoff.
    fn retrying<T>(
        &self,
        mut op: impl FnMut() -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match op() {
                Err(e) if e.is_transient() && attempt < ATTEMPTS => backoff(attempt),
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::http::with_query;

    /// Counts its lookups, as a `docker-credential-*` helper run would.
    struct Counting(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl Credentials for Counting {
        fn basic(&self, _: &str, _: &str) -> Result<Option<(String, String)>, String> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(Some(("u".into(), "p".into())))
        }
    }

    #[test]
    fn credentials_are_looked_up_once_per_repository() {
        let lookups = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let client = Client::new(Box::new(Counting(lookups.clone())));
        let origin = Origin::new("127.0.0.1:1", true);
        let basic = Challenge::Basic { realm: "r".into() };
        for repository in ["a/b", "a/b", "a/b", "other"] {
            let auth = client
                .authorization(&basic, &origin, repository, &[], "http://x")
                .unwrap();
            assert_eq!(auth, Some(basic_header("u", "p")));
        }
        assert_eq!(
            lookups.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "one lookup per (host, repository)"
        );
    }

    #[test]
    fn query_encoding() {
        assert_eq!(
            urlencode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
        assert_eq!(urlencode("registry.docker.io"), "registry.docker.io");
    }

    #[test]
    fn basic_header_is_base64() {
        assert_eq!(basic_header("user", "pass"), "Basic dXNlcjpwYXNz");
    }

    #[test]
    fn query_append() {
        assert_eq!(
            with_query("http://h/v2/r/blobs/uploads/u", "digest=x"),
            "http://h/v2/r/blobs/uploads/u?digest=x"
        );
        assert_eq!(
            with_query("http://h/u?_state=abc", "digest=x"),
            "http://h/u?_state=abc&digest=x"
        );
    }

    #[test]
    fn origins() {
        assert_eq!(
            Origin::new("127.0.0.1:5000", true).base(),
            "http://127.0.0.1:5000"
        );
        assert_eq!(Origin::new("ghcr.io", false).base(), "https://ghcr.io");
    }
}
