//! `gemauth revoke`: revocation at the server, local removal, and what happens on failure.

use crate::harness::*;
use crate::runner::{Trial, trials};

fn revoke_removes_the_cached_id_token_too() {
    let env = TestEnv::new();
    env.google.with(|b| b.refresh_id_token = true);
    env.login();
    env.expire_cache();
    let id = env.run(&["print-identity-token"]);
    assert_eq!(id.code(), 0, "{}", id.stderr);
    assert!(
        env.cached_tokens().len() >= 2,
        "access and ID token entries"
    );
    let done = env.run(&["revoke"]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(env.cached_tokens().is_empty(), "{:?}", env.cached_tokens());
}

fn revoke_revokes_at_the_server_and_removes_file_and_cache() {
    let env = TestEnv::new();
    env.login();
    assert_eq!(env.cached_tokens().len(), 1);
    let revoked = env.assert_revokes("1//refresh-2");
    assert_eq!(revoked.form["client_id"], CLIENT_ID);
    assert_eq!(revoked.form["client_secret"], CLIENT_SECRET);

    // Nothing stored any more: exit 0 with a message.
    let again = env.run(&["revoke"]);
    assert_eq!(again.code(), 0);
    assert!(
        again.stderr.contains("nothing to revoke"),
        "{}",
        again.stderr
    );
    assert_eq!(env.google.seen("/revoke").len(), 1);

    let token = env.run(&["print-access-token"]);
    assert_eq!(token.code(), 3);
}

fn already_revoked_grant_is_removed_locally() {
    let env = TestEnv::new();
    let path = env.adc_path();
    env.write_credentials(&path, "1//gone");
    env.google.enqueue(
        "/revoke",
        Canned::json(
            400,
            r#"{"error":"invalid_token","error_description":"Token expired or revoked"}"#,
        ),
    );
    let done = env.run(&["revoke"]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(done.stderr.contains("already revoked"), "{}", done.stderr);
    assert!(!path.exists());
}

fn server_failure_keeps_the_file_unless_forced() {
    let env = TestEnv::new();
    let path = env.adc_path();
    let before = env.write_credentials(&path, "1//r");
    for _ in 0..3 {
        env.google.enqueue(
            "/revoke",
            Canned::html(503, "<html>unavailable</html>").header("Retry-After", "0"),
        );
    }
    let done = env.run(&["revoke"]);
    assert_eq!(done.code(), 1, "{}", done.stderr);
    assert!(done.stderr.contains("HTTP 503"), "{}", done.stderr);
    assert!(done.stderr.contains("--force"));
    assert_eq!(env.google.seen("/revoke").len(), 3, "retried up to 3 times");
    assert_eq!(std::fs::read(&path).unwrap(), before);

    for _ in 0..3 {
        env.google.enqueue(
            "/revoke",
            Canned::html(500, "boom").header("Retry-After", "0"),
        );
    }
    let forced = env.run(&["revoke", "--force"]);
    assert_eq!(forced.code(), 0, "{}", forced.stderr);
    assert!(forced.stderr.contains("anyway"), "{}", forced.stderr);
    assert!(!path.exists());
}

fn unreachable_server_keeps_the_file() {
    let env = TestEnv::new();
    let path = env.path("creds.json");
    let closed = ClosedPort::new();
    let port = closed.port();
    let creds = serde_json::json!({
        "type": "authorized_user", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "refresh_token": "1//r", "revoke_uri": format!("http://127.0.0.1:{port}/revoke"),
    });
    std::fs::write(&path, creds.to_string()).unwrap();
    let done = env.run(&["revoke", "--credential-file", path.to_str().unwrap()]);
    assert_eq!(done.code(), 1, "{}", done.stderr);
    assert!(done.stderr.contains("could not reach"), "{}", done.stderr);
    assert!(path.exists());
}

fn revoke_targets_the_adc_file_not_the_environment_variable() {
    let env = TestEnv::new();
    let other = env.path("other.json");
    let other_bytes = env.write_credentials(&other, "1//other");
    env.write_credentials(&env.adc_path(), "1//adc");
    let mut cmd = env.cmd();
    cmd.arg("revoke")
        .env("GOOGLE_APPLICATION_CREDENTIALS", &other);
    let done = Running::spawn(cmd, env.path("browser-args")).finish();
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(done.stderr.contains("is not touched"), "{}", done.stderr);
    assert!(!env.adc_path().exists());
    assert_eq!(std::fs::read(&other).unwrap(), other_bytes);
    assert_eq!(env.google.seen("/revoke")[0].form["token"], "1//adc");
}

fn malformed_file_is_kept_unless_forced() {
    let env = TestEnv::new();
    let path = env.adc_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"{not json").unwrap();
    let done = env.run(&["revoke"]);
    assert_eq!(done.code(), 3, "{}", done.stderr);
    assert!(path.exists());
    let forced = env.run(&["revoke", "--force"]);
    assert_eq!(forced.code(), 0, "{}", forced.stderr);
    assert!(!path.exists());
    assert!(env.google.seen("/revoke").is_empty());
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        revoke_removes_the_cached_id_token_too,
        revoke_revokes_at_the_server_and_removes_file_and_cache,
        already_revoked_grant_is_removed_locally,
        server_failure_keeps_the_file_unless_forced,
        unreachable_server_keeps_the_file,
        revoke_targets_the_adc_file_not_the_environment_variable,
        malformed_file_is_kept_unless_forced,
    ]
}
