//! The workforce identity federation login configuration
//! (`external_account_authorized_user_login_config`, written by `gcloud iam workforce-pools
//! create-login-config`) that `gemauth login --login-config` signs in with, and the
//! `external_account_authorized_user` file such a login writes.

use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

use super::external_user::{EXTERNAL_AUTHORIZED_USER, ExternalAuthorizedUser};
use super::{field_problem, read_regular_file};
use crate::env::Env;
use crate::oauth::{self, Http, HttpRequest, Sent, TokenResponse};
use crate::rules::{self, DEFAULT_UNIVERSE};
use crate::secret::Secret;

/// The `type` of a login configuration file.
pub(crate) const LOGIN_CONFIG_TYPE: &str = "external_account_authorized_user_login_config";

/// The OAuth client of the workforce sign-in: the Google Cloud CLI's own (an installed app's,
/// not a secret), the only one workforce pools' authorization server knows for this flow.
pub(crate) const WORKFORCE_CLIENT_ID: &str = "32555940559.apps.googleusercontent.com";
/// Its client secret, public by design (installed apps cannot keep one).
pub(crate) const WORKFORCE_CLIENT_SECRET: &str = "ZmssLNjJy2998hD4CTg2ejr2";

/// The scopes gcloud asks for in a workforce login (and the only ones it can ask for).
pub(crate) const WORKFORCE_SCOPES: [&str; 4] = [
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/appengine.admin",
    "https://www.googleapis.com/auth/sqlservice.login",
    "https://www.googleapis.com/auth/compute",
];

/// Google Cloud's web domain (where the authorization page is, `auth.cloud.google`) when the
/// file names none.
const DEFAULT_CLOUD_WEB_DOMAIN: &str = "cloud.google";

/// A workforce login configuration, checked.
#[derive(Debug, Clone)]
pub(crate) struct LoginConfig {
    /// The workforce pool provider: `//iam.googleapis.com/locations/L/workforcePools/P/providers/Q`.
    pub(crate) audience: String,
    /// The authorization page the browser opens.
    pub(crate) auth_url: Url,
    /// Where the code is exchanged (and the refresh token later used).
    pub(crate) token_url: Url,
    pub(crate) token_info_url: Url,
    /// The universe domain (else Google's).
    pub(crate) universe_domain: Option<String>,
    /// The universe's cloud web domain, where its authorization page is (else `cloud.google`).
    pub(crate) cloud_web_domain: Option<String>,
}

/// The file as written by gcloud.
#[derive(Deserialize)]
struct RawLoginConfig {
    audience: String,
    auth_url: String,
    token_url: String,
    token_info_url: String,
    #[serde(default)]
    universe_domain: Option<String>,
    #[serde(default)]
    universe_cloud_web_domain: Option<String>,
}

/// What is wrong with a login configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LoginConfigProblem {
    /// The file cannot be read or is not a valid login configuration (never quotes a value).
    Invalid(String),
    /// An endpoint the endpoint rule refuses: the field and its host.
    Untrusted { field: &'static str, host: String },
}

/// Reads and checks a login configuration file, the endpoint rule included (with the hosts
/// `env` trusts). Nothing is written and no network is used.
pub(crate) fn load_login_config(
    path: &Path,
    env: &Env,
) -> std::result::Result<LoginConfig, LoginConfigProblem> {
    let bytes = read_regular_file(path).map_err(LoginConfigProblem::Invalid)?;
    let config = parse_login_config(&bytes)?;
    config.check_endpoints(env)?;
    Ok(config)
}

