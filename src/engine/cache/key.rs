//! Cache keys and their encoding. A key is the blake3 hash of an explicit byte encoding of
//! everything a step's result depends on, chained from the stage's base (an image's
//! manifest digest, `scratch` and the platform, or another stage's last key) through each
//! step. Never a mtime, never a secret's value, never a `Debug` rendering: the bytes are
//! written field by field here, in an order each step kind fixes, so that a key changes
//! only when rbuild decides it does (docs/build.md, "Cache keys").
//!
//! The encoding (format [`KEY_FORMAT`]):
//! - a header: the bytes `rbuild-cache-key`, a NUL, the format version as a u32 (LE);
//! - then fields, each as the name's length (u32 LE), the name, the value's length (u64 LE)
//!   and the value. Integers are u64 LE, booleans one byte, strings their UTF-8 bytes. An
//!   absent optional value is an absent field; a list or a structure is one field whose
//!   value is its own fields ([`KeyEncoder::nested`]), without a header.
//!
//! Because every name and value is framed, no two different field lists encode alike
//! (`"ab","c"` vs `"a","bc"`). Changing what a step kind writes, or this encoding, changes
//! keys: bump [`KEY_FORMAT`] when the encoding itself changes, so that records of another
//! format can never be taken for this one's (imported caches skip a format they do not
//! know).

/// The version of the key encoding, written into every key's header.
pub(crate) const KEY_FORMAT: u32 = 2;

const MAGIC: &[u8] = b"rbuild-cache-key\0";

/// A step's cache key. Only [`KeyEncoder::finish`] makes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct CacheKey([u8; 32]);

impl CacheKey {
    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub(crate) fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A key as [`CacheKey::hex`] writes it (64 lowercase hex digits); none otherwise.
    pub(crate) fn from_hex(s: &str) -> Option<CacheKey> {
        let digits = s.as_bytes();
        if digits.len() != 64 {
            return None;
        }
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut out = [0u8; 32];
        for (i, pair) in digits.chunks_exact(2).enumerate() {
            out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(CacheKey(out))
    }
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex())
    }
}

/// Writes a key's fields (see the module documentation for the format). A key is a few
/// hundred bytes to a few kilobytes (a heredoc's body is the largest field), so the bytes
/// are kept and hashed at the end, which lets tests pin them.
#[derive(Clone, Debug, Default)]
pub(crate) struct KeyEncoder {
    bytes: Vec<u8>,
}

impl KeyEncoder {
    /// The key of a `kind` of state (`step`, `scratch`, `image`) derived from `parent`
    /// (none for a stage's base).
    pub(crate) fn new(kind: &str, parent: Option<&CacheKey>) -> KeyEncoder {
        let mut k = KeyEncoder {
            bytes: Vec::with_capacity(256),
        };
        k.bytes.extend_from_slice(MAGIC);
        k.bytes.extend_from_slice(&KEY_FORMAT.to_le_bytes());
        k.str("kind", kind);
        if let Some(p) = parent {
            k.bytes("parent", &p.0);
        }
        k
    }

