//! `login` checks that it can write the credential file before the user signs in: a destination
//! that cannot be written fails at once, naming the path, before any URL is printed or any
//! browser opened, and changes nothing on disk.

use std::path::Path;

use crate::harness::*;
use crate::runner::{Trial, trials};

/// Runs a login that must fail before the sign-in starts; returns its stderr.
fn login_fails_before_signing_in(env: &TestEnv, args: &[&str], vars: &[(&str, &Path)]) -> String {
    login_as_fails_before_signing_in(env, env.cmd(), args, vars)
}

/// [`login_fails_before_signing_in`] with `cmd` as the command that runs gemauth.
fn login_as_fails_before_signing_in(
    env: &TestEnv,
    mut cmd: std::process::Command,
    args: &[&str],
    vars: &[(&str, &Path)],
) -> String {
    let client = env.client_file();
    cmd.arg("login")
        .arg("--client-id-file")
        .arg(&client)
        .args(["--timeout", "3"])
        .args(args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let done = Running::spawn(cmd, env.path("browser-args")).finish();
    assert_ne!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "");
    assert!(
        !done.stderr.contains("/auth?"),
        "the authorization URL was printed: {}",
        done.stderr
    );
    assert!(
        !env.path("browser-args").exists(),
        "the browser was opened: {}",
        done.stderr
    );
    assert!(env.google.seen("/token").is_empty());
    let lines: Vec<&str> = done.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", done.stderr);
    assert!(lines[0].starts_with("error: "), "{}", done.stderr);
    assert!(lines[1].starts_with("hint: "), "{}", done.stderr);
    done.stderr
}

fn cloudsdk_config_naming_a_file_fails_before_the_sign_in() {
    let env = TestEnv::new();
    let file = env.path("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let stderr = login_fails_before_signing_in(&env, &[], &[("CLOUDSDK_CONFIG", &file)]);
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    assert!(stderr.contains("not a directory"), "{stderr}");
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

/// Holds as root too: nobody can create a file under a regular file.
fn a_destination_under_a_regular_file_fails_before_the_sign_in() {
    let env = TestEnv::new();
    let file = env.path("plain-file");
    std::fs::write(&file, "x").unwrap();
    let target = file.join("sub").join("adc.json");
    let stderr =
        login_fails_before_signing_in(&env, &["--credential-file", target.to_str().unwrap()], &[]);
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    assert!(stderr.contains("not a directory"), "{stderr}");
    // The same through CLOUDSDK_CONFIG.
    let stderr =
        login_fails_before_signing_in(&env, &[], &[("CLOUDSDK_CONFIG", &file.join("gcloud"))]);
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

/// A read-only directory. Root writes into one anyway, so under root (as in CI) gemauth runs as
/// `nobody` (with `setpriv`), in a test directory opened up for it.
#[cfg(unix)]
fn a_read_only_directory_fails_before_the_sign_in() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    let as_nobody = running_as_root();
    let gemauth = || {
        if !as_nobody {
            return env.cmd();
        }
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(gemauth_binary())
            .stdin(std::process::Stdio::null());
        env.isolate(&mut cmd);
        cmd
    };
    if as_nobody {
        let open = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(env.dir.path(), open).unwrap();
        std::fs::set_permissions(env.client_file(), std::fs::Permissions::from_mode(0o644))
            .unwrap();
    }
    let dir = env.path("read-only");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let target = dir.join("adc.json");
    let stderr = login_as_fails_before_signing_in(
        &env,
        gemauth(),
        &["--credential-file", target.to_str().unwrap()],
        &[],
    );
    assert!(stderr.contains(&dir.display().to_string()), "{stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");
    let stderr =
        login_as_fails_before_signing_in(&env, gemauth(), &[], &[("CLOUDSDK_CONFIG", &dir)]);
    assert!(stderr.contains(&dir.display().to_string()), "{stderr}");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "a file was created"
    );
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A destination whose directories do not exist yet is fine: login creates them, and checking
/// first creates nothing.
fn missing_directories_are_still_created_by_the_login() {
    let env = TestEnv::new();
    let target = env.path("new/deeper/adc.json");
    let run = env.start_login(&["--credential-file", target.to_str().unwrap()]);
    let url = run.browser_url();
    assert!(!env.path("new").exists(), "created before the sign-in");
    let page = follow_authorization(&url);
    assert_eq!(page.status, 200, "{}", page.body);
    let done = run.finish();
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(target.is_file());
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        cloudsdk_config_naming_a_file_fails_before_the_sign_in,
        a_destination_under_a_regular_file_fails_before_the_sign_in,
        #[cfg(unix)]
        a_read_only_directory_fails_before_the_sign_in,
        missing_directories_are_still_created_by_the_login,
    ]
}
