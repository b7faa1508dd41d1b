//! `gemauth print-access-token`: discovery, cache, refresh, rotation and rejected credentials.

use crate::harness::*;
use crate::runner::{Trial, trials};

fn cached_token_is_printed_without_network_and_expired_one_is_refreshed() {
    let env = TestEnv::new();
    env.login();
    let first = env.run(&["print-access-token"]);
    assert_eq!(first.code(), 0, "{}", first.stderr);
    assert_eq!(first.stdout, "ya29.access-2\n");
    assert_eq!(first.stderr, "");
    assert!(env.google.seen_grants("refresh_token").is_empty());

    env.expire_cache();
    let before = std::fs::read(env.adc_path()).unwrap();
    let refreshed = env.run(&["print-access-token"]);
    assert_eq!(refreshed.code(), 0, "{}", refreshed.stderr);
    assert_eq!(refreshed.stdout, "ya29.access-3\n");
    let refreshes = env.google.seen_grants("refresh_token");
    assert_eq!(refreshes.len(), 1);
    let form = &refreshes[0].form;
    assert_eq!(form["refresh_token"], "1//refresh-2");
    assert_eq!(form["client_id"], CLIENT_ID);
    assert_eq!(form["client_secret"], CLIENT_SECRET);
    assert!(!refreshes[0].headers.contains_key("authorization"));
    // No rotation: the credential file is left alone.
    assert_eq!(std::fs::read(env.adc_path()).unwrap(), before);

    // The refreshed token is cached in turn.
    let again = env.run(&["print-access-token"]);
    assert_eq!(again.stdout, "ya29.access-3\n");
    assert_eq!(env.google.seen_grants("refresh_token").len(), 1);
    let cached = env.cached_tokens();
    assert_eq!(cached.len(), 1);
    #[cfg(unix)]
    assert_eq!(mode(&cached[0]), 0o600);
    assert!(cached[0].starts_with(env.cache_dir()));
}

fn rotated_refresh_token_is_saved_and_other_fields_kept() {
    let env = TestEnv::new();
    let path = env.adc_path();
    env.write_credentials(&path, "1//original");
    env.google.with(|b| b.rotate = true);
    let done = env.run(&["print-access-token"]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "ya29.access-1\n");
    let written = read_json(&path);
    assert_eq!(written["refresh_token"], "1//refresh-1");
    assert_eq!(written["custom_field"], serde_json::json!({"kept": true}));
    assert_eq!(written["quota_project_id"], PROJECT_ID);
    assert!(!env.google.refresh_token_valid("1//original"));
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);

    // The next refresh uses the new token.
    env.expire_cache();
    let done = env.run(&["print-access-token"]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let refreshes = env.google.seen_grants("refresh_token");
    assert_eq!(refreshes[1].form["refresh_token"], "1//refresh-1");
}

fn revoked_grant_exits_3_and_leaves_the_file_byte_for_byte() {
    let env = TestEnv::new();
    let path = env.adc_path();
    let before = env.write_credentials(&path, "1//unknown");
    env.google.enqueue("/token", Canned::expired_grant());
    let done = env.run(&["print-access-token"]);
    assert_eq!(done.code(), 3);
    assert_eq!(done.stdout, "");
    assert!(done.stderr.contains("invalid_grant"), "{}", done.stderr);
    assert!(done.stderr.contains("Token has been expired or revoked."));
    assert!(done.stderr.contains("hint: run `gemauth login"));
    assert!(!done.stderr.contains("1//unknown"));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert!(env.cached_tokens().is_empty());
}

fn session_control_reauthentication_has_its_own_message() {
    let env = TestEnv::new();
    env.write_credentials(&env.adc_path(), "1//r");
    env.google.enqueue("/token", Canned::reauth_required());
    let done = env.run(&["print-access-token"]);
    assert_eq!(done.code(), 3);
    assert!(done.stderr.contains("session control"), "{}", done.stderr);
    assert!(done.stderr.contains("invalid_rapt"));
    assert!(done.stderr.contains("re-authentication"));
}

