//! Windows: the default paths (`%APPDATA%\gcloud`, `%LOCALAPPDATA%\gemauth`), refresh and cache,
//! rotation written back over a file another process holds open, single-flight refresh across
//! processes, revocation and a `--no-browser` login. `.ci/run` runs these under Wine against the
//! Windows build; on a Windows machine `cargo test` runs them with the rest.
#![cfg(windows)]

use std::os::windows::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Duration;

use crate::harness::*;
use crate::runner::{Trial, trials};

const ADC: &str = "application_default_credentials.json";

/// `%APPDATA%` for the test: gcloud's directory is found there when `CLOUDSDK_CONFIG` is unset.
fn appdata(env: &TestEnv) -> PathBuf {
    env.path("appdata")
}

/// [`TestEnv::cmd`] without `CLOUDSDK_CONFIG`, so that gemauth uses its Windows default.
fn default_paths(env: &TestEnv) -> std::process::Command {
    let mut cmd = env.cmd();
    cmd.env_remove("CLOUDSDK_CONFIG")
        .env("APPDATA", appdata(env));
    cmd
}

fn no_credentials_names_the_file_under_appdata() {
    let env = TestEnv::new();
    let mut cmd = default_paths(&env);
    cmd.arg("print-access-token")
        .env("NO_GCE_CHECK", "true")
        .env_remove("GCE_METADATA_HOST");
    let done = Running::spawn(cmd, env.path("browser-args")).finish();
    assert_eq!(done.code(), 3, "{}", done.stderr);
    assert_eq!(done.stdout, "");
    let expected = format!(
        "error: no credentials found (looked in {}\\gcloud\\{ADC})\n\
         hint: run `gemauth login --client-id-file client_secret.json` to sign in\n",
        appdata(&env).display()
    );
    assert_eq!(done.stderr, expected);
    assert!(!appdata(&env).exists(), "nothing is created");

    // Without APPDATA, gcloud's fallback: the system drive's root.
    let mut cmd = default_paths(&env);
    cmd.arg("print-access-token")
        .env_remove("APPDATA")
        .env("NO_GCE_CHECK", "true")
        .env_remove("GCE_METADATA_HOST");
    let done = Running::spawn(cmd, env.path("browser-args")).finish();
    assert_eq!(done.code(), 3, "{}", done.stderr);
    let drive = std::env::var("SystemDrive").unwrap_or_else(|_| "C:".into());
    assert!(
        done.stderr.starts_with(&format!(
            "error: no credentials found (looked in {drive}\\gcloud\\{ADC})\n"
        )),
        "{}",
        done.stderr
    );
}

fn a_refresh_is_cached_in_localappdata_and_reused() {
    let env = TestEnv::new();
    let path = env.adc_path();
    let before = env.write_credentials(&path, "1//r");
    for _ in 0..2 {
        let done = env.run(&["print-access-token"]);
        assert_eq!(done.code(), 0, "{}", done.stderr);
        assert_eq!(done.stdout, "ya29.access-1\n");
        // No permission warning: Unix modes mean nothing here.
        assert_eq!(done.stderr, "");
    }
    assert_eq!(env.google.seen_grants("refresh_token").len(), 1);
    let cached = env.cached_tokens();
    assert_eq!(cached.len(), 1);
    assert!(cached[0].starts_with(env.path("cache").join("gemauth").join("tokens")));
    assert_eq!(read_json(&cached[0])["access_token"], "ya29.access-1");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "no rotation, no write"
    );
}

/// Opens `path` as Rust's std (and gemauth) do: sharing reading, writing and deletion.
fn open_sharing_delete(path: &std::path::Path) -> std::fs::File {
    std::fs::File::open(path).unwrap()
}

/// Opens `path` as many Windows programs do: sharing reading only, so that nobody may delete or
/// replace it while it is open.
fn open_without_delete_sharing(path: &std::path::Path) -> std::fs::File {
    const FILE_SHARE_READ: u32 = 1;
    std::fs::OpenOptions::new()
        .read(true)
        .share_mode(FILE_SHARE_READ)
        .open(path)
        .unwrap()
}

