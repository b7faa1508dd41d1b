//! `status`, quota project, output formats, `curl`, completions and man page, help texts, and
//! the library API through the examples.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::*;
use crate::runner::{Trial, trials};

fn json_of(done: &Finished) -> serde_json::Value {
    assert_eq!(done.code(), 0, "{}", done.stderr);
    serde_json::from_str(&done.stdout).unwrap_or_else(|e| panic!("{e}: {}", done.stdout))
}

fn status_reports_the_credential_without_network() {
    let env = TestEnv::new();
    env.login();
    let requests = env.google.seen("/token").len();
    let text = env.run(&["status"]);
    assert_eq!(text.code(), 0, "{}", text.stderr);
    let adc = env.adc_path().display().to_string();
    for expected in [
        format!("Credential file: {adc} (from CLOUDSDK_CONFIG)"),
        "Type:            authorized_user".into(),
        format!("Account:         {EMAIL}"),
        format!("Client ID:       {CLIENT_ID}"),
        format!("Quota project:   {PROJECT_ID}"),
        "Universe domain: googleapis.com".into(),
        "https://www.googleapis.com/auth/cloud-platform".into(),
        "valid until".into(),
        #[cfg(unix)]
        "File mode:       0600".into(),
    ] {
        assert!(
            text.stdout.contains(&expected),
            "missing {expected:?} in:\n{}",
            text.stdout
        );
    }
    // Windows files have access lists, not modes.
    assert_eq!(text.stdout.contains("File mode:"), cfg!(unix));
    assert!(!text.stdout.contains("warning"));
    assert!(!text.stdout.contains("ya29.") && !text.stdout.contains("1//"));

    let json = json_of(&env.run(&["status", "--format", "json"]));
    assert_eq!(json["credential_file"], adc);
    assert_eq!(json["source"], "CLOUDSDK_CONFIG");
    assert_eq!(json["type"], "authorized_user");
    assert_eq!(json["account"], EMAIL);
    assert_eq!(json["client_id"], CLIENT_ID);
    assert_eq!(json["quota_project_id"], PROJECT_ID);
    assert_eq!(json["universe_domain"], "googleapis.com");
    assert_eq!(json["scopes"].as_array().unwrap().len(), 4);
    assert_eq!(json["cached_token"]["fresh"], true);
    assert!(json["cached_token"]["expires_in"].as_u64().unwrap() > 3000);
    let mode = if cfg!(unix) {
        "0600".into()
    } else {
        serde_json::Value::Null
    };
    assert_eq!(json["file_mode"], mode);
    assert_eq!(json["warnings"], serde_json::json!([]));
    assert!(json.get("check").is_none());
    assert_eq!(
        env.google.seen("/token").len(),
        requests,
        "no network without --check"
    );
}

fn status_warns_about_shadowing_and_exposed_files() {
    let env = TestEnv::new();
    env.write_credentials(&env.adc_path(), "1//adc");
    let other = env.path("other.json");
    env.write_credentials(&other, "1//other");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut cmd = env.cmd();
    cmd.args(["status", "--format", "json"])
        .env("GOOGLE_APPLICATION_CREDENTIALS", &other);
    let json = json_of(&Running::spawn(cmd, env.path("browser-args")).finish());
    assert_eq!(json["source"], "GOOGLE_APPLICATION_CREDENTIALS");
    assert_eq!(json["credential_file"], other.display().to_string());
    let warnings = json["warnings"].to_string();
    assert!(warnings.contains("shadows"), "{warnings}");
    #[cfg(unix)]
    assert!(warnings.contains("readable by other users"), "{warnings}");
    assert_eq!(json["cached_token"], serde_json::Value::Null);
}

fn status_check_uses_the_server_only_when_asked() {
    let env = TestEnv::new();
    env.write_credentials(&env.adc_path(), "1//r");
    let json = json_of(&env.run(&["status", "--format", "json", "--check"]));
    assert_eq!(json["check"]["ok"], true);
    assert_eq!(env.google.seen_grants("refresh_token").len(), 1);
    let again = json_of(&env.run(&["status", "--format", "json", "--check"]));
    assert_eq!(again["check"]["ok"], true);
    assert_eq!(env.google.seen_grants("refresh_token").len(), 1, "cached");

    env.expire_cache();
    env.google.enqueue("/token", Canned::expired_grant());
    let failed = env.run(&["status", "--check"]);
    assert_eq!(failed.code(), 3);
    assert_eq!(failed.stdout, "");
    assert!(
        failed.stderr.contains("Check:           FAILED"),
        "{}",
        failed.stderr
    );
    assert!(failed.stderr.contains("invalid_grant"));
    assert!(failed.stderr.contains("hint: run `gemauth login"));
}

