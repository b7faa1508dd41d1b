//! The token cache (one private file per credential and scopes, or audience for ID tokens) and
//! the cross-process lock that lets one process refresh while the others wait and then reuse its
//! token.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::files::{Links, is_link, no_follow, read_bounded_as};
use super::trust::{not_own_file, process_cache};
use super::{create_private_dir, remove_file, write_atomic};
use crate::error::{Error, Result};
use crate::rules::{MAX_LIFETIME_SECS, plausible_access_token};
use crate::secret::Secret;

/// A cached token is reused while at least this many seconds remain (or half its lifetime,
/// when that is smaller).
pub(super) const MIN_REMAINING_SECS: u64 = 300;

/// A short hex SHA-256 of length-prefixed parts: a cache or lock key that reveals nothing.
pub(crate) fn hex_digest(parts: &[&str]) -> String {
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

/// What a cache entry holds: an access token or an ID token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    Access,
    Id,
}

/// A cached token: an access token, or an ID token in its own field (an entry of another kind,
/// or an older entry without the field, is a miss).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CachedToken {
    /// The cache key of the credential and scopes the token was minted for: an entry found
    /// under another key (copied, or written by something else) is not believed.
    #[serde(default)]
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<Secret<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<Secret<String>>,
    #[serde(default = "bearer")]
    pub token_type: String,
    /// Unix time the token was obtained.
    pub obtained_at: u64,
    /// Unix time the token expires.
    pub expires_at: u64,
    #[serde(default)]
    pub scopes: Vec<String>,
}

fn bearer() -> String {
    "Bearer".into()
}

impl CachedToken {
    /// An access token obtained at `obtained_at`.
    pub(crate) fn access(
        token: Secret<String>,
        token_type: String,
        obtained_at: u64,
        expires_at: u64,
        scopes: Vec<String>,
    ) -> Self {
        CachedToken {
            key: String::new(),
            access_token: Some(token),
            id_token: None,
            token_type,
            obtained_at,
            expires_at,
            scopes,
        }
    }

    /// An ID token obtained at `obtained_at`.
    pub(crate) fn id(token: Secret<String>, obtained_at: u64, expires_at: u64) -> Self {
        CachedToken {
            key: String::new(),
            access_token: None,
            id_token: Some(token),
            token_type: bearer(),
            obtained_at,
            expires_at,
            scopes: Vec::new(),
        }
    }

    /// The token of this kind, when the entry holds one.
    pub(crate) fn token(&self, kind: TokenKind) -> Option<&Secret<String>> {
        match kind {
            TokenKind::Access => self.access_token.as_ref(),
            TokenKind::Id => self.id_token.as_ref(),
        }
    }

    /// Whether an entry read back from disk can be believed for `key` at `now`: minted for this
    /// credential and scopes, a token of the kind wanted that fits in a header line, obtained in
    /// the past (not by a clock that ran ahead), and a lifetime no server would give (over a
    /// week) is refused.
    pub(crate) fn is_trustworthy(&self, key: &str, kind: TokenKind, now: u64) -> bool {
        self.key == key
            && self
                .token(kind)
                .is_some_and(|t| plausible_access_token(t.expose()))
            && self.obtained_at <= now
            && self.expires_at.saturating_sub(self.obtained_at) <= MAX_LIFETIME_SECS
    }

    /// True while the token may still be handed out: `min_lifetime` seconds remain, or by
    /// default five minutes, or half its lifetime when that is shorter.
    pub(crate) fn is_fresh(&self, now: u64, min_lifetime: Option<u64>) -> bool {
        let lifetime = self.expires_at.saturating_sub(self.obtained_at);
        let margin = min_lifetime.unwrap_or(MIN_REMAINING_SECS.min(lifetime / 2));
        now < self.expires_at && self.expires_at - now >= margin.max(1)
    }
}

/// The cache entry of one credential and its scopes, keyed by everything that decides the
/// token (`credentials::Credential::cache_key`), so another login or another credential never
/// sees this token.
pub(crate) struct TokenCache {
    key: String,
    path: Option<PathBuf>,
}

