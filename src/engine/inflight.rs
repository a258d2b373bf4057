//! Steps in flight, by cache key: when the builds of several target platforms run at once,
//! a step whose key another build is computing right now waits for it and then takes its
//! result from the cache, so a stage the platforms share (`FROM --platform=$BUILDPLATFORM`)
//! is built once, as BuildKit builds one vertex for one digest.
//!
//! A claim is held from a step's cache lookup to its cache record, never across steps, so
//! no build waits while holding a claim another build waits for.

use std::collections::HashSet;
use std::sync::{Condvar, Mutex};

use super::cache::CacheKey;

#[derive(Debug, Default)]
pub(crate) struct InFlight {
    held: Mutex<HashSet<CacheKey>>,
    released: Condvar,
    /// Keys this build computed (recorded in the cache): reused by the other platforms even
    /// under `--no-cache`, which means "not from earlier builds".
    made: Mutex<HashSet<CacheKey>>,
}

/// A step key claimed; released (and waiters woken) when dropped.
pub(crate) struct Claim<'a> {
    owner: &'a InFlight,
    key: CacheKey,
}

impl InFlight {
    /// Note that this build computed `key`.
    pub(crate) fn made(&self, key: &CacheKey) {
        self.made.lock().expect("made keys").insert(*key);
    }

    /// Whether this build computed `key` already.
    pub(crate) fn was_made(&self, key: &CacheKey) -> bool {
        self.made.lock().expect("made keys").contains(key)
    }

    /// Claim `key`, first waiting for whoever holds it to finish.
    pub(crate) fn claim(&self, key: &CacheKey) -> Claim<'_> {
        let mut held = self.held.lock().expect("in-flight keys");
        while held.contains(key) {
            held = self.released.wait(held).expect("in-flight keys");
        }
        held.insert(*key);
        Claim {
            owner: self,
            key: *key,
        }
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        // A poisoned lock means another build panicked; the claim goes with the process.
        if let Ok(mut held) = self.owner.held.lock() {
            held.remove(&self.key);
        }
        self.owner.released.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn a_second_claim_waits_for_the_first() {
        let inflight = InFlight::default();
        let key_of = |name: &str| {
            let mut k = crate::engine::cache::KeyEncoder::new("step", None);
            k.str("name", name);
            k.finish()
        };
        let (key, other) = (key_of("step"), key_of("other"));
        let order = AtomicUsize::new(0);
        std::thread::scope(|s| {
            let first = inflight.claim(&key);
            let waiter = s.spawn(|| {
                let _c = inflight.claim(&key);
                order.fetch_add(1, Ordering::SeqCst)
            });
            // Another key is not held up.
            drop(inflight.claim(&other));
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(
                order.fetch_add(1, Ordering::SeqCst),
                0,
                "the waiter ran first"
            );
            drop(first);
            assert_eq!(waiter.join().unwrap(), 1);
        });
    }
}
