//! No secret in any message (issue 20, section 3): a server that echoes what it was sent gets its
//! echo masked; URLs are shown without user names and passwords; a message about a field never
//! quotes the field's value.

use serde_json::json;

use crate::harness::*;
use crate::runner::{Trial, trials};

/// Runs with maximum verbosity, so that logs are searched too.
fn verbose(env: &TestEnv, args: &[&str]) -> Finished {
    let mut cmd = env.cmd();
    cmd.arg("-vv").args(args).env("RUST_LOG", "trace");
    Running::spawn(cmd, env.path("browser-args")).finish()
}

/// `gemauth -vv print-access-token --credential-file FILE`, traced.
fn verbose_token(env: &TestEnv, file: &std::path::Path) -> Finished {
    verbose(
        env,
        &[
            "print-access-token",
            "--credential-file",
            file.to_str().unwrap(),
        ],
    )
}

/// Writes `ext.json`: an external_account (workload identity pool, JWT subject token, this
/// server's `/sts`) reading its subject token from `credential_source`.
fn external_file(env: &TestEnv, credential_source: serde_json::Value) -> std::path::PathBuf {
    env.write_json(
        "ext.json",
        &json!({
            "type": "external_account",
            "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": format!("{}/sts", env.google.base),
            "credential_source": credential_source,
        }),
    )
}

fn assert_masked(done: &Finished, secrets: &[&str]) {
    assert_ne!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "");
    for secret in secrets {
        assert!(
            !done.stderr.contains(secret),
            "{secret:?} reached stderr:\n{}",
            done.stderr
        );
    }
}

/// An OAuth error whose description repeats `echo`.
fn echo(status: u16, echo: &str) -> Canned {
    Canned::json(
        status,
        &json!({"error": "invalid_request", "error_description": format!("bad request: {echo}")})
            .to_string(),
    )
}

fn percent(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn a_token_endpoint_that_echoes_the_refresh_grant_is_masked() {
    let env = TestEnv::new();
    let refresh = "1//victim-refresh-token";
    env.write_credentials(&env.adc_path(), refresh);
    // As JSON text, as form-encoded text, in both orders.
    let body = format!(
        "grant_type=refresh_token&refresh_token={}&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET} (raw: {refresh} {CLIENT_SECRET})",
        percent(refresh)
    );
    env.google.enqueue("/token", echo(400, &body));
    let done = verbose(&env, &["print-access-token"]);
    assert_masked(&done, &[refresh, &percent(refresh), CLIENT_SECRET]);
    assert!(done.stderr.contains("invalid_request"), "{}", done.stderr);
    // Google API errors (`error.message`) too, on another status (a 500 is retried: every
    // attempt gets it).
    for _ in 0..3 {
        env.google.enqueue(
            "/token",
            Canned::json(
                500,
                &json!({"error": {"code": 500, "status": "INTERNAL", "message": format!("saw {refresh}")}})
                    .to_string(),
            ),
        );
    }
    let done = verbose(&env, &["print-access-token"]);
    assert_masked(&done, &[refresh]);
}

fn a_login_whose_token_endpoint_echoes_the_code_and_verifier_is_masked() {
    let env = TestEnv::new();
    let run = env.start_login(&[]);
    let url = run.browser_url();
    // The answer to the exchange repeats the whole form it was sent; the fake cannot know the
    // code and verifier in advance, so it answers with a body built from what it saw.
    env.google.with(|b| b.echo_token_form = true);
    follow_authorization(&url);
    let done = run.finish();
    let exchange = env.google.seen_grants("authorization_code")[0].form.clone();
    assert_masked(
        &done,
        &[
            &exchange["code"],
            &exchange["code_verifier"],
            CLIENT_SECRET,
            &percent(&exchange["code"]),
        ],
    );
}

fn revoke_sts_and_iam_echoes_are_masked() {
    // revoke: the token it sent.
    let env = TestEnv::new();
    let refresh = "1//to-be-revoked";
    env.write_credentials(&env.adc_path(), refresh);
    for _ in 0..3 {
        env.google
            .enqueue("/revoke", echo(503, &format!("token={refresh}")));
    }
    let done = verbose(&env, &["revoke"]);
    assert_masked(&done, &[refresh, CLIENT_SECRET]);

    // STS: the subject token.
    let env = TestEnv::new();
    let subject = "subject-token-123";
    std::fs::write(env.path("subject.txt"), subject).unwrap();
    let file = external_file(&env, json!({"file": env.path("subject.txt")}));
    env.google
        .enqueue("/sts", echo(400, &format!("subject_token={subject}")));
    let done = verbose_token(&env, &file);
    assert_masked(&done, &[subject]);

    // IAM Credentials: the bearer token of the source.
    let env = TestEnv::new();
    env.google.add_refresh_token("1//source");
    let path = "/v1/projects/-/serviceAccounts/sa@test-project-1.iam.gserviceaccount.com:generateAccessToken";
    env.google.enqueue(
        path,
        Canned::json(
            403,
            &json!({"error": {"code": 403, "status": "PERMISSION_DENIED",
                "message": "Authorization: Bearer ya29.access-1 may not act as sa"}})
            .to_string(),
        ),
    );
    let file = env.impersonated_file(&format!("{}{path}", env.google.base), json!({}));
    let done = verbose_token(&env, &file);
    assert_masked(&done, &["ya29.access-1", "1//source"]);
    assert!(done.stderr.contains("PERMISSION_DENIED"), "{}", done.stderr);
}

fn urls_are_shown_without_user_names_and_passwords() {
    let env = TestEnv::new();
    let closed = ClosedPort::new();
    let file = external_file(
        &env,
        json!({
            "url": format!("http://reader:pl4nted-pw@127.0.0.1:{}/token", closed.port()),
        }),
    );
    let done = verbose_token(&env, &file);
    assert_masked(&done, &["pl4nted-pw", "reader:"]);
    assert!(done.stderr.contains("127.0.0.1"), "{}", done.stderr);
}

fn a_message_about_a_field_never_quotes_its_value() {
    let env = TestEnv::new();
    let file = external_file(
        &env,
        json!({
            "url": format!("{}/subject", env.google.base),
            "headers": "Authorization: Bearer planted-header-token",
        }),
    );
    let done = verbose_token(&env, &file);
    assert_eq!(done.code(), 3, "{}", done.stderr);
    assert_masked(&done, &["planted-header-token"]);
    assert!(done.stderr.contains("headers"), "{}", done.stderr);
    let done = env.run(&["status", "--credential-file", file.to_str().unwrap()]);
    assert_masked(&done, &["planted-header-token"]);
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        a_token_endpoint_that_echoes_the_refresh_grant_is_masked,
        a_login_whose_token_endpoint_echoes_the_code_and_verifier_is_masked,
        revoke_sts_and_iam_echoes_are_masked,
        urls_are_shown_without_user_names_and_passwords,
        a_message_about_a_field_never_quotes_its_value,
    ]
}
