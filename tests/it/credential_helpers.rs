//! The credential helpers for Docker, Git and kubectl: Docker's protocol on stdin/stdout (also
//! under the name `docker-credential-gemauth`) and `configure-docker`'s edits of config.json;
//! the real `git` cloning from a local server that demands Basic auth; the real `kubectl`
//! talking to a local API server over https; and `status` naming the configured helpers.
//!
//! git and kubectl are found on PATH (kubectl also in the Google Cloud SDK's bin directory, or
//! `GEMAUTH_TEST_KUBECTL`). A test whose tool is missing is ignored when the tests run, with the
//! reason (runner.rs); one that runs and does not find it fails.
#![cfg(unix)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

use crate::harness::*;
use crate::runner::{Trial, trials};
use base64::Engine as _;

/// Variables of the user's own Docker, Git and kubectl set-up that must not reach the tests.
const FOREIGN_VARS: [&str; 12] = [
    "DOCKER_CONFIG",
    "KUBECONFIG",
    "KUBERNETES_EXEC_INFO",
    "GIT_ASKPASS",
    "SSH_ASKPASS",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_SYSTEM",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "XDG_CONFIG_DIRS",
];

/// `gemauth ARGS` in the test's environment, with none of the user's tool settings.
fn gemauth(env: &TestEnv) -> Command {
    let mut cmd = env.cmd();
    for var in FOREIGN_VARS {
        cmd.env_remove(var);
    }
    // Outside any repository, so that git reads only the test's own configuration.
    cmd.current_dir(env.path("home"));
    cmd
}

/// Checks a helper's answer when the grant was revoked: exit code 3, nothing on standard output,
/// Google's `invalid_grant` on standard error.
fn assert_grant_rejected(done: &Finished) {
    assert_eq!(done.code(), 3, "{}", done.stderr);
    assert_eq!(done.stdout, "");
    assert!(done.stderr.contains("invalid_grant"), "{}", done.stderr);
}

/// `program` in the test's environment, with none of the user's tool settings.
fn isolated(env: &TestEnv, program: &Path) -> Command {
    let mut cmd = Command::new(program);
    env.isolate(&mut cmd);
    for var in FOREIGN_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs a command with `input` on stdin; returns its exit status and output.
fn run_with_stdin(mut cmd: Command, input: &str) -> Finished {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Finished {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn helper(env: &TestEnv, args: &[&str], input: &str) -> Finished {
    let mut cmd = gemauth(env);
    cmd.args(args);
    run_with_stdin(cmd, input)
}

/// Signs in (by hand-written file) and returns the token `print-access-token` then caches.
fn cached_token(env: &TestEnv) -> String {
    env.write_credentials(&env.adc_path(), "1//helper-grant");
    let done = env.run(&["print-access-token"]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    done.stdout.trim().to_string()
}

/// A credential whose grant the server has revoked: every refresh gets invalid_grant.
fn revoked_credentials(env: &TestEnv) {
    let path = env.adc_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    write_private(
        &path,
        env.user_source("1//revoked-grant").to_string().as_bytes(),
    );
}

/// A tool the interoperability tests run (the runner found it): its path.
fn interop_tool(name: &str, extra: &[PathBuf]) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join(name));
    on_path
        .chain(extra.iter().cloned())
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed (`bash .ci/run` installs it)"))
}

// ------------------------------------------------------------------------------------------
// Docker
// ------------------------------------------------------------------------------------------

fn docker_dir(env: &TestEnv) -> PathBuf {
    env.path("home/.docker")
}

/// Docker's answer, keys in the order Docker's own helpers print them.
fn docker_answer(registry: &str, token: &str) -> String {
    format!(
        "{{\"ServerURL\":{},\"Username\":\"oauth2accesstoken\",\"Secret\":{}}}\n",
        serde_json::Value::from(registry),
        serde_json::Value::from(token)
    )
}

fn docker_get_hands_out_the_cached_token_for_google_registries() {
    let env = TestEnv::new();
    let token = cached_token(&env);
    let refreshes = env.google.seen("/token").len();
    for registry in [
        "https://us-central1-docker.pkg.dev",
        "gcr.io",
        "docker.europe-west1.rep.pkg.dev",
        "EU.GCR.IO",
    ] {
        let done = helper(
            &env,
            &["docker-credential", "get"],
            &format!("{registry}\n"),
        );
        assert_eq!(done.code(), 0, "{}", done.stderr);
        assert_eq!(done.stderr, "");
        assert_eq!(done.stdout, docker_answer(registry, &token));
    }
    assert_eq!(
        env.google.seen("/token").len(),
        refreshes,
        "served from the cache"
    );
}

fn the_binary_is_the_docker_helper_under_the_name_docker_credential_gemauth() {
    let env = TestEnv::new();
    let token = cached_token(&env);
    let dir = env.path("bin");
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("docker-credential-gemauth");
    std::os::unix::fs::symlink(gemauth_binary(), &link).unwrap();
    let mut cmd = Command::new(&link);
    env.isolate(&mut cmd).arg("get");
    let done = run_with_stdin(cmd, "us-docker.pkg.dev");
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, docker_answer("us-docker.pkg.dev", &token));

    let mut cmd = Command::new(&link);
    env.isolate(&mut cmd).arg("version");
    let done = run_with_stdin(cmd, "");
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(
        done.stdout
            .starts_with("docker-credential-gemauth (gemauth) "),
        "{}",
        done.stdout
    );

    // Under its own name, or any other, the binary is gemauth: `get` is not a command.
    let other = dir.join("some-other-name");
    std::os::unix::fs::symlink(gemauth_binary(), &other).unwrap();
    let mut cmd = Command::new(&other);
    env.isolate(&mut cmd).arg("get");
    let done = run_with_stdin(cmd, "gcr.io");
    assert_eq!(done.code(), 2, "{}", done.stderr);
    assert_eq!(done.stdout, "");
}

fn docker_gets_no_token_for_other_registries() {
    let env = TestEnv::new();
    env.write_credentials(&env.adc_path(), "1//helper-grant");
    let docker = docker_dir(&env);
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        r#"{"credHelpers":{"registry.example.com":"gemauth","other.example.com":"ecr-login","https://mirror.example.com":"gemauth"}}"#,
    )
    .unwrap();
    for registry in [
        "https://index.docker.io/v1/",
        "gcr.io.evil.example",
        "other.example.com",
        "registry.example.com:5000",
        // A Google registry, but over plain http.
        "http://gcr.io",
    ] {
        let done = helper(&env, &["docker-credential", "get"], registry);
        assert_eq!(done.code(), 1, "{registry}: {}", done.stderr);
        assert_eq!(done.stdout, "credentials not found in native keychain\n");
        assert_eq!(done.stderr, "");
    }
    assert!(env.google.seen("/token").is_empty(), "no token obtained");

    // A registry the user named for gemauth in credHelpers gets one.
    for registry in ["registry.example.com", "https://mirror.example.com"] {
        let done = helper(&env, &["docker-credential", "get"], registry);
        assert_eq!(done.code(), 0, "{}", done.stderr);
        assert_eq!(done.stdout, docker_answer(registry, "ya29.access-1"));
    }
}

