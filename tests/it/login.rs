//! `gemauth login` against the fake authorization server, with a fake browser.

use crate::harness::*;
use crate::runner::{Trial, trials};

fn login_writes_an_adc_file_that_google_libraries_read() {
    let env = TestEnv::new();
    let run = env.start_login(&[]);
    let url = run.browser_url();

    // The authorization request: PKCE S256, fresh state, offline access, forced consent,
    // loopback redirect, default scopes.
    let q = query_of(&url);
    assert!(url.starts_with(&format!("{}/auth?", env.google.base)));
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 22, "state must carry at least 128 bits");
    assert_eq!(q["access_type"], "offline");
    assert_eq!(q["prompt"], "consent");
    assert_eq!(
        q["scope"],
        "openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/generative-language.retriever"
    );
    let redirect = &q["redirect_uri"];
    let port: u16 = redirect
        .strip_prefix("http://127.0.0.1:")
        .and_then(|r| r.strip_suffix('/'))
        .expect("redirect_uri is http://127.0.0.1:PORT/")
        .parse()
        .unwrap();
    assert!(port > 0);
    assert!(!url.contains("urn:ietf:wg:oauth:2.0:oob"));
    // The URL is printed on stderr before the browser is started.
    assert!(run.stderr_so_far().contains(&url));

    let page = follow_authorization(&url);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Signed in"));
    assert!(
        !page.body.contains("src=")
            && !page.body.contains("href=")
            && !page.body.contains("<script"),
        "the page must be self-contained: {}",
        page.body
    );
    let done = run.finish();
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "");

    // The token request: same redirect URI, PKCE verifier, client_secret_post.
    let exchanges = env.google.seen_grants("authorization_code");
    assert_eq!(exchanges.len(), 1);
    let form = &exchanges[0].form;
    assert_eq!(&form["redirect_uri"], redirect);
    assert_eq!(form["client_id"], CLIENT_ID);
    assert_eq!(form["client_secret"], CLIENT_SECRET);
    assert!(form["code"].starts_with("4/0Ab-code+"));
    assert_eq!(form["code_verifier"].len(), 43);
    assert!(!exchanges[0].headers.contains_key("authorization"));

    // The credential file, exactly.
    let path = env.adc_path();
    let written = read_json(&path);
    let scopes = q["scope"].split(' ').collect::<Vec<_>>();
    assert_eq!(
        written,
        serde_json::json!({
            "type": "authorized_user",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": "1//refresh-2",
            "quota_project_id": PROJECT_ID,
            "universe_domain": "googleapis.com",
            "account": EMAIL,
            "scopes": scopes,
            "token_uri": format!("{}/token", env.google.base),
            "revoke_uri": format!("{}/revoke", env.google.base),
        })
    );
    #[cfg(unix)]
    {
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&env.gcloud_dir()), 0o700);
    }
    assert!(done.stderr.contains(&path.display().to_string()));
    assert!(done.stderr.contains(EMAIL));
    assert!(
        done.stderr
            .contains("https://www.googleapis.com/auth/cloud-platform")
    );
    assert!(!done.stderr.contains("not granted"));
    assert!(!done.stderr.contains(CLIENT_SECRET));
    assert!(!done.stderr.contains("1//refresh"));
    assert!(!done.stderr.contains("ya29."));

    // The access token from the exchange is cached: no refresh is needed right after login.
    let token = env.run(&["print-access-token"]);
    assert_eq!(token.code(), 0, "{}", token.stderr);
    assert_eq!(token.stdout, "ya29.access-2\n");
    assert!(env.google.seen_grants("refresh_token").is_empty());
}

fn scopes_flag_expands_short_names_and_reports_scopes_not_granted() {
    let env = TestEnv::new();
    env.google
        .with(|b| b.granted_scope = Some("https://www.googleapis.com/auth/cloud-platform".into()));
    let run = env.start_login(&[
        "--scopes",
        "cloud-platform,https://www.googleapis.com/auth/generative-language.retriever",
        "--quota-project",
        "billing-project",
    ]);
    let url = run.browser_url();
    assert_eq!(
        query_of(&url)["scope"],
        "https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/generative-language.retriever"
    );
    assert_eq!(follow_authorization(&url).status, 200);
    let done = run.finish();
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(
        done.stderr
            .contains("not granted: https://www.googleapis.com/auth/generative-language.retriever"),
        "{}",
        done.stderr
    );
    let written = read_json(&env.adc_path());
    assert_eq!(
        written["scopes"],
        serde_json::json!(["https://www.googleapis.com/auth/cloud-platform"])
    );
    assert_eq!(written["quota_project_id"], "billing-project");
}

