//! OpenID Connect ID tokens (`print-identity-token`) for every credential type: which audience
//! each type can have, minting per type (a JWT-bearer grant with `target_audience`, IAM
//! Credentials `generateIdToken`, the metadata server's identity endpoint, a user's refresh
//! grant), and the cache, credential lock and single refresh shared with access tokens, per
//! credential and audience.

use std::path::PathBuf;

use base64::Engine as _;
use oauth2::{AccessToken, RefreshToken};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::adc;
use crate::credentials::{self, CLOUD_PLATFORM, Credential};
use crate::error::{Error, Result, sanitize};
use crate::oauth::{self, Http, describe_body, endpoint_name};
use crate::secret::Secret;
use crate::store::{self, CachedToken, TokenCache};
use crate::token::{self, Target};

/// The suffix of an IAM Credentials access token URL, and what replaces it for an ID token.
const GENERATE_ACCESS_TOKEN: &str = ":generateAccessToken";
const GENERATE_ID_TOKEN: &str = ":generateIdToken";
/// The metadata server's ID token path.
const METADATA_IDENTITY: &str = "instance/service-accounts/default/identity";
/// Longest audience accepted (Cloud Run URLs and OAuth client IDs are far shorter).
const MAX_AUDIENCE_LEN: usize = 2048;

/// What an ID token is asked for.
#[derive(Debug, Clone, Default)]
pub(crate) struct Request {
    /// A credential file to use instead of discovering one.
    pub credential_file: Option<PathBuf>,
    /// The audience (`--audiences`): the URL of the service to call.
    pub audience: Option<String>,
    /// Ask for the `email` and `email_verified` claims (impersonation, metadata server).
    pub include_email: bool,
}

/// An ID token and what it says about itself.
#[derive(Debug)]
pub(crate) struct IdToken {
    /// The JWT, for the `Authorization: Bearer` header of the service it is for.
    pub token: Secret<String>,
    /// Unix time of its `exp` claim.
    pub expires_at: u64,
    /// Its `aud` claim.
    pub audience: String,
    /// The account it is for: its `email` claim, else the service account the credential names.
    pub email: Option<String>,
    /// Things to tell the user (a credential file others can read, a cache not written).
    pub warnings: Vec<String>,
}

/// What a credential is asked for, once the request was checked against its type.
struct Want {
    /// The audience to ask for; empty for a user, whose ID token is for its OAuth client.
    audience: String,
    /// Whether to ask for the email claims (only where the endpoint takes the option).
    include_email: bool,
}

impl Want {
    /// The cache entry of this credential's ID token for this audience.
    fn cache(&self, credential: &Credential) -> TokenCache {
        TokenCache::new(&credential.id_token_cache_key(&self.audience, self.include_email))
    }

    /// The audience the token's `aud` claim must name.
    fn expected_audience<'a>(&'a self, credential: &'a Credential) -> &'a str {
        match credential {
            Credential::User(user) => &user.client_id,
            _ => &self.audience,
        }
    }
}

/// An ID token for the discovered credential (`credential_file` first, when given): from the
/// cache when it is fresh, else obtained once under the credential lock.
pub(crate) fn get(request: &Request) -> Result<IdToken> {
    let target = token::locate(request.credential_file.as_deref())?;
    let credential = token::load(&target)?;
    let want = want(&credential, request)?;
    let now = store::now();
    let cached = want
        .cache(&credential)
        .load()
        .filter(|t| t.is_fresh(now, None))
        .and_then(|t| describe(t, &credential, &want));
    let mut id_token = match cached {
        Some(id_token) => {
            tracing::debug!(
                expires_in = id_token.expires_at - now,
                "cached ID token is fresh"
            );
            id_token
        }
        None => {
            tracing::debug!("no fresh cached ID token; minting one under the lock");
            oauth::block_on(refresh_locked(&target, request))??
        }
    };
    if let Target::File(path, _) = &target {
        id_token.warnings.extend(store::exposed_warning(path));
    }
    Ok(id_token)
}

