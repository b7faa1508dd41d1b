//! The command line's view of a failure: the CLI's own failures (login, revoke, the helpers,
//! curl) next to the library's, and for each its one-line message, its `hint:` line (which
//! depends on the credential and the failure) and its documented exit code.

use std::path::PathBuf;

use crate::error::{Rejecter, sanitize};

pub(crate) use crate::exit::{EXIT_CREDENTIALS, EXIT_ERROR, EXIT_OK, EXIT_USAGE};

/// The sign-in command, as hints name it.
const LOGIN: &str = "gemauth login --client-id-file client_secret.json";
/// The sign-in command of a workforce identity federation user, as hints name it.
pub(crate) const LOGIN_WORKFORCE: &str = "gemauth login --login-config LOGIN_CONFIG_FILE";
/// The hint for a refused user credential whose login is not known.
const LOGIN_AGAIN: &str =
    "run `gemauth login --client-id-file client_secret.json` to sign in again";

/// A failure of a command.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A library error.
    #[error(transparent)]
    Lib(#[from] crate::Error),

    /// A failure of the sign-in flow.
    #[error(transparent)]
    Flow(crate::flow::Error),

    #[error("authorization was refused: {error}{}", describe(.description))]
    AuthorizationDenied {
        error: String,
        description: Option<String>,
    },

    #[error(
        "the token endpoint {endpoint} issued no refresh token, so the login could not be saved"
    )]
    NoRefreshToken {
        endpoint: String,
        /// A workforce identity federation login (`--login-config`).
        workforce: bool,
    },

    #[error("{endpoint} refused the OAuth client or the code: {error}{}", describe(.description))]
    ExchangeRejected {
        endpoint: String,
        error: String,
        description: Option<String>,
    },

    #[error("{endpoint} refused the workforce sign-in's code: {error}{}", describe(.description))]
    WorkforceExchangeRejected {
        endpoint: String,
        error: String,
        description: Option<String>,
    },

    #[error("login configuration file {path}: {problem}")]
    LoginConfigFile { path: PathBuf, problem: String },

    #[error(
        "login configuration file {path}: {field} would send your sign-in to {host}, which is not Google's, this machine's, or trusted by GEMAUTH_TRUSTED_HOSTS"
    )]
    LoginConfigEndpoint {
        path: PathBuf,
        field: &'static str,
        host: String,
    },

    #[error("revocation failed, the local credential was kept: {source}")]
    RevokeFailed {
        #[source]
        source: crate::Error,
    },

    #[error("no quota project is set in {path}")]
    NoQuotaProject { path: PathBuf },

    #[error("cannot run {program:?}: {reason}")]
    CurlNotStarted { program: String, reason: String },

    #[error("{path}: {problem}")]
    ToolConfig { path: PathBuf, problem: String },

    #[error("unexpected input from {tool}: {problem}")]
    HelperInput { tool: &'static str, problem: String },

    #[error("refusing to send the access token in clear text (plain http) to {host}: {url}")]
    PlainHttp { host: String, url: String },

    #[error("{failed} of the {total} checks failed (the ✗ lines above)")]
    ChecksFailed { failed: usize, total: usize },
}

/// A result whose error is a command's.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

impl From<crate::flow::Error> for Error {
    fn from(e: crate::flow::Error) -> Self {
        match e {
            crate::flow::Error::Lib(lib) => Error::Lib(lib),
            flow => Error::Flow(flow),
        }
    }
}

