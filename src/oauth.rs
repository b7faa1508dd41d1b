//! HTTP calls to the OAuth 2.0 server: authorization-code exchange, refresh-token grant, ID token
//! answers and revocation, with TLS (rustls, ring passed in), timeouts, no redirects, capped
//! bodies, bounded retries and typed errors; the runtime that network work runs on.

use std::time::{Duration, Instant};

use base64::Engine as _;
use oauth2::{AccessToken, AuthorizationCode, ClientSecret, PkceCodeVerifier, RefreshToken};
use serde::Deserialize;
use url::Url;

use crate::error::{Error, Result, sanitize};

/// Longest lifetime gemauth believes of any access token (a week); Google's last an hour.
pub const MAX_LIFETIME_SECS: u64 = 7 * 24 * 3600;

/// True for a usable access token: non-empty visible ASCII without spaces (RFC 6750's
/// b64token and the tokens real servers issue), so that it cannot break a header or a line.
pub fn plausible_access_token(token: &str) -> bool {
    !token.is_empty() && token.len() <= 64 * 1024 && token.bytes().all(|b| b.is_ascii_graphic())
}

/// Largest response body gemauth reads from any endpoint.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Environment variable: connect timeout in seconds (default 10).
pub const ENV_CONNECT_TIMEOUT: &str = "GEMAUTH_CONNECT_TIMEOUT";
/// Environment variable: overall timeout of one operation in seconds (default 30).
pub const ENV_TIMEOUT: &str = "GEMAUTH_TIMEOUT";
const MAX_ATTEMPTS: u32 = 3;

fn env_secs(name: &str, default: u64) -> Duration {
    let secs = std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v > 0.0)
        .map(Duration::from_secs_f64);
    secs.unwrap_or(Duration::from_secs(default))
}

/// Runs network work on a single-threaded runtime, built only when a command or a blocking
/// library call needs the network.
/// Inside a Tokio runtime (a program calling the blocking `gemauth::get` from async code) it
/// returns an error instead of panicking: such callers want `gemauth::get_async`.
pub(crate) fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::Internal(
            "gemauth::get and get_with block; inside a Tokio runtime use gemauth::get_async".into(),
        ));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
    Ok(runtime.block_on(future))
}

/// The HTTP client used for every OAuth call.
pub struct Http {
    client: reqwest::Client,
    timeout: Duration,
}

impl Http {
    pub fn new() -> Result<Self> {
        Self::with_connect_timeout(env_secs(ENV_CONNECT_TIMEOUT, 10))
    }

    /// A client with its own connect timeout (the metadata server must answer fast or not at all).
    pub fn with_connect_timeout(connect_timeout: Duration) -> Result<Self> {
        let timeout = env_secs(ENV_TIMEOUT, 30);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .user_agent(concat!("gemauth/", env!("CARGO_PKG_VERSION")))
            .tls_backend_preconfigured(tls_config()?)
            .build()
            .map_err(|e| Error::Internal(format!("cannot build the HTTP client: {e}")))?;
        Ok(Http { client, timeout })
    }

    /// POSTs a form and returns the status and (capped) body.
    pub(crate) async fn post_form(
        &self,
        url: &Url,
        form: &[(&str, &str)],
    ) -> Result<(u16, Vec<u8>)> {
        self.execute(url, |c| c.post(url.clone()).form(form)).await
    }

    /// Sends a request built by `make` (once per attempt) and returns the status and (capped)
    /// body. Retries 408, 429, 5xx and OAuth `temporarily_unavailable`/`server_error` with
    /// backoff, within the overall timeout.
    pub(crate) async fn execute(
        &self,
        url: &Url,
        make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<(u16, Vec<u8>)> {
        let deadline = Instant::now() + self.timeout;
        let endpoint = endpoint_name(url);
        let mut attempt = 1;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let sent = make(&self.client)
                .header(reqwest::header::ACCEPT, "application/json")
                .timeout(remaining.max(Duration::from_millis(1)))
                .send()
                .await;
            let response = sent.map_err(|e| network_error(&endpoint, &e))?;
            let status = response.status().as_u16();
            tracing::debug!(%endpoint, attempt, status, "request answered");
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = read_capped(response, &endpoint, status).await?;
            if attempt < MAX_ATTEMPTS && is_transient(status, &body) {
                let backoff = retry_after.unwrap_or(Duration::from_millis(500 * (1 << attempt)));
                // A Retry-After past the deadline (or absurdly large) ends the retries.
                if backoff < deadline.saturating_duration_since(Instant::now()) {
                    tracing::debug!(%endpoint, status, ?backoff, "transient failure; retrying");
                    tokio::time::sleep(backoff).await;
                    attempt += 1;
                    continue;
                }
            }
            return Ok((status, body));
        }
    }
}

