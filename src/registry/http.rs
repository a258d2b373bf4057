//! The small pieces of HTTP the registry client is built from: auth headers, query
//! strings, retries' backoff, and reading a registry's error answer.

use std::time::Duration;

use base64::Engine;
use ureq::Body;
use ureq::http::Response;

use super::error::RegistryError;

/// The first retry's wait; each later one waits twice as long.
const BACKOFF: Duration = Duration::from_millis(200);

pub(super) fn backoff(attempt: u32) {
    std::thread::sleep(BACKOFF * 2u32.pow(attempt.saturating_sub(1)));
}

pub(super) fn with_auth<B>(
    req: ureq::RequestBuilder<B>,
    auth: Option<&str>,
) -> ureq::RequestBuilder<B> {
    match auth {
        Some(a) => req.header("Authorization", a),
        None => req,
    }
}

pub(super) fn basic_header(user: &str, password: &str) -> String {
    let enc = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {enc}")
}

pub(super) fn header(resp: &Response<Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Append a query parameter to a URL that may already have a query.
pub(super) fn with_query(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

/// Percent-encode a query value (RFC 3986 unreserved characters kept).
pub(super) fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// 2xx passes; anything else becomes a `Status` error with the OCI error code and message.
pub(super) fn expect_ok(
    method: &'static str,
    url: &str,
    mut resp: Response<Body>,
) -> Result<Response<Body>, RegistryError> {
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(resp);
    }
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 << 10)
        .read_to_vec()
        .unwrap_or_default();
    let (code, message) = oci_error(&body);
    Err(RegistryError::Status {
        method,
        url: url.to_string(),
        status,
        code,
        message,
    })
}

/// The first entry of an OCI error body: `{"errors":[{"code","message"}]}`.
pub(super) fn oci_error(body: &[u8]) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let first = &v["errors"][0];
    (
        first["code"].as_str().unwrap_or_default().to_string(),
        first["message"].as_str().unwrap_or_default().to_string(),
    )
}
