//! What went wrong talking to a registry: every error names the method, URL, HTTP status
//! and the registry's OCI error code.

use std::io;

use crate::oci::digest::Digest;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{method} {url}: HTTP {status}{}", code_message(.code, .message))]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{method} {url}")]
    Transport {
        method: &'static str,
        url: String,
        source: ureq::Error,
    },
    #[error("{method} {url}: reading the response")]
    Read {
        method: &'static str,
        url: String,
        source: io::Error,
    },
    #[error("writing {url} to its destination")]
    Write { url: String, source: io::Error },
    #[error("{url}: authentication failed{}", hint_for(.host))]
    Unauthorized { url: String, host: String },
    #[error("{url}: {reason}")]
    Challenge { url: String, reason: String },
    #[error("credentials for {host}: {reason}")]
    Credentials { host: String, reason: String },
    #[error("{url}: content digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        url: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{url}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        url: String,
        expected: u64,
        actual: u64,
    },
    #[error("{url}: manifest larger than {limit} bytes")]
    ManifestTooLarge { url: String, limit: u64 },
}

fn code_message(code: &str, message: &str) -> String {
    match (code.is_empty(), message.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!(" {code}"),
        (true, false) => format!(": {message}"),
        (false, false) => format!(" {code}: {message}"),
    }
}

fn hint_for(host: &str) -> String {
    format!(" (log in with `rbuild login {host}`, or check the credentials for it)")
}

impl RegistryError {
    /// Worth retrying: a server error, a timeout or a dropped connection.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            RegistryError::Status { status, .. } => *status >= 500 || *status == 429,
            RegistryError::Transport { source, .. } => !matches!(
                source,
                ureq::Error::BadUri(_) | ureq::Error::HostNotFound | ureq::Error::Tls(_)
            ),
            RegistryError::Read { .. } => true,
            _ => false,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::http::oci_error;

    #[test]
    fn oci_error_bodies() {
        let body =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(
            oci_error(body),
            ("MANIFEST_UNKNOWN".into(), "manifest unknown".into())
        );
        assert_eq!(
            oci_error(b"<html>502</html>"),
            (String::new(), String::new())
        );
        assert_eq!(
            code_message("BLOB_UNKNOWN", "blob unknown"),
            " BLOB_UNKNOWN: blob unknown"
        );
        assert_eq!(code_message("", ""), "");
    }
}
