//! File formats and the one credential model: Google's Desktop OAuth client JSON
//! (`client_secret.json`), every Application Default Credentials type (`Credential`, its type
//! table and cache keys; google-auth's `token.json` read as `authorized_user`), endpoint, scope
//! and project-ID rules.

use std::path::{Path, PathBuf};

use oauth2::{ClientSecret, RefreshToken};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::store;

/// Google's OAuth 2.0 token endpoint, used when a credential file names none (gcloud's files).
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Google's OAuth 2.0 revocation endpoint (RFC 7009).
pub const GOOGLE_REVOKE_URI: &str = "https://oauth2.googleapis.com/revoke";
/// The universe (domain) of Google's public cloud.
pub const DEFAULT_UNIVERSE: &str = "googleapis.com";
/// The `type` of a user credential file.
pub const AUTHORIZED_USER: &str = "authorized_user";

const SCOPE_PREFIX: &str = "https://www.googleapis.com/auth/";

/// The scope used when a caller names none (and for the source of an impersonation).
pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Scopes requested when `--scopes` is not given.
pub const DEFAULT_SCOPES: &[&str] = &[
    "openid",
    "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/generative-language.retriever",
];

/// A Desktop ("installed") OAuth client as downloaded from the Google Cloud console.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub client_id: String,
    pub client_secret: ClientSecret,
    pub project_id: Option<String>,
    pub auth_uri: Url,
    pub token_uri: Url,
    pub revoke_uri: Url,
}

/// Reads and validates a client secret file. Nothing is written and no network is used.
pub fn load_client_config(path: &Path) -> Result<ClientConfig> {
    let problem = |p: String| Error::ClientSecretFile {
        path: path.to_path_buf(),
        problem: p,
    };
    let bytes = read_regular_file(path).map_err(problem)?;
    parse_client_config(path, &bytes)
}

/// Parses a client secret file's bytes; `path` is used only in error messages.
pub fn parse_client_config(path: &Path, bytes: &[u8]) -> Result<ClientConfig> {
    let problem = |p: String| Error::ClientSecretFile {
        path: path.to_path_buf(),
        problem: p,
    };
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| problem(format!("is not valid JSON ({e})")))?;
    let Value::Object(top) = value else {
        return Err(problem(
            "is not an OAuth client file (expected a JSON object)".into(),
        ));
    };
    let installed = match (top.get("installed"), top.get("web")) {
        (Some(Value::Object(o)), _) => o,
        (Some(_), _) => return Err(problem("\"installed\" is not a JSON object".into())),
        (None, Some(_)) => {
            return Err(problem(
                "is for a \"Web application\" OAuth client; gemauth needs a \"Desktop app\" client"
                    .into(),
            ));
        }
        (None, None) => {
            return Err(problem(
                "is not a Desktop OAuth client file (no \"installed\" object)".into(),
            ));
        }
    };
    let field = |name: &str| -> Result<String> {
        match installed.get(name) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            Some(Value::String(_)) => Err(problem(format!("\"installed.{name}\" is empty"))),
            Some(_) => Err(problem(format!("\"installed.{name}\" is not a string"))),
            None => Err(problem(format!("\"installed.{name}\" is missing"))),
        }
    };
    let optional = |name: &str| -> Result<Option<String>> {
        match installed.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => field(name).map(Some),
        }
    };
    let client_id = field("client_id")?;
    let client_secret = ClientSecret::new(field("client_secret")?);
    let auth_uri = endpoint("auth_uri", &field("auth_uri")?)?;
    let token_uri = endpoint("token_uri", &field("token_uri")?)?;
    let revoke_uri = endpoint(
        "revoke_uri",
        &optional("revoke_uri")?.unwrap_or_else(|| GOOGLE_REVOKE_URI.to_string()),
    )?;
    Ok(ClientConfig {
        client_id,
        client_secret,
        project_id: optional("project_id")?,
        auth_uri,
        token_uri,
        revoke_uri,
    })
}

/// Reads a whole credential or client file (bounded, regular files only, never blocking),
/// refusing an empty one.
pub(crate) fn read_regular_file(path: &Path) -> std::result::Result<Vec<u8>, String> {
    let bytes = store::read_bounded(path)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("is empty".into());
    }
    Ok(bytes)
}

