//! Where credentials live and how they are written: the Application Default Credentials path,
//! credential discovery, atomic private writes, the access-token cache and its locks.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use oauth2::AccessToken;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::credentials::AuthorizedUser;
use crate::error::{Error, Result};

/// File name of the Application Default Credentials file inside gcloud's config directory.
pub const ADC_FILE_NAME: &str = "application_default_credentials.json";
/// Environment variable that points client libraries at a credential file.
pub const ENV_CREDENTIALS: &str = "GOOGLE_APPLICATION_CREDENTIALS";
/// Environment variable that relocates gcloud's config directory.
pub const ENV_CLOUDSDK_CONFIG: &str = "CLOUDSDK_CONFIG";
/// A cached token is reused while at least this many seconds remain (or half its lifetime,
/// when that is smaller).
pub const MIN_REMAINING_SECS: u64 = 300;

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// gcloud's configuration directory, where gcloud and Google's client libraries look:
/// `$CLOUDSDK_CONFIG`, else `~/.config/gcloud` (macOS included); on Windows
/// `%APPDATA%\gcloud`, or `%SystemDrive%\gcloud` when `APPDATA` is not set.
pub fn gcloud_config_dir() -> Result<PathBuf> {
    if let Some(dir) = env_path(ENV_CLOUDSDK_CONFIG) {
        return Ok(dir);
    }
    if cfg!(windows) {
        return Ok(match env_path("APPDATA") {
            Some(appdata) => appdata.join("gcloud"),
            None => {
                let drive = std::env::var_os("SystemDrive").filter(|v| !v.is_empty());
                let mut root = drive.unwrap_or_else(|| "C:".into());
                root.push("\\");
                PathBuf::from(root).join("gcloud")
            }
        });
    }
    home_dir()
        .map(|h| h.join(".config").join("gcloud"))
        .ok_or_else(|| {
            Error::Usage("cannot find the home directory; pass --credential-file PATH".into())
        })
}

/// The home directory: `$HOME`, else the user's entry in the password database.
fn home_dir() -> Option<PathBuf> {
    dirs::home_dir()
}

/// The well-known Application Default Credentials file that `login` writes by default.
pub fn well_known_path() -> Result<PathBuf> {
    Ok(gcloud_config_dir()?.join(ADC_FILE_NAME))
}

/// The file named by `GOOGLE_APPLICATION_CREDENTIALS`, when that variable is set.
pub fn credentials_env() -> Option<PathBuf> {
    env_path(ENV_CREDENTIALS)
}

/// Why a credential file was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flag,
    Environment,
    WellKnown,
}

/// Finds the credential file the way `google.auth.default()` does: the flag, then
/// `GOOGLE_APPLICATION_CREDENTIALS`, then the well-known file.
pub fn discover(flag: Option<&Path>) -> Result<(PathBuf, Source)> {
    let (path, source) = if let Some(p) = flag {
        (p.to_path_buf(), Source::Flag)
    } else if let Some(p) = credentials_env() {
        (p, Source::Environment)
    } else {
        let p = well_known_path()?;
        if !p.exists() {
            return Err(Error::NoCredentials { searched: p });
        }
        (p, Source::WellKnown)
    };
    tracing::debug!(path = %path.display(), ?source, "credential file chosen");
    if !path.exists() {
        let problem = match source {
            Source::Environment => format!("does not exist (named by {ENV_CREDENTIALS})"),
            _ => "does not exist".to_string(),
        };
        return Err(Error::CredentialFile { path, problem });
    }
    Ok((path, source))
}

/// A warning when a credential file can be read by other users (Unix permissions).
pub fn exposed_warning(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then(|| {
            format!(
                "{} is readable by other users (mode {mode:03o}); run `chmod 600 {}`",
                path.display(),
                path.display()
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Writes `bytes` to `path` atomically: a 0600 temp file in the same directory, written and
/// fsynced, renamed over the target, then the directory fsynced. A missing parent directory is
/// created with mode 0700. Readers see the old file or the new one, never a partial one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |action: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| Error::Io {
            action,
            path: p,
            source,
        }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_private_dir(&dir)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".gemauth-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o600));
    }
    let mut tmp = builder
        .tempfile_in(&dir)
        .map_err(io("cannot create a temporary file in", &dir))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(io("cannot write", tmp.path()))?;
    // Kept (on Windows: no longer marked temporary) and closed, then renamed by std, which on
    // Windows replaces a target that others have open (POSIX semantics) where tempfile's
    // MoveFileEx cannot.
    let tmp_path = tmp.path().to_path_buf();
    let (file, tmp_path) = tmp
        .keep()
        .map_err(|e| e.error)
        .map_err(io("cannot write", &tmp_path))?;
    drop(file);
    if let Err(e) = replace(&tmp_path, path) {
        let _ = fs::remove_file(&tmp_path);
        return Err(io("cannot replace", path)(e));
    }
    sync_dir(&dir);
    tracing::debug!(path = %path.display(), bytes = bytes.len(), "wrote file atomically");
    remove_stale_temp_files(&dir);
    Ok(())
}

/// Renames `from` over `to`. On Windows a file that another program holds open without sharing
/// its deletion (as many programs open files, and virus scanners do for a moment) cannot be
/// replaced until it is closed, so an access or sharing error is retried for up to two seconds.
fn replace(from: &Path, to: &Path) -> std::io::Result<()> {
    const ERROR_ACCESS_DENIED: i32 = 5;
    const ERROR_SHARING_VIOLATION: i32 = 32;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut pause = std::time::Duration::from_millis(10);
    loop {
        match fs::rename(from, to) {
            Err(e)
                if cfg!(windows)
                    && matches!(
                        e.raw_os_error(),
                        Some(ERROR_ACCESS_DENIED | ERROR_SHARING_VIOLATION)
                    )
                    && std::time::Instant::now() < deadline =>
            {
                tracing::debug!(path = %to.display(), "the file is in use; retrying the replace");
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(200));
            }
            result => return result,
        }
    }
}

