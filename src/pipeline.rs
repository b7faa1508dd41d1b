//! The one token pipeline, for access tokens and ID tokens alike, for every command and the
//! library: discovery, the cache (and a google-auth `token.json`'s saved token), the
//! credential lock, the re-check under it, the disk reserved for a rotated refresh token, the
//! mint, the rotated token saved (even when the rest failed), and the new token stored.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::context::Context;
use crate::credentials::{self, Credential, Issued, Want};
use crate::error::{Error, Rejecter, Result};
use crate::oauth;
use crate::rules::{MAX_LIFETIME_SECS, plausible_access_token, sanitize};
use crate::secret::Secret;
use crate::store::{self, CachedToken, CredentialLock, Reservation, TokenCache, TokenKind};

/// Where the credential comes from.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    File(PathBuf, store::Source),
    Metadata(String),
}

impl Target {
    /// The credential file, if there is one.
    pub(crate) fn file(&self) -> Option<&Path> {
        match self {
            Target::File(path, _) => Some(path),
            Target::Metadata(_) => None,
        }
    }

    /// The warning about a credential file that other users can read.
    pub(crate) fn exposed_warning(&self) -> Option<String> {
        self.file().and_then(store::exposed_warning)
    }
}

/// Finds the credential like `google.auth.default()`: the flag, `GOOGLE_APPLICATION_CREDENTIALS`,
/// the ADC file, then the metadata server (`GCE_METADATA_HOST`, or when on Google Cloud).
pub(crate) fn locate(ctx: &Context, credential_file: Option<&Path>) -> Result<Target> {
    match store::discover(&ctx.env, credential_file) {
        Ok((path, source)) => Ok(Target::File(path, source)),
        Err(Error::NoCredentials { searched }) => match credentials::metadata_host(&ctx.env) {
            Some(host) => {
                tracing::debug!(%host, "no credential file; asking the metadata server");
                Ok(Target::Metadata(host))
            }
            None => {
                tracing::debug!(
                    "no metadata server: GCE_METADATA_HOST is not set and this machine is not on \
                     Google Cloud (or NO_GCE_CHECK is set)"
                );
                Err(Error::NoCredentials { searched })
            }
        },
        Err(e) => Err(e),
    }
}

/// Loads the credential a target names, refusing one whose endpoints the endpoint rule refuses
/// (with the hosts `ctx`'s environment trusts): nothing is sent to them.
pub(crate) fn load(ctx: &Context, target: &Target) -> Result<Credential> {
    let mut credential = inspect(target)?;
    if let Target::File(path, _) = target {
        credential.check_endpoints(path, &ctx.env)?;
    }
    credential.bind_environment(&ctx.env);
    Ok(credential)
}

/// Loads the credential a target names without the endpoint rule, for `status`, which sends
/// nothing and shows every endpoint that is not Google's default.
pub(crate) fn inspect(target: &Target) -> Result<Credential> {
    match target {
        Target::File(path, _) => credentials::load_credential_file(path),
        Target::Metadata(host) => Ok(Credential::Metadata { host: host.clone() }),
    }
}

/// What the pipeline is asked for: the token `want` gives for the credential found (checked
/// against its type), fresh for at least `min_lifetime` seconds (by default five minutes, or
/// half the token's lifetime when that is shorter).
pub(crate) struct Ask<'a> {
    pub(crate) want: &'a (dyn Fn(&Credential) -> Result<Want> + Sync),
    pub(crate) min_lifetime: Option<u64>,
    /// A service account to act as through the credential found, and the lifetime of
    /// impersonated tokens (`--impersonate-service-account`, `--lifetime`): the token is then
    /// the impersonation's, cached under its own key, and no file changes.
    pub(crate) acting: Option<&'a credentials::Acting>,
}

/// The credential a target names, as `acting` wants to use it (see [`Ask::acting`]): itself, or
/// an impersonation built in memory whose source it is.
pub(crate) fn load_acting(
    ctx: &Context,
    target: &Target,
    acting: Option<&credentials::Acting>,
) -> Result<Credential> {
    let credential = load(ctx, target)?;
    match acting {
        None => Ok(credential),
        Some(acting) => {
            let path = target
                .file()
                .unwrap_or(Path::new("the metadata server's credential"));
            acting.apply(credential, path, &ctx.env)
        }
    }
}

