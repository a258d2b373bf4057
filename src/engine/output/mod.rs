//! `-o` outputs: what a `--output` flag asks for (`spec`) and writing a built image
//! there ([`write`]).

pub(crate) mod spec;
pub(crate) mod write;

pub use spec::{Kind, Output, OutputSpecError};