/// Not signed in: `status` still reports (where it looked, in order, and what to run) on stdout,
/// in text and JSON, with exit 3 and the error on stderr.
fn status_without_credentials_exits_3() {
    let env = TestEnv::new();
    let done = env.run(&["status"]);
    assert_eq!(done.code(), 3, "{}", done.stderr);
    assert!(
        done.stderr.contains("no credentials found"),
        "{}",
        done.stderr
    );
    let adc = env.adc_path().display().to_string();
    let lines: Vec<&str> = done.stdout.lines().collect();
    assert_eq!(lines[0], "Credentials:     none (not signed in)");
    assert_eq!(
        lines[1],
        "Looked in:       1. GOOGLE_APPLICATION_CREDENTIALS: not set"
    );
    assert_eq!(
        lines[2],
        format!("                 2. {adc}: does not exist")
    );
    assert!(
        lines[3]
            .starts_with("                 3. the metadata server: no answer at http://127.0.0.1:"),
        "{}",
        done.stdout
    );
    assert_eq!(
        lines[4],
        "Sign in with:    gemauth login --client-id-file client_secret.json"
    );

    // Never the real metadata server: with NO_GCE_CHECK, none is asked.
    let done = env.run_with(
        &["status", "--format", "json"],
        &[("GCE_METADATA_HOST", ""), ("NO_GCE_CHECK", "true")],
    );
    assert_eq!(done.code(), 3, "{}", done.stderr);
    let report: serde_json::Value = serde_json::from_str(&done.stdout).unwrap();
    assert_eq!(
        report,
        serde_json::json!({
            "signed_in": false,
            "searched": [
                {"place": "GOOGLE_APPLICATION_CREDENTIALS", "found": "not set"},
                {"place": adc, "found": "does not exist"},
                {"place": "the metadata server", "found": "not asked (NO_GCE_CHECK is set)"},
            ],
            "sign_in": "gemauth login --client-id-file client_secret.json",
        })
    );
}

fn quota_project_is_set_atomically_and_printed() {
    let env = TestEnv::new();
    let path = env.adc_path();
    env.write_credentials(&path, "1//r");
    let done = env.run(&["print-quota-project"]);
    assert_eq!(done.stdout, format!("{PROJECT_ID}\n"));

    let done = env.run(&["set-quota-project", "billing-project-42"]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "");
    assert!(done.stderr.contains("billing-project-42"));
    let written = read_json(&path);
    assert_eq!(written["quota_project_id"], "billing-project-42");
    assert_eq!(written["refresh_token"], "1//r");
    assert_eq!(written["custom_field"], serde_json::json!({"kept": true}));
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);
    assert_eq!(
        env.run(&["print-quota-project"]).stdout,
        "billing-project-42\n"
    );

    let mut cmd = env.cmd();
    cmd.arg("print-quota-project")
        .env("GOOGLE_CLOUD_QUOTA_PROJECT", "env-project");
    let done = Running::spawn(cmd, env.path("browser-args")).finish();
    assert_eq!(done.stdout, "env-project\n");

    let before = std::fs::read(&path).unwrap();
    let bad = env.run(&["set-quota-project", "Not A Project"]);
    assert_eq!(bad.code(), 2, "{}", bad.stderr);
    assert_eq!(std::fs::read(&path).unwrap(), before);

    let mut value = read_json(&path);
    value.as_object_mut().unwrap().remove("quota_project_id");
    std::fs::write(&path, value.to_string()).unwrap();
    let none = env.run(&["print-quota-project"]);
    assert_eq!(none.code(), 1);
    assert_eq!(none.stdout, "");
    assert!(none.stderr.contains("set-quota-project"), "{}", none.stderr);

    let empty = TestEnv::new();
    assert_eq!(empty.run(&["set-quota-project", "some-project"]).code(), 3);
    assert_eq!(empty.run(&["print-quota-project"]).code(), 3);
}

fn token_output_formats_and_min_lifetime() {
    let env = TestEnv::new();
    env.login();
    let header = env.run(&["print-access-token", "--format", "header"]);
    assert_eq!(header.stdout, "Authorization: Bearer ya29.access-2\n");
    let json = json_of(&env.run(&["print-access-token", "--format", "json"]));
    assert_eq!(json["access_token"], "ya29.access-2");
    assert_eq!(json["token_type"], "Bearer");
    assert_eq!(json["quota_project_id"], PROJECT_ID);
    assert_eq!(json["scopes"].as_array().unwrap().len(), 4);
    let expires = json["expires_at"].as_str().unwrap();
    let at = humantime::parse_rfc3339(expires).expect("RFC 3339");
    let left = at
        .duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs();
    assert!((3000..=3600).contains(&left), "{expires}");
    assert!(env.google.seen_grants("refresh_token").is_empty());

    // A cached token with ~1 h left satisfies 60 s but not 4000 s.
    let short = env.run(&["print-access-token", "--min-lifetime", "60"]);
    assert_eq!(short.stdout, "ya29.access-2\n");
    assert!(env.google.seen_grants("refresh_token").is_empty());
    let long = env.run(&["print-access-token", "--min-lifetime", "4000"]);
    assert_eq!(long.code(), 0, "{}", long.stderr);
    assert_eq!(long.stdout, "ya29.access-3\n");
    assert_eq!(env.google.seen_grants("refresh_token").len(), 1);
}