/// A token the pipeline found or obtained, with the credential it is for.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) entry: CachedToken,
    pub(crate) credential: Credential,
    pub(crate) want: Want,
    /// Things the caller should tell the user (a cache that could not be written).
    pub(crate) warnings: Vec<String>,
}

/// The token from the cache when it is fresh enough, else obtained once under the credential
/// lock (on a runtime started for it). The cached path starts no runtime and no HTTP client.
pub(crate) fn get(ctx: &Context, target: &Target, ask: &Ask) -> Result<Fetched> {
    let fetched = match cached(ctx, target, ask)? {
        Some(fetched) => fetched,
        None => oauth::block_on(refresh(ctx, target, ask))??,
    };
    Ok(with_cache_warning(ctx, fetched))
}

/// [`get`] for callers on a Tokio runtime.
pub(crate) async fn get_async(ctx: &Context, target: &Target, ask: &Ask<'_>) -> Result<Fetched> {
    let fetched = match cached(ctx, target, ask)? {
        Some(fetched) => fetched,
        None => refresh(ctx, target, ask).await?,
    };
    Ok(with_cache_warning(ctx, fetched))
}

/// The token, first telling why there is no cache when there is none that can be trusted.
fn with_cache_warning(ctx: &Context, mut fetched: Fetched) -> Fetched {
    if let Some(warning) = &ctx.cache_warning {
        fetched.warnings.insert(0, warning.clone());
    }
    fetched
}

/// The cached token, when it is fresh enough.
fn cached(ctx: &Context, target: &Target, ask: &Ask) -> Result<Option<Fetched>> {
    let credential = load_acting(ctx, target, ask.acting)?;
    let want = (ask.want)(&credential)?;
    match lookup(ctx, &credential, &want, ask.min_lifetime) {
        Some(entry) => {
            let expires_in = entry.expires_at.saturating_sub(ctx.now());
            match want {
                Want::Access { .. } => tracing::debug!(expires_in, "cached token is fresh"),
                Want::Id { .. } => tracing::debug!(expires_in, "cached ID token is fresh"),
            }
            Ok(Some(Fetched {
                entry,
                credential,
                want,
                warnings: Vec::new(),
            }))
        }
        None => {
            match want {
                Want::Access { .. } => {
                    tracing::debug!("no fresh cached token; refreshing under the lock");
                }
                Want::Id { .. } => {
                    tracing::debug!("no fresh cached ID token; minting one under the lock");
                }
            }
            Ok(None)
        }
    }
}

/// The cache entry of `want` when it is fresh enough (for an access token: or the one a
/// google-auth `token.json` saved, when that one is believable and lasts longer).
fn lookup(
    ctx: &Context,
    credential: &Credential,
    want: &Want,
    min_lifetime: Option<u64>,
) -> Option<CachedToken> {
    let now = ctx.now();
    let cache = cache_for(ctx, credential, want);
    let entry = match want {
        Want::Access { .. } => cached_or_saved(&cache, credential, now),
        Want::Id { .. } => cache.load(TokenKind::Id, now).filter(|entry| {
            entry.id_token.as_ref().is_some_and(|token| {
                Claims::read(
                    "the cache",
                    token.expose(),
                    expected_audience(credential, want),
                    now,
                )
                .is_ok()
            })
        }),
    };
    entry.filter(|t| t.is_fresh(now, min_lifetime))
}

fn cache_for(ctx: &Context, credential: &Credential, want: &Want) -> TokenCache {
    TokenCache::in_dir(ctx.cache_dir.as_deref(), &credential.key_for(want))
}

