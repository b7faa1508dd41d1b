//! `impersonated_service_account`: acting as a service account with a source credential:
//! parsing, cache key, identity, status details, the one IAM Credentials call
//! (`generateAccessToken` / `generateIdToken`), which external accounts use too, and the
//! impersonation asked for per call (`--impersonate-service-account`, `--lifetime`) and at login.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use url::Url;

use super::{CLOUD_PLATFORM, Credential, FileProblem, IdTokenSupport, Issued, Minted, Want};
use crate::context::Context;
use crate::error::{Error, Rejecter, Result};
use crate::oauth::{self, ErrorBody, HttpRequest};
use crate::rules::{self, endpoint_name, plausible_access_token};
use crate::secret::Secret;
use crate::store::CachedToken;

/// The suffix of an IAM Credentials access token URL, and what replaces it for an ID token.
const GENERATE_ACCESS_TOKEN: &str = ":generateAccessToken";
const GENERATE_ID_TOKEN: &str = ":generateIdToken";

/// An `impersonated_service_account` file: the account to act as (its `source_credentials` are
/// parsed into [`Credential::Impersonated`]'s `source`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ImpersonatedServiceAccount {
    pub service_account_impersonation_url: String,
    #[serde(default)]
    pub delegates: Vec<String>,
    #[serde(default)]
    pub quota_project_id: Option<String>,
    /// The lifetime asked of access tokens (`--lifetime`), when not IAM's default hour.
    #[serde(skip)]
    pub lifetime_secs: Option<u64>,
    /// Asked for per call around the credential found, not read from a file: a rotated
    /// refresh token of the source is the file's own field, not `source_credentials`'.
    #[serde(skip)]
    pub per_call: bool,
}

/// Environment variable (gcloud's property `api_endpoint_overrides/iamcredentials`): the IAM
/// Credentials endpoint to use instead of Google's (Private Service Connect).
pub(crate) const ENV_IAMCREDENTIALS_OVERRIDE: &str =
    "CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS";

/// The service accounts of `--impersonate-service-account A,B,C`, as gcloud reads them: the
/// last is the one impersonated, those before it the delegation chain, in order.
pub(crate) fn parse_service_accounts(spec: &str) -> Result<(String, Vec<String>)> {
    let mut accounts = Vec::new();
    for account in spec.split(',').map(str::trim) {
        let valid = !account.is_empty()
            && account.len() <= 254
            && account
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"@.-_".contains(&b))
            && (account.bytes().all(|b| b.is_ascii_digit())
                || account.split_once('@').is_some_and(|(name, domain)| {
                    !name.is_empty() && !domain.is_empty() && !domain.contains('@')
                }));
        if !valid {
            return Err(Error::Usage(
                "--impersonate-service-account takes service account emails (or unique IDs), \
                 separated by commas: the last is impersonated, those before it are the \
                 delegation chain"
                    .into(),
            ));
        }
        accounts.push(account.to_string());
    }
    let target = accounts.pop().unwrap_or_default();
    Ok((target, accounts))
}

/// The `generateAccessToken` URL of a service account: gcloud's, in the credential's universe,
/// or under the endpoint `CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS` names.
pub(crate) fn impersonation_url(env: &crate::env::Env, universe: &str, account: &str) -> String {
    let base = env
        .var(ENV_IAMCREDENTIALS_OVERRIDE)
        .filter(|v| !v.trim().is_empty())
        .map_or_else(
            || format!("https://iamcredentials.{universe}/"),
            |v| format!("{}/", v.trim().trim_end_matches('/')),
        );
    format!("{base}v1/projects/-/serviceAccounts/{account}{GENERATE_ACCESS_TOKEN}")
}