/// Rewrites a credential file in place: loads it as a JSON object (checked like every loader
/// does), lets `edit` change it, and writes it back atomically, pretty-printed. The caller holds
/// the credential lock.
pub fn update_credential_json(
    path: &Path,
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>) -> Result<()>,
) -> Result<()> {
    let mut map = crate::credentials::load_json_object(path)?;
    edit(&mut map)?;
    let mut bytes = serde_json::to_vec_pretty(&serde_json::Value::Object(map))
        .map_err(|e| Error::Internal(format!("cannot serialize: {e}")))?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Temp files older than this were left by a writer that was killed before its rename.
const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// Removes gemauth temp files that a killed writer left behind (never a young one: another
/// process may be writing it right now).
fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(".gemauth-") && name.ends_with(".tmp")) {
            continue;
        }
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_TEMP_AGE);
        if stale {
            tracing::debug!(file = %entry.path().display(), "removing a stale temp file");
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Creates `dir` (and missing parents) with mode 0700; an existing directory is left as is.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| Error::Io {
        action: "cannot create directory",
        path: dir.to_path_buf(),
        source,
    })
}

fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        // Makes the rename durable; failure here cannot be acted upon, the data is already safe.
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Removes a file; a file that is already gone is not an error.
pub fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                sync_dir(dir);
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            action: "cannot remove",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A Unix time as RFC 3339 (UTC, seconds); times past the year 9999 are shown as its end.
pub fn rfc3339(unix: u64) -> String {
    const MAX: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let at = UNIX_EPOCH + std::time::Duration::from_secs(unix.min(MAX));
    humantime::format_rfc3339_seconds(at).to_string()
}

/// gemauth's directory in the platform's cache directory: `$XDG_CACHE_HOME/gemauth` or
/// `~/.cache/gemauth` on Linux, `~/Library/Caches/gemauth` on macOS, `%LOCALAPPDATA%\gemauth`
/// on Windows (the variable is read first, as `APPDATA` is for gcloud's directory).
pub fn cache_dir() -> Option<PathBuf> {
    if cfg!(windows)
        && let Some(local) = env_path("LOCALAPPDATA")
    {
        return Some(local.join("gemauth"));
    }
    dirs::cache_dir().map(|d| d.join("gemauth"))
}

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
    /// True while the token may still be handed out: `min_lifetime` seconds remain, or by
    /// default five minutes, or half its lifetime when that is shorter.
    pub fn is_fresh(&self, now: u64, min_lifetime: Option<u64>) -> bool {
        let lifetime = self.expires_at.saturating_sub(self.obtained_at);
        let margin = min_lifetime.unwrap_or(MIN_REMAINING_SECS.min(lifetime / 2));
        now < self.expires_at && self.expires_at - now >= margin.max(1)
    }
}

/// The cache entry of one credential: keyed by the client, the refresh token and the token
/// endpoint, so another login or another credential never sees this token.
pub struct TokenCache {
    path: Option<PathBuf>,
}

impl TokenCache {
    /// The cache entry for a key (see `adc::Credential::cache_key`).
    pub fn new(key: &str) -> Self {
        TokenCache {
            path: cache_dir().map(|d| d.join("tokens").join(format!("{key}.json"))),
        }
    }

    /// The entry of a user credential's own tokens.
    pub fn for_user(user: &AuthorizedUser) -> Self {
        Self::new(&hex_digest(&[
            &user.client_id,
            user.refresh_token.secret(),
            user.token_uri.as_deref().unwrap_or_default(),
        ]))
    }

    /// The cached token, if one is present and readable. A broken entry is treated as absent.
    pub fn load(&self) -> Option<CachedToken> {
        let bytes = fs::read(self.path.as_ref()?).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Stores a token. Failing to cache is not fatal (the caller still has its token), so the
    /// failure comes back as a warning for the caller to show.
    pub fn store(&self, token: &CachedToken) -> Option<String> {
        let path = self.path.as_ref()?;
        let written = serde_json::to_vec(token)
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
    fn far_future_times_format_without_panicking() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
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

    #[test]
    fn atomic_write_creates_private_file_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new").join("creds.json");
        write_atomic(&path, b"{}").unwrap();
        write_atomic(&path, b"{\"a\":1}").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{\"a\":1}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
        let leftovers = fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1);
    }

    #[test]
    fn stale_temp_files_of_killed_writers_are_removed_and_young_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join(".gemauth-killed.tmp");
        let young = dir.path().join(".gemauth-writing.tmp");
        let other = dir.path().join("unrelated.tmp");
        for p in [&stale, &young, &other] {
            fs::write(p, b"partial").unwrap();
        }
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(old)
            .unwrap();
        File::options()
            .write(true)
            .open(&other)
            .unwrap()
            .set_modified(old)
            .unwrap();
        write_atomic(&dir.path().join("creds.json"), b"{}").unwrap();
        assert!(!stale.exists());
        assert!(young.exists());
        assert!(other.exists());
    }
}
