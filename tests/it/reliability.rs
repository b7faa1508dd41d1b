//! Never lose, corrupt or leak a credential: concurrent refresh, atomic private files, kills at
//! random moments, hostile servers.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::runner::{Trial, trials};

fn spawn_print(env: &TestEnv) -> std::process::Child {
    env.spawn_piped(&["print-access-token"])
}

fn fifty_concurrent_calls_make_one_refresh_even_with_rotation() {
    let env = TestEnv::new();
    let path = env.adc_path();
    env.write_credentials(&path, "1//original");
    env.google.with(|b| b.rotate = true);
    let children: Vec<_> = (0..50).map(|_| spawn_print(&env)).collect();
    let tokens = quiet_outputs(children);
    let refreshes = env.google.seen_grants("refresh_token");
    assert_eq!(refreshes.len(), 1, "exactly one refresh request");
    assert!(tokens.iter().all(|t| t == "ya29.access-1\n"), "{tokens:?}");
    // The rotated refresh token is on disk, the old one is dead at the server.
    assert_eq!(read_json(&path)["refresh_token"], "1//refresh-1");
    assert!(!env.google.refresh_token_valid("1//original"));

    // Expire again: another single refresh, with the rotated token.
    env.expire_cache();
    let children: Vec<_> = (0..20).map(|_| spawn_print(&env)).collect();
    assert_each_prints(children, "ya29.access-2");
    let refreshes = env.google.seen_grants("refresh_token");
    assert_eq!(refreshes.len(), 2);
    assert_eq!(refreshes[1].form["refresh_token"], "1//refresh-1");
}

fn short_lived_tokens_are_reused_for_half_their_lifetime() {
    let env = TestEnv::new();
    env.google.with(|b| b.expires_in = 60);
    env.login();
    for _ in 0..3 {
        let done = env.run(&["print-access-token"]);
        assert_eq!(done.stdout, "ya29.access-2\n");
    }
    assert!(env.google.seen_grants("refresh_token").is_empty());
}

/// Unix permissions (on Windows a new file gets its directory's access list).
#[cfg(unix)]
fn files_are_private_under_umask_022() {
    use std::process::Command;
    let env = TestEnv::new();
    let client = env.client_file();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("umask 022; exec \"$0\" \"$@\"")
        .arg(gemauth_binary())
        .args(["login", "--client-id-file"])
        .arg(&client);
    env.isolate(&mut cmd);
    let run = Running::spawn(cmd, env.path("browser-args"));
    follow_authorization(&run.browser_url());
    assert_eq!(run.finish().code(), 0);
    assert_eq!(mode(&env.adc_path()), 0o600);
    assert_eq!(mode(&env.gcloud_dir()), 0o700);
    for token in env.cached_tokens() {
        assert_eq!(mode(&token), 0o600);
    }
    assert_eq!(mode(&env.cache_dir()), 0o700);
}

/// A tiny deterministic generator for kill delays (no extra crate needed).
fn delays(seed: u64, n: usize, max_micros: u64) -> Vec<Duration> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Duration::from_micros(x % max_micros)
        })
        .collect()
}

/// Killed (SIGKILL; TerminateProcess on Windows) at random moments of a refresh with rotation.
fn sigkill_at_random_moments_never_leaves_a_partial_file() {
    let env = TestEnv::new();
    let path = env.adc_path();
    env.write_credentials(&path, "1//r0");
    env.google.with(|b| b.rotate = true);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    for (i, delay) in delays(seed, 40, 30_000).into_iter().enumerate() {
        env.expire_cache();
        let mut child = spawn_print(&env);
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL, TerminateProcess on Windows
        let _ = child.wait();
        let bytes = std::fs::read(&path).expect("the credential file is never missing");
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!("kill {i} after {delay:?} (seed {seed}) left a broken file: {e}")
        });
        let token = value["refresh_token"].as_str().unwrap().to_string();
        assert!(token.starts_with("1//"), "{value}");
        for cached in env.cached_tokens() {
            let c: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&cached).unwrap()).unwrap();
            assert!(c["access_token"].is_string());
        }
        // If the kill hit between the server's rotation and the write, the grant is gone, as it
        // would be at Google; start the next round from a valid token.
        if !env.google.refresh_token_valid(&token) {
            env.write_credentials(&path, &format!("1//r{}", i + 1));
        }
    }
    // The survivor still works.
    let done = env.run(&["print-access-token"]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
}

