//! What gemauth reads back from disk is not trusted, and every error says what to do next: credential, client and cache files are read
//! bounded and without blocking, cache entries are checked before they are believed, and a full
//! disk is found before a rotating refresh token is spent.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::runner::{Trial, trials};
use serde_json::{Value, json};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
}

/// Runs `args` and checks that it failed at once, with one `error:` line naming the problem, a
/// `hint:`, and nothing on stdout.
fn assert_refused(env: &TestEnv, args: &[&str], code: i32, problem: &str) {
    let started = Instant::now();
    let out = env.run(args);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{args:?} took {:?}",
        started.elapsed()
    );
    assert_eq!(out.code(), code, "{args:?}: {}", out.stderr);
    assert_eq!(out.stdout, "", "{args:?}");
    assert!(out.stderr.contains(problem), "{args:?}: {}", out.stderr);
    assert_eq!(out.stderr.matches("error:").count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("\nhint: "), "{}", out.stderr);
}

#[cfg(unix)]
fn a_fifo_or_a_device_as_credential_file_is_refused_at_once() {
    let env = TestEnv::new();
    let fifo = env.path("fifo.json");
    mkfifo(&fifo);
    for path in [fifo.to_str().unwrap(), "/dev/zero"] {
        let kind = if path == "/dev/zero" {
            "it is a device"
        } else {
            "it is a FIFO"
        };
        for command in ["print-access-token", "status", "print-quota-project"] {
            assert_refused(&env, &[command, "--credential-file", path], 3, kind);
        }
    }
    // A FIFO as the client secret file of a login.
    assert_refused(
        &env,
        &["login", "--client-id-file", fifo.to_str().unwrap()],
        1,
        "it is a FIFO",
    );
    assert!(env.google.seen("/token").is_empty());
}

fn an_oversized_credential_file_is_refused_without_reading_it_all() {
    let env = TestEnv::new();
    let big = env.path("big.json");
    // Valid JSON padded past the 1 MiB cap.
    let mut bytes = b"{\"type\": \"authorized_user\"".to_vec();
    bytes.resize(2 * 1024 * 1024, b' ');
    bytes.push(b'}');
    write_private(&big, &bytes);
    assert_refused(
        &env,
        &[
            "print-access-token",
            "--credential-file",
            big.to_str().unwrap(),
        ],
        3,
        "is larger than 1024 KiB",
    );
    // A sparse file of 2 GiB costs no disk and must cost no memory either.
    let sparse = env.path("sparse.json");
    let file = std::fs::File::create(&sparse).unwrap();
    file.set_len(2 << 30).unwrap();
    assert_refused(
        &env,
        &["status", "--credential-file", sparse.to_str().unwrap()],
        3,
        "is larger than 1024 KiB",
    );
}

#[cfg(unix)]
fn a_symlink_loop_is_reported_as_such() {
    let env = TestEnv::new();
    let a = env.path("a.json");
    let b = env.path("b.json");
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    assert_refused(
        &env,
        &[
            "print-access-token",
            "--credential-file",
            a.to_str().unwrap(),
        ],
        3,
        "symbolic link loop",
    );
    // The same at the well-known location: not "no credentials found".
    std::fs::create_dir_all(env.gcloud_dir()).unwrap();
    std::os::unix::fs::symlink(&a, env.adc_path()).unwrap();
    assert_refused(&env, &["print-access-token"], 3, "symbolic link loop");
    // Not "nothing to revoke" or "no credentials found" either.
    assert_refused(&env, &["revoke"], 3, "symbolic link loop");
    assert_refused(
        &env,
        &["set-quota-project", "my-project-123"],
        3,
        "symbolic link loop",
    );
    assert!(env.google.seen("/revoke").is_empty());
}

