//! backprop's own messages to the user. They go to stderr so that stdout carries only the
//! script's output (or `--json` data).

use crate::view::live_print as print;

pub fn warn(message: &str) {
    print(&format!("backprop: warning: {message}"));
}

pub fn error(message: &str) {
    print(&format!("backprop: error: {message}"));
}

pub fn info(message: &str) {
    print(&format!("backprop: {message}"));
}