fn docker_list_store_and_erase() {
    let env = TestEnv::new();
    let none = helper(&env, &["docker-credential", "list"], "");
    assert_eq!(none.code(), 0, "{}", none.stderr);
    assert_eq!(none.stdout, "{}\n");

    let docker = docker_dir(&env);
    std::fs::create_dir_all(&docker).unwrap();
    let config = br#"{"credHelpers":{"gcr.io":"gemauth","https://us-docker.pkg.dev":"gemauth","quay.io":"other"}}"#;
    std::fs::write(docker.join("config.json"), config).unwrap();
    let list = helper(&env, &["docker-credential", "list"], "");
    assert_eq!(list.code(), 0, "{}", list.stderr);
    assert_eq!(
        list.stdout,
        "{\"https://gcr.io\":\"oauth2accesstoken\",\"https://us-docker.pkg.dev\":\"oauth2accesstoken\"}\n"
    );

    let store = helper(
        &env,
        &["docker-credential", "store"],
        r#"{"ServerURL":"gcr.io","Username":"oauth2accesstoken","Secret":"ya29.x"}"#,
    );
    assert_eq!(
        (store.code(), store.stdout.as_str()),
        (0, ""),
        "{}",
        store.stderr
    );
    let erase = helper(&env, &["docker-credential", "erase"], "gcr.io\n");
    assert_eq!(
        (erase.code(), erase.stdout.as_str()),
        (0, ""),
        "{}",
        erase.stderr
    );
    assert_eq!(std::fs::read(docker.join("config.json")).unwrap(), config);
    assert_eq!(std::fs::read_dir(&docker).unwrap().count(), 1);
    assert!(env.cached_tokens().is_empty());
}

