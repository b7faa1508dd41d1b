//! `print-identity-token` for every credential type, against the fake token, IAM Credentials,
//! STS and metadata endpoints, which check what they receive: the cache per credential and
//! audience, the single request of many parallel callers, and the cases that cannot work.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::harness::*;
use crate::runner::{Trial, trials};
use serde_json::{Value, json};

const SA_EMAIL: &str = "ci-runner@test-project-1.iam.gserviceaccount.com";
const TARGET: &str = "target@test-project-1.iam.gserviceaccount.com";
const SERVICE: &str = "https://hello-abc123-uc.a.run.app";
const OTHER_SERVICE: &str = "https://other-abc123-uc.a.run.app";
/// An ID token for SERVICE with the email claim, printed as JSON.
const EMAIL_AS_JSON: [&str; 5] = [
    "--audiences",
    SERVICE,
    "--include-email",
    "--format",
    "json",
];
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

fn service_account_file(env: &TestEnv) -> PathBuf {
    register_test_key(env);
    env.write_json(
        "sa.json",
        &json!({
            "type": "service_account",
            "project_id": "test-project-1",
            "private_key_id": "0123456789abcdef",
            "private_key": fixture("test-sa-key.pem"),
            "client_email": SA_EMAIL,
            "client_id": "1234567890",
            "token_uri": format!("{}/token", env.google.base),
        }),
    )
}

fn id_token_path() -> String {
    format!("/v1/projects/-/serviceAccounts/{TARGET}:generateIdToken")
}

