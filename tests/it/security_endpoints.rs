//! Secrets go only to Google (issue 20, section 1): an endpoint named by a file is used only when
//! it is an https host under `googleapis.com` (or under the credential's `universe_domain`),
//! `accounts.google.com` for authorization, a loopback address, or a host listed exactly in
//! `GEMAUTH_TRUSTED_HOSTS`. Anything else is refused before any network traffic, with exit 3 and an
//! error that names the file, the field and the host.

use std::path::Path;

use serde_json::{Value, json};

use crate::harness::*;
use crate::runner::{Trial, trials};

const EVIL_TOKEN_URI: &str = "https://oauth2.evil.example/token";

/// Asserts a refusal by the endpoint rule: exit 3, nothing on stdout, the file, field and host on
/// the `error:` line, the opt-in in the hint.
fn assert_refused(done: &Finished, file: &Path, field: &str, host: &str) {
    assert_eq!(done.code(), 3, "{}", done.stderr);
    assert_eq!(done.stdout, "");
    let first = done.stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("error: "), "{}", done.stderr);
    for part in [&file.display().to_string(), field, host] {
        assert!(
            first.contains(part),
            "{part:?} not named in: {}",
            done.stderr
        );
    }
    assert!(
        done.stderr.contains("hint: ") && done.stderr.contains("GEMAUTH_TRUSTED_HOSTS"),
        "{}",
        done.stderr
    );
}

/// A loopback proxy that refuses every connection: a request that gets past the endpoint rule
/// fails there, without leaving the machine.
fn closed_proxy() -> (ClosedPort, String) {
    let port = ClosedPort::new();
    let url = format!("http://127.0.0.1:{}", port.port());
    (port, url)
}

/// `print-access-token --credential-file FILE` through the closed `proxy` (and `more`
/// environment): the endpoint rule let the request out, so it fails with exit 1 at the proxy.
fn assert_reaches_the_proxy(
    env: &TestEnv,
    file: &Path,
    proxy: &str,
    more: &[(&str, &str)],
) -> Finished {
    let mut vars = vec![("HTTPS_PROXY", proxy)];
    vars.extend_from_slice(more);
    let done = env.run_with(
        &[
            "print-access-token",
            "--credential-file",
            file.to_str().unwrap(),
        ],
        &vars,
    );
    assert_eq!(done.code(), 1, "{}", done.stderr);
    assert!(done.stderr.contains("could not reach"), "{}", done.stderr);
    done
}

fn user_file(env: &TestEnv, edit: impl FnOnce(&mut Value)) -> std::path::PathBuf {
    env.google.add_refresh_token("1//user");
    let mut value = json!({
        "type": "authorized_user",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": "1//user",
        "token_uri": format!("{}/token", env.google.base),
        "revoke_uri": format!("{}/revoke", env.google.base),
    });
    edit(&mut value);
    env.write_json("user.json", &value)
}

fn print_token(env: &TestEnv, file: &Path) -> Finished {
    env.run(&[
        "print-access-token",
        "--credential-file",
        file.to_str().unwrap(),
    ])
}

fn login_refuses_a_client_file_that_sends_the_code_elsewhere() {
    for (field, url, host) in [
        ("token_uri", EVIL_TOKEN_URI, "oauth2.evil.example"),
        (
            "auth_uri",
            "https://accounts.evil.example/o/oauth2/auth",
            "accounts.evil.example",
        ),
        (
            "revoke_uri",
            "https://oauth2.googleapis.com.evil.example/revoke",
            "oauth2.googleapis.com.evil.example",
        ),
    ] {
        let env = TestEnv::new();
        let mut client = env.client_json();
        client["installed"][field] = json!(url);
        let path = env.write_client(&client);
        let done = env.run(&["login", "--client-id-file", path.to_str().unwrap()]);
        assert_refused(&done, &path, field, host);
        assert!(
            !env.path("browser-args").exists(),
            "the browser was opened for {field}"
        );
        assert!(!env.adc_path().exists());
        assert!(env.google.seen("/token").is_empty());
    }
}