/// Takes the credential lock, re-reads the file and the cache (a process that waited for the lock
/// uses the token its predecessor obtained), and mints an ID token only if still needed.
async fn refresh_locked(target: &Target, request: &Request) -> Result<IdToken> {
    let _lock = token::lock(target).await?;
    let credential = token::load(target)?;
    let want = want(&credential, request)?;
    let cache = want.cache(&credential);
    if let Some(id_token) = cache
        .load()
        .filter(|t| t.is_fresh(store::now(), None))
        .and_then(|t| describe(t, &credential, &want))
    {
        tracing::debug!("another process minted while we waited; using its ID token");
        return Ok(id_token);
    }
    let reservation = token::reserve_rotation(target, &credential)?;
    let http = Http::new()?;
    let minted = mint(&credential, &http, &want).await?;
    let mut warnings = Vec::new();
    // A rotated refresh token must be on disk before the lock is released, whatever else failed.
    let credential = match &minted.rotated {
        Some(new) => {
            token::save_rotated(target, &credential, new, reservation)?;
            let _ = cache.remove();
            token::load(target)?
        }
        None => credential,
    };
    // A user's refresh grant brought an access token too: `print-access-token` can use it.
    if let Some(access) = &minted.access_token {
        warnings.extend(TokenCache::new(&credential.cache_key(&[])).store(access));
    }
    let (endpoint, raw) = minted.id_token?;
    let claims = Claims::read(&endpoint, &raw, want.expected_audience(&credential))?;
    let now = store::now();
    let entry = CachedToken {
        key: String::new(),
        access_token: AccessToken::new(raw),
        token_type: "Bearer".into(),
        obtained_at: now,
        expires_at: claims.expires_at,
        scopes: Vec::new(),
    };
    tracing::debug!(
        lifetime = claims.expires_at.saturating_sub(now),
        kind = credential.type_name(),
        "obtained a new ID token"
    );
    warnings.extend(want.cache(&credential).store(&entry));
    let mut id_token = finish(entry, claims, &credential);
    id_token.warnings = warnings;
    Ok(id_token)
}

/// A cached entry as an [`IdToken`]; `None` when its claims cannot be read (it is then minted
/// again).
fn describe(entry: CachedToken, credential: &Credential, want: &Want) -> Option<IdToken> {
    let claims = Claims::read(
        "the cache",
        entry.access_token.secret(),
        want.expected_audience(credential),
    )
    .ok()?;
    Some(finish(entry, claims, credential))
}

fn finish(entry: CachedToken, claims: Claims, credential: &Credential) -> IdToken {
    let named = match credential {
        Credential::User(_) | Credential::Metadata { .. } => None,
        other => other.identity(),
    };
    IdToken {
        token: Secret::new(entry.access_token.into_secret()),
        expires_at: entry.expires_at,
        audience: claims.audience,
        email: claims.email.or(named),
        warnings: Vec::new(),
    }
}

