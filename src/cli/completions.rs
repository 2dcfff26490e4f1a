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
    clap_complete::generate(args.shell, &mut command, "backprop", &mut std::io::stdout());
    Ok(0)
}
