//! The metadata server's [`TokenSource`] over gemauth's one token pipeline: access tokens through
//! `token::get_async`, ID tokens through `idtoken::get_async`, the identity from the credential
//! file, and the numeric project ID from `--numeric-project-id` or Cloud Resource Manager. The
//! credential file is read again on every call (a new login or a revoke is picked up at once);
//! nothing here keeps a credential, only the numeric project ID.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Mutex;
use url::Url;

use super::source::{AccessToken, IdToken, IdTokenRequest, Identity, SourceError, TokenSource};
use crate::context::Context;
use crate::credentials::{Acting, Credential};
use crate::error::{Error, sanitize};
use crate::idtoken::{self, IdTokenParams};
use crate::oauth::HttpRequest;
use crate::pipeline;
use crate::token::{self, Request};

/// Seconds a cached token must still have when the server asks: more than the server's own
/// refresh margin (five minutes), so that its refresh ahead of expiry gets a new token rather
/// than the one it already holds.
const MIN_LIFETIME_SECS: u64 = 360;

/// Environment variable naming another Cloud Resource Manager (tests; loopback only).
pub(crate) const ENV_RESOURCE_MANAGER: &str = "GEMAUTH_RESOURCE_MANAGER_URL";

/// Cloud Resource Manager's v1 API, where a project's number is read.
const RESOURCE_MANAGER: &str = "https://cloudresourcemanager.googleapis.com";

/// How long a failed lookup of the project number is not retried.
const NUMBER_RETRY: Duration = Duration::from_secs(600);

/// Tokens for the credential a command line names (or discovery finds).
pub(crate) struct PipelineSource {
    credential_file: Option<PathBuf>,
    /// The scopes of the identity lookups' token (the server's default scopes).
    default_scopes: Vec<String>,
    /// `--project`: overrides the credential's project.
    project_id: Option<String>,
    /// `--numeric-project-id`.
    numeric_project_id: Option<u64>,
    /// `--impersonate-service-account`: the account to act as (and its delegation chain).
    acting: Option<Acting>,
    /// Project numbers looked up, per project ID (a failure is kept for [`NUMBER_RETRY`]).
    numbers: Mutex<Vec<(String, Result<u64, SystemTime>)>>,
    /// Why the last lookup of a project number failed, until it is told (`warnings`).
    number_failure: std::sync::Mutex<Option<String>>,
}

impl PipelineSource {
    /// A source for `credential_file` (none: discovery, as `print-access-token` does), acting
    /// as the service account `impersonate` when given.
    pub(crate) fn new(
        credential_file: Option<PathBuf>,
        default_scopes: Vec<String>,
        project_id: Option<String>,
        numeric_project_id: Option<u64>,
        impersonate: Option<&str>,
    ) -> Result<Self, Error> {
        let acting = impersonate
            .map(|spec| {
                Ok::<_, Error>(Acting {
                    impersonate: Some(crate::credentials::parse_service_accounts(spec)?),
                    lifetime_secs: None,
                })
            })
            .transpose()?;
        Ok(PipelineSource {
            credential_file,
            default_scopes,
            project_id,
            numeric_project_id,
            acting,
            numbers: Mutex::new(Vec::new()),
            number_failure: std::sync::Mutex::new(None),
        })
    }

    async fn token(&self, scopes: &[String]) -> Result<token::Token, SourceError> {
        let request = Request {
            credential_file: self.credential_file.clone(),
            min_lifetime: Some(MIN_LIFETIME_SECS),
            scopes: Some(scopes.to_vec()),
        };
        token::get_async_acting(&request, self.acting.as_ref())
            .await
            .map_err(|e| classify(&e))
    }

