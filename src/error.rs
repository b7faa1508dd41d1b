//! The library's error: what failed (which file, which endpoint, which credential), with the
//! underlying error as its `source()`, and whether retrying can help. What the command line
//! prints for it (the message, the `hint:` line, the exit code) is `commands::report`'s.

use std::path::PathBuf;

/// A result whose error is gemauth's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a token could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request itself was wrong (a scope, a project ID, an audience).
    #[error("invalid arguments: {0}")]
    Usage(String),

    /// An OAuth client file (`client_secret.json`) that cannot be used.
    #[error("client secret file {path}: {problem}")]
    ClientSecretFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },

    /// An endpoint a file names that may not be used (not https, not loopback http).
    #[error("{name}{} is not allowed: {reason}", quoted(.url))]
    Endpoint {
        /// The field that names it (`token_uri`, …).
        name: &'static str,
        /// The URL, without any user name, password or query (empty when it is not a URL).
        url: String,
        /// Why it is refused.
        reason: String,
    },

    /// An endpoint a file names that would receive secrets, on a host that is neither Google's,
    /// nor the credential's universe domain, nor this machine, nor listed in
    /// `GEMAUTH_TRUSTED_HOSTS`. Nothing was sent.
    #[error(
        "{} {}: {field} would send secrets to {host}, which is not a Google host (nor this machine, nor listed in GEMAUTH_TRUSTED_HOSTS)",
        if *.client_file { "client secret file" } else { "credential file" },
        .path.display()
    )]
    UntrustedEndpoint {
        /// The file.
        path: PathBuf,
        /// Whether it is an OAuth client file (else a credential file).
        client_file: bool,
        /// The field that names the endpoint (`token_uri`, `source_credentials.token_uri`, …).
        field: String,
        /// The endpoint's host.
        host: String,
    },

    /// No credential file was found (and no metadata server is there to ask).
    #[error("no credentials found (looked in {})", .searched.display())]
    NoCredentials {
        /// The well-known file that does not exist.
        searched: PathBuf,
    },

    /// A credential file that cannot be used.
    #[error("credential file {path}: {problem}")]
    CredentialFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },

    /// A credential file of a type gemauth (or this use of it) does not support.
    #[error("credential file {path} has type {kind:?}, which this command does not support")]
    UnsupportedCredentialType {
        /// The file.
        path: PathBuf,
        /// Its `type`.
        kind: String,
    },

    /// The server refused the credential.
    #[error("{endpoint} rejected the credentials: {error}{}", describe(.description))]
    Rejected {
        /// The endpoint that refused.
        endpoint: String,
        /// Its error code (`invalid_grant`, `PERMISSION_DENIED`, …).
        error: String,
        /// Its description, when it gave one.
        description: Option<String>,
        /// Which credential was refused, when known (what to do depends on it).
        by: Option<Box<Rejecter>>,
    },

    /// The user's organization requires signing in again (Google Cloud session control).
    #[error(
        "{endpoint} requires you to sign in again (Google Cloud session control, {subtype}){}",
        describe(.description)
    )]
    ReauthRequired {
        /// The token endpoint.
        endpoint: String,
        /// `rapt_required` or `invalid_rapt`.
        subtype: String,
        /// Its description, when it gave one.
        description: Option<String>,
    },

    /// The server answered, but not with what was asked (an error status, a broken body).
    #[error("{endpoint} answered HTTP {status}: {detail}")]
    Server {
        /// The endpoint.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// What was wrong, without echoing the body.
        detail: String,
    },

    /// The server could not be reached (or did not answer in time).
    #[error("could not reach {endpoint}: {detail}")]
    Network {
        /// The endpoint.
        endpoint: String,
        /// What failed, with its causes.
        detail: String,
        /// The HTTP client's error.
        #[source]
        source: Option<Box<reqwest::Error>>,
    },

    /// A user credential was not granted the scopes asked for.
    #[error("the credential was not granted these scopes: {missing}")]
    ScopesNotGranted {
        /// The scopes missing, space-separated.
        missing: String,
    },

    /// An external account's executable source, without
    /// `GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1`.
    #[error("executable-sourced credentials are disabled")]
    ExecutablesNotAllowed,

    /// No credential file, and the metadata server that should be there did not answer.
    #[error("no credentials found (looked in {}), and no metadata server answered at {endpoint} ({detail})", .searched.display())]
    NoMetadataServer {
        /// The well-known file that does not exist.
        searched: PathBuf,
        /// The metadata server's endpoint.
        endpoint: String,
        /// What failed.
        detail: String,
        /// The HTTP client's error.
        #[source]
        source: Option<Box<reqwest::Error>>,
    },

    /// No room on the disk to save a new version of a file (nothing was sent to the server).
    #[error("the disk is full (or over quota): no room to save a new version of {path}")]
    NoSpace {
        /// The file.
        path: PathBuf,
        /// The error of the write.
        #[source]
        source: std::io::Error,
    },

    /// A file or directory could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done (`cannot write`, …).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },

    /// An ID token this credential cannot have, or one asked for without what it needs (the
    /// audience).
    #[error("{problem}")]
    IdTokenRequest {
        /// What is wrong.
        problem: String,
        /// What to do instead.
        hint: String,
    },

    /// A file of certificate authorities named by the environment cannot be used.
    #[error("{variable}={}: cannot use it as CA certificates: {problem}", .path.display())]
    CaFile {
        /// The variable naming it (`CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE`, `SSL_CERT_FILE`).
        variable: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },

    /// Something that should not happen.
    #[error("{0}")]
    Internal(String),
}

