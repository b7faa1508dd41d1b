//! Fresh access tokens for any Application Default Credentials, for the CLI and for Rust programs
//! alike: discovery, the cache, the single-flight refresh under the credential lock, and the
//! write-back of rotated refresh tokens.

use std::path::{Path, PathBuf};

use crate::adc;
use crate::credentials;
use crate::credentials::Credential;
use crate::error::{Error, Result};
use crate::oauth::Http;
use crate::secret::Secret;
use crate::store::{self, CachedToken, CredentialLock, TokenCache};

/// An access token and what goes with it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Token {
    /// The bearer token for the `Authorization` header.
    pub access_token: Secret<String>,
    pub token_type: String,
    /// Unix time at which the token expires.
    pub expires_at: u64,
    pub scopes: Vec<String>,
    /// The project billed for API quota (`x-goog-user-project`), when the credential names one.
    pub quota_project_id: Option<String>,
    /// The credential file the token was obtained for (none for the metadata server).
    pub credential_file: Option<PathBuf>,
    /// The credential's `type` (`authorized_user`, `service_account`, …, `metadata_server`).
    pub credential_type: &'static str,
    /// Things the caller should tell the user (a credential file others can read, a cache that
    /// could not be written); the library itself never prints.
    pub warnings: Vec<String>,
}

/// What a token is asked for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// A credential file to use instead of discovering one.
    pub credential_file: Option<PathBuf>,
    /// Seconds a cached token must still be valid for; by default five minutes, or half the
    /// token's lifetime when that is shorter.
    pub min_lifetime: Option<u64>,
    /// Scopes (full URLs) for the credential types that choose them (default `cloud-platform`);
    /// for a user credential they must have been granted at login.
    pub scopes: Option<Vec<String>>,
}

/// Where the credential comes from.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    File(PathBuf, store::Source),
    Metadata(String),
}

/// Finds the credential like `google.auth.default()`: the flag, `GOOGLE_APPLICATION_CREDENTIALS`,
/// the ADC file, then the metadata server (`GCE_METADATA_HOST`, or when on Google Cloud).
pub(crate) fn locate(credential_file: Option<&Path>) -> Result<Target> {
    match store::discover(credential_file) {
        Ok((path, source)) => Ok(Target::File(path, source)),
        Err(Error::NoCredentials { searched }) => match adc::metadata_host() {
            Some(host) => Ok(Target::Metadata(host)),
            None => Err(Error::NoCredentials { searched }),
        },
        Err(e) => Err(e),
    }
}

/// The warning about a credential file that other users can read.
fn exposed_warning(target: &Target) -> Option<String> {
    match target {
        Target::File(path, _) => store::exposed_warning(path),
        Target::Metadata(_) => None,
    }
}

/// Loads the credential a target names.
pub(crate) fn load(target: &Target) -> Result<Credential> {
    match target {
        Target::File(path, _) => {
            let bytes = credentials::read_credential_file(path)?;
            credentials::parse_credential_file(path, &bytes)
        }
        Target::Metadata(host) => Ok(Credential::Metadata { host: host.clone() }),
    }
}

/// A token for the discovered credential (`credential_file` first, when given).
pub fn get(credential_file: Option<&Path>, min_lifetime: Option<u64>) -> Result<Token> {
    get_with(&Request {
        credential_file: credential_file.map(Path::to_path_buf),
        min_lifetime,
        scopes: None,
    })
}

/// A token as `request` asks: from the cache when it is fresh enough, else obtained once under
/// the credential lock. The cached path reads two small files and starts no runtime and no HTTP
/// client.
pub fn get_with(request: &Request) -> Result<Token> {
    let target = locate(request.credential_file.as_deref())?;
    let mut token = match cached(&target, request)? {
        Some(token) => token,
        None => crate::oauth::block_on(refresh_locked(&target, request))??,
    };
    token.warnings.extend(exposed_warning(&target));
    Ok(token)
}

/// The async form of [`get_with`], for programs that already run a Tokio runtime (the blocking
/// variants must not be called from inside one). While another process refreshes the same
/// credential, the wait for its lock runs on the runtime's blocking pool, not on the caller's
/// thread.
pub async fn get_async(request: &Request) -> Result<Token> {
    let target = locate(request.credential_file.as_deref())?;
    let mut token = match cached(&target, request)? {
        Some(token) => token,
        None => refresh_locked(&target, request).await?,
    };
    token.warnings.extend(exposed_warning(&target));
    Ok(token)
}

