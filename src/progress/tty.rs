//! `--progress=tty`: a spinner per running step with its name and time; the step's output
//! scrolls above the spinners; finished steps stay as one line (`✔ [3/7] RUN … 1.2s`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::event::{Event, Reporter};

pub(crate) struct Tty {
    multi: MultiProgress,
    bars: Mutex<BTreeMap<usize, (ProgressBar, String)>>,
}

impl Tty {
    pub(crate) fn new() -> Tty {
        Tty {
            multi: MultiProgress::new(),
            bars: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Default for Tty {
    fn default() -> Tty {
        Tty::new()
    }
}

impl Reporter for Tty {
    fn event(&self, event: Event) {
        let mut bars = self.bars.lock().expect("progress bars");
        match event {
            Event::Start { id, name } => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {wide_msg} {elapsed}")
                        .expect("progress template"),
                );
                bar.set_message(name.clone());
                bar.enable_steady_tick(Duration::from_millis(100));
                bars.insert(id, (bar, name));
            }
            Event::Cached { id } => {
                if let Some((bar, name)) = bars.remove(&id) {
                    bar.finish_and_clear();
                    let _ = self.multi.println(format!("  CACHED {name}"));
                }
            }
            Event::Log { line, .. } => {
                let text = String::from_utf8_lossy(&line);
                let _ = self
                    .multi
                    .println(format!("    {}", text.trim_end_matches(['\n', '\r'])));
            }
            Event::Status { id, message } => {
                if let Some((bar, name)) = bars.get(&id) {
                    bar.set_message(format!("{name}: {message}"));
                }
            }
            Event::Bytes {
                id,
                what,
                current,
                total,
            } => {
                if let Some((bar, name)) = bars.get(&id) {
                    bar.set_message(format!(
                        "{name}: {what} {:.1}/{:.1} MB",
                        current as f64 / 1e6,
                        total as f64 / 1e6
                    ));
                }
            }
            Event::Done { id, elapsed } => {
                if let Some((bar, name)) = bars.remove(&id) {
                    bar.finish_and_clear();
                    let _ = self
                        .multi
                        .println(format!("  ✔ {name} {:.1}s", elapsed.as_secs_f64()));
                }
            }
            Event::Error { id, message } => {
                if let Some((bar, name)) = bars.remove(&id) {
                    bar.finish_and_clear();
                    let _ = self.multi.println(format!("  ✘ {name}: {message}"));
                }
            }
        }
    }
}