fn docker_errors_go_to_stderr_with_a_non_zero_exit() {
    let env = TestEnv::new();
    let missing = helper(&env, &["docker-credential", "get"], "gcr.io");
    assert_eq!(missing.code(), 3, "{}", missing.stderr);
    assert_eq!(missing.stdout, "");
    assert!(missing.stderr.contains("error: no credentials found"));
    assert!(missing.stderr.contains("hint: run `gemauth login"));

    revoked_credentials(&env);
    let revoked = helper(&env, &["docker-credential", "get"], "gcr.io");
    assert_grant_rejected(&revoked);

    // A server URL that is not a registry host gets Docker's "not found" answer:
    // docker_answers::a_malformed_server_url_gets_the_not_found_answer.
    let huge = helper(&env, &["docker-credential", "get"], &"a".repeat(100_000));
    assert_eq!(huge.code(), 2, "{}", huge.stderr);
    assert!(huge.stderr.contains("more than 64 KiB"), "{}", huge.stderr);

    let unknown = helper(&env, &["docker-credential", "fetch"], "gcr.io");
    assert_eq!(unknown.code(), 2, "{}", unknown.stderr);
    assert_eq!(unknown.stdout, "");
}

// ------------------------------------------------------------------------------------------
// configure-docker
// ------------------------------------------------------------------------------------------

/// A copy of the binary in its own directory (`configure-docker` links next to it).
fn private_binary(env: &TestEnv) -> PathBuf {
    let dir = env.path("install");
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("gemauth");
    if std::fs::hard_link(gemauth_binary(), &copy).is_err() {
        std::fs::copy(gemauth_binary(), &copy).unwrap();
    }
    copy
}

fn configure_docker(env: &TestEnv, binary: &Path, args: &[&str], path_var: &str) -> Finished {
    let mut cmd = isolated(env, binary);
    cmd.arg("configure-docker").args(args).env("PATH", path_var);
    run_with_stdin(cmd, "")
}

fn configure_docker_adds_gemauth_keeps_everything_else_and_is_idempotent() {
    let env = TestEnv::new();
    let binary = private_binary(&env);
    let install = binary.parent().unwrap().to_path_buf();
    let path_var = format!("{}:/usr/bin:/bin", install.display());
    let config = docker_dir(&env).join("config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let before = serde_json::json!({
        "auths": {"registry.example.com": {"auth": "dXNlcjpwYXNz"}},
        "credHelpers": {"123.dkr.ecr.us-east-1.amazonaws.com": "ecr-login", "gcr.io": "gcloud"},
        "psFormat": "table {{.ID}}",
        "experimental": "enabled",
    });
    std::fs::write(&config, serde_json::to_vec_pretty(&before).unwrap()).unwrap();

    let done = configure_docker(&env, &binary, &[], &path_var);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "");
    assert!(
        done.stderr
            .contains("replacing the credential helper \"gcloud\""),
        "{}",
        done.stderr
    );
    let after = read_json(&config);
    let mut expected = before.clone();
    for registry in [
        "gcr.io",
        "us.gcr.io",
        "eu.gcr.io",
        "asia.gcr.io",
        "marketplace.gcr.io",
    ] {
        expected["credHelpers"][registry] = "gemauth".into();
    }
    assert_eq!(after, expected);
    #[cfg(unix)]
    assert_eq!(mode(&config), 0o600);
    let written = std::fs::read(&config).unwrap();
    assert!(
        written.starts_with(b"{\n\t\""),
        "tab-indented as Docker writes it"
    );

    // The helper link, next to the executable, pointing at it.
    let link = install.join("docker-credential-gemauth");
    assert_eq!(std::fs::read_link(&link).unwrap(), PathBuf::from("gemauth"));
    assert!(done.stderr.contains("Created"), "{}", done.stderr);
    assert!(!done.stderr.contains("warning"), "{}", done.stderr);

    // Twice: nothing changes, not even the file's inode or time.
    let meta = std::fs::metadata(&config).unwrap();
    let again = configure_docker(&env, &binary, &[], &path_var);
    assert_eq!(again.code(), 0, "{}", again.stderr);
    assert!(
        again.stderr.contains("already uses gemauth"),
        "{}",
        again.stderr
    );
    assert!(!again.stderr.contains("Created"), "{}", again.stderr);
    assert_eq!(std::fs::read(&config).unwrap(), written);
    let meta_again = std::fs::metadata(&config).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (meta.ino(), meta.mtime(), meta.mtime_nsec()),
        (
            meta_again.ino(),
            meta_again.mtime(),
            meta_again.mtime_nsec()
        )
    );

    // An explicit list adds to the set; the link then works as Docker runs it.
    let more = configure_docker(
        &env,
        &binary,
        &["us-central1-docker.pkg.dev,https://europe-docker.pkg.dev"],
        &path_var,
    );
    assert_eq!(more.code(), 0, "{}", more.stderr);
    let after = read_json(&config);
    assert_eq!(
        after["credHelpers"]["us-central1-docker.pkg.dev"],
        "gemauth"
    );
    assert_eq!(after["credHelpers"]["europe-docker.pkg.dev"], "gemauth");
    assert_eq!(after["credHelpers"]["gcr.io"], "gemauth");
    assert_eq!(after["auths"], before["auths"]);
    let list = helper(&env, &["docker-credential", "list"], "");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&list.stdout).unwrap()["https://europe-docker.pkg.dev"],
        "oauth2accesstoken"
    );
}

