//! The build's `--cache-from` and `--cache-to`, as progress vertices: every cache imported
//! before the first step ([`import_all`]), the records exported after the outputs
//! ([`export_all`]). An import that fails is a warning; an export that fails fails the
//! build unless it says `ignore-error=true`.

use std::collections::HashSet;
use std::time::Instant;

use super::cache::export::export;
use super::cache::import::import;
use super::cache::travel::Travel;
use super::cache::{CacheKey, CacheMode, CacheSpec};
use super::error::BuildError;
use super::lazy::LazyBlobs;
use crate::progress::{Event, Reporter};
use crate::store::Store;

/// Read each cache of `specs` (in order: the first to offer a key wins); returns the
/// records, and a warning for each cache that could not be used.
pub(crate) fn import_all(
    specs: &[CacheSpec],
    lazy: &LazyBlobs,
    progress: &dyn Reporter,
    id: &mut dyn FnMut() -> usize,
) -> (Travel, Vec<String>) {
    let mut records = Vec::new();
    let mut warnings = Vec::new();
    for spec in specs {
        let id = id();
        progress.event(Event::Start {
            id,
            name: format!("importing cache manifest from {}", spec.shown()),
        });
        let started = Instant::now();
        match import(spec, lazy) {
            Ok(got) => {
                let mut said = format!("{} record(s)", got.records.len());
                if got.skipped > 0 {
                    let w = format!(
                        "--cache-from {}: {} record(s) skipped (malformed, or naming layers the cache does not hold)",
                        spec.shown(),
                        got.skipped
                    );
                    said.push_str(&format!(", {} skipped", got.skipped));
                    warnings.push(w);
                }
                progress.event(Event::Status { id, message: said });
                records.extend(got.records);
            }
            Err(e) => {
                let why = crate::diag::chain(&e);
                let w = if e.is_missing() {
                    format!("--cache-from {}: no cache there yet ({why})", spec.shown())
                } else {
                    format!(
                        "--cache-from {}: not used: {why}; building without it",
                        spec.shown()
                    )
                };
                progress.event(Event::Status {
                    id,
                    message: format!("warning: {w}"),
                });
                warnings.push(w);
            }
        }
        progress.event(Event::Done {
            id,
            elapsed: started.elapsed(),
        });
    }
    (Travel::new(records), warnings)
}

/// Write the build's records to each cache of `specs`: every record (`mode=max`), or those
/// of the steps the final images are made of (`final_steps`). Returns the warnings of
/// exports that failed with `ignore-error=true`.
pub(crate) fn export_all(
    specs: &[CacheSpec],
    travel: &Travel,
    final_steps: &HashSet<CacheKey>,
    store: &Store,
    lazy: &LazyBlobs,
    progress: &dyn Reporter,
    id: &mut dyn FnMut() -> usize,
) -> Result<Vec<String>, BuildError> {
    let mut warnings = Vec::new();
    for spec in specs {
        let id = id();
        progress.event(Event::Start {
            id,
            name: format!("exporting cache to {}", spec.shown()),
        });
        let started = Instant::now();
        let records = travel.records(match spec.mode {
            CacheMode::Max => None,
            CacheMode::Min => Some(final_steps),
        });
        match export(spec, &records, store, lazy) {
            Ok(done) => progress.event(Event::Status {
                id,
                message: format!(
                    "{} record(s), {} layer(s): {}",
                    done.records, done.layers, done.digest
                ),
            }),
            Err(e) if spec.ignore_error => {
                let w = format!(
                    "--cache-to {}: not written (ignore-error=true): {}",
                    spec.shown(),
                    crate::diag::chain(&e)
                );
                progress.event(Event::Status {
                    id,
                    message: format!("warning: {w}"),
                });
                warnings.push(w);
            }
            Err(e) => {
                progress.event(Event::Error {
                    id,
                    message: crate::diag::chain(&e),
                });
                return Err(BuildError::CacheExport {
                    dest: spec.shown(),
                    source: Box::new(e),
                });
            }
        }
        progress.event(Event::Done {
            id,
            elapsed: started.elapsed(),
        });
    }
    Ok(warnings)
}
