//! The library's access tokens: [`Request`], [`Token`] and the functions that get one for any
//! Application Default Credentials, through the one token pipeline (`pipeline.rs`).

use std::path::{Path, PathBuf};

use crate::context::Context;
use crate::credentials::{Acting, Credential, Want};
use crate::error::{Error, Result};
use crate::pipeline::{self, Ask, Fetched, Target};
use crate::secret::Secret;

/// An access token and what goes with it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Token {
    /// The bearer token for the `Authorization` header.
    pub access_token: Secret<String>,
    /// The token type (`Bearer`).
    pub token_type: String,
    /// Unix time at which the token expires.
    pub expires_at: u64,
    /// The scopes the token carries.
    pub scopes: Vec<String>,
    /// The project billed for API quota (`x-goog-user-project`), when the credential names one.
    pub quota_project_id: Option<String>,
    /// The credential file the token was obtained for (none for the metadata server).
    pub credential_file: Option<PathBuf>,
    /// The credential's `type` (`authorized_user`, `service_account`, …, `metadata_server`).
    pub credential_type: &'static str,
    /// Things the caller should tell the user (a credential file others can read, a cache that
    /// could not be written, a cache directory not used because another user owns it or others
    /// may write to it, or none at all); the library itself never prints.
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
    get_acting(request, None)
}

/// [`get_with`], acting as a service account through the credential found and/or with a
/// lifetime for impersonated tokens (`print-access-token --impersonate-service-account`,
/// `--lifetime`).
pub(crate) fn get_acting(request: &Request, acting: Option<&Acting>) -> Result<Token> {
    let (ctx, target) = start(request)?;
    let want = |credential: &Credential| want(credential, request);
    let mut ask = ask(request, &want);
    ask.acting = acting;
    let fetched = pipeline::get(&ctx, &target, &ask)?;
    token_of(fetched, &target)
}

/// The async form of [`get_with`], for programs that already run a Tokio runtime (the blocking
/// variants must not be called from inside one). While another process refreshes the same
/// credential, the wait for its lock runs on the runtime's blocking pool, not on the caller's
/// thread.
pub async fn get_async(request: &Request) -> Result<Token> {
    get_async_acting(request, None).await
}

/// [`get_async`], acting as a service account through the credential found (`metadata-server
/// --impersonate-service-account`), as [`get_acting`] does.
pub(crate) async fn get_async_acting(request: &Request, acting: Option<&Acting>) -> Result<Token> {
    let (ctx, target) = start(request)?;
    let want = |credential: &Credential| want(credential, request);
    let mut ask = ask(request, &want);
    ask.acting = acting;
    let fetched = pipeline::get_async(&ctx, &target, &ask).await?;
    token_of(fetched, &target)
}

/// The process's context, and the credential a request names or discovery finds.
fn start(request: &Request) -> Result<(Context, Target)> {
    let ctx = Context::from_process();
    let target = pipeline::locate(&ctx, request.credential_file.as_deref())?;
    Ok((ctx, target))
}

/// What the pipeline is asked for a request.
fn ask<'a>(request: &Request, want: &'a (dyn Fn(&Credential) -> Result<Want> + Sync)) -> Ask<'a> {
    Ask {
        want,
        min_lifetime: request.min_lifetime,
        acting: None,
    }
}

/// The access token a request wants of a credential: its scopes, checked against the type.
fn want(credential: &Credential, request: &Request) -> Result<Want> {
    Ok(Want::access(credential.scopes(request.scopes.as_deref())?))
}

fn token_of(fetched: Fetched, target: &Target) -> Result<Token> {
    let Fetched {
        entry,
        credential,
        want,
        mut warnings,
    } = fetched;
    let requested = match want {
        Want::Access { scopes } => scopes,
        Want::Id { .. } => Vec::new(),
    };
    let scopes = match (entry.scopes.is_empty(), &credential) {
        (false, _) => entry.scopes,
        (true, Credential::User(user)) => user.granted().unwrap_or_default(),
        (true, _) => requested,
    };
    warnings.extend(target.exposed_warning());
    Ok(Token {
        access_token: entry
            .access_token
            .ok_or_else(|| Error::Internal("the pipeline gave no access token".into()))?,
        token_type: entry.token_type,
        expires_at: entry.expires_at,
        scopes,
        quota_project_id: credential.quota_project(),
        credential_file: target.file().map(Path::to_path_buf),
        credential_type: credential.type_name(),
        warnings,
    })
}
