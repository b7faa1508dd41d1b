//! HTTP to Google's servers: the client (reqwest with rustls and ring, timeouts, no redirects,
//! capped bodies, bounded retries; a closure in unit tests), requests as values, the one mapping
//! from an HTTP answer to a typed error, the OAuth 2.0 grants gemauth sends (authorization code,
//! refresh token, revocation) and the runtime that network work runs on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use oauth2::{AuthorizationCode, PkceCodeVerifier};
use rustls::pki_types::CertificateDer;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::error::{Error, Result};
use crate::rules::{MAX_LIFETIME_SECS, endpoint_name, plausible_access_token, sanitize};
use crate::secret::Secret;
use crate::store::CachedToken;

/// Environment variable: connect timeout in seconds (default 10).
pub(crate) const ENV_CONNECT_TIMEOUT: &str = "GEMAUTH_CONNECT_TIMEOUT";
/// Environment variable: overall timeout of one operation in seconds (default 30).
pub(crate) const ENV_TIMEOUT: &str = "GEMAUTH_TIMEOUT";

/// Largest response body gemauth reads from any endpoint.
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;
const MAX_ATTEMPTS: u32 = 3;

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

/// An HTTP method gemauth uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
    /// Only the AWS IMDSv2 session token request.
    Put,
}

/// A request body.
#[derive(Clone)]
pub(crate) enum Body {
    Empty,
    /// `application/x-www-form-urlencoded`.
    Form(Vec<(String, String)>),
    /// `application/json`.
    Json(Value),
}

/// One HTTP request, as a value (sent once per attempt; a fake sees exactly this). It holds
/// secrets (forms, bearer tokens), so it has no `Debug`.
#[derive(Clone)]
pub(crate) struct HttpRequest {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) bearer: Option<String>,
    /// HTTP Basic authentication: the user and the password.
    pub(crate) basic: Option<(String, String)>,
    pub(crate) body: Body,
}

impl HttpRequest {
    /// A GET of `url`.
    pub(crate) fn get(url: &Url) -> Self {
        HttpRequest {
            method: Method::Get,
            url: url.clone(),
            headers: Vec::new(),
            bearer: None,
            basic: None,
            body: Body::Empty,
        }
    }

    /// A PUT of `url` without a body.
    pub(crate) fn put(url: &Url) -> Self {
        HttpRequest {
            method: Method::Put,
            ..Self::get(url)
        }
    }

    /// A POST of a form to `url`.
    pub(crate) fn form(url: &Url, form: &[(&str, &str)]) -> Self {
        let pairs = form
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        HttpRequest {
            method: Method::Post,
            body: Body::Form(pairs),
            ..Self::get(url)
        }
    }

    /// A POST of JSON to `url`.
    pub(crate) fn json(url: &Url, body: Value) -> Self {
        HttpRequest {
            method: Method::Post,
            body: Body::Json(body),
            ..Self::get(url)
        }
    }

    /// Adds a header.
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Authenticates with a bearer token.
    pub(crate) fn bearer(mut self, token: &str) -> Self {
        self.bearer = Some(token.to_string());
        self
    }

    /// Authenticates with HTTP Basic.
    pub(crate) fn basic(mut self, user: &str, password: &str) -> Self {
        self.basic = Some((user.to_string(), password.to_string()));
        self
    }
}

/// The form fields whose values are secrets (a refresh token, a client secret, a code and its
/// verifier, an assertion, a subject token, a token being revoked).
const SECRET_FIELDS: [&str; 9] = [
    "refresh_token",
    "client_secret",
    "code",
    "code_verifier",
    "assertion",
    "subject_token",
    "actor_token",
    "token",
    "password",
];
/// Headers whose values are never secret.
const PLAIN_HEADERS: [&str; 4] = ["metadata-flavor", "content-type", "accept", "user-agent"];
/// Secrets at least this long are masked wherever they appear; shorter ones (no real one is)
/// only as whole words, so that they do not eat ordinary words.
const MASK_ANYWHERE: usize = 8;
/// What replaces a secret in text shown or logged.
pub(crate) const REDACTED: &str = "[redacted]";

/// The secrets one request carried, in every form a server could echo them (as sent, form- and
/// percent-encoded, JSON-escaped, in an HTTP Basic header): the one error mapping masks them in
/// every text it takes from the answer. Its `Debug` shows none of them.
#[derive(Clone, Default)]
pub(crate) struct Sent {
    /// Lowercase (ASCII) forms of the secrets, longest first.
    needles: Vec<String>,
}

impl std::fmt::Debug for Sent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sent({} forms, [redacted])", self.needles.len())
    }
}

