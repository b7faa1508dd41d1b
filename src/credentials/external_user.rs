//! `external_account_authorized_user`: a workforce identity federation user's refresh token
//! (what `gcloud auth application-default login --login-config` and `gemauth login
//! --login-config` write): parsing, cache key, identity, status details, the refresh grant at the
//! Security Token Service with HTTP Basic client authentication (as google-auth sends it), its
//! revocation, and its rotating field.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use super::{Credential, FileProblem, IdTokenSupport, Issued, Minted, SecretEndpoint, Want};
use crate::context::Context;
use crate::error::{Rejecter, Result};
use crate::oauth::{self, Http, HttpRequest, Revocation, Sent};
use crate::rules::{self, endpoint_name};
use crate::secret::Secret;

/// The `type` of a workforce user credential file.
pub(crate) const EXTERNAL_AUTHORIZED_USER: &str = "external_account_authorized_user";

/// The field of the file that the server may rotate.
pub(super) const ROTATING_FIELD: &str = "refresh_token";

/// Google's defaults for the endpoints, with `{}` for the universe's domain (what `gcloud iam
/// workforce-pools create-login-config` writes).
const DEFAULT_TOKEN_URL: &str = "https://sts.{}/v1/oauthtoken";
const DEFAULT_TOKEN_INFO_URL: &str = "https://sts.{}/v1/introspect";
const DEFAULT_REVOKE_URL: &str = "https://sts.{}/v1/revoke";