fn print_id(env: &TestEnv, file: &Path, extra: &[&str]) -> Finished {
    let mut args = vec![
        "print-identity-token",
        "--credential-file",
        file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    env.run(&args)
}

/// Runs gemauth with the metadata server at the fake (no credential file anywhere).
fn run_on_gce(env: &TestEnv, args: &[&str]) -> Finished {
    let mut cmd = env.cmd();
    cmd.args(args).env(
        "GCE_METADATA_HOST",
        env.google.base.trim_start_matches("http://"),
    );
    Running::spawn(cmd, env.path("browser-args")).finish()
}

/// The one line a successful run printed: a JWT.
fn token_of(done: &Finished) -> String {
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(done.stdout.ends_with('\n') && done.stdout.matches('\n').count() == 1);
    let token = done.stdout.trim_end().to_string();
    assert_eq!(token.split('.').count(), 3, "{token}");
    token
}

fn service_account_keys_ask_the_token_endpoint_with_a_target_audience() {
    let env = TestEnv::new();
    let file = service_account_file(&env);
    let first = token_of(&print_id(&env, &file, &["--audiences", SERVICE]));
    let claims = jwt_claims(&first);
    assert_eq!(claims["aud"], SERVICE);
    assert_eq!(claims["email"], SA_EMAIL);

    // The fake verified the assertion's signature with the key's public half (else it refuses);
    // the claims ask for an ID token: target_audience and no scope.
    let grants = env.google.seen_grants(JWT_BEARER);
    assert_eq!(grants.len(), 1);
    let assertion = jwt_claims(&grants[0].form["assertion"]);
    assert_eq!(assertion["target_audience"], SERVICE);
    assert!(assertion.get("scope").is_none(), "{assertion}");
    assert_eq!(assertion["iss"], SA_EMAIL);
    assert_eq!(assertion["aud"], format!("{}/token", env.google.base));

    // Cached per audience: the same audience again is no request; another one is.
    assert_eq!(
        token_of(&print_id(&env, &file, &["--audiences", SERVICE])),
        first
    );
    let other = token_of(&print_id(&env, &file, &["--audiences", OTHER_SERVICE]));
    assert_ne!(other, first);
    assert_eq!(jwt_claims(&other)["aud"], OTHER_SERVICE);
    assert_eq!(
        token_of(&print_id(&env, &file, &["--audiences", SERVICE])),
        first
    );
    assert_eq!(env.google.seen_grants(JWT_BEARER).len(), 2);

    // Access tokens and ID tokens of one key never share a cache entry.
    let access = env.run(&[
        "print-access-token",
        "--credential-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(access.code(), 0, "{}", access.stderr);
    assert!(access.stdout.starts_with("ya29.sa-"), "{}", access.stdout);
    let grants = env.google.seen_grants(JWT_BEARER);
    assert_eq!(grants.len(), 3);
    assert!(
        jwt_claims(&grants[2].form["assertion"])
            .get("target_audience")
            .is_none()
    );
    assert_eq!(
        token_of(&print_id(&env, &file, &["--audiences", SERVICE])),
        first
    );

    // JSON: the token, when it expires, its audience and its account.
    let done = print_id(&env, &file, &["--audiences", SERVICE, "--format", "json"]);
    let out = done.json();
    assert_eq!(out["id_token"], first.as_str());
    assert_eq!(out["audience"], SERVICE);
    assert_eq!(out["email"], SA_EMAIL);
    let exp = claims["exp"].as_u64().unwrap();
    let expected = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(exp),
    );
    assert_eq!(out["expires_at"], expected.to_string());
    assert_eq!(env.google.seen_grants(JWT_BEARER).len(), 3);

    // An expired entry is replaced.
    env.expire_cache();
    let renewed = token_of(&print_id(&env, &file, &["--audiences", SERVICE]));
    assert_ne!(renewed, first);
    assert_eq!(env.google.seen_grants(JWT_BEARER).len(), 4);
}

fn fifty_parallel_callers_cause_one_id_token_request() {
    let env = TestEnv::new();
    let file = service_account_file(&env);
    let children: Vec<_> = (0..50)
        .map(|_| {
            env.spawn_piped(&[
                OsStr::new("print-identity-token"),
                OsStr::new("--audiences"),
                OsStr::new(SERVICE),
                OsStr::new("--credential-file"),
                file.as_os_str(),
            ])
        })
        .collect();
    let tokens = quiet_outputs(children);
    assert_eq!(env.google.seen_grants(JWT_BEARER).len(), 1, "one request");
    assert!(tokens.iter().all(|t| t == &tokens[0]), "{tokens:?}");
    assert_eq!(jwt_claims(&tokens[0])["aud"], SERVICE);
}

fn impersonation_calls_generate_id_token_with_the_sources_token() {
    let env = TestEnv::new();
    env.google.add_refresh_token("1//source");
    env.google.with(|b| b.rotate = true);
    let delegate = "projects/-/serviceAccounts/middle@test-project-1.iam.gserviceaccount.com";
    let file = env.impersonated_file(&impersonation_url(&env), json!({"delegates": [delegate]}));
    let done = print_id(&env, &file, &EMAIL_AS_JSON);
    let out = done.json();
    let claims = jwt_claims(out["id_token"].as_str().unwrap());
    assert_eq!(claims["aud"], SERVICE);
    assert_eq!(claims["email"], TARGET);
    assert_eq!(out["email"], TARGET);
    assert_eq!(out["audience"], SERVICE);

    let source = env.google.seen_grants("refresh_token");
    assert_eq!(source.len(), 1);
    assert_eq!(source[0].form["refresh_token"], "1//source");
    let calls = env.google.seen(&id_token_path());
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "POST");
    assert_eq!(calls[0].headers["authorization"], "Bearer ya29.access-1");
    let body: Value = serde_json::from_str(&calls[0].body).unwrap();
    assert_eq!(
        body,
        json!({"audience": SERVICE, "includeEmail": true, "delegates": [delegate]})
    );
    assert!(
        env.google
            .seen(&format!(
                "/v1/projects/-/serviceAccounts/{TARGET}:generateAccessToken"
            ))
            .is_empty()
    );
    // The source's rotated refresh token was saved under the lock.
    assert_eq!(
        read_json(&file)["source_credentials"]["refresh_token"],
        "1//refresh-1"
    );
    assert!(!env.google.refresh_token_valid("1//source"));

    // Whether the email is included is part of the cache key; the same request is cached.
    let plain = token_of(&print_id(&env, &file, &["--audiences", SERVICE]));
    assert!(jwt_claims(&plain).get("email").is_none());
    let calls = env.google.seen(&id_token_path());
    assert_eq!(calls.len(), 2);
    assert_eq!(
        serde_json::from_str::<Value>(&calls[1].body).unwrap()["includeEmail"],
        false
    );
    assert_eq!(
        env.google.seen_grants("refresh_token")[1].form["refresh_token"],
        "1//refresh-1"
    );
    assert_eq!(
        token_of(&print_id(&env, &file, &["--audiences", SERVICE])),
        plain
    );
    assert_eq!(env.google.seen(&id_token_path()).len(), 2);
}

fn refused_impersonation_exits_3_and_a_non_iam_url_is_refused() {
    let env = TestEnv::new();
    env.google.add_refresh_token("1//source");
    env.google.enqueue(
        &id_token_path(),
        Canned::json(403, r#"{"error":{"code":403,"message":"Permission 'iam.serviceAccounts.getOpenIdToken' denied","status":"PERMISSION_DENIED"}}"#),
    );
    let file = env.impersonated_file(&impersonation_url(&env), json!({}));
    let done = print_id(&env, &file, &["--audiences", SERVICE]);
    assert_eq!(done.code(), 3, "{}", done.stderr);
    assert!(
        done.stderr.contains("iam.serviceAccounts.getOpenIdToken"),
        "{}",
        done.stderr
    );
    assert_eq!(done.stdout, "");

    let odd = env.write_json(
        "odd.json",
        &json!({"type": "impersonated_service_account",
            "service_account_impersonation_url": format!("{}/impersonate", env.google.base),
            "source_credentials": env.user_source("1//source")}),
    );
    let done = print_id(&env, &odd, &["--audiences", SERVICE]);
    assert_eq!(done.code(), 1, "{}", done.stderr);
    assert!(
        done.stderr.contains(":generateAccessToken"),
        "{}",
        done.stderr
    );
    assert!(env.google.seen("/impersonate").is_empty());
}

fn external_account(env: &TestEnv) -> Value {
    std::fs::write(env.path("oidc-token.txt"), "subject-token-123\n").unwrap();
    json!({
        "type": "external_account",
        "audience": "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/ci/providers/github",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("{}/sts", env.google.base),
        "credential_source": {"file": env.path("oidc-token.txt")},
    })
}

fn federation_with_impersonation_exchanges_then_generates_an_id_token() {
    let env = TestEnv::new();
    let mut config = external_account(&env);
    config["service_account_impersonation_url"] = json!(impersonation_url(&env));
    let file = env.write_json("federated.json", &config);
    let token = token_of(&print_id(&env, &file, &["--audiences", SERVICE]));
    assert_eq!(jwt_claims(&token)["aud"], SERVICE);

    let sts = env.google.seen("/sts");
    assert_eq!(sts.len(), 1);
    assert_eq!(sts[0].form["subject_token"], "subject-token-123");
    assert_eq!(
        sts[0].form["scope"],
        "https://www.googleapis.com/auth/cloud-platform"
    );
    let calls = env.google.seen(&id_token_path());
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].headers["authorization"], "Bearer ya29.sts-1");
    let body: Value = serde_json::from_str(&calls[0].body).unwrap();
    assert_eq!(
        body,
        json!({"audience": SERVICE, "includeEmail": false, "delegates": []})
    );
    let done = print_id(&env, &file, &["--audiences", SERVICE, "--format", "json"]);
    let out = done.json();
    assert_eq!(out["email"], TARGET, "the account the file names");
    assert_eq!(env.google.seen("/sts").len(), 1, "cached");
}

