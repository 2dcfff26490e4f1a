//! `backprop completions <shell>`: a completion script for bash, zsh, fish or powershell.

use super::{Cli, CliError, Global};
use clap::{Args, CommandFactory};
use clap_complete::Shell;

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  backprop completions bash > ~/.local/share/bash-completion/completions/backprop\n  backprop completions zsh > \"${fpath[1]}/_backprop\"\n  backprop completions fish > ~/.config/fish/completions/backprop.fish"
)]
pub struct CompletionsArgs {
    /// bash, zsh, fish or powershell
    pub shell: Shell,
}

pub fn execute(_global: &Global, args: CompletionsArgs) -> Result<i32, CliError> {
    let mut command = Cli::command();
    // Into memory first: clap_complete panics when its writer fails (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "backprop", &mut script);
    super::out::write_bytes(&script);
    Ok(0)
}
