//! The `token.json` of Google's Gemini OAuth quickstart (`load_creds()` writes it with google-auth's
//! `Credentials.to_json()`: no `type` field) is a user credential: its saved token is used while
//! it is fresh, it refreshes at its `token_uri`, and a rotation keeps it readable by google-auth.
//!
//! The files are made by google-auth itself when a Python with it is available
//! (`GEMAUTH_TEST_PYTHON`, else `python3`; required when `GEMAUTH_REQUIRE_INTEROP=1`, as `.ci/run`
//! sets), else written in its exact format.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::harness::*;
use crate::runner::{Needs, Trial, trials};
use serde_json::{Value, json};

const RETRIEVER: &str = "https://www.googleapis.com/auth/generative-language.retriever";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/token_json.py");

/// A Python with google-auth, when there is one (the runner looks for it once per run).
fn python() -> Option<String> {
    let python = crate::runner::python();
    if Needs::GoogleAuth.found() {
        return Some(python);
    }
    assert!(
        !crate::runner::required(),
        "GEMAUTH_REQUIRE_INTEROP=1 but {python} cannot import google.auth (run .ci/run)"
    );
    eprintln!("note: {python} has no google-auth; writing token.json in its format by hand");
    None
}

fn run_python(python: &str, args: &[&str]) -> String {
    let out = Command::new(python)
        .arg(SCRIPT)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "google-auth failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What `Credentials.to_json()` writes, exactly (google-auth 2.x): one line, these keys in this
/// order, `expiry` as a naive UTC `isoformat()` plus `Z`.
fn to_json_by_hand(env: &TestEnv, refresh_token: &str, token: &str, expiry: &str) -> String {
    format!(
        r#"{{"token": "{token}", "refresh_token": "{refresh_token}", "token_uri": "{}/token", "client_id": "{CLIENT_ID}", "client_secret": "{CLIENT_SECRET}", "scopes": ["{RETRIEVER}"], "universe_domain": "googleapis.com", "account": "", "expiry": "{expiry}"}}"#,
        env.google.base
    )
}

/// google-auth's `expiry` for a time `secs` from now (negative: in the past).
fn expiry_in(secs: i64) -> String {
    let now = SystemTime::now();
    let at = if secs >= 0 {
        now + Duration::from_secs(secs as u64)
    } else {
        now - Duration::from_secs(secs.unsigned_abs())
    };
    humantime::format_rfc3339_micros(at).to_string()
}

/// Writes the quickstart's `token.json` for a registered refresh token: by google-auth when it
/// is available, else by hand in its format.
fn quickstart_token_json(
    env: &TestEnv,
    refresh_token: &str,
    token: &str,
    expires_in: i64,
) -> PathBuf {
    env.google.add_refresh_token(refresh_token);
    let text = match python() {
        Some(python) => run_python(
            &python,
            &[
                "write",
                &format!("{}/token", env.google.base),
                CLIENT_ID,
                CLIENT_SECRET,
                refresh_token,
                token,
                &expires_in.to_string(),
                RETRIEVER,
            ],
        ),
        None => to_json_by_hand(env, refresh_token, token, &expiry_in(expires_in)),
    };
    let value: Value = serde_json::from_str(&text).unwrap();
    assert!(value.get("type").is_none(), "{text}");
    assert_eq!(value["token"], token);
    let path = env.path("token.json");
    write_private(&path, text.as_bytes());
    path
}

fn a_fresh_quickstart_token_json_gives_its_token_without_a_request() {
    let env = TestEnv::new();
    let file = quickstart_token_json(&env, "1//quickstart", "ya29.quickstart-token", 1800);
    let before = std::fs::read(&file).unwrap();
    let arg = file.to_str().unwrap();

    let done = env.run(&["print-access-token", "--credential-file", arg]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "ya29.quickstart-token\n");
    let done = env.run_with(
        &["print-access-token"],
        &[("GOOGLE_APPLICATION_CREDENTIALS", &file)],
    );
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "ya29.quickstart-token\n");
    let done = env.run(&[
        "print-access-token",
        "--credential-file",
        arg,
        "--format",
        "json",
    ]);
    let out = done.json();
    assert_eq!(out["scopes"], json!([RETRIEVER]));
    assert!(env.google.seen("/token").is_empty(), "no network call");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "the file is untouched"
    );

    let status = env.run(&["status", "--credential-file", arg]);
    assert_eq!(status.code(), 0, "{}", status.stderr);
    let line = |label: &str, value: &str| format!("{label:<16} {value}");
    for expected in [
        line(
            "Type:",
            "authorized_user (google-auth token.json, no type field)\n",
        ),
        line("Cached token:", "valid until"),
        line(
            "Token endpoint:",
            &format!("{}/token (not Google's default)\n", env.google.base),
        ),
        line("Quota project:", "(none)\n"),
    ] {
        assert!(
            status.stdout.contains(&expected),
            "{expected:?}: {}",
            status.stdout
        );
    }
    let status = env.run(&["status", "--format", "json", "--credential-file", arg]);
    let report: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(report["type"], "authorized_user");
    assert_eq!(report["type_inferred"], true);
    assert_eq!(report["client_id"], CLIENT_ID);
    assert_eq!(report["cached_token"]["fresh"], true);

    // No quota project in a token.json: the clear answer, not a complaint about the file.
    let none = env.run(&["print-quota-project", "--credential-file", arg]);
    assert_eq!(none.code(), 1, "{}", none.stderr);
    assert!(
        none.stderr.contains("no quota project is set in"),
        "{}",
        none.stderr
    );
    let mut cmd = env.cmd();
    cmd.args(["print-quota-project", "--credential-file", arg])
        .env("GOOGLE_CLOUD_QUOTA_PROJECT", "billing-project");
    let from_env = Running::spawn(cmd, env.path("browser-args")).finish();
    assert_eq!(from_env.stdout, "billing-project\n", "{}", from_env.stderr);
    let set = env.run(&[
        "set-quota-project",
        "my-project-123",
        "--credential-file",
        arg,
    ]);
    assert_eq!(set.code(), 0, "{}", set.stderr);
    let printed = env.run(&["print-quota-project", "--credential-file", arg]);
    assert_eq!(printed.stdout, "my-project-123\n", "{}", printed.stderr);
    let written = read_json(&file);
    assert!(written.get("type").is_none(), "{written}");
    assert_eq!(written["token"], "ya29.quickstart-token");
    if let Some(python) = python() {
        let loaded: Value = serde_json::from_str(&run_python(&python, &["load", arg])).unwrap();
        assert_eq!(loaded["quota_project_id"], "my-project-123");
        assert_eq!(loaded["token"], "ya29.quickstart-token");
    }
    // The quickstart asked for no openid scope: no ID token, and the reason.
    let id = env.run(&["print-identity-token", "--credential-file", arg]);
    assert_eq!(id.code(), 3, "{}", id.stderr);
    assert!(id.stderr.contains("openid"), "{}", id.stderr);
    assert!(env.google.seen("/token").is_empty());
}

