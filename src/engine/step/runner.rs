//! Running a layer step: prepare it by kind, make its key, take its result from the cache
//! or mount the step's filesystem, do the work and commit what changed.

use std::collections::BTreeMap;

use super::kind::LayerKind;
use super::work::{Cx, LayerStep};
use super::{copy, run, workdir};
use crate::engine::cache::{CacheKey, KeyEncoder, LayerRecord, Record};
use crate::engine::commit;
use crate::engine::error::BuildError;
use crate::engine::fs::{FsError, StepFs};
use crate::engine::session::Session;
use crate::engine::state::State;
use crate::gc::lease::Kind as LeaseKind;
use crate::layer::LayerOptions;
use crate::layer::deferred::DeferredLayers;
use crate::oci::platform::Platform;
use crate::plan::Step;
use crate::snapshot::workdir::WorkDir;

/// Prepare a layer step of `kind`.
fn prepare(
    session: &Session<'_>,
    kind: LayerKind<'_>,
    step: &Step,
    state: &State,
    done: &BTreeMap<usize, State>,
) -> Result<Box<dyn LayerStep>, BuildError> {
    Ok(match kind {
        LayerKind::Run(r) => Box::new(run::prepare(session, r, step, state, done)?),
        LayerKind::Copy(c) => Box::new(copy::prepare_copy(session, c, step, state, done)?),
        LayerKind::Add(a) => Box::new(copy::prepare_add(session, a, step, state)?),
        LayerKind::Workdir => Box::new(workdir::prepare(state)),
    })
}

/// What every layer step's key starts with: the platform, and how the layer is written (a
/// layer cached as gzip must not answer a zstd build, nor one without SOURCE_DATE_EPOCH a
/// reproducible one). Compression threads do not change the bytes and stay out.
fn key_header(key: &mut KeyEncoder, platform: &Platform, layer: &LayerOptions) {
    key.str("platform", &platform.to_string());
    key.nested("layer", |l| {
        l.str("compression", &layer.compression.to_string());
        l.opt_i64("level", layer.level.map(i64::from));
        l.opt_i64("source-date-epoch", layer.source_date_epoch);
    });
}

/// Run (or find in the cache) one layer step of `kind`; returns whether it was cached.
pub(crate) fn run_layer_step(
    session: &Session<'_>,
    kind: LayerKind<'_>,
    id: usize,
    step: &Step,
    created_by: &str,
    state: &mut State,
    done: &BTreeMap<usize, State>,
) -> Result<bool, BuildError> {
    let work = prepare(session, kind, step, state, done)?;
    let mut key = KeyEncoder::new("step", Some(&state.key));
    key_header(&mut key, &state.platform, &session.settings().layer);
    work.key(&mut key);
    let key = key.finish();
    // Another platform's build computing this very step: wait for it, then take its result.
    let _claim = session.inflight().claim(&key);
    // `--no-cache` means nothing from earlier builds; what this build made (another
    // platform's identical stage) is still taken.
    let no_cache = session.settings().no_cache;
    if (!no_cache || session.inflight().was_made(&key))
        && let Some(record) = session.cache().get(&key)
        && hold_record(session, &key)?
        && reuse(session, &record, state, created_by)?
    {
        session.travel().used(&key, &record);
        state.key = key;
        state.steps.push(key);
        return Ok(true);
    }
    // An imported cache's record (`--cache-from`; none are imported under `--no-cache`):
    // its layer is fetched only when something needs it. Kept in the local cache too, so
    // the next build here finds it (once its layer is local).
    if let Some(record) = session.travel().imported(&key)
        && reuse(session, record, state, created_by)?
    {
        session.cache().put(&key, record)?;
        hold_record(session, &key)?;
        session.travel().used(&key, record);
        state.key = key;
        state.steps.push(key);
        return Ok(true);
    }
    state.clock = session.created();
    let dir = WorkDir::create(&session.settings().state_root)?;
    let lowers = session.lowers(Some(id), &state.layers, state.diff_ids())?;
    let fs = StepFs::prepare(session.snapshotter(), &lowers, dir.path())?;
    let cx = Cx {
        session,
        id,
        step,
        work_dir: dir.path(),
        reused: Default::default(),
    };
    let keeps_empty = work.keeps_empty_layer();
    work.execute(&cx, fs.root())?;
    let reused = cx.reused.lock().expect("the step's reuse").take();
    let (upper, changes) = fs.finish_with(|upper| match &reused {
        Some((_, taken)) => taken.link_into(upper).map_err(|e| FsError::Files {
            what: "linking the files an incremental COPY took".into(),
            source: std::io::Error::other(crate::diag::chain(&e)),
        }),
        None => Ok(()),
    })?;
    let layer = if changes.is_empty() && !keeps_empty {
        None
    } else {
        Some(commit::write(session, &upper, &changes)?)
    };
    let upper = layer.as_ref().map(|_| upper.as_path());
    commit::add_layer(session, state, created_by, layer.as_ref(), upper)?;
    if let (Some((path, taken)), Some(_), Some(chain)) = (&reused, &layer, &state.chain) {
        if taken.taken() > 0 {
            session.progress().event(crate::progress::Event::Status {
                id,
                message: format!(
                    "{} file(s) copied ({}), {} unchanged taken from the previous build of this step ({})",
                    taken.copied.0,
                    crate::progress::human_size(taken.copied.1),
                    taken.taken(),
                    crate::progress::human_size(taken.linked_bytes)
                ),
            });
        }
        // The next run's previous run; without it, that run copies everything.
        if let Err(e) = crate::engine::copy::reuse::save(path, chain.hex(), &taken.files) {
            session.progress().event(crate::progress::Event::Status {
                id,
                message: format!("warning: recording {}: {e}", path.display()),
            });
        }
    }
    let record = Record {
        layer,
        created: state.clock.clone(),
    };
    session.cache().put(&key, &record)?;
    hold_record(session, &key)?;
    session.travel().used(&key, &record);
    session.inflight().made(&key);
    state.key = key;
    state.steps.push(key);
    Ok(false)
}

