//! The token cache (one private file per credential and scopes, or audience for ID tokens) and
//! the cross-process
//! lock that lets one process refresh while the others wait and then reuse its token.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use oauth2::AccessToken;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{cache_dir, create_private_dir, read_bounded, remove_file, write_atomic};
use crate::error::{Error, Result};

/// A cached token is reused while at least this many seconds remain (or half its lifetime,
/// when that is smaller).
pub const MIN_REMAINING_SECS: u64 = 300;

/// A short hex SHA-256 of length-prefixed parts: a cache or lock key that reveals nothing.
pub fn hex_digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A cached access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedToken {
    /// The cache key of the credential and scopes the token was minted for: an entry found
    /// under another key (copied, or written by something else) is not believed.
    #[serde(default)]
    pub key: String,
    pub access_token: AccessToken,
    pub token_type: String,
    /// Unix time the token was obtained.
    pub obtained_at: u64,
    /// Unix time the token expires.
    pub expires_at: u64,
    #[serde(default)]
    pub scopes: Vec<String>,
}

impl CachedToken {
    /// Whether an entry read back from disk can be believed for `key` at `now`: minted for this
    /// credential and scopes, a token that fits in a header line, obtained in the past (not by a
    /// clock that ran ahead), and a lifetime no server would give (over a week) is refused.
    pub fn is_trustworthy(&self, key: &str, now: u64) -> bool {
        self.key == key
            && crate::oauth::plausible_access_token(self.access_token.secret())
            && self.obtained_at <= now
            && self.expires_at.saturating_sub(self.obtained_at) <= crate::oauth::MAX_LIFETIME_SECS
    }

    /// True while the token may still be handed out: `min_lifetime` seconds remain, or by
    /// default five minutes, or half its lifetime when that is shorter.
    pub fn is_fresh(&self, now: u64, min_lifetime: Option<u64>) -> bool {
        let lifetime = self.expires_at.saturating_sub(self.obtained_at);
        let margin = min_lifetime.unwrap_or(MIN_REMAINING_SECS.min(lifetime / 2));
        now < self.expires_at && self.expires_at - now >= margin.max(1)
    }
}

/// The cache entry of one credential and its scopes, keyed by everything that decides the
/// token (`credentials::Credential::cache_key`), so another login or another credential never
/// sees this token.
pub struct TokenCache {
    key: String,
    path: Option<PathBuf>,
}

impl TokenCache {
    /// The cache entry for a key (`credentials::Credential::cache_key`, the one cache key).
    pub fn new(key: &str) -> Self {
        TokenCache {
            key: key.to_string(),
            path: cache_dir().map(|d| d.join("tokens").join(format!("{key}.json"))),
        }
    }

    /// The cached token, if one is present, readable and believable (see
    /// [`CachedToken::is_trustworthy`]). Anything wrong with an entry makes it absent, so the
    /// caller refreshes: never an error, never a hang (a FIFO or device is refused at once).
    pub fn load(&self) -> Option<CachedToken> {
        let path = self.path.as_ref()?;
        let bytes = match read_bounded(path) {
            Ok(bytes) => bytes,
            Err(problem) => {
                if super::is_present(path) {
                    tracing::debug!(entry = %path.display(), problem, "cache entry ignored");
                }
                return None;
            }
        };
        let token: CachedToken = serde_json::from_slice(&bytes).ok()?;
        let trustworthy = token.is_trustworthy(&self.key, super::now());
        if !trustworthy {
            tracing::debug!(entry = %path.display(), "cache entry ignored: not believable");
        }
        trustworthy.then_some(token)
    }

    /// Stores a token under this entry's key. Failing to cache is not fatal (the caller still
    /// has its token), so the failure comes back as a warning for the caller to show.
    pub fn store(&self, token: &CachedToken) -> Option<String> {
        let path = self.path.as_ref()?;
        let token = CachedToken {
            key: self.key.clone(),
            ..token.clone()
        };
        let written = serde_json::to_vec(&token)
            .map_err(|e| Error::Internal(e.to_string()))
            .and_then(|bytes| write_atomic(path, &bytes));
        written
            .err()
            .map(|e| format!("could not cache the access token: {e}"))
    }

    pub fn remove(&self) -> Result<()> {
        match &self.path {
            Some(p) => remove_file(p),
            None => Ok(()),
        }
    }
}

/// The lock key of a credential file path.
pub fn lock_key(credential_path: &Path) -> String {
    let parent = credential_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let canonical = fs::canonicalize(parent)
        .or_else(|_| std::path::absolute(parent))
        .unwrap_or_else(|_| parent.to_path_buf())
        .join(credential_path.file_name().unwrap_or_default());
    hex_digest(&[&canonical.to_string_lossy()])
}

