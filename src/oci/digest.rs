//! Content digests (`sha256:<hex>`): the [`Digest`] newtype that can only hold a valid,
//! registered digest, the streaming [`Digester`], and the [`DigestingReader`] /
//! [`DigestingWriter`] adapters that hash and count bytes as they pass through.
//!
//! The grammar is the OCI image-spec's (`descriptor.md` "Digests"): `algorithm ":" encoded`,
//! with the registered algorithms `sha256` (encoded MUST be `[a-f0-9]{64}`) and `sha512`
//! (`[a-f0-9]{128}`). rbuild writes sha256 only; sha512 is accepted so that we can read and
//! verify what other tools wrote. Uppercase hex is rejected, as the spec's regexes do.
//!
//! This file never buffers a whole blob and never opens a file: the adapters wrap whatever
//! `Read`/`Write` the caller hands in.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;
use thiserror::Error;

/// A registered digest algorithm (image-spec `descriptor.md` "Registered algorithms").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The identifier before the `:`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex-encoded part.
    pub(crate) fn encoded_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A valid digest of a registered algorithm, e.g. `sha256:e3b0c442…b855`.
///
/// Ordering and equality are those of the string form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    /// The whole `algorithm:encoded` string, kept so that `as_str` and `Display` are free.
    repr: String,
    algorithm: Algorithm,
}

/// Why a digest string was rejected, or why content did not match its digest.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DigestError {
    #[error("invalid digest {input:?}: expected <algorithm>:<hex>")]
    MissingAlgorithm { input: String },
    #[error(
        "invalid digest {input:?}: unsupported algorithm {algorithm:?} (expected sha256 or sha512)"
    )]
    UnsupportedAlgorithm { input: String, algorithm: String },
    #[error("invalid digest {input:?}: {algorithm} needs {expected} hex digits, got {got}")]
    EncodedLength {
        input: String,
        algorithm: Algorithm,
        expected: usize,
        got: usize,
    },
    #[error("invalid digest {input:?}: the encoded part must be lowercase hex [a-f0-9]")]
    EncodedCharacter { input: String },
    #[error("digest mismatch: expected {expected}, got {actual}")]
    Mismatch { expected: Digest, actual: Digest },
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
}

impl Digest {
    /// Parse `algorithm:encoded`, accepting only registered algorithms and lowercase hex of
    /// the algorithm's exact length.
    pub(crate) fn parse(input: &str) -> Result<Digest, DigestError> {
        let Some((name, encoded)) = input.split_once(':') else {
            return Err(DigestError::MissingAlgorithm {
                input: input.to_string(),
            });
        };
        let algorithm =
            Algorithm::from_name(name).ok_or_else(|| DigestError::UnsupportedAlgorithm {
                input: input.to_string(),
                algorithm: name.to_string(),
            })?;
        if !encoded
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(DigestError::EncodedCharacter {
                input: input.to_string(),
            });
        }
        if encoded.len() != algorithm.encoded_len() {
            return Err(DigestError::EncodedLength {
                input: input.to_string(),
                algorithm,
                expected: algorithm.encoded_len(),
                got: encoded.len(),
            });
        }
        Ok(Digest {
            repr: input.to_string(),
            algorithm,
        })
    }

    /// The sha256 digest of `data` (for small things such as manifests and configs; stream
    /// blobs through a [`Digester`] instead).
    pub fn sha256(data: &[u8]) -> Digest {
        let mut d = Digester::new(Algorithm::Sha256);
        d.update(data);
        d.finish()
    }

    /// The algorithm.
    pub(crate) fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The encoded part, after the `:`.
    pub(crate) fn encoded(&self) -> &str {
        &self.repr[self.algorithm.name().len() + 1..]
    }

    /// The hex digits of the hash: the same as `Digest::encoded` for every registered
    /// algorithm, named for callers that build paths such as `blobs/sha256/<hex>`.
    pub fn hex(&self) -> &str {
        self.encoded()
    }

    /// The first 12 hex digits, as Docker shows digests and image IDs to people.
    pub fn short(&self) -> &str {
        let hex = self.hex();
        &hex[..hex.len().min(12)]
    }

    /// The whole `algorithm:encoded` string.
    pub fn as_str(&self) -> &str {
        &self.repr
    }

    /// `Ok` when `actual` is this digest, else a [`DigestError::Mismatch`] naming both.
    pub(crate) fn verify(&self, actual: &Digest) -> Result<(), DigestError> {
        if self == actual {
            Ok(())
        } else {
            Err(DigestError::Mismatch {
                expected: self.clone(),
                actual: actual.clone(),
            })
        }
    }

    fn from_raw(algorithm: Algorithm, raw: &[u8]) -> Digest {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut repr = String::with_capacity(algorithm.name().len() + 1 + raw.len() * 2);
        repr.push_str(algorithm.name());
        repr.push(':');
        for b in raw {
            repr.push(HEX[usize::from(b >> 4)] as char);
            repr.push(HEX[usize::from(b & 0xf)] as char);
        }
        Digest { repr, algorithm }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repr)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.repr)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Digest, DigestError> {
        Digest::parse(s)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.repr
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.repr)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A digest and the number of bytes it covers: what a descriptor needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestAndSize {
    pub digest: Digest,
    pub size: u64,
}