fn federation_without_impersonation_cannot_have_id_tokens() {
    let env = TestEnv::new();
    let file = env.write_json("federated.json", &external_account(&env));
    for args in [&["--audiences", SERVICE][..], &[][..]] {
        let done = print_id(&env, &file, args);
        assert_eq!(done.code(), 2, "{}", done.stderr);
        assert_eq!(done.stdout, "");
        assert!(
            done.stderr
                .contains("without service account impersonation"),
            "{}",
            done.stderr
        );
        assert!(done.stderr.contains("hint:") && done.stderr.contains("--service-account"));
    }
    assert!(env.google.seen("/sts").is_empty());
    let status = env.run(&["status", "--credential-file", file.to_str().unwrap()]);
    assert!(
        status
            .stdout
            .contains("no: external_account without service account impersonation"),
        "{}",
        status.stdout
    );
}

fn the_metadata_server_identity_endpoint() {
    let env = TestEnv::new();
    let done = run_on_gce(&env, &["print-identity-token", "--audiences", SERVICE]);
    let token = token_of(&done);
    assert_eq!(jwt_claims(&token)["aud"], SERVICE);
    assert!(jwt_claims(&token).get("email").is_none());
    let path = "/computeMetadata/v1/instance/service-accounts/default/identity";
    let seen = env.google.seen(path);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].headers["metadata-flavor"], "Google");
    assert_eq!(
        seen[0].query.get("audience").map(String::as_str),
        Some(SERVICE)
    );
    assert!(!seen[0].query.contains_key("format"));

    let done = run_on_gce(
        &env,
        &[&["print-identity-token"][..], &EMAIL_AS_JSON].concat(),
    );
    let out = done.json();
    assert_eq!(out["email"], "vm-sa@test-project-1.iam.gserviceaccount.com");
    let seen = env.google.seen(path);
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].query["format"], "full");
    // Cached: again without a request.
    assert_eq!(
        token_of(&run_on_gce(
            &env,
            &["print-identity-token", "--audiences", SERVICE]
        )),
        token
    );
    assert_eq!(env.google.seen(path).len(), 2);

    let done = run_on_gce(&env, &["print-identity-token"]);
    assert_eq!(done.code(), 2, "{}", done.stderr);
    assert!(
        done.stderr
            .contains("needs --audiences for a metadata_server credential"),
        "{}",
        done.stderr
    );
    assert!(
        done.stderr.contains("https://SERVICE-HASH.a.run.app"),
        "{}",
        done.stderr
    );
}