    /// The project's number, from Cloud Resource Manager (once per project and process; a
    /// failure is retried after a while). `None` when it cannot be had: the server then answers
    /// 404, as GCE would not, but as nothing better can be said.
    async fn project_number(&self, project: &str) -> Option<u64> {
        let mut numbers = self.numbers.lock().await;
        let now = SystemTime::now();
        if let Some((_, known)) = numbers.iter().find(|(p, _)| p == project) {
            match known {
                Ok(number) => return Some(*number),
                Err(at) if now < *at + NUMBER_RETRY => return None,
                Err(_) => {}
            }
        }
        let found = self.look_up_number(project).await;
        if let Err(reason) = &found {
            let warning = format!(
                "project/numeric-project-id is unknown: {} (gcloud then does not detect the \
                 metadata server; pass --numeric-project-id)",
                sanitize(reason)
            );
            tracing::warn!("{warning}");
            if let Ok(mut failure) = self.number_failure.lock() {
                *failure = Some(warning);
            }
        }
        numbers.retain(|(p, _)| p != project);
        numbers.push((
            project.to_string(),
            found.as_ref().copied().map_err(|_| now),
        ));
        found.ok()
    }

    async fn look_up_number(&self, project: &str) -> Result<u64, String> {
        let base = resource_manager_base()?;
        let url = base
            .join(&format!("v1/projects/{project}"))
            .map_err(|e| format!("cannot build the Cloud Resource Manager URL: {e}"))?;
        let token = self
            .token(&self.default_scopes)
            .await
            .map_err(|e| e.to_string())?;
        let ctx = Context::from_process();
        let http = ctx.http().map_err(|e| e.to_string())?;
        let request = HttpRequest::get(&url).bearer(token.access_token.expose());
        let (status, body) = http.send(&request).await.map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!(
                "Cloud Resource Manager answered HTTP {status} for project {project}"
            ));
        }
        let value: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| "Cloud Resource Manager's answer is not JSON".to_string())?;
        value
            .get("projectNumber")
            .and_then(|n| {
                n.as_str()
                    .and_then(|s| s.parse().ok())
                    .or_else(|| n.as_u64())
            })
            .ok_or_else(|| "Cloud Resource Manager's answer has no projectNumber".to_string())
    }
}

/// Cloud Resource Manager's base URL: Google's, or [`ENV_RESOURCE_MANAGER`] when it names a
/// loopback address (a test's fake).
fn resource_manager_base() -> Result<Url, String> {
    api_base(ENV_RESOURCE_MANAGER, RESOURCE_MANAGER)
}

/// A Google API's base URL: `default`, or the variable `name` when it names a loopback address
/// (a test's fake).
fn api_base(name: &str, default: &str) -> Result<Url, String> {
    let base = match crate::env::Env::Process.var(name) {
        Some(value) if !value.trim().is_empty() => {
            let url = Url::parse(value.trim()).map_err(|_| format!("{name} is not a URL"))?;
            let loopback = match url.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(name)) => name == "localhost",
                None => false,
            };
            if !loopback {
                return Err(format!(
                    "{name} must name a loopback address (it is for tests)"
                ));
            }
            url
        }
        _ => Url::parse(default).map_err(|e| e.to_string())?,
    };
    Ok(base)
}

/// The server's error for a pipeline error: retryable failures (network, 5xx, timeouts) are
/// [`SourceError::Unavailable`], a request this credential cannot serve is
/// [`SourceError::BadRequest`], anything the user must fix is [`SourceError::Permanent`]. The
/// library's error text never holds a secret; it is sanitized for the client anyway.
fn classify(e: &Error) -> SourceError {
    let text = sanitize(&e.to_string());
    if e.is_retryable() {
        return SourceError::Unavailable(text);
    }
    match e {
        Error::ScopesNotGranted { .. } | Error::IdTokenRequest { .. } | Error::Usage(_) => {
            SourceError::BadRequest(text)
        }
        Error::NoMetadataServer { .. } => SourceError::Unavailable(text),
        _ => SourceError::Permanent(text),
    }
}

fn system_time(unix: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix)
}

impl TokenSource for PipelineSource {
    async fn access_token(&self, scopes: &[String]) -> Result<AccessToken, SourceError> {
        let token = self.token(scopes).await?;
        Ok(AccessToken {
            token: token.access_token,
            expires_at: system_time(token.expires_at),
            scopes: token.scopes,
        })
    }