    pub(crate) fn bytes(&mut self, name: &str, value: &[u8]) -> &mut KeyEncoder {
        self.bytes
            .extend_from_slice(&(name.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes
            .extend_from_slice(&(value.len() as u64).to_le_bytes());
        self.bytes.extend_from_slice(value);
        self
    }

    pub(crate) fn str(&mut self, name: &str, value: &str) -> &mut KeyEncoder {
        self.bytes(name, value.as_bytes())
    }

    /// A string field, or nothing when `value` is `None`.
    pub(crate) fn opt_str(&mut self, name: &str, value: Option<&str>) -> &mut KeyEncoder {
        if let Some(v) = value {
            self.str(name, v);
        }
        self
    }

    pub(crate) fn u64(&mut self, name: &str, value: u64) -> &mut KeyEncoder {
        self.bytes(name, &value.to_le_bytes())
    }

    /// An integer field, or nothing when `value` is `None`.
    pub(crate) fn opt_u64(&mut self, name: &str, value: Option<u64>) -> &mut KeyEncoder {
        if let Some(v) = value {
            self.u64(name, v);
        }
        self
    }

    /// A signed integer field (two's complement, LE), or nothing when `value` is `None`.
    pub(crate) fn opt_i64(&mut self, name: &str, value: Option<i64>) -> &mut KeyEncoder {
        if let Some(v) = value {
            self.bytes(name, &v.to_le_bytes());
        }
        self
    }

    pub(crate) fn bool(&mut self, name: &str, value: bool) -> &mut KeyEncoder {
        self.bytes(name, &[u8::from(value)])
    }

    /// A field whose value is the fields `write` encodes: a structure, or a list.
    pub(crate) fn nested(
        &mut self,
        name: &str,
        write: impl FnOnce(&mut KeyEncoder),
    ) -> &mut KeyEncoder {
        let mut inner = KeyEncoder::default();
        write(&mut inner);
        self.bytes(name, &inner.bytes)
    }

    /// A list of strings: one field holding an `item` field per element, in order.
    pub(crate) fn strs<S: AsRef<str>>(&mut self, name: &str, items: &[S]) -> &mut KeyEncoder {
        self.nested(name, |l| {
            for item in items {
                l.str("item", item.as_ref());
            }
        })
    }

    /// The bytes written so far.
    #[cfg(test)]
    pub(crate) fn encoded(&self) -> &[u8] {
        &self.bytes
    }

    pub(crate) fn finish(&self) -> CacheKey {
        CacheKey(*blake3::hash(&self.bytes).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fields: &[(&str, &str)]) -> CacheKey {
        let mut k = KeyEncoder::new("test", None);
        for (l, v) in fields {
            k.str(l, v);
        }
        k.finish()
    }

    #[test]
    fn fields_are_framed() {
        assert_ne!(key(&[("a", "bc")]), key(&[("ab", "c")]));
        assert_ne!(
            key(&[("x", "ab"), ("y", "c")]),
            key(&[("x", "a"), ("y", "bc")])
        );
        assert_eq!(key(&[("x", "1")]), key(&[("x", "1")]));
        let list = |items: &[&str]| KeyEncoder::new("t", None).strs("l", items).finish();
        assert_ne!(list(&["a", "b"]), list(&["ab"]));
        assert_ne!(list(&["a", ""]), list(&["a"]));
        let absent = KeyEncoder::new("t", None).opt_str("x", None).finish();
        let empty = KeyEncoder::new("t", None).opt_str("x", Some("")).finish();
        assert_ne!(absent, empty);
    }

    #[test]
    fn parent_changes_the_key() {
        let p = key(&[("x", "1")]);
        let a = KeyEncoder::new("step", Some(&p)).finish();
        let b = KeyEncoder::new("step", None).finish();
        assert_ne!(a, b);
        assert_eq!(a.hex().len(), 64);
        assert_eq!(CacheKey::from_hex(&a.hex()), Some(a));
        for bad in [
            "",
            "00",
            &a.hex().to_uppercase(),
            &format!("{}g", &a.hex()[1..]),
        ] {
            assert_eq!(CacheKey::from_hex(bad), None, "{bad}");
        }
    }

    /// The encoding itself, byte for byte: a change here changes every key, which must be a
    /// decision (bump KEY_FORMAT).
    #[test]
    fn encoding_is_pinned() {
        let mut k = KeyEncoder::new("step", None);
        k.str("a", "xy").u64("n", 7).bool("b", true);
        k.nested("s", |s| {
            s.str("i", "z");
        });
        let mut want = b"rbuild-cache-key\0".to_vec();
        want.extend_from_slice(&[2, 0, 0, 0]);
        let field = |want: &mut Vec<u8>, name: &[u8], value: &[u8]| {
            want.extend_from_slice(&(name.len() as u32).to_le_bytes());
            want.extend_from_slice(name);
            want.extend_from_slice(&(value.len() as u64).to_le_bytes());
            want.extend_from_slice(value);
        };
        field(&mut want, b"kind", b"step");
        field(&mut want, b"a", b"xy");
        field(&mut want, b"n", &7u64.to_le_bytes());
        field(&mut want, b"b", &[1]);
        let mut inner = Vec::new();
        field(&mut inner, b"i", b"z");
        field(&mut want, b"s", &inner);
        assert_eq!(k.encoded(), &want[..]);
        assert_eq!(
            k.finish().hex(),
            blake3::hash(&want).to_hex().to_string(),
            "a key is the blake3 hash of its encoding"
        );
    }
}
