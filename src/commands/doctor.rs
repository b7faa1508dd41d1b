//! The diagnoses of `gemauth status --check`: one check per way the Gemini API quickstart fails
//! (a Testing app's 7-day refresh token, re-authentication, the API not enabled, the quota
//! project, scopes, the clock, proxies and TLS), each a line with ✓ or ✗ and the fix: the calls
//! that make them ([`diagnose`]) and the rules that turn answers into checks. `status` prints.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;
use url::Url;

use crate::context::Context;
use crate::credentials::{Credential, Details};
use crate::oauth::{HttpRequest, block_on};
use crate::store;
use crate::token;

/// Environment variable: the model list `status --check` asks (a local server in the tests).
pub(super) const ENV_CHECK_API_URL: &str = "GEMAUTH_CHECK_API_URL";
/// The Generative Language API's model list, one model a page (the answer stays small).
const DEFAULT_API_URL: &str = "https://generativelanguage.googleapis.com/v1/models?pageSize=1";

/// What `status --check` found.
pub(super) struct Diagnosis {
    /// Every check, in the order they are shown.
    pub(super) checks: Vec<Check>,
    /// When the token expires, when there is one.
    pub(super) expires_at: Option<u64>,
    /// Why there is no token: the command's error.
    pub(super) token_error: Option<crate::Error>,
}

impl Diagnosis {
    /// How many checks failed.
    pub(super) fn failed(&self) -> usize {
        self.checks.iter().filter(|c| !c.ok).count()
    }
}

/// Runs every check for `credential` (the file `credential_file`, none for the metadata server):
/// the token (through the cache and the one refresh pipeline, as `print-access-token`), the quota
/// project, the Generative Language API with that token, the clock against the token server's,
/// and the network (proxy, TLS) as the requests went.
pub(super) fn diagnose(
    ctx: &Context,
    credential_file: Option<&Path>,
    credential: &Credential,
    quota_project: Option<&str>,
    login_command: &str,
) -> Diagnosis {
    let mut network_failure: Option<String> = None;
    let mut note_network = |e: &crate::Error| {
        if let crate::Error::Network { detail, .. } = e {
            network_failure.get_or_insert_with(|| detail.clone());
        }
    };
    let now = ctx.now();
    let token = token::get_with(&token::Request {
        credential_file: credential_file.map(Path::to_path_buf),
        ..Default::default()
    });
    let token_check = match &token {
        Ok(t) => Check::pass(
            "token",
            format!("a token valid until {}", store::rfc3339(t.expires_at)),
        ),
        Err(e) => {
            note_network(e);
            token_failure(e, ctx, credential_file, credential, now, login_command)
        }
    };
    let quota_check = quota(credential, quota_project);
    let http = ctx.http();
    let api_check = match (&token, &http) {
        (Ok(t), Ok(http)) => match api_url(ctx) {
            Ok(url) => {
                let mut request = HttpRequest::get(&url).bearer(t.access_token.expose());
                if let Some(project) = quota_project {
                    request = request.header("x-goog-user-project", project);
                }
                match block_on(http.send_once(&request)).and_then(|answer| answer) {
                    Ok(answer) => api_answer(
                        answer.status,
                        &answer.body,
                        answer.header("www-authenticate"),
                        quota_project,
                        login_command,
                    ),
                    Err(e) => {
                        note_network(&e);
                        Check::fail(
                            "api",
                            format!("the Generative Language API was not reached ({e})"),
                            "see the network check below",
                        )
                    }
                }
            }
            Err(check) => check,
        },
        _ => Check::fail(
            "api",
            "not checked: there is no access token",
            "fix the token check above first",
        ),
    };
    let clock_check = match (token_endpoint(credential), &http) {
        (None, _) => Check::pass("clock", "not checked (the metadata server keeps the time)"),
        (Some(url), Ok(http)) => {
            // A GET of the token endpoint sends nothing secret; only its `Date` is read.
            match block_on(http.send_once(&HttpRequest::get(&url))).and_then(|answer| answer) {
                Ok(answer) => {
                    let server = url.host_str().unwrap_or("the token server").to_string();
                    match answer.header("date").and_then(|d| clock_offset(d, now)) {
                        Some(offset) => clock(offset, &server),
                        None => {
                            Check::pass("clock", format!("not checked ({server} sent no date)"))
                        }
                    }
                }
                Err(e) => {
                    note_network(&e);
                    Check::pass("clock", "not checked (the token server was not reached)")
                }
            }
        }
        (Some(_), Err(e)) => Check::fail("clock", e.to_string(), "see the error above"),
    };
    let network_check = network(
        network_failure.as_deref(),
        proxy_in_use(|name| ctx.env.var(name)),
    );
    Diagnosis {
        checks: vec![
            token_check,
            quota_check,
            api_check,
            clock_check,
            network_check,
        ],
        expires_at: token.as_ref().ok().map(|t| t.expires_at),
        token_error: token.err(),
    }
}

