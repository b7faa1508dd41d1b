//! `authorized_user`: a user's refresh token (gemauth's and gcloud's ADC file, and google-auth's
//! `token.json`, which has no `type`): parsing, cache key, identity, status details, the refresh
//! grant that mints access tokens and the OAuth client's ID token, and its rotating field.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use super::{Credential, FileProblem, IdTokenSupport, Issued, Minted, Want};
use crate::context::Context;
use crate::error::{Error, Rejecter, Result};
use crate::oauth;
use crate::rules::{self, endpoint_name, missing_scopes, plausible_access_token, scope_granted};
use crate::secret::Secret;
use crate::store::CachedToken;

/// The `type` of a user credential file.
pub(crate) const AUTHORIZED_USER: &str = "authorized_user";

/// The fields that make a file without `type` a user credential (google-auth's
/// `from_authorized_user_info` needs exactly these).
pub(super) const TOKEN_JSON_FIELDS: [&str; 3] = ["client_id", "client_secret", "refresh_token"];

/// Longest remaining lifetime believed of an access token saved in a `token.json`: Google's
/// access tokens last an hour.
pub(crate) const SAVED_TOKEN_MAX_LIFETIME_SECS: u64 = rules::HOUR_SECS;

/// The field of the file that the server may rotate.
pub(super) const ROTATING_FIELD: &str = "refresh_token";

/// Scopes as stored: a JSON list (gemauth) or a space-separated string (some older tools).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub(crate) enum Scopes {
    List(Vec<String>),
    Text(String),
}

