//! Editing Docker's `config.json` (or an auth.json) without disturbing it: every top-level
//! field and every other `auths` entry is written back byte for byte, in its original order,
//! including fields rbuild does not know (`proxies`, `plugins`, `currentContext`, …). Only
//! the one `auths` entry being stored or erased changes. The file is replaced atomically
//! (write a temporary file next to it, fsync, rename), a link is followed to its target as
//! docker/cli does, and a new file gets mode 0600; an existing file keeps its mode.
//!
//! Owns: [`Document`] (read, change `auths`, write). Must not decide which file or which
//! key (`credentials.rs`), and must not interpret credentials.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::CredentialError;
use super::auth_file::json_error;

/// A JSON object as written: keys in file order, values as their original text.
#[derive(Debug, Default)]
struct RawObject(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawObject, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = RawObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject, A::Error> {
                let mut fields = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Box<RawValue>>()? {
                    fields.push((key, value));
                }
                Ok(RawObject(fields))
            }
        }
        d.deserialize_map(ObjectVisitor)
    }
}

impl RawObject {
    /// The object as Docker lays out its files (`json.MarshalIndent(…, "", "\t")`), at
    /// nesting `depth`; each value is written exactly as it was read.
    fn render(&self, depth: usize) -> String {
        if self.0.is_empty() {
            return "{}".to_string();
        }
        let inner = "\t".repeat(depth + 1);
        let fields: Vec<String> = self
            .0
            .iter()
            .map(|(key, value)| {
                let key = serde_json::to_string(key).expect("a string serialises");
                format!("{inner}{key}: {}", value.get())
            })
            .collect();
        format!("{{\n{}\n{}}}", fields.join(",\n"), "\t".repeat(depth))
    }

    fn get(&self, key: &str) -> Option<&RawValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| &**v)
    }

    /// Replace `key` where it stands (dropping any duplicate of it), or append it.
    fn set(&mut self, key: &str, value: Box<RawValue>) {
        match self.0.iter().position(|(k, _)| k == key) {
            Some(i) => {
                self.0[i].1 = value;
                let mut seen = 0;
                self.0.retain(|(k, _)| {
                    k != key || {
                        seen += 1;
                        seen == 1
                    }
                });
            }
            None => self.0.push((key.to_string(), value)),
        }
    }

    /// Remove every field whose key satisfies `matches`; true if any was removed.
    fn remove_where(&mut self, matches: impl Fn(&str) -> bool) -> bool {
        let before = self.0.len();
        self.0.retain(|(k, _)| !matches(k));
        self.0.len() != before
    }
}

/// One credentials file, open for editing.
#[derive(Debug)]
pub(super) struct Document {
    path: PathBuf,
    top: RawObject,
}