/// The token check when there is no token.
fn token_failure(
    e: &crate::Error,
    ctx: &Context,
    credential_file: Option<&Path>,
    credential: &Credential,
    now: u64,
    login_command: &str,
) -> Check {
    match e {
        crate::Error::Rejected {
            error, description, ..
        } if error == "invalid_grant" && matches!(credential, Credential::User(_)) => {
            let logged_in_at = credential_file
                .and_then(|path| store::login_time(ctx.cache_dir.as_deref(), path, now));
            refused_refresh_token(description.as_deref(), logged_in_at, now, login_command)
        }
        crate::Error::ReauthRequired { .. } => reauthentication(login_command),
        crate::Error::Network { .. } => Check::fail(
            "token",
            format!("no token: {e}"),
            "see the network check below",
        ),
        other => Check::fail(
            "token",
            format!("no token: {other}"),
            super::report::lib_hint(other),
        ),
    }
}

/// The quota project check: user credentials (a Google account's or a workforce pool user's)
/// bill API calls to a quota project.
fn quota(credential: &Credential, quota_project: Option<&str>) -> Check {
    match (quota_project, credential) {
        (Some(project), _) => Check::pass("quota_project", format!("quota project {project}")),
        (None, Credential::User(_) | Credential::ExternalUser(_)) => Check::fail(
            "quota_project",
            "no quota project: Google bills the API calls of a user's credentials to a quota \
             project, and refuses them without one",
            "`gemauth set-quota-project PROJECT_ID` (a project where the Generative Language API \
             is enabled), or set GOOGLE_CLOUD_QUOTA_PROJECT",
        ),
        (None, _) => Check::pass(
            "quota_project",
            "no quota project: the service account's own project is billed",
        ),
    }
}

/// The model list to ask: `GEMAUTH_CHECK_API_URL`, else Google's. The access token goes there,
/// so the endpoint rule of credential files applies (Google's hosts, this machine, or a host
/// listed in `GEMAUTH_TRUSTED_HOSTS`).
fn api_url(ctx: &Context) -> Result<Url, Check> {
    let raw = ctx
        .env
        .var(ENV_CHECK_API_URL)
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_API_URL.to_string());
    let refused = |detail: String| {
        Check::fail(
            "api",
            detail,
            format!(
                "fix or unset {ENV_CHECK_API_URL}, or list its host in {}",
                crate::rules::ENV_TRUSTED_HOSTS
            ),
        )
    };
    let url = crate::rules::endpoint(ENV_CHECK_API_URL, raw.trim())
        .map_err(|e| refused(crate::Error::from(e).to_string()))?;
    let trusted =
        crate::rules::TrustedHosts::parse(ctx.env.var(crate::rules::ENV_TRUSTED_HOSTS).as_deref());
    crate::rules::may_receive_secrets(&url, None, &trusted).map_err(|host| {
        refused(format!(
            "{ENV_CHECK_API_URL} names {host}, which is not Google's: the access token is not sent there"
        ))
    })?;
    Ok(url)
}

