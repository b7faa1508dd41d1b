//! gemauth: OAuth 2.0 credentials for Google APIs from the command line. The binary is a thin
//! wrapper around [`commands::run`]; the modules below read top to bottom as the data flows.

pub mod adc;
pub mod cli;
pub mod commands;
pub mod credentials;
pub mod error;
pub mod flow;
pub mod logging;
pub mod names;
pub mod oauth;
pub mod store;
pub mod token;