#[cfg(unix)]
fn curl_available() -> bool {
    Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The wrapper that records curl's arguments is a shell script.
#[cfg(unix)]
fn curl_adds_the_headers_and_passes_its_exit_code_through() {
    assert!(
        curl_available(),
        "curl is needed for this test (`bash .ci/run` installs it)"
    );
    let env = TestEnv::new();
    env.login();
    // A wrapper records curl's arguments: the token must not be among them.
    let wrapper = env.path("curl-wrapper.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\nexec curl \"$@\"\n",
            env.path("curl-args").display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let url = format!("{}/v1/models", env.google.base);
    let mut cmd = env.cmd();
    cmd.args(["curl", "-sS", &url])
        .env("GEMAUTH_CURL", &wrapper);
    let done = Running::spawn(cmd, env.path("browser-args")).finish();
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(
        done.stdout.contains("models/gemini-test-pro"),
        "{}",
        done.stdout
    );
    let seen = env.google.seen("/v1/models");
    assert_eq!(seen[0].headers["authorization"], "Bearer ya29.access-2");
    assert_eq!(seen[0].headers["x-goog-user-project"], PROJECT_ID);
    let args = std::fs::read_to_string(env.path("curl-args")).unwrap();
    assert!(
        !args.contains("ya29."),
        "token on curl's command line: {args}"
    );
    assert!(args.contains(&url));
    // The header file is gone once curl has finished.
    let leftovers: Vec<_> = std::fs::read_dir(env.cache_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".curl-headers-")
        })
        .collect();
    assert!(leftovers.is_empty());

    let failing = env.run(&[
        "curl",
        "-sS",
        "--fail",
        &format!("{}/missing", env.google.base),
    ]);
    assert_eq!(failing.code(), 22, "curl's --fail code: {}", failing.stderr);

    let mut cmd = env.cmd();
    cmd.args(["curl", &url])
        .env("GEMAUTH_CURL", env.path("no-curl"));
    let missing = Running::spawn(cmd, env.path("browser-args")).finish();
    assert_eq!(missing.code(), 1);
    assert!(
        missing.stderr.contains("GEMAUTH_CURL"),
        "{}",
        missing.stderr
    );

    let nothing = TestEnv::new().run(&["curl", &url]);
    assert_eq!(nothing.code(), 3, "no credentials: {}", nothing.stderr);
}

#[cfg(unix)]
/// `gemauth completions SHELL` in a file, after checking that it names every subcommand's options.
fn completion_script(env: &TestEnv, shell: &str) -> PathBuf {
    let done = env.run(&["completions", shell]);
    assert_eq!(done.code(), 0, "{shell}: {}", done.stderr);
    assert!(done.stdout.len() > 500, "{shell}: {}", done.stdout);
    assert!(done.stdout.contains("print-access-token"), "{shell}");
    // Every subcommand's own options are there (clap builds them only on demand).
    for option in [
        "client-id-file",
        "min-lifetime",
        "force",
        "check",
        "no-browser",
    ] {
        // `--check` in most shells' syntax, `-l check` in fish's (not the word in a help line).
        assert!(
            done.stdout.contains(&format!("--{option}"))
                || done.stdout.contains(&format!("-l {option}")),
            "{shell}: {option}"
        );
    }
    let script = env.path(&format!("completion.{shell}"));
    std::fs::write(&script, &done.stdout).unwrap();
    script
}