fn a_user_file_whose_endpoints_are_not_google_is_refused() {
    let env = TestEnv::new();
    let file = user_file(&env, |v| v["token_uri"] = json!(EVIL_TOKEN_URI));
    assert_refused(
        &print_token(&env, &file),
        &file,
        "token_uri",
        "oauth2.evil.example",
    );
    let done = env.run(&["revoke", "--credential-file", file.to_str().unwrap()]);
    assert_refused(&done, &file, "token_uri", "oauth2.evil.example");

    let file = user_file(&env, |v| {
        v["revoke_uri"] = json!("https://evilgoogleapis.com/revoke")
    });
    let after_revoke_uri_edit = std::fs::read(&file).unwrap();
    let done = env.run(&["revoke", "--credential-file", file.to_str().unwrap()]);
    assert_refused(&done, &file, "revoke_uri", "evilgoogleapis.com");
    assert!(env.google.seen("/token").is_empty());
    assert!(env.google.seen("/revoke").is_empty());
    // Refused before anything: the files are as they were.
    assert_eq!(std::fs::read(&file).unwrap(), after_revoke_uri_edit);
}

fn an_impersonation_url_elsewhere_gets_no_token_and_the_source_is_not_refreshed() {
    let env = TestEnv::new();
    env.google.add_refresh_token("1//source");
    let file = env.impersonated_file("https://iamcredentials.evil.example/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateAccessToken", json!({}));
    assert_refused(
        &print_token(&env, &file),
        &file,
        "service_account_impersonation_url",
        "iamcredentials.evil.example",
    );
    assert!(
        env.google.seen("/token").is_empty(),
        "the source was refreshed"
    );
}

fn a_service_account_token_uri_elsewhere_gets_no_assertion() {
    let env = TestEnv::new();
    let file = env.write_json(
        "sa.json",
        &json!({
            "type": "service_account",
            "client_email": "sa@test-project-1.iam.gserviceaccount.com",
            "private_key": fixture("test-sa-key.pem"),
            "token_uri": "https://oauth2.evil.example/token",
        }),
    );
    assert_refused(
        &print_token(&env, &file),
        &file,
        "token_uri",
        "oauth2.evil.example",
    );
}

fn external(env: &TestEnv) -> Value {
    std::fs::write(env.path("subject.txt"), "subject-token-123").unwrap();
    json!({
        "type": "external_account",
        "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("{}/sts", env.google.base),
        "credential_source": {"file": env.path("subject.txt")},
    })
}

fn an_external_account_sends_its_subject_token_only_to_google() {
    let env = TestEnv::new();
    let mut config = external(&env);
    config["token_url"] = json!("https://sts.evil.example/v1/token");
    let file = env.write_json("ext.json", &config);
    assert_refused(
        &print_token(&env, &file),
        &file,
        "token_url",
        "sts.evil.example",
    );

    let mut config = external(&env);
    config["service_account_impersonation_url"] = json!(
        "https://evil.example/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateAccessToken"
    );
    let file = env.write_json("ext-imp.json", &config);
    assert_refused(
        &print_token(&env, &file),
        &file,
        "service_account_impersonation_url",
        "evil.example",
    );
    assert!(env.google.seen("/sts").is_empty());
}

fn a_subject_token_may_be_read_from_any_host() {
    // credential_source.url is where a subject token is read (Azure's instance metadata, an
    // identity provider), not a destination of secrets: it passes the rule and fails only at the
    // (closed) proxy.
    let env = TestEnv::new();
    let mut config = external(&env);
    config["credential_source"] = json!({"url": "https://identity.example.net/token"});
    let file = env.write_json("ext.json", &config);
    let (_port, proxy) = closed_proxy();
    let done = assert_reaches_the_proxy(&env, &file, &proxy, &[]);
    assert!(
        !done.stderr.contains("GEMAUTH_TRUSTED_HOSTS"),
        "{}",
        done.stderr
    );
}

