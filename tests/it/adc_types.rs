//! `print-access-token` for every kind of Application Default Credentials, against local fake
//! token, STS, IAM Credentials and metadata endpoints that verify what they receive.

use std::ffi::OsStr;

use crate::harness::*;
use crate::runner::{Trial, trials};
use base64::Engine as _;
use serde_json::{Value, json};

const SA_EMAIL: &str = "ci-runner@test-project-1.iam.gserviceaccount.com";
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

fn service_account_json(env: &TestEnv, key: &str) -> Value {
    json!({
        "type": "service_account",
        "project_id": "test-project-1",
        "private_key_id": "0123456789abcdef",
        "private_key": key,
        "client_email": SA_EMAIL,
        "client_id": "1234567890",
        "token_uri": format!("{}/token", env.google.base),
        "universe_domain": "googleapis.com",
    })
}

fn print_token(env: &TestEnv, file: &std::path::Path, extra: &[&str]) -> Finished {
    let mut args = vec![
        "print-access-token",
        "--credential-file",
        file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    env.run(&args)
}

fn status_json(env: &TestEnv, file: &std::path::Path) -> Value {
    let done = env.run(&[
        "status",
        "--format",
        "json",
        "--credential-file",
        file.to_str().unwrap(),
    ]);
    serde_json::from_str(&done.stdout).unwrap_or_else(|_| panic!("{}", done.stderr))
}

fn decode_segment(segment: &str) -> Value {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn service_account_key_signs_a_jwt_the_server_verifies() {
    let env = TestEnv::new();
    register_test_key(&env);
    let file = env.write_json(
        "sa.json",
        &service_account_json(&env, &fixture("test-sa-key.pem")),
    );
    let done = print_token(&env, &file, &[]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(
        done.stdout, "ya29.sa-1\n",
        "the server verified the RS256 signature"
    );

    let grant = &env
        .google
        .seen_grants("urn:ietf:params:oauth:grant-type:jwt-bearer")[0];
    let parts: Vec<&str> = grant.form["assertion"].split('.').collect();
    let header = decode_segment(parts[0]);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], "0123456789abcdef");
    let claims = decode_segment(parts[1]);
    assert_eq!(claims["iss"], SA_EMAIL);
    assert_eq!(claims["sub"], SA_EMAIL);
    assert_eq!(claims["aud"], format!("{}/token", env.google.base));
    assert_eq!(claims["scope"], CLOUD_PLATFORM);
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        3600
    );

    // Cached: no second request.
    assert_eq!(print_token(&env, &file, &[]).stdout, "ya29.sa-1\n");
    assert_eq!(env.google.seen("/token").len(), 1);

    // Other scopes are another token.
    let scoped = print_token(
        &env,
        &file,
        &["--scopes", "generative-language.retriever,cloud-platform"],
    );
    assert_eq!(scoped.code(), 0, "{}", scoped.stderr);
    assert_eq!(scoped.stdout, "ya29.sa-2\n");
    let grants = env
        .google
        .seen_grants("urn:ietf:params:oauth:grant-type:jwt-bearer");
    let claims = decode_segment(grants[1].form["assertion"].split('.').nth(1).unwrap());
    assert_eq!(
        claims["scope"],
        format!("https://www.googleapis.com/auth/generative-language.retriever {CLOUD_PLATFORM}")
    );

    let report = status_json(&env, &file);
    assert_eq!(report["type"], "service_account");
    assert_eq!(report["client_email"], SA_EMAIL);
    assert_eq!(report["account"], SA_EMAIL);
}