/// Parses a login configuration's bytes: the type, every field gcloud reads, valid endpoints.
// Public for the fuzz targets only, which ignore what it returns.
#[cfg_attr(not(feature = "fuzzing"), allow(unreachable_pub))]
#[cfg_attr(feature = "fuzzing", allow(private_interfaces))]
pub fn parse_login_config(bytes: &[u8]) -> std::result::Result<LoginConfig, LoginConfigProblem> {
    let invalid = LoginConfigProblem::Invalid;
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("is not valid JSON ({e})")))?;
    let Value::Object(map) = value else {
        return Err(invalid("is not a JSON object".into()));
    };
    match map.get("type") {
        Some(Value::String(t)) if t == LOGIN_CONFIG_TYPE => {}
        Some(Value::String(t)) if t == EXTERNAL_AUTHORIZED_USER => {
            return Err(invalid(format!(
                "is a credential file ({EXTERNAL_AUTHORIZED_USER}), not a login configuration: \
                 use it as the credential file (--credential-file, or \
                 GOOGLE_APPLICATION_CREDENTIALS) instead"
            )));
        }
        Some(_) => {
            return Err(invalid(format!(
                "\"type\" is not {LOGIN_CONFIG_TYPE:?}: only workforce identity federation login \
                 configurations are supported"
            )));
        }
        None => {
            return Err(invalid(format!(
                "has no \"type\" field ({LOGIN_CONFIG_TYPE})"
            )));
        }
    }
    let raw: RawLoginConfig = typed(map)?;
    for (name, value) in [
        ("audience", &raw.audience),
        ("auth_url", &raw.auth_url),
        ("token_url", &raw.token_url),
        ("token_info_url", &raw.token_info_url),
    ] {
        if value.trim().is_empty() {
            return Err(invalid(format!("\"{name}\" is empty")));
        }
    }
    if super::external_user::workforce_pool(&raw.audience).is_none() {
        return Err(invalid(
            "audience does not name a workforce pool \
             (//iam.googleapis.com/locations/LOCATION/workforcePools/POOL/providers/PROVIDER)"
                .into(),
        ));
    }
    let endpoint = |name: &'static str, raw: &str| {
        rules::endpoint(name, raw.trim()).map_err(|e| invalid(crate::Error::from(e).to_string()))
    };
    let universe_domain = raw.universe_domain.filter(|u| !u.trim().is_empty());
    let cloud_web_domain = raw
        .universe_cloud_web_domain
        .filter(|u| !u.trim().is_empty());
    Ok(LoginConfig {
        audience: raw.audience.trim().to_string(),
        auth_url: endpoint("auth_url", &raw.auth_url)?,
        token_url: endpoint("token_url", &raw.token_url)?,
        token_info_url: endpoint("token_info_url", &raw.token_info_url)?,
        universe_domain,
        cloud_web_domain,
    })
}

/// Reads the map as `T`; an error names the field and never quotes its value.
fn typed<T: serde::de::DeserializeOwned>(
    map: Map<String, Value>,
) -> std::result::Result<T, LoginConfigProblem> {
    serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
        let field = e.path().to_string();
        LoginConfigProblem::Invalid(field_problem(&field, &e.into_inner().to_string()))
    })
}

impl LoginConfig {
    /// The endpoint rule: the code, its verifier and the client go to `token_url`, tokens to
    /// `token_info_url` (Google's hosts, the universe's, loopback or the trusted ones); the
    /// browser is sent to `auth_url` (Google Cloud's web domain, loopback or a trusted host).
    pub(crate) fn check_endpoints(&self, env: &Env) -> std::result::Result<(), LoginConfigProblem> {
        let trusted = rules::TrustedHosts::parse(env.var(rules::ENV_TRUSTED_HOSTS).as_deref());
        for (field, url) in [
            ("token_url", &self.token_url),
            ("token_info_url", &self.token_info_url),
        ] {
            rules::may_receive_secrets(url, self.universe_domain.as_deref(), &trusted)
                .map_err(|host| LoginConfigProblem::Untrusted { field, host })?;
        }
        let web_domain = self
            .cloud_web_domain
            .as_deref()
            .unwrap_or(DEFAULT_CLOUD_WEB_DOMAIN);
        rules::may_receive_secrets(&self.auth_url, Some(web_domain), &trusted).map_err(|host| {
            LoginConfigProblem::Untrusted {
                field: "auth_url",
                host,
            }
        })
    }

    /// The provider as the authorization page takes it (`provider_name`): the audience from
    /// `locations/` on.
    pub(crate) fn provider_name(&self) -> Option<&str> {
        self.audience
            .find("/locations/")
            .map(|at| &self.audience[at + 1..])
    }

