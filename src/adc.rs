//! Access tokens for every kind of Application Default Credentials: user refresh tokens,
//! service-account keys (a signed JWT), service-account impersonation, workload and workforce
//! identity federation (RFC 8693 token exchange), and the metadata server.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use oauth2::{AccessToken, RefreshToken};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::credentials::{
    self, AuthorizedUser, CLOUD_PLATFORM, Credential, CredentialSource, ExternalAccount,
    ServiceAccount,
};
use crate::error::{Error, Result, sanitize};
use crate::oauth::{self, Http, describe_body, endpoint_name};
use crate::store::{self, CachedToken};

/// The metadata server's address on Google Cloud.
pub const METADATA_IP: &str = "169.254.169.254";
/// Environment variable overriding the metadata server's host (and port).
pub const ENV_METADATA_HOST: &str = "GCE_METADATA_HOST";
/// Environment variable that, when true, keeps gemauth from looking for a metadata server.
pub const ENV_NO_GCE_CHECK: &str = "NO_GCE_CHECK";
/// Environment variable that must be `1` for executable-sourced external accounts.
pub const ENV_ALLOW_EXECUTABLES: &str = "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES";

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// A freshly minted token, and the new refresh token when the server rotated it. The token is a
/// `Result` because a rotation can happen before a later step fails (an impersonation whose
/// source was refreshed): the rotated refresh token must be saved either way.
pub struct Minted {
    pub token: Result<CachedToken>,
    pub rotated: Option<RefreshToken>,
}

/// A user credential's refresh-token grant: the answer, and the new refresh token when the
/// server rotated it (the same one again is no rotation).
pub(crate) async fn refresh_user(
    http: &Http,
    user: &AuthorizedUser,
) -> Result<(oauth::TokenResponse, Option<RefreshToken>)> {
    let token_uri = user.token_endpoint()?;
    let response = oauth::refresh(
        http,
        &token_uri,
        &user.client_id,
        &user.client_secret,
        &user.refresh_token,
    )
    .await?;
    let rotated = response
        .refresh_token
        .clone()
        .filter(|new| new.secret() != user.refresh_token.secret());
    Ok((response, rotated))
}

impl Credential {
    /// Obtains a new access token from the server.
    pub fn mint<'a>(
        &'a self,
        http: &'a Http,
        scopes: &'a [String],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Minted>> + Send + 'a>> {
        // Boxed: impersonation mints its source's token first (recursion).
        Box::pin(async move {
            match self {
                Credential::User(user) => {
                    let (response, rotated) = refresh_user(http, user).await?;
                    Ok(Minted {
                        token: Ok(response.to_cached(Vec::new())),
                        rotated,
                    })
                }
                Credential::ServiceAccount { key, path } => Ok(Minted {
                    token: Ok(service_account_token(http, key, path, scopes).await?),
                    rotated: None,
                }),
                Credential::Impersonated { file, source } => {
                    let source_scopes = [CLOUD_PLATFORM.to_string()];
                    let source_minted = source.mint(http, &source_scopes).await?;
                    let token = match source_minted.token {
                        Ok(source_token) => {
                            impersonate(
                                http,
                                &file.service_account_impersonation_url,
                                &source_token.access_token,
                                &file.delegates,
                                scopes,
                                3600,
                            )
                            .await
                        }
                        Err(e) => Err(e),
                    };
                    // A source user's rotated refresh token is saved even when the IAM call
                    // failed.
                    Ok(Minted {
                        token,
                        rotated: source_minted.rotated,
                    })
                }
                Credential::External { config, path } => Ok(Minted {
                    token: Ok(external_account_token(http, config, path, scopes).await?),
                    rotated: None,
                }),
                Credential::Metadata { host } => Ok(Minted {
                    token: Ok(metadata_token(host, scopes).await?),
                    rotated: None,
                }),
            }
        })
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn key_problem(path: &Path, problem: String) -> Error {
    Error::CredentialFile {
        path: path.to_path_buf(),
        problem,
    }
}

/// Parses the key's PEM into an RSA signing key.
fn rsa_key(pem: &str, path: &Path) -> Result<ring::signature::RsaKeyPair> {
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject;
    if pem.contains("ENCRYPTED PRIVATE KEY") || pem.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(key_problem(
            path,
            "private_key is encrypted; use the unencrypted key from the JSON key file Google issues".into(),
        ));
    }
    let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| key_problem(path, format!("private_key is not a PEM private key ({e})")))?;
    let parsed = match &der {
        PrivateKeyDer::Pkcs8(k) => ring::signature::RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
        PrivateKeyDer::Pkcs1(k) => ring::signature::RsaKeyPair::from_der(k.secret_pkcs1_der()),
        _ => {
            return Err(key_problem(path, "private_key is not an RSA key".into()));
        }
    };
    parsed.map_err(|e| key_problem(path, format!("private_key is not a usable RSA key ({e})")))
}