fn configure_docker_creates_the_file_and_honours_docker_config() {
    let env = TestEnv::new();
    let binary = private_binary(&env);
    let elsewhere = env.path("docker-elsewhere");
    let mut cmd = isolated(&env, &binary);
    cmd.args(["configure-docker", "us-docker.pkg.dev"])
        .env("DOCKER_CONFIG", &elsewhere)
        .env("PATH", "/usr/bin:/bin");
    let done = run_with_stdin(cmd, "");
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(
        read_json(&elsewhere.join("config.json")),
        serde_json::json!({"credHelpers": {"us-docker.pkg.dev": "gemauth"}})
    );
    #[cfg(unix)]
    assert_eq!(mode(&elsewhere), 0o700);
    assert!(!docker_dir(&env).exists());
    // The link's directory is not on PATH: the user is told.
    assert!(done.stderr.contains("is not on PATH"), "{}", done.stderr);
}

fn configure_docker_leaves_a_malformed_config_untouched() {
    let env = TestEnv::new();
    let binary = private_binary(&env);
    let config = docker_dir(&env).join("config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    for bad in [
        &b"{\"auths\": {"[..],
        b"[1, 2]",
        b"{\"credHelpers\": [\"gcr.io\"]}",
        b"\xff\xfe{}",
    ] {
        std::fs::write(&config, bad).unwrap();
        let done = configure_docker(&env, &binary, &[], "/usr/bin:/bin");
        assert_eq!(done.code(), 1, "{}", done.stderr);
        assert!(
            done.stderr.contains(&config.display().to_string()),
            "{}",
            done.stderr
        );
        assert!(
            done.stderr.contains("hint: fix the file"),
            "{}",
            done.stderr
        );
        assert_eq!(std::fs::read(&config).unwrap(), bad);
        assert_eq!(
            std::fs::read_dir(config.parent().unwrap()).unwrap().count(),
            1
        );
    }
    for bad in ["gcr.io/v2", "not a host", ","] {
        let done = configure_docker(&env, &binary, &[bad], "/usr/bin:/bin");
        assert_eq!(done.code(), 2, "{bad}: {}", done.stderr);
    }
}

fn configure_docker_writes_through_a_symlinked_config_and_prints_the_link_command_when_it_cannot() {
    let env = TestEnv::new();
    let binary = private_binary(&env);
    let real = env.path("dotfiles/docker.json");
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    std::fs::write(&real, "{}").unwrap();
    let config = docker_dir(&env).join("config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&real, &config).unwrap();
    // Something else already has the helper's name next to the binary.
    let foreign = binary.parent().unwrap().join("docker-credential-gemauth");
    std::fs::write(&foreign, "#!/bin/sh\n").unwrap();

    let done = configure_docker(&env, &binary, &["gcr.io"], "/usr/bin:/bin");
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(
        std::fs::symlink_metadata(&config)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        read_json(&real),
        serde_json::json!({"credHelpers": {"gcr.io": "gemauth"}})
    );
    assert!(
        done.stderr.contains("is not this gemauth; left alone"),
        "{}",
        done.stderr
    );
    assert!(done.stderr.contains("ln -s "), "{}", done.stderr);
    assert_eq!(std::fs::read(&foreign).unwrap(), b"#!/bin/sh\n");
}

// ------------------------------------------------------------------------------------------
// Git
// ------------------------------------------------------------------------------------------

fn git_helper_answers_google_hosts_only() {
    let env = TestEnv::new();
    let token = cached_token(&env);
    let expires = |stdout: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("password_expiry_utc="))
            .and_then(|v| v.parse::<u64>().ok())
            .expect("password_expiry_utc")
    };
    let done = helper(
        &env,
        &["git-credential", "get"],
        "protocol=https\nhost=source.developers.google.com\npath=p/proj/r/repo\ncapability[]=authtype\n\n",
    );
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(
        done.stdout
            .starts_with(&format!("username=oauth2accesstoken\npassword={token}\n")),
        "{}",
        done.stdout
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!((now + 3000..now + 3700).contains(&expires(&done.stdout)));

    let googlesource = helper(
        &env,
        &["git-credential", "get"],
        "protocol=https\nhost=chromium.googlesource.com\n",
    );
    assert!(
        googlesource.stdout.starts_with("username=git-account\n"),
        "{}",
        googlesource.stdout
    );

    let refreshes = env.google.seen("/token").len();
    for request in [
        "protocol=https\nhost=github.com\n\n",
        "protocol=https\nhost=source.developers.google.com.evil.example\n\n",
        "protocol=http\nhost=source.developers.google.com\n\n",
        "protocol=https\nhost=127.0.0.1:8080\n\n",
        "protocol=https\n\n",
    ] {
        let done = helper(&env, &["git-credential", "get"], request);
        assert_eq!(done.code(), 0, "{request}: {}", done.stderr);
        assert_eq!(done.stdout, "", "{request}");
    }
    for action in ["store", "erase", "capability", "something-new"] {
        let done = helper(
            &env,
            &["git-credential", action],
            "protocol=https\nhost=source.developers.google.com\nusername=oauth2accesstoken\npassword=x\n\n",
        );
        assert_eq!(
            (done.code(), done.stdout.as_str()),
            (0, ""),
            "{action}: {}",
            done.stderr
        );
    }
    assert_eq!(env.google.seen("/token").len(), refreshes);

    let garbage = helper(&env, &["git-credential", "get"], "no equals sign\n");
    assert_eq!(garbage.code(), 2, "{}", garbage.stderr);
    assert_eq!(garbage.stdout, "");
    let bad_host = helper(&env, &["git-credential", "--host", "a b", "get"], "");
    assert_eq!(bad_host.code(), 2, "{}", bad_host.stderr);

    revoked_credentials(&env);
    let revoked = helper(
        &env,
        &["git-credential", "get"],
        "protocol=https\nhost=source.developers.google.com\n",
    );
    assert_grant_rejected(&revoked);
}

