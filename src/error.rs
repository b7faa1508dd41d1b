//! Typed errors for every failure gemauth reports, and the single mapping from an error to its
//! one-line message, its `hint:` line and its process exit code.

use std::path::PathBuf;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: any error that is not one of the more specific cases below.
pub const EXIT_ERROR: u8 = 1;
/// Exit code: the command line was wrong (clap uses this code for its own usage errors too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: credentials are missing, unreadable or rejected by the server; `gemauth login` fixes it.
pub const EXIT_CREDENTIALS: u8 = 3;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("invalid arguments: {0}")]
    Usage(String),

    #[error("client secret file {path}: {problem}")]
    ClientSecretFile { path: PathBuf, problem: String },

    #[error("{name} {url:?} is not allowed: {reason}")]
    Endpoint {
        name: &'static str,
        url: String,
        reason: String,
    },

    #[error("port {port} on 127.0.0.1 is not available: {reason}")]
    PortUnavailable { port: u16, reason: String },

    #[error("the sign-in was not completed within {}{}", seconds(*.secs), if *.stdin_closed { " (standard input was closed, so nothing could be pasted)" } else { "" })]
    LoginTimeout {
        secs: u64,
        stdin_closed: bool,
        /// The command that runs the same login again (its client file and flags), for the hint.
        rerun: Option<String>,
    },

    #[error("the pasted answer was not accepted {attempts} times; last problem: {reason}")]
    BadPaste { reason: String, attempts: u32 },

    #[error("authorization was refused: {error}{}", describe(.description))]
    AuthorizationDenied {
        error: String,
        description: Option<String>,
    },

    #[error(
        "the token endpoint {endpoint} issued no refresh token, so the login could not be saved"
    )]
    NoRefreshToken { endpoint: String },

    #[error("no credentials found (looked in {})", .searched.display())]
    NoCredentials { searched: PathBuf },

    #[error("credential file {path}: {problem}")]
    CredentialFile { path: PathBuf, problem: String },

    #[error("credential file {path} has type {kind:?}, which this command does not support")]
    UnsupportedCredentialType { path: PathBuf, kind: String },

    #[error("{endpoint} rejected the credentials: {error}{}", describe(.description))]
    Rejected {
        endpoint: String,
        error: String,
        description: Option<String>,
    },

    #[error("{endpoint} refused the OAuth client or the code: {error}{}", describe(.description))]
    ExchangeRejected {
        endpoint: String,
        error: String,
        description: Option<String>,
    },

    #[error(
        "{endpoint} requires you to sign in again (Google Cloud session control, {subtype}){}",
        describe(.description)
    )]
    ReauthRequired {
        endpoint: String,
        subtype: String,
        description: Option<String>,
    },

    #[error("{endpoint} answered HTTP {status}: {detail}")]
    Server {
        endpoint: String,
        status: u16,
        detail: String,
    },

    #[error("could not reach {endpoint}: {detail}")]
    Network { endpoint: String, detail: String },

    #[error("revocation failed, the local credential was kept: {source}")]
    RevokeFailed {
        #[source]
        source: Box<Error>,
    },

    #[error("the credential was not granted these scopes: {missing}")]
    ScopesNotGranted { missing: String },

    #[error("executable-sourced credentials are disabled")]
    ExecutablesNotAllowed,

    #[error("no credentials found (looked in {}), and no metadata server answered at {endpoint} ({detail})", .searched.display())]
    NoMetadataServer {
        searched: PathBuf,
        endpoint: String,
        detail: String,
    },

    #[error("no quota project is set in {path}")]
    NoQuotaProject { path: PathBuf },

    #[error("cannot run {program:?}: {reason}")]
    CurlNotStarted { program: String, reason: String },

    #[error("the disk is full (or over quota): no room to save a new version of {path}")]
    NoSpace {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: {problem}")]
    ToolConfig { path: PathBuf, problem: String },

    #[error("unexpected input from {tool}: {problem}")]
    HelperInput { tool: &'static str, problem: String },

    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An ID token this credential cannot have, or one asked for without what it needs (the
    /// audience); a usage error, with its own hint.
    #[error("{problem}")]
    IdTokenRequest { problem: String, hint: String },

    #[error("{0}")]
    Internal(String),

    #[error("refusing to send the access token in clear text (plain http) to {host}: {url}")]
    PlainHttp { host: String, url: String },
}

fn seconds(n: u64) -> String {
    if n == 1 {
        "1 second".into()
    } else {
        format!("{n} seconds")
    }
}

fn describe(description: &Option<String>) -> String {
    match description {
        Some(d) if !d.is_empty() => format!(" ({d})"),
        _ => String::new(),
    }
}

impl Error {
    /// The documented process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_)
            | Error::IdTokenRequest { .. }
            | Error::HelperInput { .. }
            | Error::PlainHttp { .. } => EXIT_USAGE,
            Error::NoCredentials { .. }
            | Error::NoMetadataServer { .. }
            | Error::ScopesNotGranted { .. }
            | Error::CredentialFile { .. }
            | Error::Rejected { .. }
            | Error::ReauthRequired { .. } => EXIT_CREDENTIALS,
            // The documented table for revoke: 1 whenever the file was kept.
            Error::RevokeFailed { .. } => EXIT_ERROR,
            _ => EXIT_ERROR,
        }
    }

    /// What the user should do next, naming a command where one helps.
    pub fn hint(&self) -> Option<String> {
        let login = "run `gemauth login --client-id-file client_secret.json` to sign in again";
        Some(match self {
            Error::Usage(_) => "run `gemauth --help` for usage".into(),
            Error::ClientSecretFile { .. } => "in the Google Cloud console (Google Auth Platform → Clients) create a client of type \"Desktop app\", download its JSON and pass it with --client-id-file".into(),
            Error::Endpoint { .. } => "endpoints must use https (plain http is allowed only for 127.0.0.1, [::1] and localhost); check the file that names it".into(),
            Error::PortUnavailable { .. } => "choose another port with --port N, or omit --port to use a free one".into(),
            Error::LoginTimeout { stdin_closed: true, rerun, .. } => format!("run `{}` again in an interactive terminal and paste the address, or forward the printed port with `ssh -L PORT:127.0.0.1:PORT HOST` so the browser reaches the listener", rerun.as_deref().unwrap_or("gemauth login --client-id-file client_secret.json --no-browser")),
            Error::LoginTimeout { rerun, .. } => format!("run `{}` again and finish signing in within the time limit, or give it more time with --timeout SECS", rerun.as_deref().unwrap_or("gemauth login --client-id-file client_secret.json")),
            Error::BadPaste { .. } => "run `gemauth login --no-browser` again; after approving, copy the whole address from the browser's address bar (it starts with http://127.0.0.1:) and paste it".into(),
            Error::AuthorizationDenied { .. } => "run `gemauth login` again and approve the requested access".into(),
            Error::NoRefreshToken { .. } => "remove gemauth's earlier grant at https://myaccount.google.com/permissions, then run `gemauth login` again".into(),
            Error::NoCredentials { .. } => "run `gemauth login --client-id-file client_secret.json` to sign in".into(),
            Error::Rejected { .. } => login.into(),
            Error::CredentialFile { .. } => "fix or replace the credential file named above; for a user login, run `gemauth login --client-id-file client_secret.json` to write a new one".into(),
            Error::ExchangeRejected { .. } => "download the OAuth client's JSON again from the Google Cloud console (the client may have been deleted or its secret reset), then run `gemauth login` again".into(),
            Error::ReauthRequired { .. } => "your organization requires periodic re-authentication: run `gemauth login --client-id-file client_secret.json`".into(),
            Error::UnsupportedCredentialType { .. } => "gemauth reads authorized_user, service_account, impersonated_service_account and external_account files (revoke: authorized_user only); for a user login run `gemauth login`".into(),
            Error::Server { .. } => "the server may be down or misconfigured: try again later, and check the endpoint named above (token_uri / revoke_uri in the credential file)".into(),
            Error::Network { .. } => "check your network connection (and HTTPS_PROXY, if you use one) and try again; GEMAUTH_TIMEOUT sets the time limit in seconds".into(),
            Error::RevokeFailed { .. } => "try again later, or run `gemauth revoke --force` to remove the local credential without revoking it".into(),
            Error::Io { .. } => "check the path's permissions and free space".into(),
            Error::ScopesNotGranted { .. } => "run `gemauth login --client-id-file client_secret.json --scopes …` with the scopes you need".into(),
            Error::ExecutablesNotAllowed => "set GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1 to let the credential file run its command (as Google's libraries require)".into(),
            Error::NoMetadataServer { .. } => "run `gemauth login --client-id-file client_secret.json`, or set GOOGLE_APPLICATION_CREDENTIALS to a credential file".into(),
            Error::NoQuotaProject { .. } => "run `gemauth set-quota-project PROJECT_ID`, or set GOOGLE_CLOUD_QUOTA_PROJECT".into(),
            Error::ToolConfig { .. } => "fix the file named above (gemauth changed nothing), or move it aside and run the command again".into(),
            Error::HelperInput { tool, .. } => format!("gemauth reads what {tool} writes to its credential helper; docs/helpers.md shows the expected input"),
            Error::CurlNotStarted { .. } => "install curl, or point GEMAUTH_CURL at it".into(),
            Error::NoSpace { .. } => "free some disk space and run the command again; nothing was sent to the server and the credential is unchanged".into(),
            Error::IdTokenRequest { hint, .. } => hint.clone(),
            Error::Internal(_) => "this is unexpected: run the command again with -v and report what it prints".into(),
            Error::PlainHttp { .. } => "use an https:// URL; plain http is allowed only to this machine (127.0.0.1, [::1], localhost)".into(),
        })
    }
}

