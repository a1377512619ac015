//! Progress on stderr: an indicatif bar on a terminal; plain log lines otherwise (a log file, a
//! CI job, `2> log`), one per tenth of the work and at least every 30 seconds once the command
//! has run for 5 seconds, so that a long command is never silent and a short one stays quiet.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Seconds between two log lines when the work advances slowly.
const LOG_EVERY: Duration = Duration::from_secs(30);
/// No log line before the command has run this long.
const QUIET_START: Duration = Duration::from_secs(5);

pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    len: u64,
    position: u64,
    message: String,
    start: Instant,
    last_line: Instant,
    last_tenth: u64,
}

impl Progress {
    /// `len` units of work; `label` starts every log line.
    pub fn new(len: u64, label: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(len);
            bar.set_style(
                ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} ETA {eta}  {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        let now = Instant::now();
        Progress {
            bar,
            label: label.to_string(),
            len: len.max(1),
            position: 0,
            message: String::new(),
            start: now,
            last_line: now,
            last_tenth: 0,
        }
    }

    pub fn set_message(&mut self, message: String) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.clone());
        }
        self.message = message;
    }

    pub fn set_position(&mut self, position: u64) {
        self.position = position.min(self.len);
        if let Some(bar) = &self.bar {
            bar.set_position(self.position);
            return;
        }
        let tenth = self.position * 10 / self.len;
        if self.start.elapsed() < QUIET_START {
            return;
        }
        if tenth > self.last_tenth || self.last_line.elapsed() >= LOG_EVERY {
            self.last_tenth = tenth;
            self.log();
        }
    }

    /// One log line now (also on a terminal, above the bar): for a new phase of the work.
    pub fn log(&mut self) {
        self.last_line = Instant::now();
        let line = format!(
            "{}: {}% ({}/{}) after {:.0} s{}{}",
            self.label,
            self.position * 100 / self.len,
            self.position,
            self.len,
            self.start.elapsed().as_secs_f64(),
            if self.message.is_empty() { "" } else { ": " },
            self.message
        );
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
