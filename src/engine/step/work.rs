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