impl Sent {
    /// These secret values.
    pub(crate) fn secrets<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut needles: Vec<String> = Vec::new();
        for value in values {
            let value = value.trim();
            if value.chars().count() < 3 {
                continue;
            }
            let form: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
            let json = serde_json::to_string(value).unwrap_or_default();
            let json = json.trim_matches('"').to_string();
            for form in [
                value.to_string(),
                form.clone(),
                form.replace('+', "%20"),
                json.replace('/', "\\/"),
                json,
            ] {
                let lower = form.to_ascii_lowercase();
                if !needles.contains(&lower) {
                    needles.push(lower);
                }
            }
        }
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        Sent { needles }
    }

    /// These secrets and `other`'s.
    pub(crate) fn and(mut self, other: Sent) -> Self {
        for needle in other.needles {
            if !self.needles.contains(&needle) {
                self.needles.push(needle);
            }
        }
        self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        self
    }

    /// The secret values of a form (by field name, [`SECRET_FIELDS`]).
    pub(crate) fn form(form: &[(&str, &str)]) -> Self {
        Self::secrets(
            form.iter()
                .filter(|(k, _)| SECRET_FIELDS.contains(k))
                .map(|(_, v)| *v),
        )
    }

    /// Everything secret a request carries: its form's secret fields, its bearer token, its
    /// Basic credentials (and their header value), its headers' values.
    pub(crate) fn of(request: &HttpRequest) -> Self {
        let mut values: Vec<String> = Vec::new();
        if let Body::Form(pairs) = &request.body {
            values.extend(
                pairs
                    .iter()
                    .filter(|(k, _)| SECRET_FIELDS.contains(&k.as_str()))
                    .map(|(_, v)| v.clone()),
            );
        }
        values.extend(request.bearer.clone());
        if let Some((user, password)) = &request.basic {
            values.push(password.clone());
            values.push(
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")),
            );
        }
        values.extend(
            request
                .headers
                .iter()
                .filter(|(name, _)| !PLAIN_HEADERS.contains(&name.to_ascii_lowercase().as_str()))
                .map(|(_, v)| v.clone()),
        );
        Self::secrets(values.iter().map(String::as_str))
    }

    /// Text from an answer as it may be shown: control and invisible characters removed, every
    /// secret sent masked (whatever its case), and its length capped.
    pub(crate) fn clean(&self, text: &str) -> String {
        let text: String = text
            .chars()
            .filter(|c| !c.is_control() && !crate::rules::is_invisible(*c))
            .collect();
        let lower = text.to_ascii_lowercase();
        // Byte ranges to mask (matches of ASCII-lowercased text start and end on characters).
        let mut masked = vec![false; text.len()];
        for needle in &self.needles {
            let anywhere = needle.chars().count() >= MASK_ANYWHERE;
            for (at, _) in lower.match_indices(needle.as_str()) {
                let end = at + needle.len();
                let word = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
                if anywhere
                    || (word(lower[..at].chars().next_back()) && word(lower[end..].chars().next()))
                {
                    masked[at..end].iter_mut().for_each(|m| *m = true);
                }
            }
        }
        let mut out = String::with_capacity(text.len());
        let mut in_mask = false;
        for (i, c) in text.char_indices() {
            match (masked[i], in_mask) {
                (true, false) => out.push_str(REDACTED),
                (true, true) => {}
                (false, _) => out.push(c),
            }
            in_mask = masked[i];
        }
        sanitize(&out)
    }
}

/// What answers a request in unit tests: the status and body, or a network error.
#[cfg(test)]
pub(crate) type FakeServer = dyn Fn(&HttpRequest) -> Result<(u16, Vec<u8>)> + Send + Sync;

#[derive(Clone)]
enum Transport {
    Real(reqwest::Client),
    #[cfg(test)]
    Fake(Arc<FakeServer>),
}

/// The HTTP client used for every call to a server: real (reqwest), or a closure in unit tests.
#[derive(Clone)]
pub(crate) struct Http {
    transport: Transport,
    timeout: Duration,
}

impl Http {
    /// A real client with the timeouts of the process's environment (`GEMAUTH_CONNECT_TIMEOUT`,
    /// `GEMAUTH_TIMEOUT`).
    pub(crate) fn new() -> Result<Self> {
        Self::from_env(|name| std::env::var(name).ok(), None)
    }