/// The `impersonated_service_account` file `gemauth login --impersonate-service-account`
/// writes, in the shape gcloud's `application-default login --impersonate-service-account`
/// writes (`delegates`, `service_account_impersonation_url`, `source_credentials`, `type`;
/// keys sorted, two-space indent): the user's login is the source, and the quota project, when
/// one is given, is the impersonation's.
pub(crate) fn login_file(
    source: &super::AuthorizedUser,
    account: &str,
    delegates: &[String],
    quota_project: Option<&str>,
    env: &crate::env::Env,
) -> Result<Vec<u8>> {
    let mut source = serde_json::to_value(source)
        .map_err(|e| Error::Internal(format!("cannot write the source credential: {e}")))?;
    if let Some(map) = source.as_object_mut() {
        map.remove("quota_project_id");
    }
    let universe = rules::universe_domain(source["universe_domain"].as_str()).to_string();
    let mut file = json!({
        "delegates": delegates,
        "service_account_impersonation_url": impersonation_url(env, &universe, account),
        "source_credentials": source,
        "type": super::IMPERSONATED,
    });
    if let Some(project) = quota_project {
        file["quota_project_id"] = json!(project);
    }
    let mut out = serde_json::to_vec_pretty(&file)
        .map_err(|e| Error::Internal(format!("cannot write the credential file: {e}")))?;
    out.push(b'\n');
    Ok(out)
}

/// What a call asks beyond the credential found: a service account to act as through it
/// (`--impersonate-service-account`), and the lifetime of impersonated access tokens
/// (`--lifetime`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Acting {
    /// The service account impersonated and its delegation chain.
    pub(crate) impersonate: Option<(String, Vec<String>)>,
    /// Seconds asked of IAM's `generateAccessToken`.
    pub(crate) lifetime_secs: Option<u64>,
}

impl Acting {
    /// The credential to mint with: `found` itself, or an impersonation whose source it is;
    /// `--lifetime` set on whichever impersonation mints the token. The new endpoint goes
    /// through the endpoint rule (errors name `path`).
    pub(crate) fn apply(
        &self,
        found: Credential,
        path: &std::path::Path,
        env: &crate::env::Env,
    ) -> Result<Credential> {
        let mut credential = match &self.impersonate {
            None => found,
            Some((account, delegates)) => {
                let universe =
                    rules::universe_domain(found.universe_domain().as_deref()).to_string();
                let file = ImpersonatedServiceAccount {
                    service_account_impersonation_url: impersonation_url(env, &universe, account),
                    delegates: delegates.clone(),
                    quota_project_id: found.quota_project(),
                    lifetime_secs: None,
                    per_call: true,
                };
                rules::endpoint(
                    "service_account_impersonation_url",
                    &file.service_account_impersonation_url,
                )?;
                super::check_endpoints(&file.secret_endpoints(), path, false, env)?;
                Credential::Impersonated {
                    file: Box::new(file),
                    source: Box::new(found),
                }
            }
        };
        if let Some(lifetime) = self.lifetime_secs {
            match &mut credential {
                Credential::Impersonated { file, .. } => file.lifetime_secs = Some(lifetime),
                Credential::External { config, .. }
                    if config.service_account_impersonation_url.is_some() =>
                {
                    config.set_impersonation_lifetime(lifetime);
                }
                other => {
                    return Err(Error::Usage(format!(
                        "--lifetime is for impersonated service accounts only, and this \
                         credential is {} without impersonation: add \
                         --impersonate-service-account SA_EMAIL",
                        other.type_name()
                    )));
                }
            }
        }
        Ok(credential)
    }
}

/// What `status` shows of an impersonation.
#[derive(Debug, Serialize)]
pub(crate) struct ImpersonatedDetails {
    pub(crate) impersonation_url: String,
    pub(crate) source_type: &'static str,
    pub(crate) delegates: Vec<String>,
}

/// Parses an `impersonated_service_account` file and its source (which cannot itself be an
/// impersonation).
pub(super) fn parse(mut map: Map<String, Value>, problem: FileProblem) -> Result<Credential> {
    if problem.within.is_some() {
        return Err(problem.cannot_impersonate_from(super::IMPERSONATED));
    }
    let source = map.remove("source_credentials");
    let file: ImpersonatedServiceAccount = problem.typed(map)?;
    let url = &file.service_account_impersonation_url;
    problem.nonempty("service_account_impersonation_url", url)?;
    rules::endpoint("service_account_impersonation_url", url)?;
    let source = source.ok_or_else(|| problem.error("\"source_credentials\" is missing".into()))?;
    let source = super::parse_value(problem.path, source, Some("source_credentials"))?;
    Ok(Credential::Impersonated {
        file: Box::new(file),
        source: Box::new(source),
    })
}

