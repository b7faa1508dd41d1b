//! The authorization-code flow of an installed app: the authorization request (PKCE, `state`),
//! the browser, the loopback listener that receives the redirect, and the pasted answer. What the
//! user reads about it is written by `commands/login.rs`, from the [`Notice`]s sent here.

mod authorize;
mod browser;
mod error;
mod listener;
mod paste;

use std::time::Duration;

use oauth2::AuthorizationCode;

#[cfg(any(test, feature = "fuzzing"))]
pub use authorize::{Callback, parse_callback};
pub use authorize::{authorization_request, authorize, redirect_uri};
pub(crate) use error::{Error, Result};
pub use listener::bind;
#[cfg(any(test, feature = "fuzzing"))]
pub use listener::parse_request;
#[cfg(any(test, feature = "fuzzing"))]
pub use paste::parse_paste;

/// The final result of a login attempt.
pub enum Outcome {
    Code(AuthorizationCode),
    Denied {
        error: String,
        description: Option<String>,
    },
}

/// How many bad pastes are tolerated before the login gives up.
pub const MAX_PASTE_ATTEMPTS: u32 = 3;

/// How the login is completed: options of [`authorize`].
pub struct Options {
    pub timeout: Duration,
    /// Start in paste mode and open no browser.
    pub no_browser: bool,
}

/// What the user should be told while the login waits; `commands/login.rs` words it.
#[derive(Debug)]
pub enum Notice<'a> {
    /// The authorization URL, before anything else; `browser` is false with `--no-browser`.
    Url { url: &'a str, browser: bool },
    /// The browser was started; the login waits for its redirect.
    Waiting { timeout: Duration },
    /// No browser could be started (or it failed): paste mode begins.
    BrowserFailed { reason: &'a str, started: bool },
    /// Paste mode began: how to hand the answer back.
    PasteInstructions { port: u16 },
    /// Ask for the pasted address.
    Prompt,
    /// A line was read from a pipe (a terminal echoes its own newline).
    PastedFromPipe,
    /// A paste did not work; another attempt follows.
    BadPaste {
        reason: &'a str,
        attempt: u32,
        max: u32,
    },
    /// Standard input closed; the login still waits for the browser.
    StdinClosed { port: u16 },
    /// The redirect arrived while a paste prompt was showing.
    RedirectWhilePrompting,
}
