//! The process around the commands, as std's start-up sets it up for `main`: closed standard
//! descriptors, a reader that goes away, arguments that are not UTF-8.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::harness::*;
use crate::runner::{Trial, trials};

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `sh -c 'exec gemauth ARGS <&- >&- 2>&-'` with the test's environment: stdin, stdout and
/// stderr closed.
fn run_with_closed_fds(env: &TestEnv, args: &[&str]) -> std::process::ExitStatus {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("exec \"$0\" \"$@\" <&- >&- 2>&-")
        .arg(gemauth_binary())
        .args(args);
    env.isolate(&mut cmd);
    cmd.status().unwrap()
}

/// Every file under `dir` with its contents.
fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = files_under(dir);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

fn closed_standard_fds_never_send_output_into_files_gemauth_opens() {
    let env = TestEnv::new();
    let cred = env.write_credentials(&env.adc_path(), "1//closed");
    // A refresh opens the credential file, the lock, temporary files, the cache and a socket:
    // were one of them given descriptor 1 or 2, the token or a log line (-vv) would go into it.
    let status = run_with_closed_fds(&env, &["-vv", "print-access-token"]);
    assert_eq!(status.code(), Some(0));
    assert_eq!(env.google.seen_grants("refresh_token").len(), 1);
    assert_eq!(
        std::fs::read(env.adc_path()).unwrap(),
        cred,
        "credential file unchanged"
    );
    for path in files_under(env.dir.path()) {
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("DEBUG") && !text.contains("INFO"),
            "log lines in {}: {text}",
            path.display()
        );
        if bytes.windows(5).any(|w| w == b"ya29.") {
            // Only the cache holds the token, as the JSON gemauth wrote.
            let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{} is not JSON ({e}): the token leaked into it",
                    path.display()
                )
            });
            assert_eq!(value["access_token"], "ya29.access-1", "{}", path.display());
        }
    }
    // The cached token is then printed to whoever asks.
    assert_eq!(env.run(&["print-access-token"]).stdout, "ya29.access-1\n");

    // An error with stderr closed: exit code 3 still, nothing written anywhere.
    let before = snapshot(env.dir.path());
    let status = run_with_closed_fds(
        &env,
        &["print-access-token", "--credential-file", "/nonexistent"],
    );
    assert_eq!(status.code(), Some(3));
    assert_eq!(snapshot(env.dir.path()), before);
}

/// Linux: the child reports its descriptors and signal mask from /proc.
#[cfg(target_os = "linux")]
fn programs_gemauth_runs_get_dev_null_for_closed_fds_and_the_default_sigpipe() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    env.write_credentials(&env.adc_path(), "1//child");
    let report = env.path("child-report");
    let script = env.path("fake-curl.sh");
    std::fs::write(
        &script,
        // Reads its own descriptors first: a redirection would change what it sees.
        "#!/bin/sh\nr=''\nfor fd in 0 1 2; do\n  l=$(readlink \"/proc/$$/fd/$fd\" 2>/dev/null) || l=closed\n  r=\"$r$l\n\"\ndone\ns=$(grep '^SigIgn:' \"/proc/$$/status\")\nprintf '%s%s\\n' \"$r\" \"$s\" > \"$REPORT\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("exec \"$0\" \"$@\" <&- >&- 2>&-")
        .arg(gemauth_binary())
        .args(["curl", "https://example.invalid/"]);
    env.isolate(&mut cmd)
        .env("GEMAUTH_CURL", &script)
        .env("REPORT", &report);
    assert_eq!(cmd.status().unwrap().code(), Some(0));
    let text = std::fs::read_to_string(&report).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..3],
        ["/dev/null", "/dev/null", "/dev/null"],
        "{text}"
    );
    let ignored = u64::from_str_radix(lines[3].trim_start_matches("SigIgn:").trim(), 16).unwrap();
    const SIGPIPE: u32 = 13; // on Linux; bit N-1 of SigIgn is signal N
    assert_eq!(
        ignored & (1 << (SIGPIPE - 1)),
        0,
        "SIGPIPE ignored in the child: {text}"
    );
}

fn a_reader_that_went_away_is_an_error_not_a_signal() {
    let env = TestEnv::new();
    env.write_credentials(&env.adc_path(), "1//pipe");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = env
        .cmd()
        .arg("print-access-token")
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(output.status.signal(), None, "killed by SIGPIPE");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot write to stdout"), "{stderr}");
    assert!(!stderr.contains("ya29."), "{stderr}");
    // The token was obtained and cached before the write failed: the next caller uses it.
    assert_eq!(env.run(&["print-access-token"]).stdout, "ya29.access-1\n");
    assert_eq!(env.google.seen_grants("refresh_token").len(), 1);
}

/// Not on macOS, whose file systems only take file names in UTF-8.
#[cfg(not(target_os = "macos"))]
fn arguments_that_are_not_utf8_reach_the_command_intact() {
    use std::os::unix::ffi::OsStrExt;
    let env = TestEnv::new();
    let name = std::ffi::OsStr::from_bytes(b"cred-\xff\xfe.json");
    let path = env.dir.path().join(name);
    env.write_credentials(&path, "1//bytes");
    let output = env
        .cmd()
        .arg("print-access-token")
        .arg("--credential-file")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.stdout, b"ya29.access-1\n");
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        closed_standard_fds_never_send_output_into_files_gemauth_opens,
        #[cfg(target_os = "linux")]
        programs_gemauth_runs_get_dev_null_for_closed_fds_and_the_default_sigpipe,
        a_reader_that_went_away_is_an_error_not_a_signal,
        #[cfg(not(target_os = "macos"))]
        arguments_that_are_not_utf8_reach_the_command_intact,
    ]
}
