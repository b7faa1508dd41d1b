//! The process around the commands, which gemauth's own `main` sets up (it skips Rust's runtime
//! start-up): closed standard descriptors, a reader that goes away, arguments that are not UTF-8.

#![cfg(unix)]

mod common;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

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

#[test]
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

#[test]
fn programs_gemauth_runs_get_dev_null_for_closed_fds_and_the_default_sigpipe() {
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

#[test]
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

#[test]
fn arguments_that_are_not_utf8_reach_the_command_intact() {
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

/// Whether an ELF executable has no program interpreter (PT_INTERP), i.e. is statically linked.
fn is_static_elf(path: &Path) -> bool {
    let bytes = std::fs::read(path).unwrap();
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap()) as usize;
    assert_eq!(&bytes[..5], b"\x7fELF\x02", "not a 64-bit ELF file");
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum).all(|i| {
        let p_type = u32::from_le_bytes(bytes[phoff + i * phentsize..][..4].try_into().unwrap());
        p_type != 3 // PT_INTERP
    })
}

/// Runs the binary under test in a private mount namespace where `nsswitch` (and, when given,
/// `passwd`) replace /etc/nsswitch.conf (and /etc/passwd).
fn run_in_namespace(
    env: &TestEnv,
    nsswitch: &str,
    passwd: Option<&str>,
    args: &[&str],
    unset: &[&str],
) -> std::process::Output {
    let nsswitch_file = env.path("nsswitch.conf");
    std::fs::write(&nsswitch_file, nsswitch).unwrap();
    let passwd_file = env.path("passwd");
    std::fs::write(&passwd_file, passwd.unwrap_or("")).unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "sh", "-c"])
        .arg(
            "mount --bind \"$1\" /etc/nsswitch.conf && \
             { [ \"$2\" = no ] || mount --bind \"$3\" /etc/passwd; } && shift 3 && exec \"$@\"",
        )
        .arg("sh")
        .arg(&nsswitch_file)
        .arg(if passwd.is_some() { "yes" } else { "no" })
        .arg(&passwd_file)
        .arg(gemauth_binary())
        .args(args)
        .stdin(Stdio::null());
    env.isolate(&mut cmd);
    for var in unset {
        cmd.env_remove(var);
    }
    cmd.output().unwrap()
}

fn assert_token(output: &std::process::Output, token: &str) {
    assert_eq!(
        (output.status.code(), output.status.signal()),
        (Some(0), None),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{token}\n")
    );
}

/// The statically linked release build (README, "Install") looks names up with glibc's built-in
/// services only (`src/names.rs`), whatever /etc/nsswitch.conf says:
/// - `hosts: myhostname`: that module, built against the system's glibc, crashes a static
///   binary that loads it (a segfault, seen on the very glibc it was linked with); gemauth must
///   resolve `localhost` from /etc/hosts instead.
/// - `hosts: nosuchmodule` and `passwd: nosuchmodule`, with HOME unset: a lookup through the
///   configured services would fail; gemauth must resolve `localhost` and find the home
///   directory (and the ADC file in it) in /etc/passwd.
///
/// Runs as root with `unshare` (a private mount namespace for those files) and
/// libnss-myhostname installed, on the binary in GEMAUTH_TEST_BINARY: `.ci/run` provides all
/// that and sets GEMAUTH_REQUIRE_STATIC=1 so that a missing piece fails instead of skipping.
#[test]
fn the_static_build_looks_names_up_with_built_in_services_only() {
    let required = std::env::var("GEMAUTH_REQUIRE_STATIC").as_deref() == Ok("1");
    let binary = gemauth_binary();
    let module = ["x86_64-linux-gnu", "aarch64-linux-gnu"]
        .iter()
        .map(|triple| {
            Path::new("/lib")
                .join(triple)
                .join("libnss_myhostname.so.2")
        })
        .find(|path| path.exists());
    let unshare_works = Command::new("unshare")
        .args(["-m", "true"])
        .status()
        .is_ok_and(|s| s.success());
    let missing = if !is_static_elf(&binary) {
        Some(format!("{} is not statically linked", binary.display()))
    } else if !unshare_works {
        Some("`unshare -m` does not work here (needs root)".to_string())
    } else if module.is_none() {
        Some("libnss-myhostname is not installed".to_string())
    } else {
        None
    };
    if let Some(why) = missing {
        assert!(!required, "GEMAUTH_REQUIRE_STATIC=1 but {why}");
        eprintln!("SKIPPED: {why}; `bash .ci/run` tests the static build");
        return;
    }
    let env = TestEnv::new();
    env.google.add_refresh_token("1//nss");
    let port = env.google.base.rsplit(':').next().unwrap().to_string();
    let credential = serde_json::json!({
        "type": "authorized_user",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": "1//nss",
        "token_uri": format!("http://localhost:{port}/token"),
    });
    let cred = env.write_json("cred.json", &credential);

    let output = run_in_namespace(
        &env,
        "passwd: files\ngroup: files\nhosts: myhostname\n",
        None,
        &[
            "print-access-token",
            "--credential-file",
            cred.to_str().unwrap(),
        ],
        &[],
    );
    assert_token(&output, "ya29.access-1");

    let home = env.path("passwd-home");
    let adc = home.join(".config/gcloud/application_default_credentials.json");
    std::fs::create_dir_all(adc.parent().unwrap()).unwrap();
    write_private(&adc, credential.to_string().as_bytes());
    let output = run_in_namespace(
        &env,
        "passwd: nosuchmodule\ngroup: nosuchmodule\nhosts: nosuchmodule\n",
        Some(&format!("root:x:0:0:root:{}:/bin/sh\n", home.display())),
        &["print-access-token"],
        &[
            "HOME",
            "XDG_CONFIG_HOME",
            "XDG_CACHE_HOME",
            "CLOUDSDK_CONFIG",
        ],
    );
    assert_token(&output, "ya29.access-2");
    assert!(
        home.join(".cache/gemauth/tokens").is_dir(),
        "the cache went under the home directory from /etc/passwd"
    );
}
