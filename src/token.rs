//! Fresh access tokens for a credential file, for the CLI and for Rust programs alike: the cache,
//! the single-flight refresh under the credential lock, and the write-back of rotated refresh
//! tokens.
//!
//! ```no_run
//! // The same token `gemauth print-access-token` prints: cached, or refreshed once.
//! let token = gemauth::token::get(None, None)?;
//! println!("Authorization: Bearer {}", token.access_token.secret());
//! # Ok::<(), gemauth::error::Error>(())
//! ```

use std::path::{Path, PathBuf};

use oauth2::AccessToken;

use crate::credentials::{self, AuthorizedUser};
use crate::error::Result;
use crate::oauth::{self, Http};
use crate::store::{self, CachedToken, CredentialLock, TokenCache};

/// An access token and what goes with it.
#[derive(Debug, Clone)]
pub struct Token {
    pub access_token: AccessToken,
    pub token_type: String,
    /// Unix time at which the token expires.
    pub expires_at: u64,
    pub scopes: Vec<String>,
    /// The project billed for API quota (`x-goog-user-project`), when the credential names one.
    pub quota_project_id: Option<String>,
    /// The credential file the token was obtained for.
    pub credential_file: PathBuf,
}

/// A token for the credential file found like `google.auth.default()` finds it (`credential_file`
/// if given, then `GOOGLE_APPLICATION_CREDENTIALS`, then the ADC file). `min_lifetime` is the
/// number of seconds a cached token must still be valid for; by default five minutes, or half the
/// token's lifetime when that is shorter.
pub fn get(credential_file: Option<&Path>, min_lifetime: Option<u64>) -> Result<Token> {
    let (path, _source) = store::discover(credential_file)?;
    for_file(&path, min_lifetime)
}

/// The async form of [`get`], for programs that already run a Tokio runtime (the blocking
/// variants must not be called from inside one).
pub async fn get_async(credential_file: Option<&Path>, min_lifetime: Option<u64>) -> Result<Token> {
    let (path, _source) = store::discover(credential_file)?;
    match cached(&path, min_lifetime)? {
        Some(token) => Ok(token),
        None => refresh_locked(&path, min_lifetime).await,
    }
}

/// A token for the credential file at `path`: from the cache when it is fresh enough, else
/// refreshed once under the credential lock. The cached path reads two small files and starts
/// no runtime and no HTTP client.
pub fn for_file(path: &Path, min_lifetime: Option<u64>) -> Result<Token> {
    match cached(path, min_lifetime)? {
        Some(token) => Ok(token),
        None => crate::commands::block_on(refresh_locked(path, min_lifetime))?,
    }
}

/// The cached token, when it is fresh enough.
fn cached(path: &Path, min_lifetime: Option<u64>) -> Result<Option<Token>> {
    let user = credentials::load_authorized_user(path)?;
    store::warn_if_exposed(path);
    let now = store::now();
    let fresh = TokenCache::for_user(&user)
        .load()
        .filter(|t| t.is_fresh(now, min_lifetime));
    match fresh {
        Some(token) => {
            tracing::debug!(expires_in = token.expires_at - now, "cached token is fresh");
            Ok(Some(token_of(token, &user, path)))
        }
        None => {
            tracing::debug!("no fresh cached token; refreshing under the lock");
            Ok(None)
        }
    }
}

/// Takes the credential lock, re-reads the file and the cache (a process that waited for the lock
/// uses the token its predecessor obtained), and refreshes only if still needed.
async fn refresh_locked(path: &Path, min_lifetime: Option<u64>) -> Result<Token> {
    let _lock = CredentialLock::acquire(path)?;
    let user = credentials::load_authorized_user(path)?;
    let cache = TokenCache::for_user(&user);
    if let Some(token) = cache
        .load()
        .filter(|t| t.is_fresh(store::now(), min_lifetime))
    {
        tracing::debug!("another process refreshed while we waited; using its token");
        return Ok(token_of(token, &user, path));
    }
    refresh(path, user, &cache).await
}

fn token_of(cached: CachedToken, user: &AuthorizedUser, path: &Path) -> Token {
    let scopes = if cached.scopes.is_empty() {
        user.scopes.as_ref().map(|s| s.to_vec()).unwrap_or_default()
    } else {
        cached.scopes
    };
    Token {
        access_token: cached.access_token,
        token_type: cached.token_type,
        expires_at: cached.expires_at,
        scopes,
        quota_project_id: user.quota_project_id.clone(),
        credential_file: path.to_path_buf(),
    }
}

async fn refresh(path: &Path, mut user: AuthorizedUser, cache: &TokenCache) -> Result<Token> {
    let token_uri = user.token_endpoint()?;
    let http = Http::new()?;
    let response = oauth::refresh(
        &http,
        &token_uri,
        &user.client_id,
        &user.client_secret,
        &user.refresh_token,
    )
    .await?;
    let now = store::now();
    let token = CachedToken {
        access_token: response.access_token.clone(),
        token_type: response
            .token_type
            .clone()
            .unwrap_or_else(|| "Bearer".into()),
        obtained_at: now,
        expires_at: now + response.lifetime(),
        scopes: response.granted_scopes().unwrap_or_default(),
    };
    tracing::debug!(lifetime = response.lifetime(), "refreshed the access token");
    match response.refresh_token {
        // A rotated refresh token must be on disk before the lock is released.
        Some(new) if new.secret() != user.refresh_token.secret() => {
            user.refresh_token = new;
            store::write_atomic(path, &user.to_json())?;
            TokenCache::for_user(&user).store(&token);
            let _ = cache.remove();
        }
        _ => cache.store(&token),
    }
    Ok(token_of(token, &user, path))
}
