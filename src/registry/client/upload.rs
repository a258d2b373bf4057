//! Blob uploads: monolithic with a chunked fallback for content whose digest is known, and
//! chunked for content whose digest is known only once it is all sent.

use std::io::{self, Read};

use super::{Client, Origin, PushedBlob, RegistryError};
use crate::oci::digest::{Digest, DigestAndSize, DigestingReader};
use crate::registry::http::{expect_ok, urlencode, with_auth, with_query};

impl Client {
    /// Upload a blob unless the repository has it: HEAD first, then a cross-repository
    /// mount from `mount_from` when given, then a monolithic `POST`+`PUT`, falling back to
    /// chunked `PATCH` uploads when a registry refuses the single PUT. `open` re-opens the
    /// content for each attempt (it is streamed, never held in memory).
    pub fn push_blob(
        &self,
        origin: &Origin,
        repository: &str,
        digest: &Digest,
        size: u64,
        mount_from: Option<&str>,
        open: &mut dyn FnMut() -> io::Result<Box<dyn Read>>,
    ) -> Result<PushedBlob, RegistryError> {
        let scopes = crate::registry::auth::push_scopes(repository, mount_from);
        if self
            .blob_exists(origin, repository, digest, &scopes)?
            .is_some()
        {
            return Ok(PushedBlob::Existed);
        }
        let uploads = format!("{}/v2/{repository}/blobs/uploads/", origin.base());
        let start_url = match mount_from.filter(|m| *m != repository) {
            Some(from) => format!("{uploads}?mount={digest}&from={}", urlencode(from)),
            None => uploads.clone(),
        };
        let resp = self.execute(
            "POST",
            &start_url,
            origin,
            repository,
            &scopes,
            &mut |a, auth| with_auth(a.post(&start_url), auth).send_empty(),
        )?;
        if resp.status().as_u16() == 201 && mount_from.is_some() {
            return Ok(PushedBlob::Mounted);
        }
        let resp = expect_ok("POST", &start_url, resp)?;
        let location = self.location(origin, &start_url, &resp)?;

        // Monolithic: PUT the whole blob to the session with ?digest=.
        let put_url = with_query(&location, &format!("digest={digest}"));
        let mut reader_err = None;
        let put = self.execute(
            "PUT",
            &put_url,
            origin,
            repository,
            &scopes,
            &mut |a, auth| {
                let reader = match open() {
                    Ok(r) => r,
                    Err(e) => {
                        reader_err = Some(e);
                        return with_auth(a.put(&put_url), auth).send_empty();
                    }
                };
                with_auth(a.put(&put_url), auth)
                    .header("Content-Type", "application/octet-stream")
                    .header("Content-Length", size.to_string())
                    .send(ureq::SendBody::from_owned_reader(reader))
            },
        );
        if let Some(e) = reader_err {
            return Err(RegistryError::Write {
                url: put_url,
                source: e,
            });
        }
        match put {
            Ok(resp) => match resp.status().as_u16() {
                201 => return Ok(PushedBlob::Uploaded),
                // Refused as one request: upload in chunks instead.
                400 | 405 | 413 | 416 => {}
                _ => {
                    expect_ok("PUT", &put_url, resp)?;
                    return Ok(PushedBlob::Uploaded);
                }
            },
            // A server that refuses a large body often answers early and closes the
            // connection mid-send (nginx's 413): a fresh chunked session recovers.
            Err(RegistryError::Transport { .. }) => {}
            Err(e) => return Err(e),
        }
        self.push_blob_chunked(origin, repository, digest, size, &scopes, open)
    }

    /// Chunked upload: a new session, `PATCH` chunks with `Content-Range`, then `PUT`.
    fn push_blob_chunked(
        &self,
        origin: &Origin,
        repository: &str,
        digest: &Digest,
        size: u64,
        scopes: &[String],
        open: &mut dyn FnMut() -> io::Result<Box<dyn Read>>,
    ) -> Result<PushedBlob, RegistryError> {
        let uploads = format!("{}/v2/{repository}/blobs/uploads/", origin.base());
        let mut reader = open().map_err(|e| RegistryError::Write {
            url: uploads.clone(),
            source: e,
        })?;
        let (location, sent) = self.upload_chunks(origin, repository, scopes, &mut reader)?;
        if sent != size {
            return Err(RegistryError::SizeMismatch {
                url: location,
                expected: size,
                actual: sent,
            });
        }
        self.finish_upload(origin, repository, scopes, &location, digest)?;
        Ok(PushedBlob::Uploaded)
    }

    /// Upload a blob whose digest is known only once it is all read (one compressed as it
    /// is sent): chunks as [`Client::push_blob_chunked`] sends them, hashed on the way,
    /// and the digest last. Returns it and the size.
    pub fn push_blob_stream(
        &self,
        origin: &Origin,
        repository: &str,
        content: &mut dyn Read,
    ) -> Result<DigestAndSize, RegistryError> {
        let scopes = crate::registry::auth::push_scopes(repository, None);
        let mut hashing = DigestingReader::new(content);
        let (location, _) = self.upload_chunks(origin, repository, &scopes, &mut hashing)?;
        let (_, blob) = hashing.finish();
        self.finish_upload(origin, repository, &scopes, &location, &blob.digest)?;
        Ok(blob)
    }

    /// Start an upload session and `PATCH` what `reader` gives to it, in chunks; returns
    /// the session's last location and the bytes sent.
    fn upload_chunks(
        &self,
        origin: &Origin,
        repository: &str,
        scopes: &[String],
        reader: &mut dyn Read,
    ) -> Result<(String, u64), RegistryError> {
        const CHUNK: usize = 16 << 20;
        let uploads = format!("{}/v2/{repository}/blobs/uploads/", origin.base());
        let resp = self.execute(
            "POST",
            &uploads,
            origin,
            repository,
            scopes,
            &mut |a, auth| with_auth(a.post(&uploads), auth).send_empty(),
        )?;
        let resp = expect_ok("POST", &uploads, resp)?;
        let mut location = self.location(origin, &uploads, &resp)?;
        let mut buf = vec![0u8; CHUNK];
        let mut offset: u64 = 0;
        loop {
            let mut filled = 0;
            while filled < CHUNK {
                match reader.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        return Err(RegistryError::Write {
                            url: location,
                            source: e,
                        });
                    }
                }
            }
            if filled == 0 {
                break;
            }
            let chunk = &buf[..filled];
            let range = format!("{offset}-{}", offset + filled as u64 - 1);
            let url = location.clone();
            let resp =
                self.execute("PATCH", &url, origin, repository, scopes, &mut |a, auth| {
                    with_auth(a.patch(&url), auth)
                        .header("Content-Type", "application/octet-stream")
                        .header("Content-Range", &range)
                        .send(chunk)
                })?;
            let resp = expect_ok("PATCH", &url, resp)?;
            location = self.location(origin, &url, &resp)?;
            offset += filled as u64;
        }
        Ok((location, offset))
    }

    /// Close an upload session at `location` as the blob `digest`.
    fn finish_upload(
        &self,
        origin: &Origin,
        repository: &str,
        scopes: &[String],
        location: &str,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        let put_url = with_query(location, &format!("digest={digest}"));
        let resp = self.execute(
            "PUT",
            &put_url,
            origin,
            repository,
            scopes,
            &mut |a, auth| with_auth(a.put(&put_url), auth).send_empty(),
        )?;
        expect_ok("PUT", &put_url, resp)?;
        Ok(())
    }
}
