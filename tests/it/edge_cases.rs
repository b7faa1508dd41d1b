//! Edge cases found in review: cache keys of federated credentials, rotation through an
//! impersonation's source, empty or absurd server answers, header injection through the quota
//! project, secrets in URLs, and exit codes of refusals at login and revoke.

use crate::harness::*;
use crate::runner::{Trial, trials};
use serde_json::{Value, json};

fn a_changed_federation_source_is_a_different_cache_entry() {
    let env = TestEnv::new();
    std::fs::write(env.path("alice.tok"), "subject-token-123").unwrap();
    std::fs::write(env.path("bob.tok"), "subject-token-123").unwrap();
    let config = |source: &str| {
        json!({
            "type": "external_account",
            "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": format!("{}/sts", env.google.base),
            "credential_source": {"file": env.path(source)},
        })
    };
    let file = env.write_json("ext.json", &config("alice.tok"));
    let args = [
        "print-access-token",
        "--credential-file",
        file.to_str().unwrap(),
    ];
    assert_eq!(env.run(&args).stdout, "ya29.sts-1\n");
    env.write_json("ext.json", &config("bob.tok"));
    assert_eq!(
        env.run(&args).stdout,
        "ya29.sts-2\n",
        "not alice's cached token"
    );
    assert_eq!(env.google.seen("/sts").len(), 2);
}

fn a_rotated_source_refresh_token_of_an_impersonation_is_saved() {
    let env = TestEnv::new();
    env.google.add_refresh_token("1//source");
    env.google.with(|b| b.rotate = true);
    let file = env.write_json(
        "imp.json",
        &json!({
            "type": "impersonated_service_account",
            "service_account_impersonation_url": format!(
                "{}/v1/projects/-/serviceAccounts/t@p.iam.gserviceaccount.com:generateAccessToken",
                env.google.base
            ),
            "source_credentials": env.user_source("1//source"),
            "kept": "yes",
        }),
    );
    let args = [
        "print-access-token",
        "--credential-file",
        file.to_str().unwrap(),
    ];
    let first = env.run(&args);
    assert_eq!(first.code(), 0, "{}", first.stderr);
    let written = read_json(&file);
    assert_eq!(
        written["source_credentials"]["refresh_token"],
        "1//refresh-1"
    );
    assert_eq!(written["kept"], "yes");
    env.expire_cache();
    let second = env.run(&args);
    assert_eq!(second.code(), 0, "{}", second.stderr);
    let refreshes = env.google.seen_grants("refresh_token");
    assert_eq!(refreshes[1].form["refresh_token"], "1//refresh-1");
}

fn a_rotated_source_refresh_token_is_saved_even_when_impersonation_fails() {
    let env = TestEnv::new();
    env.google.add_refresh_token("1//source");
    env.google.with(|b| b.rotate = true);
    let path = "/v1/projects/-/serviceAccounts/t@p.iam.gserviceaccount.com:generateAccessToken";
    let file = env.write_json(
        "imp.json",
        &json!({
            "type": "impersonated_service_account",
            "service_account_impersonation_url": format!("{}{path}", env.google.base),
            "source_credentials": env.user_source("1//source"),
        }),
    );
    env.google.enqueue(
        path,
        Canned::json(
            403,
            r#"{"error":{"code":403,"message":"Permission denied","status":"PERMISSION_DENIED"}}"#,
        ),
    );
    let args = [
        "print-access-token",
        "--credential-file",
        file.to_str().unwrap(),
    ];
    let failed = env.run(&args);
    assert_ne!(failed.code(), 0);
    assert_eq!(failed.stdout, "");
    // The source's refresh token was spent and rotated: the new one is on disk.
    let rotated = read_json(&file)["source_credentials"]["refresh_token"].clone();
    assert_eq!(rotated, "1//refresh-1");
    assert!(!env.google.refresh_token_valid("1//source"));
    let again = env.run(&args);
    assert_eq!(again.code(), 0, "{}", again.stderr);
    assert_eq!(
        env.google.seen_grants("refresh_token")[1].form["refresh_token"],
        "1//refresh-1"
    );
}

