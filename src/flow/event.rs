//! What happens while a login waits: the [`Event`]s the listener, paste mode and the browser
//! send to the wait, and the [`Notice`]s the wait sends to `commands/login.rs` to word for the user.

use std::time::Duration;

use super::callback::Outcome;

/// Something that happened while the login waits.
pub(super) enum Event {
    Redirect(Outcome),
    BrowserFailed(String),
    Line { text: String, from_pipe: bool },
    StdinClosed,
}

/// What the user should be told while the login waits; `commands/login.rs` words it.
#[derive(Debug)]
pub(crate) enum Notice<'a> {
    /// The authorization URL, before anything else; `browser` is false with `--no-browser`.
    Url { url: &'a str, browser: bool },
    /// The browser was started; the login waits for its redirect.
    Waiting { timeout: Duration },
    /// No browser could be started (or it failed): paste mode begins.
    BrowserFailed { reason: &'a str, started: bool },
    /// Paste mode began: how to hand the answer back (the listener's port, and the address the
    /// browser is sent to, `http://127.0.0.1:PORT/` or a workforce login's
    /// `http://localhost:PORT/`).
    PasteInstructions { port: u16, redirect_uri: &'a str },
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
