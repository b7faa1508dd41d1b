//! The `gemauth` binary: parse the command line, run it, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = gemauth::cli::Cli::parse();
    match gemauth::commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => ExitCode::from(gemauth::error::report(&err)),
    }
}
