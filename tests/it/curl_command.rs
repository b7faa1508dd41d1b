//! `gemauth curl`: no file holding the token outlives the process (interrupted or not), leftovers
//! of earlier runs are removed, and a URL that would carry the token over plain http to another
//! machine is refused before anything is sent.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::harness::*;
use crate::runner::{Trial, trials};

/// Every file under `dir` whose bytes contain `needle`, except the token cache's entries (which
/// hold the token by design, in gemauth's private cache).
fn files_containing(dir: &Path, needle: &str, cache_tokens: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if path != cache_tokens {
                found.extend(files_containing(&path, needle, cache_tokens));
            }
        } else if kind.is_file()
            && std::fs::read(&path)
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        {
            found.push(path);
        }
    }
    found
}

#[cfg(unix)]
fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[cfg(unix)]
fn wait_for(path: &Path, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never happened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// gemauth killed by SIGTERM, SIGINT or SIGHUP while curl runs leaves no file with the token
/// behind: not in the cache directory, not anywhere under the test's HOME, XDG or gcloud dirs.
#[cfg(unix)]
fn an_interrupted_curl_leaves_no_file_with_the_token() {
    let env = TestEnv::new();
    env.login();
    // A curl that checks it can read the header it was given, says so, then waits.
    let fake_curl = env.path("slow-curl.sh");
    let ready = env.path("curl-ready");
    let pid_file = env.path("curl-pid");
    write_script(
        &fake_curl,
        &format!(
            "#!/bin/sh\necho $$ > '{pid}'\nif [ \"$1\" = -H ] && grep -q '^Authorization: Bearer ya29' \"${{2#@}}\"; then : > '{ready}'; fi\nexec sleep 30\n",
            pid = pid_file.display(),
            ready = ready.display(),
        ),
    );
    let cache_tokens = env.cache_dir().join("tokens");
    for signal in ["TERM", "INT", "HUP"] {
        let _ = std::fs::remove_file(&ready);
        let mut child = env
            .cmd()
            .args([
                "curl",
                "-sS",
                "https://generativelanguage.googleapis.com/v1/models",
            ])
            .env("GEMAUTH_CURL", &fake_curl)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        wait_for(&ready, "curl reading its Authorization header");
        let killed = std::process::Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "gemauth outlived SIG{signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // curl may outlive gemauth (it gets the terminal's signals itself): stop it too.
        if let Ok(pid) = std::fs::read_to_string(&pid_file) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", pid.trim()])
                .stderr(std::process::Stdio::null())
                .status();
        }
        let leaks = files_containing(env.dir.path(), "ya29.", &cache_tokens);
        assert!(
            leaks.is_empty(),
            "after SIG{signal}, files holding the token remain: {leaks:?}"
        );
    }
}

/// Header files left by an earlier gemauth that was killed are removed by the next `gemauth curl`
/// (on every platform, before anything else happens).
fn leftover_header_files_of_earlier_runs_are_removed() {
    let env = TestEnv::new();
    env.login();
    let dir = env.cache_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let leftover = dir.join(".curl-headers-AbC123");
    std::fs::write(&leftover, "Authorization: Bearer ya29.left-behind\n").unwrap();
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&leftover)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    let done = env.run_with(
        &[
            "curl",
            "https://generativelanguage.googleapis.com/v1/models",
        ],
        &[("GEMAUTH_CURL", env.path("no-such-curl"))],
    );
    assert_eq!(done.code(), 1, "{}", done.stderr);
    assert!(
        !leftover.exists(),
        "the leftover header file is still there"
    );
    assert!(
        files_containing(env.dir.path(), "ya29.left", &dir.join("tokens")).is_empty(),
        "the leftover token is still on disk"
    );
}

/// A URL that sends the token in clear text to another machine is refused with exit 2, before
/// any token is fetched and before curl runs; https and plain http to this machine still work.
#[cfg(unix)]
fn plain_http_to_another_host_is_refused_before_anything_is_sent() {
    let env = TestEnv::new();
    env.login();
    env.expire_cache();
    let refreshes = || env.google.seen_grants("refresh_token").len();
    let ran = env.path("curl-ran");
    let fake_curl = env.path("record-curl.sh");
    write_script(
        &fake_curl,
        &format!("#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{}'\n", ran.display()),
    );
    let curl = |args: &[&str]| {
        let mut all = vec!["curl"];
        all.extend_from_slice(args);
        env.run_with(&all, &[("GEMAUTH_CURL", &fake_curl)])
    };
    for args in [
        &["http://generativelanguage.googleapis.com/v1/models"][..],
        &["-sS", "HTTP://Example.COM/x"],
        &["--url", "http://example.com/"],
        &["-sS", "-o", "out.json", "http://127.0.0.1@evil.example/"],
        &["http://localhost.evil.example/"],
        &[
            "https://generativelanguage.googleapis.com/v1/models",
            "http://evil.example/",
        ],
        // curl guesses http:// for a URL without a scheme.
        &[
            "-H",
            "x-a: b",
            "generativelanguage.googleapis.com/v1/models",
        ],
        &["-sSH", "x-a: b", "example.com"],
    ] {
        let done = curl(args);
        assert_eq!(done.code(), 2, "{args:?}: {}", done.stderr);
        assert_eq!(done.stdout, "", "{args:?}");
        let lines: Vec<&str> = done.stderr.lines().collect();
        assert_eq!(lines.len(), 2, "{args:?}: {}", done.stderr);
        assert!(
            lines[0].starts_with("error: ") && lines[0].contains("plain http"),
            "{args:?}: {}",
            done.stderr
        );
        assert!(
            lines[1].starts_with("hint: ") && lines[1].contains("https://"),
            "{args:?}: {}",
            done.stderr
        );
        assert!(!done.stderr.contains("ya29."), "{}", done.stderr);
        assert!(!ran.exists(), "{args:?}: curl was started");
        assert_eq!(refreshes(), 0, "{args:?}: a token was fetched");
    }
    for args in [
        &["-sS", "https://generativelanguage.googleapis.com/v1/models"][..],
        &["http://127.0.0.1:9/v1/models"],
        &["http://localhost:9/"],
        &["http://[::1]:9/"],
        &["--url", "https://example.com/"],
        // Values of curl's options are not URLs.
        &[
            "-o",
            "http.txt",
            "-A",
            "agent",
            "-d",
            "x=http://example.com",
            "https://a.example/",
        ],
        &[
            "-w",
            "%{http_code}",
            "--proto-default",
            "https",
            "example.com",
        ],
    ] {
        let _ = std::fs::remove_file(&ran);
        let done = curl(args);
        assert_eq!(done.code(), 0, "{args:?}: {}", done.stderr);
        assert!(ran.exists(), "{args:?}: curl did not run");
    }
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        #[cfg(unix)]
        an_interrupted_curl_leaves_no_file_with_the_token,
        leftover_header_files_of_earlier_runs_are_removed,
        #[cfg(unix)]
        plain_http_to_another_host_is_refused_before_anything_is_sent,
    ]
}
