//! `--progress=plain`: BuildKit's line format, for CI logs.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use super::event::{Event, Reporter};

pub struct Plain<W: Write + Send> {
    inner: Mutex<(W, BTreeMap<usize, Instant>)>,
}

impl<W: Write + Send> Plain<W> {
    pub(crate) fn new(out: W) -> Plain<W> {
        Plain {
            inner: Mutex::new((out, BTreeMap::new())),
        }
    }

    #[cfg(test)]
    pub(crate) fn into_inner(self) -> W {
        self.inner.into_inner().expect("progress output").0
    }
}

impl<W: Write + Send> Reporter for Plain<W> {
    fn event(&self, event: Event) {
        let mut guard = self.inner.lock().expect("progress output");
        let (out, started) = &mut *guard;
        let _ = match event {
            Event::Start { id, name } => {
                started.insert(id, Instant::now());
                writeln!(out, "\n#{id} {name}")
            }
            Event::Cached { id } => writeln!(out, "#{id} CACHED"),
            Event::Log { id, line, .. } => {
                let t = started.get(&id).map_or(0.0, |s| s.elapsed().as_secs_f64());
                let text = String::from_utf8_lossy(&line);
                writeln!(out, "#{id} {t:.3} {}", text.trim_end_matches(['\n', '\r']))
            }
            Event::Status { id, message } => writeln!(out, "#{id} {message}"),
            // CI logs get the transfer's start and end as status lines, not every chunk.
            Event::Bytes { .. } => Ok(()),
            Event::Done { id, elapsed } => {
                writeln!(out, "#{id} DONE {:.1}s", elapsed.as_secs_f64())
            }
            Event::Error { id, message } => writeln!(out, "#{id} ERROR: {message}"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::super::Stream;
    use super::*;
    use std::time::Duration;

    #[test]
    fn lines_look_like_buildkit_plain_output() {
        let p = Plain::new(Vec::new());
        p.event(Event::Start {
            id: 4,
            name: "[3/7] RUN pip3 install".into(),
        });
        p.event(Event::Log {
            id: 4,
            stream: Stream::Stdout,
            line: b"Collecting Flask\n".to_vec(),
        });
        p.event(Event::Done {
            id: 4,
            elapsed: Duration::from_millis(1234),
        });
        p.event(Event::Start {
            id: 5,
            name: "[4/7] COPY . .".into(),
        });
        p.event(Event::Cached { id: 5 });
        let text = String::from_utf8(p.into_inner()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "#4 [3/7] RUN pip3 install");
        assert!(
            lines[2].starts_with("#4 0.0") && lines[2].ends_with(" Collecting Flask"),
            "{}",
            lines[2]
        );
        assert_eq!(lines[3], "#4 DONE 1.2s");
        assert_eq!(lines[5], "#5 [4/7] COPY . .");
        assert_eq!(lines[6], "#5 CACHED");
    }
}