    /// A real client with the timeouts the environment `var` sets; `connect` overrides the
    /// connect timeout (the metadata server must answer fast or not at all).
    pub(crate) fn from_env(
        var: impl Fn(&str) -> Option<String>,
        connect: Option<Duration>,
    ) -> Result<Self> {
        let secs = |name: &str, default: u64| {
            var(name)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v > 0.0)
                .map_or(Duration::from_secs(default), Duration::from_secs_f64)
        };
        let connect = connect.unwrap_or_else(|| secs(ENV_CONNECT_TIMEOUT, 10));
        let extra_roots = extra_roots(&var)?;
        Self::with_timeouts(connect, secs(ENV_TIMEOUT, 30), extra_roots)
    }

    /// A real client with these timeouts (connecting, and one whole operation), trusting
    /// `extra_roots` besides the platform's certificate authorities.
    fn with_timeouts(
        connect: Duration,
        timeout: Duration,
        extra_roots: Vec<CertificateDer<'static>>,
    ) -> Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect)
            .timeout(timeout)
            .user_agent(concat!("gemauth/", env!("CARGO_PKG_VERSION")))
            .tls_backend_preconfigured(tls_config(extra_roots)?)
            .build()
            .map_err(|e| Error::Internal(format!("cannot build the HTTP client: {e}")))?;
        Ok(Http {
            transport: Transport::Real(client),
            timeout,
        })
    }

    /// A client whose every request is answered by `server` (unit tests: no network).
    #[cfg(test)]
    pub(crate) fn fake(
        server: impl Fn(&HttpRequest) -> Result<(u16, Vec<u8>)> + Send + Sync + 'static,
    ) -> Self {
        Http {
            transport: Transport::Fake(Arc::new(server)),
            // Room for one retry after the first backoff (one second), not for two.
            timeout: Duration::from_millis(1500),
        }
    }

    /// POSTs a form and returns the status and (capped) body.
    pub(crate) async fn post_form(
        &self,
        url: &Url,
        form: &[(&str, &str)],
    ) -> Result<(u16, Vec<u8>)> {
        self.send(&HttpRequest::form(url, form)).await
    }

    /// Sends a request and returns the status and (capped) body. Retries 408, 429, 5xx and OAuth
    /// `temporarily_unavailable`/`server_error` with backoff, within the overall timeout.
    pub(crate) async fn send(&self, request: &HttpRequest) -> Result<(u16, Vec<u8>)> {
        let deadline = Instant::now() + self.timeout;
        let endpoint = endpoint_name(&request.url);
        let mut attempt = 1;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let (status, retry_after, body) = self.attempt(request, &endpoint, remaining).await?;
            tracing::debug!(%endpoint, attempt, status, "request answered");
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

    /// Sends a request once: its status, its `Retry-After` and its (capped) body.
    async fn attempt(
        &self,
        request: &HttpRequest,
        endpoint: &str,
        remaining: Duration,
    ) -> Result<(u16, Option<Duration>, Vec<u8>)> {
        let answer = self.exchange(request, endpoint, remaining).await?;
        let retry_after = answer
            .header(reqwest::header::RETRY_AFTER.as_str())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Ok((answer.status, retry_after, answer.body))
    }

    /// Sends a request once, without retries, and returns the whole answer with its headers
    /// (`status --check` reads `Date` and `WWW-Authenticate`).
    pub(crate) async fn send_once(&self, request: &HttpRequest) -> Result<Answer> {
        let endpoint = endpoint_name(&request.url);
        self.exchange(request, &endpoint, self.timeout).await
    }

    /// One request and its answer.
    async fn exchange(
        &self,
        request: &HttpRequest,
        endpoint: &str,
        remaining: Duration,
    ) -> Result<Answer> {
        // Without the test-only fake, the match has one arm.
        #[allow(clippy::infallible_destructuring_match)]
        let client = match &self.transport {
            Transport::Real(client) => client,
            #[cfg(test)]
            Transport::Fake(server) => {
                return server(request).map(|(status, body)| Answer {
                    status,
                    headers: Vec::new(),
                    body,
                });
            }
        };
        let mut builder = match request.method {
            Method::Get => client.get(request.url.clone()),
            Method::Post => client.post(request.url.clone()),
            Method::Put => client.put(request.url.clone()),
        };
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(token) = &request.bearer {
            builder = builder.bearer_auth(token);
        }
        if let Some((user, password)) = &request.basic {
            builder = builder.basic_auth(user, Some(password));
        }
        builder = match &request.body {
            Body::Empty => builder,
            Body::Form(pairs) => builder.form(pairs),
            Body::Json(value) => builder.json(value),
        };
        let response = builder
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(remaining.max(Duration::from_millis(1)))
            .send()
            .await
            .map_err(|e| network_error(endpoint, e))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
            .collect();
        let body = read_capped(response, endpoint, status).await?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

/// A server's answer: its status, its headers (those that are text) and its (capped) body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    /// Header names in lowercase, as HTTP/2 and reqwest give them.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    /// The first value of a header, by its lowercase name.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Environment variables naming PEM files of certificate authorities trusted besides the
/// platform's: gcloud's (`core/custom_ca_certs_file`), and OpenSSL's, read on every platform
/// (on Linux, as for OpenSSL, `SSL_CERT_FILE` and `SSL_CERT_DIR` also take the place of the
/// system bundle in the platform verifier).
pub(crate) const ENV_CA_FILES: [&str; 2] = ["CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE", "SSL_CERT_FILE"];

/// The certificates of the CA files the environment names ([`ENV_CA_FILES`]), each read with a
/// bounded read; an unreadable file, or one without a certificate, is an error naming the
/// variable.
fn extra_roots(var: &impl Fn(&str) -> Option<String>) -> Result<Vec<CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = Vec::new();
    for name in ENV_CA_FILES {
        let Some(path) = var(name).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        let bad = |problem: String| Error::CaFile {
            variable: name,
            path: std::path::PathBuf::from(&path),
            problem,
        };
        let bytes = crate::store::read_bounded(std::path::Path::new(&path))
            .map_err(|problem| bad(format!("it {problem}")))?;
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(&bytes) {
            roots.push(cert.map_err(|_| bad("it holds a malformed PEM certificate".into()))?);
            found += 1;
        }
        if found == 0 {
            return Err(bad(
                "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
            ));
        }
    }
    Ok(roots)
}

/// TLS as reqwest would set it up, with gemauth's own crypto provider (ring) passed in rather
/// than installed process-wide, so that a program using the library keeps its own choice. Server
/// certificates are checked against the platform's roots (on Linux the system bundle, or
/// `SSL_CERT_FILE` / `SSL_CERT_DIR`) and `extra_roots` (the CA files of [`ENV_CA_FILES`]).
fn tls_config(extra_roots: Vec<CertificateDer<'static>>) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = if extra_roots.is_empty() {
        rustls_platform_verifier::Verifier::new(provider.clone())
    } else {
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider.clone())
    }
    .map_err(|e| Error::Internal(format!("cannot load the TLS root certificates: {e}")))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("cannot configure TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
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
            Err(e) => return Err(network_error(endpoint, e)),
        }
    }
}