impl TokenCache {
    /// The cache entry for a key (`credentials::Credential::cache_key`, the one cache key) in
    /// the process's cache directory, when it passed the checks ([`process_cache`]).
    pub(crate) fn new(key: &str) -> Self {
        Self::in_dir(process_cache().dir.as_deref(), key)
    }

    /// The cache entry for a key in the cache directory `dir` (none: nothing is cached).
    pub(crate) fn in_dir(dir: Option<&Path>, key: &str) -> Self {
        TokenCache {
            key: key.to_string(),
            path: dir.map(|d| d.join("tokens").join(format!("{key}.json"))),
        }
    }

    /// The cached token, if one is present, readable and believable (see
    /// [`CachedToken::is_trustworthy`]). Anything wrong with an entry makes it absent, so the
    /// caller refreshes: never an error, never a hang (a FIFO or device is refused at once). A
    /// symbolic link is not followed and another user's file is not read.
    pub(crate) fn load(&self, kind: TokenKind, now: u64) -> Option<CachedToken> {
        let path = self.path.as_ref()?;
        let bytes = match read_bounded_as(path, Links::Refuse) {
            Ok(bytes) => bytes,
            Err(problem) => {
                if super::is_present(path) {
                    tracing::debug!(entry = %path.display(), problem, "cache entry ignored");
                }
                return None;
            }
        };
        let token: CachedToken = serde_json::from_slice(&bytes).ok()?;
        let trustworthy = token.is_trustworthy(&self.key, kind, now);
        if !trustworthy {
            tracing::debug!(entry = %path.display(), "cache entry ignored: not believable");
        }
        trustworthy.then_some(token)
    }

    /// Stores a token under this entry's key. Failing to cache is not fatal (the caller still
    /// has its token), so the failure comes back as a warning for the caller to show.
    pub(crate) fn store(&self, token: &CachedToken) -> Option<String> {
        let path = self.path.as_ref()?;
        let token = CachedToken {
            key: self.key.clone(),
            ..token.clone()
        };
        let written = serde_json::to_vec(&token)
            .map_err(|e| Error::Internal(e.to_string()))
            .and_then(|bytes| write_atomic(path, &bytes));
        written.err().map(|e| {
            let what = if token.id_token.is_some() {
                "ID"
            } else {
                "access"
            };
            format!("could not cache the {what} token: {e}")
        })
    }

    pub(crate) fn remove(&self) -> Result<()> {
        match &self.path {
            Some(p) => remove_file(p),
            None => Ok(()),
        }
    }
}

/// The lock key of a credential file path.
pub(crate) fn lock_key(credential_path: &Path) -> String {
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
pub(crate) struct CredentialLock {
    _file: Option<File>,
}

impl CredentialLock {
    /// The lock of a credential file, keyed by its canonical directory and its name, so that
    /// every spelling of the path (relative, `./`, absolute, through a linked directory) shares it.
    pub(crate) fn acquire(credential_path: &Path) -> Result<Self> {
        Self::acquire_key(process_cache().dir.as_deref(), &lock_key(credential_path))
    }

    /// The lock named by `key` (credentials without a file: the metadata server) in the cache
    /// directory `dir`.
    pub(crate) fn acquire_key(dir: Option<&Path>, key: &str) -> Result<Self> {
        match try_acquire(dir, key)? {
            Attempt::Held(lock) => Ok(lock),
            Attempt::Busy(file, path) => {
                file.lock().map_err(lock_error(&path))?;
                Ok(held(file, &path))
            }
        }
    }

    /// [`CredentialLock::acquire_key`] for async callers: while another process holds the lock,
    /// the wait happens on the runtime's blocking pool, never on the caller's executor thread.
    pub(crate) async fn acquire_key_async(dir: Option<&Path>, key: &str) -> Result<Self> {
        match try_acquire(dir, key)? {
            Attempt::Held(lock) => Ok(lock),
            Attempt::Busy(file, path) => {
                let waited = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
                    .await
                    .map_err(|e| Error::Internal(format!("the lock wait failed: {e}")))?;
                Ok(held(waited.map_err(lock_error(&path))?, &path))
            }
        }
    }
}

/// A first try at a lock: taken (or no cache directory, so nothing to lock), or held by
/// another process (its open file, to wait on).
enum Attempt {
    Held(CredentialLock),
    Busy(File, PathBuf),
}

fn try_acquire(dir: Option<&Path>, key: &str) -> Result<Attempt> {
    let Some((file, path)) = open_lock_file(dir, key)? else {
        return Ok(Attempt::Held(CredentialLock { _file: None }));
    };
    match file.try_lock() {
        Ok(()) => Ok(Attempt::Held(held(file, &path))),
        Err(fs::TryLockError::WouldBlock) => {
            tracing::debug!(lock = %path.display(), "another gemauth holds the lock; waiting");
            Ok(Attempt::Busy(file, path))
        }
        Err(fs::TryLockError::Error(e)) => Err(lock_error(&path)(e)),
    }
}

fn held(file: File, path: &Path) -> CredentialLock {
    tracing::debug!(lock = %path.display(), "lock acquired");
    CredentialLock { _file: Some(file) }
}

fn lock_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io {
        action: "cannot lock",
        path,
        source,
    }
}