fn pkcs1_keys_work_and_bad_keys_are_clear_errors() {
    let env = TestEnv::new();
    register_test_key(&env);
    let pkcs1 = env.write_json(
        "sa1.json",
        &service_account_json(&env, &fixture("test-sa-key-pkcs1.pem")),
    );
    let done = print_token(&env, &pkcs1, &[]);
    assert_eq!(done.code(), 0, "{}", done.stderr);

    let cases = [
        (fixture("test-sa-key-encrypted.pem"), "encrypted"),
        (
            "-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n".to_string(),
            "private_key",
        ),
        ("just some text".to_string(), "not a PEM private key"),
        (
            fixture("test-sa-key.pem").replace("MII", "MIJ"),
            "private_key",
        ),
    ];
    let requests = env.google.seen("/token").len();
    for (key, expected) in cases {
        let file = env.write_json("bad-sa.json", &service_account_json(&env, &key));
        let done = print_token(&env, &file, &[]);
        assert_eq!(done.code(), 3, "{expected}: {}", done.stderr);
        assert!(
            done.stderr.contains(expected),
            "{expected}: {}",
            done.stderr
        );
        assert!(done.stderr.contains("bad-sa.json"), "{}", done.stderr);
        assert!(!done.stderr.contains("BEGIN"), "no key material in errors");
    }
    assert_eq!(
        env.google.seen("/token").len(),
        requests,
        "nothing was sent"
    );

    let mut missing = service_account_json(&env, &fixture("test-sa-key.pem"));
    missing.as_object_mut().unwrap().remove("client_email");
    let file = env.write_json("missing.json", &missing);
    let done = print_token(&env, &file, &[]);
    assert_eq!(done.code(), 3);
    assert!(done.stderr.contains("client_email"), "{}", done.stderr);
}

fn service_account_refresh_is_single_flight() {
    let env = TestEnv::new();
    register_test_key(&env);
    let file = env.write_json(
        "sa.json",
        &service_account_json(&env, &fixture("test-sa-key.pem")),
    );
    let children: Vec<_> = (0..20)
        .map(|_| {
            env.spawn_piped(&[
                OsStr::new("print-access-token"),
                OsStr::new("--credential-file"),
                file.as_os_str(),
            ])
        })
        .collect();
    assert_each_prints(children, "ya29.sa-1");
    assert_eq!(env.google.seen("/token").len(), 1);
}

fn impersonated_service_account_uses_its_source_then_iam_credentials() {
    let env = TestEnv::new();
    env.google.add_refresh_token("1//source");
    let file = env.impersonated_file(
        &impersonation_url(&env),
        json!({"delegates": ["projects/-/serviceAccounts/middle@test-project-1.iam.gserviceaccount.com"],
            "quota_project_id": "billing-project"}),
    );
    let done = print_token(
        &env,
        &file,
        &["--format", "json", "--scopes", "cloud-platform"],
    );
    let out = done.json();
    assert_eq!(out["access_token"], "ya29.impersonated-2");
    assert_eq!(out["quota_project_id"], "billing-project");

    let source = &env.google.seen_grants("refresh_token")[0];
    assert_eq!(source.form["refresh_token"], "1//source");
    let call = &env.google.seen("/v1/projects/-/serviceAccounts/target@test-project-1.iam.gserviceaccount.com:generateAccessToken")[0];
    assert_eq!(call.method, "POST");
    assert_eq!(call.headers["authorization"], "Bearer ya29.access-1");
    let body: Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(body["scope"], json!([CLOUD_PLATFORM]));
    assert_eq!(body["lifetime"], "3600s");
    assert_eq!(
        body["delegates"],
        json!(["projects/-/serviceAccounts/middle@test-project-1.iam.gserviceaccount.com"])
    );
    let report = status_json(&env, &file);
    assert_eq!(report["type"], "impersonated_service_account");
    assert_eq!(
        report["account"],
        "target@test-project-1.iam.gserviceaccount.com"
    );
    assert_eq!(report["source_type"], "authorized_user");
}