/// Checks the request against what the credential's type can have.
fn want(credential: &Credential, request: &Request) -> Result<Want> {
    let kind = credential.type_name();
    let audience = request.audience.as_deref();
    match credential {
        Credential::User(user) => {
            if audience.is_some() {
                return Err(Error::IdTokenRequest {
                    problem: "--audiences cannot be used with an authorized_user credential: \
                        Google issues a user's ID token only for the OAuth client it signed in \
                        with (its audience is the client ID)"
                        .into(),
                    hint: "to call a service, impersonate a service account you may act as \
                        (roles/iam.serviceAccountOpenIdTokenCreator): `gcloud auth \
                        application-default login --impersonate-service-account SA_EMAIL` writes \
                        an impersonated_service_account ADC file; or omit --audiences for a token \
                        whose audience is the client ID"
                        .into(),
                });
            }
            let granted = user.scopes.as_ref().map(|s| s.to_vec());
            if granted.is_some_and(|g| !credentials::scope_granted("openid", &g)) {
                return Err(Error::ScopesNotGranted {
                    missing: "openid".into(),
                });
            }
            return Ok(Want {
                audience: String::new(),
                include_email: false,
            });
        }
        Credential::External { config, .. }
            if config.service_account_impersonation_url.is_none() =>
        {
            return Err(Error::IdTokenRequest {
                problem: "an external_account credential without service account impersonation \
                    cannot have ID tokens: the Security Token Service issues access tokens only"
                    .into(),
                hint: "add service account impersonation to the configuration \
                    (`gcloud iam workload-identity-pools create-cred-config … \
                    --service-account=SA_EMAIL`) and let the federated identity use that account \
                    (roles/iam.workloadIdentityUser)"
                    .into(),
            });
        }
        _ => {}
    }
    let Some(audience) = audience else {
        return Err(Error::IdTokenRequest {
            problem: format!(
                "print-identity-token needs --audiences for a {kind} credential: an ID token is \
                 for one service, named by its audience"
            ),
            hint: "pass the URL of the service to call, e.g. `gemauth print-identity-token \
                --audiences https://SERVICE-HASH.a.run.app` (for IAP, its OAuth client ID)"
                .into(),
        });
    };
    let audience = audience.trim();
    let usage = |problem: &str| {
        Err(Error::Usage(format!(
            "--audiences {:?} {problem}",
            sanitize(audience)
        )))
    };
    if audience.is_empty() {
        return usage("is empty");
    }
    if audience.len() > MAX_AUDIENCE_LEN
        || audience
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return usage("is not an audience (a URL or client ID, without spaces)");
    }
    if audience.contains(',') {
        return usage("names more than one audience; an ID token has one (as with gcloud)");
    }
    Ok(Want {
        audience: audience.to_string(),
        // A service account key's ID tokens come from the token endpoint, which has no option.
        include_email: request.include_email
            && !matches!(credential, Credential::ServiceAccount { .. }),
    })
}

/// What one mint brought.
struct Minted {
    /// The ID token and the endpoint that issued it (named in errors about the token), or why
    /// there is none once a refresh token may have been rotated (which is saved first).
    id_token: Result<(String, String)>,
    /// A user's new refresh token, when the server rotated it.
    rotated: Option<RefreshToken>,
    /// The access token a user's refresh grant brought too.
    access_token: Option<CachedToken>,
}

impl Minted {
    fn issued(endpoint: String, id_token: String) -> Self {
        Minted {
            id_token: Ok((endpoint, id_token)),
            rotated: None,
            access_token: None,
        }
    }
}