/// Checks that an endpoint is https, or plain http on a loopback host (emulators and tests).
pub fn endpoint(name: &'static str, raw: &str) -> Result<Url> {
    // The URL is shown in the error without any user name or password it carries.
    let shown = match Url::parse(raw) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => crate::error::sanitize(raw),
    };
    let bad = |reason: &str| Error::Endpoint {
        name,
        url: shown.clone(),
        reason: reason.to_string(),
    };
    let url = Url::parse(raw).map_err(|e| bad(&format!("not a valid URL ({e})")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("it must not carry a user name or password"));
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(bad(
            "plain http is only allowed for 127.0.0.1, [::1] and localhost",
        )),
        _ => Err(bad("it must be an https URL")),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Expands `--scopes` (comma-separated; short names get Google's prefix) into full scope URLs.
pub fn resolve_scopes(spec: Option<&str>) -> Result<Vec<String>> {
    let Some(spec) = spec else {
        return Ok(DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect());
    };
    let mut scopes: Vec<String> = Vec::new();
    for part in spec
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let full = expand_scope(part)?;
        if !scopes.contains(&full) {
            scopes.push(full);
        }
    }
    if scopes.is_empty() {
        return Err(Error::Usage("--scopes names no scope".into()));
    }
    Ok(scopes)
}

fn expand_scope(scope: &str) -> Result<String> {
    if scope.contains("://") {
        return match Url::parse(scope) {
            Ok(u) if u.scheme() == "https" => Ok(scope.to_string()),
            _ => Err(Error::Usage(format!("scope {scope:?} is not an https URL"))),
        };
    }
    if matches!(scope, "openid" | "email" | "profile") {
        return Ok(scope.to_string());
    }
    let valid = scope
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'));
    if !valid || scope.starts_with('/') {
        return Err(Error::Usage(format!(
            "scope {scope:?} is neither a URL nor a short name like cloud-platform"
        )));
    }
    Ok(format!("{SCOPE_PREFIX}{scope}"))
}

/// True when `granted` covers `requested`, treating Google's aliases (`email` and
/// `…/auth/userinfo.email`, `profile` and `…/auth/userinfo.profile`) as the same scope.
pub fn scope_granted(requested: &str, granted: &[String]) -> bool {
    let canon = |s: &str| -> String {
        match s {
            "email" => format!("{SCOPE_PREFIX}userinfo.email"),
            "profile" => format!("{SCOPE_PREFIX}userinfo.profile"),
            other => other.to_string(),
        }
    };
    let want = canon(requested);
    granted.iter().any(|g| canon(g) == want)
}

/// The requested scopes that `granted` does not cover.
pub fn missing_scopes<'a>(requested: &'a [String], granted: &[String]) -> Vec<&'a str> {
    requested
        .iter()
        .filter(|s| !scope_granted(s, granted))
        .map(String::as_str)
        .collect()
}

/// Checks a project ID: lowercase letters, digits and hyphens (and the `domain.com:` prefix of
/// older projects), 6 to 63 characters in all, starting with a letter.
pub fn validate_project_id(project: &str) -> Result<()> {
    let id = project.rsplit(':').next().unwrap_or_default();
    let valid = (6..=63).contains(&project.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && !id.ends_with('-')
        && project
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | ':'));
    if valid {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{project:?} is not a Google Cloud project ID (lowercase letters, digits and hyphens, starting with a letter)"
        )))
    }
}

/// Scopes as stored: a JSON list (gemauth) or a space-separated string (some older tools).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Scopes {
    List(Vec<String>),
    Text(String),
}

impl Scopes {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Scopes::List(v) => v.clone(),
            Scopes::Text(s) => s.split_whitespace().map(str::to_string).collect(),
        }
    }
}