impl Scopes {
    pub(crate) fn to_vec(&self) -> Vec<String> {
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
pub(crate) struct AuthorizedUser {
    /// `authorized_user`; empty for a google-auth `token.json` (`Credentials.to_json()`), which
    /// has no `type` field and is read as a user credential all the same.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    pub client_id: String,
    pub client_secret: Secret<String>,
    pub refresh_token: Secret<String>,
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

/// What `status` shows of a user credential.
#[derive(Debug, Serialize)]
pub(crate) struct UserDetails {
    pub(crate) client_id: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) universe_domain: String,
    pub(crate) token_uri: String,
}

/// Parses an `authorized_user` file (or a `token.json`).
pub(super) fn parse(map: Map<String, Value>, problem: FileProblem) -> Result<Credential> {
    let user: AuthorizedUser = problem.typed(map)?;
    user.token_endpoint()?;
    user.revoke_endpoint()?;
    problem.nonempty("client_id", &user.client_id)?;
    problem.nonempty("client_secret", user.client_secret.expose())?;
    problem.nonempty("refresh_token", user.refresh_token.expose())?;
    Ok(Credential::User(Box::new(user)))
}

impl AuthorizedUser {
    /// The token endpoint to refresh at: the file's, else Google's.
    pub(crate) fn token_endpoint(&self) -> Result<Url> {
        Ok(rules::token_uri(self.token_uri.as_deref())?)
    }

    /// The revocation endpoint: the file's, else Google's.
    pub(crate) fn revoke_endpoint(&self) -> Result<Url> {
        Ok(rules::revoke_uri(self.revoke_uri.as_deref())?)
    }

    /// The endpoints that receive the refresh token and the client secret.
    pub(crate) fn secret_endpoints(&self) -> Vec<super::SecretEndpoint> {
        let universe = self.universe_domain.as_deref();
        [
            ("token_uri", &self.token_uri, "https://oauth2.{}/token"),
            ("revoke_uri", &self.revoke_uri, "https://oauth2.{}/revoke"),
        ]
        .into_iter()
        .filter_map(|(field, url, default)| {
            let url = url.as_deref()?;
            Some(super::SecretEndpoint::new(field, url, universe, default))
        })
        .collect()
    }

    /// Serializes the file as written to disk (pretty JSON, trailing newline).
    pub(crate) fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// True for a google-auth `token.json`: a user credential file without a `type` field.
    pub(crate) fn is_token_json(&self) -> bool {
        self.kind.is_empty()
    }

    /// The scopes granted at login, when the file lists them.
    pub(crate) fn granted(&self) -> Option<Vec<String>> {
        self.scopes.as_ref().map(Scopes::to_vec)
    }

    /// The scopes to sign in again with, when the login's were not the default ones.
    fn login_scopes(&self) -> Option<Vec<String>> {
        let granted = self.granted()?;
        let default = rules::DEFAULT_SCOPES;
        let same = granted.len() == default.len()
            && default.iter().all(|s| granted.iter().any(|g| g == s));
        (!same).then_some(granted)
    }

    /// The parts of the cache key: the client, the refresh token and the token endpoint.
    pub(super) fn key_parts(&self) -> Vec<String> {
        vec![
            self.client_id.clone(),
            self.refresh_token.expose().clone(),
            self.token_uri.clone().unwrap_or_default(),
        ]
    }

    /// What `status` shows.
    pub(super) fn details(&self) -> UserDetails {
        UserDetails {
            client_id: self.client_id.clone(),
            scopes: self.granted().unwrap_or_default(),
            universe_domain: rules::universe_domain(self.universe_domain.as_deref()).to_string(),
            token_uri: self
                .token_uri
                .clone()
                .unwrap_or_else(|| rules::GOOGLE_TOKEN_URI.into()),
        }
    }

    /// The scopes to ask for: none (the token carries every granted scope), after checking that
    /// those asked for were granted at login.
    pub(super) fn scopes(&self, requested: Option<&[String]>) -> Result<Vec<String>> {
        if let (Some(requested), Some(granted)) = (requested, self.granted()) {
            let missing = missing_scopes(requested, &granted);
            if !missing.is_empty() {
                return Err(Error::ScopesNotGranted {
                    missing: missing.join(" "),
                });
            }
        }
        Ok(Vec::new())
    }

    /// A user's ID token is for the OAuth client it signed in with, when the login granted
    /// `openid`.
    pub(super) fn id_tokens(&self) -> IdTokenSupport {
        let openid = self.granted().is_none_or(|g| scope_granted("openid", &g));
        IdTokenSupport::OwnClient {
            client_id: self.client_id.clone(),
            openid,
        }
    }

    /// The access token a google-auth `token.json` saved beside the refresh token (`token` and
    /// `expiry`), as a cache entry, when it can be believed at `now`: a token that fits in a
    /// header, an `expiry` in google-auth's format (UTC), still ahead, and at most one hour away
    /// (Google's access tokens last an hour; a later one was not written by google-auth).
    pub(crate) fn saved_access_token(&self, now: u64) -> Option<CachedToken> {
        let token = self.extra.get("token")?.as_str()?;
        let expiry = parse_google_auth_expiry(self.extra.get("expiry")?.as_str()?)?;
        let plausible = plausible_access_token(token)
            && expiry > now
            && expiry - now <= SAVED_TOKEN_MAX_LIFETIME_SECS;
        plausible.then(|| {
            CachedToken::access(
                Secret::new(token.to_string()),
                "Bearer".into(),
                // Google's access tokens last an hour: it was obtained an hour before it expires.
                expiry.saturating_sub(SAVED_TOKEN_MAX_LIFETIME_SECS),
                expiry,
                self.granted().unwrap_or_default(),
            )
        })
    }

    /// The refresh-token grant: the answer, and the new refresh token when the server rotated
    /// it (the same one again is no rotation).
    async fn refresh(
        &self,
        ctx: &Context,
    ) -> Result<(oauth::TokenResponse, Option<Secret<String>>)> {
        let token_uri = self.token_endpoint()?;
        let response = oauth::refresh(
            ctx.http()?,
            &token_uri,
            &self.client_id,
            &self.client_secret,
            &self.refresh_token,
        )
        .await
        .map_err(|e| {
            e.rejected_by(Rejecter::User {
                credential_file: None,
                scopes: self.login_scopes(),
            })
        })?;
        let rotated = response
            .refresh_token
            .clone()
            .filter(|new| new.expose() != self.refresh_token.expose());
        Ok((response, rotated))
    }

    /// Mints with the refresh grant: an access token, or the ID token that comes with it (the
    /// access token then comes too, for the cache).
    pub(super) async fn mint(&self, ctx: &Context, want: &Want) -> Result<Minted> {
        let (response, rotated) = self.refresh(ctx).await?;
        let access = response.cached_at(ctx.now(), Vec::new());
        let (issued, access) = match want {
            Want::Access { .. } => (Ok(Issued::Access(access)), None),
            Want::Id { .. } => {
                let issued = match response.id_token {
                    Some(token) => Ok(Issued::Id {
                        endpoint: endpoint_name(&self.token_endpoint()?),
                        token,
                    }),
                    None => Err(Error::ScopesNotGranted {
                        missing: "openid (the token endpoint sent no ID token)".into(),
                    }),
                };
                (issued, Some(access))
            }
        };
        Ok(Minted {
            issued,
            rotated,
            access,
        })
    }
}

/// Parses the `expiry` google-auth writes (`datetime.isoformat() + "Z"` of a naive UTC time:
/// `2026-12-04T01:00:00Z` or `2026-12-04T01:00:00.123456Z`), with or without the `Z`, as UTC.
/// Offsets and other shapes are refused, as google-auth itself would refuse them.
pub(crate) fn parse_google_auth_expiry(text: &str) -> Option<u64> {
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::credentials::parse_credential_file;
    use crate::testing::{Fake, NOW, context, jwt, run};

    fn user(extra: Value) -> AuthorizedUser {
        let mut file = json!({"type": "authorized_user", "client_id": "id.apps",
            "client_secret": "s3cret", "refresh_token": "1//r1",
            "token_uri": "http://127.0.0.1:1/token"});
        if let (Value::Object(file), Value::Object(extra)) = (&mut file, extra) {
            file.extend(extra);
        }
        match parse_credential_file(Path::new("c.json"), file.to_string().as_bytes()) {
            Ok(Credential::User(user)) => *user,
            other => panic!("not a user: {other:?}"),
        }
    }

    fn mint(user: &AuthorizedUser, answer: Value, want: &Want) -> (Result<Minted>, Fake) {
        let fake = Fake::default();
        let http = fake.http(move |_| Ok((200, answer.to_string())));
        let minted = run(user.mint(&context(http, &[], None), want));
        (minted, fake)
    }

    #[test]
    fn the_refresh_grant_mints_an_access_token() {
        let user = user(json!({}));
        let (minted, fake) = mint(
            &user,
            json!({"access_token": "ya29.a", "expires_in": 120, "scope": "openid x"}),
            &Want::access(Vec::new()),
        );
        let minted = minted.unwrap();
        let Ok(Issued::Access(token)) = minted.issued else {
            panic!("no access token");
        };
        assert_eq!(token.access_token.unwrap().expose(), "ya29.a");
        assert_eq!((token.obtained_at, token.expires_at), (NOW, NOW + 120));
        assert_eq!(token.scopes, ["openid", "x"]);
        assert!(minted.rotated.is_none() && minted.access.is_none());
        let seen = fake.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].url, "http://127.0.0.1:1/token");
        assert_eq!(seen[0].form["grant_type"], "refresh_token");
        assert_eq!(seen[0].form["refresh_token"], "1//r1");
        assert_eq!(seen[0].form["client_id"], "id.apps");
        assert_eq!(seen[0].form["client_secret"], "s3cret");
    }