/// A request that got no answer; the reqwest error stays the error's source.
fn network_error(endpoint: &str, e: reqwest::Error) -> Error {
    let what = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    // The error's source chain names the cause (refused, DNS, TLS) and never carries the form.
    let mut detail = what;
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail = format!("{detail}: {s}");
        source = s.source();
    }
    Error::Network {
        endpoint: endpoint.to_string(),
        detail: sanitize(&detail),
        // The URL is the endpoint's, named above without its user name, password or query; the
        // kept error must not carry them either.
        source: Some(Box::new(e.without_url())),
    }
}

/// What kind of error body an endpoint answers with, for [`failure`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum ErrorBody<'a> {
    /// An OAuth 2.0 error (`{"error", "error_description"}`; RFC 6749 5.2).
    OAuth,
    /// A Google API error (`{"error": {"code", "message", "status"}}`); 401 and 403 mean the
    /// credential was refused.
    GoogleApi,
    /// No error format: the body is described as not being what was expected.
    Plain(&'a str),
}

/// The one mapping from an HTTP answer that is not a success to a typed error.
/// Every text taken from the body is cleaned by `sent`: the secrets the request carried are
/// masked wherever the server echoed them.
pub(crate) fn failure(
    endpoint: &str,
    status: u16,
    body: &[u8],
    kind: ErrorBody,
    sent: &Sent,
) -> Error {
    match kind {
        ErrorBody::OAuth => oauth_error(endpoint, status, body, sent),
        ErrorBody::GoogleApi => google_api_error(endpoint, status, body, sent),
        ErrorBody::Plain(problem) => Error::Server {
            endpoint: endpoint.to_string(),
            status,
            detail: describe_body(body, problem),
        },
    }
}

/// `Ok` for a 2xx answer, else the error [`failure`] maps it to.
pub(crate) fn success(
    endpoint: &str,
    status: u16,
    body: &[u8],
    kind: ErrorBody,
    sent: &Sent,
) -> Result<()> {
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(failure(endpoint, status, body, kind, sent))
    }
}

/// A 2xx answer's body that does not hold what was expected.
pub(crate) fn unexpected(endpoint: &str, status: u16, detail: String) -> Error {
    Error::Server {
        endpoint: endpoint.to_string(),
        status,
        detail,
    }
}

fn google_api_error(endpoint: &str, status: u16, body: &[u8], sent: &Sent) -> Error {
    let parsed: Option<(String, String)> =
        serde_json::from_slice::<Value>(body).ok().and_then(|v| {
            let e = v.get("error")?;
            let code = e
                .get("status")
                .and_then(Value::as_str)
                .or_else(|| e.as_str())
                .unwrap_or("error")
                .to_string();
            let message = e
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| v.get("error_description").and_then(Value::as_str))
                .unwrap_or_default()
                .to_string();
            Some((code, message))
        });
    match parsed {
        Some((code, message)) if status == 401 || status == 403 => Error::Rejected {
            endpoint: endpoint.to_string(),
            error: sent.clean(&code),
            description: Some(sent.clean(&message)).filter(|m| !m.is_empty()),
            by: None,
        },
        Some((code, message)) => Error::Server {
            endpoint: endpoint.to_string(),
            status,
            detail: sent.clean(format!("{code} {message}").trim()),
        },
        None => Error::Server {
            endpoint: endpoint.to_string(),
            status,
            detail: describe_body(body, "is not a Google API error"),
        },
    }
}