/// A Git server for the dumb HTTP protocol on 127.0.0.1: serves a bare repository's files to
/// requests with the expected Basic credentials, answers 401 to the others, and records the
/// Authorization header of every request.
struct GitServer {
    url: String,
    authorizations: Arc<Mutex<Vec<Option<String>>>>,
    server: Arc<tiny_http::Server>,
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

impl GitServer {
    fn start(root: PathBuf, expected: String) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let authorizations = Arc::new(Mutex::new(Vec::new()));
        let (srv, seen) = (server.clone(), authorizations.clone());
        thread::spawn(move || {
            for request in srv.incoming_requests() {
                let auth = request
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Authorization"))
                    .map(|h| h.value.to_string());
                seen.lock().unwrap().push(auth.clone());
                if auth.as_deref() != Some(expected.as_str()) {
                    let response = tiny_http::Response::from_string("authentication required")
                        .with_status_code(401)
                        .with_header(
                            tiny_http::Header::from_bytes(
                                "WWW-Authenticate",
                                "Basic realm=\"test\"",
                            )
                            .unwrap(),
                        );
                    let _ = request.respond(response);
                    continue;
                }
                let path = request.url().split('?').next().unwrap_or("/").to_string();
                let relative = path.trim_start_matches('/');
                let file = root.join(relative);
                let safe = !relative.split('/').any(|part| part == "..");
                match std::fs::read(&file) {
                    Ok(bytes) if safe && file.is_file() => {
                        let _ = request.respond(tiny_http::Response::from_data(bytes));
                    }
                    _ => {
                        let _ = request
                            .respond(tiny_http::Response::from_string("").with_status_code(404));
                    }
                }
            }
        });
        GitServer {
            url: format!("http://127.0.0.1:{port}"),
            authorizations,
            server,
        }
    }

    fn authorizations(&self) -> Vec<Option<String>> {
        self.authorizations.lock().unwrap().clone()
    }
}

/// `git ARGS` with only the configuration given here: no user, system or askpass settings, no
/// prompts.
fn git_command(git: &Path, env: &TestEnv) -> Command {
    let mut cmd = isolated(env, git);
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .stdin(Stdio::null());
    cmd
}

/// `git clone` of the test server's repository into `dest`, with `helper` as the only credential
/// helper, configured for the server's URL.
fn clone_with_helper(
    git: &Path,
    env: &TestEnv,
    server: &GitServer,
    helper: &str,
    dest: &Path,
) -> std::process::Output {
    git_command(git, env)
        .args([
            "-c",
            "credential.helper=",
            "-c",
            &format!("credential.{}.helper={helper}", server.url),
            "clone",
            "-q",
            &format!("{}/repo.git", server.url),
            dest.to_str().unwrap(),
        ])
        .output()
        .unwrap()
}

