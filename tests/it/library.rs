//! The library API as a Rust program uses it: `gemauth::get_async` on a multi-thread runtime
//! waits for another process's refresh without blocking the runtime's threads.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::runner::{Trial, trials};

const CHILD: &str = "GEMAUTH_TEST_ASYNC_CHILD";

/// In the child process (its environment isolated by the parent): one worker thread, a ticker
/// task on it, and `get_async` waiting for the lock another process holds. Prints the token and
/// how many ticks ran during the wait.
fn child() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        let started = Instant::now();
        let token = tokio::spawn(async { gemauth::get_async(&gemauth::Request::default()).await })
            .await
            .unwrap()
            .unwrap();
        let waited = started.elapsed();
        ticker.abort();
        // The blocking form, called where it must not be (it would need a refresh): an error,
        // not a panic.
        let blocking = gemauth::get_with(&gemauth::Request {
            min_lifetime: Some(u64::MAX),
            ..Default::default()
        });
        println!(
            "blocking_in_runtime={}",
            match blocking {
                Err(e) if e.to_string().contains("get_async") => "error",
                Err(_) => "other-error",
                Ok(_) => "ok",
            }
        );
        println!(
            "token={} waited_ms={} ticks={}",
            token.access_token.expose(),
            waited.as_millis(),
            ticks.load(std::sync::atomic::Ordering::Relaxed)
        );
    });
}

fn get_async_waits_for_the_lock_without_blocking_the_runtime() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let env = TestEnv::new();
    env.write_credentials(&env.adc_path(), "1//r");
    env.google.enqueue(
        "/token",
        Canned::access_token("ya29.slow", 3599).delayed(Duration::from_millis(1500)),
    );
    // Another process takes the lock and waits for the slow server.
    let holder = env.spawn_piped(&["print-access-token"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.google.seen("/token").is_empty() {
        assert!(Instant::now() < deadline, "the first process never asked");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    env.isolate(&mut cmd);
    let out = cmd
        .env(CHILD, "1")
        .args([
            "--exact",
            "library::get_async_waits_for_the_lock_without_blocking_the_runtime",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    assert_each_prints(vec![holder], "ya29.slow");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.find("token=").map(|at| &l[at..]))
        .unwrap_or_else(|| panic!("no result line in {stdout}"));
    let field = |name: &str| -> String {
        line.split(' ')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap()
            .to_string()
    };
    assert!(stdout.contains("blocking_in_runtime=error"), "{stdout}");
    // It used the token the lock holder obtained: one request in all.
    assert_eq!(field("token"), "ya29.slow");
    assert_eq!(env.google.seen("/token").len(), 1);
    let waited: u64 = field("waited_ms").parse().unwrap();
    let ticks: u64 = field("ticks").parse().unwrap();
    assert!(waited >= 500, "it waited for the lock ({waited} ms)");
    // A blocked worker thread would have let no tick run during the wait.
    assert!(
        ticks * 10 >= waited / 4,
        "{ticks} ticks in {waited} ms: the runtime was blocked"
    );
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![get_async_waits_for_the_lock_without_blocking_the_runtime,]
}