/// An exclusive lock serializing refreshes and rewrites of one credential file across
/// processes. The OS releases it when the holder exits, even after a crash.
pub struct CredentialLock {
    _file: Option<File>,
}

impl CredentialLock {
    /// The lock of a credential file, keyed by its canonical directory and its name, so that
    /// every spelling of the path (relative, `./`, absolute, through a linked directory) shares it.
    pub fn acquire(credential_path: &Path) -> Result<Self> {
        Self::acquire_key(&lock_key(credential_path))
    }

    /// The lock named by `key` (credentials without a file: the metadata server).
    pub fn acquire_key(key: &str) -> Result<Self> {
        let Some((file, path)) = open_lock_file(key)? else {
            return Ok(CredentialLock { _file: None });
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                tracing::debug!(lock = %path.display(), "another gemauth holds the lock; waiting");
                file.lock().map_err(lock_error(&path))?;
            }
            Err(fs::TryLockError::Error(e)) => return Err(lock_error(&path)(e)),
        }
        tracing::debug!(lock = %path.display(), "lock acquired");
        Ok(CredentialLock { _file: Some(file) })
    }

    /// [`CredentialLock::acquire_key`] for async callers: while another process holds the lock,
    /// the wait happens on the runtime's blocking pool, never on the caller's executor thread.
    pub async fn acquire_key_async(key: &str) -> Result<Self> {
        let Some((file, path)) = open_lock_file(key)? else {
            return Ok(CredentialLock { _file: None });
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                tracing::debug!(lock = %path.display(), "another gemauth holds the lock; waiting");
                let waited = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
                    .await
                    .map_err(|e| Error::Internal(format!("the lock wait failed: {e}")))?;
                let file = waited.map_err(lock_error(&path))?;
                tracing::debug!(lock = %path.display(), "lock acquired");
                return Ok(CredentialLock { _file: Some(file) });
            }
            Err(fs::TryLockError::Error(e)) => return Err(lock_error(&path)(e)),
        }
        tracing::debug!(lock = %path.display(), "lock acquired");
        Ok(CredentialLock { _file: Some(file) })
    }
}

fn lock_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io {
        action: "cannot lock",
        path,
        source,
    }
}

/// Opens (creating it, private) the lock file named by `key` in the cache directory; `None`
/// when there is no cache directory.
fn open_lock_file(key: &str) -> Result<Option<(File, PathBuf)>> {
    let Some(dir) = cache_dir().map(|d| d.join("locks")) else {
        return Ok(None);
    };
    create_private_dir(&dir)?;
    let path = dir.join(format!("{key}.lock"));
    let mut options = fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(&path).map_err(|source| Error::Io {
        action: "cannot open lock file",
        path: path.clone(),
        source,
    })?;
    Ok(Some((file, path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(obtained_at: u64, expires_at: u64) -> CachedToken {
        CachedToken {
            key: "k".into(),
            access_token: AccessToken::new("t".into()),
            token_type: "Bearer".into(),
            obtained_at,
            expires_at,
            scopes: vec![],
        }
    }

    #[test]
    fn every_spelling_of_a_path_shares_one_lock() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("creds.json");
        fs::write(&file, b"{}").unwrap();
        let cwd = std::env::current_dir().unwrap();
        std::env::set_current_dir(dir.path()).unwrap();
        let relative = lock_key(Path::new("creds.json"));
        let dotted = lock_key(Path::new("./creds.json"));
        std::env::set_current_dir(cwd).unwrap();
        assert_eq!(relative, lock_key(&file));
        assert_eq!(dotted, lock_key(&file));
        let other = tempfile::tempdir().unwrap();
        assert_ne!(lock_key(&other.path().join("creds.json")), lock_key(&file));
    }

    #[test]
    fn hour_tokens_are_reused_until_five_minutes_remain() {
        let t = token(1000, 1000 + 3600);
        assert!(t.is_fresh(1000 + 3600 - 300, None));
        assert!(!t.is_fresh(1000 + 3600 - 299, None));
        assert!(t.is_fresh(1000, Some(3600)));
        assert!(!t.is_fresh(1001, Some(3600)));
        assert!(t.is_fresh(1000 + 3600 - 299, Some(0)));
    }

    #[test]
    fn short_tokens_are_reused_for_half_their_lifetime() {
        let t = token(1000, 1060);
        assert!(t.is_fresh(1029, None));
        assert!(t.is_fresh(1030, None));
        assert!(!t.is_fresh(1031, None));
        assert!(!token(1000, 1000).is_fresh(1000, None));
        assert!(t.is_fresh(1059, Some(0)));
        assert!(!t.is_fresh(1060, Some(0)));
    }
}
