//! `-o` outputs: what a `--output` flag asks for ([`spec`]) and writing a built image
//! there ([`write`]).

pub mod spec;
pub mod write;

pub use spec::{Kind, Output, OutputSpecError};
pub use write::OutputError;
