//! The live view: indicatif bars on a terminal, plain lines elsewhere, nothing when quiet.

use super::line::{LineState, RunLine, format_line};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How often a plain (non-terminal) progress line may appear per run.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// stdout and stderr are terminals: live lines under the scripts' output.
    Live,
    /// A plain line now and then, no control characters.
    Plain,
    Quiet,
}

impl Mode {
    pub fn detect(quiet: bool) -> Mode {
        if quiet {
            Mode::Quiet
        } else if std::io::stdout().is_terminal() && std::io::stderr().is_terminal() {
            Mode::Live
        } else {
            Mode::Plain
        }
    }
}

/// The one view of this process (its bars must be shared by every writer to the terminal).
static LIVE: OnceLock<MultiProgress> = OnceLock::new();

pub struct View {
    mode: Mode,
    bars: Mutex<HashMap<String, ProgressBar>>,
    last_plain: Mutex<HashMap<String, Instant>>,
}

impl View {
    pub fn new(mode: Mode) -> Arc<View> {
        if mode == Mode::Live {
            // No colours when NO_COLOR is set (the `console` crate reads it too).
            if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
                console::set_colors_enabled(false);
                console::set_colors_enabled_stderr(false);
            }
            LIVE.get_or_init(|| {
                MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4))
            });
        }
        Arc::new(View {
            mode,
            bars: Mutex::new(HashMap::new()),
            last_plain: Mutex::new(HashMap::new()),
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Shows the run's current line (created on first use).
    pub fn update(&self, line: &RunLine) {
        match self.mode {
            Mode::Quiet => {}
            Mode::Plain => {
                let mut last = self.last_plain.lock().expect("view lock");
                let due = last
                    .get(&line.run_id)
                    .is_none_or(|t| t.elapsed() >= PLAIN_EVERY);
                let changed_state = !matches!(line.state, LineState::Running);
                if due || changed_state {
                    last.insert(line.run_id.clone(), Instant::now());
                    // Never a panic over a closed stderr: the run matters more than its line.
                    let _ = writeln!(std::io::stderr(), "backprop: {}", format_line(line));
                }
            }
            Mode::Live => {
                let Some(multi) = LIVE.get() else { return };
                let mut bars = self.bars.lock().expect("view lock");
                let bar = bars
                    .entry(line.run_id.clone())
                    .or_insert_with(|| multi.add(ProgressBar::new_spinner()));
                match (line.total, &line.state) {
                    (Some(total), LineState::Running | LineState::Paused(_)) => {
                        bar.set_style(bar_style());
                        bar.set_length(total);
                        bar.set_position(line.step.unwrap_or(0).min(total));
                    }
                    _ => bar.set_style(text_style()),
                }
                bar.set_message(format_line(line));
            }
        }
    }

    /// The run is over: its live line goes away (its final line is printed by the caller).
    pub fn finish(&self, run_id: &str) {
        if let Some(bar) = self.bars.lock().expect("view lock").remove(run_id) {
            bar.finish_and_clear();
            if let Some(multi) = LIVE.get() {
                multi.remove(&bar);
            }
        }
        self.last_plain.lock().expect("view lock").remove(run_id);
    }
}

fn text_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg}").expect("a valid template")
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{bar:20.cyan/blue} {msg}")
        .expect("a valid template")
        .progress_chars("=> ")
}

/// Writes `bytes` to `fd` (1 or 2); with live lines on screen, they are lifted out of the way
/// first and drawn again below the new output.
pub fn write_around_live(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    match LIVE.get() {
        Some(multi) => multi.suspend(|| out.write_all(bytes)),
        None => out.write_all(bytes),
    }
}

/// A line from backprop itself (info, warning), above the live lines when there are any.
pub fn print_message(line: &str) {
    match LIVE.get() {
        Some(multi) => {
            let _ = multi.println(line);
        }
        None => {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }
}