fn credential_file_flag_writes_elsewhere() {
    let env = TestEnv::new();
    let target = env.path("elsewhere/creds.json");
    let run = env.start_login(&["--credential-file", target.to_str().unwrap()]);
    follow_authorization(&run.browser_url());
    let done = run.finish();
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(read_json(&target)["type"], "authorized_user");
    assert!(!env.adc_path().exists());
}

fn fixed_port_is_used_and_a_taken_port_fails_at_once() {
    let env = TestEnv::new();
    let (run, port) = env.start_on_a_free_port(|port| env.start_login(port));
    let url = run.browser_url();
    assert_eq!(
        query_of(&url)["redirect_uri"],
        format!("http://127.0.0.1:{port}/")
    );
    follow_authorization(&url);
    assert_eq!(run.finish().code(), 0);

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let client = env.client_file();
    let done = env.run(&[
        "login",
        "--client-id-file",
        client.to_str().unwrap(),
        "--port",
        &port,
    ]);
    assert_eq!(done.code(), 1);
    assert!(
        done.stderr.contains(&format!("port {port}")),
        "{}",
        done.stderr
    );
    assert!(done.stderr.contains("hint:"));
    assert!(
        env.google.seen("/auth").len() == 1,
        "no second authorization started"
    );
}

fn stray_and_forged_requests_do_not_end_the_login() {
    let env = TestEnv::new();
    let run = env.start_login(&[]);
    let url = run.browser_url();
    let q = query_of(&url);
    let listener = q["redirect_uri"].clone();
    let port: u16 = listener
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches('/')
        .parse()
        .unwrap();

    let favicon = http_get(&format!("{listener}favicon.ico"));
    assert_eq!(favicon.status, 404);
    let forged = http_get(&format!("{listener}?state=forged&code=evil"));
    assert_eq!(forged.status, 400);
    assert!(forged.body.contains("state"));
    let no_state = http_get(&format!("{listener}?code=evil"));
    assert_eq!(no_state.status, 400);
    let twice = http_get(&format!(
        "{listener}?state={0}&state={0}&code=evil",
        q["state"]
    ));
    assert_eq!(twice.status, 400);
    let post = raw_request(
        "127.0.0.1",
        port,
        "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(post.status, 405);
    let garbage = raw_request("127.0.0.1", port, "\x16\x03\x01garbage\r\n\r\n");
    assert_eq!(garbage.status, 400);
    // An idle connection (browsers open speculative ones) must not block the real redirect.
    let _idle = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();

    let page = follow_authorization(&url);
    assert_eq!(page.status, 200);
    let done = run.finish();
    assert_eq!(done.code(), 0, "{}", done.stderr);
    // None of them was reported as an error, then or later.
    assert!(!done.stderr.contains("error"), "{}", done.stderr);
    // The forged code never reached the token endpoint.
    let exchanges = env.google.seen_grants("authorization_code");
    assert_eq!(exchanges.len(), 1);
    assert_ne!(exchanges[0].form["code"], "evil");
}

fn denied_consent_ends_the_login_with_the_providers_message() {
    let env = TestEnv::new();
    env.google.with(|b| {
        b.deny = Some((
            "access_denied".into(),
            "The user denied\u{1b}[31m the\nrequest".into(),
        ))
    });
    let run = env.start_login(&[]);
    let page = follow_authorization(&run.browser_url());
    assert_eq!(page.status, 200);
    assert!(page.body.contains("access_denied"));
    let done = run.finish();
    assert_eq!(done.code(), 1);
    assert_eq!(done.stdout, "");
    let error_line = done
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .expect("an error line");
    assert!(error_line.contains("access_denied"), "{}", done.stderr);
    assert!(
        error_line.contains("The user denied[31m therequest"),
        "{}",
        done.stderr
    );
    assert!(!done.stderr.contains('\u{1b}'));
    assert!(
        done.stderr
            .contains("hint: run `gemauth login --client-id-file client_secret.json` again")
    );
    assert!(env.google.seen("/token").is_empty());
    assert!(!env.adc_path().exists());
}

fn login_times_out_with_a_clear_message() {
    let env = TestEnv::new();
    let run = env.start_login(&["--timeout", "1"]);
    let done = run.finish();
    assert_eq!(done.code(), 1);
    assert!(
        done.stderr.contains("not completed within 1 second") && !done.stderr.contains("1 seconds"),
        "{}",
        done.stderr
    );
    assert!(done.stderr.contains("--timeout"));
    assert!(!env.adc_path().exists());
}

fn browser_variable_is_split_like_a_shell_and_percent_s_is_replaced() {
    let env = TestEnv::new();
    let mut cmd = env.cmd();
    let browser = format!("{} --new-window 'url=%s'", env.browser());
    cmd.env("BROWSER", browser)
        .args(["login", "--client-id-file"])
        .arg(env.client_file());
    let run = Running::spawn(cmd, env.path("browser-args"));
    let args = run.browser_args();
    assert_eq!(args.len(), 2, "{args:?}");
    assert_eq!(args[0], "--new-window");
    let url = args[1]
        .strip_prefix("url=")
        .expect("%s replaced")
        .to_string();
    assert_eq!(url, run.printed_url());
    follow_authorization(&url);
    assert_eq!(run.finish().code(), 0);
}

/// A person at the terminal (standard input open) can still open the printed URL themselves.
fn a_browser_that_cannot_start_does_not_end_the_login() {
    let env = TestEnv::new();
    let mut cmd = env.cmd();
    cmd.env("BROWSER", env.path("no-such-browser"))
        .args(["login", "--client-id-file"])
        .arg(env.client_file());
    let run = Running::spawn_interactive(cmd, env.path("browser-args"));
    let stderr = run.wait_stderr("could not open a browser");
    assert!(stderr.contains("no-such-browser"));
    follow_authorization(&run.printed_url());
    let done = run.finish();
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(env.adc_path().exists());
}

fn no_refresh_token_is_an_error_and_keeps_the_existing_file() {
    let env = TestEnv::new();
    let before = env.write_credentials(&env.adc_path(), "1//old");
    env.google.with(|b| b.issue_refresh_token = false);
    let run = env.start_login(&[]);
    follow_authorization(&run.browser_url());
    let done = run.finish();
    assert_eq!(done.code(), 1);
    assert!(done.stderr.contains("no refresh token"), "{}", done.stderr);
    assert!(done.stderr.contains("hint:"));
    assert_eq!(std::fs::read(env.adc_path()).unwrap(), before);
}

fn token_endpoint_failures_name_the_endpoint_and_status_and_write_nothing() {
    let env = TestEnv::new();
    env.google.enqueue(
        "/token",
        Canned::html(403, "<html><body>Forbidden</body></html>"),
    );
    let run = env.start_login(&[]);
    follow_authorization(&run.browser_url());
    let done = run.finish();
    assert_eq!(done.code(), 1);
    let expected = format!("{}/token answered HTTP 403", env.google.base);
    assert!(done.stderr.contains(&expected), "{}", done.stderr);
    assert!(done.stderr.contains("HTML"));
    assert!(!env.adc_path().exists());
    assert!(!env.gcloud_dir().exists());
}

fn bad_client_secret_files_stop_before_anything_happens() {
    let env = TestEnv::new();
    let good = env.client_json()["installed"].clone();
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("token_uri");
    let mut wrong_type = good.clone();
    wrong_type["client_id"] = 42.into();
    let mut insecure = good.clone();
    insecure["token_uri"] = "http://oauth.example.com/token".into();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "web client",
            serde_json::to_vec(&serde_json::json!({"web": good})).unwrap(),
            "Web application",
        ),
        (
            "missing field",
            serde_json::to_vec(&serde_json::json!({"installed": missing})).unwrap(),
            "\"installed.token_uri\" is missing",
        ),
        (
            "wrong type",
            serde_json::to_vec(&serde_json::json!({"installed": wrong_type})).unwrap(),
            "\"installed.client_id\" is not a string",
        ),
        ("not JSON", b"client_id=abc".to_vec(), "not valid JSON"),
        ("empty", b"".to_vec(), "is empty"),
        (
            "truncated",
            br#"{"installed": {"client_id": "#.to_vec(),
            "not valid JSON",
        ),
        (
            "service account",
            br#"{"type": "service_account"}"#.to_vec(),
            "no \"installed\" object",
        ),
        (
            "http endpoint",
            serde_json::to_vec(&serde_json::json!({"installed": insecure})).unwrap(),
            "plain http is only allowed",
        ),
    ];
    for (name, bytes, expected) in cases {
        let path = env.path("client_secret.json");
        std::fs::write(&path, bytes).unwrap();
        let done = env.run(&["login", "--client-id-file", path.to_str().unwrap()]);
        assert_eq!(done.code(), 1, "{name}: {}", done.stderr);
        assert!(done.stderr.contains(expected), "{name}: {}", done.stderr);
        assert!(done.stderr.contains("hint:"), "{name}: {}", done.stderr);
        assert_eq!(done.stdout, "", "{name}");
        assert!(
            !env.path("browser-args").exists(),
            "{name}: browser started"
        );
    }
    let dir = env.path("a-directory");
    std::fs::create_dir(&dir).unwrap();
    let done = env.run(&["login", "--client-id-file", dir.to_str().unwrap()]);
    assert_eq!(done.code(), 1);
    assert!(done.stderr.contains("is a directory"), "{}", done.stderr);
    #[cfg(unix)]
    {
        let link = env.path("client-link.json");
        std::os::unix::fs::symlink(env.path("no-target"), &link).unwrap();
        let done = env.run(&["login", "--client-id-file", link.to_str().unwrap()]);
        assert_eq!(done.code(), 1);
        assert!(done.stderr.contains("does not exist"), "{}", done.stderr);
        assert!(done.stderr.contains(&link.display().to_string()));
        if !running_as_root() {
            use std::os::unix::fs::PermissionsExt;
            let locked = env.client_file();
            std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
            let done = env.run(&["login", "--client-id-file", locked.to_str().unwrap()]);
            assert_eq!(done.code(), 1);
            assert!(done.stderr.contains("cannot be read"), "{}", done.stderr);
        }
    }
    let done = env.run(&["login", "--client-id-file", "/nonexistent/client.json"]);
    assert_eq!(done.code(), 1);
    assert!(done.stderr.contains("does not exist"));
    assert!(env.google.seen("/auth").is_empty());
    assert!(!env.gcloud_dir().exists());
}

