//! Workforce identity federation user logins: `gemauth login --login-config` (gcloud's
//! `auth application-default login --login-config`) against a fake authorization server and STS
//! that check every parameter gcloud sends, and the `external_account_authorized_user` file it
//! writes: refresh with rotation, `status`, `revoke`, no ID tokens, refusals, and google-auth
//! loading and refreshing the file.

use crate::harness::*;
use crate::runner::{Trial, trials};

/// Runs an approved workforce login with these flags; returns its standard error.
fn workforce_login(env: &TestEnv, args: &[&str]) -> String {
    let run = env.start_workforce_login(args);
    let url = run.browser_url();
    assert!(
        url.starts_with(&format!("{}/workforce/authorize?", env.google.base)),
        "{url}"
    );
    let page = follow_authorization(&url);
    assert_eq!(page.status, 200, "{}", page.body);
    let done = run.finish();
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "");
    done.stderr
}

/// The file a workforce login writes, in gcloud's shape.
fn expected_file(env: &TestEnv, refresh_token: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "external_account_authorized_user",
        "audience": WORKFORCE_AUDIENCE,
        "refresh_token": refresh_token,
        "token_url": format!("{}/v1/oauthtoken", env.google.base),
        "token_info_url": format!("{}/v1/introspect", env.google.base),
        "client_id": WORKFORCE_CLIENT_ID,
        "client_secret": WORKFORCE_CLIENT_SECRET,
        "universe_domain": "googleapis.com",
    })
}