/// TLS as reqwest would set it up, with gemauth's own crypto provider (ring) passed in rather
/// than installed process-wide, so that a program using the library keeps its own choice. Server
/// certificates are checked against the platform's roots (on Linux the system bundle, or
/// `SSL_CERT_FILE` / `SSL_CERT_DIR`).
fn tls_config() -> Result<rustls::ClientConfig> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
        .map_err(|e| Error::Internal(format!("cannot load the TLS root certificates: {e}")))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("cannot configure TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(verifier))
        .with_no_client_auth();
    Ok(config)
}

fn is_transient(status: u16, body: &[u8]) -> bool {
    if status == 408 || status == 429 || (500..=599).contains(&status) {
        return true;
    }
    matches!(
        serde_json::from_slice::<OAuthError>(body).map(|e| e.error),
        Ok(e) if e == "temporarily_unavailable" || e == "server_error"
    )
}

async fn read_capped(
    mut response: reqwest::Response,
    endpoint: &str,
    status: u16,
) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(Error::Server {
                        endpoint: endpoint.to_string(),
                        status,
                        detail: format!("response body larger than {MAX_BODY_BYTES} bytes"),
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(network_error(endpoint, &e)),
        }
    }
}

/// Names an endpoint in messages without its query string (which could carry anything).
pub(crate) fn endpoint_name(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

fn network_error(endpoint: &str, e: &reqwest::Error) -> Error {
    let what = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    // The error's source chain names the cause (refused, DNS, TLS) and never carries the form.
    let mut detail = what;
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = format!("{detail}: {s}");
        source = s.source();
    }
    Error::Network {
        endpoint: endpoint.to_string(),
        detail: sanitize(&detail),
    }
}

/// A successful token endpoint response.
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    pub access_token: AccessToken,
    #[serde(default)]
    pub token_type: Option<String>,
    #[serde(default)]
    pub expires_in: Option<serde_json::Value>,
    #[serde(default)]
    pub refresh_token: Option<RefreshToken>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub id_token: Option<IdToken>,
}

/// An OpenID Connect ID token from a token answer (the account's email at login, the token
/// itself for `print-identity-token`); its `Debug` is redacted.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct IdToken(String);

impl std::fmt::Debug for IdToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdToken([redacted])")
    }
}

impl IdToken {
    /// The token itself, for `print-identity-token`.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl TokenResponse {
    /// Lifetime in seconds (`expires_in` may be a number or a numeric string); one hour when
    /// the server does not say, and never more than [`MAX_LIFETIME_SECS`].
    pub fn lifetime(&self) -> u64 {
        let secs = match &self.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(3600),
            Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(3600),
            _ => 3600,
        };
        secs.min(MAX_LIFETIME_SECS)
    }

    /// The token as cached: obtained now, expiring after its lifetime, with the scopes the server
    /// listed (else `fallback_scopes`).
    pub fn to_cached(&self, fallback_scopes: Vec<String>) -> crate::store::CachedToken {
        let now = crate::store::now();
        crate::store::CachedToken {
            key: String::new(),
            access_token: self.access_token.clone(),
            token_type: self.token_type.clone().unwrap_or_else(|| "Bearer".into()),
            obtained_at: now,
            expires_at: now.saturating_add(self.lifetime()),
            scopes: self.granted_scopes().unwrap_or(fallback_scopes),
        }
    }

    /// Granted scopes, when the server listed them.
    pub fn granted_scopes(&self) -> Option<Vec<String>> {
        self.scope
            .as_ref()
            .map(|s| s.split_whitespace().map(str::to_string).collect())
    }

    /// The scopes a login obtained: the response's `scope` (all requested ones when absent), plus
    /// the OpenID scopes the ID token itself proves: `openid` when an ID token came back, and the
    /// requested email scope when it carries an email. Some servers list in `scope` only the
    /// access token's scopes for its API and leave those out.
    pub fn granted_for(&self, requested: &[String]) -> Vec<String> {
        let mut granted = self.granted_scopes().unwrap_or_else(|| requested.to_vec());
        let has_email = self.email().is_some();
        for scope in requested {
            let proven = match scope.as_str() {
                "openid" => self.id_token.is_some(),
                s => has_email && crate::credentials::scope_granted(s, &["email".to_string()]),
            };
            if proven && !crate::credentials::scope_granted(scope, &granted) {
                granted.push(scope.clone());
            }
        }
        granted
    }

    /// The `email` claim of the ID token. The token came straight from the token endpoint over
    /// a checked connection, so its signature need not be verified to read a display name
    /// (OpenID Connect Core 3.1.3.7).
    pub fn email(&self) -> Option<String> {
        let payload = self.id_token.as_ref()?.0.split('.').nth(1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?;
        let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        claims
            .get("email")?
            .as_str()
            .map(sanitize)
            .filter(|s| !s.is_empty())
    }
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    error_subtype: Option<String>,
}