/// Opens (creating it, private) the lock file named by `key` in the cache directory `dir`;
/// `None` when there is no cache directory, or it is on a read-only file system. The directory was checked and created when it was
/// chosen ([`process_cache`]). The file is opened without following a link; a link, or another
/// user's file, in its place is removed (never what it names) and a lock file of the user's own
/// created instead.
fn open_lock_file(dir: Option<&Path>, key: &str) -> Result<Option<(File, PathBuf)>> {
    let Some(dir) = dir.map(|d| d.join("locks")) else {
        return Ok(None);
    };
    // Made again (0700) should it have been removed since it was checked.
    create_private_dir(&dir)?;
    let path = dir.join(format!("{key}.lock"));
    let open_error = |source| Error::Io {
        action: "cannot open lock file",
        path: path.clone(),
        source,
    };
    let problem = match open_lock(&path, false) {
        Ok(file) => match file.metadata().ok().as_ref().and_then(not_own_file) {
            None => return Ok(Some((file, path))),
            Some(why) => why,
        },
        Err(_) if is_link(&path) => "a symbolic link",
        // Another user's lock that this user may not open (left by `sudo gemauth`).
        Err(e) => match fs::symlink_metadata(&path)
            .ok()
            .as_ref()
            .and_then(not_own_file)
        {
            Some(why) => why,
            // A read-only home: nothing can be cached either (storing the token says so once),
            // so there is nothing to serialize.
            None if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem => {
                tracing::debug!(lock = %path.display(), "read-only file system: no lock");
                return Ok(None);
            }
            None => return Err(open_error(e)),
        },
    };
    tracing::debug!(lock = %path.display(), problem, "replacing a lock file that is not gemauth's own");
    remove_file(&path)?;
    let file = open_lock(&path, true).map_err(open_error)?;
    Ok(Some((file, path)))
}