fn a_user_login_gets_its_own_id_token_for_its_client() {
    let env = TestEnv::new();
    env.login();
    let token = token_of(&env.run(&["print-identity-token"]));
    let claims = jwt_claims(&token);
    assert_eq!(claims["aud"], CLIENT_ID);
    assert_eq!(claims["email"], EMAIL);
    let refreshes = env.google.seen_grants("refresh_token");
    assert_eq!(refreshes.len(), 1);
    assert_eq!(refreshes[0].form["client_id"], CLIENT_ID);

    let done = env.run(&["print-identity-token", "--format", "json"]);
    let out = done.json();
    assert_eq!(out["id_token"], token.as_str());
    assert_eq!(out["audience"], CLIENT_ID);
    assert_eq!(out["email"], EMAIL);
    // The grant's access token (after the login's ya29.access-2) was cached too:
    // print-access-token needs no request.
    assert_eq!(env.run(&["print-access-token"]).stdout, "ya29.access-3\n");
    assert_eq!(env.google.seen_grants("refresh_token").len(), 1);

    // A user cannot choose the audience.
    let done = env.run(&["print-identity-token", "--audiences", SERVICE]);
    assert_eq!(done.code(), 2, "{}", done.stderr);
    assert_eq!(done.stdout, "");
    assert!(
        done.stderr
            .contains("--audiences cannot be used with an authorized_user credential"),
        "{}",
        done.stderr
    );
    assert!(
        done.stderr.contains("impersonate a service account"),
        "{}",
        done.stderr
    );
    assert_eq!(env.google.seen_grants("refresh_token").len(), 1);
}

