//! `gemauth status --check`, the doctor for the quickstart's failures: each check against the fake
//! server with Google's documented answers, one line each (✓ or ✗ with the fix), in text and
//! JSON, and a non-zero exit when any fails.

use serde_json::{Value, json};

use crate::harness::*;
use crate::runner::{Trial, trials};

const MODELS: &str = "/v1/models";

/// `status --check` (the harness points GEMAUTH_CHECK_API_URL at the fake's model list).
fn check(env: &TestEnv, format: &str) -> Finished {
    env.run(&["status", "--check", "--format", format])
}

/// The API's 403 PERMISSION_DENIED with `message` and an ErrorInfo of `reason` and `metadata`.
fn api_denied(message: &str, reason: &str, metadata: Value) -> Canned {
    Canned::json(
        403,
        &json!({"error": {"code": 403, "status": "PERMISSION_DENIED",
            "message": message,
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason, "domain": "googleapis.com",
                "metadata": metadata}]}})
        .to_string(),
    )
}

fn models_ok(env: &TestEnv) {
    env.google.enqueue(
        MODELS,
        Canned::json(200, r#"{"models": [{"name": "models/gemini-2.5-flash"}]}"#),
    );
}

/// Moves the recorded login `days` into the past.
fn login_days_ago(env: &TestEnv, days: u64) {
    let dir = env.cache_dir().join("logins");
    let records: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    std::fs::write(
        &records[0],
        json!({"logged_in_at": now - days * 24 * 3600 - 600}).to_string(),
    )
    .unwrap();
}

fn every_check_passes_for_a_working_login() {
    let env = TestEnv::new();
    env.login();
    env.run(&["set-quota-project", PROJECT_ID]);
    models_ok(&env);
    let done = check(&env, "text");
    assert_eq!(done.code(), 0, "{}", done.stderr);
    for line in [
        "✓ a token valid until",
        "✓ quota project test-project-1",
        "✓ the Generative Language API answers (1 models listed)",
        "✓ this machine's clock agrees with",
        "✓ Google's servers are reachable",
    ] {
        assert!(
            done.stdout.contains(line),
            "{line:?} missing:\n{}",
            done.stdout
        );
    }
    // The API was asked with the token `print-access-token` gives (the cached one).
    let token = env.run(&["print-access-token"]).stdout;
    let seen = &env.google.seen(MODELS)[0];
    assert_eq!(
        seen.headers["authorization"],
        format!("Bearer {}", token.trim())
    );
    assert_eq!(seen.headers["x-goog-user-project"], PROJECT_ID);

    models_ok(&env);
    let done = check(&env, "json");
    let report: Value = serde_json::from_str(&done.stdout).unwrap();
    assert_eq!(report["check"]["ok"], true);
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true)
    );
}

fn a_testing_apps_seven_day_refresh_token_is_named_with_both_fixes() {
    let env = TestEnv::new();
    env.login();
    login_days_ago(&env, 7);
    env.expire_cache();
    env.google.enqueue("/token", Canned::expired_grant());
    let report = failed_report(&check(&env, "json"), 3);
    let token = named_check(&report, "token");
    assert_eq!(token["ok"], false);
    assert_check_says(token, "detail", "expired 7 days after the login");
    let fix = token["fix"].as_str().unwrap();
    assert!(
        fix.contains("Publish app") && fix.contains("gemauth login"),
        "{fix}"
    );

    // Two days after the login the same answer means a revocation.
    login_days_ago(&env, 2);
    env.google.enqueue("/token", Canned::expired_grant());
    let done = check(&env, "text");
    assert_eq!(done.code(), 3);
    assert!(
        done.stderr
            .contains("✗ the refresh token was revoked, or expired"),
        "{}",
        done.stderr
    );
}

fn reauthentication_is_told_apart_from_revocation() {
    let env = TestEnv::new();
    env.write_credentials(&env.adc_path(), "1//r");
    env.google.enqueue("/token", Canned::reauth_required());
    let report = failed_report(&check(&env, "json"), 3);
    let token = named_check(&report, "token");
    assert_check_says(token, "detail", "sign in again periodically");
    // Without a token the API is not asked.
    assert_eq!(named_check(&report, "api")["ok"], false);
    assert!(env.google.seen(MODELS).is_empty());
}

