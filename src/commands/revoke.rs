//! `gemauth revoke`: revoke the grant at the server, then remove the local credential and its
//! cached tokens.

use super::report::{Error, Result};
use crate::cli::RevokeArgs;
use crate::credentials::{self, Credential};
use crate::oauth::{self, Http, Revocation};
use crate::store::{self, CredentialLock, TokenCache};

pub(crate) fn run(args: RevokeArgs) -> Result<()> {
    let path = match &args.credential_file {
        Some(p) => p.clone(),
        None => store::well_known_path(&crate::env::Env::Process)?,
    };
    if args.credential_file.is_none()
        && let Some(env) = store::credentials_env(&crate::env::Env::Process)
    {
        eprintln!(
            "note: {} ({}) is not touched; only {} is revoked",
            store::ENV_CREDENTIALS,
            env.display(),
            path.display()
        );
    }
    if !store::is_present(&path) {
        eprintln!(
            "No credentials stored at {}; nothing to revoke.",
            path.display()
        );
        return Ok(());
    }

    let _lock = CredentialLock::acquire(&path)?;
    let credential = match credentials::load_revocable(&path, &crate::env::Env::Process) {
        Ok(credential) => credential,
        Err(e) if args.force => {
            eprintln!("warning: {e}; removing it without revoking (--force)");
            store::remove_file(&path)?;
            eprintln!("Removed {}", path.display());
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let (revoke_uri, outcome) = match &credential {
        Credential::User(user) => {
            let revoke_uri = user.revoke_endpoint()?;
            let outcome = crate::oauth::block_on(async {
                let http = Http::new()?;
                oauth::revoke(
                    &http,
                    &revoke_uri,
                    &user.client_id,
                    &user.client_secret,
                    &user.refresh_token,
                )
                .await
            })?;
            (revoke_uri, outcome)
        }
        Credential::ExternalUser(user) => match user.revoke_endpoint()? {
            Some(revoke_uri) => {
                let outcome = crate::oauth::block_on(async {
                    user.revoke(&Http::new()?, &revoke_uri).await
                })?;
                (revoke_uri, outcome)
            }
            // What gcloud writes names none: like `gcloud auth application-default revoke`,
            // the file is removed without a revocation at the server.
            None => {
                eprintln!(
                    "warning: {} names no revoke_url, so its refresh token cannot be revoked at \
                     the server; it stays valid until your workforce pool's session ends. \
                     Removing the local credential.",
                    path.display()
                );
                return remove(&path, &credential);
            }
        },
        _ => {
            return Err(crate::Error::Internal("not a revocable credential".into()).into());
        }
    };
    match outcome {
        Ok(Revocation::Revoked) => eprintln!("Revoked the grant at {revoke_uri}."),
        Ok(Revocation::AlreadyInvalid) => {
            eprintln!(
                "The grant was already revoked or expired ({revoke_uri} answered invalid_token)."
            )
        }
        Err(e) if args.force => {
            eprintln!(
                "warning: could not revoke ({e}); removing the local credential anyway (--force)"
            )
        }
        Err(e) => {
            return Err(Error::RevokeFailed { source: e });
        }
    }
    remove(&path, &credential)
}

/// Removes the credential file, its cached access token and the ID token of its refresh grant.
fn remove(path: &std::path::Path, credential: &Credential) -> Result<()> {
    store::remove_file(path)?;
    TokenCache::new(&credential.cache_key(&[])).remove()?;
    for include_email in [false, true] {
        TokenCache::new(&credential.id_token_cache_key("", include_email)).remove()?;
    }
    eprintln!("Removed {}", path.display());
    Ok(())
}