impl ImpersonatedServiceAccount {
    /// The parts of the cache key: the account, its delegates and the source's own key.
    pub(super) fn key_parts(&self, source: &Credential) -> Vec<String> {
        vec![
            "impersonated".into(),
            self.service_account_impersonation_url.clone(),
            self.delegates.join(","),
            source.cache_key(&[CLOUD_PLATFORM.to_string()]),
            self.lifetime_secs
                .map(|l| format!("lifetime={l}"))
                .unwrap_or_default(),
        ]
    }

    /// The endpoint that receives the source's access token.
    pub(super) fn secret_endpoints(&self) -> Vec<super::SecretEndpoint> {
        vec![super::SecretEndpoint::new(
            "service_account_impersonation_url",
            &self.service_account_impersonation_url,
            None,
            "https://iamcredentials.{}/",
        )]
    }

    /// The service account acted as.
    pub(super) fn identity(&self) -> Option<String> {
        impersonated_email(&self.service_account_impersonation_url)
    }

    /// What `status` shows.
    pub(super) fn details(&self, source: &Credential) -> ImpersonatedDetails {
        ImpersonatedDetails {
            impersonation_url: self.service_account_impersonation_url.clone(),
            source_type: source.type_name(),
            delegates: self.delegates.clone(),
        }
    }

    /// Any audience, with or without the email claims.
    pub(super) fn id_tokens() -> IdTokenSupport {
        IdTokenSupport::AnyAudience { email_option: true }
    }

    /// Mints the source's `cloud-platform` token, then asks IAM Credentials for the token.
    pub(super) async fn mint(
        &self,
        source: &Credential,
        ctx: &Context,
        want: &Want,
    ) -> Result<Minted> {
        let service_account = self.identity().unwrap_or_default();
        // A user source refused: the fix is to sign in again for the impersonation, not to
        // replace the file with a plain user login.
        let as_source = |e: Error| {
            e.rejected_as(|by| {
                matches!(by, Some(Rejecter::User { .. })).then(|| Rejecter::ImpersonationSource {
                    service_account: service_account.clone(),
                })
            })
        };
        let source_minted = source
            .mint(ctx, &Want::access(vec![CLOUD_PLATFORM.to_string()]))
            .await
            .map_err(as_source)?;
        let issued = match source_minted.issued.map_err(as_source) {
            Ok(source_token) => {
                let principal = source.identity();
                let call = Iam {
                    url: &self.service_account_impersonation_url,
                    delegates: &self.delegates,
                    lifetime_secs: self.lifetime_secs.unwrap_or(rules::HOUR_SECS),
                    principal: principal.as_deref(),
                };
                call.generate(ctx, source_token.access_token()?, want).await
            }
            Err(e) => Err(e),
        };
        // A source user's rotated refresh token is saved even when the IAM call failed.
        Ok(Minted {
            issued,
            rotated: source_minted.rotated,
            access: None,
        })
    }
}

/// One IAM Credentials call on behalf of a principal.
pub(super) struct Iam<'a> {
    /// The `…:generateAccessToken` URL of the service account.
    pub(super) url: &'a str,
    pub(super) delegates: &'a [String],
    /// Lifetime asked of an access token.
    pub(super) lifetime_secs: u64,
    /// Who asks (the source's identity), named in the hint when IAM refuses.
    pub(super) principal: Option<&'a str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeneratedAccessToken {
    access_token: Secret<String>,
    expire_time: String,
}

#[derive(Deserialize)]
struct GeneratedIdToken {
    token: Secret<String>,
}