/// Hold the record of `key` for the rest of the build (a collection under a size cap then
/// leaves it and its layer); false when it was removed before it could be held.
fn hold_record(session: &Session<'_>, key: &CacheKey) -> Result<bool, BuildError> {
    let path = session.cache().path(key);
    session
        .leases()
        .hold(LeaseKind::Record, &key.hex(), &path)
        .map_err(|source| BuildError::Files {
            what: format!("holding {}", path.display()),
            source,
        })
}

/// Take a cached result if its layer is in the store, or can be fetched from where an
/// imported cache has it; false when it cannot.
fn reuse(
    session: &Session<'_>,
    record: &Record,
    state: &mut State,
    created_by: &str,
) -> Result<bool, BuildError> {
    if let Some(layer) = &record.layer
        && !session.store().blobs().contains(&layer.digest)
        && !session.lazy().knows(&layer.digest)
        && !deferred_here(session, layer)
    {
        return Ok(false);
    }
    state.clock = record.created.clone().or_else(|| session.created());
    commit::add_layer(session, state, created_by, record.layer.as_ref(), None)?;
    Ok(true)
}

/// Whether `layer` is a deferred layer that is still here: a snapshot holds it (its files
/// are the layer; its tar is made from them if a step needs its bytes), or a blob of it.
fn deferred_here(session: &Session<'_>, layer: &LayerRecord) -> bool {
    DeferredLayers::new(&session.settings().state_root)
        .available(session.store(), &layer.descriptor())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::media_type::Compression;

    /// The header every layer step's key starts with, pinned: platform, compression, level
    /// and SOURCE_DATE_EPOCH are in it, compression threads are not.
    #[test]
    fn key_header_is_pinned() {
        let key = |layer: &LayerOptions| {
            let mut k = KeyEncoder::new("step", None);
            key_header(&mut k, &Platform::parse("linux/amd64").unwrap(), layer);
            k.finish()
        };
        let gzip = LayerOptions {
            compression: Compression::Gzip,
            level: None,
            threads: 2,
            source_date_epoch: Some(1_700_000_000),
        };
        assert_eq!(
            key(&gzip).hex(),
            "630ce8676d0412621634fd3359fc3a7f19c29c83dbd0169eb00d13037a5a8580"
        );
        assert_eq!(
            key(&LayerOptions {
                threads: 1,
                ..gzip.clone()
            }),
            key(&gzip)
        );
        assert_ne!(
            key(&LayerOptions {
                compression: Compression::Zstd,
                ..gzip.clone()
            }),
            key(&gzip)
        );
    }
}