fn an_empty_refresh_token_in_a_response_is_no_rotation() {
    let env = TestEnv::new();
    let path = env.adc_path();
    let before = env.write_credentials(&path, "1//r");
    env.google.enqueue(
        "/token",
        Canned::json(
            200,
            r#"{"access_token":"ya29.fine","expires_in":3600,"refresh_token":""}"#,
        ),
    );
    let done = env.run(&["print-access-token"]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "ya29.fine\n");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

fn empty_or_broken_access_tokens_are_refused() {
    let env = TestEnv::new();
    let path = env.adc_path();
    let before = env.write_credentials(&path, "1//r");
    for body in [
        r#"{"access_token":"","expires_in":3600}"#,
        r#"{"access_token":"ya29.a\nX-Evil: 1","expires_in":3600}"#,
        r#"{"access_token":"two words","expires_in":3600}"#,
    ] {
        env.google.enqueue("/token", Canned::json(200, body));
        let done = env.run(&["print-access-token"]);
        assert_eq!(done.code(), 1, "{body}: {}", done.stderr);
        assert_eq!(done.stdout, "");
        assert!(
            done.stderr.contains("access_token is empty or holds"),
            "{}",
            done.stderr
        );
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert!(env.cached_tokens().is_empty());
    }
}

fn absurd_lifetimes_and_retry_after_values_do_not_crash() {
    let env = TestEnv::new();
    env.write_credentials(&env.adc_path(), "1//r");
    env.google.enqueue(
        "/token",
        Canned::html(503, "busy").header("Retry-After", "18446744073709551615"),
    );
    let done = env.run(&["print-access-token"]);
    assert_eq!(done.code(), 1, "{}", done.stderr);
    assert!(done.stderr.contains("HTTP 503"), "{}", done.stderr);

    env.google.enqueue(
        "/token",
        Canned::json(
            200,
            r#"{"access_token":"ya29.forever","expires_in":18446744073709551615}"#,
        ),
    );
    let done = env.run(&["print-access-token", "--format", "json"]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let out: Value = serde_json::from_str(&done.stdout).unwrap();
    let expires = humantime::parse_rfc3339(out["expires_at"].as_str().unwrap()).unwrap();
    let days = expires
        .duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs()
        / 86_400;
    assert!(days <= 7, "lifetimes are capped at a week, got {days} days");
    let status = env.run(&["status", "--format", "json"]);
    assert_eq!(status.code(), 0, "{}", status.stderr);
}

fn quota_projects_cannot_inject_headers() {
    let env = TestEnv::new();
    let client = env.client_file();
    let login = env.run(&[
        "login",
        "--client-id-file",
        client.to_str().unwrap(),
        "--quota-project",
        "bad\nX-Evil: 1",
    ]);
    assert_eq!(login.code(), 2, "{}", login.stderr);
    assert!(env.google.seen("/auth").is_empty());

    env.write_credentials(&env.adc_path(), "1//r");
    let bad_env = env.run_with(
        &["print-quota-project"],
        &[("GOOGLE_CLOUD_QUOTA_PROJECT", "x\nX-Evil: 1")],
    );
    assert_eq!(bad_env.code(), 2, "{}", bad_env.stderr);
    assert_eq!(bad_env.stdout, "");

    let mut value = read_json(&env.adc_path());
    value["quota_project_id"] = json!("proj\r\nX-Evil: 1");
    std::fs::write(env.adc_path(), value.to_string()).unwrap();
    let bad_file = env.run(&["print-access-token"]);
    assert_eq!(bad_file.code(), 3, "{}", bad_file.stderr);
    assert!(
        bad_file.stderr.contains("quota_project_id"),
        "{}",
        bad_file.stderr
    );
    assert!(!bad_file.stderr.contains("X-Evil: 1\n"));
}

fn passwords_in_endpoint_urls_are_not_echoed() {
    let env = TestEnv::new();
    let path = env.path("creds.json");
    std::fs::write(
        &path,
        json!({
            "type": "authorized_user", "client_id": "a", "client_secret": "b", "refresh_token": "c",
            "token_uri": "https://someone:TOPSECRETPW@oauth2.example.com/token",
        })
        .to_string(),
    )
    .unwrap();
    for args in [
        vec![
            "print-access-token",
            "--credential-file",
            path.to_str().unwrap(),
        ],
        vec!["status", "--credential-file", path.to_str().unwrap()],
    ] {
        let done = env.run(&args);
        assert_eq!(done.code(), 1, "{}", done.stderr);
        assert!(!done.stderr.contains("TOPSECRETPW"), "{}", done.stderr);
        assert!(!done.stdout.contains("TOPSECRETPW"));
    }
}

fn a_refused_client_at_login_is_exit_1_with_a_client_hint() {
    let env = TestEnv::new();
    env.google.enqueue(
        "/token",
        Canned::json(
            401,
            r#"{"error":"invalid_client","error_description":"The OAuth client was deleted."}"#,
        ),
    );
    let run = env.start_login(&[]);
    follow_authorization(&run.browser_url());
    let done = run.finish();
    assert_eq!(done.code(), 1, "{}", done.stderr);
    assert!(done.stderr.contains("The OAuth client was deleted."));
    assert!(
        done.stderr
            .contains("download the OAuth client's JSON again"),
        "{}",
        done.stderr
    );
    assert!(!env.adc_path().exists());
}

fn a_refused_revocation_is_exit_1_and_keeps_the_file() {
    let env = TestEnv::new();
    let before = env.write_credentials(&env.adc_path(), "1//r");
    env.google.enqueue(
        "/revoke",
        Canned::json(
            401,
            r#"{"error":"invalid_client","error_description":"Unauthorized"}"#,
        ),
    );
    let done = env.run(&["revoke"]);
    assert_eq!(done.code(), 1, "{}", done.stderr);
    assert!(done.stderr.contains("--force"), "{}", done.stderr);
    assert_eq!(std::fs::read(env.adc_path()).unwrap(), before);
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        a_changed_federation_source_is_a_different_cache_entry,
        a_rotated_source_refresh_token_of_an_impersonation_is_saved,
        a_rotated_source_refresh_token_is_saved_even_when_impersonation_fails,
        an_empty_refresh_token_in_a_response_is_no_rotation,
        empty_or_broken_access_tokens_are_refused,
        absurd_lifetimes_and_retry_after_values_do_not_crash,
        quota_projects_cannot_inject_headers,
        passwords_in_endpoint_urls_are_not_echoed,
        a_refused_client_at_login_is_exit_1_with_a_client_hint,
        a_refused_revocation_is_exit_1_and_keeps_the_file,
    ]
}