    async fn id_token(&self, request: &IdTokenRequest) -> Result<IdToken, SourceError> {
        let token = idtoken::get_async(&IdTokenParams {
            credential_file: self.credential_file.clone(),
            audience: Some(request.audience.clone()),
            include_email: true,
            min_lifetime: Some(MIN_LIFETIME_SECS),
            acting: self.acting.clone(),
        })
        .await
        .map_err(|e| match classify(&e) {
            // The command line's wording (--audiences) does not fit a client of the server.
            SourceError::BadRequest(_)
                if matches!(e, Error::IdTokenRequest { .. }) && self.acting.is_none() =>
            {
                SourceError::BadRequest(format!(
                    "this credential cannot have an ID token for this audience ({}); start \
                     gemauth metadata-server with --impersonate-service-account SA_EMAIL to \
                     serve a service account's ID tokens",
                    sanitize(&e.to_string())
                ))
            }
            // Whatever stops an ID token for this request is the request's problem, unless the
            // token server is down or the credential is gone.
            SourceError::Permanent(text)
                if !matches!(
                    e,
                    Error::NoCredentials { .. }
                        | Error::CredentialFile { .. }
                        | Error::Rejected { .. }
                        | Error::ReauthRequired { .. }
                        | Error::Io { .. }
                ) =>
            {
                SourceError::BadRequest(text)
            }
            other => other,
        })?;
        Ok(IdToken {
            token: token.token,
            expires_at: system_time(token.expires_at),
        })
    }

    fn warnings(&self) -> Vec<String> {
        self.number_failure
            .lock()
            .ok()
            .and_then(|mut failure| failure.take())
            .into_iter()
            .collect()
    }

    async fn identity(&self) -> Result<Identity, SourceError> {
        let ctx = Context::from_process();
        let target =
            pipeline::locate(&ctx, self.credential_file.as_deref()).map_err(|e| classify(&e))?;
        let credential =
            pipeline::load_acting(&ctx, &target, self.acting.as_ref()).map_err(|e| classify(&e))?;
        let email = credential.identity().filter(|email| email.contains('@'));
        let own_project = match &credential {
            Credential::ServiceAccount { key, .. } => key
                .project_id
                .clone()
                .or_else(|| key.quota_project_id.clone()),
            other => other.quota_project(),
        };
        let project_id = self
            .project_id
            .clone()
            .or_else(|| own_project.filter(|p| crate::credentials::validate_project_id(p).is_ok()));
        let numeric_project_id = match (self.numeric_project_id, &project_id) {
            (Some(number), _) => Some(number),
            (None, Some(project)) => self.project_number(project).await,
            (None, None) => None,
        };
        Ok(Identity {
            email,
            project_id,
            numeric_project_id,
            universe_domain: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_what_the_server_answers() {
        let network = Error::Server {
            endpoint: "e".into(),
            status: 503,
            detail: "d".into(),
        };
        assert!(matches!(classify(&network), SourceError::Unavailable(_)));
        let rejected = Error::Rejected {
            endpoint: "e".into(),
            error: "invalid_grant".into(),
            description: None,
            by: None,
        };
        assert!(matches!(classify(&rejected), SourceError::Permanent(_)));
        let scopes = Error::ScopesNotGranted {
            missing: "x".into(),
        };
        assert!(matches!(classify(&scopes), SourceError::BadRequest(_)));
        let none = Error::NoCredentials {
            searched: "/nowhere".into(),
        };
        assert!(matches!(classify(&none), SourceError::Permanent(_)));
    }

    #[test]
    fn impersonation_names_a_service_account() {
        let source = |spec: &str| PipelineSource::new(None, Vec::new(), None, None, Some(spec));
        let acting = source("sa@p.iam.gserviceaccount.com")
            .unwrap()
            .acting
            .unwrap();
        assert_eq!(
            acting.impersonate,
            Some(("sa@p.iam.gserviceaccount.com".to_string(), Vec::new()))
        );
        for bad in [
            "",
            "sa",
            "@p",
            "sa@",
            "a@b@c",
            "sa@p/../x",
            "sa@p?x",
            "sa@p\u{1b}",
        ] {
            assert!(matches!(source(bad), Err(Error::Usage(_))), "{bad:?}");
        }
    }

    #[test]
    fn only_a_loopback_resource_manager_replaces_googles() {
        // The variable is not set in unit tests: Google's.
        assert_eq!(
            resource_manager_base().unwrap().as_str(),
            "https://cloudresourcemanager.googleapis.com/"
        );
    }
}