fn an_api_that_is_not_enabled_names_the_project_and_the_activation_url() {
    let env = TestEnv::new();
    env.write_credentials(&env.adc_path(), "1//r");
    let url = "https://console.developers.google.com/apis/api/generativelanguage.googleapis.com/overview?project=123456";
    env.google.enqueue(
        MODELS,
        api_denied(
            "Generative Language API has not been used in project 123456 before or it is disabled.",
            "SERVICE_DISABLED",
            json!({"consumer": "projects/123456", "service": "generativelanguage.googleapis.com",
                        "activationUrl": url}),
        ),
    );
    let done = check(&env, "text");
    assert_eq!(done.code(), 1, "{}", done.stderr);
    assert!(
        done.stderr.contains(&format!(
            "enable the Generative Language API in project 123456: {url}"
        )),
        "{}",
        done.stderr
    );
}

fn quota_project_problems_and_missing_scopes_say_what_to_run() {
    let env = TestEnv::new();
    // A user credential without a quota project.
    env.google.add_refresh_token("1//r");
    let file = env.write_json(
        "user.json",
        &json!({"type": "authorized_user", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "refresh_token": "1//r", "token_uri": format!("{}/token", env.google.base)}),
    );
    models_ok(&env);
    let done = status_check_json(&env, &file);
    let report = failed_report(&done, 1);
    let quota = named_check(&report, "quota_project");
    assert_eq!(quota["ok"], false);
    assert_check_says(quota, "fix", "gemauth set-quota-project");

    // The user may not use the quota project.
    let env = TestEnv::new();
    env.write_credentials(&env.adc_path(), "1//r");
    env.google.enqueue(
        MODELS,
        api_denied("Caller does not have required permission to use project test-project-1.", "USER_PROJECT_DENIED", json!({"consumer": "projects/test-project-1", "service": "generativelanguage.googleapis.com"})),
    );
    let report = failed_report(&check(&env, "json"), 1);
    let api = named_check(&report, "api");
    assert_check_says(
        api,
        "fix",
        "roles/serviceusage.serviceUsageConsumer on test-project-1",
    );

    // The token lacks the scope.
    env.google.enqueue(
        MODELS,
        api_denied("Request had insufficient authentication scopes.", "ACCESS_TOKEN_SCOPE_INSUFFICIENT", json!({"service": "generativelanguage.googleapis.com"}))
        .header(
            "WWW-Authenticate",
            r#"Bearer realm="https://accounts.google.com/", error="insufficient_scope", scope="https://www.googleapis.com/auth/generative-language""#,
        ),
    );
    let report = failed_report(&check(&env, "json"), 1);
    let api = named_check(&report, "api");
    assert_check_says(api, "fix", "--scopes generative-language,openid,email");
}

fn a_clock_off_by_more_than_a_minute_is_reported() {
    let env = TestEnv::new();
    env.write_credentials(&env.adc_path(), "1//r");
    // A cached token, so the next request to the token endpoint is the clock's.
    assert_eq!(env.run(&["print-access-token"]).code(), 0);
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    env.google.enqueue(
        "/token",
        Canned::json(405, "{}").header("Date", &httpdate::fmt_http_date(an_hour_ago)),
    );
    models_ok(&env);
    let report = failed_report(&check(&env, "json"), 1);
    let clock = named_check(&report, "clock");
    assert_eq!(clock["ok"], false);
    let detail = clock["detail"].as_str().unwrap();
    assert!(detail.contains("s ahead of"), "{clock}");
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        every_check_passes_for_a_working_login,
        a_testing_apps_seven_day_refresh_token_is_named_with_both_fixes,
        reauthentication_is_told_apart_from_revocation,
        an_api_that_is_not_enabled_names_the_project_and_the_activation_url,
        quota_project_problems_and_missing_scopes_say_what_to_run,
        a_clock_off_by_more_than_a_minute_is_reported,
    ]
}