    #[test]
    fn a_new_refresh_token_is_a_rotation_and_the_same_one_is_not() {
        let user = user(json!({}));
        let want = Want::access(Vec::new());
        let (minted, _) = mint(
            &user,
            json!({"access_token": "a", "refresh_token": "1//r2"}),
            &want,
        );
        assert_eq!(minted.unwrap().rotated.unwrap().expose(), "1//r2");
        let (minted, _) = mint(
            &user,
            json!({"access_token": "a", "refresh_token": "1//r1"}),
            &want,
        );
        assert!(minted.unwrap().rotated.is_none());
    }

    #[test]
    fn a_refused_refresh_token_is_the_users_and_its_hint_is_a_login() {
        let user = user(json!({}));
        let fake = Fake::default();
        let http = fake.http(|_| Ok((400, r#"{"error":"invalid_grant"}"#.into())));
        let ctx = context(http, &[], None);
        let e = run(user.mint(&ctx, &Want::access(Vec::new()))).unwrap_err();
        assert!(
            matches!(&e, Error::Rejected { by: Some(by), .. } if matches!(**by, Rejecter::User { .. })),
            "{e:?}"
        );
        assert!(!e.is_retryable());
        let (hint, code) = crate::testing::hint(e);
        assert_eq!(
            hint,
            "run `gemauth login --client-id-file client_secret.json` to sign in again"
        );
        assert_eq!(code, crate::commands::report::EXIT_CREDENTIALS);

        let http = Fake::default().http(|_| {
            Ok((
                400,
                r#"{"error":"invalid_grant","error_subtype":"invalid_rapt"}"#.into(),
            ))
        });
        let e = run(user.mint(&context(http, &[], None), &Want::access(Vec::new()))).unwrap_err();
        assert!(matches!(e, Error::ReauthRequired { .. }), "{e:?}");

        let http = Fake::default().http(|_| Ok((503, "<html>down</html>".into())));
        let ctx = context(http, &[], None);
        let e = run(user.mint(&ctx, &Want::access(Vec::new()))).unwrap_err();
        assert!(e.is_retryable(), "{e:?}");
    }

    #[test]
    fn an_id_token_comes_with_an_access_token_or_says_openid_is_missing() {
        let user = user(json!({}));
        let want = Want::Id {
            audience: String::new(),
            include_email: false,
        };
        let id = jwt(&json!({"aud": "id.apps", "exp": NOW + 3600}));
        let (minted, _) = mint(&user, json!({"access_token": "a", "id_token": id}), &want);
        let minted = minted.unwrap();
        let Ok(Issued::Id { token, endpoint }) = minted.issued else {
            panic!("no ID token");
        };
        assert_eq!(token.expose(), &id);
        assert_eq!(endpoint, "http://127.0.0.1:1/token");
        assert_eq!(minted.access.unwrap().access_token.unwrap().expose(), "a");

        let (minted, _) = mint(&user, json!({"access_token": "a"}), &want);
        let e = minted.unwrap().issued.unwrap_err();
        assert!(matches!(e, Error::ScopesNotGranted { .. }), "{e:?}");
    }

    #[test]
    fn scopes_asked_for_must_have_been_granted() {
        let user =
            user(json!({"scopes": ["openid", "https://www.googleapis.com/auth/userinfo.email"]}));
        assert!(user.scopes(Some(&["email".to_string()])).is_ok());
        let e = user.scopes(Some(&["x".to_string()])).unwrap_err();
        assert!(matches!(e, Error::ScopesNotGranted { missing } if missing == "x"));
        assert_eq!(
            user.id_tokens(),
            IdTokenSupport::OwnClient {
                client_id: "id.apps".into(),
                openid: true
            }
        );
        let no_openid = self::user(json!({"scopes": "x y"}));
        assert!(matches!(
            no_openid.id_tokens(),
            IdTokenSupport::OwnClient { openid: false, .. }
        ));
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
        let token_json = json!({"client_id": "id", "client_secret": "s",
            "refresh_token": "r", "token": "ya29.t", "expiry": "2026-12-04T01:00:00Z"});
        let Ok(Credential::User(user)) = parse(token_json.clone()) else {
            panic!("not read as a user");
        };
        assert!(user.is_token_json());
        assert!(!user.to_json().windows(6).any(|w| w == b"\"type\""));
        let saved = user.saved_access_token(1_796_346_000 - 1800).unwrap();
        assert_eq!(saved.access_token.unwrap().expose(), "ya29.t");
        assert_eq!(saved.expires_at, 1_796_346_000);
        assert!(user.saved_access_token(1_796_346_000 - 3601).is_none());
        assert!(user.saved_access_token(1_796_346_000).is_none());

        let mut typed = token_json;
        typed["type"] = AUTHORIZED_USER.into();
        let Ok(Credential::User(user)) = parse(typed) else {
            panic!("not a user");
        };
        assert!(!user.is_token_json());

        let e = parse(json!({"client_id": "id"})).unwrap_err();
        assert!(
            e.to_string().contains("lacks client_secret, refresh_token"),
            "{e}"
        );
        let e = parse(json!({"private_key": "k"})).unwrap_err();
        assert!(e.to_string().ends_with("has no \"type\" field"), "{e}");
        // The quickstart's OAuth client file where a credential belongs.
        for kind in ["installed", "web"] {
            let e = parse(json!({kind: {"client_id": "id", "client_secret": "s"}})).unwrap_err();
            assert!(
                e.to_string().contains("is an OAuth client file")
                    && e.to_string().contains("gemauth login --client-id-file"),
                "{e}"
            );
        }
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let user = user(json!({"token": "planted-access-token"}));
        let text = format!("{user:?}");
        assert!(
            !text.contains("s3cret") && !text.contains("1//r1"),
            "{text}"
        );
        assert!(!text.contains("planted"), "{text}");
    }
}