impl DigestAndSize {
    /// `Ok` when both the digest and the size are the expected ones (size first: it is the
    /// cheaper tell of a truncated download).
    pub(crate) fn verify(&self, digest: &Digest, size: u64) -> Result<(), DigestError> {
        if self.size != size {
            return Err(DigestError::SizeMismatch {
                digest: digest.clone(),
                expected: size,
                actual: self.size,
            });
        }
        digest.verify(&self.digest)
    }
}

#[derive(Clone)]
enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

/// Incremental hashing that also counts bytes. Feed it with `Digester::update` or as an
/// `io::Write` (e.g. `io::copy(&mut reader, &mut digester)`), then `Digester::finish`.
#[derive(Clone)]
pub struct Digester {
    hasher: Hasher,
    size: u64,
}

impl Digester {
    pub(crate) fn new(algorithm: Algorithm) -> Digester {
        let hasher = match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        };
        Digester { hasher, size: 0 }
    }

    pub(crate) fn algorithm(&self) -> Algorithm {
        match self.hasher {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        match &mut self.hasher {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
        self.size += data.len() as u64;
    }

    /// Bytes hashed so far.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn finish(self) -> Digest {
        match self.hasher {
            Hasher::Sha256(h) => Digest::from_raw(Algorithm::Sha256, &h.finalize()),
            Hasher::Sha512(h) => Digest::from_raw(Algorithm::Sha512, &h.finalize()),
        }
    }

    /// The digest and size so far, without consuming the digester.
    pub fn peek(&self) -> DigestAndSize {
        DigestAndSize {
            size: self.size,
            digest: self.clone().finish(),
        }
    }
}

impl Default for Digester {
    /// A sha256 digester: what rbuild writes.
    fn default() -> Digester {
        Digester::new(Algorithm::Sha256)
    }
}

impl fmt::Debug for Digester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Digester")
            .field("algorithm", &self.algorithm())
            .field("size", &self.size)
            .finish()
    }
}

impl Write for Digester {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A `Read` that hashes and counts every byte it hands out (a pulled blob is verified while
/// it streams to disk, never held in memory).
#[derive(Debug)]
pub struct DigestingReader<R> {
    inner: R,
    digester: Digester,
}

impl<R: Read> DigestingReader<R> {
    /// Hash with sha256.
    pub(crate) fn new(inner: R) -> DigestingReader<R> {
        DigestingReader::with_algorithm(inner, Algorithm::Sha256)
    }

    /// Hash with the algorithm of the digest the content is expected to have.
    pub(crate) fn with_algorithm(inner: R, algorithm: Algorithm) -> DigestingReader<R> {
        DigestingReader {
            inner,
            digester: Digester::new(algorithm),
        }
    }

    /// The inner reader and the digest and size of everything read through the adapter.
    pub(crate) fn finish(self) -> (R, DigestAndSize) {
        let size = self.digester.size();
        let digest = self.digester.finish();
        (self.inner, DigestAndSize { digest, size })
    }
}

impl<R: Read> Read for DigestingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }
}