fn git_ok(git: &Path, env: &TestEnv, args: &[&str]) {
    let out = git_command(git, env).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn real_git_clones_with_the_token_only_from_a_host_named_with_host() {
    let git = interop_tool("git", &[]);
    let env = TestEnv::new();
    let token = cached_token(&env);
    let refreshes = env.google.seen("/token").len();

    // A repository with one commit, served as a bare repository over dumb HTTP.
    let work = env.path("work");
    let work_s = work.to_str().unwrap();
    git_ok(&git, &env, &["init", "-q", "-b", "main", work_s]);
    std::fs::write(work.join("README"), "served by the test\n").unwrap();
    git_ok(&git, &env, &["-C", work_s, "add", "README"]);
    git_ok(&git, &env, &["-C", work_s, "commit", "-q", "-m", "first"]);
    let served = env.path("served");
    std::fs::create_dir_all(&served).unwrap();
    let bare = served.join("repo.git");
    git_ok(
        &git,
        &env,
        &["clone", "-q", "--bare", work_s, bare.to_str().unwrap()],
    );
    git_ok(
        &git,
        &env,
        &["-C", bare.to_str().unwrap(), "update-server-info"],
    );

    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("oauth2accesstoken:{token}"))
    );
    let server = GitServer::start(served, expected.clone());
    let helper_command = |extra: &str| {
        format!(
            "!{} git-credential{extra}",
            shell_words::quote(&gemauth_binary().to_string_lossy())
        )
    };

    // Configured for that URL with --host 127.0.0.1: the clone succeeds with the token.
    let dest = env.path("clone-ok");
    let out = clone_with_helper(
        &git,
        &env,
        &server,
        &helper_command(" --host 127.0.0.1"),
        &dest,
    );
    assert!(
        out.status.success(),
        "git clone: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("README")).unwrap(),
        "served by the test\n"
    );
    let seen = server.authorizations();
    assert_eq!(seen[0], None, "git asks without credentials first");
    assert!(seen.contains(&Some(expected.clone())), "{seen:?}");
    assert!(
        seen.iter().flatten().all(|a| a == &expected),
        "only gemauth's credentials: {seen:?}"
    );
    assert_eq!(env.google.seen("/token").len(), refreshes, "cached token");

    // The same configuration without --host: gemauth says nothing, git sends no credentials.
    let before = server.authorizations().len();
    let dest = env.path("clone-refused");
    let out = clone_with_helper(&git, &env, &server, &helper_command(""), &dest);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains(&token), "{stderr}");
    let after = server.authorizations();
    assert!(after.len() > before, "git reached the server");
    assert!(
        after[before..].iter().all(Option::is_none),
        "no credentials were sent: {after:?}"
    );
    assert_eq!(env.google.seen("/token").len(), refreshes);
}

// ------------------------------------------------------------------------------------------
// kubectl
// ------------------------------------------------------------------------------------------