/// The credential a server refused, for saying what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejecter {
    /// A user's refresh token (`authorized_user`).
    User {
        /// The credential file, when it is not the well-known ADC file.
        credential_file: Option<PathBuf>,
        /// The scopes of the login, when they are not the default ones.
        scopes: Option<Vec<String>>,
    },
    /// A service account key.
    ServiceAccountKey {
        /// The service account.
        email: String,
        /// The key's ID (`private_key_id`).
        key_id: Option<String>,
    },
    /// IAM Credentials refused to let `principal` act as `service_account`.
    Impersonation {
        /// The service account to act as.
        service_account: String,
        /// Who asked (the source credential's identity), when known.
        principal: Option<String>,
        /// Whether an ID token was asked for (another role is needed).
        id_token: bool,
    },
    /// IAM Credentials refused an access token lifetime over an hour (`--lifetime`): the
    /// organization policy does not allow it for this service account.
    LifetimeExtension {
        /// The service account impersonated.
        service_account: String,
        /// The lifetime asked for, in seconds.
        lifetime_secs: u64,
    },
    /// The source user credential of an impersonation (an impersonated ADC file).
    ImpersonationSource {
        /// The service account acted as.
        service_account: String,
    },
    /// The Security Token Service refused a federated subject token.
    Federation {
        /// The audience: the workload or workforce pool and provider.
        audience: String,
    },
    /// A workforce identity federation user's refresh token
    /// (`external_account_authorized_user`).
    WorkforceUser {
        /// The workforce pool provider the login was for, when the file names it.
        audience: Option<String>,
    },
    /// The metadata server.
    MetadataServer,
}

/// ` "text"`, or nothing for empty text.
fn quoted(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(" {text:?}")
    }
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
        self.rejected_as(|by| by.is_none().then_some(rejecter))
    }

    /// Changes who a refusal names: `change` gets the current one and returns the new one
    /// (`None` keeps it).
    pub(crate) fn rejected_as(
        self,
        change: impl FnOnce(Option<&Rejecter>) -> Option<Rejecter>,
    ) -> Error {
        match self {
            Error::Rejected {
                endpoint,
                error,
                description,
                by,
            } => {
                let by = match change(by.as_deref()) {
                    Some(new) => Some(Box::new(new)),
                    None => by,
                };
                Error::Rejected {
                    endpoint,
                    error,
                    description,
                    by,
                }
            }
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
    fn a_refusal_names_its_credential_once_and_network_errors_are_retryable() {
        let rejected = Error::Rejected {
            endpoint: "e".into(),
            error: "invalid_grant".into(),
            description: None,
            by: None,
        };
        let first = rejected.rejected_by(Rejecter::MetadataServer);
        let again = first.rejected_by(Rejecter::Federation {
            audience: "a".into(),
        });
        assert!(
            matches!(again, Error::Rejected { by: Some(by), .. } if *by == Rejecter::MetadataServer)
        );
        let network = Error::Network {
            endpoint: "e".into(),
            detail: "timed out".into(),
            source: None,
        };
        assert!(network.is_retryable());
        let busy = |status| Error::Server {
            endpoint: "e".into(),
            status,
            detail: String::new(),
        };
        assert!(busy(503).is_retryable() && busy(429).is_retryable());
        assert!(!busy(400).is_retryable());
    }
}