/// An `external_account_authorized_user` file, as google-auth reads it. Fields gemauth does not
/// know are kept in `extra` and written back unchanged; its `Debug` shows only their names (a
/// file written by google-auth's `to_json()` may keep a live access token there).
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct ExternalAuthorizedUser {
    #[serde(rename = "type")]
    pub kind: String,
    /// The workforce pool provider: `//iam.googleapis.com/locations/L/workforcePools/P/providers/Q`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    pub refresh_token: Secret<String>,
    pub token_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_info_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_url: Option<String>,
    pub client_id: String,
    pub client_secret: Secret<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_project_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub universe_domain: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl std::fmt::Debug for ExternalAuthorizedUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalAuthorizedUser")
            .field("audience", &self.audience)
            .field("refresh_token", &self.refresh_token)
            .field("token_url", &self.token_url)
            .field("token_info_url", &self.token_info_url)
            .field("revoke_url", &self.revoke_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("quota_project_id", &self.quota_project_id)
            .field("universe_domain", &self.universe_domain)
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What `status` shows of a workforce user credential.
#[derive(Debug, Serialize)]
pub(crate) struct ExternalUserDetails {
    pub(crate) audience: Option<String>,
    pub(crate) workforce_pool: Option<String>,
    pub(crate) provider: Option<String>,
    pub(crate) client_id: String,
    pub(crate) token_url: String,
    pub(crate) token_info_url: Option<String>,
    pub(crate) revoke_url: Option<String>,
    pub(crate) universe_domain: String,
}

/// Parses an `external_account_authorized_user` file: the fields google-auth needs to refresh
/// (`refresh_token`, `token_url`, `client_id`, `client_secret`) present and not empty, every
/// endpoint a valid https (or loopback) URL.
pub(super) fn parse(map: Map<String, Value>, problem: FileProblem) -> Result<Credential> {
    let user: ExternalAuthorizedUser = problem.typed(map)?;
    problem.nonempty("refresh_token", user.refresh_token.expose())?;
    problem.nonempty("token_url", &user.token_url)?;
    problem.nonempty("client_id", &user.client_id)?;
    problem.nonempty("client_secret", user.client_secret.expose())?;
    if let Some(audience) = &user.audience {
        problem.nonempty("audience", audience)?;
    }
    rules::endpoint("token_url", &user.token_url)?;
    if let Some(url) = &user.token_info_url {
        rules::endpoint("token_info_url", url)?;
    }
    if let Some(url) = &user.revoke_url {
        rules::endpoint("revoke_url", url)?;
    }
    Ok(Credential::ExternalUser(Box::new(user)))
}

/// The workforce pool and provider an audience names
/// (`//iam.googleapis.com/locations/global/workforcePools/POOL/providers/PROVIDER`).
pub(crate) fn workforce_pool(audience: &str) -> Option<(String, Option<String>)> {
    let (_, rest) = audience.split_once("/workforcePools/")?;
    let mut parts = rest.split('/');
    let pool = parts.next().filter(|p| !p.is_empty())?;
    let provider = match (parts.next(), parts.next()) {
        (Some("providers"), Some(provider)) if !provider.is_empty() => Some(provider),
        _ => None,
    };
    Some((rules::sanitize(pool), provider.map(rules::sanitize)))
}

impl ExternalAuthorizedUser {
    /// The token endpoint to refresh at.
    pub(crate) fn token_endpoint(&self) -> Result<Url> {
        Ok(rules::endpoint("token_url", &self.token_url)?)
    }

    /// The revocation endpoint, when the file names one (google-auth revokes only then).
    pub(crate) fn revoke_endpoint(&self) -> Result<Option<Url>> {
        match &self.revoke_url {
            Some(url) => Ok(Some(rules::endpoint("revoke_url", url)?)),
            None => Ok(None),
        }
    }

    /// The endpoints that receive the refresh token or the client secret.
    pub(crate) fn secret_endpoints(&self) -> Vec<SecretEndpoint> {
        let universe = self.universe_domain.as_deref();
        let mut all = vec![SecretEndpoint::new(
            "token_url",
            &self.token_url,
            universe,
            DEFAULT_TOKEN_URL,
        )];
        for (field, url, default) in [
            (
                "token_info_url",
                &self.token_info_url,
                DEFAULT_TOKEN_INFO_URL,
            ),
            ("revoke_url", &self.revoke_url, DEFAULT_REVOKE_URL),
        ] {
            if let Some(url) = url {
                all.push(SecretEndpoint::new(field, url, universe, default));
            }
        }
        all
    }

    /// Serializes the file as written to disk (pretty JSON, trailing newline).
    pub(crate) fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Who the tokens act as: the workforce pool's user, named by pool and provider.
    pub(super) fn identity(&self) -> Option<String> {
        let audience = self.audience.as_deref()?;
        Some(match workforce_pool(audience) {
            Some((pool, Some(provider))) => {
                format!("a user of workforce pool {pool} (provider {provider})")
            }
            Some((pool, None)) => format!("a user of workforce pool {pool}"),
            None => rules::sanitize(audience),
        })
    }

    /// The parts of the cache key: the client, the refresh token (hashed with the rest) and the
    /// token endpoint.
    pub(super) fn key_parts(&self) -> Vec<String> {
        vec![
            EXTERNAL_AUTHORIZED_USER.into(),
            self.client_id.clone(),
            self.refresh_token.expose().clone(),
            self.token_url.clone(),
        ]
    }

    /// What `status` shows.
    pub(super) fn details(&self) -> ExternalUserDetails {
        let pool = self.audience.as_deref().and_then(workforce_pool);
        ExternalUserDetails {
            audience: self.audience.clone(),
            workforce_pool: pool.as_ref().map(|(p, _)| p.clone()),
            provider: pool.and_then(|(_, provider)| provider),
            client_id: self.client_id.clone(),
            token_url: self.token_url.clone(),
            token_info_url: self.token_info_url.clone(),
            revoke_url: self.revoke_url.clone(),
            universe_domain: rules::universe_domain(self.universe_domain.as_deref()).to_string(),
        }
    }

    /// The Security Token Service issues access tokens only.
    pub(super) fn id_tokens() -> IdTokenSupport {
        IdTokenSupport::Unavailable {
            status: "no: a workforce identity federation user login has no ID tokens",
            problem: "an external_account_authorized_user credential (a workforce identity \
                federation login) cannot have ID tokens: the Security Token Service issues \
                access tokens only",
            hint: "use a credential that has ID tokens: a Google account login (`gemauth login \
                --client-id-file client_secret.json`), a service account, or service account \
                impersonation",
        }
    }

    /// Who refused the refresh token.
    fn rejecter(&self) -> Rejecter {
        Rejecter::WorkforceUser {
            audience: self.audience.clone(),
        }
    }

    /// The refresh grant at `token_url`, as google-auth sends it: `grant_type` and
    /// `refresh_token` in the form, the client in an HTTP Basic header.
    pub(super) async fn mint(&self, ctx: &Context, want: &Want) -> Result<Minted> {
        if let Want::Id { .. } = want {
            return Err(Self::id_tokens().unavailable());
        }
        let token_url = self.token_endpoint()?;
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", self.refresh_token.expose().as_str()),
        ];
        let request = HttpRequest::form(&token_url, &form)
            .basic(&self.client_id, self.client_secret.expose());
        let (status, body) = ctx.http()?.send(&request).await?;
        let response = oauth::parse_token_response(
            &endpoint_name(&token_url),
            status,
            &body,
            &Sent::of(&request),
        )
        .map_err(|e| e.rejected_by(self.rejecter()))?;
        let rotated = response
            .refresh_token
            .clone()
            .filter(|new| new.expose() != self.refresh_token.expose());
        Ok(Minted {
            issued: Ok(Issued::Access(response.cached_at(ctx.now(), Vec::new()))),
            rotated,
            access: None,
        })
    }

    /// Revokes the refresh token at `revoke_url` (RFC 7009, as google-auth does: `token` and
    /// `token_type_hint` in the form, the client in an HTTP Basic header).
    pub(crate) async fn revoke(&self, http: &Http, revoke_url: &Url) -> Result<Revocation> {
        let form = [
            ("token", self.refresh_token.expose().as_str()),
            ("token_type_hint", "refresh_token"),
        ];
        let request = HttpRequest::form(revoke_url, &form)
            .basic(&self.client_id, self.client_secret.expose());
        let (status, body) = http.send(&request).await?;
        oauth::revocation(revoke_url, status, &body, &Sent::of(&request))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::credentials::parse_credential_file;
    use crate::env::Env;
    use crate::error::Error;
    use crate::testing::{Fake, NOW, context, run};

    const AUDIENCE: &str =
        "//iam.googleapis.com/locations/global/workforcePools/pool-1/providers/okta";

    fn file(extra: Value) -> Value {
        let mut file = json!({"type": "external_account_authorized_user", "audience": AUDIENCE,
            "refresh_token": "refreshToken", "token_url": "http://127.0.0.1:1/v1/oauthtoken",
            "token_info_url": "http://127.0.0.1:1/v1/introspect",
            "revoke_url": "http://127.0.0.1:1/v1/revoke",
            "client_id": "clientId", "client_secret": "clientSecret"});
        if let (Value::Object(file), Value::Object(extra)) = (&mut file, extra) {
            file.extend(extra);
        }
        file
    }

    fn user(extra: Value) -> ExternalAuthorizedUser {
        match parse_credential_file(Path::new("wf.json"), file(extra).to_string().as_bytes()) {
            Ok(Credential::ExternalUser(user)) => *user,
            other => panic!("not a workforce user: {other:?}"),
        }
    }

    fn mint(user: &ExternalAuthorizedUser, status: u16, answer: Value) -> (Result<Minted>, Fake) {
        let fake = Fake::default();
        let http = fake.http(move |_| Ok((status, answer.to_string())));
        let minted = run(user.mint(&context(http, &[], None), &Want::access(Vec::new())));
        (minted, fake)
    }

    #[test]
    fn the_refresh_grant_sends_the_form_and_basic_client_authentication_as_google_auth() {
        let user = user(json!({}));
        let (minted, fake) = mint(
            &user,
            200,
            json!({"access_token": "ya29.wf", "expires_in": 3600, "token_type": "Bearer"}),
        );
        let minted = minted.unwrap();
        let Ok(Issued::Access(token)) = minted.issued else {
            panic!("no access token");
        };
        assert_eq!(token.access_token.unwrap().expose(), "ya29.wf");
        assert_eq!((token.obtained_at, token.expires_at), (NOW, NOW + 3600));
        assert!(minted.rotated.is_none());
        let seen = fake.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].url, "http://127.0.0.1:1/v1/oauthtoken");
        // google-auth's sts.Client.refresh_token: exactly these two fields in the body.
        assert_eq!(
            seen[0].form,
            [
                ("grant_type".to_string(), "refresh_token".to_string()),
                ("refresh_token".to_string(), "refreshToken".to_string())
            ]
            .into()
        );
        assert_eq!(
            seen[0].basic,
            Some(("clientId".to_string(), "clientSecret".to_string()))
        );
    }

    #[test]
    fn a_new_refresh_token_is_a_rotation_and_the_same_one_is_not() {
        let user = user(json!({}));
        let (minted, _) = mint(
            &user,
            200,
            json!({"access_token": "a", "expires_in": 3600, "refresh_token": "newRefreshToken"}),
        );
        assert_eq!(minted.unwrap().rotated.unwrap().expose(), "newRefreshToken");
        let (minted, _) = mint(
            &user,
            200,
            json!({"access_token": "a", "expires_in": 3600, "refresh_token": "refreshToken"}),
        );
        assert!(minted.unwrap().rotated.is_none());
        let credential = Credential::ExternalUser(Box::new(user));
        assert_eq!(credential.rotating_field(), Some(vec!["refresh_token"]));
    }

    #[test]
    fn a_refused_refresh_token_names_the_workforce_login_and_masks_what_was_sent() {
        let user = user(json!({}));
        let (minted, _) = mint(
            &user,
            400,
            json!({"error": "invalid_grant", "error_description": "bad refreshToken for clientSecret"}),
        );
        let e = minted.unwrap_err();
        assert!(
            matches!(&e, Error::Rejected { by: Some(by), .. }
                if matches!(**by, Rejecter::WorkforceUser { .. })),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            !text.contains("refreshToken") && !text.contains("clientSecret"),
            "{text}"
        );
        let (hint, code) = crate::testing::hint(e);
        assert!(
            hint.contains("gemauth login --login-config") && !hint.contains("--client-id-file"),
            "{hint}"
        );
        assert_eq!(code, crate::commands::report::EXIT_CREDENTIALS);

        let (minted, _) = mint(&user, 503, json!({"error": "unavailable"}));
        assert!(minted.unwrap_err().is_retryable());
    }

    #[test]
    fn id_tokens_are_refused_with_the_reason() {
        let user = user(json!({}));
        let fake = Fake::default();
        let http = fake.http(|_| Ok((200, "{}".into())));
        let want = Want::Id {
            audience: "https://run.example".into(),
            include_email: false,
        };
        let e = run(user.mint(&context(http, &[], None), &want)).unwrap_err();
        assert!(
            matches!(&e, Error::IdTokenRequest { problem, .. } if problem.contains("access tokens only")),
            "{e:?}"
        );
        assert!(fake.seen().is_empty());
        let credential = Credential::ExternalUser(Box::new(user));
        assert!(matches!(
            credential.id_tokens(),
            IdTokenSupport::Unavailable { .. }
        ));
    }

    #[test]
    fn revocation_sends_the_token_and_its_hint_with_basic_client_authentication() {
        let user = user(json!({}));
        let fake = Fake::default();
        let http = fake.http(|_| Ok((200, String::new())));
        let url = user.revoke_endpoint().unwrap().unwrap();
        assert_eq!(run(user.revoke(&http, &url)).unwrap(), Revocation::Revoked);
        let seen = fake.seen();
        assert_eq!(seen[0].url, "http://127.0.0.1:1/v1/revoke");
        assert_eq!(seen[0].form["token"], "refreshToken");
        assert_eq!(seen[0].form["token_type_hint"], "refresh_token");
        assert_eq!(seen[0].form.len(), 2);
        assert_eq!(
            seen[0].basic,
            Some(("clientId".to_string(), "clientSecret".to_string()))
        );
        let http = Fake::default().http(|_| Ok((400, r#"{"error":"invalid_token"}"#.into())));
        assert_eq!(
            run(user.revoke(&http, &url)).unwrap(),
            Revocation::AlreadyInvalid
        );
    }

    #[test]
    fn the_endpoint_rule_refuses_a_foreign_host_in_any_endpoint_field() {
        let env = Env::Fixed(Default::default());
        for field in ["token_url", "token_info_url", "revoke_url"] {
            let credential = parse_credential_file(
                Path::new("wf.json"),
                file(json!({field: "https://sts.evil.example/x?key=planted"}))
                    .to_string()
                    .as_bytes(),
            )
            .unwrap();
            let e = credential
                .check_endpoints(Path::new("wf.json"), &env)
                .unwrap_err();
            assert!(
                matches!(&e, Error::UntrustedEndpoint { field: f, host, .. }
                    if f == field && host == "sts.evil.example"),
                "{e:?}"
            );
            assert!(!e.to_string().contains("planted"), "{e}");
        }
        // Google's own, and a universe domain's, are accepted; the defaults are not "custom".
        let google = json!({"token_url": "https://sts.googleapis.com/v1/oauthtoken",
            "token_info_url": "https://sts.googleapis.com/v1/introspect",
            "revoke_url": "https://sts.googleapis.com/v1/revoke"});
        let credential =
            parse_credential_file(Path::new("wf.json"), file(google).to_string().as_bytes())
                .unwrap();
        assert!(
            credential
                .check_endpoints(Path::new("wf.json"), &env)
                .is_ok()
        );
        assert!(credential.custom_endpoints().is_empty());
        let universe = json!({"universe_domain": "example-universe.test",
            "token_url": "https://sts.example-universe.test/v1/oauthtoken"});
        let credential =
            parse_credential_file(Path::new("wf.json"), file(universe).to_string().as_bytes())
                .unwrap();
        assert!(
            credential
                .check_endpoints(Path::new("wf.json"), &env)
                .is_ok()
        );
    }

    #[test]
    fn parsing_errors_name_the_field_and_never_its_value() {
        let parse =
            |v: Value| parse_credential_file(Path::new("wf.json"), v.to_string().as_bytes());
        for missing in ["refresh_token", "token_url", "client_id", "client_secret"] {
            let mut f = file(json!({}));
            f.as_object_mut().unwrap().remove(missing);
            let e = parse(f).unwrap_err().to_string();
            assert!(
                e.contains(missing) && e.starts_with("credential file wf.json"),
                "{e}"
            );
            let e = parse(file(json!({missing: " "}))).unwrap_err().to_string();
            assert!(e.contains(&format!("\"{missing}\" is empty")), "{e}");
        }
        let e = parse(file(json!({"client_secret": ["planted-secret"]})))
            .unwrap_err()
            .to_string();
        assert!(
            !e.contains("planted") && e.contains("client_secret: invalid type"),
            "{e}"
        );
        let e = parse(file(json!({"token_url": "ftp://planted.example/x"})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("token_url"), "{e}");
        let e = parse(file(json!({"revoke_url": "not a url planted"})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("revoke_url") && !e.contains("planted"), "{e}");
    }

    #[test]
    fn google_auths_test_file_is_read_and_status_names_the_pool() {
        // google-auth's tests/data/external_account_authorized_user.json.
        let vector = json!({"type": "external_account_authorized_user",
            "audience": "//iam.googleapis.com/locations/global/workforcePools/$WORKFORCE_POOL_ID/providers/$PROVIDER_ID",
            "refresh_token": "refreshToken",
            "token_url": "https://sts.googleapis.com/v1/oauth/token",
            "token_info_url": "https://sts.googleapis.com/v1/instrospect",
            "client_id": "clientId", "client_secret": "clientSecret"});
        let credential =
            parse_credential_file(Path::new("wf.json"), vector.to_string().as_bytes()).unwrap();
        assert_eq!(credential.type_name(), EXTERNAL_AUTHORIZED_USER);
        assert_eq!(
            credential.identity().as_deref(),
            Some("a user of workforce pool $WORKFORCE_POOL_ID (provider $PROVIDER_ID)")
        );
        let Credential::ExternalUser(user) = &credential else {
            panic!("not a workforce user");
        };
        let details = user.details();
        assert_eq!(
            details.workforce_pool.as_deref(),
            Some("$WORKFORCE_POOL_ID")
        );
        assert_eq!(details.universe_domain, "googleapis.com");
        // Not the default paths gcloud writes: shown as custom endpoints, but Google's hosts.
        assert!(
            credential
                .check_endpoints(Path::new("wf.json"), &Env::Fixed(Default::default()))
                .is_ok()
        );
        assert_eq!(credential.custom_endpoints().len(), 2);
        assert_eq!(
            workforce_pool("//iam.googleapis.com/locations/global/workforcePools/p"),
            Some(("p".to_string(), None))
        );
        assert_eq!(workforce_pool("//iam.googleapis.com/projects/1"), None);
        let text = format!("{credential:?}");
        assert!(
            !text.contains("refreshToken") && !text.contains("clientSecret"),
            "{text}"
        );
    }

    #[test]
    fn the_file_written_back_keeps_unknown_fields() {
        let user = user(json!({"token": "ya29.kept", "future_field": 1}));
        let written: Value = serde_json::from_slice(&user.to_json()).unwrap();
        assert_eq!(written["future_field"], 1);
        assert_eq!(written["type"], EXTERNAL_AUTHORIZED_USER);
        assert_eq!(written["refresh_token"], "refreshToken");
        assert!(!format!("{user:?}").contains("ya29.kept"));
    }
}
