//! `gemauth login --no-browser`: paste mode for SSH sessions, containers and CI, racing the
//! loopback listener, and the automatic fallback when no browser can be opened.

#[cfg(target_os = "linux")]
use std::process::Command;
#[cfg(target_os = "linux")]
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::runner::{Trial, trials};

const PROMPT: &str = "Paste the address (or the code): ";

fn assert_logged_in(env: &TestEnv, done: &Finished) {
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "");
    let written = read_json(&env.adc_path());
    assert_eq!(written["type"], "authorized_user");
    assert_eq!(written["refresh_token"], "1//refresh-2");
    assert_eq!(env.google.seen_grants("authorization_code").len(), 1);
}

#[cfg(target_os = "linux")]
/// The test's browser made one that stays open until killed (blocked opening a FIFO nobody
/// writes to): one that gemauth started is still running when the test looks, so "no browser
/// was started" cannot pass by timing.
struct LingeringBrowser {
    script: String,
}

#[cfg(target_os = "linux")]
impl LingeringBrowser {
    fn install(env: &TestEnv) -> Self {
        let hold = env.path("hold");
        assert!(
            Command::new("mkfifo")
                .arg(&hold)
                .status()
                .unwrap()
                .success()
        );
        // No command substitution: a forked subshell would be another process with this name.
        let script = format!("#!/bin/sh\nread -r _ < '{}'\n", hold.display());
        std::fs::write(env.browser_script(), script).unwrap();
        let browser = LingeringBrowser {
            script: env.browser_script().display().to_string(),
        };
        // The check finds a browser that runs: the script run as the kernel runs it for a
        // `#!` line, "/bin/sh SCRIPT" (not executed itself: a file just written can be busy
        // for exec while another thread's fork still holds it). Its command line is readable a
        // moment after `spawn` returns, once the kernel has set up the new program.
        let mut control = Command::new("/bin/sh")
            .arg(env.browser_script())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while browser.running() != [control.id()] {
            assert!(Instant::now() < deadline, "the check never saw a browser");
            std::thread::sleep(Duration::from_millis(5));
        }
        control.kill().unwrap();
        control.wait().unwrap();
        browser
    }

    /// The processes running the script.
    fn running(&self) -> Vec<u32> {
        processes()
            .into_iter()
            .filter(|p| p.cmdline.iter().any(|arg| arg == self.script.as_bytes()))
            .map(|p| p.pid)
            .collect()
    }
}

#[cfg(target_os = "linux")]
impl Drop for LingeringBrowser {
    fn drop(&mut self) {
        for pid in self.running() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

#[cfg(target_os = "linux")]
struct Process {
    pid: u32,
    ppid: u32,
    cmdline: Vec<Vec<u8>>,
}

#[cfg(target_os = "linux")]
/// The processes that exist, from /proc.
fn processes() -> Vec<Process> {
    let mut found = vec![];
    for entry in std::fs::read_dir("/proc").expect("/proc is readable") {
        let entry = entry.unwrap();
        let Ok(pid) = entry.file_name().to_string_lossy().parse() else {
            continue;
        };
        // A process may end while it is looked at: then it does not exist.
        let (Ok(stat), Ok(cmdline)) = (
            std::fs::read_to_string(entry.path().join("stat")),
            std::fs::read(entry.path().join("cmdline")),
        ) else {
            continue;
        };
        // "PID (COMMAND) STATE PPID ...", COMMAND being any text.
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|ppid| ppid.parse().ok())
        else {
            continue;
        };
        let cmdline = cmdline.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
        found.push(Process { pid, ppid, cmdline });
    }
    found
}

#[cfg(target_os = "linux")]
/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|p| p.ppid == pid)
        .map(|p| p.pid)
        .collect()
}

/// Linux: the check for a started browser reads /proc.
#[cfg(target_os = "linux")]
fn full_redirect_url_is_accepted_and_instructions_name_the_port() {
    let env = TestEnv::new();
    let browser = LingeringBrowser::install(&env);
    let (mut run, port) = env.start_on_a_free_port(|port| env.start_headless(port));
    let stderr = run.wait_stderr(PROMPT);
    // No browser is opened in this mode: gemauth, waiting at the prompt, has no child process.
    assert_eq!(
        children_of(run.id()),
        Vec::<u32>::new(),
        "a browser was started"
    );
    let url = run.printed_url();
    let lines: Vec<&str> = stderr.lines().map(str::trim).collect();
    assert!(
        lines.contains(&url.as_str()),
        "the URL is on its own line: {stderr}"
    );
    assert!(stderr.contains("copy the whole address"), "{stderr}");
    assert!(stderr.contains(&format!("http://127.0.0.1:{port}/")));
    assert!(
        stderr.contains(&format!("ssh -L {port}:127.0.0.1:{port}")),
        "{stderr}"
    );

    let redirect = approve_elsewhere(&url);
    assert!(redirect.starts_with(&format!("http://127.0.0.1:{port}/?")));
    run.paste(&redirect);
    let done = run.finish();
    assert_logged_in(&env, &done);
    // Nor later, at any moment of gemauth's life: it would still be running.
    assert_eq!(
        browser.running(),
        Vec::<u32>::new(),
        "a browser was started"
    );
    let form = &env.google.seen_grants("authorization_code")[0].form;
    assert_eq!(form["redirect_uri"], format!("http://127.0.0.1:{port}/"));
}