/// The token endpoint whose clock is compared, by credential type (none for the metadata
/// server).
fn token_endpoint(credential: &Credential) -> Option<Url> {
    let raw = match credential.details() {
        Details::User(d) => d.token_uri,
        Details::ServiceAccount(d) => d.token_uri,
        Details::External(d) => d.token_uri,
        Details::ExternalUser(d) => d.token_url,
        Details::Impersonated(_) => crate::rules::GOOGLE_TOKEN_URI.to_string(),
        Details::Metadata(_) => return None,
    };
    Url::parse(&raw).ok()
}

/// One diagnosis.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(super) struct Check {
    /// What was checked: `token`, `quota_project`, `api`, `clock`, `network`.
    pub(super) name: &'static str,
    pub(super) ok: bool,
    /// What was found, in one line.
    pub(super) detail: String,
    /// What to do about it, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) fix: Option<String>,
}

impl Check {
    pub(super) fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Check {
            name,
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }

    pub(super) fn fail(
        name: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Check {
            name,
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    /// The check as a text line: `✓ detail` or `✗ detail: fix`.
    pub(super) fn line(&self) -> String {
        match &self.fix {
            None => format!("✓ {}", self.detail),
            Some(fix) => format!("✗ {} — {fix}", self.detail),
        }
    }
}

/// Refresh tokens of an OAuth app whose publishing status is "Testing" expire this long after
/// the consent (Google's documented 7 days).
const TESTING_REFRESH_TOKEN_DAYS: u64 = 7;
const DAY: u64 = 24 * 3600;

/// The Generative Language API, whose model list proves that the API is enabled for the quota
/// project and that the token's scopes suffice.
pub(super) const GENERATIVE_LANGUAGE: &str = "generativelanguage.googleapis.com";

/// How the token server refused a refresh token, as the user needs to hear it.
pub(super) fn refused_refresh_token(
    description: Option<&str>,
    logged_in_at: Option<u64>,
    now: u64,
    login_command: &str,
) -> Check {
    let expired_or_revoked =
        description.is_some_and(|d| d.to_ascii_lowercase().contains("expired or revoked"));
    let age = logged_in_at.map(|at| now.saturating_sub(at));
    match age {
        // Six to eight days: the 7-day lifetime of a Testing app's refresh tokens, give or take
        // the hours of a day and a clock that is off.
        Some(age)
            if expired_or_revoked
                && ((TESTING_REFRESH_TOKEN_DAYS - 1) * DAY
                    ..=(TESTING_REFRESH_TOKEN_DAYS + 1) * DAY)
                    .contains(&age) =>
        {
            Check::fail(
                "token",
                format!(
                    "the refresh token expired {} days after the login: OAuth apps whose \
                     publishing status is \"Testing\" get refresh tokens that last 7 days",
                    age / DAY
                ),
                format!(
                    "publish the app (Google Cloud console: Google Auth Platform → Audience → \
                     Publish app) so that logins last, or sign in again every week: \
                     `{login_command}`"
                ),
            )
        }
        _ if expired_or_revoked => Check::fail(
            "token",
            "the refresh token was revoked, or expired (a changed password, a removed grant at \
             myaccount.google.com/permissions, six months unused)",
            format!("sign in again: `{login_command}`"),
        ),
        _ => Check::fail(
            "token",
            format!(
                "the token server refused the credential{}",
                description
                    .filter(|d| !d.is_empty())
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ),
            format!("sign in again: `{login_command}`"),
        ),
    }
}

/// The organisation's session control asks for a new sign-in (RAPT): not a revocation.
pub(super) fn reauthentication(login_command: &str) -> Check {
    Check::fail(
        "token",
        "your organisation requires you to sign in again periodically (Google Cloud session \
         control, reauthentication); the grant itself is not revoked",
        format!("sign in again: `{login_command}`"),
    )
}

/// The `google.rpc.ErrorInfo` of a Google API error: its reason and metadata.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ErrorInfo {
    pub(super) status: String,
    pub(super) message: String,
    pub(super) reason: String,
    pub(super) service: String,
    pub(super) consumer: String,
    pub(super) activation_url: String,
}

impl ErrorInfo {
    /// Reads a Google API error body (`{"error": {"status", "message", "details": [...]}}`).
    pub(super) fn parse(body: &[u8]) -> Option<Self> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let error = v.get("error")?;
        let text = |v: Option<&Value>| -> String {
            crate::error::sanitize(v.and_then(Value::as_str).unwrap_or_default())
        };
        let mut info = ErrorInfo {
            status: text(error.get("status")),
            message: text(error.get("message")),
            ..ErrorInfo::default()
        };
        let details = error.get("details").and_then(Value::as_array);
        let error_info = details.into_iter().flatten().find(|d| {
            d.get("@type").and_then(Value::as_str)
                == Some("type.googleapis.com/google.rpc.ErrorInfo")
        });
        if let Some(d) = error_info {
            let metadata = d.get("metadata");
            info.reason = text(d.get("reason"));
            info.service = text(metadata.and_then(|m| m.get("service")));
            info.consumer = text(metadata.and_then(|m| m.get("consumer")));
            info.activation_url = text(metadata.and_then(|m| m.get("activationUrl")));
        }
        Some(info)
    }