/// An `authorized_user` credential file, as read by Google's client libraries. Fields gemauth
/// does not know are kept in `extra` and written back unchanged. Its `Debug` shows only the
/// names of the `extra` fields: a google-auth `token.json` keeps a live access token there.
#[derive(Clone, Serialize, Deserialize)]
pub struct AuthorizedUser {
    /// `authorized_user`; empty for a google-auth `token.json` (`Credentials.to_json()`), which
    /// has no `type` field and is read as a user credential all the same.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    pub client_id: String,
    pub client_secret: ClientSecret,
    pub refresh_token: RefreshToken,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_project_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub universe_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Scopes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_uri: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl std::fmt::Debug for AuthorizedUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizedUser")
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("refresh_token", &self.refresh_token)
            .field("quota_project_id", &self.quota_project_id)
            .field("universe_domain", &self.universe_domain)
            .field("account", &self.account)
            .field("scopes", &self.scopes)
            .field("token_uri", &self.token_uri)
            .field("revoke_uri", &self.revoke_uri)
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl AuthorizedUser {
    /// The token endpoint to refresh at: the file's, else Google's.
    pub fn token_endpoint(&self) -> Result<Url> {
        endpoint(
            "token_uri",
            self.token_uri.as_deref().unwrap_or(GOOGLE_TOKEN_URI),
        )
    }

    /// The revocation endpoint: the file's, else Google's.
    pub fn revoke_endpoint(&self) -> Result<Url> {
        endpoint(
            "revoke_uri",
            self.revoke_uri.as_deref().unwrap_or(GOOGLE_REVOKE_URI),
        )
    }

    /// Serializes the file as written to disk (pretty JSON, trailing newline).
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// True for a google-auth `token.json`: a user credential file without a `type` field.
    pub fn is_token_json(&self) -> bool {
        self.kind.is_empty()
    }

    /// The access token a google-auth `token.json` saved beside the refresh token (`token` and
    /// `expiry`), with its expiry as Unix time, when it can be believed at `now`: a token that
    /// fits in a header, an `expiry` in google-auth's format (UTC), still ahead, and at most one
    /// hour away (Google's access tokens last an hour; a later one was not written by google-auth).
    pub fn saved_access_token(&self, now: u64) -> Option<(&str, u64)> {
        let token = self.extra.get("token")?.as_str()?;
        let expiry = parse_google_auth_expiry(self.extra.get("expiry")?.as_str()?)?;
        let plausible = crate::oauth::plausible_access_token(token)
            && expiry > now
            && expiry - now <= SAVED_TOKEN_MAX_LIFETIME_SECS;
        plausible.then_some((token, expiry))
    }
}

/// Longest remaining lifetime believed of an access token saved in a `token.json`: Google's
/// access tokens last an hour.
pub const SAVED_TOKEN_MAX_LIFETIME_SECS: u64 = 3600;

/// Parses the `expiry` google-auth writes (`datetime.isoformat() + "Z"` of a naive UTC time:
/// `2026-12-04T01:00:00Z` or `2026-12-04T01:00:00.123456Z`), with or without the `Z`, as UTC.
/// Offsets and other shapes are refused, as google-auth itself would refuse them.
pub fn parse_google_auth_expiry(text: &str) -> Option<u64> {
    let text = text.strip_suffix('Z').unwrap_or(text);
    let (seconds, fraction) = match text.split_once('.') {
        Some((s, f)) => (s, Some(f)),
        None => (text, None),
    };
    let shape_ok = seconds.len() == 19
        && seconds.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            _ => b.is_ascii_digit(),
        })
        && fraction
            .is_none_or(|f| (1..=9).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()));
    if !shape_ok {
        return None;
    }
    let at = humantime::parse_rfc3339(&format!("{seconds}Z")).ok()?;
    at.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// A PEM private key; its `Debug` is redacted.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct PrivateKeyPem(String);

impl PrivateKeyPem {
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKeyPem([redacted])")
    }
}

/// A value whose `Debug` is redacted (it may hold secrets: embedded credentials, headers).
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Redacted<T>(pub T);

impl<T> std::fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A `service_account` key file.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceAccount {
    pub client_email: String,
    pub private_key: PrivateKeyPem,
    #[serde(default)]
    pub private_key_id: Option<String>,
    #[serde(default)]
    pub token_uri: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub quota_project_id: Option<String>,
    #[serde(default)]
    pub universe_domain: Option<String>,
}

/// An `impersonated_service_account` file: the account to act as (its `source_credentials` are
/// parsed into [`Credential::Impersonated`]'s `source`).
#[derive(Debug, Clone, Deserialize)]
pub struct ImpersonatedServiceAccount {
    pub service_account_impersonation_url: String,
    #[serde(default)]
    pub delegates: Vec<String>,
    #[serde(default)]
    pub quota_project_id: Option<String>,
}

