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

    #[error("the sign-in was not completed within {secs} seconds{}", if *.stdin_closed { " (standard input was closed, so nothing could be pasted)" } else { "" })]
    LoginTimeout { secs: u64, stdin_closed: bool },

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
        /// Which credential was refused, when known (the hint depends on it).
        by: Option<Box<Rejecter>>,
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
    Network {
        endpoint: String,
        detail: String,
        /// The HTTP client's error.
        #[source]
        source: Option<Box<reqwest::Error>>,
    },

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
        /// The HTTP client's error.
        #[source]
        source: Option<Box<reqwest::Error>>,
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
}

/// The credential a server refused, for the hint that says what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejecter {
    /// A user's refresh token (`authorized_user`).
    User,
    /// A service account key.
    ServiceAccountKey {
        email: String,
        key_id: Option<String>,
    },
    /// IAM Credentials refused to let `principal` act as `service_account` (for an ID token
    /// when `id_token`).
    Impersonation {
        service_account: String,
        principal: Option<String>,
        id_token: bool,
    },
    /// The source user credential of an impersonation (an impersonated ADC file).
    ImpersonationSource { service_account: String },
    /// The Security Token Service refused a federated subject token for this audience (the
    /// workload or workforce pool and provider).
    Federation { audience: String },
    /// The metadata server.
    MetadataServer,
}

fn describe(description: &Option<String>) -> String {
    match description {
        Some(d) if !d.is_empty() => format!(" ({d})"),
        _ => String::new(),
    }
}

impl Error {
    /// Marks a refusal by the server as one of `rejecter`'s, unless it already names one.
    pub(crate) fn rejected_by(self, rejecter: Rejecter) -> Error {
        match self {
            Error::Rejected {
                endpoint,
                error,
                description,
                by: None,
            } => Error::Rejected {
                endpoint,
                error,
                description,
                by: Some(Box::new(rejecter)),
            },
            other => other,
        }
    }

    /// Whether trying again later may help: the network failed, or the server answered with a
    /// transient error (408, 429, 5xx). A refused or broken credential needs a change first.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Network { .. } => true,
            Error::Server { status, .. } => {
                matches!(*status, 408 | 429) || (500..=599).contains(status)
            }
            _ => false,
        }
    }

    /// The documented process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::IdTokenRequest { .. } | Error::HelperInput { .. } => {
                EXIT_USAGE
            }
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
            Error::ClientSecretFile { .. } => "in the Google Cloud console (APIs & Services > Credentials) create an OAuth client ID of type \"Desktop app\", download its JSON and pass it with --client-id-file".into(),
            Error::Endpoint { .. } => "endpoints must use https (plain http is allowed only for 127.0.0.1, [::1] and localhost); check the file that names it".into(),
            Error::PortUnavailable { .. } => "choose another port with --port N, or omit --port to use a free one".into(),
            Error::LoginTimeout { stdin_closed: true, .. } => "run `gemauth login --no-browser` again in an interactive terminal and paste the address, or forward the printed port with `ssh -L PORT:127.0.0.1:PORT HOST` so the browser reaches the listener".into(),
            Error::LoginTimeout { .. } => "run `gemauth login` again and finish signing in within the time limit, or raise it with --timeout SECS".into(),
            Error::BadPaste { .. } => "run `gemauth login --no-browser` again; after approving, copy the whole address from the browser's address bar (it starts with http://127.0.0.1:) and paste it".into(),
            Error::AuthorizationDenied { .. } => "run `gemauth login` again and approve the requested access".into(),
            Error::NoRefreshToken { .. } => "remove gemauth's earlier grant at https://myaccount.google.com/permissions, then run `gemauth login` again".into(),
            Error::NoCredentials { .. } => "run `gemauth login --client-id-file client_secret.json` to sign in".into(),
            Error::Rejected { by, .. } => rejected_hint(by.as_deref(), login),
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

/// What to do about a credential the server refused, by who refused it.
fn rejected_hint(by: Option<&Rejecter>, login: &str) -> String {
    match by {
        None | Some(Rejecter::User) => login.into(),
        Some(Rejecter::ServiceAccountKey { email, key_id }) => format!(
            "the service account key{} was deleted or disabled, or the account {email} was: check \
             the account in the Google Cloud console (IAM & Admin > Service accounts) and create \
             a new key (`gcloud iam service-accounts keys create key.json --iam-account={email}`)",
            key_id
                .as_deref()
                .map(|id| format!(" {}", sanitize(id)))
                .unwrap_or_default()
        ),
        Some(Rejecter::Impersonation {
            service_account,
            principal,
            id_token,
        }) => {
            let role = if *id_token {
                "roles/iam.serviceAccountOpenIdTokenCreator"
            } else {
                "roles/iam.serviceAccountTokenCreator"
            };
            let who = principal
                .as_deref()
                .map_or("the source credential".to_string(), sanitize);
            format!(
                "{who} needs {role} on the service account {sa}: `gcloud iam service-accounts \
                 add-iam-policy-binding {sa} --member=MEMBER --role={role}` (MEMBER is \
                 user:EMAIL, serviceAccount:EMAIL or the federated principal), and the account \
                 must exist and be enabled",
                sa = sanitize(service_account)
            )
        }
        Some(Rejecter::ImpersonationSource { service_account }) => format!(
            "the source credential of the impersonation was refused: sign in again with `gcloud \
             auth application-default login --impersonate-service-account={}`",
            sanitize(service_account)
        ),
        Some(Rejecter::Federation { audience }) => format!(
            "check the workload or workforce identity pool and provider the audience names \
             ({}): that they exist and are enabled, and that the provider accepts the subject \
             token the credential source gives (issuer, audience, attribute conditions)",
            sanitize(audience)
        ),
        Some(Rejecter::MetadataServer) => "the metadata server refused: check the service \
             account attached to this machine and the access scopes it was given"
            .into(),
    }
}

pub(crate) use crate::rules::sanitize;

impl From<crate::rules::EndpointRefused> for Error {
    fn from(refused: crate::rules::EndpointRefused) -> Self {
        Error::Endpoint {
            name: refused.name,
            url: refused.url,
            reason: refused.reason,
        }
    }
}

impl From<crate::rules::Invalid> for Error {
    fn from(invalid: crate::rules::Invalid) -> Self {
        Error::Usage(invalid.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_documented_table() {
        assert_eq!(Error::Usage("x".into()).exit_code(), EXIT_USAGE);
        let rejected = Error::Rejected {
            endpoint: "e".into(),
            error: "invalid_grant".into(),
            description: None,
            by: None,
        };
        assert_eq!(rejected.exit_code(), EXIT_CREDENTIALS);
        assert_eq!(
            Error::LoginTimeout {
                secs: 1,
                stdin_closed: false
            }
            .exit_code(),
            EXIT_ERROR
        );
    }
}