    /// The project the error is about: `projects/P` of the consumer, else `fallback`.
    fn project<'a>(&'a self, fallback: Option<&'a str>) -> &'a str {
        self.consumer
            .strip_prefix("projects/")
            .filter(|p| !p.is_empty())
            .or(fallback)
            .unwrap_or("(unknown)")
    }
}

/// The scopes a `WWW-Authenticate: Bearer … error="insufficient_scope", scope="…"` header asks
/// for (RFC 6750 section 3).
pub(super) fn required_scopes(www_authenticate: &str) -> Vec<String> {
    let Some(start) = www_authenticate.find("scope=\"") else {
        return Vec::new();
    };
    let rest = &www_authenticate[start + "scope=\"".len()..];
    let value = rest.split('"').next().unwrap_or_default();
    value
        .split_whitespace()
        .map(crate::error::sanitize)
        .filter(|s| !s.is_empty())
        .collect()
}

/// What the Generative Language API's model list answered, as a check.
pub(super) fn api_answer(
    status: u16,
    body: &[u8],
    www_authenticate: Option<&str>,
    quota_project: Option<&str>,
    login_command: &str,
) -> Check {
    if (200..300).contains(&status) {
        let models = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("models").and_then(Value::as_array).map(Vec::len));
        return Check::pass(
            "api",
            match models {
                Some(n) => format!("the Generative Language API answers ({n} models listed)"),
                None => "the Generative Language API answers".to_string(),
            },
        );
    }
    let info = ErrorInfo::parse(body).unwrap_or_default();
    let project = info.project(quota_project).to_string();
    match info.reason.as_str() {
        "SERVICE_DISABLED" => {
            let url = if info.activation_url.is_empty() {
                format!(
                    "https://console.cloud.google.com/apis/library/{GENERATIVE_LANGUAGE}?project={project}"
                )
            } else {
                info.activation_url.clone()
            };
            Check::fail(
                "api",
                format!("the Generative Language API is not enabled in project {project}"),
                format!("enable the Generative Language API in project {project}: {url}"),
            )
        }
        "USER_PROJECT_DENIED" => Check::fail(
            "api",
            format!(
                "you may not bill API calls to project {project} (the permission \
                 serviceusage.services.use is missing)"
            ),
            format!(
                "ask a project owner to grant you roles/serviceusage.serviceUsageConsumer on \
                 {project}, or choose a project of yours: `gemauth set-quota-project PROJECT_ID`"
            ),
        ),
        "ACCESS_TOKEN_SCOPE_INSUFFICIENT" => {
            let wanted = www_authenticate.map(required_scopes).unwrap_or_default();
            let scope = wanted
                .iter()
                .find(|s| s.ends_with("/generative-language") || s.ends_with("/cloud-platform"))
                .or(wanted.first())
                .cloned()
                .unwrap_or_else(|| "https://www.googleapis.com/auth/cloud-platform".into());
            let short = scope
                .strip_prefix("https://www.googleapis.com/auth/")
                .unwrap_or(&scope);
            Check::fail(
                "api",
                format!("the token lacks the scope the API needs ({scope})"),
                format!("sign in with it: `{login_command} --scopes {short},openid,email`"),
            )
        }
        _ if status == 401 => Check::fail(
            "api",
            "the API refused the access token (HTTP 401)",
            format!("sign in again: `{login_command}`"),
        ),
        _ => Check::fail(
            "api",
            format!(
                "the Generative Language API answered HTTP {status}{}",
                match (info.status.is_empty(), info.message.is_empty()) {
                    (true, true) => String::new(),
                    _ => format!(": {} {}", info.status, info.message)
                        .trim_end()
                        .to_string(),
                }
            ),
            "read the message above; `gemauth status` shows the credential and quota project in use",
        ),
    }
}