fn query_string_alone_is_accepted() {
    let env = TestEnv::new();
    let mut run = env.start_headless(&[]);
    run.wait_stderr(PROMPT);
    let redirect = approve_elsewhere(&run.printed_url());
    let query = redirect.split_once('?').unwrap().1.to_string();
    run.paste(&format!("  \"{query}\"  "));
    assert_logged_in(&env, &run.finish());
}

fn bare_percent_encoded_code_is_accepted() {
    let env = TestEnv::new();
    let mut run = env.start_headless(&[]);
    run.wait_stderr(PROMPT);
    let redirect = approve_elsewhere(&run.printed_url());
    let encoded = redirect
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("code="))
        .unwrap()
        .to_string();
    assert!(
        encoded.contains("%2F"),
        "the code is percent-encoded: {encoded}"
    );
    run.paste(&format!("<{encoded}>"));
    let done = run.finish();
    assert_logged_in(&env, &done);
    let form = &env.google.seen_grants("authorization_code")[0].form;
    assert_eq!(form["code"], "4/0Ab-code+1");
}

fn wrong_state_then_right_one() {
    let env = TestEnv::new();
    let mut run = env.start_headless(&[]);
    run.wait_stderr(PROMPT);
    let url = run.printed_url();
    let state = query_of(&url)["state"].clone();
    let redirect = approve_elsewhere(&url);
    run.paste(&redirect.replace(&state, "stale-state-from-another-login"));
    let stderr = run.wait_stderr("attempt 1 of 3");
    assert!(stderr.contains("state"), "{stderr}");
    assert!(env.google.seen("/token").is_empty());
    run.paste(&redirect);
    assert_logged_in(&env, &run.finish());
}

fn address_of_another_port_is_refused_and_asked_again() {
    let env = TestEnv::new();
    let mut run = env.start_headless(&[]);
    run.wait_stderr(PROMPT);
    let redirect = approve_elsewhere(&run.printed_url());
    let port = redirect
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let other: u16 = if port == "1" { 2 } else { 1 };
    run.paste(&redirect.replace(&format!(":{port}/"), &format!(":{other}/")));
    let stderr = run.wait_stderr("attempt 1 of 3");
    assert!(stderr.contains("another port"), "{stderr}");
    run.paste(&redirect);
    assert_logged_in(&env, &run.finish());
}

fn garbage_three_times_fails_and_writes_nothing() {
    let env = TestEnv::new();
    let mut run = env.start_headless(&[]);
    run.wait_stderr(PROMPT);
    run.paste("hello world");
    run.wait_stderr("attempt 1 of 3");
    run.paste("");
    run.paste("http://example.com/?code=x");
    run.wait_stderr("attempt 2 of 3");
    run.paste("!!!");
    let done = run.finish();
    assert_eq!(done.code(), 1, "{}", done.stderr);
    assert_eq!(done.stdout, "");
    assert!(
        done.stderr.contains("not accepted 3 times"),
        "{}",
        done.stderr
    );
    assert!(done.stderr.contains(
        "hint: run `gemauth login --client-id-file client_secret.json --no-browser` again"
    ));
    assert!(env.google.seen("/token").is_empty());
    assert!(!env.adc_path().exists());
    assert!(!env.gcloud_dir().exists());
}

fn pasted_error_ends_the_login_with_the_providers_message() {
    let env = TestEnv::new();
    env.google.with(|b| {
        b.deny = Some(("access_denied".into(), "User said no".into()));
    });
    let mut run = env.start_headless(&[]);
    run.wait_stderr(PROMPT);
    let redirect = approve_elsewhere(&run.printed_url());
    run.paste(&redirect);
    let done = run.finish();
    assert_eq!(done.code(), 1);
    assert!(
        done.stderr.contains("access_denied (User said no)"),
        "{}",
        done.stderr
    );
    assert!(!env.adc_path().exists());
}