/// Runs `print-access-token` while `held` keeps the credential file open: until the refresh has
/// reached the server, so that gemauth meets the open file when it writes the rotated token,
/// and `hold` longer.
fn print_while_open(env: &TestEnv, held: std::fs::File, hold: Duration) -> Finished {
    let before = env.google.seen_grants("refresh_token").len();
    let mut cmd = env.cmd();
    cmd.arg("print-access-token");
    let run = Running::spawn(cmd, env.path("browser-args"));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while env.google.seen_grants("refresh_token").len() == before {
        assert!(std::time::Instant::now() < deadline, "no refresh");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(hold);
    drop(held);
    run.finish()
}

fn a_rotated_refresh_token_is_written_back_over_a_file_another_process_has_open() {
    let env = TestEnv::new();
    let path = env.adc_path();
    env.write_credentials(&path, "1//r0");
    env.google.with(|b| b.rotate = true);

    // Windows 10 replaces a file that is open with deletion shared at once (POSIX rename
    // semantics); older systems and Wine wait for it to be closed, and so does every system for a
    // file whose reader does not share deletion. gemauth retries the replace meanwhile.
    let open = open_sharing_delete(&path);
    let done = print_while_open(&env, open, Duration::from_millis(300));
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "ya29.access-1\n");
    let written = read_json(&path);
    assert_eq!(written["refresh_token"], "1//refresh-1");
    assert_eq!(written["custom_field"]["kept"], true);
    assert_eq!(written["client_id"], CLIENT_ID);
    assert!(!env.google.refresh_token_valid("1//r0"));

    env.expire_cache();
    let open = open_without_delete_sharing(&path);
    let done = print_while_open(&env, open, Duration::from_millis(300));
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "ya29.access-2\n");
    assert_eq!(read_json(&path)["refresh_token"], "1//refresh-2");

    // The file is still a valid credential: the next refresh uses the rotated token.
    env.expire_cache();
    let done = env.run(&["print-access-token"]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "ya29.access-3\n");
    let grants = env.google.seen_grants("refresh_token");
    assert_eq!(grants.len(), 3);
    assert_eq!(grants[2].form["refresh_token"], "1//refresh-2");

    // A file that stays locked is an error that names it, and the old file is left whole.
    env.expire_cache();
    let before = std::fs::read(&path).unwrap();
    let open = open_without_delete_sharing(&path);
    let done = print_while_open(&env, open, Duration::from_secs(4));
    assert_eq!(done.code(), 1, "{}", done.stderr);
    assert_eq!(done.stdout, "");
    assert!(
        done.stderr
            .starts_with(&format!("error: cannot replace {}: ", path.display())),
        "{}",
        done.stderr
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(env.gcloud_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, [ADC], "no temporary files are left");
}

fn ten_concurrent_calls_on_an_expired_cache_make_one_refresh() {
    let env = TestEnv::new();
    env.write_credentials(&env.adc_path(), "1//r");
    env.google.with(|b| b.rotate = true);
    assert_eq!(env.run(&["print-access-token"]).stdout, "ya29.access-1\n");
    env.expire_cache();
    let children: Vec<_> = (0..10)
        .map(|_| env.spawn_piped(&["print-access-token"]))
        .collect();
    assert_each_prints(children, "ya29.access-2");
    let grants = env.google.seen_grants("refresh_token");
    assert_eq!(grants.len(), 2, "one refresh for the ten calls");
    assert_eq!(grants[1].form["refresh_token"], "1//refresh-1");
    assert_eq!(read_json(&env.adc_path())["refresh_token"], "1//refresh-2");
}

fn revoke_revokes_at_the_server_and_removes_the_file_and_cache() {
    let env = TestEnv::new();
    env.write_credentials(&env.adc_path(), "1//r");
    assert_eq!(env.run(&["print-access-token"]).code(), 0);
    assert_eq!(env.cached_tokens().len(), 1);
    env.assert_revokes("1//r");
    assert_eq!(env.run(&["print-access-token"]).code(), 3);
}

fn login_without_a_browser_completes_through_the_loopback_listener() {
    let env = TestEnv::new();
    let client = env.client_file();
    let mut cmd = default_paths(&env);
    cmd.args(["login", "--no-browser", "--client-id-file"])
        .arg(&client);
    let run = Running::spawn_interactive(cmd, env.path("browser-args"));
    // The instructions arrive intact (UTF-8 on a pipe, `…` included).
    let stderr = run.wait_stderr("&code=…");
    assert!(
        stderr.contains("the browser is sent to http://127.0.0.1:"),
        "{stderr}"
    );
    let page = follow_authorization(&run.printed_url());
    assert_eq!(page.status, 200, "{}", page.body);
    let done = run.finish();
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "");
    assert!(!env.path("browser-args").exists(), "no browser was started");

    let file = appdata(&env).join("gcloud").join(ADC);
    assert!(
        done.stderr
            .contains(&format!("Credentials saved to {}\n", file.display())),
        "{}",
        done.stderr
    );
    let written = read_json(&file);
    assert_eq!(written["type"], "authorized_user");
    assert_eq!(written["refresh_token"], "1//refresh-2");
    assert_eq!(written["client_id"], CLIENT_ID);

    // Found where Google's libraries look for it: the login's token, from the cache.
    let mut cmd = default_paths(&env);
    cmd.arg("print-access-token");
    let token = Running::spawn(cmd, env.path("browser-args")).finish();
    assert_eq!(token.code(), 0, "{}", token.stderr);
    assert_eq!(token.stdout, "ya29.access-2\n");
    assert!(env.google.seen_grants("refresh_token").is_empty());
}

fn version_names_the_windows_target() {
    let done = TestEnv::new().run(&["--version"]);
    assert_eq!(done.code(), 0);
    let version = format!("gemauth {} (", env!("CARGO_PKG_VERSION"));
    assert!(
        done.stdout.starts_with(&version)
            && (done.stdout.ends_with("-pc-windows-gnu)\n")
                || done.stdout.ends_with("-pc-windows-msvc)\n")),
        "{}",
        done.stdout
    );
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        no_credentials_names_the_file_under_appdata,
        a_refresh_is_cached_in_localappdata_and_reused,
        a_rotated_refresh_token_is_written_back_over_a_file_another_process_has_open,
        ten_concurrent_calls_on_an_expired_cache_make_one_refresh,
        revoke_revokes_at_the_server_and_removes_the_file_and_cache,
        login_without_a_browser_completes_through_the_loopback_listener,
        version_names_the_windows_target,
    ]
}
