//! The `gemauth` binary: parse the command line, run it, exit with its code.

#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = gemauth::binary::parse(std::env::args_os());
    ExitCode::from(gemauth::binary::run(cli))
}
