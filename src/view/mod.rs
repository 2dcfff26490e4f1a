//! What the user watches while runs go: one live line per run under the scripts' own output
//! on a terminal (indicatif), a plain line every few seconds otherwise, nothing with `-q`.

mod line;
mod live;

pub use line::rate;
pub use line::{LineState, RunLine, format_line};
pub use live::{Mode, View, print_message as live_print, write_around_live};
