//! Steps: what each instruction kind does to a stage. An instruction that only edits the
//! image config (ENV, LABEL, CMD, …) is applied by the stage (`StepKind::Meta`). One that
//! writes a layer (RUN, COPY/ADD, WORKDIR: a `LayerKind`) is prepared by its own module
//! into a `LayerStep` (`work.rs`): its cache key and its work, side by side.
//! `run_layer_step` (`runner.rs`) then looks the key up, or mounts the step's filesystem,
//! does the work and commits what changed. The stage knows steps only through `StepKind`
//! and `run_layer_step`.

mod copy;
mod kind;
mod mounts;
mod run;
mod runner;
mod user;
mod work;
mod workdir;

pub(crate) use kind::StepKind;
pub(crate) use runner::run_layer_step;