/// Opens a lock file for reading and writing without following a link, creating it (0600), or,
/// when `new`, only creating it (failing if anything is there, as a link put back would be).
fn open_lock(path: &Path, new: bool) -> std::io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.read(true).write(true);
    if new {
        options.create_new(true);
    } else {
        options.create(true).truncate(false);
    }
    no_follow(&mut options);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(obtained_at: u64, expires_at: u64) -> CachedToken {
        CachedToken::access(
            Secret::new("t".into()),
            "Bearer".into(),
            obtained_at,
            expires_at,
            vec![],
        )
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
    fn an_entry_holds_one_kind_and_is_believed_only_for_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::in_dir(Some(dir.path()), "k");
        assert!(cache.store(&token(1000, 4600)).is_none());
        assert!(cache.load(TokenKind::Access, 2000).is_some());
        assert!(cache.load(TokenKind::Id, 2000).is_none());
        assert!(
            cache.load(TokenKind::Access, 999).is_none(),
            "obtained in the future"
        );
        let other = TokenCache::in_dir(Some(dir.path()), "other");
        std::fs::copy(
            dir.path().join("tokens/k.json"),
            dir.path().join("tokens/other.json"),
        )
        .unwrap();
        assert!(other.load(TokenKind::Access, 2000).is_none(), "copied");
        let id = CachedToken::id(Secret::new("a.b.c".into()), 1000, 4600);
        assert!(cache.store(&id).is_none());
        assert!(cache.load(TokenKind::Id, 2000).is_some());
        assert!(cache.load(TokenKind::Access, 2000).is_none());
        cache.remove().unwrap();
        assert!(cache.load(TokenKind::Id, 2000).is_none());
        assert!(TokenCache::in_dir(None, "k").store(&id).is_none());
    }

    #[cfg(unix)]
    #[test]
    fn an_entry_that_is_a_link_is_not_read_and_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::in_dir(Some(dir.path()), "k");
        assert!(cache.store(&token(1000, 4600)).is_none());
        let entry = dir.path().join("tokens/k.json");
        let elsewhere = dir.path().join("elsewhere.json");
        fs::rename(&entry, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &entry).unwrap();
        assert!(cache.load(TokenKind::Access, 2000).is_none());
        assert_eq!(
            read_bounded_as(&entry, Links::Refuse),
            Err("is a symbolic link (not followed)".to_string())
        );
        let before = fs::read(&elsewhere).unwrap();
        assert!(cache.store(&token(1500, 5100)).is_none());
        assert_eq!(fs::read(&elsewhere).unwrap(), before);
        assert!(!fs::symlink_metadata(&entry).unwrap().is_symlink());
        assert_eq!(
            cache.load(TokenKind::Access, 2000).unwrap().obtained_at,
            1500
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_lock_that_is_a_link_never_creates_what_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let locks = dir.path().join("locks");
        create_private_dir(&locks).unwrap();
        let target = dir.path().join("target");
        let lock = locks.join("k.lock");
        std::os::unix::fs::symlink(&target, &lock).unwrap();
        let held = CredentialLock::acquire_key(Some(dir.path()), "k").unwrap();
        assert!(!target.exists(), "the link was followed");
        let meta = fs::symlink_metadata(&lock).unwrap();
        assert!(meta.is_file(), "the link was not replaced by a lock file");
        drop(held);
        // The lock file of the user's own is used as it is.
        drop(CredentialLock::acquire_key(Some(dir.path()), "k").unwrap());
        assert!(fs::symlink_metadata(&lock).unwrap().is_file());
    }

    #[cfg(unix)]
    #[test]
    fn another_users_entry_or_lock_is_not_used() {
        use std::os::unix::fs::MetadataExt;
        let root = rustix::process::geteuid().as_raw() == 0;
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::in_dir(Some(dir.path()), "k");
        assert!(cache.store(&token(1000, 4600)).is_none());
        let entry = dir.path().join("tokens/k.json");
        // Only root can give a file away (CI runs the tests as root); anyone else reads one of
        // root's, which is another user's to them.
        let foreign = if root {
            std::os::unix::fs::chown(&entry, Some(65534), Some(65534)).unwrap();
            assert!(cache.load(TokenKind::Access, 2000).is_none());
            entry
        } else {
            PathBuf::from("/etc/passwd")
        };
        assert!(fs::metadata(&foreign).unwrap().is_file());
        let refused = read_bounded_as(&foreign, Links::Refuse).unwrap_err();
        assert!(refused.contains("owned by another user"), "{refused}");
        if root {
            drop(CredentialLock::acquire_key(Some(dir.path()), "k").unwrap());
            let lock = dir.path().join("locks/k.lock");
            std::os::unix::fs::chown(&lock, Some(65534), Some(65534)).unwrap();
            drop(CredentialLock::acquire_key(Some(dir.path()), "k").unwrap());
            assert_eq!(
                fs::metadata(&lock).unwrap().uid(),
                0,
                "the foreign lock was kept"
            );
        }
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