/// Obtains an ID token from the server, the way the credential's type allows.
async fn mint(credential: &Credential, http: &Http, want: &Want) -> Result<Minted> {
    match credential {
        Credential::User(user) => {
            let (response, rotated) = adc::refresh_user(http, user).await?;
            let id_token = match &response.id_token {
                Some(t) => Ok((
                    endpoint_name(&user.token_endpoint()?),
                    t.secret().to_string(),
                )),
                None => Err(Error::ScopesNotGranted {
                    missing: "openid (the token endpoint sent no ID token)".into(),
                }),
            };
            Ok(Minted {
                id_token,
                rotated,
                access_token: Some(response.to_cached(Vec::new())),
            })
        }
        Credential::ServiceAccount { key, path } => {
            let token_uri = credentials::endpoint(
                "token_uri",
                key.token_uri
                    .as_deref()
                    .unwrap_or(credentials::GOOGLE_TOKEN_URI),
            )?;
            let assertion = adc::sign_id_token_assertion(
                key,
                path,
                token_uri.as_str(),
                &want.audience,
                store::now(),
            )?;
            let form = [
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ];
            let (status, body) = http.post_form(&token_uri, &form).await?;
            let endpoint = endpoint_name(&token_uri);
            let id_token = oauth::parse_id_token_response(&endpoint, status, &body)?;
            Ok(Minted::issued(endpoint, id_token))
        }
        Credential::Impersonated { file, source } => {
            let source_minted = source.mint(http, &[CLOUD_PLATFORM.to_string()]).await?;
            let generated = match source_minted.token {
                Ok(source_token) => {
                    generate_id_token(
                        http,
                        &file.service_account_impersonation_url,
                        &source_token.access_token,
                        &file.delegates,
                        want,
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            // A source user's rotated refresh token is saved even when the IAM call failed.
            Ok(Minted {
                id_token: generated,
                rotated: source_minted.rotated,
                access_token: None,
            })
        }
        Credential::External { config, path } => {
            let url = config
                .service_account_impersonation_url
                .as_deref()
                .ok_or_else(|| Error::Internal("no impersonation URL".into()))?;
            let sts = adc::sts_token(http, config, path, &[CLOUD_PLATFORM.to_string()]).await?;
            let (endpoint, id_token) =
                generate_id_token(http, url, &sts.access_token, &[], want).await?;
            Ok(Minted::issued(endpoint, id_token))
        }
        Credential::Metadata { host } => {
            let mut query = vec![("audience", want.audience.as_str())];
            if want.include_email {
                query.push(("format", "full"));
            }
            let (url, status, body) = adc::metadata_get(host, METADATA_IDENTITY, &query).await?;
            let endpoint = endpoint_name(&url);
            if !(200..300).contains(&status) {
                return Err(Error::Server {
                    endpoint,
                    status,
                    detail: describe_body(&body, "is not an ID token"),
                });
            }
            let id_token = String::from_utf8_lossy(&body).trim().to_string();
            Ok(Minted::issued(endpoint, id_token))
        }
    }
}

/// The IAM Credentials `generateIdToken` URL of an impersonation URL (`…:generateAccessToken`),
/// so that it follows the file's endpoint.
fn generate_id_token_url(access_url: &str) -> Result<url::Url> {
    let url = credentials::endpoint("service_account_impersonation_url", access_url)?;
    let path = url.path();
    let Some(account) = path.strip_suffix(GENERATE_ACCESS_TOKEN) else {
        return Err(Error::Endpoint {
            name: "service_account_impersonation_url",
            url: endpoint_name(&url),
            reason: format!(
                "it does not end with {GENERATE_ACCESS_TOKEN}, so its {GENERATE_ID_TOKEN} URL is unknown"
            ),
        });
    };
    let mut id_url = url.clone();
    id_url.set_path(&format!("{account}{GENERATE_ID_TOKEN}"));
    Ok(id_url)
}

/// Calls IAM Credentials `generateIdToken` with the source's access token.
async fn generate_id_token(
    http: &Http,
    access_url: &str,
    source_token: &AccessToken,
    delegates: &[String],
    want: &Want,
) -> Result<(String, String)> {
    #[derive(Deserialize)]
    struct Generated {
        token: String,
    }
    let url = generate_id_token_url(access_url)?;
    let body = json!({
        "audience": want.audience,
        "includeEmail": want.include_email,
        "delegates": delegates,
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
        return Err(adc::google_api_error(&endpoint, status, &bytes));
    }
    let generated: Generated = serde_json::from_slice(&bytes).map_err(|_| Error::Server {
        endpoint: endpoint.clone(),
        status,
        detail: describe_body(&bytes, "has no token"),
    })?;
    Ok((endpoint, generated.token))
}

/// What gemauth reads from an ID token's payload. The token came straight from the issuer over
/// a checked connection (or from gemauth's private cache), so its signature need not be
/// verified to read these (OpenID Connect Core 3.1.3.7); the service it is sent to verifies it.
#[derive(Debug)]
struct Claims {
    expires_at: u64,
    audience: String,
    email: Option<String>,
}

impl Claims {
    /// Reads and checks the claims: a JWT that fits in a header, an `exp` still ahead (and
    /// believed for at most [`oauth::MAX_LIFETIME_SECS`]), and an `aud` that names `audience`.
    fn read(endpoint: &str, token: &str, audience: &str) -> Result<Claims> {
        let bad = |detail: &str| Error::Server {
            endpoint: endpoint.to_string(),
            status: 200,
            detail: format!("the ID token {detail}"),
        };
        if !oauth::plausible_access_token(token) {
            return Err(bad("is empty or holds spaces or control characters"));
        }
        let parts: Vec<&str> = token.split('.').collect();
        if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(bad("is not a signed JWT (three dot-separated parts)"));
        }
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1].trim_end_matches('='))
            .map_err(|_| bad("payload is not base64url"))?;
        let claims: Value =
            serde_json::from_slice(&payload).map_err(|_| bad("payload is not JSON"))?;
        let now = store::now();
        let exp = claims
            .get("exp")
            .and_then(|e| e.as_u64().or_else(|| e.as_f64().map(|f| f.max(0.0) as u64)))
            .ok_or_else(|| bad("has no numeric exp claim"))?;
        if exp <= now {
            return Err(bad("has already expired (its exp claim is past)"));
        }
        let audiences: Vec<&str> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !audiences.contains(&audience) {
            return Err(bad(&format!(
                "is for another audience ({}), not {:?}",
                sanitize(&audiences.join(" ")),
                sanitize(audience)
            )));
        }
        Ok(Claims {
            expires_at: exp.min(now.saturating_add(oauth::MAX_LIFETIME_SECS)),
            audience: audience.to_string(),
            email: claims
                .get("email")
                .and_then(Value::as_str)
                .map(sanitize)
                .filter(|e| !e.is_empty()),
        })
    }
}

/// Whether, and how, a credential gets ID tokens (for `status`).
pub(crate) fn support(credential: &Credential) -> String {
    match credential {
        Credential::User(user) => {
            let granted = user.scopes.as_ref().map(|s| s.to_vec());
            if granted.is_some_and(|g| !credentials::scope_granted("openid", &g)) {
                "no: the login did not grant the openid scope".into()
            } else {
                "yes, for the OAuth client (audience: its client ID)".into()
            }
        }
        Credential::External { config, .. }
            if config.service_account_impersonation_url.is_none() =>
        {
            "no: external_account without service account impersonation".into()
        }
        _ => "yes, for any audience (--audiences)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: Value) -> String {
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.{}",
            b64(br#"{"alg":"RS256"}"#),
            b64(claims.to_string().as_bytes()),
            b64(b"sig")
        )
    }

    #[test]
    fn claims_are_read_and_checked() {
        let now = store::now();
        let aud = "https://svc.example";
        let ok = jwt(json!({"aud": aud, "exp": now + 3600, "email": "sa@x"}));
        let claims = Claims::read("e", &ok, aud).unwrap();
        assert_eq!(claims.expires_at, now + 3600);
        assert_eq!(claims.email.as_deref(), Some("sa@x"));
        let listed = jwt(json!({"aud": ["other", aud], "exp": now + 60}));
        assert!(Claims::read("e", &listed, aud).is_ok());

        let far = jwt(json!({"aud": aud, "exp": u64::MAX}));
        let claims = Claims::read("e", &far, aud).unwrap();
        assert!(claims.expires_at <= now + oauth::MAX_LIFETIME_SECS + 1);

        for (token, problem) in [
            (jwt(json!({"aud": aud, "exp": now - 1})), "expired"),
            (jwt(json!({"aud": aud})), "exp"),
            (
                jwt(json!({"aud": "other", "exp": now + 60})),
                "another audience",
            ),
            ("a.b".to_string(), "JWT"),
            ("a..c".to_string(), "JWT"),
            ("a.!!!.c".to_string(), "base64url"),
            (format!("{} x", ok), "spaces"),
            (String::new(), "empty"),
        ] {
            let e = Claims::read("e", &token, aud).unwrap_err().to_string();
            assert!(e.contains(problem), "{problem}: {e}");
            assert!(!e.contains(".sig") && !e.contains("c2ln"), "{e}");
        }
    }

    #[test]
    fn the_id_token_url_follows_the_impersonation_url() {
        let url = generate_id_token_url(
            "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateAccessToken",
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateIdToken"
        );
        let local = generate_id_token_url(
            "http://127.0.0.1:8080/v1/projects/-/serviceAccounts/a@b:generateAccessToken",
        )
        .unwrap();
        assert_eq!(
            local.as_str(),
            "http://127.0.0.1:8080/v1/projects/-/serviceAccounts/a@b:generateIdToken"
        );
        assert!(generate_id_token_url("https://example.com/other").is_err());
        assert!(generate_id_token_url("http://example.com/x:generateAccessToken").is_err());
    }
}