/// How far the local clock is from a server's `Date` header (positive: the local clock is ahead).
pub(super) fn clock_offset(date_header: &str, now: u64) -> Option<i64> {
    let server = httpdate::parse_http_date(date_header.trim()).ok()?;
    let server = server.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(now as i64 - server as i64)
}

/// Largest clock difference that is not reported (tokens and JWT assertions tolerate it).
pub(super) const MAX_CLOCK_SKEW_SECS: i64 = 60;

/// The clock check, from the offset to a Google server's clock.
pub(super) fn clock(offset: i64, server: &str) -> Check {
    if offset.abs() <= MAX_CLOCK_SKEW_SECS {
        return Check::pass(
            "clock",
            format!("this machine's clock agrees with {server}'s (within {MAX_CLOCK_SKEW_SECS} s)"),
        );
    }
    let direction = if offset > 0 { "ahead of" } else { "behind" };
    Check::fail(
        "clock",
        format!(
            "this machine's clock is {} s {direction} {server}'s: tokens look expired or not yet \
             valid, and signed assertions are refused",
            offset.abs()
        ),
        "set the clock from the network (e.g. `timedatectl set-ntp true`, or your system's time \
         settings)",
    )
}

/// The proxy requests go through, as the user set it (without a user name or password).
pub(super) fn proxy_in_use(var: impl Fn(&str) -> Option<String>) -> Option<(String, String)> {
    ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .into_iter()
        .find_map(|name| {
            let value = var(name).filter(|v| !v.trim().is_empty())?;
            let shown = match url::Url::parse(value.trim()) {
                Ok(mut u) => {
                    let _ = u.set_username("");
                    let _ = u.set_password(None);
                    u.to_string()
                }
                Err(_) => crate::error::sanitize(value.trim()),
            };
            Some((name.to_string(), shown))
        })
}

