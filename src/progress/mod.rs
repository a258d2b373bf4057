//! One stream of build events and the renderers that show it: `plain` lines as BuildKit
//! prints them in CI (`#4 [3/7] RUN pip3 install …`, `#4 CACHED`, `#4 DONE 1.2s`), `tty`
//! spinners per step on a terminal, `rawjson` as one JSON object per line, `quiet` nothing.
//! The engine only sends [`Event`]s; it never prints.

mod event;
mod plain;
mod size;
mod tty;

use std::io::Write;
use std::sync::Mutex;

pub use event::{Event, Reporter, Stream};
pub use plain::Plain;
pub use size::human_size;
pub(crate) use tty::Tty;

/// `--progress` as docker buildx spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Auto,
    Tty,
    Plain,
    RawJson,
    Quiet,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "auto" => Mode::Auto,
            "tty" => Mode::Tty,
            "plain" => Mode::Plain,
            "rawjson" => Mode::RawJson,
            "quiet" => Mode::Quiet,
            _ => return None,
        })
    }

    /// The renderer for this mode, drawing on standard error; `auto` is `tty` on a
    /// terminal and `plain` elsewhere.
    pub fn reporter(self) -> Box<dyn Reporter> {
        use std::io::IsTerminal;
        match self {
            Mode::Auto if std::io::stderr().is_terminal() => Box::new(Tty::new()),
            Mode::Tty => Box::new(Tty::new()),
            Mode::Auto | Mode::Plain => Box::new(Plain::new(std::io::stderr())),
            Mode::RawJson => Box::new(Json(Mutex::new(std::io::stderr()))),
            Mode::Quiet => Box::new(Quiet),
        }
    }
}

/// `--progress=quiet`: nothing.
pub(crate) struct Quiet;

impl Reporter for Quiet {
    fn event(&self, _: Event) {}
}

/// `--progress=rawjson`: each event as one JSON object on its own line.
pub(crate) struct Json<W: Write + Send>(pub Mutex<W>);

impl<W: Write + Send> Reporter for Json<W> {
    fn event(&self, event: Event) {
        let mut line = serde_json::to_vec(&event).expect("events serialise");
        line.push(b'\n');
        let mut out = self.0.lock().expect("progress output");
        let _ = out.write_all(&line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn modes_parse_as_buildx_spells_them() {
        for (s, m) in [
            ("auto", Mode::Auto),
            ("tty", Mode::Tty),
            ("plain", Mode::Plain),
            ("rawjson", Mode::RawJson),
            ("quiet", Mode::Quiet),
        ] {
            assert_eq!(Mode::parse(s), Some(m));
        }
        assert_eq!(Mode::parse("json"), None);
    }

    #[test]
    fn rawjson_writes_one_object_per_line() {
        let j = Json(Mutex::new(Vec::new()));
        j.event(Event::Start {
            id: 1,
            name: "[1/2] RUN true".into(),
        });
        j.event(Event::Log {
            id: 1,
            stream: Stream::Stderr,
            line: b"caf\xc3\xa9\n".to_vec(),
        });
        j.event(Event::Done {
            id: 1,
            elapsed: Duration::from_millis(1500),
        });
        let text = String::from_utf8(j.0.into_inner().unwrap()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["event"], "start");
        assert_eq!(lines[0]["name"], "[1/2] RUN true");
        assert_eq!(lines[1]["line"], "café\n");
        assert_eq!(lines[1]["stream"], "stderr");
        assert_eq!(lines[2]["elapsed"], 1.5);
    }
}
