//! Fault injection: a scripted HTTP server on loopback that misbehaves the ways a real
//! registry does not — wrong digests, 5xx then success, a connection reset mid-blob, a
//! server that ignores `Range`, and the Bearer token flow with scopes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use rbuild::oci::digest::Digest;
use rbuild::registry::client::{Anonymous, Client, Origin, RegistryError, Static};

struct Request {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
}

/// A server answering each connection with `handler`; every request is logged.
struct Fake {
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Fake {
    fn start(
        handler: impl Fn(&Request, usize, &mut BufReader<TcpStream>, &mut TcpStream) + Send + 'static,
    ) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() || line.is_empty() {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or_default().to_string();
                let path = parts.next().unwrap_or_default().to_string();
                let mut headers = BTreeMap::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                    }
                }
                let req = Request {
                    method,
                    path,
                    headers,
                };
                let range = req
                    .headers
                    .get("range")
                    .map(|r| format!(" range={r}"))
                    .unwrap_or_default();
                let auth = req
                    .headers
                    .get("authorization")
                    .map(|a| format!(" auth={a}"))
                    .unwrap_or_default();
                log2.lock()
                    .unwrap()
                    .push(format!("{} {}{range}{auth}", req.method, req.path));
                handler(&req, n, &mut reader, &mut stream);
                let _ = stream.flush();
            }
        });
        Fake { addr, log }
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(&str, &str)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

fn blob(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn wrong_digest_is_rejected_naming_both_sides() {
    let data = blob(4096);
    let claimed = Digest::sha256(b"something else");
    let fake = Fake::start(move |_, _, _, s| respond(s, "200 OK", &[], &data));
    let client = Client::new(Box::new(Anonymous));
    let err = client
        .get_blob(
            &Origin::new(&fake.addr, true),
            "r",
            &claimed,
            None,
            &mut Vec::new(),
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{msg}");
    assert!(
        msg.contains(claimed.as_str()) && msg.contains(Digest::sha256(&blob(4096)).as_str()),
        "{msg}"
    );
}

#[test]
fn server_errors_then_success_is_retried() {
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#.to_vec();
    let fake = Fake::start(move |_, n, _, s| match n {
        0 => respond(s, "500 Internal Server Error", &[], b"oops"),
        1 => respond(
            s,
            "503 Service Unavailable",
            &[],
            br#"{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}"#,
        ),
        _ => respond(
            s,
            "200 OK",
            &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
            &manifest,
        ),
    });
    let client = Client::new(Box::new(Anonymous));
    let m = client
        .get_manifest(&Origin::new(&fake.addr, true), "r", "t")
        .unwrap();
    assert_eq!(m.media_type, "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(fake.log().len(), 3, "{:?}", fake.log());
}

#[test]
fn connection_reset_mid_blob_resumes_with_range() {
    let data = blob(1 << 20);
    let digest = Digest::sha256(&data);
    let cut = 300 * 1024;
    let d2 = data.clone();
    let fake = Fake::start(move |req, n, _, s| {
        if n == 0 {
            // Promise the whole blob, send part of it, drop the connection.
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                d2.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&d2[..cut]);
            let _ = s.shutdown(std::net::Shutdown::Both);
            return;
        }
        let from: usize = req
            .headers
            .get("range")
            .and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok())
            .unwrap_or(0);
        let range = format!("bytes {from}-{}/{}", d2.len() - 1, d2.len());
        respond(
            s,
            "206 Partial Content",
            &[("Content-Range", &range)],
            &d2[from..],
        );
    });
    let client = Client::new(Box::new(Anonymous));
    let mut sink = Vec::new();
    let n = client
        .get_blob(
            &Origin::new(&fake.addr, true),
            "r",
            &digest,
            Some(data.len() as u64),
            &mut sink,
        )
        .unwrap();
    assert_eq!(n as usize, data.len());
    assert_eq!(sink, data, "the sink saw every byte exactly once");
    let log = fake.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log[1].contains(&format!("range=bytes={cut}-")), "{log:?}");
}

#[test]
fn server_ignoring_range_is_handled() {
    let data = blob(512 * 1024);
    let digest = Digest::sha256(&data);
    let d2 = data.clone();
    let fake = Fake::start(move |_, n, _, s| {
        if n == 0 {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                d2.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&d2[..100_000]);
            let _ = s.shutdown(std::net::Shutdown::Both);
        } else {
            respond(s, "200 OK", &[], &d2);
        }
    });
    let client = Client::new(Box::new(Anonymous));
    let mut sink = Vec::new();
    client
        .get_blob(
            &Origin::new(&fake.addr, true),
            "r",
            &digest,
            None,
            &mut sink,
        )
        .unwrap();
    assert_eq!(sink, data);
}

