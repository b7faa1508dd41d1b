//! A cache another user controls is never trusted (issue 20, section 2), as ssh treats its
//! files: a cache or lock directory that is not the user's own, or that others may write, is not
//! used; cache and lock files are opened without following symbolic links; without a usable cache
//! gemauth still prints the token, with one warning line.

#[cfg(unix)]
use std::path::Path;
#[cfg(target_os = "linux")]
use std::path::PathBuf;
#[cfg(target_os = "linux")]
use std::process::Command;

use crate::harness::*;
use crate::runner::{Trial, trials};

/// The file names gemauth gives the token entry and the lock of `env`'s ADC file: found by one
/// run with a cache of the test's own, elsewhere (the names do not depend on the cache's place).
#[cfg(target_os = "linux")]
fn entry_and_lock_names(env: &TestEnv) -> (String, String) {
    let own = env.path("own-cache");
    std::fs::create_dir_all(&own).unwrap();
    let done = env.run_with(
        &["print-access-token"],
        &[("XDG_CACHE_HOME", own.as_os_str())],
    );
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let only = |dir: PathBuf| -> String {
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 1, "{names:?} in {}", dir.display());
        names[0].clone()
    };
    (
        only(own.join("gemauth/tokens")),
        only(own.join("gemauth/locks")),
    )
}

fn signed_in(env: &TestEnv) {
    env.write_credentials(&env.adc_path(), "1//victim");
}

/// A forged entry for `name`: its key is the file's own name and its times are those of a token
/// just obtained (gemauth believes no lifetime over a week), so only who wrote it, and how it is
/// reached, tell it apart.
#[cfg(unix)]
fn forged_entry(name: &str) -> String {
    let key = name.trim_end_matches(".json");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    serde_json::json!({
        "key": key, "access_token": "ya29.ATTACKER", "token_type": "Bearer",
        "obtained_at": now - 60, "expires_at": now + 3540, "scopes": [],
    })
    .to_string()
}

#[cfg(unix)]
fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs `script` with `sh` as the user `nobody` (uid and gid 65534), as another local user would.
#[cfg(target_os = "linux")]
fn as_nobody(script: &str) {
    let status = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
            script,
        ])
        .status()
        .expect("run setpriv");
    assert!(status.success(), "as nobody: {script}");
}