#[cfg(unix)]
/// Checks that `check` (a shell's parse-only mode) accepts the completion script for `shell`.
fn assert_shell_parses(shell: &str, check: &[&str]) {
    let env = TestEnv::new();
    let script = completion_script(&env, shell);
    let out = Command::new(check[0])
        .args(&check[1..])
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shell} (`bash .ci/run` installs it): {e}"));
    assert!(
        out.status.success(),
        "{shell}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The shells and groff are Unix programs.
#[cfg(unix)]
fn completions_and_the_man_page_are_generated_and_bash_parses_them() {
    let env = TestEnv::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        completion_script(&env, shell);
    }
    assert_shell_parses("bash", &["bash", "-n"]);
    let bad = env.run(&["completions", "tcsh"]);
    assert_eq!(bad.code(), 2);

    let man = env.run(&["man"]);
    assert_eq!(man.code(), 0);
    assert!(
        man.stdout.starts_with(".ie") || man.stdout.contains(".TH gemauth"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );
}

#[cfg(unix)]
fn zsh_parses_the_completions() {
    assert_shell_parses("zsh", &["zsh", "-n"]);
}

#[cfg(unix)]
fn fish_parses_the_completions() {
    assert_shell_parses("fish", &["fish", "--no-execute"]);
}

fn every_help_text_has_an_example() {
    let env = TestEnv::new();
    for sub in [
        "login",
        "print-access-token",
        "revoke",
        "status",
        "set-quota-project",
        "print-quota-project",
        "curl",
        "completions",
        "man",
    ] {
        let done = env.run(&[sub, "--help"]);
        assert_eq!(done.code(), 0, "{sub}");
        assert!(
            done.stdout.contains("Example"),
            "{sub} --help has no example:\n{}",
            done.stdout
        );
    }
    let top = env.run(&["--help"]);
    assert!(top.stdout.contains("Exit codes"));
}

fn example_binary(name: &str) -> PathBuf {
    // Integration tests live in target/<profile>/deps; examples in target/<profile>/examples.
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

fn rust_example_lists_models_with_the_library_api() {
    let env = TestEnv::new();
    env.write_credentials(&env.adc_path(), "1//r");
    let binary = example_binary("list_models");
    assert!(
        binary.exists(),
        "cargo test builds examples: {}",
        binary.display()
    );
    let out = Command::new(&binary)
        .env_clear()
        // Windows sockets need SystemRoot.
        .envs(std::env::var_os("SystemRoot").map(|v| ("SystemRoot", v)))
        .env("HOME", env.path("home"))
        .env("XDG_CACHE_HOME", env.path("cache"))
        .env("LOCALAPPDATA", env.path("cache"))
        .env("CLOUDSDK_CONFIG", env.gcloud_dir())
        .env("GEMINI_API_BASE", &env.google.base)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "models/gemini-test-pro\nmodels/gemini-test-flash\n");
    assert_eq!(env.google.seen_grants("refresh_token").len(), 1);
    assert_eq!(
        env.google.seen("/v1/models")[0].headers["x-goog-user-project"],
        PROJECT_ID
    );
    // The token the library cached is the one the CLI prints.
    assert_eq!(env.run(&["print-access-token"]).stdout, "ya29.access-1\n");

    // Not signed in: exit 3 and a hint, as the binary does.
    let empty = TestEnv::new();
    let out = Command::new(&binary)
        .env_clear()
        .envs(std::env::var_os("SystemRoot").map(|v| ("SystemRoot", v)))
        .env("HOME", empty.path("home"))
        .env("XDG_CACHE_HOME", empty.path("cache"))
        .env("LOCALAPPDATA", empty.path("cache"))
        .env("CLOUDSDK_CONFIG", empty.gcloud_dir())
        .env("NO_GCE_CHECK", "true")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.starts_with("error: no credentials found"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: run `gemauth login --client-id-file client_secret.json`"),
        "{stderr}"
    );
}

/// The example is a bash script.
#[cfg(unix)]
fn shell_example_lists_models_with_curl() {
    assert!(
        curl_available(),
        "curl is needed for this test (`bash .ci/run` installs it)"
    );
    let env = TestEnv::new();
    env.write_credentials(&env.adc_path(), "1//r");
    // The script runs `gemauth`: the binary under test, whatever its file name.
    let bin_dir = env.path("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    std::os::unix::fs::symlink(gemauth_binary(), bin_dir.join("gemauth")).unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/gemini-curl.sh");
    let mut shell = Command::new("bash");
    env.isolate(&mut shell)
        .arg(script)
        .arg("my-billing-project")
        .env("PATH", path)
        .env("GEMINI_API_BASE", &env.google.base);
    let out = shell.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("models/gemini-test-flash"));
    assert_eq!(
        env.google.seen("/v1/models")[0].headers["x-goog-user-project"],
        "my-billing-project"
    );
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        status_reports_the_credential_without_network,
        status_warns_about_shadowing_and_exposed_files,
        status_check_uses_the_server_only_when_asked,
        status_without_credentials_exits_3,
        quota_project_is_set_atomically_and_printed,
        token_output_formats_and_min_lifetime,
        #[cfg(unix)] curl_adds_the_headers_and_passes_its_exit_code_through => Curl,
        #[cfg(unix)] completions_and_the_man_page_are_generated_and_bash_parses_them,
        #[cfg(unix)] zsh_parses_the_completions => Zsh,
        #[cfg(unix)] fish_parses_the_completions => Fish,
        every_help_text_has_an_example,
        rust_example_lists_models_with_the_library_api,
        #[cfg(unix)] shell_example_lists_models_with_curl => Curl,
    ]
}