#[cfg(unix)]
fn a_fifo_as_dockers_config_is_refused_at_once() {
    let env = TestEnv::new();
    env.write_credentials(&env.adc_path(), "1//r");
    let docker = env.path("docker");
    std::fs::create_dir_all(&docker).unwrap();
    mkfifo(&docker.join("config.json"));
    let run = |args: &[&str]| {
        let started = Instant::now();
        let mut cmd = env.cmd();
        cmd.args(args).env("DOCKER_CONFIG", &docker);
        let out = Running::spawn(cmd, env.path("browser-args")).finish();
        assert!(started.elapsed() < Duration::from_secs(10), "{args:?} hung");
        out
    };
    let status = run(&["status"]);
    assert_eq!(status.code(), 0, "{}", status.stderr);
    let configure = run(&["configure-docker", "gcr.io"]);
    assert_eq!(configure.code(), 1, "{}", configure.stderr);
    assert!(
        configure.stderr.contains("it is a FIFO"),
        "{}",
        configure.stderr
    );
    assert!(
        configure.stderr.contains("\nhint: "),
        "{}",
        configure.stderr
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::metadata(docker.join("config.json"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
}

fn a_token_that_is_already_dead_is_never_printed() {
    let env = TestEnv::new();
    env.write_credentials(&env.adc_path(), "1//r");
    env.google
        .enqueue("/token", Canned::access_token("ya29.dead", 0));
    let out = env.run(&["print-access-token"]);
    assert_eq!(out.code(), 1, "{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("already expired"), "{}", out.stderr);
    assert!(env.cached_tokens().is_empty());
    // The next call gets a sound token.
    assert_eq!(env.run(&["print-access-token"]).stdout, "ya29.access-1\n");
}

/// A credential with a cached token; returns the cache entry's path.
fn cached_credential(env: &TestEnv) -> std::path::PathBuf {
    env.write_credentials(&env.adc_path(), "1//refresh-a");
    let out = env.run(&["print-access-token"]);
    assert_eq!(out.stdout, "ya29.access-1\n", "{}", out.stderr);
    let entries = env.cached_tokens();
    assert_eq!(entries.len(), 1);
    entries[0].clone()
}

fn edit_entry(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut entry = read_json(path);
    edit(&mut entry);
    std::fs::write(path, entry.to_string()).unwrap();
}

#[cfg(unix)]
fn a_fifo_at_the_cache_path_means_a_refresh_not_a_hang() {
    let env = TestEnv::new();
    let entry = cached_credential(&env);
    std::fs::remove_file(&entry).unwrap();
    mkfifo(&entry);
    let started = Instant::now();
    let status = env.run(&["status"]);
    assert_eq!(status.code(), 0, "{}", status.stderr);
    assert!(
        status.stdout.contains("Cached token:    none"),
        "{}",
        status.stdout
    );
    let out = env.run(&["print-access-token"]);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(out.stdout, "ya29.access-2\n");
    assert!(
        std::fs::metadata(&entry).unwrap().is_file(),
        "replaced by a real entry"
    );
    assert_eq!(env.google.seen("/token").len(), 2);
}

fn a_forged_token_in_the_cache_is_never_printed() {
    let env = TestEnv::new();
    let entry = cached_credential(&env);
    edit_entry(&entry, |e| e["access_token"] = json!("ya29.x\r\nX-Evil: 1"));
    let out = env.run(&["print-access-token", "--format", "header"]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(out.stdout, "Authorization: Bearer ya29.access-2\n");
    for bad in ["", "ya29 with space", "ya29.\u{7f}"] {
        edit_entry(&entry, |e| e["access_token"] = json!(bad));
        let out = env.run(&["print-access-token"]);
        assert_eq!(out.code(), 0, "{}", out.stderr);
        assert!(!out.stdout.contains(bad) || bad.is_empty(), "{bad:?}");
        assert!(out.stdout.starts_with("ya29.access-"), "{:?}", out.stdout);
    }
    assert_eq!(env.google.seen("/token").len(), 5);
}

fn an_entry_copied_from_another_credential_is_not_believed() {
    let env = TestEnv::new();
    let alice = env.path("alice.json");
    let bob = env.path("bob.json");
    env.write_credentials(&alice, "1//alice");
    env.write_credentials(&bob, "1//bob");
    let run = |file: &Path| {
        env.run(&[
            "print-access-token",
            "--credential-file",
            file.to_str().unwrap(),
        ])
    };
    assert_eq!(run(&alice).stdout, "ya29.access-1\n");
    let alice_entry = env.cached_tokens().pop().unwrap();
    assert_eq!(run(&bob).stdout, "ya29.access-2\n");
    let bob_entry = env
        .cached_tokens()
        .into_iter()
        .find(|p| p != &alice_entry)
        .unwrap();
    // Alice's token, planted in Bob's entry.
    std::fs::copy(&alice_entry, &bob_entry).unwrap();
    let out = run(&bob);
    assert_eq!(out.stdout, "ya29.access-3\n", "not alice's token");
    assert_eq!(
        run(&alice).stdout,
        "ya29.access-1\n",
        "alice's own entry still serves"
    );
    assert_eq!(env.google.seen("/token").len(), 3);
}

fn future_dated_and_overlong_entries_are_stale() {
    let env = TestEnv::new();
    let entry = cached_credential(&env);
    let now = now();
    // Written by a clock two hours ahead.
    edit_entry(&entry, |e| {
        e["obtained_at"] = json!(now + 7200);
        e["expires_at"] = json!(now + 7200 + 3600);
    });
    assert_eq!(env.run(&["print-access-token"]).stdout, "ya29.access-2\n");
    // Ten years of lifetime: more than any server gives (a week is the cap).
    edit_entry(&entry, |e| {
        e["obtained_at"] = json!(now - 60);
        e["expires_at"] = json!(now + 10 * 365 * 86400);
    });
    assert_eq!(env.run(&["print-access-token"]).stdout, "ya29.access-3\n");
    // Garbage instead of JSON, and JSON of the wrong shape.
    for garbage in ["not json", "[1,2]", "{\"access_token\": 5}"] {
        std::fs::write(&entry, garbage).unwrap();
        let out = env.run(&["print-access-token"]);
        assert_eq!(out.code(), 0, "{garbage}: {}", out.stderr);
        assert!(out.stdout.starts_with("ya29.access-"));
    }
    // A sound entry is still used: no request.
    let requests = env.google.seen("/token").len();
    assert_eq!(env.run(&["print-access-token"]).stdout, "ya29.access-6\n");
    assert_eq!(env.google.seen("/token").len(), requests);
}

/// A small file system of its own: a tmpfs when the tests may mount one (root), else `None`.
#[cfg(target_os = "linux")]
struct SmallDisk {
    dir: std::path::PathBuf,
}

#[cfg(target_os = "linux")]
impl SmallDisk {
    fn mount(at: &Path) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs"])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| SmallDisk {
            dir: at.to_path_buf(),
        })
    }

    /// Fills the file system to the last byte.
    fn fill(&self) {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.dir.join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while filler.write_all(&block).is_ok() {}
        while filler.write_all(&[0]).is_ok() {}
    }

    fn free(&self) {
        std::fs::remove_file(self.dir.join("filler")).unwrap();
    }
}

#[cfg(target_os = "linux")]
impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.dir).status();
    }
}

