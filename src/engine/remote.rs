//! ADD's remote sources: an `http(s)://` URL is downloaded (verified against `--checksum`
//! when given; its file gets mode 0600 and the server's `Last-Modified` time, as BuildKit's
//! http source gives it), a Git URL (`https://host/repo.git#ref:subdir`, `git://`, `ssh://`,
//! `git@host:repo`) is cloned with the `git` command, as BuildKit also does, and checked out
//! at its ref. Each lands in a directory of its own under the step's work directory; the
//! engine then copies from there with ADD's usual rules.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::oci::digest::{Digest, Digester};

#[derive(Debug, thiserror::Error)]
pub(crate) enum RemoteError {
    #[error("downloading {url}: {message}")]
    Download { url: String, message: String },
    #[error("downloading {url}: HTTP status {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: invalid --checksum {checksum:?}: {message}")]
    BadChecksum {
        url: String,
        checksum: String,
        message: String,
    },
    #[error("{url}: content digest mismatch: --checksum says {expected}, the download is {actual}")]
    ChecksumMismatch {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("{url}: checked out commit {actual}, but --checksum says {expected}")]
    GitChecksumMismatch {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{url}: subdirectory {subdir:?} of the repository")]
    Subdir {
        url: String,
        subdir: String,
        source: std::io::Error,
    },
    #[error("git {args}: {message}")]
    Git { args: String, message: String },
}

/// A remote ADD source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Remote {
    Http(String),
    Git {
        url: String,
        reference: Option<String>,
        subdir: Option<String>,
    },
}

impl Remote {
    /// The remote an ADD source names, if it is not a local path.
    pub(crate) fn parse(source: &str) -> Option<Remote> {
        if super::copy::is_git(source) {
            let (url, fragment) = match source.split_once('#') {
                Some((u, f)) => (u, Some(f)),
                None => (source, None),
            };
            let (reference, subdir) = match fragment {
                None => (None, None),
                Some(f) => {
                    let (r, d) = match f.split_once(':') {
                        Some((r, d)) => (r, Some(d)),
                        None => (f, None),
                    };
                    (
                        Some(r.to_string()).filter(|r| !r.is_empty()),
                        d.map(str::to_string).filter(|d| !d.is_empty()),
                    )
                }
            };
            return Some(Remote::Git {
                url: url.to_string(),
                reference,
                subdir,
            });
        }
        (source.starts_with("http://") || source.starts_with("https://"))
            .then(|| Remote::Http(source.to_string()))
    }

    /// Fetch into the new directory `dir`; returns the path, relative to `dir`, that ADD
    /// copies: the downloaded file, or the checkout (its `subdir`).
    pub(crate) fn fetch(
        &self,
        dir: &Path,
        checksum: Option<&str>,
        keep_git_dir: bool,
    ) -> Result<String, RemoteError> {
        let write = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RemoteError::Write { path, source }
        };
        std::fs::create_dir_all(dir).map_err(write(dir))?;
        match self {
            Remote::Http(url) => download(url, dir, checksum),
            Remote::Git {
                url,
                reference,
                subdir,
            } => {
                // A Git source's --checksum is the commit (or annotated tag) it must
                // resolve to, in full: sha1 or sha256 object names.
                if let Some(c) = checksum
                    && !(matches!(c.len(), 40 | 64) && c.bytes().all(|b| b.is_ascii_hexdigit()))
                {
                    return Err(RemoteError::BadChecksum {
                        url: url.clone(),
                        checksum: c.to_string(),
                        message:
                            "a Git source's checksum is the full commit hash it must check out"
                                .into(),
                    });
                }
                let checkout = dir.join("checkout");
                git(&[
                    "clone",
                    "--quiet",
                    "--no-checkout",
                    url,
                    &path_str(&checkout),
                ])?;
                let wanted = reference.as_deref().unwrap_or("HEAD");
                git(&[
                    "-C",
                    &path_str(&checkout),
                    "checkout",
                    "--quiet",
                    "--detach",
                    wanted,
                ])?;
                if let Some(expected) = checksum {
                    let here = path_str(&checkout);
                    let commit = git_output(&["-C", &here, "rev-parse", "HEAD"])?;
                    let object = git_output(&["-C", &here, "rev-parse", wanted])?;
                    let expected = expected.to_ascii_lowercase();
                    if expected != commit && expected != object {
                        return Err(RemoteError::GitChecksumMismatch {
                            url: url.clone(),
                            expected,
                            actual: commit,
                        });
                    }
                }
                git(&[
                    "-C",
                    &path_str(&checkout),
                    "submodule",
                    "update",
                    "--quiet",
                    "--init",
                    "--recursive",
                ])?;
                if !keep_git_dir {
                    let git_dir = checkout.join(".git");
                    std::fs::remove_dir_all(&git_dir).map_err(write(&git_dir))?;
                }
                // `#ref:subdir` is resolved inside the checkout with it as `/`: `..` stops at
                // its top and the repository's symlinks (`sub -> /`) name its own files,
                // never the host's (joined as written, they made a host directory the build
                // context; BuildKit's CVE-2026-33748).
                let real = match subdir {
                    Some(d) => crate::rootpath::resolve_in_dir(&checkout, d).map_err(|source| {
                        RemoteError::Subdir {
                            url: url.clone(),
                            subdir: d.clone(),
                            source,
                        }
                    })?,
                    None => String::new(),
                };
                Ok(if real.is_empty() {
                    "checkout".to_string()
                } else {
                    format!("checkout/{real}")
                })
            }
        }
    }
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

