//! `gemauth metadata-server`, the real binary on a free loopback port, with a service account key
//! whose tokens come from the fake Google: Google's own clients (google-auth for Python,
//! google-auth-library for Node, gcloud) each get the token gemauth minted with one token
//! request; faults of the token server (slow, 500s, down) never give a client an expired token
//! or a hang; `kill -9` and a restart lose nothing; the security checks; SIGTERM.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;
use crate::runner::{Trial, trials};

const SA_EMAIL: &str = "mds@test-project-1.iam.gserviceaccount.com";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const AUDIENCE: &str = "https://service.example.run.app";

/// A service account key file whose token endpoint is the fake Google's.
fn key_file(env: &TestEnv) -> std::path::PathBuf {
    register_test_key(env);
    env.write_json(
        "sa.json",
        &json!({
            "type": "service_account",
            "project_id": PROJECT_ID,
            "private_key_id": "0123456789abcdef",
            "private_key": fixture("test-sa-key.pem"),
            "client_email": SA_EMAIL,
            "client_id": "1234567890",
            "token_uri": format!("{}/token", env.google.base),
        }),
    )
}

/// A running `gemauth metadata-server`, and the address it listens on.
struct Server {
    run: Option<Running>,
    addr: String,
}

impl Drop for Server {
    /// A test that failed leaves no server behind.
    fn drop(&mut self) {
        if let Some(run) = self.run.take() {
            run.kill();
        }
    }
}