/// Prints `error: ...` and `hint: ...` on stderr; returns the exit code to use.
pub fn report(err: &Error) -> u8 {
    eprintln!("error: {}", sanitize(&err.to_string()));
    if let Some(hint) = err.hint() {
        eprintln!("hint: {hint}");
    }
    err.exit_code()
}

/// Removes control characters (including newlines and ANSI escapes) from text that came from
/// outside, and caps its length, so that a server cannot forge lines or flood the terminal.
pub fn sanitize(text: &str) -> String {
    const MAX: usize = 500;
    let mut out = String::with_capacity(text.len().min(MAX));
    for (n, c) in text.chars().filter(|c| !c.is_control()).enumerate() {
        if n == MAX {
            out.push('…');
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_strips_control_characters_and_caps_length() {
        assert_eq!(sanitize("bad\n\x1b[31mred\r\tx"), "bad[31mredx");
        assert_eq!(sanitize(&"a".repeat(600)).chars().count(), 501);
    }

    #[test]
    fn exit_codes_follow_the_documented_table() {
        assert_eq!(Error::Usage("x".into()).exit_code(), EXIT_USAGE);
        let rejected = Error::Rejected {
            endpoint: "e".into(),
            error: "invalid_grant".into(),
            description: None,
        };
        assert_eq!(rejected.exit_code(), EXIT_CREDENTIALS);
        assert_eq!(
            Error::LoginTimeout {
                secs: 1,
                stdin_closed: false,
                rerun: None
            }
            .exit_code(),
            EXIT_ERROR
        );
    }
}
