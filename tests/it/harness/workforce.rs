//! The fake server's workforce identity federation endpoints, as gcloud's workforce login and
//! google-auth's `external_account_authorized_user` use them: the authorization page
//! (`/workforce/authorize`, which checks every parameter gcloud sends), the STS OAuth token
//! endpoint (`/v1/oauthtoken`: the code and refresh-token grants, HTTP Basic client
//! authentication with gcloud's client) and revocation (`/v1/revoke`). A login configuration
//! naming them is [`TestEnv::login_config_json`].

use std::path::PathBuf;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::*;

/// gcloud's OAuth client, the one a workforce login uses.
pub(crate) const WORKFORCE_CLIENT_ID: &str = "32555940559.apps.googleusercontent.com";
pub(crate) const WORKFORCE_CLIENT_SECRET: &str = "ZmssLNjJy2998hD4CTg2ejr2";
/// The workforce pool provider of the tests.
pub(crate) const WORKFORCE_AUDIENCE: &str =
    "//iam.googleapis.com/locations/global/workforcePools/test-pool/providers/test-idp";
/// The scopes gcloud asks for in a workforce login.
pub(crate) const WORKFORCE_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/appengine.admin https://www.googleapis.com/auth/sqlservice.login https://www.googleapis.com/auth/compute";

/// Whether the request is for a workforce endpoint; its answer.
pub(super) fn workforce_endpoints(st: &mut State, seen: &Seen) -> Option<Canned> {
    match seen.path.as_str() {
        "/workforce/authorize" => Some(authorize(st, seen)),
        "/v1/oauthtoken" => Some(token(st, seen)),
        "/v1/revoke" => Some(revoke(st, seen)),
        _ => None,
    }
}

/// Exactly gcloud's parameters, none missing and none more: otherwise a 400 page.
fn authorize(st: &mut State, seen: &Seen) -> Canned {
    let get = |k: &str| seen.query.get(k).cloned().unwrap_or_default();
    let mut keys: Vec<&str> = seen.query.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let expected = [
        "access_type",
        "client_id",
        "code_challenge",
        "code_challenge_method",
        "provider_name",
        "redirect_uri",
        "response_type",
        "scope",
        "state",
    ];
    let redirect = get("redirect_uri");
    let problems: Vec<&str> = [
        (keys != expected, "parameters"),
        (get("response_type") != "code", "response_type"),
        (get("client_id") != WORKFORCE_CLIENT_ID, "client_id"),
        (get("scope") != WORKFORCE_SCOPE, "scope"),
        (get("access_type") != "offline", "access_type"),
        (
            get("code_challenge_method") != "S256",
            "code_challenge_method",
        ),
        (get("code_challenge").len() != 43, "code_challenge"),
        (get("state").len() < 22, "state"),
        (
            get("provider_name") != "locations/global/workforcePools/test-pool/providers/test-idp",
            "provider_name",
        ),
        (
            !(redirect.starts_with("http://localhost:") && redirect.ends_with('/')),
            "redirect_uri",
        ),
    ]
    .into_iter()
    .filter_map(|(bad, name)| bad.then_some(name))
    .collect();
    if !problems.is_empty() {
        return Canned::html(
            400,
            &format!("<p>bad workforce authorization request: {problems:?}</p>"),
        );
    }
    redirect_with_code(st, seen, "wf-code-", &[])
}

/// Whether the request authenticates gcloud's client with HTTP Basic (and not in the form).
fn basic_client(seen: &Seen) -> bool {
    let expected = base64::engine::general_purpose::STANDARD
        .encode(format!("{WORKFORCE_CLIENT_ID}:{WORKFORCE_CLIENT_SECRET}"));
    seen.headers.get("authorization") == Some(&format!("Basic {expected}"))
        && !seen.form.contains_key("client_id")
        && !seen.form.contains_key("client_secret")
}