/// Turns a token endpoint answer into a token or a typed error.
pub(crate) fn parse_token_response(
    endpoint: &str,
    status: u16,
    body: &[u8],
) -> Result<TokenResponse> {
    if (200..300).contains(&status) {
        let mut response =
            serde_json::from_slice::<TokenResponse>(body).map_err(|_| Error::Server {
                endpoint: endpoint.to_string(),
                status,
                detail: describe_body(body, "is not a token response (no access_token)"),
            })?;
        if !plausible_access_token(response.access_token.secret()) {
            return Err(Error::Server {
                endpoint: endpoint.to_string(),
                status,
                detail: "the access_token is empty or holds spaces or control characters".into(),
            });
        }
        // An empty refresh token is no refresh token.
        response.refresh_token = response
            .refresh_token
            .filter(|t| !t.secret().trim().is_empty());
        return Ok(response);
    }
    Err(oauth_error(endpoint, status, body))
}

/// Turns the token endpoint's answer to an ID token request (a JWT-bearer grant whose assertion
/// names a `target_audience`: `{"id_token": …}` and no access token) into the ID token or a typed
/// error.
pub(crate) fn parse_id_token_response(endpoint: &str, status: u16, body: &[u8]) -> Result<String> {
    #[derive(Deserialize)]
    struct IdTokenResponse {
        id_token: IdToken,
    }
    if (200..300).contains(&status) {
        return serde_json::from_slice::<IdTokenResponse>(body)
            .map(|r| r.id_token.0)
            .map_err(|_| Error::Server {
                endpoint: endpoint.to_string(),
                status,
                detail: describe_body(body, "is not an ID token response (no id_token)"),
            });
    }
    Err(oauth_error(endpoint, status, body))
}

fn oauth_error(endpoint: &str, status: u16, body: &[u8]) -> Error {
    let Ok(err) = serde_json::from_slice::<OAuthError>(body) else {
        return Error::Server {
            endpoint: endpoint.to_string(),
            status,
            detail: describe_body(body, "is not an OAuth error response"),
        };
    };
    let description = err
        .error_description
        .as_deref()
        .map(sanitize)
        .filter(|d| !d.is_empty());
    let error = sanitize(&err.error);
    if let Some(subtype) = err
        .error_subtype
        .as_deref()
        .filter(|s| matches!(*s, "rapt_required" | "invalid_rapt"))
    {
        return Error::ReauthRequired {
            endpoint: endpoint.to_string(),
            subtype: subtype.to_string(),
            description,
        };
    }
    match error.as_str() {
        "invalid_grant" | "invalid_client" | "unauthorized_client" => Error::Rejected {
            endpoint: endpoint.to_string(),
            error,
            description,
        },
        _ => Error::Server {
            endpoint: endpoint.to_string(),
            status,
            detail: match description {
                Some(d) => format!("{error} ({d})"),
                None => error,
            },
        },
    }
}

/// Says what a body was, without echoing it (it could hold anything, secrets included).
pub(crate) fn describe_body(body: &[u8], problem: &str) -> String {
    if body.iter().all(u8::is_ascii_whitespace) {
        return "empty response body".into();
    }
    let head = String::from_utf8_lossy(&body[..body.len().min(64)]).to_ascii_lowercase();
    if head.trim_start().starts_with('<') {
        return format!("an HTML page instead of JSON; the body {problem}");
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(_) => format!("the JSON body {problem}"),
        Err(_) => format!("the body is not JSON and {problem}"),
    }
}