/// Builds and signs the JWT of the jwt-bearer grant (RFC 7523): RS256, `iss` and `sub` the
/// service account, `aud` the token endpoint, one hour of lifetime.
pub fn sign_jwt(
    key: &ServiceAccount,
    path: &Path,
    audience: &str,
    scopes: &[String],
    now: u64,
) -> Result<String> {
    let claims = json!({
        "iss": key.client_email,
        "sub": key.client_email,
        "aud": audience,
        "scope": scopes.join(" "),
        "iat": now,
        "exp": now + 3600,
    });
    sign_claims(key, path, &claims)
}

/// Builds and signs the JWT that asks the token endpoint for an ID token (as google-auth's
/// `IDTokenCredentials` does): `target_audience` instead of `scope`, `aud` the token endpoint.
pub fn sign_id_token_assertion(
    key: &ServiceAccount,
    path: &Path,
    token_uri: &str,
    target_audience: &str,
    now: u64,
) -> Result<String> {
    let claims = json!({
        "iss": key.client_email,
        "sub": key.client_email,
        "aud": token_uri,
        "target_audience": target_audience,
        "iat": now,
        "exp": now + 3600,
    });
    sign_claims(key, path, &claims)
}

/// Signs a JWT (RS256, with the key's ID as `kid`) with the service account's key.
fn sign_claims(key: &ServiceAccount, path: &Path, claims: &Value) -> Result<String> {
    let mut header = json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = &key.private_key_id {
        header["kid"] = json!(kid);
    }
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let pair = rsa_key(key.private_key.secret(), path)?;
    let mut signature = vec![0u8; pair.public().modulus_len()];
    pair.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| Error::Internal("cannot sign the service account assertion".into()))?;
    Ok(format!("{input}.{}", b64(&signature)))
}

async fn service_account_token(
    http: &Http,
    key: &ServiceAccount,
    path: &Path,
    scopes: &[String],
) -> Result<CachedToken> {
    let token_uri = credentials::endpoint(
        "token_uri",
        key.token_uri
            .as_deref()
            .unwrap_or(credentials::GOOGLE_TOKEN_URI),
    )?;
    let assertion = sign_jwt(key, path, token_uri.as_str(), scopes, store::now())?;
    let form = [
        ("grant_type", JWT_BEARER),
        ("assertion", assertion.as_str()),
    ];
    let (status, body) = http.post_form(&token_uri, &form).await?;
    let response = oauth::parse_token_response(&endpoint_name(&token_uri), status, &body)?;
    Ok(response.to_cached(scopes.to_vec()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeneratedToken {
    access_token: AccessToken,
    expire_time: String,
}

/// Calls IAM Credentials `generateAccessToken` with the source's token.
async fn impersonate(
    http: &Http,
    url: &str,
    source_token: &AccessToken,
    delegates: &[String],
    scopes: &[String],
    lifetime_secs: u64,
) -> Result<CachedToken> {
    let url = credentials::endpoint("service_account_impersonation_url", url)?;
    let body = json!({
        "delegates": delegates,
        "scope": scopes,
        "lifetime": format!("{lifetime_secs}s"),
    });
    let (status, bytes) = http
        .execute(&url, |c| {
            c.post(url.clone())
                .bearer_auth(source_token.secret())
                .json(&body)
        })
        .await?;
    let endpoint = endpoint_name(&url);
    if !(200..300).contains(&status) {
        return Err(google_api_error(&endpoint, status, &bytes));
    }
    let generated: GeneratedToken = serde_json::from_slice(&bytes).map_err(|_| Error::Server {
        endpoint: endpoint.clone(),
        status,
        detail: describe_body(&bytes, "has no accessToken and expireTime"),
    })?;
    if !oauth::plausible_access_token(generated.access_token.secret()) {
        return Err(Error::Server {
            endpoint,
            status,
            detail: "the accessToken is empty or holds spaces or control characters".into(),
        });
    }
    let now = store::now();
    let expires_at = humantime::parse_rfc3339(&generated.expire_time)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| {
            d.as_secs()
                .min(now.saturating_add(oauth::MAX_LIFETIME_SECS))
        })
        .ok_or_else(|| Error::Server {
            endpoint: endpoint.clone(),
            status,
            detail: "expireTime is not an RFC 3339 time".into(),
        })?;
    Ok(CachedToken {
        key: String::new(),
        access_token: generated.access_token,
        token_type: "Bearer".into(),
        obtained_at: now,
        expires_at,
        scopes: scopes.to_vec(),
    })
}

/// Maps a Google API error (`{"error": {"code", "message", "status"}}`) to a typed error;
/// 401 and 403 mean the credential was refused.
pub(crate) fn google_api_error(endpoint: &str, status: u16, body: &[u8]) -> Error {
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
            error: sanitize(&code),
            description: Some(sanitize(&message)).filter(|m| !m.is_empty()),
        },
        Some((code, message)) => Error::Server {
            endpoint: endpoint.to_string(),
            status,
            detail: sanitize(format!("{code} {message}").trim()),
        },
        None => Error::Server {
            endpoint: endpoint.to_string(),
            status,
            detail: describe_body(body, "is not a Google API error"),
        },
    }
}