fn broken_token_endpoint_answers_are_one_line_errors() {
    let env = TestEnv::new();
    let path = env.adc_path();
    let before = env.write_credentials(&path, "1//r");
    let cases = [
        (
            Canned::html(200, "<html>login page</html>"),
            "HTTP 200",
            "HTML",
        ),
        (Canned::json(200, ""), "HTTP 200", "empty response body"),
        (
            Canned::json(200, r#"{"token_type":"Bearer"}"#),
            "HTTP 200",
            "no access_token",
        ),
        (
            Canned::json(403, r#"{"error":"access_denied"}"#),
            "HTTP 403",
            "access_denied",
        ),
        (Canned::json(400, "not json"), "HTTP 400", "not JSON"),
    ];
    for (canned, status, detail) in cases {
        env.google.enqueue("/token", canned);
        let done = env.run(&["print-access-token"]);
        assert_eq!(done.code(), 1, "{}", done.stderr);
        assert_eq!(done.stdout, "");
        let error = done.stderr.lines().next().unwrap();
        assert!(error.starts_with("error: "), "{}", done.stderr);
        assert!(
            error.contains(&format!("{}/token", env.google.base)),
            "{error}"
        );
        assert!(error.contains(status) && error.contains(detail), "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
}

fn transient_server_errors_are_retried() {
    let env = TestEnv::new();
    env.write_credentials(&env.adc_path(), "1//r");
    env.google.enqueue(
        "/token",
        Canned::html(503, "unavailable").header("Retry-After", "0"),
    );
    env.google.enqueue(
        "/token",
        Canned::json(400, r#"{"error":"temporarily_unavailable"}"#).header("Retry-After", "0"),
    );
    let done = env.run(&["print-access-token"]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "ya29.access-1\n");
    assert_eq!(env.google.seen("/token").len(), 3);
}

fn discovery_order_is_flag_then_environment_then_well_known() {
    let env = TestEnv::new();
    let flag = env.path("flag.json");
    let from_env = env.path("env.json");
    env.write_credentials(&flag, "1//flag");
    env.write_credentials(&from_env, "1//env");
    env.write_credentials(&env.adc_path(), "1//adc");
    let refreshed_with = |args: &[&str], use_env: bool| {
        let mut cmd = env.cmd();
        cmd.args(args);
        if use_env {
            cmd.env("GOOGLE_APPLICATION_CREDENTIALS", &from_env);
        }
        let done = Running::spawn(cmd, env.path("browser-args")).finish();
        assert_eq!(done.code(), 0, "{}", done.stderr);
        let grants = env.google.seen_grants("refresh_token");
        grants.last().unwrap().form["refresh_token"].clone()
    };
    assert_eq!(
        refreshed_with(
            &[
                "print-access-token",
                "--credential-file",
                flag.to_str().unwrap()
            ],
            true
        ),
        "1//flag"
    );
    assert_eq!(refreshed_with(&["print-access-token"], true), "1//env");
    assert_eq!(refreshed_with(&["print-access-token"], false), "1//adc");
}

fn missing_credentials_exit_3_with_a_login_hint() {
    let env = TestEnv::new();
    let done = env.run(&["print-access-token"]);
    done.assert_no_credentials();
    assert!(done.stderr.contains(&env.adc_path().display().to_string()));
    assert!(done.stderr.contains("hint: run `gemauth login"));

    let mut cmd = env.cmd();
    cmd.arg("print-access-token")
        .env("GOOGLE_APPLICATION_CREDENTIALS", env.path("gone.json"));
    let done = Running::spawn(cmd, env.path("browser-args")).finish();
    assert_eq!(done.code(), 3);
    assert!(
        done.stderr.contains("GOOGLE_APPLICATION_CREDENTIALS"),
        "{}",
        done.stderr
    );
}

fn malformed_credential_files_are_refused_without_writes() {
    let env = TestEnv::new();
    let path = env.path("creds.json");
    let cases: Vec<(&str, &[u8], &str, i32)> = vec![
        ("empty", b"", "is empty", 3),
        ("not JSON", b"refresh_token=x", "not valid JSON", 3),
        ("truncated", br#"{"type":"authorized_user","client_id":"#, "not valid JSON", 3),
        ("no type", br#"{"client_id":"a"}"#, "no \"type\"", 3),
        ("array", b"[1,2]", "not a JSON object", 3),
        ("missing refresh token", br#"{"type":"authorized_user","client_id":"a","client_secret":"b"}"#, "missing field `refresh_token`", 3),
        ("wrong-typed field", br#"{"type":"authorized_user","client_id":1,"client_secret":"b","refresh_token":"c"}"#, "invalid type", 3),
        ("empty refresh token", br#"{"type":"authorized_user","client_id":"a","client_secret":"b","refresh_token":""}"#, "\"refresh_token\" is empty", 3),
        ("service account without key", br#"{"type":"service_account","client_email":"x"}"#, "missing field `private_key`", 3),
        ("unknown type", br#"{"type":"gdch_service_account","format_version":"1"}"#, "\"gdch_service_account\"", 1),
        ("insecure endpoint", br#"{"type":"authorized_user","client_id":"a","client_secret":"b","refresh_token":"c","token_uri":"http://evil.example/token"}"#, "plain http is only allowed", 1),
    ];
    for (name, bytes, expected, code) in cases {
        std::fs::write(&path, bytes).unwrap();
        let done = env.run(&[
            "print-access-token",
            "--credential-file",
            path.to_str().unwrap(),
        ]);
        assert_eq!(done.code(), code, "{name}: {}", done.stderr);
        assert!(done.stderr.contains(expected), "{name}: {}", done.stderr);
        assert!(
            done.stderr.contains(&path.display().to_string()) || code == 1,
            "{name}: {}",
            done.stderr
        );
        assert!(done.stderr.contains("hint:"), "{name}");
        assert_eq!(done.stdout, "", "{name}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name}");
    }
    let done = env.run(&[
        "print-access-token",
        "--credential-file",
        env.path("").to_str().unwrap(),
    ]);
    assert_eq!(done.code(), 3);
    assert!(done.stderr.contains("is a directory"), "{}", done.stderr);

    // Symbolic links are followed for reading; what they point at is judged like a file.
    #[cfg(unix)]
    {
        let elsewhere = env.path("notes.txt");
        std::fs::write(&elsewhere, "not a credential\n").unwrap();
        let link = env.path("link.json");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        let dangling = env.path("dangling.json");
        std::os::unix::fs::symlink(env.path("missing-target"), &dangling).unwrap();
        for (file, expected) in [(&link, "not valid JSON"), (&dangling, "does not exist")] {
            let done = env.run(&[
                "print-access-token",
                "--credential-file",
                file.to_str().unwrap(),
            ]);
            assert_eq!(done.code(), 3, "{}", done.stderr);
            assert!(done.stderr.contains(expected), "{}", done.stderr);
            assert!(
                done.stderr.contains(&file.display().to_string()),
                "{}",
                done.stderr
            );
        }
        assert_eq!(std::fs::read(&elsewhere).unwrap(), b"not a credential\n");
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );

        // Unreadable permissions (root reads everything, so only checked as another user).
        if !running_as_root() {
            use std::os::unix::fs::PermissionsExt;
            let locked = env.path("locked.json");
            env.write_credentials(&locked, "1//r");
            std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
            let done = env.run(&[
                "print-access-token",
                "--credential-file",
                locked.to_str().unwrap(),
            ]);
            assert_eq!(done.code(), 3, "{}", done.stderr);
            assert!(done.stderr.contains("cannot be read"), "{}", done.stderr);
        }
    }
    assert!(env.google.seen("/token").is_empty());
}

fn another_login_never_sees_the_previous_cached_token() {
    let env = TestEnv::new();
    let path = env.adc_path();
    env.write_credentials(&path, "1//first");
    assert_eq!(env.run(&["print-access-token"]).stdout, "ya29.access-1\n");
    // A different grant in the same file (e.g. after a new login) must not reuse that token.
    env.write_credentials(&path, "1//second");
    assert_eq!(env.run(&["print-access-token"]).stdout, "ya29.access-2\n");
    let grants = env.google.seen_grants("refresh_token");
    assert_eq!(grants.len(), 2);
    assert_eq!(grants[1].form["refresh_token"], "1//second");
}

/// Unix permissions; on Windows there is no such warning (tests/windows.rs).
#[cfg(unix)]
fn exposed_credential_file_gets_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    let path = env.adc_path();
    env.write_credentials(&path, "1//r");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let done = env.run(&["print-access-token"]);
    assert_eq!(done.code(), 0);
    assert!(
        done.stderr.contains("readable by other users"),
        "{}",
        done.stderr
    );
    assert!(done.stdout.starts_with("ya29."));
    assert_eq!(
        done.stderr.matches("readable by other users").count(),
        1,
        "warned once: {}",
        done.stderr
    );
    assert_eq!(env.google.seen_grants("refresh_token").len(), 1);
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        cached_token_is_printed_without_network_and_expired_one_is_refreshed,
        rotated_refresh_token_is_saved_and_other_fields_kept,
        revoked_grant_exits_3_and_leaves_the_file_byte_for_byte,
        session_control_reauthentication_has_its_own_message,
        broken_token_endpoint_answers_are_one_line_errors,
        transient_server_errors_are_retried,
        discovery_order_is_flag_then_environment_then_well_known,
        missing_credentials_exit_3_with_a_login_hint,
        malformed_credential_files_are_refused_without_writes,
        another_login_never_sees_the_previous_cached_token,
        #[cfg(unix)]
        exposed_credential_file_gets_a_warning,
    ]
}