/// The cache entry, or the access token a google-auth `token.json` saved beside its refresh
/// token when that one is believable and lasts longer (it is then stored in the cache): a fresh
/// `token.json` gives a token without a network call.
fn cached_or_saved(cache: &TokenCache, credential: &Credential, now: u64) -> Option<CachedToken> {
    let entry = cache.load(TokenKind::Access, now);
    let Some(saved) = saved_token(credential, now) else {
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
/// believed at `now`.
pub(crate) fn saved_token(credential: &Credential, now: u64) -> Option<CachedToken> {
    match credential {
        Credential::User(user) => user.saved_access_token(now),
        _ => None,
    }
}

/// The audience an ID token's `aud` claim must name: a user's OAuth client, else the one asked.
pub(crate) fn expected_audience<'a>(credential: &'a Credential, want: &'a Want) -> &'a str {
    match (credential, want) {
        (Credential::User(user), _) => &user.client_id,
        (_, Want::Id { audience, .. }) => audience,
        (_, Want::Access { .. }) => "",
    }
}

/// Takes the credential lock of a target (access and ID tokens share it).
async fn lock(ctx: &Context, target: &Target) -> Result<CredentialLock> {
    let key = match target {
        Target::File(path, _) => store::lock_key(path),
        Target::Metadata(host) => store::hex_digest(&["metadata", host]),
    };
    CredentialLock::acquire_key_async(ctx.cache_dir.as_deref(), &key).await
}

/// Takes the credential lock, re-reads the file and the cache (a process that waited for the lock
/// uses the token its predecessor obtained), and obtains a new token only if still needed.
pub(crate) async fn refresh(ctx: &Context, target: &Target, ask: &Ask<'_>) -> Result<Fetched> {
    let _lock = lock(ctx, target).await?;
    let credential = load_acting(ctx, target, ask.acting)?;
    let want = (ask.want)(&credential)?;
    if let Some(entry) = lookup(ctx, &credential, &want, ask.min_lifetime) {
        match want {
            Want::Access { .. } => {
                tracing::debug!("another process refreshed while we waited; using its token");
            }
            Want::Id { .. } => {
                tracing::debug!("another process minted while we waited; using its ID token");
            }
        }
        return Ok(Fetched {
            entry,
            credential,
            want,
            warnings: Vec::new(),
        });
    }
    // Where a rotated refresh token would be written, its space is reserved before the grant
    // that spends the old one: a full disk fails here, with the old token still valid.
    let field = credential.rotating_field();
    let reservation = reserve_rotation(target, field.is_some())?;
    let minted = credential
        .mint(ctx, &want)
        .await
        .map_err(|e| name_the_file(e, target))?;
    // A rotated refresh token must be on disk before the lock is released, even when the rest
    // of the minting failed (an impersonation whose source was refreshed).
    let credential = match &minted.rotated {
        Some(new) => {
            save_rotated(target, field, new, reservation)?;
            let _ = cache_for(ctx, &credential, &want).remove();
            load_acting(ctx, target, ask.acting)?
        }
        None => credential,
    };
    let mut warnings = Vec::new();
    // A user's refresh grant for an ID token brought an access token too: keep it.
    if let Some(access) = &minted.access {
        warnings.extend(cache_for(ctx, &credential, &Want::access(Vec::new())).store(access));
    }
    let now = ctx.now();
    let entry = match minted.issued.map_err(|e| name_the_file(e, target))? {
        // A token already dead (`expires_in: 0`, an `expireTime` in the past) is never handed out.
        Issued::Access(entry) if entry.expires_at <= now => {
            return Err(Error::Server {
                endpoint: format!("the {} token server", credential.type_name()),
                status: 200,
                detail: "the new access token has already expired (is this machine's clock right?)"
                    .into(),
            });
        }
        Issued::Access(entry) => entry,
        Issued::Id { endpoint, token } => {
            let claims = Claims::read(
                &endpoint,
                token.expose(),
                expected_audience(&credential, &want),
                now,
            )?;
            CachedToken::id(token, now, claims.expires_at)
        }
    };
    let lifetime = entry.expires_at.saturating_sub(entry.obtained_at);
    let kind = credential.type_name();
    match want {
        Want::Access { .. } => tracing::debug!(lifetime, kind, "obtained a new access token"),
        Want::Id { .. } => tracing::debug!(lifetime, kind, "obtained a new ID token"),
    }
    warnings.extend(cache_for(ctx, &credential, &want).store(&entry));
    Ok(Fetched {
        entry,
        credential,
        want,
        warnings,
    })
}

/// Names the credential file in a user's refusal when it is not the well-known one (the hint
/// then signs in to that file).
fn name_the_file(e: Error, target: &Target) -> Error {
    let Target::File(path, source) = target else {
        return e;
    };
    e.rejected_as(|by| match by {
        Some(Rejecter::User {
            credential_file: None,
            scopes,
        }) if *source != store::Source::WellKnown => Some(Rejecter::User {
            credential_file: Some(path.clone()),
            scopes: scopes.clone(),
        }),
        _ => None,
    })
}

/// Reserves, before a grant that may rotate the refresh token the target's file holds
/// (`rotates`), the room to save the rotated one beside the file: its size plus room for a
/// longer token. `None` for credentials without one.
fn reserve_rotation(target: &Target, rotates: bool) -> Result<Option<Reservation>> {
    const ROOM_FOR_A_LONGER_TOKEN: u64 = 16 * 1024;
    match (rotates, target) {
        (true, Target::File(path, _)) => {
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            Ok(Some(Reservation::new(
                path,
                size.saturating_mul(2) + ROOM_FOR_A_LONGER_TOKEN,
            )?))
        }
        _ => Ok(None),
    }
}

/// Saves a refresh token the server rotated into `field` of the target's file, in the room
/// reserved for it, keeping everything else in the file; the caller holds the credential lock.
fn save_rotated(
    target: &Target,
    field: Option<Vec<&'static str>>,
    new: &Secret<String>,
    reservation: Option<Reservation>,
) -> Result<()> {
    let (Some(field), Target::File(path, _)) = (field, target) else {
        return Ok(());
    };
    credentials::update_json_object(path, reservation, |map| {
        let (last, parents) = field
            .split_last()
            .ok_or_else(|| Error::Internal("no field to rewrite".into()))?;
        let mut object = map;
        for key in parents {
            object = object
                .get_mut(*key)
                .and_then(Value::as_object_mut)
                .ok_or_else(|| Error::Internal(format!("{} has no {key}", path.display())))?;
        }
        object.insert((*last).to_string(), Value::String(new.expose().clone()));
        Ok(())
    })
}

/// What gemauth reads from an ID token's payload. The token came straight from the issuer over
/// a checked connection (or from gemauth's private cache), so its signature need not be
/// verified to read these (OpenID Connect Core 3.1.3.7); the service it is sent to verifies it.
#[derive(Debug)]
pub(crate) struct Claims {
    pub(crate) expires_at: u64,
    pub(crate) audience: String,
    pub(crate) email: Option<String>,
}

impl Claims {
    /// Reads and checks the claims: a JWT that fits in a header, an `exp` still ahead at `now`
    /// (and believed for at most [`MAX_LIFETIME_SECS`]), and an `aud` that names `audience`.
    pub(crate) fn read(endpoint: &str, token: &str, audience: &str, now: u64) -> Result<Claims> {
        let bad = |detail: &str| Error::Server {
            endpoint: endpoint.to_string(),
            status: 200,
            detail: format!("the ID token {detail}"),
        };
        if !plausible_access_token(token) {
            return Err(bad("is empty or holds spaces or control characters"));
        }
        let claims = oauth::jwt_claims(token).map_err(bad)?;
        let exp = claims
            .get("exp")
            .and_then(|e| e.as_u64().or_else(|| e.as_f64().map(|f| f.max(0.0) as u64)))
            .ok_or_else(|| bad("has no numeric exp claim"))?;
        if exp <= now {
            return Err(bad("has already expired (its exp claim is past)"));
        }
        let audiences: Vec<&str> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !audiences.contains(&audience) {
            return Err(bad(&format!(
                "is for another audience ({}), not {:?}",
                sanitize(&audiences.join(" ")),
                sanitize(audience)
            )));
        }
        Ok(Claims {
            expires_at: exp.min(now.saturating_add(MAX_LIFETIME_SECS)),
            audience: audience.to_string(),
            email: claims
                .get("email")
                .and_then(Value::as_str)
                .map(sanitize)
                .filter(|e| !e.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;

    use super::*;
    use crate::oauth::Http;
    use crate::testing::{Fake, NOW, TEST_KEY, context, jwt, path, token_answer};

    fn user_file(dir: &Path) -> PathBuf {
        let file = dir.join("adc.json");
        let user = json!({"type": "authorized_user", "client_id": "id.apps", "client_secret": "s",
            "refresh_token": "1//r1", "token_uri": "http://127.0.0.1:1/token",
            "kept": {"unknown": true}});
        std::fs::write(&file, user.to_string()).unwrap();
        file
    }

    fn target(file: &Path) -> Target {
        Target::File(file.to_path_buf(), store::Source::Flag)
    }

    fn access(_: &Credential) -> Result<Want> {
        Ok(Want::access(Vec::new()))
    }

    fn id_for_svc(_: &Credential) -> Result<Want> {
        Ok(Want::Id {
            audience: "https://svc".into(),
            include_email: false,
        })
    }

    fn ask(want: &(dyn Fn(&Credential) -> Result<Want> + Sync)) -> Ask<'_> {
        Ask {
            want,
            min_lifetime: None,
            acting: None,
        }
    }

    #[test]
    fn a_fresh_cached_token_is_used_without_any_request() {
        let dir = tempfile::tempdir().unwrap();
        let file = user_file(dir.path());
        let fake = Fake::default();
        let ctx = context(
            fake.http(|_| token_answer("ya29.new")),
            &[],
            Some(dir.path()),
        );
        let first = get(&ctx, &target(&file), &ask(&access)).unwrap();
        assert_eq!(first.entry.access_token.unwrap().expose(), "ya29.new");
        let again = get(&ctx, &target(&file), &ask(&access)).unwrap();
        assert_eq!(again.entry.access_token.unwrap().expose(), "ya29.new");
        assert_eq!(
            fake.seen().len(),
            1,
            "the second call is served by the cache"
        );
        // Asking for more lifetime than is left refreshes.
        let long = Ask {
            want: &access,
            min_lifetime: Some(7200),
            acting: None,
        };
        get(&ctx, &target(&file), &long).unwrap();
        assert_eq!(fake.seen().len(), 2);
    }

    #[test]
    fn a_rotated_refresh_token_is_saved_and_the_rest_of_the_file_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = user_file(dir.path());
        let http = Fake::default().http(|_| {
            Ok((
                200,
                json!({"access_token": "ya29.a", "refresh_token": "1//r2"}).to_string(),
            ))
        });
        let ctx = context(http, &[], Some(dir.path()));
        let fetched = get(&ctx, &target(&file), &ask(&access)).unwrap();
        let saved: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(saved["refresh_token"], "1//r2");
        assert_eq!(saved["kept"], json!({"unknown": true}));
        assert_eq!(saved["client_secret"], "s");
        // The token is cached under the key of the new refresh token.
        let key = fetched.credential.cache_key(&[]);
        let cached = TokenCache::in_dir(Some(dir.path()), &key).load(TokenKind::Access, NOW);
        assert_eq!(cached.unwrap().access_token.unwrap().expose(), "ya29.a");
    }

    #[test]
    fn an_impersonation_built_in_memory_saves_a_rotation_in_the_files_own_field() {
        let dir = tempfile::tempdir().unwrap();
        let file = user_file(dir.path());
        let http = Fake::default().http(|request| match path(request) {
            "/token" => Ok((
                200,
                json!({"access_token": "ya29.source", "refresh_token": "1//r2"}).to_string(),
            )),
            _ => Ok((
                200,
                json!({"accessToken": "ya29.acting", "expireTime": "2099-01-01T00:00:00Z"})
                    .to_string(),
            )),
        });
        // gcloud's override of the IAM Credentials API: the fake.
        let override_iam = [(
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS",
            "http://127.0.0.1:1/",
        )];
        let ctx = context(http, &override_iam, Some(dir.path()));
        let acting = credentials::Acting {
            impersonate: Some(("sa@p.iam.gserviceaccount.com".into(), Vec::new())),
            lifetime_secs: None,
        };
        let ask = Ask {
            acting: Some(&acting),
            ..ask(&access)
        };
        let fetched = get(&ctx, &target(&file), &ask).unwrap();
        assert_eq!(fetched.entry.access_token.unwrap().expose(), "ya29.acting");
        assert_eq!(
            fetched.credential.identity().as_deref(),
            Some("sa@p.iam.gserviceaccount.com")
        );
        let saved: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(saved["refresh_token"], "1//r2");
        assert!(saved.get("source_credentials").is_none(), "{saved}");
        assert_eq!(saved["kept"], json!({"unknown": true}));
        // Its own cache key: the login's own token is not the account's.
        let plain = load(&ctx, &target(&file)).unwrap();
        assert_ne!(plain.cache_key(&[]), fetched.credential.cache_key(&[]));
    }

    #[test]
    fn a_rotated_source_token_is_saved_even_when_the_impersonation_fails() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("imp.json");
        let imp = json!({"type": "impersonated_service_account",
            "service_account_impersonation_url": "http://127.0.0.1:1/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateAccessToken",
            "source_credentials": {"type": "authorized_user", "client_id": "id", "client_secret": "s",
                "refresh_token": "1//r1", "token_uri": "http://127.0.0.1:1/token"}});
        std::fs::write(&file, imp.to_string()).unwrap();
        let http = Fake::default().http(|request| match path(request) {
            "/token" => Ok((
                200,
                json!({"access_token": "a", "refresh_token": "1//r2"}).to_string(),
            )),
            _ => Ok((
                403,
                json!({"error": {"status": "PERMISSION_DENIED", "message": "no"}}).to_string(),
            )),
        });
        let ctx = context(http, &[], Some(dir.path()));
        let e = get(&ctx, &target(&file), &ask(&access)).unwrap_err();
        assert!(matches!(e, Error::Rejected { .. }), "{e:?}");
        let saved: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(saved["source_credentials"]["refresh_token"], "1//r2");
    }

    #[test]
    fn two_threads_mint_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = user_file(dir.path());
        let mints = Arc::new(AtomicUsize::new(0));
        let counted = mints.clone();
        let http: Http = Fake::default().http(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(300));
            token_answer("ya29.once")
        });
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (http, file, cache) = (http.clone(), file.clone(), dir.path().to_path_buf());
                std::thread::spawn(move || {
                    let ctx = context(http, &[], Some(&cache));
                    let fetched = get(&ctx, &target(&file), &ask(&access)).unwrap();
                    fetched.entry.access_token.unwrap().expose().clone()
                })
            })
            .collect();
        for thread in threads {
            assert_eq!(thread.join().unwrap(), "ya29.once");
        }
        assert_eq!(mints.load(Ordering::SeqCst), 1);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_reservation_that_fails_sends_nothing_and_changes_nothing() {
        // The file is read through /proc/self/fd, a directory nothing can be created in (not
        // even by root), so the room for a rotated token cannot be reserved beside it.
        let dir = tempfile::tempdir().unwrap();
        let file = user_file(dir.path());
        let before = std::fs::read(&file).unwrap();
        let open = std::fs::File::open(&file).unwrap();
        let through_proc = {
            use std::os::fd::AsRawFd;
            PathBuf::from(format!("/proc/self/fd/{}", open.as_raw_fd()))
        };
        let fake = Fake::default();
        let ctx = context(fake.http(|_| token_answer("x")), &[], Some(dir.path()));
        let e = get(&ctx, &target(&through_proc), &ask(&access)).unwrap_err();
        assert!(
            matches!(e, Error::Io { .. } | Error::NoSpace { .. }),
            "{e:?}"
        );
        assert!(
            fake.seen().is_empty(),
            "nothing is sent before the room is reserved"
        );
        assert_eq!(std::fs::read(&file).unwrap(), before);
        drop(open);
    }

    fn service_account_file(dir: &Path) -> PathBuf {
        let file = dir.join("sa.json");
        let key = json!({"type": "service_account", "client_email": "sa@p.iam.gserviceaccount.com",
            "private_key": TEST_KEY, "token_uri": "http://127.0.0.1:1/token"});
        std::fs::write(&file, key.to_string()).unwrap();
        file
    }

    #[test]
    fn id_tokens_have_their_own_field_and_older_entries_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let file = service_account_file(dir.path());
        let id = jwt(&json!({"aud": "https://svc", "exp": NOW + 3600, "email": "sa@x"}));
        let answer = json!({ "id_token": id }).to_string();
        let fake = Fake::default();
        let ctx = context(
            fake.http(move |_| Ok((200, answer.clone()))),
            &[],
            Some(dir.path()),
        );
        let fetched = get(&ctx, &target(&file), &ask(&id_for_svc)).unwrap();
        assert_eq!(fetched.entry.id_token.as_ref().unwrap().expose(), &id);
        assert_eq!(fetched.entry.expires_at, NOW + 3600);
        let key = fetched.credential.key_for(&fetched.want);
        let entry_path = dir.path().join("tokens").join(format!("{key}.json"));
        let entry: Value = serde_json::from_slice(&std::fs::read(&entry_path).unwrap()).unwrap();
        assert_eq!(entry["id_token"], id.as_str());
        assert!(entry.get("access_token").is_none());

        get(&ctx, &target(&file), &ask(&id_for_svc)).unwrap();
        assert_eq!(fake.seen().len(), 1, "served from the cache");

        // An entry written before ID tokens had their own field is a miss, not an error.
        let mut old = entry.clone();
        old["access_token"] = old["id_token"].take();
        std::fs::write(&entry_path, old.to_string()).unwrap();
        get(&ctx, &target(&file), &ask(&id_for_svc)).unwrap();
        assert_eq!(fake.seen().len(), 2);

        // And an ID token for another audience is refused.
        let other = jwt(&json!({"aud": "https://other", "exp": NOW + 3600}));
        let answer = json!({ "id_token": other }).to_string();
        let dir = tempfile::tempdir().unwrap();
        let file = service_account_file(dir.path());
        let ctx = context(
            Fake::default().http(move |_| Ok((200, answer.clone()))),
            &[],
            Some(dir.path()),
        );
        let e = get(&ctx, &target(&file), &ask(&id_for_svc)).unwrap_err();
        assert!(e.to_string().contains("another audience"), "{e}");
    }

    #[test]
    fn a_token_already_expired_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = user_file(dir.path());
        let http = Fake::default().http(|_| {
            Ok((
                200,
                json!({"access_token": "a", "expires_in": 0}).to_string(),
            ))
        });
        let ctx = context(http, &[], Some(dir.path()));
        let e = get(&ctx, &target(&file), &ask(&access)).unwrap_err();
        assert!(e.to_string().contains("already expired"), "{e}");
        assert!(
            store::TokenCache::in_dir(Some(dir.path()), "x")
                .load(TokenKind::Access, NOW)
                .is_none()
        );
    }

    #[test]
    fn a_users_id_token_brings_its_access_token_into_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let file = user_file(dir.path());
        let id = jwt(&json!({"aud": "id.apps", "exp": NOW + 3600}));
        let answer = json!({"access_token": "ya29.both", "id_token": id}).to_string();
        let fake = Fake::default();
        let ctx = context(
            fake.http(move |_| Ok((200, answer.clone()))),
            &[],
            Some(dir.path()),
        );
        let own_client = |_: &Credential| {
            Ok(Want::Id {
                audience: String::new(),
                include_email: false,
            })
        };
        let fetched = get(&ctx, &target(&file), &ask(&own_client)).unwrap();
        assert_eq!(fetched.entry.id_token.unwrap().expose(), &id);
        let token = get(&ctx, &target(&file), &ask(&access)).unwrap();
        assert_eq!(token.entry.access_token.unwrap().expose(), "ya29.both");
        assert_eq!(fake.seen().len(), 1);
    }

    #[test]
    fn discovery_follows_google_auth_default() {
        let dir = tempfile::tempdir().unwrap();
        let gcloud = dir.path().join("gcloud");
        let adc = gcloud.join("application_default_credentials.json");
        let named = user_file(dir.path());
        let config = gcloud.to_str().unwrap();
        let locate_with = |vars: &[(&str, &str)], flag: Option<&Path>| {
            let ctx = context(Fake::default().http(|_| token_answer("x")), vars, None);
            locate(&ctx, flag)
        };
        let base = [("CLOUDSDK_CONFIG", config), ("NO_GCE_CHECK", "1")];
        // Nothing: no credentials, naming the well-known file.
        let e = locate_with(&base, None).unwrap_err();
        assert!(
            matches!(&e, Error::NoCredentials { searched } if *searched == adc),
            "{e:?}"
        );
        // The metadata server when its host is set (and the check not turned off).
        let metadata = [
            ("CLOUDSDK_CONFIG", config),
            ("GCE_METADATA_HOST", "127.0.0.1:9"),
        ];
        assert!(
            matches!(locate_with(&metadata, None), Ok(Target::Metadata(h)) if h == "127.0.0.1:9")
        );
        // The well-known file, then the variable, then the flag.
        std::fs::create_dir_all(&gcloud).unwrap();
        std::fs::copy(&named, &adc).unwrap();
        assert!(matches!(locate_with(&metadata, None),
            Ok(Target::File(p, store::Source::WellKnown)) if p == adc));
        let by_var = [
            ("CLOUDSDK_CONFIG", config),
            ("GOOGLE_APPLICATION_CREDENTIALS", named.to_str().unwrap()),
        ];
        assert!(matches!(locate_with(&by_var, None),
            Ok(Target::File(p, store::Source::Environment)) if p == named));
        assert!(matches!(locate_with(&by_var, Some(&adc)),
            Ok(Target::File(p, store::Source::Flag)) if p == adc));
        // A variable naming a missing file is that file's problem, not a search.
        let missing = [("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/c.json")];
        let e = locate_with(&missing, None).unwrap_err();
        assert!(
            e.to_string().contains("GOOGLE_APPLICATION_CREDENTIALS"),
            "{e}"
        );
    }

    #[test]
    fn a_refused_user_file_named_by_flag_is_named_in_the_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let file = user_file(dir.path());
        let http = Fake::default().http(|_| Ok((400, r#"{"error":"invalid_grant"}"#.into())));
        let ctx = context(http, &[], Some(dir.path()));
        let e = get(&ctx, &target(&file), &ask(&access)).unwrap_err();
        let Error::Rejected { by: Some(by), .. } = &e else {
            panic!("{e:?}");
        };
        assert_eq!(
            **by,
            Rejecter::User {
                credential_file: Some(file.clone()),
                scopes: None
            }
        );
        let (hint, _) = crate::testing::hint(e);
        assert!(hint.contains("--credential-file"), "{hint}");
        // The well-known file needs no flag.
        let e = get(
            &ctx,
            &Target::File(file, store::Source::WellKnown),
            &ask(&access),
        )
        .unwrap_err();
        let (hint, _) = crate::testing::hint(e);
        assert!(!hint.contains("--credential-file"), "{hint}");
    }

    #[test]
    fn claims_are_read_and_checked() {
        let aud = "https://svc.example";
        let ok = jwt(&json!({"aud": aud, "exp": NOW + 3600, "email": "sa@x"}));
        let claims = Claims::read("e", &ok, aud, NOW).unwrap();
        assert_eq!(claims.expires_at, NOW + 3600);
        assert_eq!(claims.email.as_deref(), Some("sa@x"));
        let listed = jwt(&json!({"aud": ["other", aud], "exp": NOW + 60}));
        assert!(Claims::read("e", &listed, aud, NOW).is_ok());
        let far = jwt(&json!({"aud": aud, "exp": u64::MAX}));
        let claims = Claims::read("e", &far, aud, NOW).unwrap();
        assert_eq!(claims.expires_at, NOW + MAX_LIFETIME_SECS);
        for (token, problem) in [
            (jwt(&json!({"aud": aud, "exp": NOW - 1})), "expired"),
            (jwt(&json!({"aud": aud})), "exp"),
            (
                jwt(&json!({"aud": "other", "exp": NOW + 60})),
                "another audience",
            ),
            ("a.b".to_string(), "JWT"),
            ("a..c".to_string(), "JWT"),
            ("a.!!!.c".to_string(), "base64url"),
            (format!("{ok} x"), "spaces"),
            (String::new(), "empty"),
        ] {
            let e = Claims::read("e", &token, aud, NOW).unwrap_err().to_string();
            assert!(e.contains(problem), "{problem}: {e}");
            assert!(!e.contains(".sig") && !e.contains("c2ln"), "{e}");
        }
    }
}
