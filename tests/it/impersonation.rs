//! Service account impersonation asked by the user: `login --impersonate-service-account`
//! writes gcloud's `impersonated_service_account` file with the login as its source, and
//! `print-access-token` / `print-identity-token --impersonate-service-account` act as a
//! service account through any credential without changing a file, cached per target;
//! `--lifetime` asks IAM for longer or shorter tokens, and IAM's refusal names the policy.

use std::io::Write;
use std::process::Stdio;

use crate::harness::*;
use crate::runner::{Trial, trials};
use serde_json::{Value, json};

const OVERRIDE: &str = "CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS";
const TARGET: &str = "target@test-project-1.iam.gserviceaccount.com";
const OTHER: &str = "other@test-project-1.iam.gserviceaccount.com";
const DELEGATE: &str = "middle@test-project-1.iam.gserviceaccount.com";
const POLICY: &str = "constraints/iam.allowServiceAccountCredentialLifetimeExtension";

fn iam_path(account: &str, method: &str) -> String {
    format!("/v1/projects/-/serviceAccounts/{account}:{method}")
}

/// How many access tokens IAM Credentials minted for `account`.
fn tokens_minted(env: &TestEnv, account: &str) -> usize {
    env.google
        .seen(&iam_path(account, "generateAccessToken"))
        .len()
}

/// `print-access-token --impersonate-service-account SPEC` and `more` arguments.
fn acting_as(env: &TestEnv, spec: &str, more: &[&str]) -> Finished {
    let mut args = vec!["print-access-token", "--impersonate-service-account", spec];
    args.extend_from_slice(more);
    run(env, &args)
}

