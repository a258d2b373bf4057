//! What an instruction is to the engine: a config edit, or a step that writes a layer
//! (and which kind).

use crate::dockerfile::instruction::{self, Kind};

/// What an instruction is to the engine.
pub(crate) enum StepKind<'a> {
    /// Edits the image config only.
    Meta,
    /// Changes the filesystem: a vertex with a cache key.
    Layer(LayerKind<'a>),
}

/// The kinds of step that write a layer.
pub(crate) enum LayerKind<'a> {
    Run(&'a instruction::Run),
    Copy(&'a instruction::Copy),
    Add(&'a instruction::Add),
    Workdir,
}

impl StepKind<'_> {
    pub(crate) fn of(kind: &Kind) -> StepKind<'_> {
        StepKind::Layer(match kind {
            Kind::Run(r) => LayerKind::Run(r),
            Kind::Copy(c) => LayerKind::Copy(c),
            Kind::Add(a) => LayerKind::Add(a),
            Kind::Workdir(_) => LayerKind::Workdir,
            _ => return StepKind::Meta,
        })
    }

    /// Whether the step changes the filesystem.
    pub(crate) fn writes_layer(&self) -> bool {
        matches!(self, StepKind::Layer(_))
    }
}
