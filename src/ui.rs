//! backprop's own messages to the user. They go to stderr so that stdout carries only the
//! script's output (or `--json` data).

pub fn warn(message: &str) {
    eprintln!("backprop: warning: {message}");
}

pub fn error(message: &str) {
    eprintln!("backprop: error: {message}");
}

pub fn info(message: &str) {
    eprintln!("backprop: {message}");
}