fn a_user_without_the_openid_scope_is_told_to_sign_in_with_it() {
    let env = TestEnv::new();
    let path = env.adc_path();
    env.write_credentials(&path, "1//r");
    let mut value = read_json(&path);
    value["scopes"] = json!(["https://www.googleapis.com/auth/cloud-platform"]);
    write_private(&path, value.to_string().as_bytes());
    let done = env.run(&["print-identity-token"]);
    assert_eq!(done.code(), 3, "{}", done.stderr);
    assert!(done.stderr.contains("openid"), "{}", done.stderr);
    assert!(done.stderr.contains("gemauth login"), "{}", done.stderr);
    assert!(
        env.google.seen("/token").is_empty(),
        "known before any request"
    );
    let status = env.run(&["status"]);
    assert!(
        status
            .stdout
            .contains("no: the login did not grant the openid scope"),
        "{}",
        status.stdout
    );

    // Scopes unknown (a gcloud file): the server says, by sending no ID token; the refresh token
    // it rotated and the access token it sent are kept.
    value.as_object_mut().unwrap().remove("scopes");
    write_private(&path, value.to_string().as_bytes());
    env.google.with(|b| {
        b.refresh_id_token = false;
        b.rotate = true;
    });
    let done = env.run(&["print-identity-token"]);
    assert_eq!(done.code(), 3, "{}", done.stderr);
    assert!(done.stderr.contains("openid"), "{}", done.stderr);
    assert_eq!(read_json(&path)["refresh_token"], "1//refresh-1");
    assert_eq!(read_json(&path)["custom_field"], json!({"kept": true}));
    assert_eq!(env.run(&["print-access-token"]).stdout, "ya29.access-1\n");
    assert_eq!(env.google.seen_grants("refresh_token").len(), 1);
}

fn audiences_are_required_and_checked() {
    let env = TestEnv::new();
    let file = service_account_file(&env);
    let done = print_id(&env, &file, &[]);
    assert_eq!(done.code(), 2, "{}", done.stderr);
    assert!(
        done.stderr
            .contains("needs --audiences for a service_account credential"),
        "{}",
        done.stderr
    );
    assert!(done.stderr.contains("hint:"), "{}", done.stderr);
    for bad in [
        "",
        "  ",
        "https://a.example,https://b.example",
        "https://a.example/x y",
    ] {
        let done = print_id(&env, &file, &["--audiences", bad]);
        assert_eq!(done.code(), 2, "{bad:?}: {}", done.stderr);
        assert_eq!(done.stdout, "");
    }
    assert!(env.google.seen("/token").is_empty());
    assert!(env.cached_tokens().is_empty());
}

fn hostile_answers_are_refused_and_never_cached() {
    let env = TestEnv::new();
    let file = service_account_file(&env);
    let wrong_audience = make_id_token(json!({"aud": "https://evil.example"}), 3600);
    let expired = make_id_token(json!({"aud": SERVICE}), 0);
    let cases = [
        (
            json!({"id_token": wrong_audience}).to_string(),
            "another audience",
        ),
        (json!({"id_token": expired}).to_string(), "expired"),
        (
            json!({"id_token": "not-a-jwt"}).to_string(),
            "not a signed JWT",
        ),
        (
            json!({"id_token": "a.b.c\nInjected: yes"}).to_string(),
            "control characters",
        ),
        (json!({"access_token": "ya29.x"}).to_string(), "no id_token"),
    ];
    for (body, expected) in cases {
        env.google.enqueue("/token", Canned::json(200, &body));
        let done = print_id(&env, &file, &["--audiences", SERVICE]);
        assert_eq!(done.code(), 1, "{expected}: {}", done.stderr);
        assert!(
            done.stderr.contains(expected),
            "{expected}: {}",
            done.stderr
        );
        assert_eq!(done.stdout, "");
        assert!(!done.stderr.contains("Injected"), "{}", done.stderr);
    }
    assert!(env.cached_tokens().is_empty(), "nothing was cached");
    env.google.enqueue(
        "/token",
        Canned::json(
            400,
            r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
        ),
    );
    let done = print_id(&env, &file, &["--audiences", SERVICE]);
    assert_eq!(done.code(), 3, "{}", done.stderr);
    // And a good answer works after all that.
    assert_eq!(
        jwt_claims(&token_of(&print_id(&env, &file, &["--audiences", SERVICE])))["aud"],
        SERVICE
    );
}