fn kubectl_credential_prints_an_exec_credential() {
    let env = TestEnv::new();
    let token = cached_token(&env);
    let done = helper(&env, &["kubectl-credential"], "");
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stderr, "");
    let value: serde_json::Value = serde_json::from_str(&done.stdout).unwrap();
    let expires = value["status"]["expirationTimestamp"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(expires.ends_with('Z') && expires.len() == 20, "{expires}");
    assert_eq!(
        value,
        serde_json::json!({
            "kind": "ExecCredential",
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "spec": {"interactive": false},
            "status": {"token": token, "expirationTimestamp": expires},
        })
    );

    let mut cmd = gemauth(&env);
    cmd.arg("kubectl-credential").env(
        "KUBERNETES_EXEC_INFO",
        r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}"#,
    );
    let v1 = run_with_stdin(cmd, "");
    assert_eq!(v1.code(), 0, "{}", v1.stderr);
    let v1: serde_json::Value = serde_json::from_str(&v1.stdout).unwrap();
    assert_eq!(v1["apiVersion"], "client.authentication.k8s.io/v1");
    assert_eq!(v1["status"]["token"], token.as_str());

    let mut cmd = gemauth(&env);
    cmd.arg("kubectl-credential")
        .env("KUBERNETES_EXEC_INFO", "{not json");
    let bad = run_with_stdin(cmd, "");
    assert_eq!(bad.code(), 2, "{}", bad.stderr);
    assert_eq!(bad.stdout, "");
    assert!(
        bad.stderr.contains("KUBERNETES_EXEC_INFO"),
        "{}",
        bad.stderr
    );

    // Another credential file, by flag.
    let other = env.path("other.json");
    env.write_credentials(&other, "1//other-grant");
    let flagged = helper(
        &env,
        &[
            "kubectl-credential",
            "--credential-file",
            other.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(flagged.code(), 0, "{}", flagged.stderr);
    assert!(!flagged.stdout.contains(&token), "{}", flagged.stdout);
    let refreshes = env.google.seen_grants("refresh_token");
    assert_eq!(
        refreshes.last().unwrap().form["refresh_token"],
        "1//other-grant"
    );
}

/// A Kubernetes API server on https://127.0.0.1 with a certificate from a CA made for the test:
/// `GET /version` answers only with the expected bearer token.
struct FakeApiServer {
    url: String,
    ca_pem: String,
    authorizations: Arc<Mutex<Vec<Option<String>>>>,
}

impl FakeApiServer {
    fn start(expected_token: &str) -> Self {
        let ca = TestCa::new("gemauth test cluster CA", "127.0.0.1");
        let config = ca.server_config.clone();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let authorizations = Arc::new(Mutex::new(Vec::new()));
        let seen = authorizations.clone();
        let expected = format!("Bearer {expected_token}");
        thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let (config, seen, expected) = (config.clone(), seen.clone(), expected.clone());
                thread::spawn(move || {
                    let _ = tcp.set_read_timeout(Some(std::time::Duration::from_secs(20)));
                    let conn = rustls::ServerConnection::new(config).unwrap();
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    let Some(head) = read_head(&mut tls) else {
                        return;
                    };
                    let mut lines = head.lines();
                    let request_line = lines.next().unwrap_or_default().to_string();
                    let auth = lines.find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("authorization")
                            .then(|| value.trim().to_string())
                    });
                    seen.lock().unwrap().push(auth.clone());
                    let target = request_line.split(' ').nth(1).unwrap_or_default();
                    let path = target.split('?').next().unwrap_or_default();
                    let (status, body) = if auth.as_deref() != Some(expected.as_str()) {
                        (
                            "401 Unauthorized",
                            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#,
                        )
                    } else if request_line.starts_with("GET ") && path == "/version" {
                        (
                            "200 OK",
                            r#"{"major":"1","minor":"31","gitVersion":"v1.31.4-gke.1256000","gitCommit":"0000000000000000000000000000000000000000","gitTreeState":"clean","buildDate":"2024-12-01T00:00:00Z","goVersion":"go1.22.9","compiler":"gc","platform":"linux/amd64"}"#,
                        )
                    } else {
                        (
                            "404 Not Found",
                            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"not found","reason":"NotFound","code":404}"#,
                        )
                    };
                    let _ = write!(
                        tls,
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                });
            }
        });
        FakeApiServer {
            url: format!("https://127.0.0.1:{port}"),
            ca_pem: ca.ca_pem,
            authorizations,
        }
    }

    fn authorizations(&self) -> Vec<Option<String>> {
        self.authorizations.lock().unwrap().clone()
    }
}

/// Reads an HTTP request head (requests to /version have no body).
fn read_head(stream: &mut impl Read) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// A kubeconfig whose user runs `gemauth kubectl-credential` (JSON is valid YAML).
fn write_kubeconfig(env: &TestEnv, server: &FakeApiServer, api_version: &str) -> PathBuf {
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {
            "server": server.url,
            "certificate-authority-data":
                base64::engine::general_purpose::STANDARD.encode(&server.ca_pem),
        }}],
        "users": [{"name": "gemauth", "user": {"exec": {
            "apiVersion": api_version,
            "command": gemauth_binary(),
            "args": ["kubectl-credential"],
            "interactiveMode": "Never",
            "provideClusterInfo": false,
        }}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "gemauth"}}],
        "current-context": "test",
    });
    let path = env.path(&format!(
        "kubeconfig-{}",
        api_version.rsplit('/').next().unwrap()
    ));
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    path
}

fn kubectl_command(kubectl: &Path, env: &TestEnv, kubeconfig: &Path) -> Command {
    let mut cmd = isolated(env, kubectl);
    cmd.env("KUBECONFIG", kubeconfig)
        .args(["version", "-o", "json", "--request-timeout=20s"])
        .stdin(Stdio::null());
    cmd
}

fn kubectl_path() -> PathBuf {
    match std::env::var_os("GEMAUTH_TEST_KUBECTL").filter(|p| !p.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => interop_tool(
            "kubectl",
            &[PathBuf::from("/usr/lib/google-cloud-sdk/bin/kubectl")],
        ),
    }
}

/// kubectl's client minor version (exec credentials `v1` need 1.22 or later).
fn kubectl_minor(kubectl: &Path) -> u32 {
    let out = Command::new(kubectl)
        .args(["version", "--client", "-o", "json"])
        .env("KUBECONFIG", "/dev/null")
        .output()
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    value["clientVersion"]["minor"]
        .as_str()
        .and_then(|m| m.trim_end_matches('+').parse().ok())
        .unwrap_or(0)
}

