//! Where a registry is ([`Origin`]) and who the client is there ([`Credentials`]).

/// Where a repository lives: `host[:port]`, and whether plain HTTP is allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub(crate) host: String,
    /// An insecure registry is spoken to over plain HTTP.
    pub(crate) insecure: bool,
}

impl Origin {
    pub fn new(host: &str, insecure: bool) -> Origin {
        Origin {
            host: host.to_string(),
            insecure,
        }
    }

    pub(crate) fn base(&self) -> String {
        let scheme = if self.insecure { "http" } else { "https" };
        format!("{scheme}://{}", self.host)
    }
}

/// A source of credentials for a registry host (and repository, for namespaced entries).
pub trait Credentials: Send + Sync {
    /// `(username, password)` for Basic auth or for a token endpoint; an error when the
    /// user's configuration names credentials that cannot be read (a missing helper).
    fn basic(&self, host: &str, repository: &str) -> Result<Option<(String, String)>, String>;
}

/// Anonymous access only.
pub struct Anonymous;

impl Credentials for Anonymous {
    fn basic(&self, _: &str, _: &str) -> Result<Option<(String, String)>, String> {
        Ok(None)
    }
}

/// Fixed credentials for every host (tests, `--creds`).
pub struct Static(pub String, pub String);

impl Credentials for Static {
    fn basic(&self, _: &str, _: &str) -> Result<Option<(String, String)>, String> {
        Ok(Some((self.0.clone(), self.1.clone())))
    }
}

/// The credentials the user already has (Docker's config.json, containers auth.json and
/// their credential helpers).
impl Credentials for super::credentials::CredentialStore {
    fn basic(&self, host: &str, repository: &str) -> Result<Option<(String, String)>, String> {
        use super::credentials::Credential;
        match self
            .lookup(host, repository)
            .map_err(|e| crate::diag::chain(&e))?
        {
            None => Ok(None),
            Some(Credential::Basic { username, password }) => Ok(Some((username, password))),
            Some(Credential::IdentityToken(_) | Credential::RegistryToken(_)) => Err(format!(
                "the credentials stored for {host} are a token, which rbuild cannot use yet; log in with a username and password (`rbuild login {host}`)"
            )),
        }
    }
}
