//! When each login happened, kept beside the token cache (never in the credential file, which
//! other programs read and write): `status --check` tells a Testing app's 7-day refresh token
//! from a revoked one by it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{lock_key, read_bounded, write_atomic};

#[derive(Serialize, Deserialize)]
struct Login {
    /// Unix time of the login that wrote the credential file.
    logged_in_at: u64,
}

/// The record of the login that wrote `credential_path`, in the cache directory `cache_dir`
/// (keyed like the credential's lock: every spelling of the path shares it).
fn record_path(cache_dir: &Path, credential_path: &Path) -> PathBuf {
    cache_dir
        .join("logins")
        .join(format!("{}.json", lock_key(credential_path)))
}

/// Records that a login wrote `credential_path` at `now`. Without a cache directory nothing is
/// recorded; failing to record costs only the diagnosis of a 7-day expiry, so the failure comes
/// back as a warning for the caller to show.
pub(crate) fn record_login(
    cache_dir: Option<&Path>,
    credential_path: &Path,
    now: u64,
) -> Option<String> {
    let path = record_path(cache_dir?, credential_path);
    let bytes = serde_json::to_vec(&Login { logged_in_at: now }).unwrap_or_default();
    write_atomic(&path, &bytes)
        .err()
        .map(|e| format!("could not record the time of this login: {e}"))
}

/// When the login that wrote `credential_path` happened, if it was recorded (and not after
/// `now`).
pub(crate) fn login_time(
    cache_dir: Option<&Path>,
    credential_path: &Path,
    now: u64,
) -> Option<u64> {
    let bytes = read_bounded(&record_path(cache_dir?, credential_path)).ok()?;
    let login: Login = serde_json::from_slice(&bytes).ok()?;
    (login.logged_in_at <= now).then_some(login.logged_in_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_is_recorded_per_credential_file_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let adc = dir.path().join("adc.json");
        let other = dir.path().join("other.json");
        assert_eq!(login_time(Some(&cache), &adc, 2_000), None);
        assert_eq!(record_login(Some(&cache), &adc, 1_000), None);
        assert_eq!(login_time(Some(&cache), &adc, 2_000), Some(1_000));
        assert_eq!(login_time(Some(&cache), &other, 2_000), None);
        // A record from the future (a clock set back) is not believed.
        assert_eq!(login_time(Some(&cache), &adc, 999), None);
        // No cache directory: nothing recorded, nothing read, no warning.
        assert_eq!(record_login(None, &adc, 1_000), None);
        assert_eq!(login_time(None, &adc, 2_000), None);
        // A cache directory that cannot be written: a warning.
        std::fs::write(dir.path().join("file"), b"").unwrap();
        let warning = record_login(Some(&dir.path().join("file")), &adc, 1_000);
        assert!(warning.is_some_and(|w| w.contains("could not record")));
    }
}