#[cfg(target_os = "linux")]
fn a_cache_directory_another_user_created_is_not_used() {
    let env = TestEnv::new();
    signed_in(&env);
    let (entry, lock) = entry_and_lock_names(&env);
    // XDG_CACHE_HOME is world-writable (as /tmp is), and `nobody` got there first.
    chmod(env.dir.path(), 0o755);
    let cache_home = env.path("cache");
    chmod(&cache_home, 0o1777);
    let dir = env.cache_dir();
    let target = env.path("created-by-the-victim");
    as_nobody(&format!(
        "mkdir -p '{d}/tokens' '{d}/locks' && chmod -R 0777 '{d}' \
         && printf '%s' '{forged}' > '{d}/tokens/{entry}' \
         && ln -s '{target}' '{d}/locks/{lock}'",
        d = dir.display(),
        forged = forged_entry(&entry),
        target = target.display(),
    ));
    let done = env.run(&["print-access-token"]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    // A new token: the first went into the test's own cache, to learn the names.
    assert_eq!(done.stdout, "ya29.access-2\n", "{}", done.stderr);
    assert!(
        !target.exists(),
        "gemauth created the file a foreign lock points at"
    );
    let warnings = done.warnings();
    assert_eq!(warnings.len(), 1, "{}", done.stderr);
    assert!(
        warnings[0].contains(&dir.display().to_string()) && warnings[0].contains("owned"),
        "{}",
        done.stderr
    );
    // Nothing of the victim's was written into the other user's directory.
    let names: Vec<_> = std::fs::read_dir(dir.join("tokens")).unwrap().collect();
    assert_eq!(names.len(), 1);
}

#[cfg(unix)]
fn a_cache_directory_others_may_write_is_not_used() {
    let env = TestEnv::new();
    signed_in(&env);
    let first = env.run(&["print-access-token"]);
    assert_eq!(first.stdout, "ya29.access-1\n", "{}", first.stderr);
    let dir = env.cache_dir();
    let entry = env.cached_tokens().pop().expect("a cache entry");
    std::fs::write(
        &entry,
        forged_entry(&entry.file_name().unwrap().to_string_lossy()),
    )
    .unwrap();
    chmod(&dir.join("tokens"), 0o777);
    let done = env.run(&["print-access-token"]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "ya29.access-2\n", "{}", done.stderr);
    assert!(
        done.warnings().iter().any(|l| {
            l.contains(&dir.join("tokens").display().to_string()) && l.contains("writable")
        }),
        "{}",
        done.stderr
    );
}

#[cfg(unix)]
fn cache_and_lock_files_are_not_followed_through_symbolic_links() {
    let env = TestEnv::new();
    signed_in(&env);
    assert_eq!(env.run(&["print-access-token"]).code(), 0);
    let dir = env.cache_dir();
    // A token entry that is a link to a believable entry elsewhere is not read.
    let entry = env.cached_tokens().pop().expect("a cache entry");
    let name = entry.file_name().unwrap().to_string_lossy().into_owned();
    let elsewhere = env.path("elsewhere.json");
    let forged = forged_entry(&name);
    std::fs::write(&elsewhere, &forged).unwrap();
    std::fs::remove_file(&entry).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &entry).unwrap();
    // A lock that is a link: the file it names is never created.
    let lock = std::fs::read_dir(dir.join("locks"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let target = env.path("lock-target");
    std::fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink(&target, &lock).unwrap();

    let done = env.run(&["print-access-token"]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "ya29.access-2\n", "{}", done.stderr);
    assert!(!target.exists(), "a lock was created through a link");
    assert_eq!(
        std::fs::read_to_string(&elsewhere).unwrap(),
        forged,
        "a file outside the cache was written through a link"
    );
}

#[cfg(not(target_os = "macos"))] // macOS has one cache place, under HOME
fn without_a_usable_cache_directory_the_token_is_still_printed() {
    let env = TestEnv::new();
    signed_in(&env);
    // The cache's place is a regular file: no directory can be made there.
    let not_a_dir = env.path("not-a-directory");
    std::fs::write(&not_a_dir, "").unwrap();
    for _ in 0..2 {
        let done = env.run_with(
            &["print-access-token"],
            &[
                ("XDG_CACHE_HOME", not_a_dir.as_os_str()),
                ("LOCALAPPDATA", not_a_dir.as_os_str()),
            ],
        );
        assert_eq!(done.code(), 0, "{}", done.stderr);
        assert!(done.stdout.starts_with("ya29.access-"), "{}", done.stderr);
        assert_eq!(done.stdout.lines().count(), 1);
        assert_eq!(done.warnings().len(), 1, "{}", done.stderr);
        assert!(done.stderr.contains("cache"), "{}", done.stderr);
    }
    // Each call refreshed: there was nowhere to keep the token.
    assert_eq!(env.google.seen_grants("refresh_token").len(), 2);
}

/// A tmpfs of the test's own, unmounted when dropped.
#[cfg(target_os = "linux")]
struct Mounted(PathBuf);

#[cfg(target_os = "linux")]
impl Mounted {
    fn tmpfs(at: PathBuf) -> Mounted {
        std::fs::create_dir_all(&at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs"])
            .arg(&at)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount a tmpfs at {}", at.display());
        Mounted(at)
    }

    fn read_only(&self) {
        let status = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .status()
            .expect("run mount");
        assert!(status.success(), "remount {} read-only", self.0.display());
    }
}

#[cfg(target_os = "linux")]
impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A cache made before its file system became read-only (a read-only home): its lock files
/// cannot be opened for writing, and no token can be stored; the token is still printed.
#[cfg(target_os = "linux")]
fn a_cache_on_a_read_only_file_system_still_gives_a_token() {
    let env = TestEnv::new();
    signed_in(&env);
    let disk = Mounted::tmpfs(env.path("read-only"));
    let cache = [("XDG_CACHE_HOME", disk.0.as_os_str())];
    let first = env.run_with(&["print-access-token"], &cache);
    assert_eq!(first.stdout, "ya29.access-1\n", "{}", first.stderr);
    disk.read_only();
    // The cached token is still read...
    let cached = env.run_with(&["print-access-token"], &cache);
    assert_eq!(cached.stdout, "ya29.access-1\n", "{}", cached.stderr);
    assert_eq!(cached.stderr, "");
    // ...and one that must be refreshed is printed, with one warning.
    let done = env.run_with(&["print-access-token", "--min-lifetime", "3600"], &cache);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "ya29.access-2\n", "{}", done.stderr);
    let warnings = done.warnings();
    assert_eq!(warnings.len(), 1, "{}", done.stderr);
    assert!(warnings[0].contains("cache"), "{}", done.stderr);
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        #[cfg(target_os = "linux")] a_cache_directory_another_user_created_is_not_used => Root,
        #[cfg(unix)] a_cache_directory_others_may_write_is_not_used,
        #[cfg(unix)] cache_and_lock_files_are_not_followed_through_symbolic_links,
        #[cfg(not(target_os = "macos"))] without_a_usable_cache_directory_the_token_is_still_printed,
        #[cfg(target_os = "linux")] a_cache_on_a_read_only_file_system_still_gives_a_token => Root,
    ]
}