fn sigkill_during_login_leaves_the_old_file_or_the_new_one() {
    let env = TestEnv::new();
    let path = env.adc_path();
    let old = env.write_credentials(&path, "1//old");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    for delay in delays(seed, 15, 20_000) {
        let run = env.start_login(&[]);
        let url = run.browser_url();
        let auth = http_get(&url);
        let location = auth.headers["location"].clone();
        // Deliver the redirect from another thread, and kill while the login saves.
        let browser = std::thread::spawn(move || {
            let _ = std::panic::catch_unwind(|| http_get(&location));
        });
        std::thread::sleep(delay);
        run.kill();
        let _ = browser.join();
        let bytes = std::fs::read(&path).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("after {delay:?} (seed {seed}): {e}"));
        assert!(bytes == old || value["account"] == EMAIL, "{value}");
    }
}

fn a_lock_held_by_a_killed_process_does_not_block() {
    let env = TestEnv::new();
    env.write_credentials(&env.adc_path(), "1//r");
    env.google.enqueue(
        "/token",
        Canned::json(200, r#"{"access_token":"ya29.slow","expires_in":3600}"#)
            .delayed(Duration::from_secs(2)),
    );
    let mut holder = spawn_print(&env);
    // Wait until the holder is inside its refresh (it holds the lock then), then kill it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.google.seen("/token").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the first process never refreshed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    holder.kill().unwrap();
    holder.wait().unwrap();
    let started = Instant::now();
    let done = env.run(&["print-access-token"]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "ya29.access-1\n");
    assert!(started.elapsed() < Duration::from_secs(8));
}

fn huge_bodies_are_refused() {
    let env = TestEnv::new();
    let path = env.adc_path();
    let before = env.write_credentials(&path, "1//r");
    let huge = format!(r#"{{"access_token":"{}"}}"#, "a".repeat(2 * 1024 * 1024));
    env.google.enqueue("/token", Canned::json(200, &huge));
    let done = env.run(&["print-access-token"]);
    assert_eq!(done.code(), 1);
    assert!(
        done.stderr.contains("larger than 1048576 bytes"),
        "{}",
        done.stderr
    );
    assert!(done.stderr.contains(&format!("{}/token", env.google.base)));
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

fn redirects_are_not_followed() {
    let env = TestEnv::new();
    let path = env.adc_path();
    let before = env.write_credentials(&path, "1//r");
    env.google.enqueue(
        "/token",
        Canned::html(302, "").header("Location", &format!("{}/token", env.google.base)),
    );
    let done = env.run(&["print-access-token"]);
    assert_eq!(done.code(), 1);
    assert!(done.stderr.contains("HTTP 302"), "{}", done.stderr);
    assert_eq!(env.google.seen("/token").len(), 1);
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

fn a_stalling_server_times_out() {
    let env = TestEnv::new();
    let stall = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = stall.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        // Accept and read, never answer.
        let (mut conn, _) = stall.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = conn.read(&mut buf);
        std::thread::sleep(Duration::from_secs(5));
        let _ = conn.write_all(b"");
    });
    let path = env.path("creds.json");
    let creds = serde_json::json!({
        "type": "authorized_user", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "refresh_token": "1//r", "token_uri": format!("http://127.0.0.1:{port}/token"),
    });
    std::fs::write(&path, creds.to_string()).unwrap();
    let started = Instant::now();
    let mut cmd = env.cmd();
    cmd.args(["print-access-token", "--credential-file"])
        .arg(&path)
        .env("GEMAUTH_TIMEOUT", "1");
    let done = Running::spawn(cmd, env.path("browser-args")).finish();
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(done.code(), 1);
    assert!(done.stderr.contains("timed out"), "{}", done.stderr);
    assert!(done.stderr.contains(&format!("127.0.0.1:{port}/token")));
    drop(held);
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        fifty_concurrent_calls_make_one_refresh_even_with_rotation,
        short_lived_tokens_are_reused_for_half_their_lifetime,
        #[cfg(unix)]
        files_are_private_under_umask_022,
        sigkill_at_random_moments_never_leaves_a_partial_file,
        sigkill_during_login_leaves_the_old_file_or_the_new_one,
        a_lock_held_by_a_killed_process_does_not_block,
        huge_bodies_are_refused,
        redirects_are_not_followed,
        a_stalling_server_times_out,
    ]
}
