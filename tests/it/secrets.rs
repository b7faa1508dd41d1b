//! Secrets never reach stderr or logs: every command runs with maximum verbosity, and the output
//! is searched for the secrets planted in it.

use crate::harness::*;

fn verbose(env: &TestEnv, args: &[&str]) -> Finished {
    let mut cmd = env.cmd();
    cmd.arg("-vv").args(args).env("RUST_LOG", "trace");
    Running::spawn(cmd, env.path("browser-args")).finish()
}

fn assert_clean(what: &str, text: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{what} leaked {secret:?}:\n{text}"
        );
    }
}

#[test]
fn no_command_prints_a_secret_even_with_maximum_verbosity() {
    let env = TestEnv::new();
    env.google.with(|b| b.rotate = true);
    let client = env.client_file();
    let mut cmd = env.cmd();
    cmd.args(["-vv", "login", "--client-id-file"])
        .arg(&client)
        .env("RUST_LOG", "trace");
    let run = Running::spawn(cmd, env.path("browser-args"));
    follow_authorization(&run.browser_url());
    let login = run.finish();
    assert_eq!(login.code(), 0, "{}", login.stderr);
    assert!(
        login.stderr.contains("DEBUG") || login.stderr.contains("TRACE"),
        "logging is on: {}",
        login.stderr
    );
    let exchange = env.google.seen_grants("authorization_code")[0].form.clone();
    let mut secrets = vec![
        CLIENT_SECRET.to_string(),
        exchange["code"].clone(),
        // The code as it travels in the redirect URL.
        url::form_urlencoded::byte_serialize(exchange["code"].as_bytes()).collect(),
        exchange["code_verifier"].clone(),
        "1//refresh-2".to_string(),
        "ya29.access-2".to_string(),
    ];
    assert_clean("login", &login.stderr, &secrets);
    assert_eq!(login.stdout, "");

    let cached = verbose(&env, &["print-access-token"]);
    assert_eq!(cached.stdout, "ya29.access-2\n");
    assert_clean("print-access-token (cached)", &cached.stderr, &secrets);

    env.expire_cache();
    let refreshed = verbose(&env, &["print-access-token"]);
    assert_eq!(refreshed.code(), 0, "{}", refreshed.stderr);
    assert_eq!(refreshed.stdout, "ya29.access-3\n");
    secrets.push("ya29.access-3".into());
    secrets.push("1//refresh-3".into());
    assert_clean("print-access-token (refresh)", &refreshed.stderr, &secrets);
    assert!(refreshed.stderr.contains("obtained a new access token"));

    env.google.enqueue(
        "/token",
        Canned::json(
            400,
            r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#,
        ),
    );
    env.expire_cache();
    let rejected = verbose(&env, &["print-access-token"]);
    assert_eq!(rejected.code(), 3);
    assert_clean("print-access-token (rejected)", &rejected.stderr, &secrets);

    let revoked = verbose(&env, &["revoke"]);
    assert_eq!(revoked.code(), 0, "{}", revoked.stderr);
    assert_clean("revoke", &revoked.stderr, &secrets);
    assert_eq!(revoked.stdout, "");
}

#[test]
fn a_paste_is_not_echoed_in_logs() {
    let env = TestEnv::new();
    let client = env.client_file();
    let mut cmd = env.cmd();
    cmd.args(["-vv", "login", "--no-browser", "--client-id-file"])
        .arg(&client)
        .env("RUST_LOG", "trace");
    let mut run = Running::spawn_interactive(cmd, env.path("browser-args"));
    run.wait_stderr("Paste the address");
    let redirect = approve_elsewhere(&run.printed_url());
    let state = query_of(&redirect)["state"].clone();
    run.paste(&redirect.replace(&state, "forged-state-value"));
    run.wait_stderr("attempt 1 of 3");
    run.paste(&redirect);
    let done = run.finish();
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let code = query_of(&redirect)["code"].clone();
    let encoded: String = url::form_urlencoded::byte_serialize(code.as_bytes()).collect();
    assert_clean(
        "login --no-browser",
        &done.stderr,
        &[code, encoded, CLIENT_SECRET.into()],
    );
}