/// Where an `external_account` file reads its subject token.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct CredentialSource {
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub headers: Option<Redacted<std::collections::BTreeMap<String, String>>>,
    #[serde(default)]
    pub executable: Option<ExecutableSource>,
    #[serde(default)]
    pub format: Option<SubjectTokenFormat>,
    #[serde(default)]
    pub environment_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ExecutableSource {
    pub command: String,
    #[serde(default)]
    pub timeout_millis: Option<u64>,
    #[serde(default)]
    pub output_file: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SubjectTokenFormat {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub subject_token_field_name: Option<String>,
}

/// An `external_account` (workload or workforce identity federation) file.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ExternalAccount {
    pub audience: String,
    pub subject_token_type: String,
    pub token_url: String,
    pub credential_source: CredentialSource,
    #[serde(default)]
    pub service_account_impersonation_url: Option<String>,
    #[serde(default)]
    pub service_account_impersonation: Option<ImpersonationOptions>,
    #[serde(default)]
    pub workforce_pool_user_project: Option<String>,
    #[serde(default)]
    pub quota_project_id: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<ClientSecret>,
    #[serde(default)]
    pub universe_domain: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ImpersonationOptions {
    #[serde(default)]
    pub token_lifetime_seconds: Option<u64>,
}

/// The credential types, by the `type` name Google's libraries use for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialType {
    AuthorizedUser,
    ServiceAccount,
    Impersonated,
    External,
    /// Not a file: the metadata server of a Google Cloud machine.
    Metadata,
}

/// The one table of type names.
const TYPE_NAMES: [(CredentialType, &str); 5] = [
    (CredentialType::AuthorizedUser, AUTHORIZED_USER),
    (CredentialType::ServiceAccount, "service_account"),
    (CredentialType::Impersonated, "impersonated_service_account"),
    (CredentialType::External, "external_account"),
    (CredentialType::Metadata, "metadata_server"),
];

impl CredentialType {
    /// The `type` name.
    pub fn name(self) -> &'static str {
        TYPE_NAMES
            .iter()
            .find(|(t, _)| *t == self)
            .map_or("", |(_, name)| name)
    }

    /// The type a credential file's `type` field names (the metadata server has no file).
    fn of_file(name: &str) -> Option<Self> {
        TYPE_NAMES
            .iter()
            .find(|(t, n)| *n == name && *t != CredentialType::Metadata)
            .map(|(t, _)| *t)
    }
}

/// A credential: what a credential file holds (or the metadata server), ready to mint tokens
/// (`adc.rs`).
#[derive(Debug)]
pub enum Credential {
    User(Box<AuthorizedUser>),
    ServiceAccount {
        key: Box<ServiceAccount>,
        /// The key file, named in errors about the key.
        path: PathBuf,
    },
    Impersonated {
        file: Box<ImpersonatedServiceAccount>,
        source: Box<Credential>,
    },
    External {
        config: Box<ExternalAccount>,
        /// The configuration file, named in errors about its source.
        path: PathBuf,
    },
    Metadata {
        host: String,
    },
}

impl Credential {
    /// The credential's type.
    pub fn kind(&self) -> CredentialType {
        match self {
            Credential::User(_) => CredentialType::AuthorizedUser,
            Credential::ServiceAccount { .. } => CredentialType::ServiceAccount,
            Credential::Impersonated { .. } => CredentialType::Impersonated,
            Credential::External { .. } => CredentialType::External,
            Credential::Metadata { .. } => CredentialType::Metadata,
        }
    }

