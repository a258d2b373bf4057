//! Credential files, Docker's `config.json` and containers-auth.json(5)
//! (`registry::credentials`), from any bytes: read as `lookup` reads them, then edited as
//! `rbuild login` and `logout` edit them.
//!
//! Input: the file's bytes.
//!
//! Invariants:
//! - lookups are deterministic;
//! - when the file can be read, a login stores into it (no helper is configured for the
//!   registry used) and the next lookup returns exactly that login; the edit leaves every
//!   other top-level field and every other `auths` entry as it was, and other registries'
//!   lookups unchanged;
//! - a logout then erases it: the lookup finds nothing for that registry.

use std::fs;

use rbuild::registry::credentials::{Credential, CredentialStore, StoredIn};
use serde_json::Value;

const REGISTRY: &str = "fuzz.example:5000";
const OTHERS: &[(&str, &str)] = &[("docker.io", "library/busybox"), ("quay.io", "org/app")];

pub fn check(data: &[u8]) {
    let dir = super::jail::scratch();
    let path = dir.path().join("auth.json");
    fs::write(&path, data).unwrap();
    let store = CredentialStore::for_file(path.clone());

    let lookup =
        |registry: &str, repository: &str| format!("{:?}", store.lookup(registry, repository));
    let others: Vec<String> = OTHERS.iter().map(|(r, p)| lookup(r, p)).collect();
    let before = store.lookup(REGISTRY, "");
    assert_eq!(
        format!("{before:?}"),
        lookup(REGISTRY, ""),
        "lookup is not deterministic"
    );
    if before.is_err() {
        return;
    }

    let old: Option<Value> = serde_json::from_slice(data).ok();
    let stored = store.store(REGISTRY, "fuzzuser", "fuzz:pass\"word");
    let Ok(StoredIn::File(_)) = stored else {
        // A helper for this registry, or a file login cannot edit: nothing else to check.
        return;
    };
    assert_eq!(
        store.lookup(REGISTRY, "").ok().flatten(),
        Some(Credential::Basic {
            username: "fuzzuser".to_string(),
            password: "fuzz:pass\"word".to_string(),
        }),
        "a login is not what the next lookup returns"
    );
    let now: Value = serde_json::from_slice(&fs::read(&path).unwrap())
        .unwrap_or_else(|e| panic!("the file login wrote is not JSON: {e}"));
    if let Some(Value::Object(old)) = &old {
        let Value::Object(now) = &now else {
            panic!("the file login wrote is not an object")
        };
        for (k, v) in old {
            if k != "auths" {
                assert_eq!(
                    Some(v),
                    now.get(k),
                    "login changed the top-level field {k:?}"
                );
            }
        }
        if let Some(Value::Object(old_auths)) = old.get("auths") {
            let now_auths = now.get("auths").and_then(Value::as_object).expect("auths");
            for (k, v) in old_auths {
                if k != REGISTRY {
                    assert_eq!(
                        Some(v),
                        now_auths.get(k),
                        "login changed the auths entry {k:?}"
                    );
                }
            }
        }
    }
    let after: Vec<String> = OTHERS.iter().map(|(r, p)| lookup(r, p)).collect();
    assert_eq!(
        others, after,
        "a login for {REGISTRY} changed other registries' lookups"
    );

    let erased = store.erase(REGISTRY);
    assert!(
        matches!(erased, Ok(true)),
        "logout after login erased nothing: {erased:?}"
    );
    assert!(
        matches!(store.lookup(REGISTRY, ""), Ok(None)),
        "a credential is left after logout: {}",
        lookup(REGISTRY, "")
    );
}
