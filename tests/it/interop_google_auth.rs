//! Interoperability with Google's own Python library: the file `gemauth login` writes must load
//! unchanged with `google.auth.default()` and `Credentials.from_authorized_user_file()`, and
//! google-auth must be able to refresh with it.
//!
//! Needs a Python with google-auth and requests: `GEMAUTH_TEST_PYTHON`, else `python3`. Without
//! one the test is ignored (the runner, runner.rs), unless `GEMAUTH_REQUIRE_INTEROP=1` (set by `.ci/run`).

use crate::harness::*;
use crate::runner::{Trial, trials};

fn google_auth_loads_and_refreshes_the_login_file() {
    let env = TestEnv::new();
    env.login();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/google_auth_check.py"
    );
    let stdout = run_google_auth(
        &env,
        &[
            script.into(),
            env.adc_path().into(),
            format!("{}/token", env.google.base).into(),
        ],
    );
    let summary: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(
        summary["default_class"],
        "google.oauth2.credentials.Credentials"
    );
    assert_eq!(summary["default_client_id"], CLIENT_ID);
    assert_eq!(summary["default_account"], EMAIL);
    assert_eq!(summary["default_quota_project"], PROJECT_ID);
    assert_eq!(summary["default_universe"], "googleapis.com");
    assert_eq!(
        summary["default_scopes"].as_array().map(Vec::len),
        Some(4),
        "{summary}"
    );
    assert_eq!(summary["file_refresh_token"], "1//refresh-2");
    assert_eq!(summary["token_after_refresh"], "ya29.access-3");
    assert_eq!(summary["valid_after_refresh"], true);
    let refreshes = env.google.seen_grants("refresh_token");
    assert_eq!(refreshes.len(), 1);
    assert_eq!(refreshes[0].form["refresh_token"], "1//refresh-2");
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        google_auth_loads_and_refreshes_the_login_file => GoogleAuth,
    ]
}