    /// The credential's `type`, as Google's libraries name it.
    pub fn type_name(&self) -> &'static str {
        self.kind().name()
    }

    /// Who the tokens act as, when the file says: the account's email, the service account, or
    /// the federation audience.
    pub fn identity(&self) -> Option<String> {
        match self {
            Credential::User(user) => user.account.clone(),
            Credential::ServiceAccount { key, .. } => Some(key.client_email.clone()),
            Credential::Impersonated { file, .. } => {
                impersonated_email(&file.service_account_impersonation_url)
            }
            Credential::External { config, .. } => Some(
                config
                    .service_account_impersonation_url
                    .as_deref()
                    .and_then(impersonated_email)
                    .unwrap_or_else(|| config.audience.clone()),
            ),
            Credential::Metadata { .. } => None,
        }
    }

    /// The project billed for quota, as the file names it.
    pub fn quota_project(&self) -> Option<String> {
        match self {
            Credential::User(user) => user.quota_project_id.clone(),
            Credential::ServiceAccount { key, .. } => key.quota_project_id.clone(),
            Credential::Impersonated { file, .. } => file.quota_project_id.clone(),
            Credential::External { config, .. } => config.quota_project_id.clone(),
            Credential::Metadata { .. } => None,
        }
    }

    /// The scopes to request: for a user, those asked for must have been granted at login (and
    /// the token carries all granted ones); for every other type, those asked for, by default
    /// `cloud-platform`.
    pub fn scopes(&self, requested: Option<&[String]>) -> Result<Vec<String>> {
        match (self, requested) {
            (Credential::User(user), Some(requested)) => {
                let granted = user.scopes.as_ref().map(|s| s.to_vec());
                if let Some(granted) = granted {
                    let missing = missing_scopes(requested, &granted);
                    if !missing.is_empty() {
                        return Err(Error::ScopesNotGranted {
                            missing: missing.join(" "),
                        });
                    }
                }
                Ok(Vec::new())
            }
            (Credential::User(_), None) => Ok(Vec::new()),
            (_, Some(requested)) => Ok(requested.to_vec()),
            (_, None) => Ok(vec![CLOUD_PLATFORM.to_string()]),
        }
    }

    /// The cache key of an ID token for `audience` (empty for a user credential, whose ID token's
    /// audience is its OAuth client): the credential's own key, with a marker that keeps ID token
    /// entries apart from access token entries, the audience and whether the email is included.
    pub fn id_token_cache_key(&self, audience: &str, include_email: bool) -> String {
        let email = if include_email { "email" } else { "" };
        store::hex_digest(&["id_token", &self.cache_key(&[]), audience, email])
    }

    /// The cache key: everything that decides which token this credential gets for `scopes`,
    /// so that another credential or another login never sees it.
    pub fn cache_key(&self, scopes: &[String]) -> String {
        let mut parts: Vec<String> = match self {
            Credential::User(user) => vec![
                user.client_id.clone(),
                user.refresh_token.secret().clone(),
                user.token_uri.clone().unwrap_or_default(),
            ],
            Credential::ServiceAccount { key, .. } => vec![
                "service_account".into(),
                key.client_email.clone(),
                hex(&Sha256::digest(key.private_key.secret().as_bytes())),
                key.token_uri.clone().unwrap_or_default(),
            ],
            Credential::Impersonated { file, source } => vec![
                "impersonated".into(),
                file.service_account_impersonation_url.clone(),
                file.delegates.join(","),
                source.cache_key(&[CLOUD_PLATFORM.to_string()]),
            ],
            // Everything in the file decides the token (its source, audience, pools, client).
            Credential::External { config, .. } => vec![
                "external_account".into(),
                serde_json::to_string(config).unwrap_or_default(),
            ],
            Credential::Metadata { host } => vec!["metadata".into(), host.clone()],
        };
        parts.extend(scopes.iter().cloned());
        store::hex_digest(&parts.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

/// The service account named in an IAM Credentials URL
/// (`…/serviceAccounts/NAME@PROJECT.iam.gserviceaccount.com:generateAccessToken`).
pub(crate) fn impersonated_email(url: &str) -> Option<String> {
    let tail = url.rsplit('/').next()?;
    let email = tail.split(':').next()?;
    email.contains('@').then(|| email.to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a credential file's bytes; `path` is used only in error messages.
pub fn parse_credential_file(path: &Path, bytes: &[u8]) -> Result<Credential> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| Error::CredentialFile {
        path: path.to_path_buf(),
        problem: format!("is not valid JSON ({e})"),
    })?;
    parse_credential(path, value, None)
}

/// Builds the errors about one credential file (or its nested `source_credentials`).
#[derive(Clone, Copy)]
struct FileProblem<'a> {
    path: &'a Path,
    within: Option<&'a str>,
}

impl FileProblem<'_> {
    fn error(self, problem: String) -> Error {
        Error::CredentialFile {
            path: self.path.to_path_buf(),
            problem: match self.within {
                Some(field) => format!("{field}: {problem}"),
                None => problem,
            },
        }
    }

    fn nonempty(self, name: &str, value: &str) -> Result<()> {
        if value.trim().is_empty() {
            return Err(self.error(format!("\"{name}\" is empty")));
        }
        Ok(())
    }

    fn typed<T: serde::de::DeserializeOwned>(self, map: Map<String, Value>) -> Result<T> {
        serde_json::from_value(Value::Object(map)).map_err(|e| self.error(format!("{e}")))
    }
}

