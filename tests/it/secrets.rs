//! Secrets never reach stderr or logs: every command runs with maximum verbosity, and the output
//! is searched for the secrets planted in it.

use crate::harness::*;
use crate::runner::{Trial, trials};

fn verbose(env: &TestEnv, args: &[&str]) -> Finished {
    let mut cmd = env.cmd();
    cmd.arg("-vv").args(args).env("RUST_LOG", "trace");
    Running::spawn(cmd, env.path("browser-args")).finish()
}

/// A token just handed out and the (rotated) refresh token now in the credential file.
fn new_secrets(env: &TestEnv, token: &str) -> [String; 2] {
    assert!(token.starts_with("ya29."), "{token}");
    let refresh = read_json(&env.adc_path())["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    [token.to_string(), refresh]
}

fn verbose_with_stdin(env: &TestEnv, args: &[&str], input: &str) -> Finished {
    use std::io::Write;
    let mut cmd = env.cmd();
    cmd.arg("-vv")
        .args(args)
        .env("RUST_LOG", "trace")
        .env_remove("DOCKER_CONFIG")
        .env_remove("KUBERNETES_EXEC_INFO")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    Finished {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn assert_clean(what: &str, text: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{what} leaked {secret:?}:\n{text}"
        );
    }
}

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

    env.google.enqueue("/token", Canned::expired_grant());
    env.expire_cache();
    let rejected = verbose(&env, &["print-access-token"]);
    assert_eq!(rejected.code(), 3);
    assert_clean("print-access-token (rejected)", &rejected.stderr, &secrets);

    // The credential helpers, on the cached token, on a refresh, and on a rejected grant.
    let fresh = verbose(&env, &["print-access-token"]);
    assert_eq!(fresh.code(), 0, "{}", fresh.stderr);
    secrets.extend(new_secrets(&env, fresh.stdout.trim()));
    let helpers: [(&[&str], &str); 4] = [
        (&["docker-credential", "get"], "us-docker.pkg.dev\n"),
        (
            &["git-credential", "get"],
            "protocol=https\nhost=source.developers.google.com\n\n",
        ),
        (&["kubectl-credential"], ""),
        (&["docker-credential", "list"], ""),
    ];
    for (args, input) in helpers {
        let done = verbose_with_stdin(&env, args, input);
        assert_eq!(done.code(), 0, "{args:?}: {}", done.stderr);
        assert!(
            done.stderr.contains("DEBUG"),
            "logging is on: {}",
            done.stderr
        );
        assert_clean(&format!("{args:?} (cached)"), &done.stderr, &secrets);
    }
    env.expire_cache();
    let refreshed = verbose_with_stdin(&env, &["kubectl-credential"], "");
    assert_eq!(refreshed.code(), 0, "{}", refreshed.stderr);
    let exec: serde_json::Value = serde_json::from_str(&refreshed.stdout).unwrap();
    secrets.extend(new_secrets(&env, exec["status"]["token"].as_str().unwrap()));
    assert_clean("kubectl-credential (refresh)", &refreshed.stderr, &secrets);
    env.expire_cache();
    let refreshed = verbose_with_stdin(&env, &["docker-credential", "get"], "gcr.io");
    assert_eq!(refreshed.code(), 0, "{}", refreshed.stderr);
    let answer: serde_json::Value = serde_json::from_str(&refreshed.stdout).unwrap();
    secrets.extend(new_secrets(&env, answer["Secret"].as_str().unwrap()));
    assert_clean("docker-credential (refresh)", &refreshed.stderr, &secrets);
    env.expire_cache();
    let refreshed = verbose_with_stdin(
        &env,
        &["git-credential", "get"],
        "protocol=https\nhost=source.developers.google.com\n",
    );
    assert_eq!(refreshed.code(), 0, "{}", refreshed.stderr);
    let password = refreshed
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("password="))
        .unwrap()
        .to_string();
    secrets.extend(new_secrets(&env, &password));
    assert_clean("git-credential (refresh)", &refreshed.stderr, &secrets);
    // store and erase receive secrets from the tools, and must not log them either.
    secrets.extend(["ya29.from-docker".into(), "ya29.from-git".into()]);
    let stored = verbose_with_stdin(
        &env,
        &["docker-credential", "store"],
        r#"{"ServerURL":"gcr.io","Username":"oauth2accesstoken","Secret":"ya29.from-docker"}"#,
    );
    assert_eq!(stored.code(), 0, "{}", stored.stderr);
    assert_clean("docker-credential store", &stored.stderr, &secrets);
    let stored = verbose_with_stdin(
        &env,
        &["git-credential", "store"],
        "protocol=https\nhost=source.developers.google.com\nusername=oauth2accesstoken\npassword=ya29.from-git\n\n",
    );
    assert_eq!(stored.code(), 0, "{}", stored.stderr);
    assert_clean("git-credential store", &stored.stderr, &secrets);
    for (args, input) in helpers
        .into_iter()
        .filter(|(args, _)| !args.contains(&"list"))
    {
        env.google.enqueue("/token", Canned::expired_grant());
        env.expire_cache();
        let rejected = verbose_with_stdin(&env, args, input);
        assert_eq!(rejected.code(), 3, "{args:?}: {}", rejected.stderr);
        assert_eq!(rejected.stdout, "");
        assert_clean(&format!("{args:?} (rejected)"), &rejected.stderr, &secrets);
    }

    let revoked = verbose(&env, &["revoke"]);
    assert_eq!(revoked.code(), 0, "{}", revoked.stderr);
    assert_clean("revoke", &revoked.stderr, &secrets);
    assert_eq!(revoked.stdout, "");
}

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

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        no_command_prints_a_secret_even_with_maximum_verbosity,
        a_paste_is_not_echoed_in_logs,
    ]
}