fn impersonation_refused_by_iam_exits_3() {
    let env = TestEnv::new();
    env.google.add_refresh_token("1//source");
    let url = impersonation_url(&env);
    env.google.enqueue(
        url.trim_start_matches(&env.google.base),
        Canned::json(403, r#"{"error":{"code":403,"message":"Permission 'iam.serviceAccounts.getAccessToken' denied","status":"PERMISSION_DENIED"}}"#),
    );
    let file = env.impersonated_file(&url, json!({}));
    let done = print_token(&env, &file, &[]);
    assert_eq!(done.code(), 3, "{}", done.stderr);
    assert!(done.stderr.contains("PERMISSION_DENIED"), "{}", done.stderr);
    assert!(done.stderr.contains("iam.serviceAccounts.getAccessToken"));
}

fn external_account(env: &TestEnv, source: Value) -> Value {
    json!({
        "type": "external_account",
        "audience": "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/ci/providers/github",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("{}/sts", env.google.base),
        "credential_source": source,
    })
}

fn external_account_file_sources_are_exchanged_at_sts() {
    let env = TestEnv::new();
    std::fs::write(env.path("oidc-token.txt"), "subject-token-123\n").unwrap();
    std::fs::write(
        env.path("oidc-token.json"),
        r#"{"id_token":"subject-token-123"}"#,
    )
    .unwrap();
    let text = env.write_json(
        "ext-text.json",
        &external_account(&env, json!({"file": env.path("oidc-token.txt")})),
    );
    let done = print_token(
        &env,
        &text,
        &["--scopes", "cloud-platform,generative-language.retriever"],
    );
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "ya29.sts-1\n");
    let sts = &env.google.seen("/sts")[0];
    assert_eq!(
        sts.form["grant_type"],
        "urn:ietf:params:oauth:grant-type:token-exchange"
    );
    assert_eq!(
        sts.form["audience"],
        "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/ci/providers/github"
    );
    assert_eq!(
        sts.form["subject_token_type"],
        "urn:ietf:params:oauth:token-type:jwt"
    );
    assert_eq!(
        sts.form["requested_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(sts.form["subject_token"], "subject-token-123");
    assert_eq!(
        sts.form["scope"],
        format!("{CLOUD_PLATFORM} https://www.googleapis.com/auth/generative-language.retriever")
    );
    assert!(!sts.form.contains_key("options"));

    let json_source = env.write_json(
        "ext-json.json",
        &external_account(
            &env,
            json!({
                "file": env.path("oidc-token.json"),
                "format": {"type": "json", "subject_token_field_name": "id_token"},
            }),
        ),
    );
    assert_eq!(print_token(&env, &json_source, &[]).stdout, "ya29.sts-2\n");

    let wrong_field = env.write_json(
        "ext-bad.json",
        &external_account(
            &env,
            json!({
                "file": env.path("oidc-token.json"),
                "format": {"type": "json", "subject_token_field_name": "access_token"},
            }),
        ),
    );
    let done = print_token(&env, &wrong_field, &[]);
    assert_eq!(done.code(), 3);
    assert!(
        done.stderr.contains("no string field \"access_token\""),
        "{}",
        done.stderr
    );

    let missing = env.write_json(
        "ext-missing.json",
        &external_account(&env, json!({"file": env.path("nope.txt")})),
    );
    let done = print_token(&env, &missing, &[]);
    assert_eq!(done.code(), 3);
    assert!(
        done.stderr.contains("cannot read the subject token file"),
        "{}",
        done.stderr
    );
}

fn external_account_url_source_with_headers_and_impersonation() {
    let env = TestEnv::new();
    let mut config = external_account(
        &env,
        json!({
            "url": format!("{}/subject-token", env.google.base),
            "headers": {"X-Test-Header": "yes"},
            "format": {"type": "json", "subject_token_field_name": "value"},
        }),
    );
    config["service_account_impersonation_url"] = json!(impersonation_url(&env));
    config["service_account_impersonation"] = json!({"token_lifetime_seconds": 1800});
    let file = env.write_json("ext-url.json", &config);
    let done = print_token(&env, &file, &[]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "ya29.impersonated-2\n");
    assert_eq!(env.google.seen("/sts")[0].form["scope"], CLOUD_PLATFORM);
    let call = &env
        .google
        .seen(impersonation_url(&env).trim_start_matches(&env.google.base))[0];
    assert_eq!(call.headers["authorization"], "Bearer ya29.sts-1");
    let body: Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(body["lifetime"], "1800s");
    let report = status_json(&env, &file);
    assert_eq!(report["type"], "external_account");
    assert_eq!(
        report["account"],
        "target@test-project-1.iam.gserviceaccount.com"
    );
}

fn workforce_pools_send_the_user_project() {
    let env = TestEnv::new();
    std::fs::write(env.path("token.txt"), "subject-token-123").unwrap();
    let mut config = external_account(&env, json!({"file": env.path("token.txt")}));
    config["audience"] =
        json!("//iam.googleapis.com/locations/global/workforcePools/pool/providers/idp");
    config["workforce_pool_user_project"] = json!("workforce-project");
    let file = env.write_json("workforce.json", &config);
    let done = print_token(&env, &file, &[]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let options: Value = serde_json::from_str(&env.google.seen("/sts")[0].form["options"]).unwrap();
    assert_eq!(options, json!({"userProject": "workforce-project"}));
}

#[cfg(unix)]
fn executable_sources_run_only_when_allowed() {
    let env = TestEnv::new();
    let script = env.path("issuer.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n[ \"$GOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE\" = 0 ] || exit 9\n\
         printf '{\"version\":1,\"success\":true,\"token_type\":\"urn:ietf:params:oauth:token-type:id_token\",\"id_token\":\"subject-token-123\",\"expiration_time\":4102444800}'\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let file = env.write_json(
        "exec.json",
        &external_account(
            &env,
            json!({
                "executable": {"command": format!("{} --flag", script.display()), "timeout_millis": 5000},
            }),
        ),
    );
    let refused = print_token(&env, &file, &[]);
    assert_eq!(refused.code(), 1);
    assert!(
        refused
            .stderr
            .contains("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1"),
        "{}",
        refused.stderr
    );
    assert!(env.google.seen("/sts").is_empty());

    let mut cmd = env.cmd();
    cmd.args(["print-access-token", "--credential-file"])
        .arg(&file)
        .env("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "1");
    let done = Running::spawn(cmd, env.path("browser-args")).finish();
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "ya29.sts-1\n");
}

fn metadata_server_is_the_last_resort() {
    let env = TestEnv::new();
    let host = env.google.base.trim_start_matches("http://").to_string();
    let mut cmd = env.cmd();
    cmd.args([
        "print-access-token",
        "--scopes",
        "cloud-platform,userinfo.email",
    ])
    .env("GCE_METADATA_HOST", &host);
    let done = Running::spawn(cmd, env.path("browser-args")).finish();
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "ya29.metadata-1\n");
    let seen = &env
        .google
        .seen("/computeMetadata/v1/instance/service-accounts/default/token")[0];
    assert_eq!(seen.headers["metadata-flavor"], "Google");
    assert_eq!(
        seen.query["scopes"],
        format!("{CLOUD_PLATFORM},https://www.googleapis.com/auth/userinfo.email")
    );

    let mut cmd = env.cmd();
    cmd.args(["status", "--format", "json"])
        .env("GCE_METADATA_HOST", &host);
    let status = Running::spawn(cmd, env.path("browser-args")).finish();
    let report: Value =
        serde_json::from_str(&status.stdout).unwrap_or_else(|_| panic!("{}", status.stderr));
    assert_eq!(report["type"], "metadata_server");
    assert_eq!(
        report["account"],
        "vm-sa@test-project-1.iam.gserviceaccount.com"
    );
    assert_eq!(report["credential_file"], Value::Null);
}

fn without_any_credentials_the_answer_is_fast_and_says_to_log_in() {
    let env = TestEnv::new();
    let started = std::time::Instant::now();
    let done = env.run(&["print-access-token"]);
    assert_eq!(done.code(), 3);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(
        done.stderr.contains("no credentials found"),
        "{}",
        done.stderr
    );
    assert!(done.stderr.contains("gemauth login"));

    let mut cmd = env.cmd();
    cmd.arg("print-access-token")
        .env("NO_GCE_CHECK", "true")
        .env_remove("GCE_METADATA_HOST");
    let done = Running::spawn(cmd, env.path("browser-args")).finish();
    assert_eq!(done.code(), 3);
    assert!(
        done.stderr.contains("no credentials found"),
        "{}",
        done.stderr
    );
}

fn user_credentials_refuse_scopes_beyond_the_grant() {
    let env = TestEnv::new();
    env.login();
    let within = env.run(&["print-access-token", "--scopes", "cloud-platform,email"]);
    assert_eq!(within.code(), 0, "{}", within.stderr);
    assert_eq!(within.stdout, "ya29.access-2\n");
    let beyond = env.run(&["print-access-token", "--scopes", "drive"]);
    assert_eq!(beyond.code(), 3);
    assert!(
        beyond
            .stderr
            .contains("https://www.googleapis.com/auth/drive"),
        "{}",
        beyond.stderr
    );
    assert!(beyond.stderr.contains("gemauth login"));
}

fn gcloud_user_files_without_endpoints_load() {
    let env = TestEnv::new();
    // As `gcloud auth application-default login` writes it: no token_uri, no scopes.
    let path = env.adc_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        json!({
            "account": "", "client_id": "764086051850-6qr4p6gpi6hn506pt8ejuq83di341hur.apps.googleusercontent.com",
            "client_secret": "d-FL95Q19q7MQmFpd7hHD0Ty", "quota_project_id": "my-project",
            "refresh_token": "1//gcloud", "type": "authorized_user", "universe_domain": "googleapis.com"
        })
        .to_string(),
    )
    .unwrap();
    let status = env.run(&["status", "--format", "json"]);
    let report: Value =
        serde_json::from_str(&status.stdout).unwrap_or_else(|_| panic!("{}", status.stderr));
    assert_eq!(report["type"], "authorized_user");
    assert_eq!(report["token_uri"], "https://oauth2.googleapis.com/token");
    assert_eq!(report["quota_project_id"], "my-project");
}

fn malformed_files_of_each_type_are_refused() {
    let env = TestEnv::new();
    let cases = [
        (
            json!({"type": "service_account", "client_email": 5, "private_key": "x"}),
            "invalid type",
        ),
        (
            json!({"type": "impersonated_service_account", "source_credentials": {}}),
            "service_account_impersonation_url",
        ),
        (
            json!({"type": "impersonated_service_account", "service_account_impersonation_url": "https://x/y", "source_credentials": {"type": "metadata"}}),
            "cannot be impersonated from",
        ),
        (
            json!({"type": "impersonated_service_account", "service_account_impersonation_url": "https://x/y", "source_credentials": {"type": "authorized_user"}}),
            "source_credentials",
        ),
        (
            json!({"type": "external_account", "audience": "a", "subject_token_type": "t", "token_url": "https://sts/"}),
            "credential_source",
        ),
        (
            json!({"type": "external_account", "audience": "", "subject_token_type": "t", "token_url": "https://sts/", "credential_source": {}}),
            "\"audience\" is empty",
        ),
        (
            json!({"type": "external_account", "audience": "a", "subject_token_type": "t", "token_url": "https://sts/", "credential_source": {}}),
            "names no file, url or executable",
        ),
        (
            json!({"type": "external_account", "audience": "a", "subject_token_type": "t", "token_url": "https://sts/", "credential_source": {"environment_id": "aws1"}}),
            "credential_source.regional_cred_verification_url is missing",
        ),
        (
            json!({"type": "external_account", "audience": "a", "subject_token_type": "t", "token_url": "https://sts/", "credential_source": {"environment_id": "aws2", "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"}}),
            "only \"aws1\"",
        ),
        (
            json!({"type": "external_account", "audience": "a", "subject_token_type": "t", "token_url": "http://sts.example/", "credential_source": {"file": "/dev/null"}}),
            "plain http is only allowed",
        ),
    ];
    for (value, expected) in cases {
        let file = env.write_json("bad.json", &value);
        let before = std::fs::read(&file).unwrap();
        let done = print_token(&env, &file, &[]);
        assert_ne!(done.code(), 0, "{value}");
        assert!(done.stderr.contains(expected), "{value}: {}", done.stderr);
        assert!(done.stderr.contains("hint:"));
        assert_eq!(done.stdout, "");
        assert_eq!(std::fs::read(&file).unwrap(), before);
    }
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        service_account_key_signs_a_jwt_the_server_verifies,
        pkcs1_keys_work_and_bad_keys_are_clear_errors,
        service_account_refresh_is_single_flight,
        impersonated_service_account_uses_its_source_then_iam_credentials,
        impersonation_refused_by_iam_exits_3,
        external_account_file_sources_are_exchanged_at_sts,
        external_account_url_source_with_headers_and_impersonation,
        workforce_pools_send_the_user_project,
        #[cfg(unix)]
        executable_sources_run_only_when_allowed,
        metadata_server_is_the_last_resort,
        without_any_credentials_the_answer_is_fast_and_says_to_log_in,
        user_credentials_refuse_scopes_beyond_the_grant,
        gcloud_user_files_without_endpoints_load,
        malformed_files_of_each_type_are_refused,
    ]
}