/// Parses one credential from its JSON; `within` names the enclosing field for a nested source
/// (`source_credentials`), which is parsed here once, from the same value.
fn parse_credential(path: &Path, value: Value, within: Option<&str>) -> Result<Credential> {
    let problem = FileProblem { path, within };
    let Value::Object(map) = value else {
        return Err(problem.error("is not a JSON object".into()));
    };
    let kind = match map.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(_) => return Err(problem.error("\"type\" is not a string".into())),
        // google-auth's `token.json` has no type; from_authorized_user_info reads it as a user.
        None if within.is_none() && TOKEN_JSON_FIELDS.iter().all(|f| map.contains_key(*f)) => {
            AUTHORIZED_USER.to_string()
        }
        None => return Err(problem.error(no_type_problem(&map, within))),
    };
    // The quota project ends up in an HTTP header: it must be a project ID.
    if let Some(Value::String(project)) = map.get("quota_project_id")
        && !project.is_empty()
        && validate_project_id(project).is_err()
    {
        return Err(problem.error(format!(
            "quota_project_id {:?} is not a Google Cloud project ID",
            crate::error::sanitize(project)
        )));
    }
    match (CredentialType::of_file(&kind), within) {
        (Some(CredentialType::AuthorizedUser), _) => parse_user(map, problem),
        (Some(CredentialType::ServiceAccount), _) => parse_service_account(map, problem),
        (Some(CredentialType::External), _) => parse_external(map, problem),
        (Some(CredentialType::Impersonated), None) => parse_impersonated(map, problem),
        (_, Some(_)) => Err(problem.error(format!(
            "type {:?} cannot be impersonated from",
            crate::error::sanitize(&kind)
        ))),
        (_, None) => Err(Error::UnsupportedCredentialType {
            path: path.to_path_buf(),
            kind,
        }),
    }
}

/// The fields that make a file without `type` a user credential (google-auth's
/// `from_authorized_user_info` needs exactly these).
const TOKEN_JSON_FIELDS: [&str; 3] = ["client_id", "client_secret", "refresh_token"];

/// Why a file without `type` was not read; a file that looks like a google-auth `token.json`
/// is told what it lacks.
fn no_type_problem(map: &Map<String, Value>, within: Option<&str>) -> String {
    let missing: Vec<&str> = TOKEN_JSON_FIELDS
        .iter()
        .copied()
        .filter(|f| !map.contains_key(*f))
        .collect();
    let looks_like_token_json =
        missing.len() < TOKEN_JSON_FIELDS.len() || map.contains_key("token");
    if within.is_none() && looks_like_token_json {
        format!(
            "has no \"type\" field, and is not a google-auth token.json either (it lacks {})",
            missing.join(", ")
        )
    } else {
        "has no \"type\" field".into()
    }
}

fn parse_user(map: Map<String, Value>, problem: FileProblem) -> Result<Credential> {
    let user: AuthorizedUser = problem.typed(map)?;
    user.token_endpoint()?;
    user.revoke_endpoint()?;
    problem.nonempty("client_id", &user.client_id)?;
    problem.nonempty("client_secret", user.client_secret.secret())?;
    problem.nonempty("refresh_token", user.refresh_token.secret())?;
    Ok(Credential::User(Box::new(user)))
}

fn parse_service_account(map: Map<String, Value>, problem: FileProblem) -> Result<Credential> {
    let key: ServiceAccount = problem.typed(map)?;
    problem.nonempty("client_email", &key.client_email)?;
    problem.nonempty("private_key", key.private_key.secret())?;
    if let Some(uri) = &key.token_uri {
        endpoint("token_uri", uri)?;
    }
    Ok(Credential::ServiceAccount {
        key: Box::new(key),
        path: problem.path.to_path_buf(),
    })
}