/// A complete approved `gemauth login ARGS`, with `vars` set.
fn login_with(env: &TestEnv, args: &[&str], vars: &[(&str, &str)]) -> Finished {
    let client = env.client_file();
    let mut cmd = env.cmd();
    cmd.arg("login")
        .arg("--client-id-file")
        .arg(&client)
        .args(args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let run = Running::spawn(cmd, env.path("browser-args"));
    let page = follow_authorization(&run.browser_url());
    assert_eq!(page.status, 200, "{}", page.body);
    run.finish()
}

/// Runs gemauth with IAM Credentials at the fake server.
fn run(env: &TestEnv, args: &[&str]) -> Finished {
    env.run_with(args, &[(OVERRIDE, env.google.base.as_str())])
}

fn login_with_impersonation_writes_gclouds_file_and_every_command_uses_it() {
    let env = TestEnv::new();
    let spec = format!("{DELEGATE},{TARGET}");
    let done = login_with(
        &env,
        &["--impersonate-service-account", &spec],
        &[(OVERRIDE, &env.google.base)],
    );
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "");
    assert!(
        done.stderr.contains(&format!("Impersonating: {TARGET}")),
        "{}",
        done.stderr
    );
    let file = read_json(&env.adc_path());
    #[cfg(unix)]
    assert_eq!(mode(&env.adc_path()), 0o600);
    // gcloud's shape: exactly these keys, the last account impersonated, the rest delegates.
    let keys: Vec<&String> = file.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "delegates",
            "service_account_impersonation_url",
            "source_credentials",
            "type"
        ]
    );
    assert_eq!(file["type"], "impersonated_service_account");
    assert_eq!(file["delegates"], json!([DELEGATE]));
    assert_eq!(
        file["service_account_impersonation_url"],
        format!(
            "{}{}",
            env.google.base,
            iam_path(TARGET, "generateAccessToken")
        )
    );
    let source = &file["source_credentials"];
    assert_eq!(source["type"], "authorized_user");
    assert_eq!(source["client_id"], CLIENT_ID);
    assert_eq!(source["client_secret"], CLIENT_SECRET);
    assert!(
        env.google
            .refresh_token_valid(source["refresh_token"].as_str().unwrap())
    );
    assert!(source.get("quota_project_id").is_none(), "{source}");
    // The text is laid out as gcloud's json.dumps(indent=2, sort_keys=True).
    let text = std::fs::read_to_string(env.adc_path()).unwrap();
    assert!(text.starts_with("{\n  \"delegates\": [\n    \""), "{text}");

    // print-access-token: the user's token, then IAM's generateAccessToken as the target.
    let done = run(&env, &["print-access-token"]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(
        done.stdout.starts_with("ya29.impersonated-"),
        "{}",
        done.stdout
    );
    let iam = env.google.seen(&iam_path(TARGET, "generateAccessToken"));
    assert_eq!(iam.len(), 1);
    let body: Value = serde_json::from_str(&iam[0].body).unwrap();
    assert_eq!(body["delegates"], json!([DELEGATE]));
    assert_eq!(body["lifetime"], "3600s");
    assert_eq!(
        body["scope"],
        json!(["https://www.googleapis.com/auth/cloud-platform"])
    );
    assert!(iam[0].headers["authorization"].starts_with("Bearer ya29."));

    // An ID token for any audience, which the user's own login cannot have.
    let done = run(
        &env,
        &[
            "print-identity-token",
            "--audiences",
            "https://svc.example",
            "--include-email",
        ],
    );
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let id = env.google.seen(&iam_path(TARGET, "generateIdToken"));
    assert_eq!(id.len(), 1);
    let body: Value = serde_json::from_str(&id[0].body).unwrap();
    assert_eq!(body["audience"], "https://svc.example");
    assert_eq!(body["delegates"], json!([DELEGATE]));

    // The Docker helper hands out the impersonated token (from the cache).
    let token = run(&env, &["print-access-token"]).stdout.trim().to_string();
    let mut cmd = env.cmd();
    cmd.args(["docker-credential", "get"])
        .env(OVERRIDE, &env.google.base)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"us-docker.pkg.dev\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["Secret"], token);
    assert_eq!(tokens_minted(&env, TARGET), 1);

    // --lifetime applies to the file's impersonation too, as another cache entry.
    let short = run(&env, &["print-access-token", "--lifetime", "600"]);
    assert_eq!(short.code(), 0, "{}", short.stderr);
    assert_ne!(short.stdout.trim(), token);
    let iam = env.google.seen(&iam_path(TARGET, "generateAccessToken"));
    assert_eq!(iam.len(), 2);
    let body: Value = serde_json::from_str(&iam[1].body).unwrap();
    assert_eq!(body["lifetime"], "600s");
}