impl Iam<'_> {
    /// Calls `generateAccessToken` or `generateIdToken` with the source's access token.
    pub(super) async fn generate(
        &self,
        ctx: &Context,
        source_token: &Secret<String>,
        want: &Want,
    ) -> Result<Issued> {
        let (url, body) = match want {
            Want::Access { scopes } => (
                rules::endpoint("service_account_impersonation_url", self.url)?,
                json!({
                    "delegates": self.delegates,
                    "scope": scopes,
                    "lifetime": format!("{}s", self.lifetime_secs),
                }),
            ),
            Want::Id {
                audience,
                include_email,
            } => (
                generate_id_token_url(self.url)?,
                json!({
                    "audience": audience,
                    "includeEmail": include_email,
                    "delegates": self.delegates,
                }),
            ),
        };
        let request = HttpRequest::json(&url, body).bearer(source_token.expose());
        let (status, bytes) = ctx.http()?.send(&request).await?;
        let endpoint = endpoint_name(&url);
        let sent = oauth::Sent::of(&request);
        let longer = matches!(want, Want::Access { .. }) && self.lifetime_secs > rules::HOUR_SECS;
        oauth::success(&endpoint, status, &bytes, ErrorBody::GoogleApi, &sent).map_err(|e| {
            let e = match e {
                // IAM refuses a lifetime over an hour the organization does not allow.
                Error::Server {
                    endpoint,
                    status: 400,
                    detail,
                } if longer => Error::Rejected {
                    endpoint,
                    error: "the lifetime was refused".into(),
                    description: Some(detail),
                    by: Some(Box::new(Rejecter::LifetimeExtension {
                        service_account: impersonated_email(self.url).unwrap_or_default(),
                        lifetime_secs: self.lifetime_secs,
                    })),
                },
                other => other,
            };
            e.rejected_by(Rejecter::Impersonation {
                service_account: impersonated_email(self.url).unwrap_or_default(),
                principal: self.principal.map(str::to_string),
                id_token: matches!(want, Want::Id { .. }),
            })
        })?;
        match want {
            Want::Access { scopes } => {
                let now = ctx.now();
                let generated: GeneratedAccessToken =
                    serde_json::from_slice(&bytes).map_err(|_| {
                        oauth::unexpected(
                            &endpoint,
                            status,
                            oauth::describe_body(&bytes, "has no accessToken and expireTime"),
                        )
                    })?;
                if !plausible_access_token(generated.access_token.expose()) {
                    return Err(oauth::unexpected(
                        &endpoint,
                        status,
                        "the accessToken is empty or holds spaces or control characters".into(),
                    ));
                }
                let expires_at = humantime::parse_rfc3339(&generated.expire_time)
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| {
                        d.as_secs()
                            .min(now.saturating_add(rules::MAX_LIFETIME_SECS))
                    })
                    .ok_or_else(|| {
                        oauth::unexpected(
                            &endpoint,
                            status,
                            "expireTime is not an RFC 3339 time".into(),
                        )
                    })?;
                Ok(Issued::Access(CachedToken::access(
                    generated.access_token,
                    "Bearer".into(),
                    now,
                    expires_at,
                    scopes.clone(),
                )))
            }
            Want::Id { .. } => {
                let generated: GeneratedIdToken = serde_json::from_slice(&bytes).map_err(|_| {
                    oauth::unexpected(
                        &endpoint,
                        status,
                        oauth::describe_body(&bytes, "has no token"),
                    )
                })?;
                Ok(Issued::Id {
                    endpoint,
                    token: generated.token,
                })
            }
        }
    }
}

