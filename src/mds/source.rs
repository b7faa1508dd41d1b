//! What the metadata server asks for: the [`TokenSource`] trait (implemented over gemauth's one
//! refresh pipeline by the command, by fakes in the tests), the values it returns and its typed
//! error.

use std::future::Future;
use std::time::SystemTime;

use crate::secret::Secret;

/// An access token as the source minted it.
#[derive(Debug, Clone)]
pub(crate) struct AccessToken {
    pub token: Secret<String>,
    /// When the token stops working (the server never hands it out after that).
    pub expires_at: SystemTime,
    /// The scopes the token carries, as the token server reported them (empty when unknown).
    pub scopes: Vec<String>,
}

/// The `format` parameter of the identity endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum IdTokenFormat {
    /// Audience, issuer, subject and email claims only (GCE's default).
    Standard,
    /// Also the `google.compute_engine` claim (project, zone, instance) where the source has one.
    Full,
}

/// What an ID token is asked for: `identity?audience=…[&format=full][&licenses=TRUE]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct IdTokenRequest {
    pub audience: String,
    pub format: IdTokenFormat,
    /// `licenses=TRUE`: include the image's license codes (only meaningful with `format=full`).
    pub licenses: bool,
}

/// An OpenID Connect ID token (a signed JWT) and its `exp`.
#[derive(Debug, Clone)]
pub(crate) struct IdToken {
    pub token: Secret<String>,
    pub expires_at: SystemTime,
}

/// Who the tokens are for and which project, as far as the source knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The account's email (a service account's, or the signed-in user's). When unknown the server
    /// answers with the alias `default`, which is what clients pass back anyway.
    pub email: Option<String>,
    /// `project/project-id` (404 when unknown).
    pub project_id: Option<String>,
    /// `project/numeric-project-id` (404 when unknown; gcloud detects the metadata server with it).
    pub numeric_project_id: Option<u64>,
    /// `universe/universe-domain` (404 when unknown: clients then assume googleapis.com).
    pub universe_domain: Option<String>,
}

/// Why the source could not answer. The text is shown to the client in the error body and in
/// logs: it must never contain a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SourceError {
    /// The token server is down, slow or answered 5xx, or the network failed: worth retrying.
    /// A cached token keeps being served until it expires; then the answer is 503 with this text.
    #[error("{0}")]
    Unavailable(String),
    /// The credential is missing, unreadable, revoked or rejected: retrying will not help until
    /// the user acts (`gemauth login`). The cached token for that request is dropped; 503.
    #[error("{0}")]
    Permanent(String),
    /// This request cannot be served by this credential (scopes not granted, an ID token the
    /// credential cannot have): 400.
    #[error("{0}")]
    BadRequest(String),
}

/// Where the server's tokens come from. Each method may take as long as a token request takes;
/// the server calls it once per key at a time (single-flight), in the background ahead of expiry,
/// and bounds it with its own timeout.
pub(crate) trait TokenSource: Send + Sync + 'static {
    /// An access token for these scopes (full URLs, sorted, without duplicates; the server's
    /// default scopes when the client named none).
    fn access_token(
        &self,
        scopes: &[String],
    ) -> impl Future<Output = Result<AccessToken, SourceError>> + Send;

    /// An ID token for the request's audience.
    fn id_token(
        &self,
        request: &IdTokenRequest,
    ) -> impl Future<Output = Result<IdToken, SourceError>> + Send;

    /// The account and project. Called at most once a minute while clients ask for them; the
    /// last answer is kept while the source fails.
    fn identity(&self) -> impl Future<Output = Result<Identity, SourceError>> + Send;

    /// What the user should be told after the warm-up (a project number that could not be
    /// looked up); none by default.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}