/// Exchanges an authorization code (with its PKCE verifier) for tokens; client_secret_post.
pub async fn exchange_code(
    http: &Http,
    token_uri: &Url,
    client_id: &str,
    client_secret: &ClientSecret,
    code: &AuthorizationCode,
    verifier: &PkceCodeVerifier,
    redirect_uri: &str,
) -> Result<TokenResponse> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.secret().as_str()),
        ("redirect_uri", redirect_uri),
        ("client_id", client_id),
        ("client_secret", client_secret.secret().as_str()),
        ("code_verifier", verifier.secret().as_str()),
    ];
    let (status, body) = http.post_form(token_uri, &form).await?;
    parse_token_response(&endpoint_name(token_uri), status, &body)
}

/// Obtains a new access token with the refresh-token grant; client_secret_post.
pub async fn refresh(
    http: &Http,
    token_uri: &Url,
    client_id: &str,
    client_secret: &ClientSecret,
    refresh_token: &RefreshToken,
) -> Result<TokenResponse> {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.secret().as_str()),
        ("client_id", client_id),
        ("client_secret", client_secret.secret().as_str()),
    ];
    let (status, body) = http.post_form(token_uri, &form).await?;
    parse_token_response(&endpoint_name(token_uri), status, &body)
}

/// How the revocation endpoint answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Revocation {
    /// The grant was revoked now.
    Revoked,
    /// The server did not know the token: it had already been revoked or had expired.
    AlreadyInvalid,
}

/// Revokes a token (RFC 7009). Google answers `400 invalid_token` for one already revoked.
pub async fn revoke(
    http: &Http,
    revoke_uri: &Url,
    client_id: &str,
    client_secret: &ClientSecret,
    token: &RefreshToken,
) -> Result<Revocation> {
    // RFC 7009 2.1: the client authenticates as at the token endpoint (client_secret_post).
    let form = [
        ("token", token.secret().as_str()),
        ("token_type_hint", "refresh_token"),
        ("client_id", client_id),
        ("client_secret", client_secret.secret().as_str()),
    ];
    let (status, body) = http.post_form(revoke_uri, &form).await?;
    let endpoint = endpoint_name(revoke_uri);
    if (200..300).contains(&status) {
        return Ok(Revocation::Revoked);
    }
    match serde_json::from_slice::<OAuthError>(&body) {
        Ok(e) if status == 400 && e.error == "invalid_token" => Ok(Revocation::AlreadyInvalid),
        _ => Err(oauth_error(&endpoint, status, &body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_errors_are_classified() {
        let body = br#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#;
        let e = parse_token_response("https://t/token", 400, body).unwrap_err();
        assert!(matches!(e, Error::Rejected { .. }), "{e:?}");
        let body = br#"{"error":"invalid_grant","error_subtype":"invalid_rapt"}"#;
        let e = parse_token_response("https://t/token", 400, body).unwrap_err();
        assert!(matches!(e, Error::ReauthRequired { .. }), "{e:?}");
        let e =
            parse_token_response("https://t/token", 502, b"<html>bad gateway</html>").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("HTTP 502") && msg.contains("HTML"), "{msg}");
        let e = parse_token_response("https://t/token", 200, br#"{"token_type":"Bearer"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("no access_token"), "{e}");
        let e = parse_token_response("https://t/token", 200, b"").unwrap_err();
        assert!(e.to_string().contains("empty response body"), "{e}");
    }

    #[test]
    fn email_is_read_from_the_id_token() {
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"email":"dev@example.com"}"#);
        let body =
            format!(r#"{{"access_token":"a","id_token":"e30.{claims}.sig","expires_in":"60"}}"#);
        let t = parse_token_response("e", 200, body.as_bytes()).unwrap();
        assert_eq!(t.email().as_deref(), Some("dev@example.com"));
        assert_eq!(t.lifetime(), 60);
        // The scope lists only the API scopes; the ID token proves openid and email.
        let requested: Vec<String> = [
            "openid",
            "https://www.googleapis.com/auth/userinfo.email",
            "profile",
        ]
        .map(String::from)
        .to_vec();
        let body = format!(r#"{{"access_token":"a","id_token":"e30.{claims}.sig","scope":"x"}}"#);
        let t = parse_token_response("e", 200, body.as_bytes()).unwrap();
        assert_eq!(
            t.granted_for(&requested),
            vec![
                "x",
                "openid",
                "https://www.googleapis.com/auth/userinfo.email"
            ]
        );
        assert!(!format!("{t:?}").contains("dev@example.com"));
    }
}
