//! One module per subcommand; `run` dispatches the parsed command line to it.

pub mod login;
pub mod print_access_token;
pub mod revoke;

use std::future::Future;

use crate::cli::{Cli, Command};
use crate::error::{Error, Result};

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    crate::logging::init(cli.verbose);
    match cli.command {
        Command::Login(args) => login::run(args),
        Command::PrintAccessToken(args) => print_access_token::run(args),
        Command::Revoke(args) => revoke::run(args),
    }
}

/// Runs network work on a single-threaded runtime, built only by the commands that need one.
pub(crate) fn block_on<F: Future>(future: F) -> Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
    Ok(runtime.block_on(future))
}
