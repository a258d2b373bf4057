//! What an instruction is to the engine: a config edit, or a step that writes a layer
//! (and which kind).

use crate::dockerfile::instruction::{self, Kind};

/// What an instruction is to the engine.
pub(crate) enum StepKind<'a> {
    /// Edits the image config only.
    Meta,
    Run(&'a instruction::Run),
    Copy(&'a instruction::Copy),
    Add(&'a instruction::Add),
    Workdir,
}

impl StepKind<'_> {
    pub(crate) fn of(kind: &Kind) -> StepKind<'_> {
        match kind {
            Kind::Run(r) => StepKind::Run(r),
            Kind::Copy(c) => StepKind::Copy(c),
            Kind::Add(a) => StepKind::Add(a),
            Kind::Workdir(_) => StepKind::Workdir,
            _ => StepKind::Meta,
        }
    }

    /// Whether the step changes the filesystem (and so is a vertex with a cache key).
    pub(crate) fn writes_layer(&self) -> bool {
        !matches!(self, StepKind::Meta)
    }
}