/// A `Write` that hashes and counts every byte the inner writer accepted (a layer is
/// digested in the same pass that writes it).
#[derive(Debug)]
pub struct DigestingWriter<W> {
    inner: W,
    digester: Digester,
}

impl<W: Write> DigestingWriter<W> {
    /// Hash with sha256.
    pub(crate) fn new(inner: W) -> DigestingWriter<W> {
        DigestingWriter::with_algorithm(inner, Algorithm::Sha256)
    }

    pub(crate) fn with_algorithm(inner: W, algorithm: Algorithm) -> DigestingWriter<W> {
        DigestingWriter {
            inner,
            digester: Digester::new(algorithm),
        }
    }

    /// Bytes written so far.
    #[cfg(test)]
    pub(crate) fn size(&self) -> u64 {
        self.digester.size()
    }

    /// The inner writer (not flushed: flush first if it buffers) and the digest and size of
    /// everything written through the adapter.
    pub(crate) fn finish(self) -> (W, DigestAndSize) {
        let size = self.digester.size();
        let digest = self.digester.finish();
        (self.inner, DigestAndSize { digest, size })
    }
}

impl<W: Write> Write for DigestingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Hash only what the inner writer took, so a short write is not counted twice.
        let n = self.inner.write(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ABC: &str = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const ABC_512: &str = "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                           2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";

    macro_rules! parses {
        ($($name:ident: $input:expr => $alg:expr;)*) => {$(
            #[test]
            fn $name() {
                let d = Digest::parse($input).unwrap();
                assert_eq!(d.algorithm(), $alg);
                assert_eq!(d.to_string(), $input);
                assert_eq!(format!("{}:{}", d.algorithm(), d.encoded()), $input);
            }
        )*};
    }

    macro_rules! rejects {
        ($($name:ident: $input:expr => $variant:ident;)*) => {$(
            #[test]
            fn $name() {
                let err = Digest::parse($input).unwrap_err();
                assert!(matches!(err, DigestError::$variant { .. }), "{:?} gave {err:?}", $input);
                assert!(err.to_string().contains(&format!("{:?}", $input)), "{err}");
            }
        )*};
    }

    /// `input bytes => digest string`, through every way of hashing.
    macro_rules! hashes {
        ($($name:ident: $alg:expr, $data:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                let data: &[u8] = $data;
                let mut one = Digester::new($alg);
                one.update(data);
                assert_eq!(one.finish().as_str(), $want, "one update");

                let mut bytewise = Digester::new($alg);
                for b in data {
                    bytewise.write_all(&[*b]).unwrap();
                }
                assert_eq!(bytewise.size(), data.len() as u64);
                assert_eq!(bytewise.finish().as_str(), $want, "byte at a time");

                let mut reader = DigestingReader::with_algorithm(data, $alg);
                let mut copy = Vec::new();
                reader.read_to_end(&mut copy).unwrap();
                let (_, got) = reader.finish();
                assert_eq!((got.digest.as_str(), got.size), ($want, data.len() as u64), "reader");
                assert_eq!(copy, data);

                let mut writer = DigestingWriter::with_algorithm(Vec::new(), $alg);
                writer.write_all(data).unwrap();
                let (written, got) = writer.finish();
                assert_eq!((got.digest.as_str(), got.size), ($want, data.len() as u64), "writer");
                assert_eq!(written, data);
            }
        )*};
    }

    parses! {
        sha256_empty: EMPTY => Algorithm::Sha256;
        sha256_abc: ABC => Algorithm::Sha256;
        sha512_abc: ABC_512 => Algorithm::Sha512;
    }

    rejects! {
        empty: "" => MissingAlgorithm;
        bare_hex: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" => MissingAlgorithm;
        short_hex: "sha256:e3b0c442" => EncodedLength;
        long_hex: "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8550" => EncodedLength;
        uppercase_hex: "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855" => EncodedCharacter;
        not_hex: "sha256:g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" => EncodedCharacter;
        sha512_of_sha256_length: "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" => EncodedLength;
        md5: "md5:d41d8cd98f00b204e9800998ecf8427e" => UnsupportedAlgorithm;
        uppercase_algorithm: "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" => UnsupportedAlgorithm;
        empty_algorithm: ":e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" => UnsupportedAlgorithm;
    }

    hashes! {
        sha256_of_nothing: Algorithm::Sha256, b"" => EMPTY;
        sha256_of_abc: Algorithm::Sha256, b"abc" => ABC;
        sha512_of_abc: Algorithm::Sha512, b"abc" => ABC_512;
        // FIPS 180-2 appendix B.2, the two-block message.
        sha256_two_blocks: Algorithm::Sha256, b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            => "sha256:248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
    }

    #[test]
    fn accessors() {
        let d = Digest::sha256(b"abc");
        assert_eq!(d.as_str(), ABC);
        assert_eq!(d.hex(), &ABC[7..]);
        assert_eq!(d.encoded(), d.hex());
        assert_eq!(format!("{d:?}"), format!("Digest({ABC})"));
        assert_eq!(ABC.parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn serde_as_a_string() {
        let d = Digest::sha256(b"");
        assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{EMPTY}\""));
        let back: Digest = serde_json::from_str(&format!("\"{EMPTY}\"")).unwrap();
        assert_eq!(back, d);
        let err = serde_json::from_str::<Digest>("\"sha256:abc\"").unwrap_err();
        assert!(
            err.to_string().contains("needs 64 hex digits, got 3"),
            "{err}"
        );
    }

    #[test]
    fn mismatch_names_both_sides() {
        let expected = Digest::sha256(b"abc");
        let actual = Digest::sha256(b"");
        let err = expected.verify(&actual).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("digest mismatch: expected {ABC}, got {EMPTY}")
        );
        assert!(expected.verify(&expected.clone()).is_ok());

        let got = DigestAndSize {
            digest: actual,
            size: 0,
        };
        let err = got.verify(&expected, 3).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("size mismatch for {ABC}: expected 3 bytes, got 0")
        );
    }

    #[test]
    fn peek_does_not_consume() {
        let mut d = Digester::default();
        d.update(b"ab");
        let early = d.peek();
        d.update(b"c");
        assert_eq!(early.digest, Digest::sha256(b"ab"));
        assert_eq!(early.size, 2);
        assert_eq!(d.finish().as_str(), ABC);
    }

    /// A writer that accepts at most two bytes per call.
    struct Trickle(Vec<u8>);

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(2);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn short_writes_are_hashed_once() {
        let mut w = DigestingWriter::new(Trickle(Vec::new()));
        w.write_all(b"abc").unwrap();
        let (inner, got) = w.finish();
        assert_eq!(inner.0, b"abc");
        assert_eq!((got.digest.as_str(), got.size), (ABC, 3));
    }

    #[test]
    fn large_stream_through_io_copy() {
        // 1 MiB + 7 bytes: many blocks and a ragged tail, hashed without holding it all.
        let data: Vec<u8> = (0..(1 << 20) + 7).map(|i: u32| (i % 251) as u8).collect();
        let mut reader = DigestingReader::new(&data[..]);
        let mut sink = Digester::default();
        io::copy(&mut reader, &mut sink).unwrap();
        let (_, via_reader) = reader.finish();
        assert_eq!(via_reader.digest, sink.finish());
        assert_eq!(via_reader.digest, Digest::sha256(&data));
        assert_eq!(via_reader.size, data.len() as u64);
    }
}
