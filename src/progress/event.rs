//! What the engine reports ([`Event`]) and to what ([`Reporter`]); renderers are the
//! sibling modules'.

use std::time::Duration;

use serde::Serialize;

/// Which output a RUN line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Something that happened in a build. `id` numbers the vertices as `#N` does in BuildKit.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Event {
    /// A vertex started (a step, or work such as resolving a base image or exporting).
    Start {
        id: usize,
        name: String,
    },
    /// The step's result came from the build cache.
    Cached {
        id: usize,
    },
    /// A line of a step's output (terminator included when it had one).
    Log {
        id: usize,
        stream: Stream,
        #[serde(serialize_with = "lossy")]
        line: Vec<u8>,
    },
    /// A status line that is not command output (`pulling …`, `writing layer …`).
    Status {
        id: usize,
        message: String,
    },
    /// Bytes of something being transferred (a layer being pulled), `current` of `total`.
    Bytes {
        id: usize,
        what: String,
        current: u64,
        total: u64,
    },
    Done {
        id: usize,
        #[serde(serialize_with = "seconds")]
        elapsed: Duration,
    },
    Error {
        id: usize,
        message: String,
    },
}

fn lossy<S: serde::Serializer>(line: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(line))
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Where events go. Called from any thread.
pub trait Reporter: Send + Sync {
    fn event(&self, event: Event);
}