fn login_refresh_rotation_status_and_revoke() {
    let env = TestEnv::new();
    env.google.with(|b| b.rotate = true);
    let run = env.start_workforce_login(&[]);
    let url = run.browser_url();
    let q = query_of(&url);
    assert_eq!(q["client_id"], WORKFORCE_CLIENT_ID);
    assert_eq!(q["scope"], WORKFORCE_SCOPE);
    let redirect = q["redirect_uri"].clone();
    assert!(redirect.starts_with("http://localhost:"), "{redirect}");
    assert!(!q.contains_key("prompt"));
    // The fake authorization page refuses anything but gcloud's parameters (harness/workforce.rs).
    let page = follow_authorization(&url);
    assert_eq!(page.status, 200, "{}", page.body);
    let done = run.finish();
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "");
    assert!(
        done.stderr
            .contains("Account: a user of workforce pool test-pool (provider test-idp)"),
        "{}",
        done.stderr
    );

    // The code exchange: Basic client authentication, the verifier, the same redirect URI.
    let exchanges = env.google.seen("/v1/oauthtoken");
    assert_eq!(exchanges.len(), 1);
    assert_eq!(exchanges[0].form["grant_type"], "authorization_code");
    assert_eq!(exchanges[0].form["redirect_uri"], redirect);
    assert_eq!(exchanges[0].form["code_verifier"].len(), 128);
    assert_eq!(exchanges[0].form.len(), 4);

    let path = env.adc_path();
    assert_eq!(read_json(&path), expected_file(&env, "wf-refresh-2"));

    // The login's token is cached: printed without a request.
    let done = env.run(&["print-access-token"]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "ya29.wf-2\n");
    assert_eq!(env.google.seen("/v1/oauthtoken").len(), 1);

    // A refresh: google-auth's form with Basic client authentication; the rotated refresh
    // token is saved and the rest of the file kept.
    let done = env.run(&["print-access-token", "--min-lifetime", "3600"]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "ya29.wf-3\n");
    let refresh = &env.google.seen("/v1/oauthtoken")[1];
    assert_eq!(refresh.form.len(), 2);
    assert_eq!(refresh.form["grant_type"], "refresh_token");
    assert_eq!(refresh.form["refresh_token"], "wf-refresh-2");
    assert!(refresh.headers["authorization"].starts_with("Basic "));
    assert_eq!(read_json(&path), expected_file(&env, "wf-refresh-3"));
    assert!(!env.google.refresh_token_valid("wf-refresh-2"));

    // status: the type, the pool, its endpoints; no ID tokens.
    let done = env.run(&["status", "--format", "json"]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let status = done.json();
    assert_eq!(status["type"], "external_account_authorized_user");
    assert_eq!(
        status["account"],
        "a user of workforce pool test-pool (provider test-idp)"
    );
    assert_eq!(status["audience"], WORKFORCE_AUDIENCE);
    assert_eq!(status["workforce_pool"], "test-pool");
    assert_eq!(status["provider"], "test-idp");
    assert_eq!(status["client_id"], WORKFORCE_CLIENT_ID);
    assert!(
        status["id_tokens"].as_str().unwrap().starts_with("no:"),
        "{status}"
    );
    let done = env.run(&["status"]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(
        done.stdout.contains("Workforce pool:  test-pool"),
        "{}",
        done.stdout
    );
    assert!(
        done.stdout.contains(&format!(
            "Token endpoint:  {}/v1/oauthtoken",
            env.google.base
        )),
        "{}",
        done.stdout
    );

    // revoke: the file gcloud writes names no revoke_url; it is removed, with a warning.
    let done = env.run(&["revoke"]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "");
    assert!(
        done.stderr.contains("names no revoke_url"),
        "{}",
        done.stderr
    );
    assert!(!path.exists());
    assert!(env.google.seen("/v1/revoke").is_empty());
}

fn revoke_revokes_at_the_files_revoke_url() {
    let env = TestEnv::new();
    workforce_login(&env, &[]);
    let path = env.adc_path();
    let mut file = read_json(&path);
    file["revoke_url"] = format!("{}/v1/revoke", env.google.base).into();
    write_private(&path, &serde_json::to_vec_pretty(&file).unwrap());
    let done = env.run(&["revoke"]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(
        done.stderr.contains("Revoked the grant at"),
        "{}",
        done.stderr
    );
    let revocations = env.google.seen("/v1/revoke");
    assert_eq!(revocations.len(), 1);
    assert_eq!(revocations[0].form["token"], "wf-refresh-2");
    assert_eq!(revocations[0].form["token_type_hint"], "refresh_token");
    assert!(revocations[0].headers["authorization"].starts_with("Basic "));
    assert!(!env.google.refresh_token_valid("wf-refresh-2"));
    assert!(!path.exists());
}

fn no_browser_paste_and_the_environments_login_config() {
    let env = TestEnv::new();
    let config = env.login_config();
    let mut cmd = env.cmd();
    cmd.arg("login")
        .arg("--no-browser")
        .env("CLOUDSDK_AUTH_LOGIN_CONFIG_FILE", &config);
    let mut run = Running::spawn_interactive(cmd, env.path("browser-args"));
    let url = run.printed_url();
    assert!(url.contains("/workforce/authorize?"), "{url}");
    let said = run.wait_stderr("Paste the address");
    assert!(
        said.contains("the browser is sent to http://localhost:"),
        "{said}"
    );
    let answer = approve_elsewhere(&url);
    run.paste(&answer);
    let done = run.finish();
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(
        read_json(&env.adc_path()),
        expected_file(&env, "wf-refresh-2")
    );

    // With the variable set, --client-id-file is refused as gcloud refuses it.
    let client = env.client_file();
    let done = env.run_with(
        &["login", "--client-id-file", client.to_str().unwrap()],
        &[("CLOUDSDK_AUTH_LOGIN_CONFIG_FILE", &config)],
    );
    assert_eq!(done.code(), 2, "{}", done.stderr);
    assert!(
        done.stderr
            .contains("unset CLOUDSDK_AUTH_LOGIN_CONFIG_FILE"),
        "{}",
        done.stderr
    );
    let done = env.run(&["login", "--login-config", "x.json", "--scopes", "openid"]);
    assert_eq!(done.code(), 2, "{}", done.stderr);
    assert!(env.google.seen("/v1/oauthtoken").len() == 1);
}

/// A refused code, a denied sign-in, and an answer without a refresh token: exit 1 with the
/// workforce login's hints, and no file.
fn failed_workforce_logins_write_nothing_and_say_what_to_do() {
    let env = TestEnv::new();
    let attempt = |env: &TestEnv| {
        let run = env.start_workforce_login(&[]);
        let page = follow_authorization(&run.browser_url());
        assert_eq!(page.status, 200, "{}", page.body);
        run.finish()
    };
    // Exit 1, and standard error says every one of `needles`.
    let fails_saying = |env: &TestEnv, needles: &[&str]| {
        let done = attempt(env);
        assert_eq!(done.code(), 1, "{}", done.stderr);
        assert!(
            needles.iter().all(|n| done.stderr.contains(n)),
            "{}",
            done.stderr
        );
    };
    env.google.enqueue(
        "/v1/oauthtoken",
        Canned::json(
            400,
            r#"{"error":"invalid_grant","error_description":"The code is invalid."}"#,
        ),
    );
    fails_saying(
        &env,
        &[
            "refused the workforce sign-in's code",
            "gemauth login --login-config FILE",
        ],
    );
    env.google
        .enqueue("/v1/oauthtoken", Canned::access_token("ya29.x", 3600));
    fails_saying(
        &env,
        &["issued no refresh token", "workforce pool's administrator"],
    );
    env.google
        .with(|b| b.deny = Some(("access_denied".into(), "The user said no".into())));
    fails_saying(&env, &["access_denied"]);
    assert!(!env.adc_path().exists());
}

fn identity_tokens_are_refused_with_the_reason() {
    let env = TestEnv::new();
    workforce_login(&env, &[]);
    let done = env.run(&["print-identity-token", "--audiences", "https://run.example"]);
    assert_eq!(done.code(), 2, "{}", done.stderr);
    assert_eq!(done.stdout, "");
    assert!(
        done.stderr.contains("external_account_authorized_user")
            && done.stderr.contains("access tokens only"),
        "{}",
        done.stderr
    );
}

/// Writes `file` at `path` and runs `print-access-token --credential-file` with it: exit 3.
fn fails_with_file(env: &TestEnv, path: &std::path::Path, file: &serde_json::Value) -> Finished {
    write_private(path, &serde_json::to_vec(file).unwrap());
    let done = env.run(&[
        "print-access-token",
        "--credential-file",
        path.to_str().unwrap(),
    ]);
    assert_eq!(done.code(), 3, "{}", done.stderr);
    done
}

fn a_refused_refresh_token_hints_at_the_workforce_login() {
    let env = TestEnv::new();
    let path = env.path("wf.json");
    let done = fails_with_file(&env, &path, &expected_file(&env, "wf-unknown"));
    assert_eq!(done.stdout, "");
    assert!(
        done.stderr.contains("gemauth login --login-config")
            && !done.stderr.contains("--client-id-file"),
        "{}",
        done.stderr
    );
    assert!(!done.stderr.contains("wf-unknown"), "{}", done.stderr);
    // status --check: the token check names the workforce login; a workforce user needs a
    // quota project as a Google account does.
    // On failure stdout stays empty: the report is on stderr, before the error line.
    let report = failed_report(&status_check_json(&env, &path), 3);
    let check = |name: &str| named_check(&report, name).clone();
    assert_eq!(check("token")["ok"], false);
    assert!(
        check("token")["fix"]
            .as_str()
            .unwrap()
            .contains("gemauth login --login-config"),
        "{report}"
    );
    assert_eq!(check("quota_project")["ok"], false, "{report}");
}

fn untrusted_or_bad_login_configs_are_refused_before_any_request() {
    let env = TestEnv::new();
    for (field, url) in [
        ("token_url", "https://sts.evil.example/v1/oauthtoken"),
        ("token_info_url", "https://sts.evil.example/v1/introspect"),
        ("auth_url", "https://auth.evil.example/authorize"),
    ] {
        let mut config = env.login_config_json();
        config[field] = url.into();
        let path = env.path("login-config.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let done = env.run(&["login", "--login-config", path.to_str().unwrap()]);
        assert_eq!(done.code(), 3, "{field}: {}", done.stderr);
        assert!(
            done.stderr
                .contains(&format!("login configuration file {}", path.display()))
                && done.stderr.contains(field)
                && done.stderr.contains("evil.example")
                && done.stderr.contains("GEMAUTH_TRUSTED_HOSTS"),
            "{}",
            done.stderr
        );
    }
    let path = env.path("login-config.json");
    std::fs::write(
        &path,
        r#"{"type": "external_account_authorized_user_login_config", "audience": ["planted"]}"#,
    )
    .unwrap();
    let done = env.run(&["login", "--login-config", path.to_str().unwrap()]);
    assert_eq!(done.code(), 1, "{}", done.stderr);
    assert!(
        done.stderr.contains("audience") && !done.stderr.contains("planted"),
        "{}",
        done.stderr
    );
    assert!(env.google.seen("/workforce/authorize").is_empty());
    assert!(env.google.seen("/v1/oauthtoken").is_empty());
    assert!(!env.adc_path().exists());
    assert!(!env.path("browser-args").exists());
}

fn a_workforce_file_with_a_foreign_endpoint_or_a_missing_field_is_refused() {
    let env = TestEnv::new();
    let path = env.path("wf.json");
    for field in ["token_url", "token_info_url", "revoke_url"] {
        let mut file = expected_file(&env, "wf-refresh-1");
        file[field] = "https://sts.evil.example/v1/x?key=planted".into();
        let done = fails_with_file(&env, &path, &file);
        assert_eq!(done.stdout, "");
        assert!(
            done.stderr.contains(&path.display().to_string())
                && done.stderr.contains(field)
                && done.stderr.contains("sts.evil.example")
                && !done.stderr.contains("planted"),
            "{}",
            done.stderr
        );
    }
    let mut file = expected_file(&env, "wf-refresh-1");
    file.as_object_mut().unwrap().remove("client_secret");
    let done = fails_with_file(&env, &path, &file);
    assert!(done.stderr.contains("client_secret"), "{}", done.stderr);
    assert!(env.google.seen("/v1/oauthtoken").is_empty());
}

/// google-auth loads the file `gemauth login --login-config` wrote (`google.auth.default()`),
/// as an `external_account_authorized_user.Credentials`, and refreshes with it at the fake STS.
fn google_auth_loads_and_refreshes_the_workforce_file() {
    let env = TestEnv::new();
    workforce_login(&env, &[]);
    let script = r#"
import json, google.auth, google.auth.transport.requests
creds, project = google.auth.default()
creds.refresh(google.auth.transport.requests.Request())
print(json.dumps({"class": type(creds).__module__ + "." + type(creds).__name__,
    "audience": creds.audience, "token_url": creds.token_url, "token": creds.token,
    "valid": creds.valid, "universe": creds.universe_domain}))
"#;
    let stdout = run_google_auth(&env, &["-c".into(), script.into()]);
    let summary: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(
        summary["class"],
        "google.auth.external_account_authorized_user.Credentials"
    );
    assert_eq!(summary["audience"], WORKFORCE_AUDIENCE);
    assert_eq!(summary["token"], "ya29.wf-3");
    assert_eq!(summary["valid"], true);
    assert_eq!(summary["universe"], "googleapis.com");
    let refresh = &env.google.seen("/v1/oauthtoken")[1];
    assert_eq!(refresh.form["refresh_token"], "wf-refresh-2");
    assert!(refresh.headers["authorization"].starts_with("Basic "));
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        login_refresh_rotation_status_and_revoke,
        revoke_revokes_at_the_files_revoke_url,
        no_browser_paste_and_the_environments_login_config,
        identity_tokens_are_refused_with_the_reason,
        failed_workforce_logins_write_nothing_and_say_what_to_do,
        a_refused_refresh_token_hints_at_the_workforce_login,
        untrusted_or_bad_login_configs_are_refused_before_any_request,
        a_workforce_file_with_a_foreign_endpoint_or_a_missing_field_is_refused,
        google_auth_loads_and_refreshes_the_workforce_file => GoogleAuth,
    ]
}