fn token(st: &mut State, seen: &Seen) -> Canned {
    let get = |k: &str| seen.form.get(k).cloned().unwrap_or_default();
    if !basic_client(seen) {
        return oauth_error("invalid_client", "Unauthorized");
    }
    st.counter += 1;
    let n = st.counter;
    let mut body = serde_json::json!({
        "access_token": format!("ya29.wf-{n}"),
        "expires_in": st.behaviour.expires_in,
        "token_type": "Bearer",
    });
    match get("grant_type").as_str() {
        "authorization_code" => {
            let mut keys: Vec<&str> = seen.form.keys().map(String::as_str).collect();
            keys.sort_unstable();
            if keys != ["code", "code_verifier", "grant_type", "redirect_uri"] {
                return oauth_error("invalid_request", "unexpected parameters");
            }
            let Some(grant) = st.codes.remove(&get("code")) else {
                return oauth_error("invalid_grant", "Bad code");
            };
            let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(Sha256::digest(get("code_verifier").as_bytes()));
            if challenge != grant.challenge || get("redirect_uri") != grant.redirect_uri {
                return oauth_error("invalid_grant", "PKCE or redirect mismatch");
            }
            body["scope"] = grant.scope.into();
            let rt = format!("wf-refresh-{n}");
            st.refresh_tokens.insert(rt.clone(), true);
            body["refresh_token"] = rt.into();
        }
        "refresh_token" => {
            let mut keys: Vec<&str> = seen.form.keys().map(String::as_str).collect();
            keys.sort_unstable();
            let rt = get("refresh_token");
            if keys != ["grant_type", "refresh_token"] || st.refresh_tokens.get(&rt) != Some(&true)
            {
                return oauth_error("invalid_grant", "The refresh token is invalid.");
            }
            if st.behaviour.rotate {
                let new = format!("wf-refresh-{n}");
                st.refresh_tokens.insert(rt, false);
                st.refresh_tokens.insert(new.clone(), true);
                body["refresh_token"] = new.into();
            }
        }
        _ => return oauth_error("unsupported_grant_type", ""),
    }
    Canned::json(200, &body.to_string())
}

fn revoke(st: &mut State, seen: &Seen) -> Canned {
    if !basic_client(seen) {
        return oauth_error("invalid_client", "Unauthorized");
    }
    let token = seen.form.get("token").cloned().unwrap_or_default();
    if seen.form.get("token_type_hint").map(String::as_str) != Some("refresh_token")
        || st.refresh_tokens.get(&token) != Some(&true)
    {
        return oauth_error("invalid_token", "Bad Request");
    }
    st.refresh_tokens.insert(token, false);
    Canned::html(200, "")
}

impl TestEnv {
    /// A login configuration as `gcloud iam workforce-pools create-login-config` writes it, its
    /// endpoints on the fake server.
    pub(crate) fn login_config_json(&self) -> serde_json::Value {
        serde_json::json!({
            "universe_domain": "googleapis.com",
            "universe_cloud_web_domain": "cloud.google",
            "type": "external_account_authorized_user_login_config",
            "audience": WORKFORCE_AUDIENCE,
            "auth_url": format!("{}/workforce/authorize", self.google.base),
            "token_url": format!("{}/v1/oauthtoken", self.google.base),
            "token_info_url": format!("{}/v1/introspect", self.google.base),
        })
    }

    /// Writes the login configuration (`login-config.json`) and returns its path.
    pub(crate) fn login_config(&self) -> PathBuf {
        let path = self.path("login-config.json");
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(&self.login_config_json()).unwrap(),
        )
        .unwrap();
        path
    }

    /// Starts `gemauth login --login-config login-config.json ARGS` in the background.
    pub(crate) fn start_workforce_login(&self, args: &[&str]) -> Running {
        let config = self.login_config();
        let mut cmd = self.cmd();
        cmd.arg("login")
            .arg("--login-config")
            .arg(&config)
            .args(args);
        Running::spawn(cmd, self.path("browser-args"))
    }
}
