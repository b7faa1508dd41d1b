//! The process exit codes gemauth documents (docs/reference.md), shared by the command-line
//! parser and the error report.

/// Success.
pub(crate) const EXIT_OK: u8 = 0;
/// Any error that is not one of the more specific cases below.
pub(crate) const EXIT_ERROR: u8 = 1;
/// The command line was wrong (clap uses this code for its own usage errors too).
pub(crate) const EXIT_USAGE: u8 = 2;
/// Credentials are missing, unreadable or rejected by the server (signing in again fixes it), or
/// a file names an endpoint that would send its secrets to a host that is not Google's.
pub(crate) const EXIT_CREDENTIALS: u8 = 3;