/// Workload identity federation: read the subject token, exchange it at the STS endpoint, and
/// impersonate the service account when the file names one.
async fn external_account_token(
    http: &Http,
    config: &ExternalAccount,
    path: &Path,
    scopes: &[String],
) -> Result<CachedToken> {
    let sts_scopes = match config.service_account_impersonation_url {
        Some(_) => vec![CLOUD_PLATFORM.to_string()],
        None => scopes.to_vec(),
    };
    let sts = sts_token(http, config, path, &sts_scopes).await?;
    match &config.service_account_impersonation_url {
        Some(url) => {
            let lifetime = config
                .service_account_impersonation
                .as_ref()
                .and_then(|o| o.token_lifetime_seconds)
                .unwrap_or(3600);
            impersonate(http, url, &sts.access_token, &[], scopes, lifetime).await
        }
        None => Ok(sts),
    }
}

/// Reads the subject token and exchanges it at the STS endpoint (RFC 8693) for a federated
/// access token with `scopes` (the source of an impersonation asks for `cloud-platform`).
pub(crate) async fn sts_token(
    http: &Http,
    config: &ExternalAccount,
    path: &Path,
    scopes: &[String],
) -> Result<CachedToken> {
    let subject_token = subject_token(http, config, path).await?;
    let token_url = credentials::endpoint("token_url", &config.token_url)?;
    let impersonating = config.service_account_impersonation_url.is_some();
    let sts_scope = scopes.join(" ");
    let authenticated = config.client_id.is_some() && config.client_secret.is_some();
    let options = config
        .workforce_pool_user_project
        .as_ref()
        .filter(|_| !authenticated && !impersonating)
        .map(|project| json!({"userProject": project}).to_string());
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", TOKEN_EXCHANGE),
        ("audience", &config.audience),
        ("scope", &sts_scope),
        ("requested_token_type", ACCESS_TOKEN_TYPE),
        ("subject_token", subject_token.as_str()),
        ("subject_token_type", &config.subject_token_type),
    ];
    if let Some(options) = &options {
        form.push(("options", options));
    }
    let (status, body) = http
        .execute(&token_url, |c| {
            let request = c.post(token_url.clone()).form(&form);
            match (&config.client_id, &config.client_secret) {
                (Some(id), Some(secret)) => request.basic_auth(id, Some(secret.secret())),
                _ => request,
            }
        })
        .await?;
    let response = oauth::parse_token_response(&endpoint_name(&token_url), status, &body)?;
    Ok(response.to_cached(scopes.to_vec()))
}