    /// Exchanges the authorization code at `token_url` as gcloud does: `grant_type`, `code`,
    /// `redirect_uri` and `code_verifier` in the form, the client in an HTTP Basic header.
    pub(crate) async fn exchange_code(
        &self,
        http: &Http,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> crate::Result<TokenResponse> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ];
        let request = HttpRequest::form(&self.token_url, &form)
            .basic(WORKFORCE_CLIENT_ID, WORKFORCE_CLIENT_SECRET);
        let (status, body) = http.send(&request).await?;
        oauth::parse_token_response(
            &rules::endpoint_name(&self.token_url),
            status,
            &body,
            &Sent::of(&request),
        )
    }

    /// The scopes of a workforce login.
    pub(crate) fn scopes() -> Vec<String> {
        WORKFORCE_SCOPES.iter().map(|s| (*s).to_string()).collect()
    }

    /// The credential file a login writes, in gcloud's shape: the type, the audience, the
    /// client, the refresh token, the token and token info endpoints, the universe domain.
    pub(crate) fn credential(&self, refresh_token: Secret<String>) -> ExternalAuthorizedUser {
        ExternalAuthorizedUser {
            kind: EXTERNAL_AUTHORIZED_USER.to_string(),
            audience: Some(self.audience.clone()),
            refresh_token,
            token_url: self.token_url.to_string(),
            token_info_url: Some(self.token_info_url.to_string()),
            revoke_url: None,
            client_id: WORKFORCE_CLIENT_ID.to_string(),
            client_secret: Secret::new(WORKFORCE_CLIENT_SECRET.to_string()),
            quota_project_id: None,
            universe_domain: Some(
                self.universe_domain
                    .clone()
                    .unwrap_or_else(|| DEFAULT_UNIVERSE.to_string()),
            ),
            extra: Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::{Fake, run};

    /// What `gcloud iam workforce-pools create-login-config` writes.
    fn gcloud_file() -> Value {
        json!({"universe_domain": "googleapis.com", "universe_cloud_web_domain": "cloud.google",
            "type": "external_account_authorized_user_login_config",
            "audience": "//iam.googleapis.com/locations/global/workforcePools/pool-1/providers/okta",
            "auth_url": "https://auth.cloud.google/authorize",
            "token_url": "https://sts.googleapis.com/v1/oauthtoken",
            "token_info_url": "https://sts.googleapis.com/v1/introspect"})
    }

    fn parse(value: &Value) -> std::result::Result<LoginConfig, LoginConfigProblem> {
        parse_login_config(value.to_string().as_bytes())
    }

    fn invalid(value: &Value) -> String {
        match parse(value) {
            Err(LoginConfigProblem::Invalid(p)) => p,
            other => panic!("not invalid: {other:?}"),
        }
    }

    #[test]
    fn gclouds_file_is_read_and_passes_the_endpoint_rule() {
        let config = parse(&gcloud_file()).unwrap();
        assert_eq!(
            config.provider_name(),
            Some("locations/global/workforcePools/pool-1/providers/okta")
        );
        assert_eq!(
            config.auth_url.as_str(),
            "https://auth.cloud.google/authorize"
        );
        assert!(
            config
                .check_endpoints(&Env::Fixed(Default::default()))
                .is_ok()
        );
        let file = config.credential(Secret::new("r1".into()));
        let written: Value = serde_json::from_slice(&file.to_json()).unwrap();
        // gcloud's ADC file: these keys, nothing else (no revoke_url, no scopes, no token).
        assert_eq!(
            written,
            json!({"type": "external_account_authorized_user",
                "audience": "//iam.googleapis.com/locations/global/workforcePools/pool-1/providers/okta",
                "refresh_token": "r1",
                "token_url": "https://sts.googleapis.com/v1/oauthtoken",
                "token_info_url": "https://sts.googleapis.com/v1/introspect",
                "client_id": WORKFORCE_CLIENT_ID, "client_secret": WORKFORCE_CLIENT_SECRET,
                "universe_domain": "googleapis.com"})
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_field_and_without_its_value() {
        assert!(invalid(&json!([])).contains("not a JSON object"));
        assert!(invalid(&json!({"audience": "a"})).contains("no \"type\""));
        let mut f = gcloud_file();
        f["type"] = json!("external_account_authorized_user");
        assert!(invalid(&f).contains("is a credential file"));
        f["type"] = json!("planted-type");
        let e = invalid(&f);
        assert!(
            e.contains("not \"external_account_authorized_user_login_config\"")
                && !e.contains("planted"),
            "{e}"
        );
        for field in ["audience", "auth_url", "token_url", "token_info_url"] {
            let mut f = gcloud_file();
            f.as_object_mut().unwrap().remove(field);
            assert!(
                invalid(&f).contains(&format!("missing field `{field}`")),
                "{field}"
            );
            f[field] = json!(" ");
            assert!(
                invalid(&f).contains(&format!("\"{field}\" is empty")),
                "{field}"
            );
            f[field] = json!(["planted"]);
            let e = invalid(&f);
            assert!(e.starts_with(field) && !e.contains("planted"), "{e}");
        }
        let mut f = gcloud_file();
        f["audience"] = json!("//iam.googleapis.com/projects/1/planted");
        let e = invalid(&f);
        assert!(
            e.contains("workforce pool") && !e.contains("planted"),
            "{e}"
        );
        let mut f = gcloud_file();
        f["token_url"] = json!("http://sts.example.com/planted");
        let e = invalid(&f);
        assert!(e.contains("token_url") && e.contains("plain http"), "{e}");
        f["token_url"] = json!("https://user:planted@sts.googleapis.com/x");
        assert!(!invalid(&f).contains("planted"));
        assert!(invalid(&json!("x")).contains("not a JSON object"));
        assert!(matches!(
            parse_login_config(b"{not json"),
            Err(LoginConfigProblem::Invalid(p)) if p.starts_with("is not valid JSON")
        ));
    }

    #[test]
    fn the_endpoint_rule_applies_to_every_url_of_the_file() {
        let env = Env::Fixed(Default::default());
        for (field, url) in [
            ("token_url", "https://sts.evil.example/v1/oauthtoken"),
            ("token_info_url", "https://evil.example/v1/introspect"),
            ("auth_url", "https://auth.evil.example/authorize"),
        ] {
            let mut f = gcloud_file();
            f[field] = json!(url);
            let config = parse(&f).unwrap();
            let e = config.check_endpoints(&env).unwrap_err();
            let LoginConfigProblem::Untrusted {
                field: refused,
                host,
            } = e
            else {
                panic!("not refused: {e:?}");
            };
            assert_eq!(refused, field);
            assert!(host.ends_with("evil.example"), "{host}");
            let trusted = Env::Fixed([(rules::ENV_TRUSTED_HOSTS.to_string(), host.clone())].into());
            assert!(config.check_endpoints(&trusted).is_ok());
        }
        // Another universe vouches for its own hosts, and its web domain for its auth page.
        let mut f = gcloud_file();
        f["universe_domain"] = json!("example-universe.test");
        f["universe_cloud_web_domain"] = json!("cloud.example-universe.test");
        f["auth_url"] = json!("https://auth.cloud.example-universe.test/authorize");
        f["token_url"] = json!("https://sts.example-universe.test/v1/oauthtoken");
        f["token_info_url"] = json!("https://sts.example-universe.test/v1/introspect");
        let config = parse(&f).unwrap();
        assert!(config.check_endpoints(&env).is_ok());
        let written: Value =
            serde_json::from_slice(&config.credential(Secret::new("r".into())).to_json()).unwrap();
        assert_eq!(written["universe_domain"], "example-universe.test");
    }

    #[test]
    fn the_code_is_exchanged_as_gcloud_does() {
        let config = parse(&gcloud_file()).unwrap();
        let fake = Fake::default();
        let http = fake.http(|_| {
            Ok((
                200,
                json!({"access_token": "ya29.w", "expires_in": 3600, "refresh_token": "r1",
                    "token_type": "Bearer"})
                .to_string(),
            ))
        });
        let tokens = run(config.exchange_code(
            &http,
            "code-1",
            "v".repeat(128).as_str(),
            "http://localhost:8085/",
        ))
        .unwrap();
        assert_eq!(tokens.refresh_token.unwrap().expose(), "r1");
        let seen = fake.seen();
        assert_eq!(seen[0].url, "https://sts.googleapis.com/v1/oauthtoken");
        assert_eq!(
            seen[0].form,
            [
                ("grant_type", "authorization_code"),
                ("code", "code-1"),
                ("redirect_uri", "http://localhost:8085/"),
                ("code_verifier", "v".repeat(128).as_str()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
        );
        assert_eq!(
            seen[0].basic,
            Some((
                WORKFORCE_CLIENT_ID.to_string(),
                WORKFORCE_CLIENT_SECRET.to_string()
            ))
        );
        // A refusal echoing the code is masked.
        let http = Fake::default().http(|_| {
            Ok((
                400,
                r#"{"error":"invalid_grant","error_description":"code code-12345678 used"}"#.into(),
            ))
        });
        let e = run(config.exchange_code(&http, "code-12345678", "v", "http://localhost:1/"))
            .unwrap_err();
        assert!(!e.to_string().contains("code-12345678"), "{e}");
    }

    #[test]
    fn the_authorization_url_has_exactly_gclouds_parameters() {
        let config = parse(&gcloud_file()).unwrap();
        let request = crate::flow::workforce_authorization_request(
            &config,
            crate::flow::workforce_redirect_uri(8085),
        )
        .unwrap();
        let url = &request.url;
        assert_eq!(url.host_str(), Some("auth.cloud.google"));
        assert_eq!(url.path(), "/authorize");
        let params: std::collections::BTreeMap<String, String> =
            url.query_pairs().into_owned().collect();
        let keys: Vec<&str> = params.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "access_type",
                "client_id",
                "code_challenge",
                "code_challenge_method",
                "provider_name",
                "redirect_uri",
                "response_type",
                "scope",
                "state"
            ]
        );
        assert_eq!(params["client_id"], WORKFORCE_CLIENT_ID);
        assert_eq!(params["response_type"], "code");
        assert_eq!(params["access_type"], "offline");
        assert_eq!(params["redirect_uri"], "http://localhost:8085/");
        assert_eq!(params["scope"], WORKFORCE_SCOPES.join(" "));
        assert_eq!(
            params["provider_name"],
            "locations/global/workforcePools/pool-1/providers/okta"
        );
        assert_eq!(params["code_challenge_method"], "S256");
        assert_eq!(request.verifier.secret().len(), 128);
        let digest =
            ring::digest::digest(&ring::digest::SHA256, request.verifier.secret().as_bytes());
        use base64::Engine as _;
        assert_eq!(
            params["code_challenge"],
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
        );
        assert_eq!(params["state"], *request.state.secret());
    }
}