/// A successful token endpoint response.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenResponse {
    pub access_token: Secret<String>,
    #[serde(default)]
    pub token_type: Option<String>,
    #[serde(default)]
    pub expires_in: Option<Value>,
    #[serde(default)]
    pub refresh_token: Option<Secret<String>>,
    #[serde(default)]
    pub scope: Option<String>,
    /// An OpenID Connect ID token (the account's email at login, the token itself for
    /// `print-identity-token`).
    #[serde(default)]
    pub id_token: Option<Secret<String>>,
}

impl TokenResponse {
    /// Lifetime in seconds (`expires_in` may be a number or a numeric string); one hour when
    /// the server does not say, and never more than [`MAX_LIFETIME_SECS`].
    pub(crate) fn lifetime(&self) -> u64 {
        let secs = match &self.expires_in {
            Some(Value::Number(n)) => n.as_u64().unwrap_or(3600),
            Some(Value::String(s)) => s.trim().parse().unwrap_or(3600),
            _ => 3600,
        };
        secs.min(MAX_LIFETIME_SECS)
    }

    /// The access token as cached: obtained at `now`, expiring after its lifetime, with the
    /// scopes the server listed (else `fallback_scopes`).
    pub(crate) fn cached_at(&self, now: u64, fallback_scopes: Vec<String>) -> CachedToken {
        CachedToken::access(
            self.access_token.clone(),
            self.token_type.clone().unwrap_or_else(|| "Bearer".into()),
            now,
            now.saturating_add(self.lifetime()),
            self.granted_scopes().unwrap_or(fallback_scopes),
        )
    }

    /// [`TokenResponse::cached_at`] the system clock's now (a login).
    pub(crate) fn to_cached(&self, fallback_scopes: Vec<String>) -> CachedToken {
        self.cached_at(crate::clock::Clock::System.now(), fallback_scopes)
    }

    /// Granted scopes, when the server listed them.
    pub(crate) fn granted_scopes(&self) -> Option<Vec<String>> {
        self.scope
            .as_ref()
            .map(|s| s.split_whitespace().map(str::to_string).collect())
    }

    /// The scopes a login obtained: the response's `scope` (all requested ones when absent), plus
    /// the OpenID scopes the ID token itself proves: `openid` when an ID token came back, and the
    /// requested email scope when it carries an email. Some servers list in `scope` only the
    /// access token's scopes for its API and leave those out.
    pub(crate) fn granted_for(&self, requested: &[String]) -> Vec<String> {
        use crate::rules::scope_granted;
        let mut granted = self.granted_scopes().unwrap_or_else(|| requested.to_vec());
        let has_email = self.email().is_some();
        for scope in requested {
            let proven = match scope.as_str() {
                "openid" => self.id_token.is_some(),
                s => has_email && scope_granted(s, &["email".to_string()]),
            };
            if proven && !scope_granted(scope, &granted) {
                granted.push(scope.clone());
            }
        }
        granted
    }

    /// The `email` claim of the ID token. The token came straight from the token endpoint over
    /// a checked connection, so its signature need not be verified to read a display name
    /// (OpenID Connect Core 3.1.3.7).
    pub(crate) fn email(&self) -> Option<String> {
        jwt_claims(self.id_token.as_ref()?.expose())
            .ok()?
            .get("email")?
            .as_str()
            .map(sanitize)
            .filter(|s| !s.is_empty())
    }
}

/// The claims (payload) of a JWT, read without checking its signature; the error says what the
/// token is not.
pub(crate) fn jwt_claims(token: &str) -> std::result::Result<Value, &'static str> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return Err("is not a signed JWT (three dot-separated parts)");
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1].trim_end_matches('='))
        .map_err(|_| "payload is not base64url")?;
    serde_json::from_slice(&bytes).map_err(|_| "payload is not JSON")
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
    sent: &Sent,
) -> Result<TokenResponse> {
    success(endpoint, status, body, ErrorBody::OAuth, sent)?;
    let mut response = serde_json::from_slice::<TokenResponse>(body).map_err(|_| {
        unexpected(
            endpoint,
            status,
            describe_body(body, "is not a token response (no access_token)"),
        )
    })?;
    if !plausible_access_token(response.access_token.expose()) {
        return Err(unexpected(
            endpoint,
            status,
            "the access_token is empty or holds spaces or control characters".into(),
        ));
    }
    // An empty refresh token is no refresh token.
    response.refresh_token = response
        .refresh_token
        .filter(|t| !t.expose().trim().is_empty());
    Ok(response)
}