/// Reads the subject token from the file's `credential_source`.
async fn subject_token(http: &Http, config: &ExternalAccount, path: &Path) -> Result<String> {
    let source: &CredentialSource = &config.credential_source;
    let bad = |problem: String| key_problem(path, format!("credential_source: {problem}"));
    if source.environment_id.is_some() {
        return Err(bad(
            "AWS (environment_id) sources are not supported by gemauth; use a file, url or executable source".into(),
        ));
    }
    let raw = if let Some(file) = &source.file {
        let bytes = store::read_bounded(std::path::Path::new(file)).map_err(|problem| {
            bad(format!(
                "cannot read the subject token file {file}: it {problem}"
            ))
        })?;
        String::from_utf8_lossy(&bytes).into_owned()
    } else if let Some(url) = &source.url {
        let url = Url::parse(url).map_err(|e| bad(format!("url is not a valid URL ({e})")))?;
        let headers = source.headers.clone().map(|h| h.0).unwrap_or_default();
        let (status, body) = http
            .execute(&url, |c| {
                headers
                    .iter()
                    .fold(c.get(url.clone()), |r, (k, v)| r.header(k, v))
            })
            .await?;
        if !(200..300).contains(&status) {
            return Err(Error::Server {
                endpoint: endpoint_name(&url),
                status,
                detail: describe_body(&body, "is not a subject token"),
            });
        }
        String::from_utf8_lossy(&body).into_owned()
    } else if let Some(executable) = &source.executable {
        return executable_token(config, executable, path).await;
    } else {
        return Err(bad("names no file, url or executable".into()));
    };
    let token = match source.format.as_ref().and_then(|f| f.kind.as_deref()) {
        None | Some("text") => raw.trim().to_string(),
        Some("json") => {
            let field = source
                .format
                .as_ref()
                .and_then(|f| f.subject_token_field_name.as_deref())
                .ok_or_else(|| bad("format json needs subject_token_field_name".into()))?;
            let value: Value = serde_json::from_str(&raw)
                .map_err(|_| bad("the subject token source is not JSON".into()))?;
            value
                .get(field)
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    bad(format!(
                        "the subject token JSON has no string field {field:?}"
                    ))
                })?
                .to_string()
        }
        Some(other) => return Err(bad(format!("unknown format type {other:?}"))),
    };
    if token.is_empty() {
        return Err(bad("the subject token is empty".into()));
    }
    Ok(token)
}

/// Runs an executable source (only with `GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1`, as
/// google-auth requires) and reads its version-1 JSON answer.
async fn executable_token(
    config: &ExternalAccount,
    executable: &credentials::ExecutableSource,
    path: &Path,
) -> Result<String> {
    let bad =
        |problem: String| key_problem(path, format!("credential_source.executable: {problem}"));
    if std::env::var(ENV_ALLOW_EXECUTABLES).as_deref() != Ok("1") {
        return Err(Error::ExecutablesNotAllowed);
    }
    // A still-valid answer saved by an earlier run is used as is.
    // (as in google-auth, a saved answer counts only with an expiration_time still ahead).
    if let Some(output_file) = &executable.output_file
        && let Ok(saved) = store::read_bounded(std::path::Path::new(output_file))
        && serde_json::from_slice::<Value>(&saved).is_ok_and(|v| {
            v["expiration_time"]
                .as_u64()
                .is_some_and(|t| t > store::now())
        })
        && let Ok(token) = parse_executable_output(&saved, config)
    {
        return Ok(token);
    }
    let words = shell_words::split(&executable.command)
        .map_err(|e| bad(format!("cannot parse command ({e})")))?;
    let (program, args) = words
        .split_first()
        .ok_or_else(|| bad("command is empty".into()))?;
    let timeout = Duration::from_millis(
        executable
            .timeout_millis
            .unwrap_or(30_000)
            .clamp(5_000, 120_000),
    );
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env("GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE", &config.audience)
        .env(
            "GOOGLE_EXTERNAL_ACCOUNT_TOKEN_TYPE",
            &config.subject_token_type,
        )
        .env("GOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE", "0")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    if let Some(email) = config
        .service_account_impersonation_url
        .as_deref()
        .and_then(credentials::impersonated_email)
    {
        command.env("GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL", email);
    }
    if let Some(output_file) = &executable.output_file {
        command.env("GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE", output_file);
    }
    let output = tokio::time::timeout(timeout, command.output())
        .await
        .map_err(|_| {
            bad(format!(
                "{program:?} did not answer within {} ms",
                timeout.as_millis()
            ))
        })?
        .map_err(|e| bad(format!("cannot run {program:?} ({e})")))?;
    if !output.status.success() {
        return Err(bad(format!("{program:?} failed ({})", output.status)));
    }
    parse_executable_output(&output.stdout, config).map_err(bad)
}