/// The network check, from the failure of a request (its message) and the proxy in use.
pub(super) fn network(failure: Option<&str>, proxy: Option<(String, String)>) -> Check {
    let via = proxy
        .as_ref()
        .map(|(name, url)| format!(" through the proxy {url} ({name})"))
        .unwrap_or_default();
    let Some(failure) = failure else {
        return Check::pass("network", format!("Google's servers are reachable{via}"));
    };
    let lower = failure.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("unknownissuer") || lower.contains("tls") {
        return Check::fail(
            "network",
            format!(
                "the server's TLS certificate is not trusted{via}: a proxy that inspects TLS \
                 re-signs traffic with its own certificate authority ({failure})"
            ),
            "point CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE (as for gcloud) or SSL_CERT_FILE at your \
             organisation's CA certificate (PEM): gemauth trusts it besides the system's store \
             (on Linux SSL_CERT_FILE and SSL_CERT_DIR, as for OpenSSL, take the place of the \
             system bundle); or add it to the system's trust store",
        );
    }
    Check::fail(
        "network",
        format!("Google's servers cannot be reached{via} ({failure})"),
        match proxy {
            Some((name, _)) => format!("check the proxy in {name} (and NO_PROXY)"),
            None => "check the network; behind a proxy, set HTTPS_PROXY".to_string(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;
    const LOGIN: &str = "gemauth login --client-id-file client_secret.json";

    #[test]
    fn a_testing_apps_refresh_token_is_told_apart_from_a_revoked_one() {
        let expired = Some("Token has been expired or revoked.");
        let seven_days_ago = Some(NOW - 7 * DAY - 3600);
        let check = refused_refresh_token(expired, seven_days_ago, NOW, LOGIN);
        assert!(!check.ok);
        assert!(
            check.detail.contains("expired 7 days after the login"),
            "{check:?}"
        );
        let fix = check.fix.unwrap();
        assert!(fix.contains("Publish app") && fix.contains(LOGIN), "{fix}");

        for age in [Some(NOW - 2 * DAY), Some(NOW - 30 * DAY), None] {
            let check = refused_refresh_token(expired, age, NOW, LOGIN);
            assert!(check.detail.contains("revoked, or expired"), "{check:?}");
            assert!(!check.fix.unwrap().contains("Publish"));
        }
        let check = refused_refresh_token(Some("Bad Request"), seven_days_ago, NOW, LOGIN);
        assert!(check.detail.contains("(Bad Request)"), "{check:?}");
        assert!(
            reauthentication(LOGIN)
                .detail
                .contains("sign in again periodically")
        );
    }

    /// Google's documented answer when the API is not enabled in the quota project.
    const SERVICE_DISABLED: &str = r#"{"error": {"code": 403,
        "message": "Generative Language API has not been used in project 123456 before or it is disabled. Enable it by visiting https://console.developers.google.com/apis/api/generativelanguage.googleapis.com/overview?project=123456 then retry.",
        "status": "PERMISSION_DENIED",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "SERVICE_DISABLED",
            "domain": "googleapis.com", "metadata": {"consumer": "projects/123456",
            "service": "generativelanguage.googleapis.com",
            "activationUrl": "https://console.developers.google.com/apis/api/generativelanguage.googleapis.com/overview?project=123456",
            "serviceTitle": "Generative Language API", "containerInfo": "123456"}},
          {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
            "message": "Generative Language API has not been used in project 123456 before or it is disabled."}]}}"#;

    #[test]
    fn google_api_errors_become_the_fix_they_need() {
        let check = api_answer(
            403,
            SERVICE_DISABLED.as_bytes(),
            None,
            Some("my-project"),
            LOGIN,
        );
        assert_eq!(
            check.fix.as_deref(),
            Some(
                "enable the Generative Language API in project 123456: https://console.developers.google.com/apis/api/generativelanguage.googleapis.com/overview?project=123456"
            )
        );

        let denied = r#"{"error": {"code": 403, "message": "Caller does not have required permission to use project my-project.", "status": "PERMISSION_DENIED",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "USER_PROJECT_DENIED", "domain": "googleapis.com",
            "metadata": {"consumer": "projects/my-project", "service": "generativelanguage.googleapis.com"}}]}}"#;
        let check = api_answer(403, denied.as_bytes(), None, Some("my-project"), LOGIN);
        assert!(
            check.detail.contains("serviceusage.services.use"),
            "{check:?}"
        );
        assert!(
            check
                .fix
                .unwrap()
                .contains("roles/serviceusage.serviceUsageConsumer on my-project")
        );

        let scopes = r#"{"error": {"code": 403, "message": "Request had insufficient authentication scopes.", "status": "PERMISSION_DENIED",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT", "domain": "googleapis.com",
            "metadata": {"method": "google.ai.generativelanguage.v1beta.ModelService.ListModels", "service": "generativelanguage.googleapis.com"}}]}}"#;
        let header = r#"Bearer realm="https://accounts.google.com/", error="insufficient_scope", scope="https://www.googleapis.com/auth/generative-language https://www.googleapis.com/auth/cloud-platform""#;
        let check = api_answer(403, scopes.as_bytes(), Some(header), None, LOGIN);
        assert!(
            check
                .detail
                .contains("https://www.googleapis.com/auth/generative-language)"),
            "{check:?}"
        );
        assert_eq!(
            check.fix.as_deref(),
            Some(
                "sign in with it: `gemauth login --client-id-file client_secret.json --scopes generative-language,openid,email`"
            )
        );

        let ok = api_answer(
            200,
            br#"{"models": [{"name": "models/gemini"}]}"#,
            None,
            None,
            LOGIN,
        );
        assert!(ok.ok && ok.detail.contains("1 models"), "{ok:?}");
        let other = api_answer(500, b"<html>", None, None, LOGIN);
        assert!(!other.ok && other.detail.ends_with("HTTP 500"), "{other:?}");
        // Control characters from a hostile server are removed.
        let hostile = br#"{"error": {"status": "X\u001b[31m", "message": "a\nb"}}"#;
        let check = api_answer(400, hostile, None, None, LOGIN);
        assert!(!check.detail.chars().any(char::is_control), "{check:?}");
    }

    #[test]
    fn the_clock_is_compared_with_the_servers_date() {
        let date =
            httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(NOW));
        assert_eq!(clock_offset(&date, NOW + 90), Some(90));
        assert_eq!(clock_offset(&date, NOW - 5), Some(-5));
        assert_eq!(clock_offset("yesterday", NOW), None);
        assert!(clock(-60, "oauth2.googleapis.com").ok);
        let ahead = clock(90, "oauth2.googleapis.com");
        assert!(
            !ahead.ok && ahead.detail.contains("90 s ahead of"),
            "{ahead:?}"
        );
        assert!(clock(-3600, "x").detail.contains("3600 s behind"));
    }

    #[test]
    fn tls_failures_name_the_variables_that_add_a_ca_and_the_proxy() {
        let proxy = proxy_in_use(|name| {
            (name == "https_proxy").then(|| "http://user:pl4nted@proxy.corp:3128".to_string())
        });
        assert_eq!(
            proxy,
            Some((
                "https_proxy".to_string(),
                "http://proxy.corp:3128/".to_string()
            ))
        );
        let check = network(
            Some("connection failed: invalid peer certificate: UnknownIssuer"),
            proxy.clone(),
        );
        assert!(!check.ok);
        assert!(
            check
                .detail
                .contains("through the proxy http://proxy.corp:3128/"),
            "{check:?}"
        );
        let fix = check.fix.unwrap();
        assert!(
            fix.contains("CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE")
                && fix.contains("SSL_CERT_FILE")
                && fix.contains("SSL_CERT_DIR"),
            "{fix}"
        );
        assert!(network(None, None).ok);
        let refused = network(Some("connection refused"), proxy);
        assert!(refused.fix.unwrap().contains("https_proxy"));
        assert!(
            !format!(
                "{:?}",
                network(None, proxy_in_use(|_| Some("http://u:pl4nted@p:1".into())))
            )
            .contains("pl4nted")
        );
    }

    #[test]
    fn the_token_goes_only_to_an_api_url_the_endpoint_rule_allows() {
        let ctx = |vars: &[(&str, &str)]| {
            Context::fixed(
                vars,
                NOW,
                None,
                crate::oauth::Http::fake(|_| Ok((200, Vec::new()))),
            )
        };
        let url = |vars: &[(&str, &str)]| api_url(&ctx(vars)).map(|u| u.to_string());
        assert_eq!(url(&[]).unwrap(), DEFAULT_API_URL);
        let local = [(ENV_CHECK_API_URL, "http://127.0.0.1:8080/v1/models")];
        assert_eq!(url(&local).unwrap(), "http://127.0.0.1:8080/v1/models");
        let evil = [(ENV_CHECK_API_URL, "https://models.evil.example/v1/models")];
        let refused = url(&evil).unwrap_err();
        assert!(
            refused.detail.contains("models.evil.example"),
            "{refused:?}"
        );
        assert!(refused.fix.unwrap().contains("GEMAUTH_TRUSTED_HOSTS"));
        let trusted = [
            evil[0],
            (crate::rules::ENV_TRUSTED_HOSTS, "models.evil.example"),
        ];
        assert!(url(&trusted).is_ok());
        let plain = [(
            ENV_CHECK_API_URL,
            "http://generativelanguage.googleapis.com/v1/models",
        )];
        assert!(url(&plain).is_err());
    }

    #[test]
    fn lines_carry_the_mark_and_the_fix() {
        assert_eq!(Check::pass("clock", "fine").line(), "✓ fine");
        assert_eq!(
            Check::fail("api", "off", "enable it").line(),
            "✗ off — enable it"
        );
    }
}