impl From<crate::rules::Invalid> for Error {
    fn from(invalid: crate::rules::Invalid) -> Self {
        Error::Lib(invalid.into())
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
    pub(crate) fn exit_code(&self) -> u8 {
        use crate::Error as Lib;
        match self {
            Error::Lib(Lib::Usage(_) | Lib::IdTokenRequest { .. })
            | Error::HelperInput { .. }
            | Error::PlainHttp { .. } => EXIT_USAGE,
            Error::LoginConfigEndpoint { .. } => EXIT_CREDENTIALS,
            Error::Lib(
                Lib::NoCredentials { .. }
                | Lib::NoMetadataServer { .. }
                | Lib::ScopesNotGranted { .. }
                | Lib::CredentialFile { .. }
                | Lib::UntrustedEndpoint { .. }
                | Lib::Rejected { .. }
                | Lib::ReauthRequired { .. },
            ) => EXIT_CREDENTIALS,
            // The documented table for revoke: 1 whenever the file was kept.
            _ => EXIT_ERROR,
        }
    }

    /// What the user should do next, naming a command where one helps.
    pub(crate) fn hint(&self) -> String {
        use crate::flow::Error as Flow;
        match self {
            Error::Lib(e) => lib_hint(e),
            Error::Flow(Flow::PortUnavailable { .. }) => "choose another port with --port N, or omit --port to use a free one".into(),
            Error::Flow(Flow::LoginTimeout { stdin_closed: true, rerun, .. }) => format!("run `{}` again in an interactive terminal and paste the address, or forward the printed port with `ssh -L PORT:127.0.0.1:PORT HOST` so the browser reaches the listener", rerun.as_deref().unwrap_or("gemauth login --client-id-file client_secret.json --no-browser")),
            Error::Flow(Flow::LoginTimeout { rerun, .. }) => format!("run `{}` again and finish signing in within the time limit, or give it more time with --timeout SECS", rerun.as_deref().unwrap_or(LOGIN)),
            Error::Flow(Flow::NothingCanAnswer) => "sign in from a terminal (`gemauth login --client-id-file client_secret.json --no-browser`, then paste the address), or over SSH fix the port and forward it (`--port N` with `ssh -L N:127.0.0.1:N HOST`); a job with no one present uses a service account through impersonation or workload identity federation instead (README, \"Without a person\")".into(),
            Error::Flow(Flow::BadPaste { .. }) => format!("run `{LOGIN} --no-browser` again (a workforce login: `gemauth login --login-config FILE --no-browser`); after approving, copy the whole address from the browser's address bar (it starts with http://127.0.0.1: or, for a workforce login, http://localhost:) and paste it"),
            Error::Flow(Flow::Lib(e)) => lib_hint(e),
            Error::AuthorizationDenied { .. } => format!("run `{LOGIN}` again (a workforce login: `gemauth login --login-config FILE`) and approve the requested access"),
            Error::NoRefreshToken { workforce: true, .. } => "run `gemauth login --login-config FILE` again; if no refresh token comes again, ask your workforce pool's administrator (the pool and its provider decide what a sign-in grants)".into(),
            Error::NoRefreshToken { .. } => format!("remove gemauth's earlier grant at https://myaccount.google.com/permissions, then run `{LOGIN}` again"),
            Error::ExchangeRejected { .. } => format!("download the OAuth client's JSON again from the Google Cloud console (the client may have been deleted or its secret reset), then run `{LOGIN}` again"),
            Error::WorkforceExchangeRejected { .. } => "check that the login configuration is your workforce pool's current one (`gcloud iam workforce-pools create-login-config`), then run `gemauth login --login-config FILE` again".into(),
            Error::LoginConfigFile { .. } => "create the login configuration with `gcloud iam workforce-pools create-login-config locations/global/workforcePools/POOL/providers/PROVIDER --output-file=login.json`, or ask your administrator for it, and pass it with --login-config".into(),
            Error::LoginConfigEndpoint { host, .. } => format!("use a login configuration only from a source you trust: whoever controls {host} would receive your sign-in; if it is your organisation's own endpoint or proxy, allow it with GEMAUTH_TRUSTED_HOSTS={host} (exact host names, separated by commas)"),
            Error::RevokeFailed { .. } => "try again later, or run `gemauth revoke --force` to remove the local credential without revoking it".into(),
            Error::NoQuotaProject { .. } => "run `gemauth set-quota-project PROJECT_ID`, or set GOOGLE_CLOUD_QUOTA_PROJECT".into(),
            Error::ToolConfig { .. } => "fix the file named above (gemauth changed nothing), or move it aside and run the command again".into(),
            Error::HelperInput { tool, .. } => format!("gemauth reads what {tool} writes to its credential helper; docs/helpers.md shows the expected input"),
            Error::CurlNotStarted { .. } => "install curl, or point GEMAUTH_CURL at it".into(),
            Error::PlainHttp { .. } => "use an https:// URL; plain http is allowed only to this machine (127.0.0.1, [::1], localhost)".into(),
            Error::ChecksFailed { .. } => "do what each ✗ line says, then run `gemauth status --check` again".into(),
        }
    }
}

/// What to do about a library error.
pub(super) fn lib_hint(e: &crate::Error) -> String {
    use crate::Error as Lib;
    match e {
        Lib::Usage(_) => "run `gemauth --help` for usage".into(),
        Lib::ClientSecretFile { .. } => "in the Google Cloud console (Google Auth Platform → Clients) create a client of type \"Desktop app\", download its JSON and pass it with --client-id-file".into(),
        Lib::Endpoint { .. } => "endpoints must use https (plain http is allowed only for 127.0.0.1, [::1] and localhost); check the file that names it".into(),
        Lib::UntrustedEndpoint { host, .. } => format!("use credential and client files only from sources you trust: whoever controls {host} would receive your credentials; if it is your organisation's own endpoint or proxy, allow it with GEMAUTH_TRUSTED_HOSTS={host} (exact host names, separated by commas)"),
        Lib::NoCredentials { .. } => "run `gemauth login --client-id-file client_secret.json` to sign in".into(),
        Lib::Rejected { by, .. } => rejected_hint(by.as_deref()),
        Lib::CredentialFile { .. } => "fix or replace the credential file named above; for a user login, run `gemauth login --client-id-file client_secret.json` to write a new one".into(),
        Lib::ReauthRequired { .. } => "your organization requires periodic re-authentication: run `gemauth login --client-id-file client_secret.json`".into(),
        Lib::UnsupportedCredentialType { .. } => "gemauth reads authorized_user, service_account, impersonated_service_account, external_account and external_account_authorized_user files (revoke: authorized_user, external_account_authorized_user, and impersonated_service_account made from a user's login); for a user login run `gemauth login`".into(),
        Lib::Server { .. } => "the server may be down or misconfigured: try again later, and check the endpoint named above (token_uri / revoke_uri in the credential file)".into(),
        Lib::Network { detail, .. } if untrusted_certificate(detail) => "the server's TLS certificate is not trusted; behind a proxy that inspects TLS, point CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE (or SSL_CERT_FILE) at its CA certificate (PEM), trusted besides the system's; `gemauth status --check` shows the proxy in use".into(),
        Lib::Network { .. } => "check your network connection (and HTTPS_PROXY, if you use one) and try again; GEMAUTH_TIMEOUT sets the time limit in seconds".into(),
        Lib::CaFile { variable, .. } => format!("point {variable} at a PEM file of CA certificates (your TLS-inspecting proxy's root CA), or unset it"),
        Lib::Io { .. } => "check the path's permissions and free space".into(),
        Lib::ScopesNotGranted { .. } => "run `gemauth login --client-id-file client_secret.json --scopes …` with the scopes you need".into(),
        Lib::ExecutablesNotAllowed => "set GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1 to let the credential file run its command (as Google's libraries require)".into(),
        Lib::NoMetadataServer { .. } => "run `gemauth login --client-id-file client_secret.json`, or set GOOGLE_APPLICATION_CREDENTIALS to a credential file".into(),
        Lib::NoSpace { .. } => "free some disk space and run the command again; nothing was sent to the server and the credential is unchanged".into(),
        Lib::IdTokenRequest { hint, .. } => hint.clone(),
        _ => "this is unexpected: run the command again with -v and report what it prints".into(),
    }
}

/// What to do about a credential the server refused, by who refused it.
fn rejected_hint(by: Option<&Rejecter>) -> String {
    match by {
        None => LOGIN_AGAIN.into(),
        Some(Rejecter::User {
            credential_file,
            scopes,
        }) => {
            let mut command = LOGIN.to_string();
            if let Some(scopes) = scopes {
                command.push_str(&format!(" --scopes {}", sanitize(&scopes.join(","))));
            }
            if let Some(file) = credential_file {
                command.push_str(&format!(
                    " --credential-file {}",
                    shell_words::quote(&sanitize(&file.display().to_string()))
                ));
            }
            format!("run `{command}` to sign in again")
        }
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
        Some(Rejecter::LifetimeExtension {
            service_account,
            lifetime_secs,
        }) => format!(
            "IAM grants a token lifetime of more than 3600 s (up to 43200 s) only where the \
             organization policy constraints/iam.allowServiceAccountCredentialLifetimeExtension \
             lists the service account: ask an organization policy administrator to add {sa} \
             to it (`gcloud resource-manager org-policies allow \
             constraints/iam.allowServiceAccountCredentialLifetimeExtension {sa} \
             --organization=ORGANIZATION_ID`), or use --lifetime 3600 or less (asked: {lifetime_secs} s)",
            sa = sanitize(service_account)
        ),
        Some(Rejecter::ImpersonationSource { service_account }) => format!(
            "the source credential of the impersonation was refused: sign in again with `gemauth \
             login --client-id-file client_secret.json --impersonate-service-account {}` (or \
             gcloud auth application-default login --impersonate-service-account)",
            sanitize(service_account)
        ),
        Some(Rejecter::Federation { audience }) => format!(
            "check the workload or workforce identity pool and provider the audience names \
             ({}): that they exist and are enabled, and that the provider accepts the subject \
             token the credential source gives (issuer, audience, attribute conditions)",
            sanitize(audience)
        ),
        Some(Rejecter::WorkforceUser { audience }) => format!(
            "run `{LOGIN_WORKFORCE}` to sign in again with your workforce pool's login \
             configuration{} (`gcloud iam workforce-pools create-login-config` writes it)",
            audience
                .as_deref()
                .map(|a| format!(" for {}", sanitize(a)))
                .unwrap_or_default()
        ),
        Some(Rejecter::MetadataServer) => "the metadata server refused: check the service \
             account attached to this machine and the access scopes it was given"
            .into(),
    }
}

/// Whether a network failure is a server certificate that no trusted CA signed.
fn untrusted_certificate(detail: &str) -> bool {
    let lower = detail.to_lowercase();
    lower.contains("unknownissuer")
        || lower.contains("unknown issuer")
        || lower.contains("certificate")
}

/// Prints `error: ...` and `hint: ...` on stderr; returns the exit code to use.
pub(crate) fn report(err: &Error) -> u8 {
    eprintln!("error: {}", sanitize(&err.to_string()));
    eprintln!("hint: {}", err.hint());
    err.exit_code()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(by: Option<Rejecter>) -> Error {
        Error::Lib(crate::Error::Rejected {
            endpoint: "e".into(),
            error: "invalid_grant".into(),
            description: None,
            by: by.map(Box::new),
        })
    }

    #[test]
    fn exit_codes_follow_the_documented_table() {
        assert_eq!(
            Error::Lib(crate::Error::Usage("x".into())).exit_code(),
            EXIT_USAGE
        );
        assert_eq!(rejected(None).exit_code(), EXIT_CREDENTIALS);
        let timeout = crate::flow::Error::LoginTimeout {
            secs: 1,
            stdin_closed: false,
            rerun: None,
        };
        assert_eq!(Error::from(timeout).exit_code(), EXIT_ERROR);
        let helper = Error::HelperInput {
            tool: "git",
            problem: "x".into(),
        };
        assert_eq!(helper.exit_code(), EXIT_USAGE);
        let kept = Error::RevokeFailed {
            source: crate::Error::Internal("x".into()),
        };
        assert_eq!(kept.exit_code(), EXIT_ERROR);
        // A library error the flow passed on is the library's, with its own code.
        let passed = crate::flow::Error::Lib(crate::Error::NoCredentials {
            searched: "x".into(),
        });
        assert_eq!(Error::from(passed).exit_code(), EXIT_CREDENTIALS);
    }

    #[test]
    fn a_refused_user_is_told_to_sign_in_with_the_flags_of_its_login() {
        assert_eq!(rejected(None).hint(), LOGIN_AGAIN);
        let plain = Rejecter::User {
            credential_file: None,
            scopes: None,
        };
        assert_eq!(rejected(Some(plain)).hint(), LOGIN_AGAIN);
        let flagged = Rejecter::User {
            credential_file: Some("/tmp/my creds.json".into()),
            scopes: Some(vec!["openid".into(), "email".into()]),
        };
        assert_eq!(
            rejected(Some(flagged)).hint(),
            "run `gemauth login --client-id-file client_secret.json --scopes openid,email \
             --credential-file '/tmp/my creds.json'` to sign in again"
        );
    }

    #[test]
    fn other_credentials_are_never_told_to_run_gemauth_login() {
        for by in [
            Rejecter::ServiceAccountKey {
                email: "sa@p".into(),
                key_id: None,
            },
            Rejecter::Impersonation {
                service_account: "sa@p".into(),
                principal: None,
                id_token: false,
            },
            Rejecter::LifetimeExtension {
                service_account: "sa@p".into(),
                lifetime_secs: 7200,
            },
            Rejecter::Federation {
                audience: "//iam.googleapis.com/pool".into(),
            },
            Rejecter::MetadataServer,
        ] {
            let hint = rejected(Some(by.clone())).hint();
            assert!(!hint.contains("gemauth login"), "{by:?}: {hint}");
        }
        // The source of an impersonation is a user's login: signing in again is the fix, for
        // the same impersonation.
        let hint = rejected(Some(Rejecter::ImpersonationSource {
            service_account: "sa@p".into(),
        }))
        .hint();
        assert!(
            hint.contains("gemauth login --client-id-file client_secret.json --impersonate-service-account sa@p"),
            "{hint}"
        );
    }
}
