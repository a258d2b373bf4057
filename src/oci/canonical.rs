//! Canonical JSON: the only way rbuild turns a manifest, index or config into the bytes it
//! hashes and writes. Object keys sorted by their UTF-8 bytes at every depth, no whitespace
//! between tokens, strings escaped as serde_json escapes them, UTF-8 output.
//!
//! Why: a digest names bytes, so equal values must give equal bytes or cache keys and
//! image IDs drift between runs. `oci-spec` keeps annotations in a `HashMap`, whose
//! iteration (and so serialisation) order is random per process: never hash its direct
//! output. Sorting is done here, explicitly, rather than by relying on `serde_json::Map`
//! being a `BTreeMap`, which stops being true as soon as any crate in the build enables
//! serde_json's `preserve_order` feature.
//!
//! Not Go's output: Go's `encoding/json` keeps struct fields in declaration order and
//! escapes `<`, `>`, `&` as `\u003c`…; registries and runtimes hash what they receive and
//! never re-serialise, so that difference is harmless, and it is deterministic.
//!
//! This file owns serialisation only; it does no I/O.

use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

/// Why a value could not be written as canonical JSON.
#[derive(Debug, Error)]
pub enum CanonicalError {
    /// The value's `Serialize` impl failed (e.g. a map with non-string keys).
    #[error("cannot serialize {type_name} as JSON")]
    ToJson {
        type_name: &'static str,
        source: serde_json::Error,
    },
}

/// The canonical JSON bytes of `value`.
pub(crate) fn to_canonical_vec<T: Serialize + ?Sized>(
    value: &T,
) -> Result<Vec<u8>, CanonicalError> {
    let fail = |source| CanonicalError::ToJson {
        type_name: std::any::type_name::<T>(),
        source,
    };
    let value = serde_json::to_value(value).map_err(fail)?;
    let mut out = Vec::new();
    write_value(&mut out, &value).map_err(fail)?;
    Ok(out)
}

/// The canonical JSON text of `value` (the same bytes as [`to_canonical_vec`]).
#[cfg(test)]
pub(crate) fn to_canonical_string<T: Serialize + ?Sized>(
    value: &T,
) -> Result<String, CanonicalError> {
    let bytes = to_canonical_vec(value)?;
    Ok(String::from_utf8(bytes).expect("serde_json writes UTF-8"))
}

fn write_value(out: &mut Vec<u8>, value: &Value) -> Result<(), serde_json::Error> {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key)?;
                out.push(b':');
                write_value(out, value)?;
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use serde_json::json;

    use super::*;

    /// `value => canonical text`.
    macro_rules! canonical {
        ($($name:ident: $value:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(to_canonical_string(&$value).unwrap(), $want);
            }
        )*};
    }

    canonical! {
        sorted_top_level: json!({"b": 1, "a": 2, "c": 3}) => r#"{"a":2,"b":1,"c":3}"#;
        sorted_nested: json!({"z": {"y": [ {"b": 1, "a": 2} ], "x": null}}) => r#"{"z":{"x":null,"y":[{"a":2,"b":1}]}}"#;
        arrays_keep_order: json!([3, 1, 2]) => "[3,1,2]";
        byte_order_not_locale: json!({"a": 1, "B": 2, "_": 3, "é": 4}) => r#"{"B":2,"_":3,"a":1,"é":4}"#;
        dotted_keys: json!({"os.version": "1", "os": "linux", "os.features": []}) => r#"{"os":"linux","os.features":[],"os.version":"1"}"#;
        unicode_unescaped: json!({"k": "ünïcødé ✓"}) => r#"{"k":"ünïcødé ✓"}"#;
        control_chars_escaped: json!({"k": "a\nb\t\"c\"\\"}) => r#"{"k":"a\nb\t\"c\"\\"}"#;
        html_not_escaped: json!({"k": "<&>"}) => r#"{"k":"<&>"}"#;
        big_numbers: json!({"size": u64::MAX, "neg": -1}) => r#"{"neg":-1,"size":18446744073709551615}"#;
        empty_things: json!({"o": {}, "a": [], "s": ""}) => r#"{"a":[],"o":{},"s":""}"#;
    }

    #[test]
    fn equal_maps_in_any_order_give_identical_bytes() {
        let pairs: Vec<(String, String)> = (0..64)
            .map(|i| (format!("org.example.key{i}"), format!("value {i}")))
            .collect();
        let forward: HashMap<String, String> = pairs.iter().cloned().collect();
        let mut backward: HashMap<String, String> = HashMap::with_capacity(1);
        for (k, v) in pairs.iter().rev() {
            backward.insert(k.clone(), v.clone());
        }
        let sorted: BTreeMap<String, String> = pairs.into_iter().collect();
        let a = to_canonical_vec(&json!({"annotations": forward, "n": 1})).unwrap();
        let b = to_canonical_vec(&json!({"n": 1, "annotations": backward})).unwrap();
        let c = to_canonical_vec(&json!({"annotations": sorted, "n": 1})).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn output_parses_back_to_the_same_value() {
        let value = json!({"b": [1, {"d": true, "c": 1.5}], "a": "x"});
        let bytes = to_canonical_vec(&value).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap(), value);
        assert!(!bytes.iter().any(|b| b.is_ascii_whitespace()));
    }

    #[test]
    fn non_string_keys_are_an_error_naming_the_type() {
        let bad: BTreeMap<Vec<u8>, u8> = [(vec![1], 1)].into_iter().collect();
        let err = to_canonical_vec(&bad).unwrap_err().to_string();
        assert!(err.contains("BTreeMap"), "{err}");
    }
}