fn an_expired_token_json_refreshes_at_its_token_uri_and_stays_google_auth_readable() {
    let env = TestEnv::new();
    env.google.with(|b| b.rotate = true);
    let file = quickstart_token_json(&env, "1//quickstart", "ya29.old-token", -60);
    let before = read_json(&file);
    let arg = file.to_str().unwrap();

    let done = env.run(&["print-access-token", "--credential-file", arg]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "ya29.access-1\n");
    let grants = env.google.seen_grants("refresh_token");
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].form["refresh_token"], "1//quickstart");
    assert_eq!(grants[0].form["client_id"], CLIENT_ID);

    // The rotated refresh token is saved; every other field is kept and nothing is added.
    let after = read_json(&file);
    assert_eq!(after["refresh_token"], "1//refresh-1");
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&after), keys(&before));
    for (k, v) in before.as_object().unwrap() {
        if k != "refresh_token" {
            assert_eq!(&after[k], v, "{k}");
        }
    }
    if let Some(python) = python() {
        let loaded: Value = serde_json::from_str(&run_python(&python, &["load", arg])).unwrap();
        assert_eq!(loaded["refresh_token"], "1//refresh-1");
        assert_eq!(loaded["client_id"], CLIENT_ID);
        assert_eq!(loaded["scopes"], json!([RETRIEVER]));
    }
    // The new token is cached; the file's old one is not taken back.
    assert_eq!(
        env.run(&["print-access-token", "--credential-file", arg])
            .stdout,
        "ya29.access-1\n"
    );
    assert_eq!(env.google.seen_grants("refresh_token").len(), 1);
}