fn parse_external(map: Map<String, Value>, problem: FileProblem) -> Result<Credential> {
    let config: ExternalAccount = problem.typed(map)?;
    problem.nonempty("audience", &config.audience)?;
    problem.nonempty("subject_token_type", &config.subject_token_type)?;
    problem.nonempty("token_url", &config.token_url)?;
    endpoint("token_url", &config.token_url)?;
    if let Some(url) = &config.service_account_impersonation_url {
        endpoint("service_account_impersonation_url", url)?;
    }
    Ok(Credential::External {
        config: Box::new(config),
        path: problem.path.to_path_buf(),
    })
}

fn parse_impersonated(mut map: Map<String, Value>, problem: FileProblem) -> Result<Credential> {
    let source = map.remove("source_credentials");
    let file: ImpersonatedServiceAccount = problem.typed(map)?;
    let url = &file.service_account_impersonation_url;
    problem.nonempty("service_account_impersonation_url", url)?;
    endpoint("service_account_impersonation_url", url)?;
    let source = source.ok_or_else(|| problem.error("\"source_credentials\" is missing".into()))?;
    let source = parse_credential(problem.path, source, Some("source_credentials"))?;
    Ok(Credential::Impersonated {
        file: Box::new(file),
        source: Box::new(source),
    })
}

/// Reads a credential file's bytes, with errors that name the file.
pub fn read_credential_file(path: &Path) -> Result<Vec<u8>> {
    read_regular_file(path).map_err(|problem| Error::CredentialFile {
        path: path.to_path_buf(),
        problem,
    })
}

/// Reads a credential file as a JSON object, after checking it like every loader does, so that
/// a rewrite keeps every field, known or not.
pub fn load_json_object(path: &Path) -> Result<Map<String, Value>> {
    let bytes = read_credential_file(path)?;
    parse_credential_file(path, &bytes)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Error::CredentialFile {
            path: path.to_path_buf(),
            problem: "is not a JSON object".into(),
        }),
    }
}