/// Turns the token endpoint's answer to an ID token request (a JWT-bearer grant whose assertion
/// names a `target_audience`: `{"id_token": …}` and no access token) into the ID token or a typed
/// error.
pub(crate) fn parse_id_token_response(
    endpoint: &str,
    status: u16,
    body: &[u8],
    sent: &Sent,
) -> Result<Secret<String>> {
    #[derive(Deserialize)]
    struct IdTokenResponse {
        id_token: Secret<String>,
    }
    success(endpoint, status, body, ErrorBody::OAuth, sent)?;
    serde_json::from_slice::<IdTokenResponse>(body)
        .map(|r| r.id_token)
        .map_err(|_| {
            unexpected(
                endpoint,
                status,
                describe_body(body, "is not an ID token response (no id_token)"),
            )
        })
}

fn oauth_error(endpoint: &str, status: u16, body: &[u8], sent: &Sent) -> Error {
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
        .map(|d| sent.clean(d))
        .filter(|d| !d.is_empty());
    let error = sent.clean(&err.error);
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
            by: None,
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
    match serde_json::from_slice::<Value>(body) {
        Ok(_) => format!("the JSON body {problem}"),
        Err(_) => format!("the body is not JSON and {problem}"),
    }
}

/// Exchanges an authorization code (with its PKCE verifier) for tokens; client_secret_post.
pub(crate) async fn exchange_code(
    http: &Http,
    token_uri: &Url,
    client_id: &str,
    client_secret: &Secret<String>,
    code: &AuthorizationCode,
    verifier: &PkceCodeVerifier,
    redirect_uri: &str,
) -> Result<TokenResponse> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.secret().as_str()),
        ("redirect_uri", redirect_uri),
        ("client_id", client_id),
        ("client_secret", client_secret.expose().as_str()),
        ("code_verifier", verifier.secret().as_str()),
    ];
    let (status, body) = http.post_form(token_uri, &form).await?;
    parse_token_response(&endpoint_name(token_uri), status, &body, &Sent::form(&form))
}

/// Obtains a new access token with the refresh-token grant; client_secret_post.
pub(crate) async fn refresh(
    http: &Http,
    token_uri: &Url,
    client_id: &str,
    client_secret: &Secret<String>,
    refresh_token: &Secret<String>,
) -> Result<TokenResponse> {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose().as_str()),
        ("client_id", client_id),
        ("client_secret", client_secret.expose().as_str()),
    ];
    let (status, body) = http.post_form(token_uri, &form).await?;
    parse_token_response(&endpoint_name(token_uri), status, &body, &Sent::form(&form))
}

/// How the revocation endpoint answered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Revocation {
    /// The grant was revoked now.
    Revoked,
    /// The server did not know the token: it had already been revoked or had expired.
    AlreadyInvalid,
}

/// Revokes a token (RFC 7009). Google answers `400 invalid_token` for one already revoked.
pub(crate) async fn revoke(
    http: &Http,
    revoke_uri: &Url,
    client_id: &str,
    client_secret: &Secret<String>,
    token: &Secret<String>,
) -> Result<Revocation> {
    // RFC 7009 2.1: the client authenticates as at the token endpoint (client_secret_post).
    let form = [
        ("token", token.expose().as_str()),
        ("token_type_hint", "refresh_token"),
        ("client_id", client_id),
        ("client_secret", client_secret.expose().as_str()),
    ];
    let (status, body) = http.post_form(revoke_uri, &form).await?;
    revocation(revoke_uri, status, &body, &Sent::form(&form))
}