#[cfg(target_os = "linux")]
fn a_full_disk_fails_before_a_rotating_refresh_token_is_spent() {
    let env = TestEnv::new();
    let disk = SmallDisk::mount(&env.path("small")).expect("a small tmpfs can be mounted");
    env.google.with(|b| b.rotate = true);
    let creds = disk.dir.join("creds.json");
    let before = env.write_credentials(&creds, "1//rotating");
    let args = [
        "print-access-token",
        "--credential-file",
        creds.to_str().unwrap(),
    ];
    disk.fill();

    let out = env.run(&args);
    assert_eq!(out.code(), 1, "{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("the disk is full"), "{}", out.stderr);
    assert!(
        out.stderr.contains(creds.to_str().unwrap()),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains(".gemauth-"),
        "no temp path: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("hint: free some disk space"),
        "{}",
        out.stderr
    );
    assert!(
        env.google.seen("/token").is_empty(),
        "the refresh token was not spent"
    );
    assert_eq!(
        std::fs::read(&creds).unwrap(),
        before,
        "the credential is unchanged"
    );
    assert!(env.google.refresh_token_valid("1//rotating"));

    disk.free();
    let out = env.run(&args);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(out.stdout, "ya29.access-1\n");
    let saved = read_json(&creds);
    let rotated = saved["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rotated, "1//rotating");
    assert!(env.google.refresh_token_valid(&rotated));
    assert_eq!(saved["custom_field"], json!({"kept": true}));
    // The next refresh works with the saved token.
    env.expire_cache();
    let out = env.run(&args);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(out.stdout, "ya29.access-2\n");
    let leftovers: Vec<_> = std::fs::read_dir(&disk.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("creds.json")]);
}

fn login_and_status_say_where_other_libraries_look_when_cloudsdk_config_is_set() {
    let env = TestEnv::new();
    let login = env.login();
    let note = "the Rust libraries google-cloud-auth and gcp_auth and Go's \
                golang.org/x/oauth2/google look in ~/.config/gcloud only";
    assert!(login.stderr.contains(note), "{}", login.stderr);
    let status = env.run(&["status"]);
    assert_eq!(status.code(), 0, "{}", status.stderr);
    assert!(
        status.stdout.contains(&format!(
            "note: CLOUDSDK_CONFIG is set to {}",
            env.gcloud_dir().display()
        )),
        "{}",
        status.stdout
    );
    let json: Value =
        serde_json::from_str(&env.run(&["status", "--format", "json"]).stdout).unwrap();
    assert!(json["notes"][0].as_str().unwrap().contains(note), "{json}");
    assert_eq!(json["warnings"], json!([]));
    // A file named explicitly is found the same way by every library: no note.
    let path = env.adc_path();
    let explicit = env.run(&["status", "--credential-file", path.to_str().unwrap()]);
    assert!(!explicit.stdout.contains("note:"), "{}", explicit.stdout);
}

fn status_shows_each_fact_once_and_empty_values_as_none() {
    let env = TestEnv::new();
    let sa = env.write_json(
        "sa.json",
        &json!({"type": "service_account", "client_email": "sa@p.iam.gserviceaccount.com",
                "private_key": "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n",
                "project_id": "p-123456"}),
    );
    let out = env.run(&["status", "--credential-file", sa.to_str().unwrap()]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(
        out.stdout.matches("sa@p.iam.gserviceaccount.com").count(),
        1,
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("Account:         sa@p.iam.gserviceaccount.com\n"),
        "{}",
        out.stdout
    );

    let mut user = read_json(&{
        let path = env.path("user.json");
        env.write_credentials(&path, "1//r");
        path
    });
    user["account"] = json!("");
    let user = env.write_json("user.json", &user);
    let out = env.run(&["status", "--credential-file", user.to_str().unwrap()]);
    assert!(
        out.stdout.contains("Account:         (none)\n"),
        "{}",
        out.stdout
    );

    let imp = env.write_json(
        "imp.json",
        &json!({"type": "impersonated_service_account",
                "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/t@p.iam.gserviceaccount.com:generateAccessToken",
                "source_credentials": read_json(&sa)}),
    );
    let out = env.run(&["status", "--credential-file", imp.to_str().unwrap()]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("Impersonates via: https://iamcredentials"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Source type:     service_account\n"),
        "{}",
        out.stdout
    );
}

fn usage_errors_end_with_a_hint_naming_the_next_command() {
    let env = TestEnv::new();
    let out = env.run(&["login"]);
    assert_eq!(out.code(), 2);
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr.contains("--client-id-file <FILE>"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.trim_end().ends_with(
            "hint: download your Desktop OAuth client's JSON from the Google Cloud console \
             (Google Auth Platform → Clients), then run `gemauth login --client-id-file client_secret.json`"
        ),
        "{}",
        out.stderr
    );
    let out = env.run(&["print-access-token", "--bogus"]);
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr
            .trim_end()
            .ends_with("hint: run `gemauth print-access-token --help` for its options"),
        "{}",
        out.stderr
    );
    let out = env.run(&["no-such-command"]);
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr
            .trim_end()
            .ends_with("hint: run `gemauth --help` for the list of commands"),
        "{}",
        out.stderr
    );
    // Help and version are output, not errors.
    let help = env.run(&["login", "--help"]);
    assert_eq!(help.code(), 0);
    assert!(help.stdout.contains("--client-id-file"));
    assert_eq!(help.stderr, "");
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        #[cfg(unix)] a_fifo_or_a_device_as_credential_file_is_refused_at_once,
        an_oversized_credential_file_is_refused_without_reading_it_all,
        #[cfg(unix)] a_symlink_loop_is_reported_as_such,
        #[cfg(unix)] a_fifo_as_dockers_config_is_refused_at_once,
        a_token_that_is_already_dead_is_never_printed,
        #[cfg(unix)] a_fifo_at_the_cache_path_means_a_refresh_not_a_hang,
        a_forged_token_in_the_cache_is_never_printed,
        an_entry_copied_from_another_credential_is_not_believed,
        future_dated_and_overlong_entries_are_stale,
        #[cfg(target_os = "linux")] a_full_disk_fails_before_a_rotating_refresh_token_is_spent => Root,
        login_and_status_say_where_other_libraries_look_when_cloudsdk_config_is_set,
        status_shows_each_fact_once_and_empty_values_as_none,
        usage_errors_end_with_a_hint_naming_the_next_command,
    ]
}