fn listener_completes_the_login_while_the_prompt_waits() {
    let env = TestEnv::new();
    let run = env.start_headless(&[]);
    run.wait_stderr(PROMPT);
    // Same machine, or through `ssh -L`: the browser reaches the listener itself.
    let page = follow_authorization(&run.printed_url());
    assert_eq!(page.status, 200);
    assert_logged_in(&env, &run.finish());
}

/// With a fixed `--port` (forwarded with `ssh -L`), the redirect can still arrive after standard
/// input closes: the login keeps waiting.
fn closed_stdin_keeps_waiting_for_the_listener_on_a_fixed_port() {
    let env = TestEnv::new();
    let (mut run, _port) = env.start_on_a_free_port(|args| env.start_headless(args));
    run.close_stdin();
    run.wait_stderr("standard input is closed");
    follow_authorization(&run.printed_url());
    assert_logged_in(&env, &run.finish());
}

/// No browser, nothing to paste and no fixed port (a job without a terminal): nothing can answer,
/// so the login fails at once, saying what to do, instead of waiting for its time limit.
fn closed_stdin_without_a_fixed_port_fails_at_once() {
    let env = TestEnv::new();
    let started = std::time::Instant::now();
    let mut run = env.start_headless(&["--timeout", "300"]);
    run.close_stdin();
    let done = run.finish();
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(done.code(), 1, "{}", done.stderr);
    assert_eq!(done.stdout, "");
    assert!(
        done.stderr.contains(
            "error: standard input is closed and no browser was opened, so nothing can complete the sign-in"
        ),
        "{}",
        done.stderr
    );
    let hint = done.hint();
    for part in [
        "--no-browser",
        "--port N",
        "ssh -L",
        "workload identity federation",
    ] {
        assert!(hint.contains(part), "{part:?} not in {hint}");
    }
    assert!(!env.adc_path().exists());
    assert!(env.google.seen("/token").is_empty());
}

fn closed_stdin_then_timeout_says_how_to_retry() {
    let env = TestEnv::new();
    let (mut run, _port) = env.start_on_a_free_port(|args| {
        let mut args = args.to_vec();
        args.extend(["--timeout", "1"]);
        env.start_headless(&args)
    });
    run.close_stdin();
    let done = run.finish();
    assert_eq!(done.code(), 1);
    assert!(
        done.stderr.contains("standard input was closed"),
        "{}",
        done.stderr
    );
    assert!(done.stderr.contains("ssh -L"), "{}", done.stderr);
    assert!(!env.adc_path().exists());
}

/// Linux and other Unix desktops need a display; macOS and Windows always have a browser.
#[cfg(all(unix, not(target_os = "macos")))]
fn no_display_and_no_browser_variable_falls_back_to_paste_mode() {
    let env = TestEnv::new();
    let mut cmd = env.cmd();
    cmd.env_remove("BROWSER")
        .args(["login", "--client-id-file"])
        .arg(env.client_file());
    let mut run = Running::spawn_interactive(cmd, env.path("browser-args"));
    let stderr = run.wait_stderr(PROMPT);
    assert!(stderr.contains("switching to paste mode"), "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("note:")).count(),
        1,
        "one-line note: {stderr}"
    );
    run.paste(&approve_elsewhere(&run.printed_url()));
    assert_logged_in(&env, &run.finish());
}

fn a_browser_that_exits_with_failure_switches_to_paste_mode() {
    let env = TestEnv::new();
    let mut cmd = env.cmd();
    let fails = if cfg!(windows) {
        "cmd /c exit 1"
    } else {
        "false"
    };
    cmd.env("BROWSER", fails)
        .args(["login", "--client-id-file"])
        .arg(env.client_file());
    let mut run = Running::spawn_interactive(cmd, env.path("browser-args"));
    let stderr = run.wait_stderr(PROMPT);
    assert!(stderr.contains("the browser did not start"), "{stderr}");
    run.paste(&approve_elsewhere(&run.printed_url()));
    assert_logged_in(&env, &run.finish());
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        #[cfg(target_os = "linux")]
        full_redirect_url_is_accepted_and_instructions_name_the_port,
        query_string_alone_is_accepted,
        bare_percent_encoded_code_is_accepted,
        wrong_state_then_right_one,
        address_of_another_port_is_refused_and_asked_again,
        garbage_three_times_fails_and_writes_nothing,
        pasted_error_ends_the_login_with_the_providers_message,
        listener_completes_the_login_while_the_prompt_waits,
        closed_stdin_keeps_waiting_for_the_listener_on_a_fixed_port,
        closed_stdin_without_a_fixed_port_fails_at_once,
        closed_stdin_then_timeout_says_how_to_retry,
        #[cfg(all(unix, not(target_os = "macos")))]
        no_display_and_no_browser_variable_falls_back_to_paste_mode,
        a_browser_that_exits_with_failure_switches_to_paste_mode,
    ]
}