fn hosts_listed_in_gemauth_trusted_hosts_and_the_universe_domain_are_allowed() {
    let env = TestEnv::new();
    let (_port, proxy) = closed_proxy();
    let file = user_file(&env, |v| v["token_uri"] = json!(EVIL_TOKEN_URI));
    let path = file.to_str().unwrap();
    // Listed exactly (with others, spaces allowed): the request goes out (to the closed proxy).
    assert_reaches_the_proxy(
        &env,
        &file,
        &proxy,
        &[(
            "GEMAUTH_TRUSTED_HOSTS",
            "proxy.corp.example, oauth2.evil.example",
        )],
    );
    // A listed parent domain is not a listed host.
    let done = env.run_with(
        &["print-access-token", "--credential-file", path],
        &[
            ("HTTPS_PROXY", proxy.as_str()),
            ("GEMAUTH_TRUSTED_HOSTS", "evil.example"),
        ],
    );
    assert_refused(&done, &file, "token_uri", "oauth2.evil.example");

    // A service account of another universe reaches that universe's token endpoint.
    let sa = env.write_json(
        "sa.json",
        &json!({
            "type": "service_account",
            "client_email": "sa@p.iam.gserviceaccount.com",
            "private_key": fixture("test-sa-key.pem"),
            "token_uri": "https://oauth2.universe.example/token",
            "universe_domain": "universe.example",
        }),
    );
    assert_reaches_the_proxy(&env, &sa, &proxy, &[]);
}

fn googles_own_endpoints_pass_the_rule() {
    let env = TestEnv::new();
    let (_port, proxy) = closed_proxy();
    let file = user_file(&env, |v| {
        v["token_uri"] = json!("https://oauth2.googleapis.com/token");
        v["revoke_uri"] = json!("https://oauth2.googleapis.com/revoke");
    });
    assert_reaches_the_proxy(&env, &file, &proxy, &[]);
}

fn status_names_every_endpoint_that_is_not_googles_default() {
    let env = TestEnv::new();
    let file = user_file(&env, |_| {});
    let path = file.to_str().unwrap();
    let done = env.run(&["status", "--credential-file", path]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let token_uri = format!("{}/token", env.google.base);
    let revoke_uri = format!("{}/revoke", env.google.base);
    for url in [&token_uri, &revoke_uri] {
        assert!(
            done.stdout
                .lines()
                .any(|l| l.contains(url.as_str()) && l.contains("not Google's")),
            "{}",
            done.stdout
        );
    }
    let done = env.run(&["status", "--format", "json", "--credential-file", path]);
    let report: Value = serde_json::from_str(&done.stdout).unwrap();
    assert_eq!(
        report["custom_endpoints"],
        json!({"token_uri": token_uri, "revoke_uri": revoke_uri})
    );

    let google = user_file(&env, |v| {
        v["token_uri"] = json!("https://oauth2.googleapis.com/token");
        v.as_object_mut().unwrap().remove("revoke_uri");
    });
    let done = env.run(&[
        "status",
        "--format",
        "json",
        "--credential-file",
        google.to_str().unwrap(),
    ]);
    let report: Value = serde_json::from_str(&done.stdout).unwrap();
    assert_eq!(report["custom_endpoints"], json!({}));
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        login_refuses_a_client_file_that_sends_the_code_elsewhere,
        a_user_file_whose_endpoints_are_not_google_is_refused,
        an_impersonation_url_elsewhere_gets_no_token_and_the_source_is_not_refreshed,
        a_service_account_token_uri_elsewhere_gets_no_assertion,
        an_external_account_sends_its_subject_token_only_to_google,
        a_subject_token_may_be_read_from_any_host,
        hosts_listed_in_gemauth_trusted_hosts_and_the_universe_domain_are_allowed,
        googles_own_endpoints_pass_the_rule,
        status_names_every_endpoint_that_is_not_googles_default,
    ]
}