fn only_plausible_saved_tokens_are_used() {
    let env = TestEnv::new();
    let cases = [
        // (token, expiry, used without a request)
        ("ya29.ok", expiry_in(1800), true),
        (
            "ya29.ok",
            expiry_in(1800).trim_end_matches('Z').to_string(),
            true,
        ),
        ("ya29.ok", format!("{}Z", &expiry_in(1800)[..19]), true),
        ("ya29.ok", expiry_in(2 * 3600), false),
        ("ya29.ok", expiry_in(-10), false),
        ("ya29.ok", expiry_in(60), false), // too close to its end to hand out
        ("ya29 spaced", expiry_in(1800), false),
        (
            "ya29.ok",
            format!("{}+00:00", &expiry_in(1800)[..19]),
            false,
        ),
        ("ya29.ok", expiry_in(1800).replace('T', " "), false),
        ("ya29.ok", "tomorrow".to_string(), false),
    ];
    for (n, (token, expiry, used)) in cases.into_iter().enumerate() {
        let refresh_token = format!("1//case-{n}");
        env.google.add_refresh_token(&refresh_token);
        let file = env.path(&format!("token-{n}.json"));
        write_private(
            &file,
            to_json_by_hand(&env, &refresh_token, token, &expiry).as_bytes(),
        );
        let before = env.google.seen_grants("refresh_token").len();
        let done = env.run(&[
            "print-access-token",
            "--credential-file",
            file.to_str().unwrap(),
        ]);
        assert_eq!(done.code(), 0, "{expiry}: {}", done.stderr);
        let requested = env.google.seen_grants("refresh_token").len() > before;
        assert_eq!(!requested, used, "{token:?} {expiry:?}");
        if used {
            assert_eq!(done.stdout, "ya29.ok\n");
        } else {
            assert!(done.stdout.starts_with("ya29.access-"), "{}", done.stdout);
        }
    }
    // A non-string expiry or token is no seed either, and no error.
    let file = env.path("token-odd.json");
    let mut value: Value = serde_json::from_str(&to_json_by_hand(
        &env,
        "1//odd",
        "ya29.ok",
        &expiry_in(1800),
    ))
    .unwrap();
    value["expiry"] = json!(12345);
    env.google.add_refresh_token("1//odd");
    write_private(&file, value.to_string().as_bytes());
    let done = env.run(&[
        "print-access-token",
        "--credential-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(done.stdout.starts_with("ya29.access-"), "{}", done.stdout);
}

fn a_file_without_type_that_is_not_a_user_credential_keeps_the_clear_error() {
    let env = TestEnv::new();
    let cases = [
        (
            json!({"client_email": "a@b", "private_key": "x"}),
            "has no \"type\" field",
        ),
        (
            json!({"token": "ya29.x", "client_id": CLIENT_ID, "expiry": expiry_in(600)}),
            "is not a google-auth token.json either (it lacks client_secret, refresh_token)",
        ),
        (
            json!({"type": "impersonated_service_account",
                "service_account_impersonation_url": "https://x/y:generateAccessToken",
                "source_credentials": {"client_id": "a", "client_secret": "b", "refresh_token": "c"}}),
            "source_credentials: has no \"type\" field",
        ),
        (
            json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": ""}),
            "\"refresh_token\" is empty",
        ),
    ];
    for (value, expected) in cases {
        let file = env.write_json("notype.json", &value);
        let before = std::fs::read(&file).unwrap();
        let done = env.run(&[
            "print-access-token",
            "--credential-file",
            file.to_str().unwrap(),
        ]);
        assert_eq!(done.code(), 3, "{value}: {}", done.stderr);
        assert!(done.stderr.contains(expected), "{value}: {}", done.stderr);
        assert_eq!(done.stdout, "");
        assert_eq!(std::fs::read(&file).unwrap(), before);
    }
    assert!(env.google.seen("/token").is_empty());
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        a_fresh_quickstart_token_json_gives_its_token_without_a_request,
        an_expired_token_json_refreshes_at_its_token_uri_and_stays_google_auth_readable,
        only_plausible_saved_tokens_are_used,
        a_file_without_type_that_is_not_a_user_credential_keeps_the_clear_error,
    ]
}
