//! The command line: parse, hand over to one file per subcommand, map errors to exit codes.

mod common;
mod completions;
mod config;
mod doctor;
mod export;
mod flags;
mod list;
mod logs;
mod out;
mod plot;
mod queue;
mod resume;
mod resume_batch;
mod run;
mod search_summary;
mod serve;
mod slurm_wait;
mod status;
mod stop;
mod table;

use crate::outcome::EXIT_USAGE;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

pub use common::CliError;
pub(crate) use status::status_json;

#[derive(Parser, Debug)]
#[command(
    name = "backprop",
    version,
    about = "Timeboxed, governed ML training runs with a durable record",
    after_help = "Example:\n  backprop run examples/train.py -m 0.5\n  backprop list\n  backprop resume <run-id>"
)]
pub struct Cli {
    /// Config file to use instead of ./backprop.config.json (must exist)
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print data as one JSON document on stdout (list, status, queue, config)
    #[arg(long, global = true)]
    pub json: bool,
    /// More detail: -v echoes the script's protocol lines, -vv adds debug logs
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// No progress lines from backprop
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a training script as a timeboxed, governed run
    Run(Box<run::RunArgs>),
    /// Run a batch: a sweep file (grid, random, explicit runs) or the config's experiments
    Queue(Box<queue::QueueArgs>),
    /// Run a run's stored spec again from its latest checkpoint (a new attempt)
    Resume(resume::ResumeArgs),
    /// Runs, newest first
    List(list::ListArgs),
    /// Machine resources and active runs, or one run whole
    Status(status::StatusArgs),
    /// Stop a live run gracefully (or remove a waiting one)
    Stop(stop::StopArgs),
    /// A run's captured output
    Logs(logs::LogsArgs),
    /// A live dashboard of runs, batches and GPUs in the browser (local, token-protected)
    Serve(serve::ServeArgs),
    /// A metric over steps, in the terminal or as an image; several runs overlay
    Plot(plot::PlotArgs),
    /// The effective configuration and the source of every value
    Config(Box<config::ConfigArgs>),
    /// A shell completion script
    Completions(completions::CompletionsArgs),
    /// Write the store's records for other tools (json, jsonl, csv)
    Export(export::ExportArgs),
    /// Check the store, show what damaged files still hold, re-import one
    Doctor(doctor::DoctorArgs),
    #[command(name = "__export", hide = true)]
    ExportJson,
    #[command(name = "__guard", hide = true)]
    Guard {
        pgid: u32,
        run_dir: String,
        attempt: u32,
    },
}

/// Global options every command sees.
pub struct Global {
    pub config: Option<PathBuf>,
    pub json: bool,
    pub verbose: u8,
    pub quiet: bool,
}

/// Parses argv, runs the command, returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    init_tracing(cli.verbose);
    let is_guard = matches!(cli.command, Command::Guard { .. });
    if !is_guard && let Err(e) = crate::config::check_env_names(&common::process_env()) {
        crate::ui::error(&e.to_string());
        return EXIT_USAGE;
    }
    let global = Global {
        config: cli.config,
        json: cli.json,
        verbose: cli.verbose,
        quiet: cli.quiet,
    };
    let result = match cli.command {
        Command::Run(args) => run::execute(&global, *args),
        Command::Resume(args) => resume::execute(&global, args),
        Command::Queue(args) => queue::execute(&global, *args),
        Command::List(args) => list::execute(&global, args),
        Command::Status(args) => status::execute(&global, args),
        Command::Stop(args) => stop::execute(&global, args),
        Command::Logs(args) => logs::execute(&global, args),
        Command::Serve(args) => serve::execute(&global, args),
        Command::Config(args) => config::execute(&global, *args),
        Command::Plot(args) => plot::execute(&global, args),
        Command::Completions(args) => completions::execute(&global, args),
        Command::Export(args) => export::execute(&global, args),
        Command::Doctor(args) => doctor::execute(&global, args),
        Command::ExportJson => Ok(crate::store::export::run_detached(&common::home())),
        Command::Guard {
            pgid,
            run_dir,
            attempt,
        } => Ok(crate::guard::run_guard(pgid, &run_dir, attempt)),
    };
    crate::store::export::set_enabled(common::export_enabled(&global));
    crate::store::export::settle_on_exit(&common::home());
    match result {
        Ok(code) => code,
        Err(e) => {
            crate::ui::error(&e.message);
            e.code
        }
    }
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        // A malformed request to `serve` is answered 400; the HTTP layer's own report of
        // it would only be noise on the terminal.
        0 | 1 => "warn,actix_http=off",
        2 => "debug",
        _ => "trace",
    };
    let filter =
        EnvFilter::try_from_env("BACKPROP_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .try_init();
}
