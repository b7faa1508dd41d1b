//! Names and hints a new user meets: `logout` is another name for `revoke`; a login that times
//! out says how to run the same login again (its client file and flags kept) and counts its
//! seconds right; the client-file hints name the console's current pages, as README does.

use crate::harness::*;
use crate::runner::{Trial, trials};

fn logout_is_another_name_for_revoke() {
    let env = TestEnv::new();
    let help = env.run(&["--help"]);
    let revoke_line = help
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("revoke "))
        .unwrap_or_else(|| panic!("{}", help.stdout));
    assert!(revoke_line.contains("logout"), "{revoke_line}");
    let own = env.run(&["logout", "--help"]);
    assert_eq!(own.code(), 0, "{}", own.stderr);
    assert!(own.stdout.contains("--force"), "{}", own.stdout);

    env.login();
    assert!(env.adc_path().exists());
    let done = env.run(&["logout"]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(!env.adc_path().exists());
    assert_eq!(env.google.seen("/revoke").len(), 1);

    let bad = env.run(&["logout", "--bogus"]);
    assert_eq!(bad.code(), 2);
    assert!(
        bad.stderr.contains("hint: run `gemauth revoke --help`"),
        "{}",
        bad.stderr
    );
}

fn a_timed_out_login_says_how_to_run_the_same_login_again() {
    let env = TestEnv::new();
    let client = env.client_file();
    let client = client.to_str().unwrap();
    let target = env.path("my creds.json");
    let target = target.to_str().unwrap();
    let mut cmd = env.cmd();
    cmd.args([
        "login",
        "--client-id-file",
        client,
        "--timeout",
        "1",
        "--scopes",
        "cloud-platform",
        "--credential-file",
        target,
        "--quota-project",
        "other-project-7",
    ]);
    let done = Running::spawn(cmd, env.path("browser-args")).finish();
    assert_eq!(done.code(), 1, "{}", done.stderr);
    assert!(
        done.stderr.contains("not completed within 1 second") && !done.stderr.contains("1 seconds"),
        "{}",
        done.stderr
    );
    let hint = done.hint();
    let rerun = format!(
        "`gemauth login --client-id-file {} --scopes cloud-platform --credential-file {} --quota-project other-project-7`",
        shell_words::quote(client),
        shell_words::quote(target),
    );
    assert!(
        rerun.contains("'"),
        "the path with a space is quoted: {rerun}"
    );
    assert!(hint.contains(&rerun), "{hint}\nexpected {rerun}");
    assert!(hint.contains("--timeout SECS"), "{hint}");

    // Headless, with standard input closed and a fixed port (forwarded over SSH): the same, with
    // --no-browser and the port.
    let (run, port) = env.start_on_a_free_port(|args| {
        let mut cmd = env.cmd();
        cmd.args([
            "login",
            "--no-browser",
            "--client-id-file",
            client,
            "--timeout",
            "2",
        ])
        .args(args);
        Running::spawn(cmd, env.path("browser-args"))
    });
    let done = run.finish();
    assert_eq!(done.code(), 1, "{}", done.stderr);
    assert!(
        done.stderr.contains("not completed within 2 seconds"),
        "{}",
        done.stderr
    );
    assert!(
        done.stderr.contains(&format!(
            "hint: run `gemauth login --client-id-file {} --no-browser --port {port}` again",
            shell_words::quote(client)
        )),
        "{}",
        done.stderr
    );
}

fn client_file_hints_name_the_consoles_current_pages() {
    let env = TestEnv::new();
    let missing = env.run(&["login", "--client-id-file", "no-such-client.json"]);
    assert_eq!(missing.code(), 1, "{}", missing.stderr);
    let usage = env.run(&["login"]);
    assert_eq!(usage.code(), 2, "{}", usage.stderr);
    for done in [&missing, &usage] {
        assert!(
            done.stderr.contains("Google Auth Platform → Clients"),
            "{}",
            done.stderr
        );
        assert!(!done.stderr.contains("APIs & Services"), "{}", done.stderr);
    }
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(readme.contains("Google Auth Platform → Clients"));
}

/// The quickstart's client_secret.json given where a credential belongs is recognised, and the
/// login that uses it is named.
fn an_oauth_client_file_as_credential_file_names_the_login() {
    let env = TestEnv::new();
    let client = env.client_file();
    for command in ["print-access-token", "status"] {
        let done = env.run(&[command, "--credential-file", client.to_str().unwrap()]);
        assert_eq!(done.code(), 3, "{}", done.stderr);
        assert!(
            done.stderr
                .contains("is an OAuth client file (client_secret.json), not a credential")
                && done.stderr.contains("gemauth login --client-id-file"),
            "{}",
            done.stderr
        );
    }
}

/// `-vv` without credentials says where gemauth looked, in order.
fn verbose_logs_say_where_credentials_were_looked_for() {
    let env = TestEnv::new();
    let done = env.run_with(
        &["-vv", "print-access-token"],
        &[("GCE_METADATA_HOST", ""), ("NO_GCE_CHECK", "1")],
    );
    assert_eq!(done.code(), 3, "{}", done.stderr);
    let adc = env.adc_path().display().to_string();
    let order = [
        "GOOGLE_APPLICATION_CREDENTIALS is not set".to_string(),
        format!("no credential file at the well-known path path={adc}"),
        "no metadata server".to_string(),
    ];
    let mut from = 0;
    for needle in &order {
        let at = done.stderr[from..]
            .find(needle.as_str())
            .unwrap_or_else(|| panic!("{needle:?} not logged (in order):\n{}", done.stderr));
        from += at + needle.len();
    }
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        logout_is_another_name_for_revoke,
        a_timed_out_login_says_how_to_run_the_same_login_again,
        client_file_hints_name_the_consoles_current_pages,
        an_oauth_client_file_as_credential_file_names_the_login,
        verbose_logs_say_where_credentials_were_looked_for,
    ]
}