fn usage_errors_exit_2() {
    let env = TestEnv::new();
    let done = env.run(&["login"]);
    assert_eq!(done.code(), 2);
    let client = env.client_file();
    let done = env.run(&[
        "login",
        "--client-id-file",
        client.to_str().unwrap(),
        "--scopes",
        "not a scope!",
    ]);
    assert_eq!(done.code(), 2, "{}", done.stderr);
    assert!(
        done.stderr.contains("scope \"scope!\" is neither"),
        "{}",
        done.stderr
    );
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        login_writes_an_adc_file_that_google_libraries_read,
        scopes_flag_expands_short_names_and_reports_scopes_not_granted,
        credential_file_flag_writes_elsewhere,
        fixed_port_is_used_and_a_taken_port_fails_at_once,
        stray_and_forged_requests_do_not_end_the_login,
        denied_consent_ends_the_login_with_the_providers_message,
        login_times_out_with_a_clear_message,
        browser_variable_is_split_like_a_shell_and_percent_s_is_replaced,
        a_browser_that_cannot_start_does_not_end_the_login,
        no_refresh_token_is_an_error_and_keeps_the_existing_file,
        token_endpoint_failures_name_the_endpoint_and_status_and_write_nothing,
        bad_client_secret_files_stop_before_anything_happens,
        usage_errors_exit_2,
    ]
}