#[test]
fn bearer_token_flow_with_scopes_and_cache() {
    let data = blob(1000);
    let digest = Digest::sha256(&data);
    let addr = Arc::new(Mutex::new(String::new()));
    let a2 = addr.clone();
    let fake = Fake::start(move |req, _, _, s| {
        let realm = format!("http://{}/token", a2.lock().unwrap());
        if req.path.starts_with("/token") {
            let scoped = req.path.contains("scope=repository%3Aorg%2Fapp%3Apull")
                && req.path.contains("service=fake-registry");
            // "user:pw" in base64
            let creds =
                req.headers.get("authorization").map(String::as_str) == Some("Basic dXNlcjpwdw==");
            if scoped && creds {
                respond(s, "200 OK", &[], br#"{"token":"T1","expires_in":300}"#);
            } else {
                respond(s, "401 Unauthorized", &[], b"");
            }
        } else if req.headers.get("authorization").map(String::as_str) == Some("Bearer T1") {
            respond(s, "200 OK", &[], &blob(1000));
        } else {
            let ch = format!(
                "Bearer realm=\"{realm}\",service=\"fake-registry\",scope=\"repository:org/app:pull\""
            );
            respond(
                s,
                "401 Unauthorized",
                &[("WWW-Authenticate", &ch)],
                br#"{"errors":[{"code":"UNAUTHORIZED"}]}"#,
            );
        }
    });
    *addr.lock().unwrap() = fake.addr.clone();
    let origin = Origin::new(&fake.addr, true);

    let client = Client::new(Box::new(Static("user".into(), "pw".into())));
    for _ in 0..2 {
        let mut sink = Vec::new();
        client
            .get_blob(&origin, "org/app", &digest, None, &mut sink)
            .unwrap();
        assert_eq!(sink, data);
    }
    let log = fake.log();
    let token_fetches = log.iter().filter(|l| l.starts_with("GET /token")).count();
    assert_eq!(token_fetches, 1, "the token is cached: {log:?}");
    // The second blob GET authenticated up front: no second 401.
    assert_eq!(log.len(), 4, "{log:?}");

    let denied = Client::new(Box::new(Static("user".into(), "bad".into())));
    let err = denied
        .get_blob(&origin, "org/app", &digest, None, &mut Vec::new())
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
}

#[test]
fn monolithic_put_refused_falls_back_to_chunked_patch() {
    use rbuild::registry::client::PushedBlob;
    let data = blob(40 * 1024 * 1024 + 123);
    let digest = Digest::sha256(&data);
    let received = Arc::new(Mutex::new(Vec::new()));
    let r2 = received.clone();
    let fake = Fake::start(move |req, _, reader, s| {
        // Read a request body of Content-Length bytes (PATCH chunks).
        let len: usize = req
            .headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        match req.method.as_str() {
            "HEAD" => respond(s, "404 Not Found", &[], b""),
            "POST" => respond(
                s,
                "202 Accepted",
                &[("Location", "/v2/r/blobs/uploads/session")],
                b"",
            ),
            "PUT" if len > 0 => respond(s, "405 Method Not Allowed", &[], b""),
            "PATCH" => {
                let mut body = vec![0u8; len];
                std::io::Read::read_exact(reader, &mut body).unwrap();
                r2.lock().unwrap().extend_from_slice(&body);
                respond(
                    s,
                    "202 Accepted",
                    &[("Location", "/v2/r/blobs/uploads/session?_state=x")],
                    b"",
                );
            }
            "PUT" => respond(s, "201 Created", &[], b""),
            _ => respond(s, "400 Bad Request", &[], b""),
        }
    });
    let client = Client::new(Box::new(Anonymous));
    let d2 = data.clone();
    let mut open = move || -> std::io::Result<Box<dyn std::io::Read>> {
        Ok(Box::new(std::io::Cursor::new(d2.clone())))
    };
    let how = client
        .push_blob(
            &Origin::new(&fake.addr, true),
            "r",
            &digest,
            data.len() as u64,
            None,
            &mut open,
        )
        .unwrap();
    assert_eq!(how, PushedBlob::Uploaded);
    assert_eq!(
        *received.lock().unwrap(),
        data,
        "chunks reassemble the blob"
    );
    let log = fake.log();
    assert!(
        log.iter()
            .any(|l| l.starts_with("PUT /v2/r/blobs/uploads/session?_state=x&digest=sha256:")),
        "{log:?}"
    );
    assert_eq!(
        log.iter().filter(|l| l.starts_with("PATCH")).count(),
        3,
        "{log:?}"
    );
}

#[test]
fn mount_answered_with_202_uploads_into_the_offered_session() {
    use rbuild::registry::client::PushedBlob;
    let data = blob(10_000);
    let digest = Digest::sha256(&data);
    let received = Arc::new(Mutex::new(Vec::new()));
    let r2 = received.clone();
    let fake = Fake::start(move |req, _, reader, s| {
        let len: usize = req
            .headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        match req.method.as_str() {
            "HEAD" => respond(s, "404 Not Found", &[], b""),
            // The registry declines the mount (the source is not visible to this token) and
            // opens an upload session instead, as the spec allows.
            "POST" if req.path.contains("mount=") => respond(
                s,
                "202 Accepted",
                &[("Location", "/v2/dst/blobs/uploads/offered")],
                b"",
            ),
            "PUT"
                if req
                    .path
                    .starts_with("/v2/dst/blobs/uploads/offered?digest=") =>
            {
                let mut body = vec![0u8; len];
                std::io::Read::read_exact(reader, &mut body).unwrap();
                r2.lock().unwrap().extend_from_slice(&body);
                respond(s, "201 Created", &[], b"");
            }
            _ => respond(s, "400 Bad Request", &[], b""),
        }
    });
    let client = Client::new(Box::new(Anonymous));
    let d2 = data.clone();
    let mut open = move || -> std::io::Result<Box<dyn std::io::Read>> {
        Ok(Box::new(std::io::Cursor::new(d2.clone())))
    };
    let how = client
        .push_blob(
            &Origin::new(&fake.addr, true),
            "dst",
            &digest,
            data.len() as u64,
            Some("src"),
            &mut open,
        )
        .unwrap();
    assert_eq!(how, PushedBlob::Uploaded);
    assert_eq!(*received.lock().unwrap(), data);
    let log = fake.log();
    assert!(
        log.iter()
            .any(|l| l.contains("mount=sha256:") && l.contains("from=src")),
        "{log:?}"
    );
}
