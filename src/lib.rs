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
//! subcommand, and `report`: the CLI's messages, hints and exit codes; `login` drives `flow`,
//! the authorization code flow) → `token` and `idtoken` (the library's requests and results) →
//! `pipeline` (discovery, cache, lock, single-flight refresh, rotation, for access and ID tokens)
//! → `credentials` (the credential model; one file per type, each parsing and minting its
//! own) → `oauth` (HTTP as a value, the grants, the one answer-to-error mapping) → `context`
//! (HTTP, environment and clock as values) → `store` (paths, bounded reads, private files, the
//! token cache and its locks) → at the bottom `env` and `clock` (the environment and the time
//! as values), `rules` (pure rules: endpoints, scopes, project IDs), `secret`, `error` (the
//! library's error), `exit` (the documented exit codes), `logging` (`-v`).

#![forbid(unsafe_code)]

mod cli;
mod clock;
mod commands;
mod context;
mod credentials;
mod env;
mod error;
mod exit;
mod flow;
mod idtoken;
mod logging;
mod mds;
mod oauth;
mod pipeline;
mod rules;
mod secret;
mod store;
mod token;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod testing;

pub use error::{Error, Rejecter, Result};
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
    pub use crate::credentials::{
        parse_aws_metadata_answer, parse_client_config, parse_credential_file, parse_login_config,
    };
    pub use crate::flow::{Callback, parse_callback, parse_paste, parse_request};
}