fn login_impersonation_url_is_gclouds_and_google_auth_shape_without_override() {
    let env = TestEnv::new();
    let done = login_with(&env, &["--impersonate-service-account", TARGET], &[]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let file = read_json(&env.adc_path());
    assert_eq!(
        file["service_account_impersonation_url"],
        format!(
            "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{TARGET}:generateAccessToken"
        )
    );
    assert_eq!(file["delegates"], json!([]));
    // `revoke` revokes the login the impersonation is made from, and removes the file.
    let refresh_token = file["source_credentials"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    env.assert_revokes(&refresh_token);

    // Bad lists and scopes without cloud-platform are refused before anyone signs in.
    for (args, expected) in [
        (
            vec!["--impersonate-service-account", "not an account"],
            "service account emails",
        ),
        (
            vec!["--impersonate-service-account", "a@b,"],
            "service account emails",
        ),
        (
            vec![
                "--impersonate-service-account",
                TARGET,
                "--scopes",
                "openid",
            ],
            "cloud-platform",
        ),
    ] {
        let mut cmd = env.cmd();
        cmd.arg("login")
            .arg("--client-id-file")
            .arg(env.client_file())
            .args(&args);
        let done = Running::spawn(cmd, env.path("browser-args")).finish();
        assert_eq!(done.code(), 2, "{args:?}: {}", done.stderr);
        assert!(done.stderr.contains(expected), "{}", done.stderr);
        assert!(done.stderr.contains("hint:"), "{}", done.stderr);
    }
}

fn per_call_impersonation_changes_no_file_and_caches_per_target() {
    let env = TestEnv::new();
    env.login();
    let before = std::fs::read(env.adc_path()).unwrap();
    let user = run(&env, &["print-access-token"]).stdout;
    let spec = format!("{DELEGATE},{TARGET}");
    let first = acting_as(&env, &spec, &[]);
    assert_eq!(first.code(), 0, "{}", first.stderr);
    assert!(
        first.stdout.starts_with("ya29.impersonated-"),
        "{}",
        first.stdout
    );
    assert_ne!(first.stdout, user);
    let iam = env.google.seen(&iam_path(TARGET, "generateAccessToken"));
    assert_eq!(iam.len(), 1);
    let body: Value = serde_json::from_str(&iam[0].body).unwrap();
    assert_eq!(body["delegates"], json!([DELEGATE]));
    // Cached for this target: the second call asks nobody.
    let again = acting_as(&env, &spec, &[]);
    assert_eq!(again.stdout, first.stdout);
    assert_eq!(tokens_minted(&env, TARGET), 1);
    // Another target (or another chain) is another token.
    let other = acting_as(&env, OTHER, &[]);
    assert_eq!(other.code(), 0, "{}", other.stderr);
    assert_ne!(other.stdout, first.stdout);
    assert_eq!(tokens_minted(&env, OTHER), 1);
    let direct = acting_as(&env, TARGET, &[]);
    assert_ne!(direct.stdout, first.stdout);
    // The user's own token is still the plain answer, and the file never changed.
    assert_eq!(run(&env, &["print-access-token"]).stdout, user);
    assert_eq!(std::fs::read(env.adc_path()).unwrap(), before);

    // An ID token for any audience from a user login, per call.
    let id = run(
        &env,
        &[
            "print-identity-token",
            "--impersonate-service-account",
            TARGET,
            "--audiences",
            "https://run.example",
            "--format",
            "json",
        ],
    );
    assert_eq!(id.code(), 0, "{}", id.stderr);
    assert_eq!(id.json()["audience"], "https://run.example");
    assert_eq!(
        env.google.seen(&iam_path(TARGET, "generateIdToken")).len(),
        1
    );

    // A service account key as the source works the same way.
    let key_env = TestEnv::new();
    register_test_key(&key_env);
    let sa = key_env.write_json(
        "sa.json",
        &json!({"type": "service_account", "private_key_id": "0123456789abcdef",
            "private_key": fixture("test-sa-key.pem"),
            "client_email": "source@test-project-1.iam.gserviceaccount.com",
            "token_uri": format!("{}/token", key_env.google.base)}),
    );
    let done = key_env.run_with(
        &[
            "print-access-token",
            "--impersonate-service-account",
            TARGET,
        ],
        &[
            (OVERRIDE, key_env.google.base.as_str()),
            ("GOOGLE_APPLICATION_CREDENTIALS", sa.to_str().unwrap()),
        ],
    );
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let iam = key_env
        .google
        .seen(&iam_path(TARGET, "generateAccessToken"));
    assert_eq!(iam.len(), 1);
    assert!(iam[0].headers["authorization"].starts_with("Bearer ya29.sa-"));
}

fn lifetime_is_asked_of_iam_and_the_cache_follows_expire_time() {
    let env = TestEnv::new();
    env.login();
    let path = iam_path(TARGET, "generateAccessToken");
    let expire = std::time::SystemTime::now() + std::time::Duration::from_secs(7200);
    let expire = humantime::format_rfc3339_seconds(expire).to_string();
    env.google.enqueue(
        &path,
        Canned::json(
            200,
            &json!({"accessToken": "ya29.long-lived", "expireTime": expire}).to_string(),
        ),
    );
    let done = acting_as(&env, TARGET, &["--lifetime", "7200", "--format", "json"]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let json = done.json();
    assert_eq!(json["access_token"], "ya29.long-lived");
    assert_eq!(json["expires_at"], expire);
    let body: Value = serde_json::from_str(&env.google.seen(&path)[0].body).unwrap();
    assert_eq!(body["lifetime"], "7200s");
    // Cached until its expireTime: asking for 1 h 50 min of validity needs no new token.
    let again = acting_as(
        &env,
        TARGET,
        &["--lifetime", "7200", "--min-lifetime", "6600"],
    );
    assert_eq!(again.stdout, "ya29.long-lived\n");
    assert_eq!(env.google.seen(&path).len(), 1);

    // IAM's refusal of a lifetime the organization does not allow names the policy.
    env.google.enqueue(
        &path,
        Canned::json(
            400,
            r#"{"error":{"code":400,"message":"Requested lifetime exceeds the maximum allowed.","status":"INVALID_ARGUMENT"}}"#,
        ),
    );
    let refused = acting_as(&env, TARGET, &["--lifetime", "43200"]);
    assert_eq!(refused.code(), 3, "{}", refused.stderr);
    assert_eq!(refused.stdout, "");
    assert!(refused.stderr.contains(POLICY), "{}", refused.stderr);
    assert!(refused.stderr.contains(TARGET), "{}", refused.stderr);

    // Out of range, or without impersonation: usage errors.
    let over = acting_as(&env, TARGET, &["--lifetime", "43201"]);
    assert_eq!(over.code(), 2, "{}", over.stderr);
    let plain = run(&env, &["print-access-token", "--lifetime", "600"]);
    assert_eq!(plain.code(), 2, "{}", plain.stderr);
    assert!(
        plain.stderr.contains("--impersonate-service-account"),
        "{}",
        plain.stderr
    );
    assert_eq!(plain.stdout, "");
}

/// Google's Python google-auth loads the file `login --impersonate-service-account` wrote with
/// `google.auth.load_credentials_from_file` and gets the impersonated token with it.
fn google_auth_loads_the_impersonated_login_file() {
    let env = TestEnv::new();
    let done = login_with(
        &env,
        &["--impersonate-service-account", TARGET],
        &[(OVERRIDE, &env.google.base)],
    );
    assert_eq!(done.code(), 0, "{}", done.stderr);
    // google-auth always sends a user source to Google's token endpoint and IAM calls to
    // Google's host (it reads only the account from the URL): point both at the fake server.
    let script = "import sys, google.auth, google.auth.iam, google.oauth2.credentials\n\
        import google.auth.transport.requests as r\n\
        base = sys.argv[2]\n\
        google.oauth2.credentials._GOOGLE_OAUTH2_TOKEN_ENDPOINT = base + '/token'\n\
        google.auth.iam._IAM_ENDPOINT = base + '/v1/projects/-/serviceAccounts/{}:generateAccessToken'\n\
        c, _ = google.auth.load_credentials_from_file(sys.argv[1], \
        scopes=['https://www.googleapis.com/auth/cloud-platform'])\n\
        c.refresh(r.Request())\n\
        print(type(c).__module__ + '.' + type(c).__name__, c.service_account_email, c.token)\n";
    let stdout = run_google_auth(
        &env,
        &[
            "-c".into(),
            script.into(),
            env.adc_path().into(),
            env.google.base.clone().into(),
        ],
    );
    let stdout = String::from_utf8_lossy(&stdout);
    let words: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(words[0], "google.auth.impersonated_credentials.Credentials");
    assert_eq!(words[1], TARGET);
    assert!(words[2].starts_with("ya29.impersonated-"), "{stdout}");
    assert_eq!(tokens_minted(&env, TARGET), 1);
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        login_with_impersonation_writes_gclouds_file_and_every_command_uses_it,
        login_impersonation_url_is_gclouds_and_google_auth_shape_without_override,
        per_call_impersonation_changes_no_file_and_caches_per_target,
        lifetime_is_asked_of_iam_and_the_cache_follows_expire_time,
        google_auth_loads_the_impersonated_login_file => GoogleAuth,
    ]
}