impl Document {
    /// Read `path`, or start an empty document if it does not exist (or is empty).
    pub(super) fn read(path: &Path) -> Result<Document, CredentialError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(CredentialError::ReadAuthFile {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let top = if text.trim().is_empty() {
            RawObject::default()
        } else {
            serde_json::from_str(&text).map_err(|e| json_error(path, &e))?
        };
        Ok(Document {
            path: path.to_path_buf(),
            top,
        })
    }

    fn auths(&self) -> Result<RawObject, CredentialError> {
        match self.top.get("auths") {
            None => Ok(RawObject::default()),
            Some(raw) if raw.get().trim() == "null" => Ok(RawObject::default()),
            Some(raw) => serde_json::from_str(raw.get()).map_err(|e| json_error(&self.path, &e)),
        }
    }

    fn set_auths(&mut self, auths: &RawObject) {
        self.top.set("auths", raw(auths.render(1)));
    }

    /// Set `auths[key]` to `{"auth": <auth>}`, replacing that entry whole (a new login makes
    /// any identity token of the old one stale).
    pub(super) fn set_auth(&mut self, key: &str, auth: &str) -> Result<(), CredentialError> {
        let mut auths = self.auths()?;
        let auth = serde_json::to_string(auth).expect("a string serialises");
        auths.set(key, raw(format!("{{\n\t\t\t\"auth\": {auth}\n\t\t}}")));
        self.set_auths(&auths);
        Ok(())
    }

    /// Remove every `auths` key for which `matches` holds; true if any was removed.
    pub(super) fn remove_auths(
        &mut self,
        matches: impl Fn(&str) -> bool,
    ) -> Result<bool, CredentialError> {
        let mut auths = self.auths()?;
        let removed = auths.remove_where(matches);
        if removed {
            self.set_auths(&auths);
        }
        Ok(removed)
    }

    /// Write the document back atomically (see the header).
    pub(super) fn write(&self) -> Result<(), CredentialError> {
        let mut text = self.top.render(0);
        text.push('\n');
        write_atomically(&self.path, text.as_bytes())
    }
}

/// Text this module built from valid JSON pieces, as a raw value.
fn raw(text: String) -> Box<RawValue> {
    RawValue::from_string(text).expect("assembled from valid JSON values")
}

/// Replace `path` with `bytes` so that readers see the old file or the new one, never half.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CredentialError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // Follow a link to the real file (dotfile managers link ~/.docker/config.json).
    let target = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let fail = |source| CredentialError::WriteAuthFile {
        path: target.clone(),
        source,
    };
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(fail)?;
    let mode = match fs::metadata(&target) {
        Ok(meta) => meta.permissions().mode() & 0o7777,
        Err(_) => 0o600,
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(
        ".{name}.rbuild-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        fs::rename(&temp, &target)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(fail(e));
    }
    // Make the rename itself durable; a failure here loses nothing already visible.
    if let Ok(dir) = fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_keep_everything_else_byte_for_byte() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("config.json");
        let original = "{\n\t\"zeta\": {\"b\": 1, \"a\": [1.50, 2e3]},\n\t\"auths\": {\n\t\t\"quay.io\": {\"auth\": \"old\", \"email\": \"x\"},\n\t\t\"ghcr.io\": {\"auth\": \"keep\"}\n\t},\n\t\"alpha\": \"\\u00e9\"\n}\n";
        fs::write(&path, original).unwrap();
        let mut doc = Document::read(&path).unwrap();
        doc.set_auth("quay.io", "new").unwrap();
        doc.set_auth("r.io", "added").unwrap();
        doc.write().unwrap();
        let got = fs::read_to_string(&path).unwrap();
        assert_eq!(
            got,
            "{\n\t\"zeta\": {\"b\": 1, \"a\": [1.50, 2e3]},\n\t\"auths\": {\n\t\t\"quay.io\": {\n\t\t\t\"auth\": \"new\"\n\t\t},\n\t\t\"ghcr.io\": {\"auth\": \"keep\"},\n\t\t\"r.io\": {\n\t\t\t\"auth\": \"added\"\n\t\t}\n\t},\n\t\"alpha\": \"\\u00e9\"\n}\n"
        );

        let mut doc = Document::read(&path).unwrap();
        assert!(doc.remove_auths(|k| k == "quay.io").unwrap());
        assert!(!doc.remove_auths(|k| k == "nothing").unwrap());
        doc.write().unwrap();
        let got = fs::read_to_string(&path).unwrap();
        assert!(
            got.contains("\"auths\": {\n\t\t\"ghcr.io\": {\"auth\": \"keep\"},\n\t\t\"r.io\""),
            "{got}"
        );
        assert!(
            got.starts_with("{\n\t\"zeta\": {\"b\": 1, \"a\": [1.50, 2e3]},"),
            "{got}"
        );
    }

    #[test]
    fn new_file_is_0600_and_existing_mode_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("sub/dir/config.json");
        let mut doc = Document::read(&path).unwrap();
        doc.set_auth("r.io", "x").unwrap();
        doc.write().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);

        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        doc.write().unwrap();
        assert_eq!(mode(&path), 0o640);
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn a_link_is_followed_not_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real.json");
        let link = tmp.path().join("config.json");
        fs::write(&real, "{}").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let mut doc = Document::read(&link).unwrap();
        doc.set_auth("r.io", "x").unwrap();
        doc.write().unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(fs::read_to_string(&real).unwrap().contains("r.io"));
    }

    #[test]
    fn auths_of_the_wrong_type_is_an_error_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("config.json");
        fs::write(&path, r#"{"auths": ["secret-looking"]}"#).unwrap();
        let mut doc = Document::read(&path).unwrap();
        let err = doc.set_auth("r.io", "x").unwrap_err().to_string();
        assert!(
            err.contains("config.json") && !err.contains("secret-looking"),
            "{err}"
        );
    }
}
