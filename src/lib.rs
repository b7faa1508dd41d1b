//! gemauth: OAuth 2.0 access tokens for Google APIs from Application Default Credentials, for
//! the `gemauth` command and for Rust programs.
//!
//! The library's API is the token functions, their request and result types, the error type and
//! [`Secret`]:
//!
//! ```no_run
//! // The same token `gemauth print-access-token` prints: cached, or refreshed once.
//! let token = gemauth::get(None, None)?;
//! println!("Authorization: Bearer {}", token.access_token.expose());
//! # Ok::<(), gemauth::Error>(())
//! ```
//!
//! Modules, top to bottom as the data flows: `cli` (clap structures) → `commands` (one per
//! subcommand; `login` drives `flow`, the authorization code flow) → `token` and `idtoken`
//! (discovery, cache, single-flight refresh) → `adc` (minting for every credential type) →
//! `oauth` (HTTP to the token server) → `store` (paths, bounded reads, private files, the token
//! cache and its locks), `credentials` (file formats, the credential model), `secret`, `error`,
//! `logging` (`-v`).

#![forbid(unsafe_code)]

mod adc;
mod cli;
mod commands;
mod credentials;
mod error;
mod flow;
mod idtoken;
mod logging;
mod mds;
mod oauth;
mod secret;
mod store;
mod token;

#[cfg(test)]
mod properties;

pub use error::{Error, Result};
pub use secret::Secret;
pub use token::{Request, Token, get, get_async, get_with};

/// The `gemauth` command line, for the binary (`src/main.rs`) only: not part of the API.
#[doc(hidden)]
pub mod binary {
    pub use crate::cli::{Cli, parse};
    pub use crate::commands::run;
}

/// Parsers of untrusted input, for the fuzz targets and property tests only (feature
/// `fuzzing`): not part of the API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::credentials::{parse_client_config, parse_credential_file};
    pub use crate::flow::{Callback, parse_callback, parse_paste, parse_request};
}