/// Loads an `authorized_user` file, refusing other credential types.
pub fn load_authorized_user(path: &Path) -> Result<AuthorizedUser> {
    let bytes = read_credential_file(path)?;
    match parse_credential_file(path, &bytes)? {
        Credential::User(user) => Ok(*user),
        other => Err(Error::UnsupportedCredentialType {
            path: path.to_path_buf(),
            kind: other.type_name().to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_scope_names_expand_and_duplicates_collapse() {
        let s = resolve_scopes(Some("cloud-platform, openid,cloud-platform,email")).unwrap();
        assert_eq!(
            s,
            vec![
                "https://www.googleapis.com/auth/cloud-platform",
                "openid",
                "email"
            ]
        );
        assert_eq!(resolve_scopes(None).unwrap().len(), 4);
        assert!(resolve_scopes(Some(",")).is_err());
        assert!(resolve_scopes(Some("http://x.example/a")).is_err());
        assert!(resolve_scopes(Some("bad scope!")).is_err());
    }

    #[test]
    fn endpoints_must_be_https_unless_loopback() {
        assert!(endpoint("token_uri", "https://oauth2.googleapis.com/token").is_ok());
        assert!(endpoint("token_uri", "http://127.0.0.1:8080/token").is_ok());
        assert!(endpoint("token_uri", "http://[::1]:8080/token").is_ok());
        assert!(endpoint("token_uri", "http://localhost/token").is_ok());
        assert!(endpoint("token_uri", "http://evil.example/token").is_err());
        assert!(endpoint("token_uri", "http://127.0.0.1.evil.example/token").is_err());
        assert!(endpoint("token_uri", "ftp://127.0.0.1/token").is_err());
        let e = endpoint("token_uri", "https://user:TOPSECRET@example.com/").unwrap_err();
        assert!(!e.to_string().contains("TOPSECRET"), "{e}");
        assert!(!e.to_string().contains("user:"), "{e}");
    }

    #[test]
    fn project_ids_are_checked() {
        for ok in ["my-project-123", "abcdef", "example.com:my-project"] {
            assert!(validate_project_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "short",
            "My-Project",
            "1project",
            "project-",
            "has space x",
            "a;rm -rf",
            "bad\nX-Evil: 1",
        ] {
            assert!(validate_project_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn impersonated_email_is_read_from_the_url() {
        assert_eq!(
            impersonated_email("https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateAccessToken").as_deref(),
            Some("sa@p.iam.gserviceaccount.com")
        );
        assert_eq!(impersonated_email("https://example.com/x"), None);
    }

    #[test]
    fn google_auth_expiry_is_read_as_utc_in_its_own_format() {
        // 2026-12-04T01:00:00Z
        let at = 1_796_346_000;
        for ok in [
            "2026-12-04T01:00:00Z",
            "2026-12-04T01:00:00",
            "2026-12-04T01:00:00.000000Z",
            "2026-12-04T01:00:00.999999",
        ] {
            assert_eq!(parse_google_auth_expiry(ok), Some(at), "{ok}");
        }
        for bad in [
            "",
            "2026-12-04",
            "2026-12-04 01:00:00Z",
            "2026-12-04T01:00:00+00:00",
            "2026-12-04T01:00:00.Z",
            "2026-12-04T01:00:00.1234567890Z",
            "2026-13-04T01:00:00Z",
            "2026-12-04T01:00:00ZZ",
            "x026-12-04T01:00:00Z",
        ] {
            assert_eq!(parse_google_auth_expiry(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_file_without_type_is_a_user_when_it_has_what_google_auth_needs() {
        let path = Path::new("token.json");
        let parse = |v: Value| parse_credential_file(path, v.to_string().as_bytes());
        let token_json = serde_json::json!({"client_id": "id", "client_secret": "s",
            "refresh_token": "r", "token": "ya29.t", "expiry": "2026-12-04T01:00:00Z"});
        let Ok(Credential::User(user)) = parse(token_json.clone()) else {
            panic!("not read as a user");
        };
        assert!(user.is_token_json());
        assert!(!user.to_json().windows(6).any(|w| w == b"\"type\""));
        let now = 1_796_346_000 - 1800;
        assert_eq!(
            user.saved_access_token(now),
            Some(("ya29.t", 1_796_346_000))
        );
        assert_eq!(user.saved_access_token(1_796_346_000 - 3601), None);
        assert_eq!(user.saved_access_token(1_796_346_000), None);

        let mut typed = token_json;
        typed["type"] = AUTHORIZED_USER.into();
        let Ok(Credential::User(user)) = parse(typed) else {
            panic!("not a user");
        };
        assert!(!user.is_token_json());

        let e = parse(serde_json::json!({"client_id": "id"})).unwrap_err();
        assert!(
            e.to_string().contains("lacks client_secret, refresh_token"),
            "{e}"
        );
        let e = parse(serde_json::json!({"private_key": "k"})).unwrap_err();
        assert!(e.to_string().ends_with("has no \"type\" field"), "{e}");
    }

    #[test]
    fn id_token_keys_differ_from_access_token_keys_and_by_audience() {
        let bytes = serde_json::json!({"type": "authorized_user", "client_id": "id",
            "client_secret": "s", "refresh_token": "r"})
        .to_string();
        let user = parse_credential_file(Path::new("c.json"), bytes.as_bytes()).unwrap();
        let keys = [
            user.cache_key(&[]),
            user.id_token_cache_key("", false),
            user.id_token_cache_key("https://a", false),
            user.id_token_cache_key("https://a", true),
            user.id_token_cache_key("https://b", false),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn email_aliases_count_as_granted() {
        let granted = vec!["https://www.googleapis.com/auth/userinfo.email".to_string()];
        assert!(scope_granted("email", &granted));
        assert!(!scope_granted("openid", &granted));
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn debug_output_redacts_every_secret() {
        let user = AuthorizedUser {
            kind: AUTHORIZED_USER.into(),
            client_id: "id".into(),
            client_secret: ClientSecret::new("planted-client-secret".into()),
            refresh_token: RefreshToken::new("planted-refresh-token".into()),
            quota_project_id: None,
            universe_domain: None,
            account: None,
            scopes: None,
            token_uri: None,
            revoke_uri: None,
            extra: [("token".to_string(), Value::from("planted-access-token"))]
                .into_iter()
                .collect(),
        };
        let client = ClientConfig {
            client_id: "id".into(),
            client_secret: ClientSecret::new("planted-client-secret".into()),
            project_id: None,
            auth_uri: Url::parse("https://a/").unwrap(),
            token_uri: Url::parse("https://a/").unwrap(),
            revoke_uri: Url::parse("https://a/").unwrap(),
        };
        let text = format!("{user:?} {client:?}");
        assert!(!text.contains("planted"), "{text}");
        assert!(text.contains("redacted"));
    }
}