fn parse_executable_output(
    bytes: &[u8],
    config: &ExternalAccount,
) -> std::result::Result<String, String> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|_| "its output is not JSON".to_string())?;
    if v["version"] != json!(1) {
        return Err("its output is not version 1".into());
    }
    if v["success"] != json!(true) {
        return Err(format!(
            "it reported failure: {} {}",
            sanitize(v["code"].as_str().unwrap_or_default()),
            sanitize(v["message"].as_str().unwrap_or_default())
        ));
    }
    if let Some(expires) = v["expiration_time"].as_u64()
        && expires <= store::now()
    {
        return Err("its token has expired".into());
    }
    let token_type = v["token_type"]
        .as_str()
        .unwrap_or(&config.subject_token_type);
    let field = if token_type.ends_with(":saml2") {
        "saml_response"
    } else {
        "id_token"
    };
    v[field]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .ok_or_else(|| format!("its output has no {field}"))
}

/// The metadata server's host, when gemauth should use it: `GCE_METADATA_HOST`, or on Google
/// Cloud (detected from the machine's DMI product name, with no network call) the well-known
/// address. `NO_GCE_CHECK=true` turns this off.
pub fn metadata_host() -> Option<String> {
    let truthy = |v: &str| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes");
    if std::env::var(ENV_NO_GCE_CHECK).is_ok_and(|v| truthy(&v)) {
        return None;
    }
    if let Some(host) = std::env::var(ENV_METADATA_HOST)
        .ok()
        .filter(|h| !h.trim().is_empty())
    {
        return Some(host.trim().to_string());
    }
    let product = std::fs::read_to_string("/sys/class/dmi/id/product_name").unwrap_or_default();
    product.contains("Google").then(|| METADATA_IP.to_string())
}

/// GETs a path of the metadata server (with `Metadata-Flavor: Google`); an unreachable server
/// means there are no credentials here.
pub(crate) async fn metadata_get(
    host: &str,
    path: &str,
    query: &[(&str, &str)],
) -> Result<(Url, u16, Vec<u8>)> {
    let mut url = Url::parse(&format!("http://{host}/computeMetadata/v1/{path}"))
        .map_err(|e| Error::Usage(format!("{ENV_METADATA_HOST}={host:?} is not a host ({e})")))?;
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    let http = Http::with_connect_timeout(Duration::from_secs(2))?;
    let (status, body) = http
        .execute(&url, |c| {
            c.get(url.clone()).header("Metadata-Flavor", "Google")
        })
        .await
        .map_err(|e| match e {
            Error::Network { endpoint, detail } => Error::NoMetadataServer {
                searched: store::well_known_path().unwrap_or_default(),
                endpoint,
                detail,
            },
            other => other,
        })?;
    Ok((url, status, body))
}

async fn metadata_token(host: &str, scopes: &[String]) -> Result<CachedToken> {
    let joined = scopes.join(",");
    let query: &[(&str, &str)] = if joined.is_empty() {
        &[]
    } else {
        &[("scopes", &joined)]
    };
    let (url, status, body) =
        metadata_get(host, "instance/service-accounts/default/token", query).await?;
    let response = oauth::parse_token_response(&endpoint_name(&url), status, &body)?;
    Ok(response.to_cached(scopes.to_vec()))
}

/// The email of the metadata server's default service account (also proves it answers).
pub async fn metadata_email(host: &str) -> Result<String> {
    let (url, status, body) =
        metadata_get(host, "instance/service-accounts/default/email", &[]).await?;
    if !(200..300).contains(&status) {
        return Err(Error::Server {
            endpoint: endpoint_name(&url),
            status,
            detail: describe_body(&body, "is not an email"),
        });
    }
    Ok(sanitize(String::from_utf8_lossy(&body).trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_of_every_credential_type_is_redacted() {
        let files = [
            serde_json::json!({"type": "impersonated_service_account",
                "service_account_impersonation_url": "https://iam.example.com/x:generateAccessToken",
                "source_credentials": {"type": "authorized_user", "client_id": "id",
                    "client_secret": "planted-secret", "refresh_token": "planted-refresh"}}),
            serde_json::json!({"type": "external_account", "audience": "a", "subject_token_type": "t",
                "token_url": "https://sts.example.com/", "client_id": "c", "client_secret": "planted-secret",
                "credential_source": {"url": "https://x/", "headers": {"Authorization": "Bearer planted-header"}}}),
            serde_json::json!({"type": "service_account", "client_email": "e@x", "private_key": "planted-key"}),
        ];
        for file in files {
            let path = Path::new("c.json");
            let bytes = serde_json::to_vec(&file).unwrap();
            let credential = credentials::parse_credential_file(path, &bytes).unwrap();
            let text = format!("{credential:?}");
            assert!(!text.contains("planted"), "{text}");
        }
    }
}
