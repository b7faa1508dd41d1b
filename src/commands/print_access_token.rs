//! `gemauth print-access-token`: print a cached access token, refreshing it when needed.

use std::io::Write;

use crate::cli::PrintAccessTokenArgs;
use crate::credentials::{self, AuthorizedUser};
use crate::error::{Error, Result};
use crate::oauth::{self, Http};
use crate::store::{self, CachedToken, CredentialLock, TokenCache};

pub fn run(args: PrintAccessTokenArgs) -> Result<()> {
    let (path, _source) = store::discover(args.credential_file.as_deref())?;
    let token = access_token(&path)?;
    print_token(&token)
}

fn print_token(token: &CachedToken) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", token.access_token.secret())
        .and_then(|()| stdout.flush())
        .map_err(|e| Error::Internal(format!("cannot write to stdout: {e}")))
}

/// A fresh access token for the credential file at `path`: from the cache when it is fresh,
/// else refreshed once under the credential lock (a process that waited for the lock re-reads
/// the file and the cache, and uses the token its predecessor obtained).
pub fn access_token(path: &std::path::Path) -> Result<CachedToken> {
    let user = credentials::load_authorized_user(path)?;
    store::warn_if_exposed(path);
    let now = store::now();
    if let Some(token) = TokenCache::for_user(&user)
        .load()
        .filter(|t| t.is_fresh(now))
    {
        tracing::debug!(expires_in = token.expires_at - now, "cached token is fresh");
        return Ok(token);
    }
    tracing::debug!("no fresh cached token; refreshing under the lock");

    let _lock = CredentialLock::acquire(path)?;
    let user = credentials::load_authorized_user(path)?;
    let cache = TokenCache::for_user(&user);
    if let Some(token) = cache.load().filter(|t| t.is_fresh(store::now())) {
        tracing::debug!("another process refreshed while we waited; using its token");
        return Ok(token);
    }
    refresh(path, user, &cache)
}

fn refresh(
    path: &std::path::Path,
    mut user: AuthorizedUser,
    cache: &TokenCache,
) -> Result<CachedToken> {
    let token_uri = user.token_endpoint()?;
    let response = super::block_on(async {
        let http = Http::new()?;
        oauth::refresh(
            &http,
            &token_uri,
            &user.client_id,
            &user.client_secret,
            &user.refresh_token,
        )
        .await
    })??;
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
    Ok(token)
}
