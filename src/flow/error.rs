//! The sign-in flow's own failures (the port, the time limit, the pasted answer), and the
//! library's errors it passes on.

/// A failure of the authorization code flow.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A library error (an endpoint, a file, an internal problem).
    #[error(transparent)]
    Lib(#[from] crate::Error),

    #[error("port {port} on 127.0.0.1 is not available: {reason}")]
    PortUnavailable { port: u16, reason: String },

    #[error("the sign-in was not completed within {}{}", seconds(*.secs), if *.stdin_closed { " (standard input was closed, so nothing could be pasted)" } else { "" })]
    LoginTimeout {
        secs: u64,
        stdin_closed: bool,
        /// The command that runs the same login again (its client file and flags), for the hint.
        rerun: Option<String>,
    },

    #[error(
        "standard input is closed and no browser was opened, so nothing can complete the sign-in"
    )]
    NothingCanAnswer,

    #[error("the pasted answer was not accepted {attempts} times; last problem: {reason}")]
    BadPaste { reason: String, attempts: u32 },
}

/// `1 second`, `N seconds`.
fn seconds(n: u64) -> String {
    if n == 1 {
        "1 second".into()
    } else {
        format!("{n} seconds")
    }
}

/// A result whose error is the flow's.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;