/// The IAM Credentials `generateIdToken` URL of an impersonation URL (`…:generateAccessToken`),
/// so that it follows the file's endpoint.
fn generate_id_token_url(access_url: &str) -> Result<Url> {
    let url = rules::endpoint("service_account_impersonation_url", access_url)?;
    let Some(account) = url.path().strip_suffix(GENERATE_ACCESS_TOKEN) else {
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

/// The service account named in an IAM Credentials URL
/// (`…/serviceAccounts/NAME@PROJECT.iam.gserviceaccount.com:generateAccessToken`).
pub(crate) fn impersonated_email(url: &str) -> Option<String> {
    let tail = url.rsplit('/').next()?;
    let email = tail.split(':').next()?;
    email.contains('@').then(|| email.to_string())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::credentials::parse_credential_file;
    use crate::testing::{Fake, NOW, context, jwt, path, run};

    const ACCESS_URL: &str = "http://127.0.0.1:1/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateAccessToken";

    fn impersonated() -> Credential {
        let file = json!({"type": "impersonated_service_account",
            "service_account_impersonation_url": ACCESS_URL, "delegates": ["d@p.iam.gserviceaccount.com"],
            "source_credentials": {"type": "authorized_user", "client_id": "id", "account": "dev@example.com",
                "client_secret": "s", "refresh_token": "1//r1", "token_uri": "http://127.0.0.1:1/token"}});
        parse_credential_file(Path::new("imp.json"), file.to_string().as_bytes()).unwrap()
    }

    fn mint(
        credential: &Credential,
        want: &Want,
        iam: impl Fn() -> (u16, String) + Send + Sync + 'static,
        source: Value,
    ) -> (Result<Minted>, Fake) {
        let fake = Fake::default();
        let http = fake.http(move |request| match path(request) {
            "/token" => Ok((200, source.to_string())),
            _ => Ok(iam()),
        });
        let minted = run(credential.mint(&context(http, &[], None), want));
        (minted, fake)
    }

    #[test]
    fn the_source_token_is_traded_for_the_service_accounts() {
        let credential = impersonated();
        let expire = "2027-01-15T09:00:00Z";
        let (minted, fake) = mint(
            &credential,
            &Want::access(vec!["scope-a".into()]),
            move || {
                (
                    200,
                    json!({"accessToken": "ya29.imp", "expireTime": expire}).to_string(),
                )
            },
            json!({"access_token": "ya29.source"}),
        );
        let Ok(Issued::Access(token)) = minted.unwrap().issued else {
            panic!("no access token");
        };
        assert_eq!(token.access_token.unwrap().expose(), "ya29.imp");
        assert_eq!(token.expires_at, NOW + 3600);
        assert_eq!(token.scopes, ["scope-a"]);
        let seen = fake.seen();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[1].url, ACCESS_URL);
        assert_eq!(seen[1].bearer.as_deref(), Some("ya29.source"));
        let body = seen[1].json.clone().unwrap();
        assert_eq!(body["scope"], json!(["scope-a"]));
        assert_eq!(body["delegates"], json!(["d@p.iam.gserviceaccount.com"]));
        assert_eq!(body["lifetime"], "3600s");
    }

    #[test]
    fn an_id_token_comes_from_generate_id_token() {
        let credential = impersonated();
        let id = jwt(&json!({"aud": "https://svc", "exp": NOW + 3600}));
        let answer = json!({ "token": id }).to_string();
        let want = Want::Id {
            audience: "https://svc".into(),
            include_email: true,
        };
        let (minted, fake) = mint(
            &credential,
            &want,
            move || (200, answer.clone()),
            json!({"access_token": "ya29.source"}),
        );
        let Ok(Issued::Id { token, endpoint }) = minted.unwrap().issued else {
            panic!("no ID token");
        };
        assert_eq!(token.expose(), &id);
        assert!(endpoint.ends_with(":generateIdToken"), "{endpoint}");
        let body = fake.seen()[1].json.clone().unwrap();
        assert_eq!(body["audience"], "https://svc");
        assert_eq!(body["includeEmail"], true);
    }

    #[test]
    fn permission_denied_names_the_role_the_account_and_the_principal() {
        let credential = impersonated();
        let denied = json!({"error": {"code": 403, "status": "PERMISSION_DENIED",
            "message": "Permission 'iam.serviceAccounts.getOpenIdToken' denied"}})
        .to_string();
        let want = Want::Id {
            audience: "https://svc".into(),
            include_email: false,
        };
        let (minted, _) = mint(
            &credential,
            &want,
            move || (403, denied.clone()),
            json!({"access_token": "ya29.source"}),
        );
        let e = minted.unwrap().issued.unwrap_err();
        assert!(e.to_string().contains("PERMISSION_DENIED"), "{e}");
        let (hint, _) = crate::testing::hint(e);
        assert!(
            hint.contains("roles/iam.serviceAccountOpenIdTokenCreator"),
            "{hint}"
        );
        assert!(hint.contains("sa@p.iam.gserviceaccount.com"), "{hint}");
        assert!(hint.contains("dev@example.com"), "{hint}");
        assert!(!hint.contains("gemauth login"), "{hint}");

        let denied =
            json!({"error": {"code": 403, "status": "PERMISSION_DENIED", "message": "no"}});
        let (minted, _) = mint(
            &credential,
            &Want::access(Vec::new()),
            move || (403, denied.to_string()),
            json!({"access_token": "ya29.source"}),
        );
        let (hint, _) = crate::testing::hint(minted.unwrap().issued.unwrap_err());
        assert!(
            hint.contains("roles/iam.serviceAccountTokenCreator"),
            "{hint}"
        );
    }

    #[test]
    fn a_rotated_source_token_comes_back_even_when_iam_fails() {
        let credential = impersonated();
        let (minted, _) = mint(
            &credential,
            &Want::access(Vec::new()),
            || {
                (
                    400,
                    r#"{"error": {"status": "FAILED_PRECONDITION"}}"#.into(),
                )
            },
            json!({"access_token": "ya29.source", "refresh_token": "1//r2"}),
        );
        let minted = minted.unwrap();
        assert_eq!(minted.rotated.unwrap().expose(), "1//r2");
        assert!(matches!(
            minted.issued,
            Err(Error::Server { status: 400, .. })
        ));
        assert_eq!(
            credential.rotating_field(),
            Some(vec!["source_credentials", "refresh_token"])
        );
    }

    #[test]
    fn a_refused_source_user_is_told_to_sign_in_for_the_impersonation() {
        let credential = impersonated();
        let fake = Fake::default();
        let http = fake.http(|_| Ok((400, r#"{"error":"invalid_grant"}"#.into())));
        let e =
            run(credential.mint(&context(http, &[], None), &Want::access(Vec::new()))).unwrap_err();
        let (hint, _) = crate::testing::hint(e);
        // Signing in again for the same impersonation (not a plain user login) is the fix.
        assert!(
            hint.contains(
                "gemauth login --client-id-file client_secret.json \
                 --impersonate-service-account sa@p.iam.gserviceaccount.com"
            ),
            "{hint}"
        );
        assert_eq!(fake.seen().len(), 1);
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

    #[test]
    fn an_impersonation_cannot_be_a_source() {
        let file = json!({"type": "impersonated_service_account",
            "service_account_impersonation_url": ACCESS_URL,
            "source_credentials": {"type": "impersonated_service_account",
                "service_account_impersonation_url": ACCESS_URL}});
        let e =
            parse_credential_file(Path::new("i.json"), file.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("cannot be impersonated from"), "{e}");
    }

    #[test]
    fn service_account_lists_are_read_as_gcloud_does() {
        assert_eq!(
            parse_service_accounts("sa@p.iam.gserviceaccount.com").unwrap(),
            ("sa@p.iam.gserviceaccount.com".to_string(), vec![])
        );
        assert_eq!(
            parse_service_accounts(
                " a@p.iam.gserviceaccount.com , b@p.iam.gserviceaccount.com,123456789"
            )
            .unwrap(),
            (
                "123456789".to_string(),
                vec![
                    "a@p.iam.gserviceaccount.com".to_string(),
                    "b@p.iam.gserviceaccount.com".to_string()
                ]
            )
        );
        for bad in ["", ",", "a@p,", "sa@p/../x", "name", "sa@p?x=1", "a b@p"] {
            let e = parse_service_accounts(bad).unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{bad:?}: {e:?}");
            assert!(!e.to_string().contains("../x"), "{e}");
        }
    }

    #[test]
    fn the_impersonation_url_is_gclouds_unless_overridden() {
        let none = crate::env::Env::Fixed(Default::default());
        assert_eq!(
            impersonation_url(&none, "googleapis.com", "sa@p"),
            "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/sa@p:generateAccessToken"
        );
        let vars = [(
            ENV_IAMCREDENTIALS_OVERRIDE.to_string(),
            "https://iamcredentials-psc.p.googleapis.com/".to_string(),
        )];
        let psc = crate::env::Env::Fixed(vars.into_iter().collect());
        assert_eq!(
            impersonation_url(&psc, "googleapis.com", "sa@p"),
            "https://iamcredentials-psc.p.googleapis.com/v1/projects/-/serviceAccounts/sa@p:generateAccessToken"
        );
    }

    #[test]
    fn the_login_file_has_gclouds_shape_and_loads_back() {
        let Credential::Impersonated { source, .. } = impersonated() else {
            panic!("not an impersonation");
        };
        let Credential::User(mut user) = *source else {
            panic!("not a user source");
        };
        user.quota_project_id = Some("client-project".into());
        let env = crate::env::Env::Fixed(Default::default());
        let bytes = login_file(
            &user,
            "t@p.iam.gserviceaccount.com",
            &["d@p".into()],
            None,
            &env,
        )
        .unwrap();
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "delegates",
                "service_account_impersonation_url",
                "source_credentials",
                "type"
            ]
        );
        assert!(
            value["source_credentials"]
                .get("quota_project_id")
                .is_none()
        );
        assert_eq!(value["source_credentials"]["refresh_token"], "1//r1");
        let with_project = login_file(
            &user,
            "t@p.iam.gserviceaccount.com",
            &[],
            Some("billing-1"),
            &env,
        )
        .unwrap();
        let loaded = parse_credential_file(Path::new("adc.json"), &with_project).unwrap();
        assert_eq!(loaded.quota_project().as_deref(), Some("billing-1"));
        assert_eq!(
            loaded.identity().as_deref(),
            Some("t@p.iam.gserviceaccount.com")
        );
        // The source's rotating refresh token is inside source_credentials.
        assert_eq!(
            loaded.rotating_field(),
            Some(vec!["source_credentials", "refresh_token"])
        );
    }

    #[test]
    fn per_call_impersonation_wraps_the_credential_and_keys_its_cache() {
        let Credential::Impersonated { source, .. } = impersonated() else {
            panic!("not an impersonation");
        };
        let env = crate::env::Env::Fixed(Default::default());
        let acting = Acting {
            impersonate: Some(("t@p.iam.gserviceaccount.com".into(), vec![])),
            lifetime_secs: Some(600),
        };
        let user_key = source.cache_key(&[]);
        let wrapped = acting.apply(*source, Path::new("adc.json"), &env).unwrap();
        let Credential::Impersonated { file, .. } = &wrapped else {
            panic!("not wrapped");
        };
        assert!(file.per_call);
        assert_eq!(file.lifetime_secs, Some(600));
        assert_ne!(wrapped.cache_key(&[]), user_key);
        // A rotated refresh token is the user file's own field.
        assert_eq!(wrapped.rotating_field(), Some(vec!["refresh_token"]));
        // Another lifetime is another cache entry.
        let Credential::Impersonated { source, .. } = impersonated() else {
            panic!();
        };
        let hour = Acting {
            lifetime_secs: None,
            ..acting.clone()
        }
        .apply(*source, Path::new("adc.json"), &env)
        .unwrap();
        assert_ne!(hour.cache_key(&[]), wrapped.cache_key(&[]));

        // --lifetime alone needs an impersonation.
        let Credential::Impersonated { source, .. } = impersonated() else {
            panic!();
        };
        let e = Acting {
            impersonate: None,
            lifetime_secs: Some(600),
        }
        .apply(*source, Path::new("adc.json"), &env)
        .unwrap_err();
        assert!(matches!(e, Error::Usage(_)), "{e:?}");
    }

    #[test]
    fn a_refused_longer_lifetime_names_the_organization_policy() {
        let mut credential = impersonated();
        if let Credential::Impersonated { file, .. } = &mut credential {
            file.lifetime_secs = Some(43_200);
        }
        let (minted, fake) = mint(
            &credential,
            &Want::access(vec![CLOUD_PLATFORM.into()]),
            || {
                (
                    400,
                    r#"{"error":{"code":400,"message":"lifetime too long","status":"INVALID_ARGUMENT"}}"#.into(),
                )
            },
            json!({"access_token": "ya29.user", "expires_in": 3600}),
        );
        assert_eq!(fake.seen()[1].json.as_ref().unwrap()["lifetime"], "43200s");
        let e = minted.unwrap().issued.unwrap_err();
        let (hint, code) = crate::testing::hint(e);
        assert!(
            hint.contains("constraints/iam.allowServiceAccountCredentialLifetimeExtension"),
            "{hint}"
        );
        assert!(hint.contains("sa@p.iam.gserviceaccount.com"), "{hint}");
        assert_eq!(code, crate::exit::EXIT_CREDENTIALS);
    }

    #[test]
    fn lifetime_sets_a_federations_impersonation_lifetime() {
        let file = json!({"type": "external_account", "audience": "//iam.googleapis.com/pool",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": "http://127.0.0.1:1/v1/token",
            "service_account_impersonation_url": ACCESS_URL,
            "credential_source": {"file": "/dev/null"}});
        let parsed =
            || parse_credential_file(Path::new("ext.json"), file.to_string().as_bytes()).unwrap();
        let env = crate::env::Env::Fixed(Default::default());
        let plain_key = parsed().cache_key(&[]);
        let longer = Acting {
            impersonate: None,
            lifetime_secs: Some(7200),
        }
        .apply(parsed(), Path::new("ext.json"), &env)
        .unwrap();
        let Credential::External { config, .. } = &longer else {
            panic!("not an external account");
        };
        assert_eq!(
            config
                .service_account_impersonation
                .as_ref()
                .and_then(|o| o.token_lifetime_seconds),
            Some(7200)
        );
        assert_ne!(longer.cache_key(&[]), plain_key);
    }
}
