//! `backprop serve`: the live dashboard (see the `serve` module for what it serves).

use super::Global;
use super::common::{CliError, load_config, open_store};
use super::out;
use clap::Args;
use std::net::IpAddr;

#[derive(Args, Debug)]
#[command(
    after_help = "Prints the page's address with its token, e.g. http://127.0.0.1:8765/?token=...\nEvery API call needs that token; Ctrl-C stops the server, never the runs.\n\nExamples:\n  backprop serve\n  backprop serve --port 0 --open"
)]
pub struct ServeArgs {
    /// Port to listen on (0 picks a free one)
    #[arg(long, default_value_t = 8765)]
    pub port: u16,
    /// Address to listen on; anything but loopback makes the dashboard reachable from other machines
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Open the page in the default browser (xdg-open)
    #[arg(long)]
    pub open: bool,
}

pub fn execute(global: &Global, args: ServeArgs) -> Result<i32, CliError> {
    let config = load_config(global, Vec::new())?.config;
    let store = open_store()?;
    let options = crate::serve::Options {
        bind: args.bind,
        port: args.port,
        open: args.open,
        config,
        config_path: global.config.clone(),
    };
    let quiet = global.quiet;
    crate::serve::run(store, options, |url| {
        out::line(url);
        if !quiet {
            crate::ui::info(
                "open the address above (it carries the token); Ctrl-C stops the server, not the runs",
            );
        }
    })
    .map_err(|e| CliError::usage(e.to_string()))?;
    Ok(0)
}
