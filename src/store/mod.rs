//! Where credentials and tokens live on disk: the Application Default Credentials path and
//! credential discovery (`paths`), private atomic files (`files`), the access-token cache
//! with the cross-process lock that serializes refreshes (`cache`), whether the cache directory
//! can be trusted (`trust`), and when each login happened (`logins`).

mod cache;
mod files;
mod logins;
mod paths;
mod trust;

pub(crate) use cache::{CachedToken, CredentialLock, TokenCache, TokenKind, hex_digest, lock_key};
pub(crate) use files::{
    Reservation, create_private_dir, is_present, read_bounded, remove_file, write_atomic,
    write_json_object,
};
pub(crate) use logins::{login_time, record_login};
pub(crate) use paths::{
    ENV_CLOUDSDK_CONFIG, ENV_CREDENTIALS, Source, cache_dir, cloudsdk_config_note, credentials_env,
    discover, exposed_warning, well_known_path,
};
pub(crate) use trust::process_cache;

use std::time::UNIX_EPOCH;

/// A Unix time as RFC 3339 (UTC, seconds); times past the year 9999 are shown as its end.
pub(crate) fn rfc3339(unix: u64) -> String {
    const MAX: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let at = UNIX_EPOCH + std::time::Duration::from_secs(unix.min(MAX));
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_future_times_format_without_panicking() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
    }
}