impl Server {
    /// Starts the server on a free loopback port (`--listen 127.0.0.1:0`) and waits until it
    /// has bound it.
    /// Cloud Resource Manager and IAM Credentials are the fake Google's.
    fn start(env: &TestEnv, args: &[&str]) -> Server {
        let mut cmd = env.cmd();
        cmd.env(
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS",
            &env.google.base,
        );
        cmd.args(["-vv", "metadata-server", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("GEMAUTH_RESOURCE_MANAGER_URL", &env.google.base);
        let mut run = Running::spawn(cmd, env.path("browser-args"));
        assert!(
            run.wait_stderr_or_exit("listening on http://"),
            "the server did not start: {}",
            run.stderr_so_far()
        );
        let stderr = run.stderr_so_far();
        let addr = stderr
            .split("listening on http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("the address")
            .to_string();
        Server {
            run: Some(run),
            addr,
        }
    }

    fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// GET `path` with the flavor header and any `extra` header lines.
    fn get(&self, path: &str, extra: &str) -> Page {
        raw_request(
            "127.0.0.1",
            self.port(),
            &format!(
                "GET {path} HTTP/1.1\r\nHost: {}\r\nMetadata-Flavor: Google\r\n{extra}Connection: close\r\n\r\n",
                self.addr
            ),
        )
    }

    /// SIGTERM, then the exit.
    fn terminate(mut self) -> Finished {
        let run = self.run.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &run.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        run.finish()
    }

    fn stderr(&self) -> String {
        self.run.as_ref().unwrap().stderr_so_far()
    }

    /// SIGKILL.
    fn kill_9(mut self) {
        self.run.take().unwrap().kill();
    }

    /// The environment Google's clients use to find it, isolated from the test's machine.
    fn client(&self, env: &TestEnv, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", env.path("home"))
            .env("CLOUDSDK_CONFIG", env.path("client-gcloud"))
            .env("GCE_METADATA_HOST", &self.addr)
            .env("GCE_METADATA_IP", &self.addr)
            .env("GCE_METADATA_ROOT", &self.addr)
            .env("EXPECT_EMAIL", SA_EMAIL)
            .env("EXPECT_PROJECT", PROJECT_ID)
            .env("EXPECT_TOKEN_PREFIX", "ya29.sa-");
        cmd
    }
}

/// The access token gemauth itself has for the key (from the cache the server filled).
fn gemauth_token(env: &TestEnv, key: &std::path::Path) -> String {
    let done = env.run(&[
        "print-access-token",
        "--credential-file",
        key.to_str().unwrap(),
    ]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    done.stdout.trim().to_string()
}

/// The access-token grants the fake Google saw (the ID-token grants name a target_audience).
fn access_grants(env: &TestEnv) -> usize {
    env.google
        .seen_grants(JWT_BEARER)
        .iter()
        .filter(|s| {
            let assertion = &s.form["assertion"];
            jwt_claims(assertion).get("scope").is_some()
        })
        .count()
}

/// The ID-token grants for the test's audience (gcloud also asks one for its own client ID).
fn id_grants(env: &TestEnv) -> usize {
    grant_scopes(env)
        .iter()
        .filter(|claims| claims["target_audience"] == AUDIENCE)
        .count()
}

/// The `token=` line a client script prints.
fn printed_token(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("token="))
        .unwrap_or_else(|| panic!("no token line in {stdout}"))
        .to_string()
}

fn google_auth_python_gets_gemauths_token() {
    let env = TestEnv::new();
    let key = key_file(&env);
    let server = Server::start(&env, &["--credential-file", key.to_str().unwrap()]);
    let script = crate::runner::interop_dir().join("metadata_server/google_auth_check.py");
    let output = server
        .client(&env, &crate::runner::python())
        .arg(script)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "google-auth: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = printed_token(&stdout);
    assert_eq!(token, gemauth_token(&env, &key));
    // The default token and the one of explicit scopes; the ID token once.
    let scopes: Vec<String> = env
        .google
        .seen_grants(JWT_BEARER)
        .iter()
        .filter_map(|s| {
            jwt_claims(&s.form["assertion"])
                .get("scope")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    assert_eq!(
        scopes,
        [
            "https://www.googleapis.com/auth/cloud-platform",
            "https://www.googleapis.com/auth/devstorage.read_only"
        ]
    );
    assert_eq!(id_grants(&env), 1);
    let done = server.terminate();
    assert_eq!(done.code(), 0, "{}", done.stderr);
}

fn google_auth_library_node_gets_gemauths_token() {
    let env = TestEnv::new();
    let key = key_file(&env);
    let server = Server::start(&env, &["--credential-file", key.to_str().unwrap()]);
    let script = crate::runner::interop_dir().join("metadata_server/google_auth_check.mjs");
    let output = server.client(&env, "node").arg(script).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "google-auth-library: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(printed_token(&stdout), gemauth_token(&env, &key));
    assert_eq!(
        access_grants(&env),
        1,
        "one token request in total: {:?}\n{}",
        grant_scopes(&env),
        server.stderr()
    );
    assert_eq!(id_grants(&env), 1);
    server.terminate();
}

fn grant_scopes(env: &TestEnv) -> Vec<Value> {
    env.google
        .seen_grants(JWT_BEARER)
        .iter()
        .map(|s| jwt_claims(&s.form["assertion"]))
        .collect()
}

fn gcloud_gets_gemauths_token() {
    let env = TestEnv::new();
    let key = key_file(&env);
    // gcloud detects a metadata server by its numeric project ID: gemauth looks it up in Cloud
    // Resource Manager (here the fake, once).
    env.google.enqueue(
        &format!("/v1/projects/{PROJECT_ID}"),
        Canned::json(
            200,
            &json!({"projectId": PROJECT_ID, "projectNumber": "123456789012"}).to_string(),
        ),
    );
    let server = Server::start(&env, &["--credential-file", key.to_str().unwrap()]);
    assert!(!server.stderr().contains("numeric-project-id is unknown"));
    let crm = env.google.seen(&format!("/v1/projects/{PROJECT_ID}"));
    assert_eq!(crm.len(), 1);
    assert!(crm[0].headers["authorization"].starts_with("Bearer ya29.sa-"));
    let page = server.get("/computeMetadata/v1/project/numeric-project-id", "");
    assert_eq!((page.status, page.body.as_str()), (200, "123456789012"));

    let gcloud = gcloud_program();
    let run = |args: &[&str]| {
        let output = server.client(&env, &gcloud).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "gcloud {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    assert_eq!(run(&["auth", "list", "--format=value(account)"]), SA_EMAIL);
    assert_eq!(
        run(&["auth", "print-access-token"]),
        gemauth_token(&env, &key)
    );
    let id = run(&[
        "auth",
        "print-identity-token",
        &format!("--audiences={AUDIENCE}"),
    ]);
    assert_eq!(jwt_claims(&id)["aud"], AUDIENCE);
    assert_eq!(
        access_grants(&env),
        1,
        "one token request in total: {:?}\n{}",
        grant_scopes(&env),
        server.stderr()
    );
    assert_eq!(
        id_grants(&env),
        1,
        "{:?}\n{}",
        grant_scopes(&env),
        server.stderr()
    );
    server.terminate();
}

/// gcloud on PATH, else google-cloud-cli's.
fn gcloud_program() -> String {
    let packaged = "/usr/lib/google-cloud-sdk/bin/gcloud";
    if std::path::Path::new(packaged).is_file() {
        packaged.into()
    } else {
        "gcloud".into()
    }
}

/// The token a client gets, and how long it has left by the answer's own `expires_in`.
fn token_answer(page: &Page) -> (String, u64) {
    let value: Value = serde_json::from_str(&page.body).unwrap();
    (
        value["access_token"].as_str().unwrap().to_string(),
        value["expires_in"].as_u64().unwrap(),
    )
}

const TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

fn a_failing_token_server_never_gives_an_expired_token_or_a_hang() {
    let env = TestEnv::new();
    // Short tokens, so that the run crosses an expiry.
    env.google.with(|b| b.expires_in = 16);
    let key = key_file(&env);
    let server = Server::start(&env, &["--credential-file", key.to_str().unwrap()]);
    let first = server.get(TOKEN_PATH, "");
    assert_eq!(first.status, 200, "{}", first.body);
    let (token, _) = token_answer(&first);
    let expires = Instant::now() + Duration::from_secs(16);
    // The token server turns slow, then answers 500.
    env.google.enqueue(
        "/token",
        Canned::json(500, r#"{"error":"internal_failure"}"#).delayed(Duration::from_secs(8)),
    );
    for _ in 0..200 {
        env.google.enqueue(
            "/token",
            Canned::json(500, r#"{"error":"internal_failure"}"#),
        );
    }
    let mut served_503 = false;
    while Instant::now() < expires + Duration::from_secs(3) {
        let asked = Instant::now();
        let page = server.get(TOKEN_PATH, "");
        let took = asked.elapsed();
        assert!(
            took < Duration::from_secs(7),
            "a request took {took:?} (status {})",
            page.status
        );
        match page.status {
            200 => {
                let (served, left) = token_answer(&page);
                assert_eq!(served, token, "no new token can have been minted");
                assert!(
                    Instant::now() + Duration::from_secs(left) <= expires + Duration::from_secs(1),
                    "expires_in {left} is past the token's expiry"
                );
                assert!(Instant::now() < expires, "an expired token was served");
            }
            503 => {
                // Only when the token is (nearly) gone: never while a usable one is cached.
                assert!(
                    Instant::now() + Duration::from_secs(6) >= expires,
                    "503 while the token was still good: {}",
                    page.body
                );
                served_503 = true;
            }
            other => panic!("status {other}: {}", page.body),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(served_503, "the expired token was never replaced by a 503");

    // The token server comes back: clients get a new token without a restart.
    env.google.with(|b| {
        b.canned.clear();
        b.expires_in = 3600;
    });
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let page = server.get(TOKEN_PATH, "");
        if page.status == 200 {
            let (served, left) = token_answer(&page);
            assert_ne!(served, token);
            assert!(left > 3000);
            break;
        }
        assert!(Instant::now() < deadline, "never recovered: {}", page.body);
        std::thread::sleep(Duration::from_millis(500));
    }

    // The token server is down (the key now names a closed port): the cached token is served.
    let closed = ClosedPort::new();
    let mut file = read_json(&key);
    file["token_uri"] = format!("http://127.0.0.1:{}/token", closed.port()).into();
    write_private(&key, &serde_json::to_vec(&file).unwrap());
    let asked = Instant::now();
    let page = server.get(TOKEN_PATH, "");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(asked.elapsed() < Duration::from_secs(2));
    let done = server.terminate();
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(
        !done.stderr.contains("ya29."),
        "no token in the log: {}",
        done.stderr
    );
}

fn kill_9_and_a_restart_lose_nothing() {
    let env = TestEnv::new();
    let key = key_file(&env);
    let server = Server::start(&env, &["--credential-file", key.to_str().unwrap()]);
    let (token, _) = token_answer(&server.get(TOKEN_PATH, ""));
    server.kill_9();
    let server = Server::start(&env, &["--credential-file", key.to_str().unwrap()]);
    let page = server.get(TOKEN_PATH, "");
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        token_answer(&page).0,
        token,
        "the cached token after a restart"
    );
    assert_eq!(access_grants(&env), 1, "no new token request");
    server.terminate();
}

fn it_refuses_what_gce_refuses_and_warns_off_loopback() {
    let env = TestEnv::new();
    let key = key_file(&env);
    let server = Server::start(&env, &["--credential-file", key.to_str().unwrap()]);
    let stderr = server.stderr();
    assert!(!stderr.contains("not on loopback"), "{stderr}");
    // No project number from Cloud Resource Manager (the fake answers 404): said at start.
    assert!(
        stderr.contains("warning: project/numeric-project-id is unknown"),
        "{stderr}"
    );
    let no_flavor = raw_request(
        "127.0.0.1",
        server.port(),
        &format!(
            "GET {TOKEN_PATH} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            server.addr
        ),
    );
    assert_eq!(no_flavor.status, 403);
    assert!(!no_flavor.body.contains("ya29."));
    let forwarded = server.get(TOKEN_PATH, "X-Forwarded-For: 10.0.0.1\r\n");
    assert_eq!(forwarded.status, 403);
    assert!(!forwarded.body.contains("ya29."));
    let detection = server.get("/", "");
    assert_eq!(detection.status, 200);
    assert_eq!(detection.headers["metadata-flavor"], "Google");
    assert_eq!(
        server.get("/computeMetadata/v1/nothing-here", "").status,
        404
    );
    let email = server.get(
        "/computeMetadata/v1/instance/service-accounts/default/email",
        "",
    );
    assert_eq!((email.status, email.body.as_str()), (200, SA_EMAIL));
    let done = server.terminate();
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(done.stderr.contains("stopped"), "{}", done.stderr);
    assert_eq!(done.stdout, "");

    // Any other address only when named, with the warning.
    let mut cmd = env.cmd();
    cmd.args([
        "metadata-server",
        "--listen",
        "0.0.0.0:0",
        "--credential-file",
        key.to_str().unwrap(),
    ]);
    let run = Running::spawn(cmd, env.path("browser-args"));
    let stderr = run.wait_stderr("not on loopback");
    assert!(
        stderr.contains("warning: listening on 0.0.0.0:"),
        "{stderr}"
    );
    let done = Server {
        run: Some(run),
        addr: String::new(),
    }
    .terminate();
    assert_eq!(done.code(), 0, "{}", done.stderr);
}

/// The first 200 or 503 the token endpoint answers within `secs`, polling.
fn poll_until(server: &Server, status: u16, secs: u64) -> Page {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let page = server.get(TOKEN_PATH, "");
        if page.status == status {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "no {status} within {secs} s; last {}: {}\n{}",
            page.status,
            page.body,
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn a_revoke_and_a_new_login_are_picked_up_without_a_restart() {
    let env = TestEnv::new();
    env.google.with(|b| b.expires_in = 12);
    let file = env.path("adc.json");
    env.write_credentials(&file, "1//first");
    let server = Server::start(&env, &["--credential-file", file.to_str().unwrap()]);
    let (first, _) = token_answer(&poll_until(&server, 200, 5));
    // A user login has no ID token for another audience: 400, saying what serves one.
    let id = server.get(
        &format!(
            "/computeMetadata/v1/instance/service-accounts/default/identity?audience={AUDIENCE}"
        ),
        "",
    );
    assert_eq!(id.status, 400, "{}", id.body);
    assert!(
        id.body.contains("--impersonate-service-account"),
        "{}",
        id.body
    );

    // `gemauth revoke` removes the file: the next refresh fails for good, and the token is no
    // longer served (503 with the reason), well before it would have expired.
    let done = env.run(&["revoke", "--credential-file", file.to_str().unwrap()]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let refused = poll_until(&server, 503, 15);
    assert!(!refused.body.contains("ya29."), "{}", refused.body);

    // A new login: served without a restart, from the new refresh token.
    env.write_credentials(&file, "1//second");
    let (second, _) = token_answer(&poll_until(&server, 200, 40));
    assert_ne!(second, first);
    let grants = env.google.seen_grants("refresh_token");
    assert_eq!(grants.last().unwrap().form["refresh_token"], "1//second");
    let done = server.terminate();
    assert_eq!(done.code(), 0, "{}", done.stderr);
}

fn impersonation_acts_as_the_service_account_with_the_login() {
    let env = TestEnv::new();
    // The login's refresh token rotates: the new one goes into the login file's own field.
    env.google.with(|b| b.rotate = true);
    let file = env.path("adc.json");
    env.write_credentials(&file, "1//first");
    let target = "robot@test-project-1.iam.gserviceaccount.com";
    let server = Server::start(
        &env,
        &[
            "--credential-file",
            file.to_str().unwrap(),
            "--impersonate-service-account",
            target,
        ],
    );
    let page = server.get(TOKEN_PATH, "");
    assert_eq!(page.status, 200, "{}", page.body);
    let (token, _) = token_answer(&page);
    assert!(token.starts_with("ya29.impersonated-"), "{token}");
    let email = server.get(
        "/computeMetadata/v1/instance/service-accounts/default/email",
        "",
    );
    assert_eq!((email.status, email.body.as_str()), (200, target));
    let id = server.get(
        &format!(
            "/computeMetadata/v1/instance/service-accounts/default/identity?audience={AUDIENCE}"
        ),
        "",
    );
    assert_eq!(id.status, 200, "{}", id.body);
    let claims = jwt_claims(&id.body);
    assert_eq!(
        (claims["aud"].as_str(), claims["email"].as_str()),
        (Some(AUDIENCE), Some(target))
    );
    let iam = env.google.seen(&format!(
        "/v1/projects/-/serviceAccounts/{target}:generateAccessToken"
    ));
    assert_eq!(iam.len(), 1, "one impersonated token request");
    // The rotated refresh token is in the file, in its own field; the rest is kept.
    let saved = read_json(&file);
    assert_eq!(saved["type"], "authorized_user");
    assert!(saved.get("source_credentials").is_none(), "{saved}");
    assert_ne!(saved["refresh_token"], "1//first");
    assert!(
        env.google
            .refresh_token_valid(saved["refresh_token"].as_str().unwrap())
    );
    assert_eq!(saved["custom_field"]["kept"], true);
    server.terminate();

    // Not a service account email: a usage error before anything is sent.
    let requests = env.google.seen("/token").len();
    let done = env.run(&[
        "metadata-server",
        "--credential-file",
        file.to_str().unwrap(),
        "--impersonate-service-account",
        "not an email",
    ]);
    assert_eq!(done.code(), 2, "{}", done.stderr);
    assert!(
        done.stderr
            .contains("--impersonate-service-account takes service account emails"),
        "{}",
        done.stderr
    );
    assert_eq!(env.google.seen("/token").len(), requests);
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        google_auth_python_gets_gemauths_token => GoogleAuth,
        google_auth_library_node_gets_gemauths_token => GoogleAuthLibrary,
        gcloud_gets_gemauths_token => Gcloud,
        a_failing_token_server_never_gives_an_expired_token_or_a_hang,
        kill_9_and_a_restart_lose_nothing,
        a_revoke_and_a_new_login_are_picked_up_without_a_restart,
        it_refuses_what_gce_refuses_and_warns_off_loopback,
        impersonation_acts_as_the_service_account_with_the_login,
    ]
}