fn real_kubectl_authenticates_with_the_exec_credential() {
    let kubectl = kubectl_path();
    let env = TestEnv::new();
    let token = cached_token(&env);
    let server = FakeApiServer::start(&token);
    let mut versions = vec!["client.authentication.k8s.io/v1beta1"];
    if kubectl_minor(&kubectl) >= 22 {
        versions.push("client.authentication.k8s.io/v1");
    }
    for api_version in versions {
        let kubeconfig = write_kubeconfig(&env, &server, api_version);
        let out = kubectl_command(&kubectl, &env, &kubeconfig)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "kubectl ({api_version}): {stderr}");
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            value["serverVersion"]["gitVersion"], "v1.31.4-gke.1256000",
            "{value}"
        );
        assert!(!stderr.contains(&token), "{stderr}");
    }
    let seen = server.authorizations();
    assert!(seen.contains(&Some(format!("Bearer {token}"))), "{seen:?}");
}

fn real_kubectl_shows_gemauths_message_when_the_grant_is_revoked() {
    let kubectl = kubectl_path();
    let env = TestEnv::new();
    revoked_credentials(&env);
    let server = FakeApiServer::start("ya29.never-issued");
    let kubeconfig = write_kubeconfig(&env, &server, "client.authentication.k8s.io/v1beta1");
    let out = kubectl_command(&kubectl, &env, &kubeconfig)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "rejected the credentials: invalid_grant (Token has been expired or revoked.)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("hint: run `gemauth login"), "{stderr}");
    // kubectl's own line, with gemauth's exit code for rejected credentials.
    assert!(stderr.contains("failed with exit code 3"), "{stderr}");
    assert!(
        server.authorizations().iter().all(Option::is_none),
        "no token reached the API server: {:?}",
        server.authorizations()
    );
}

// ------------------------------------------------------------------------------------------
// status
// ------------------------------------------------------------------------------------------

fn status_names_the_configured_helpers() {
    let env = TestEnv::new();
    env.write_credentials(&env.adc_path(), "1//helper-grant");
    let status = |env: &TestEnv| {
        let mut cmd = gemauth(env);
        cmd.args(["status", "--format", "json"]);
        let done = run_with_stdin(cmd, "");
        assert_eq!(done.code(), 0, "{}", done.stderr);
        serde_json::from_str::<serde_json::Value>(&done.stdout).unwrap()
    };
    assert_eq!(status(&env)["helpers"], serde_json::json!([]));
    let mut cmd = gemauth(&env);
    cmd.args(["status"]);
    let text = run_with_stdin(cmd, "");
    assert!(
        text.stdout.contains("Helpers:         none configured"),
        "{}",
        text.stdout
    );

    let docker = docker_dir(&env);
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        r#"{"credHelpers":{"gcr.io":"gemauth","us-docker.pkg.dev":"gemauth","quay.io":"other"}}"#,
    )
    .unwrap();
    let mut expected = vec![format!(
        "docker: credHelpers in {} for gcr.io, us-docker.pkg.dev",
        docker.join("config.json").display()
    )];
    {
        let git = interop_tool("git", &[]);
        git_ok(
            &git,
            &env,
            &[
                "config",
                "--global",
                "credential.https://source.developers.google.com.helper",
                "!gemauth git-credential",
            ],
        );
        git_ok(
            &git,
            &env,
            &[
                "config",
                "--global",
                "credential.https://github.com.helper",
                "store",
            ],
        );
        expected.push(
            "git: credential.https://source.developers.google.com.helper = !gemauth git-credential"
                .into(),
        );
    }
    assert_eq!(status(&env)["helpers"], serde_json::json!(expected));
    let mut cmd = gemauth(&env);
    cmd.args(["status"]);
    let text = run_with_stdin(cmd, "");
    assert!(
        text.stdout
            .contains(&format!("Helpers:         {}", expected[0])),
        "{}",
        text.stdout
    );
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        docker_get_hands_out_the_cached_token_for_google_registries,
        the_binary_is_the_docker_helper_under_the_name_docker_credential_gemauth,
        docker_gets_no_token_for_other_registries,
        docker_list_store_and_erase,
        docker_errors_go_to_stderr_with_a_non_zero_exit,
        configure_docker_adds_gemauth_keeps_everything_else_and_is_idempotent,
        configure_docker_creates_the_file_and_honours_docker_config,
        configure_docker_leaves_a_malformed_config_untouched,
        configure_docker_writes_through_a_symlinked_config_and_prints_the_link_command_when_it_cannot,
        git_helper_answers_google_hosts_only,
        real_git_clones_with_the_token_only_from_a_host_named_with_host => Git,
        kubectl_credential_prints_an_exec_credential,
        real_kubectl_authenticates_with_the_exec_credential => Kubectl,
        real_kubectl_shows_gemauths_message_when_the_grant_is_revoked => Kubectl,
        status_names_the_configured_helpers => Git,
    ]
}
