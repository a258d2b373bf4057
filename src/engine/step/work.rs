//! The interface every layer step kind implements: its key and its work, side by side.

use std::path::Path;

use crate::engine::cache::KeyEncoder;
use crate::engine::error::BuildError;
use crate::engine::session::Session;
use crate::plan::Step;

/// A layer step made concrete: everything that decides its result, known before anything
/// is mounted.
pub(crate) trait LayerStep {
    /// Write everything that decides the step's result into its key, in a fixed order
    /// (docs/build.md, "Cache keys"); leave out what does not change the result.
    fn key(&self, key: &mut KeyEncoder);

    /// Do the work in `root`, the step's filesystem.
    fn execute(self: Box<Self>, cx: &Cx<'_, '_>, root: &Path) -> Result<(), BuildError>;

    /// Whether the step commits a layer when it changed nothing. BuildKit makes one for
    /// every RUN, COPY, ADD and WORKDIR, empty or not (`docker history` shows them as
    /// `0B`); only `WORKDIR /` makes none.
    fn keeps_empty_layer(&self) -> bool {
        true
    }
}

/// What a step's work may use besides its own inputs.
pub(crate) struct Cx<'s, 'a> {
    pub(crate) session: &'s Session<'a>,
    /// The step's progress vertex.
    pub(crate) id: usize,
    pub(crate) step: &'s Step,
    /// A directory of the step's own, beside its filesystem (secrets, sockets, files).
    pub(crate) work_dir: &'s Path,
    /// What an incremental COPY took from its previous run (`engine::copy::reuse`): linked
    /// into the upper directory once it is unmounted, and recorded once the layer is
    /// committed (at the path given).
    pub(crate) reused:
        std::sync::Mutex<Option<(std::path::PathBuf, crate::engine::copy::reuse::Reused)>>,
}

/// The key a step writes, alone (for the step kinds' key tests).
#[cfg(test)]
pub(super) fn key_of(step: &impl LayerStep) -> crate::engine::cache::CacheKey {
    let mut key = KeyEncoder::new("step", None);
    step.key(&mut key);
    key.finish()
}

/// One field's change to a step, named (for the tests' tables).
#[cfg(test)]
pub(super) type Change<'a, S> = (&'a str, fn(&mut S));

/// Each of `changes`, made to a fresh `base()`, must give a key no other step of the table
/// had (the base's included): every field reaches the key.
#[cfg(test)]
pub(super) fn assert_each_change_moves_the_key<S: LayerStep>(
    base: fn() -> S,
    changes: &[Change<'_, S>],
) {
    let mut keys = vec![key_of(&base())];
    for (field, change) in changes {
        let mut s = base();
        change(&mut s);
        let key = key_of(&s);
        assert!(!keys.contains(&key), "{field}: the key did not change");
        keys.push(key);
    }
}