/// What a revocation endpoint's answer means: `400 invalid_token` is a token already revoked or
/// expired, any other failure goes through the one error mapping.
pub(crate) fn revocation(
    revoke_uri: &Url,
    status: u16,
    body: &[u8],
    sent: &Sent,
) -> Result<Revocation> {
    match serde_json::from_slice::<OAuthError>(body) {
        Ok(e) if status == 400 && e.error == "invalid_token" => Ok(Revocation::AlreadyInvalid),
        _ => success(
            &endpoint_name(revoke_uri),
            status,
            body,
            ErrorBody::OAuth,
            sent,
        )
        .map(|()| Revocation::Revoked),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn token_errors_are_classified() {
        let body = br#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#;
        let e = parse_token_response("https://t/token", 400, body, &Sent::default()).unwrap_err();
        assert!(matches!(e, Error::Rejected { .. }), "{e:?}");
        let body = br#"{"error":"invalid_grant","error_subtype":"invalid_rapt"}"#;
        let e = parse_token_response("https://t/token", 400, body, &Sent::default()).unwrap_err();
        assert!(matches!(e, Error::ReauthRequired { .. }), "{e:?}");
        let e = parse_token_response(
            "https://t/token",
            502,
            b"<html>bad gateway</html>",
            &Sent::default(),
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("HTTP 502") && msg.contains("HTML"), "{msg}");
        let e = parse_token_response(
            "https://t/token",
            200,
            br#"{"token_type":"Bearer"}"#,
            &Sent::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("no access_token"), "{e}");
        let e = parse_token_response("https://t/token", 200, b"", &Sent::default()).unwrap_err();
        assert!(e.to_string().contains("empty response body"), "{e}");
    }

    #[test]
    fn email_is_read_from_the_id_token() {
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"email":"dev@example.com"}"#);
        let body =
            format!(r#"{{"access_token":"a","id_token":"e30.{claims}.sig","expires_in":"60"}}"#);
        let t = parse_token_response("e", 200, body.as_bytes(), &Sent::default()).unwrap();
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
        let t = parse_token_response("e", 200, body.as_bytes(), &Sent::default()).unwrap();
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

    #[test]
    fn every_kind_of_error_body_maps_to_one_error() {
        let oauth = |status, body: &str| {
            failure(
                "e",
                status,
                body.as_bytes(),
                ErrorBody::OAuth,
                &Sent::default(),
            )
        };
        for code in ["invalid_grant", "invalid_client", "unauthorized_client"] {
            let body = format!(r#"{{"error":"{code}","error_description":"why"}}"#);
            let e = oauth(400, &body);
            assert!(
                matches!(&e, Error::Rejected { error, description: Some(d), by: None, .. }
                    if error == code && d == "why"),
                "{e:?}"
            );
        }
        let e = oauth(
            400,
            r#"{"error":"invalid_scope","error_description":"bad"}"#,
        );
        assert_eq!(e.to_string(), "e answered HTTP 400: invalid_scope (bad)");
        let e = oauth(400, "[]");
        assert!(
            e.to_string().contains("is not an OAuth error response"),
            "{e}"
        );

        let google = |status, body: &str| {
            failure(
                "e",
                status,
                body.as_bytes(),
                ErrorBody::GoogleApi,
                &Sent::default(),
            )
        };
        let denied = r#"{"error":{"code":403,"status":"PERMISSION_DENIED","message":"no\nway"}}"#;
        let e = google(403, denied);
        assert!(
            matches!(&e, Error::Rejected { error, description: Some(d), .. }
                if error == "PERMISSION_DENIED" && d == "noway"),
            "{e:?}"
        );
        let e = google(500, r#"{"error":{"status":"INTERNAL","message":"oops"}}"#);
        assert_eq!(e.to_string(), "e answered HTTP 500: INTERNAL oops");
        assert!(e.is_retryable());
        let e = google(404, "<html>");
        assert!(e.to_string().contains("is not a Google API error"), "{e}");

        let e = failure(
            "e",
            404,
            b"secret-body",
            ErrorBody::Plain("is not a subject token"),
            &Sent::default(),
        );
        assert!(!e.to_string().contains("secret-body"), "{e}");
        assert!(e.to_string().contains("is not a subject token"), "{e}");
        assert!(success("e", 204, b"", ErrorBody::OAuth, &Sent::default()).is_ok());
    }

    #[test]
    fn the_secrets_a_request_sent_are_masked_in_every_text_of_the_answer() {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", "1//planted refresh+token"),
            ("client_id", "id.apps"),
            ("client_secret", "GOCSPX-planted"),
        ];
        let sent = Sent::form(&form);
        let body = json!({"error": "invalid_request", "error_description":
            "saw refresh_token=1%2F%2Fplanted+refresh%2btoken&client_secret=gocspx-PLANTED \
             1//planted refresh+tok\u{200B}en \n 1\\/\\/planted refresh+token client_id=id.apps"})
        .to_string();
        let e = failure("e", 400, body.as_bytes(), ErrorBody::OAuth, &sent);
        let text = format!("{e} {e:?}");
        for leak in ["planted", "PLANTED"] {
            assert!(!text.contains(leak), "{text}");
        }
        // What is not secret stays: the error code and the client ID.
        assert!(
            text.contains("invalid_request") && text.contains("id.apps"),
            "{text}"
        );
        assert!(text.contains(REDACTED), "{text}");
        // A short value is masked only as a whole word.
        let short = Sent::secrets(["abc"]);
        assert_eq!(
            short.clean("abc abcdef (abc)"),
            "[redacted] abcdef ([redacted])"
        );
        // Bearer and Basic credentials and header values are secrets too; Metadata-Flavor is not.
        let url = Url::parse("http://127.0.0.1:1/").unwrap();
        let request = HttpRequest::get(&url)
            .header("Metadata-Flavor", "Google")
            .header("X-Api-Key", "planted-header")
            .bearer("ya29.planted")
            .basic("user", "planted-password");
        let basic = base64::engine::general_purpose::STANDARD.encode("user:planted-password");
        let text = Sent::of(&request).clean(&format!(
            "Google ya29.planted planted-header planted-password {basic}"
        ));
        assert_eq!(text, "Google [redacted] [redacted] [redacted] [redacted]");
        assert!(!format!("{:?}", Sent::of(&request)).contains("planted"));
    }

    proptest::proptest! {
        /// Any secret sent, embedded anywhere in any answer body, in any of the forms a server
        /// could echo it, at any status, never appears in the error's Display nor its Debug.
        #[test]
        fn no_echoed_secret_reaches_an_error(
            secret in "[A-Za-z0-9/+=._~ -]{8,40}",
            before in "[ -~]{0,30}",
            after in "[ -~]{0,30}",
            encoding in 0..5usize,
            shape in 0..5usize,
            status in proptest::sample::select(vec![200u16, 400, 401, 403, 404, 429, 500, 503]),
        ) {
            proptest::prop_assume!(secret.trim().len() >= 8);
            let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
            let echoed = match encoding {
                0 => secret.clone(),
                1 => form.clone(),
                2 => form.replace('+', "%20").to_ascii_lowercase(),
                3 => secret.to_ascii_uppercase(),
                _ => secret.replace('/', "\\/"),
            };
            let text = format!("{before}{echoed}{after}");
            let body = match shape {
                0 => json!({"error": text, "error_description": text}).to_string(),
                1 => json!({"error": "invalid_grant", "error_description": text}).to_string(),
                2 => json!({"error": {"code": status, "status": text, "message": text}}).to_string(),
                3 => json!({"error": text}).to_string(),
                _ => text.clone(),
            };
            let sent = Sent::form(&[("refresh_token", secret.as_str()), ("client_id", "id")]);
            for kind in [ErrorBody::OAuth, ErrorBody::GoogleApi, ErrorBody::Plain("is not JSON")] {
                let errors = [
                    failure("https://e/token", status, body.as_bytes(), kind, &sent),
                    match parse_token_response("https://e/token", status, body.as_bytes(), &sent) {
                        Ok(_) => continue,
                        Err(e) => e,
                    },
                ];
                for e in errors {
                    let shown = format!("{e}\n{e:?}");
                    for form in [&secret, &form, &secret.to_ascii_uppercase()] {
                        proptest::prop_assert!(
                            !shown.contains(form.as_str()),
                            "{:?} in {}", form, shown
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_transient_answer_is_retried_and_a_refusal_is_not() {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = calls.clone();
        let http = Http::fake(move |_| {
            let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(if n == 0 {
                (503, b"busy".to_vec())
            } else {
                (200, br#"{"access_token":"a"}"#.to_vec())
            })
        });
        let url = Url::parse("http://127.0.0.1:1/token").unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (status, _) = runtime.block_on(http.post_form(&url, &[])).unwrap();
        assert_eq!(
            (status, calls.load(std::sync::atomic::Ordering::SeqCst)),
            (200, 2)
        );

        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = calls.clone();
        let http = Http::fake(move |_| {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok((400, br#"{"error":"invalid_grant"}"#.to_vec()))
        });
        let (status, _) = runtime.block_on(http.post_form(&url, &[])).unwrap();
        assert_eq!(
            (status, calls.load(std::sync::atomic::Ordering::SeqCst)),
            (400, 1)
        );
    }

    #[test]
    fn a_network_error_keeps_its_cause() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // A port nothing listens on: connection refused, from the real client.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        drop(listener);
        let http = Http::from_env(|_| None, None).unwrap();
        let e = runtime
            .block_on(http.send(&HttpRequest::get(&url)))
            .unwrap_err();
        assert!(matches!(e, Error::Network { .. }), "{e:?}");
        assert!(e.is_retryable());
        assert!(
            std::error::Error::source(&e).is_some(),
            "the reqwest error is kept"
        );
    }

    #[test]
    fn ca_files_of_either_variable_are_added_and_bad_ones_named() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, format!("{}{}", ca.pem(), ca.pem())).unwrap();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").unwrap();
        let env = |pairs: Vec<(&'static str, std::path::PathBuf)>| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string_lossy().into_owned())
            }
        };
        assert!(extra_roots(&env(vec![])).unwrap().is_empty());
        let both = env(vec![
            ("CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE", good.clone()),
            ("SSL_CERT_FILE", good.clone()),
        ]);
        let roots = extra_roots(&both).unwrap();
        assert_eq!(roots.len(), 4);
        // Wine's crypt32 refuses the chain engine with extra roots that the Windows verifier
        // builds ("Invalid parameter"): under Wine (CI's Windows run sets WINEPREFIX) this is
        // left to a real Windows (the GitHub workflow's windows job).
        let under_wine = cfg!(windows) && std::env::var_os("WINEPREFIX").is_some();
        if !under_wine && let Err(e) = tls_config(roots) {
            panic!("the CA files are not usable: {e}");
        }
        for (variable, file, problem) in [
            ("SSL_CERT_FILE", garbage.clone(), "holds no PEM certificate"),
            (
                "CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE",
                dir.path().join("missing.pem"),
                "cannot use it",
            ),
        ] {
            let e = extra_roots(&env(vec![(variable, file)])).unwrap_err();
            let text = e.to_string();
            assert!(text.starts_with(&format!("{variable}=")), "{text}");
            assert!(text.contains(problem), "{text}");
            assert!(!text.contains("not a certificate"), "{text}");
        }
    }
}