/// The cached token, when it is fresh enough.
fn cached(target: &Target, request: &Request) -> Result<Option<Token>> {
    let credential = load(target)?;
    let scopes = credential.scopes(request.scopes.as_deref())?;
    let now = store::now();
    let fresh = cached_or_saved(
        &TokenCache::new(&credential.cache_key(&scopes)),
        &credential,
    )
    .filter(|t| t.is_fresh(now, request.min_lifetime));
    match fresh {
        Some(token) => {
            tracing::debug!(expires_in = token.expires_at - now, "cached token is fresh");
            Ok(Some(token_of(token, &credential, target, &scopes)))
        }
        None => {
            tracing::debug!("no fresh cached token; refreshing under the lock");
            Ok(None)
        }
    }
}

/// The cache entry, or the access token a google-auth `token.json` saved beside its refresh
/// token when that one is believable and lasts longer (it is then stored in the cache): a fresh
/// `token.json` gives a token without a network call.
fn cached_or_saved(cache: &TokenCache, credential: &Credential) -> Option<CachedToken> {
    let entry = cache.load();
    let Some(saved) = saved_token(credential, store::now()) else {
        return entry;
    };
    if entry
        .as_ref()
        .is_some_and(|e| e.expires_at >= saved.expires_at)
    {
        return entry;
    }
    tracing::debug!("using the access token saved in the credential file");
    // Failing to cache it costs only the next call a look at the file again.
    let _ = cache.store(&saved);
    Some(saved)
}

/// The access token a google-auth `token.json` saved beside its refresh token, when it can be
/// believed at `now` (see `AuthorizedUser::saved_access_token`).
pub(crate) fn saved_token(credential: &Credential, now: u64) -> Option<CachedToken> {
    let Credential::User(user) = credential else {
        return None;
    };
    let (token, expires_at) = user.saved_access_token(now)?;
    Some(CachedToken {
        key: String::new(),
        access_token: oauth2::AccessToken::new(token.to_string()),
        token_type: "Bearer".into(),
        // Google's access tokens last an hour: it was obtained an hour before it expires.
        obtained_at: expires_at.saturating_sub(credentials::SAVED_TOKEN_MAX_LIFETIME_SECS),
        expires_at,
        scopes: user.scopes.as_ref().map(|s| s.to_vec()).unwrap_or_default(),
    })
}

/// Takes the credential lock of a target (access and ID tokens share it).
pub(crate) async fn lock(target: &Target) -> Result<CredentialLock> {
    let key = match target {
        Target::File(path, _) => store::lock_key(path),
        Target::Metadata(host) => store::hex_digest(&["metadata", host]),
    };
    CredentialLock::acquire_key_async(&key).await
}

/// Takes the credential lock, re-reads the file and the cache (a process that waited for the lock
/// uses the token its predecessor obtained), and obtains a new token only if still needed.
async fn refresh_locked(target: &Target, request: &Request) -> Result<Token> {
    let _lock = lock(target).await?;
    let credential = load(target)?;
    let scopes = credential.scopes(request.scopes.as_deref())?;
    let cache = TokenCache::new(&credential.cache_key(&scopes));
    if let Some(token) = cache
        .load()
        .filter(|t| t.is_fresh(store::now(), request.min_lifetime))
    {
        tracing::debug!("another process refreshed while we waited; using its token");
        return Ok(token_of(token, &credential, target, &scopes));
    }
    // Where a rotated refresh token would be written, its space is reserved before the grant
    // that spends the old one: a full disk fails here, with the old token still valid.
    let reservation = reserve_rotation(target, &credential)?;
    let http = Http::new()?;
    let minted = credential.mint(&http, &scopes).await?;
    // A rotated refresh token must be on disk before the lock is released, even when the rest
    // of the minting failed (an impersonation whose source was refreshed).
    let credential = match &minted.rotated {
        Some(new) => {
            save_rotated(target, &credential, new, reservation)?;
            let _ = cache.remove();
            load(target)?
        }
        None => credential,
    };
    let minted = minted.token?;
    // A token already dead (`expires_in: 0`, an `expireTime` in the past) is never handed out.
    if minted.expires_at <= store::now() {
        return Err(Error::Server {
            endpoint: format!("the {} token server", credential.type_name()),
            status: 200,
            detail: "the new access token has already expired (is this machine's clock right?)"
                .into(),
        });
    }
    tracing::debug!(
        lifetime = minted.expires_at.saturating_sub(minted.obtained_at),
        kind = credential.type_name(),
        "obtained a new access token"
    );
    let warning = TokenCache::new(&credential.cache_key(&scopes)).store(&minted);
    let mut token = token_of(minted, &credential, target, &scopes);
    token.warnings.extend(warning);
    Ok(token)
}