fn git(args: &[&str]) -> Result<(), RemoteError> {
    git_output(args).map(drop)
}

/// Run git; its standard output, trimmed.
fn git_output(args: &[&str]) -> Result<String, RemoteError> {
    let out = Command::new("git")
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|e| RemoteError::Git {
            args: args.join(" "),
            message: format!("running git: {e} (ADD of a Git URL needs git installed)"),
        })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    Err(RemoteError::Git {
        args: args.join(" "),
        message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// The file name a download gets: the last segment of the URL's path (`index.html` for
/// none), as BuildKit names it when the server sends no `Content-Disposition`.
fn file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let after_host = path.splitn(4, '/').nth(3).unwrap_or_default();
    after_host
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
        .unwrap_or("index.html")
        .to_string()
}

fn download(url: &str, dir: &Path, checksum: Option<&str>) -> Result<String, RemoteError> {
    let fail = |message: String| RemoteError::Download {
        url: url.to_string(),
        message,
    };
    let expected = match checksum {
        None => None,
        Some(c) => Some(Digest::parse(c).map_err(|e| RemoteError::BadChecksum {
            url: url.to_string(),
            checksum: c.to_string(),
            message: e.to_string(),
        })?),
    };
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .user_agent(concat!("rbuild/", env!("CARGO_PKG_VERSION")))
        .tls_config(tls)
        .build()
        .into();
    let resp = agent
        .get(url)
        .call()
        .map_err(|e| fail(crate::diag::chain(&e)))?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(RemoteError::Status {
            url: url.to_string(),
            status,
        });
    }
    let modified = resp
        .headers()
        .get("last-modified")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    let name = file_name(url);
    let path = dir.join(&name);
    let write = |source| RemoteError::Write {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::File::create(&path).map_err(write)?;
    let mut digester = match &expected {
        Some(d) => Digester::new(d.algorithm()),
        None => Digester::default(),
    };
    let mut body = resp.into_body().into_reader();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = body
            .read(&mut buf)
            .map_err(|e| fail(crate::diag::chain(&e)))?;
        if n == 0 {
            break;
        }
        digester.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(write)?;
    }
    let actual = digester.finish();
    if let Some(expected) = expected
        && expected != actual
    {
        return Err(RemoteError::ChecksumMismatch {
            url: url.to_string(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(write)?;
    if let Some(t) = modified {
        file.set_modified(t).map_err(write)?;
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! names {
        ($($url:expr => $name:expr),* $(,)?) => {
            $( assert_eq!(file_name($url), $name, "{}", $url); )*
        };
    }

    #[test]
    fn download_names() {
        names! {
            "https://example.com/a/b/tool.tar.gz" => "tool.tar.gz",
            "https://example.com/a/b/tool?x=1#f" => "tool",
            "https://example.com/" => "index.html",
            "https://example.com" => "index.html",
            "http://h:8080/dir/" => "index.html",
        }
    }

    #[test]
    fn remotes_parse() {
        assert_eq!(Remote::parse("app/"), None);
        assert_eq!(
            Remote::parse("https://x.org/f.txt"),
            Some(Remote::Http("https://x.org/f.txt".into()))
        );
        assert_eq!(
            Remote::parse("https://github.com/o/r.git#v1.2:docs"),
            Some(Remote::Git {
                url: "https://github.com/o/r.git".into(),
                reference: Some("v1.2".into()),
                subdir: Some("docs".into()),
            })
        );
        assert_eq!(
            Remote::parse("git@github.com:o/r.git"),
            Some(Remote::Git {
                url: "git@github.com:o/r.git".into(),
                reference: None,
                subdir: None,
            })
        );
    }
}