fn id_tokens_stay_out_of_logs_and_status() {
    let env = TestEnv::new();
    let file = service_account_file(&env);
    let done = print_id(&env, &file, &["--audiences", SERVICE, "-vv"]);
    let token = token_of(&done);
    let signature = token.rsplit('.').next().unwrap();
    assert!(
        done.stderr.contains("obtained a new ID token"),
        "{}",
        done.stderr
    );
    assert!(!done.stderr.contains(signature), "{}", done.stderr);
    let done = print_id(
        &env,
        &file,
        &["--audiences", SERVICE, "-vv", "--format", "json"],
    );
    assert!(
        done.stderr.contains("cached ID token is fresh"),
        "{}",
        done.stderr
    );
    assert!(!done.stderr.contains(signature), "{}", done.stderr);
    for format in ["text", "json"] {
        let status = env.run(&[
            "status",
            "--format",
            format,
            "--credential-file",
            file.to_str().unwrap(),
        ]);
        assert_eq!(status.code(), 0, "{}", status.stderr);
        assert!(!status.stdout.contains(signature), "{}", status.stdout);
        assert!(!status.stdout.contains(&token[..20]), "{}", status.stdout);
    }
    let status = env.run(&[
        "status",
        "--format",
        "json",
        "--credential-file",
        file.to_str().unwrap(),
    ]);
    let report: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(report["id_tokens"], "yes, for any audience (--audiences)");
}

fn short_lived_id_tokens_are_reused_for_half_their_lifetime() {
    let env = TestEnv::new();
    let file = service_account_file(&env);
    env.google.with(|b| b.id_token_lifetime = 120);
    let first = token_of(&print_id(&env, &file, &["--audiences", SERVICE]));
    assert_eq!(
        token_of(&print_id(&env, &file, &["--audiences", SERVICE])),
        first
    );
    assert_eq!(env.google.seen_grants(JWT_BEARER).len(), 1);
}

fn the_help_shows_the_cloud_run_example() {
    let env = TestEnv::new();
    let done = env.run(&["print-identity-token", "--help"]);
    assert_eq!(done.code(), 0);
    assert!(done.stdout.contains("Examples:"), "{}", done.stdout);
    assert!(
        done.stdout.contains(
            "curl -H \"Authorization: Bearer $(gemauth print-identity-token --audiences https://SERVICE-HASH.a.run.app)\""
        ),
        "{}",
        done.stdout
    );
    let top = env.run(&["--help"]);
    assert!(
        top.stdout.contains("print-identity-token"),
        "{}",
        top.stdout
    );
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        service_account_keys_ask_the_token_endpoint_with_a_target_audience,
        fifty_parallel_callers_cause_one_id_token_request,
        impersonation_calls_generate_id_token_with_the_sources_token,
        refused_impersonation_exits_3_and_a_non_iam_url_is_refused,
        federation_with_impersonation_exchanges_then_generates_an_id_token,
        federation_without_impersonation_cannot_have_id_tokens,
        the_metadata_server_identity_endpoint,
        a_user_login_gets_its_own_id_token_for_its_client,
        a_user_without_the_openid_scope_is_told_to_sign_in_with_it,
        audiences_are_required_and_checked,
        hostile_answers_are_refused_and_never_cached,
        id_tokens_stay_out_of_logs_and_status,
        short_lived_id_tokens_are_reused_for_half_their_lifetime,
        the_help_shows_the_cloud_run_example,
    ]
}