/// The field of the credential file that holds a refresh token the server may rotate.
fn rotating_field(credential: &Credential) -> Option<&'static [&'static str]> {
    match credential {
        Credential::User(_) => Some(&["refresh_token"]),
        Credential::Impersonated { source, .. } if matches!(**source, Credential::User(_)) => {
            Some(&["source_credentials", "refresh_token"])
        }
        _ => None,
    }
}

/// Reserves room beside a credential file for its rewrite with a rotated refresh token: the
/// file's size plus room for a longer token.
fn reserve_for_rewrite(path: &Path) -> Result<store::Reservation> {
    const ROOM_FOR_A_LONGER_TOKEN: u64 = 16 * 1024;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    store::Reservation::new(path, size.saturating_mul(2) + ROOM_FOR_A_LONGER_TOKEN)
}

/// Reserves, before a grant that may rotate the refresh token `credential` holds, the room to
/// save the rotated one (see [`reserve_for_rewrite`]); `None` for credentials without one.
pub(crate) fn reserve_rotation(
    target: &Target,
    credential: &Credential,
) -> Result<Option<store::Reservation>> {
    match (rotating_field(credential), target) {
        (Some(_), Target::File(path, _)) => Ok(Some(reserve_for_rewrite(path)?)),
        _ => Ok(None),
    }
}

/// Saves a refresh token the server rotated while minting for `credential` (loaded from
/// `target`), into the room reserved for it, keeping everything else in the file; the caller
/// holds the credential lock. Other credential types hold no refresh token to rotate.
pub(crate) fn save_rotated(
    target: &Target,
    credential: &Credential,
    new: &oauth2::RefreshToken,
    reservation: Option<store::Reservation>,
) -> Result<()> {
    match (rotating_field(credential), target) {
        (Some(field), Target::File(path, _)) => {
            rewrite_field(path, reservation, field, new.secret())
        }
        _ => Ok(()),
    }
}

/// Sets one string field (by its path of keys) in a credential file, keeping everything else,
/// writing into the space reserved for it.
fn rewrite_field(
    path: &Path,
    reservation: Option<store::Reservation>,
    field: &[&str],
    value: &str,
) -> Result<()> {
    store::update_credential_json(path, reservation, |map| {
        let (last, parents) = field
            .split_last()
            .ok_or_else(|| Error::Internal("no field to rewrite".into()))?;
        let mut object = map;
        for key in parents {
            object = object
                .get_mut(*key)
                .and_then(serde_json::Value::as_object_mut)
                .ok_or_else(|| Error::Internal(format!("{} has no {key}", path.display())))?;
        }
        object.insert(
            (*last).to_string(),
            serde_json::Value::String(value.to_string()),
        );
        Ok(())
    })
}

fn token_of(
    cached: CachedToken,
    credential: &Credential,
    target: &Target,
    scopes: &[String],
) -> Token {
    let scopes = match (cached.scopes.is_empty(), credential) {
        (false, _) => cached.scopes,
        (true, Credential::User(user)) => {
            user.scopes.as_ref().map(|s| s.to_vec()).unwrap_or_default()
        }
        (true, _) => scopes.to_vec(),
    };
    Token {
        access_token: Secret::new(cached.access_token.into_secret()),
        token_type: cached.token_type,
        expires_at: cached.expires_at,
        scopes,
        quota_project_id: credential.quota_project(),
        credential_file: match target {
            Target::File(path, _) => Some(path.clone()),
            Target::Metadata(_) => None,
        },
        credential_type: credential.type_name(),
        warnings: Vec::new(),
    }
}
