//! OpenID Connect ID tokens (`print-identity-token`): the request, the checks of what each
//! credential type can have (a user's OAuth client only; any audience otherwise; none for a
//! federation without impersonation), and the token with what it says about itself, through
//! the one token pipeline (`pipeline.rs`) per credential and audience.

use std::path::PathBuf;

use crate::context::Context;
use crate::credentials::{Acting, Credential, IdTokenSupport, Want};
use crate::error::{Error, Result};
use crate::pipeline::{self, Ask, Claims};
use crate::rules::sanitize;
use crate::secret::Secret;

/// Longest audience accepted (Cloud Run URLs and OAuth client IDs are far shorter).
const MAX_AUDIENCE_LEN: usize = 2048;

/// What an ID token is asked for (the library's access tokens are asked with `token::Request`).
#[derive(Debug, Clone, Default)]
pub(crate) struct IdTokenParams {
    /// A credential file to use instead of discovering one.
    pub(crate) credential_file: Option<PathBuf>,
    /// The audience (`--audiences`): the URL of the service to call.
    pub(crate) audience: Option<String>,
    /// Ask for the `email` and `email_verified` claims (impersonation, metadata server).
    pub(crate) include_email: bool,
    /// Seconds a cached token must still be valid for (the pipeline's default when `None`).
    pub(crate) min_lifetime: Option<u64>,
    /// A service account to act as through the credential found
    /// (`--impersonate-service-account`).
    pub(crate) acting: Option<Acting>,
}

/// An ID token and what it says about itself.
#[derive(Debug)]
pub(crate) struct IdToken {
    /// The JWT, for the `Authorization: Bearer` header of the service it is for.
    pub(crate) token: Secret<String>,
    /// Unix time of its `exp` claim.
    pub(crate) expires_at: u64,
    /// Its `aud` claim.
    pub(crate) audience: String,
    /// The account it is for: its `email` claim, else the service account the credential names.
    pub(crate) email: Option<String>,
    /// Things to tell the user (a credential file others can read, a cache not written).
    pub(crate) warnings: Vec<String>,
}

/// An ID token for the discovered credential (`credential_file` first, when given): from the
/// cache when it is fresh, else obtained once under the credential lock.
pub(crate) fn get(request: &IdTokenParams) -> Result<IdToken> {
    let (ctx, target) = start(request)?;
    let want = |credential: &Credential| want(credential, request);
    let fetched = pipeline::get(&ctx, &target, &ask(request, &want))?;
    finish(&ctx, &target, fetched)
}

/// The async form of [`get`], for callers on a Tokio runtime (the metadata server).
pub(crate) async fn get_async(request: &IdTokenParams) -> Result<IdToken> {
    let (ctx, target) = start(request)?;
    let want = |credential: &Credential| want(credential, request);
    let fetched = pipeline::get_async(&ctx, &target, &ask(request, &want)).await?;
    finish(&ctx, &target, fetched)
}

/// The process's context, and the credential a request names or discovery finds.
fn start(request: &IdTokenParams) -> Result<(Context, pipeline::Target)> {
    let ctx = Context::from_process();
    let target = pipeline::locate(&ctx, request.credential_file.as_deref())?;
    Ok((ctx, target))
}

/// What the pipeline is asked for a request.
fn ask<'a>(
    request: &'a IdTokenParams,
    want: &'a (dyn Fn(&Credential) -> Result<Want> + Sync),
) -> Ask<'a> {
    Ask {
        want,
        min_lifetime: request.min_lifetime,
        acting: request.acting.as_ref(),
    }
}

/// The ID token of what the pipeline fetched, with what it says about itself.
fn finish(ctx: &Context, target: &pipeline::Target, fetched: pipeline::Fetched) -> Result<IdToken> {
    let token = fetched
        .entry
        .id_token
        .ok_or_else(|| Error::Internal("the pipeline gave no ID token".into()))?;
    // The pipeline read these claims already: they are readable.
    let audience = pipeline::expected_audience(&fetched.credential, &fetched.want);
    let claims = Claims::read("the cache", token.expose(), audience, ctx.now())?;
    let named = match &fetched.credential {
        Credential::User(_) | Credential::Metadata { .. } => None,
        other => other.identity(),
    };
    let mut warnings = fetched.warnings;
    warnings.extend(target.exposed_warning());
    Ok(IdToken {
        token,
        expires_at: fetched.entry.expires_at,
        audience: claims.audience,
        email: claims.email.or(named),
        warnings,
    })
}

/// Checks the request against what the credential's type can have.
fn want(credential: &Credential, request: &IdTokenParams) -> Result<Want> {
    let audience = request.audience.as_deref();
    let email_option = match credential.id_tokens() {
        IdTokenSupport::OwnClient { openid, .. } => {
            if audience.is_some() {
                return Err(Error::IdTokenRequest {
                    problem: "--audiences cannot be used with an authorized_user credential: \
                        Google issues a user's ID token only for the OAuth client it signed in \
                        with (its audience is the client ID)"
                        .into(),
                    hint: "to call a service, impersonate a service account you may act as \
                        (roles/iam.serviceAccountOpenIdTokenCreator): add \
                        `--impersonate-service-account SA_EMAIL` to this command, or sign in with \
                        `gemauth login --client-id-file client_secret.json \
                        --impersonate-service-account SA_EMAIL` to write an \
                        impersonated_service_account ADC file; or omit --audiences for a token \
                        whose audience is the client ID"
                        .into(),
                });
            }
            if !openid {
                return Err(Error::ScopesNotGranted {
                    missing: "openid".into(),
                });
            }
            return Ok(Want::Id {
                audience: String::new(),
                include_email: false,
            });
        }
        unavailable @ IdTokenSupport::Unavailable { .. } => return Err(unavailable.unavailable()),
        IdTokenSupport::AnyAudience { email_option } => email_option,
    };
    let Some(audience) = audience else {
        return Err(Error::IdTokenRequest {
            problem: format!(
                "print-identity-token needs --audiences for a {} credential: an ID token is \
                 for one service, named by its audience",
                credential.type_name()
            ),
            hint: "pass the URL of the service to call, e.g. `gemauth print-identity-token \
                --audiences https://SERVICE-HASH.a.run.app` (for IAP, its OAuth client ID)"
                .into(),
        });
    };
    let audience = audience.trim();
    let usage = |problem: &str| {
        Err(Error::Usage(format!(
            "--audiences {:?} {problem}",
            sanitize(audience)
        )))
    };
    if audience.is_empty() {
        return usage("is empty");
    }
    if audience.len() > MAX_AUDIENCE_LEN
        || audience
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return usage("is not an audience (a URL or client ID, without spaces)");
    }
    if audience.contains(',') {
        return usage("names more than one audience; an ID token has one (as with gcloud)");
    }
    Ok(Want::Id {
        audience: audience.to_string(),
        // A service account key's ID tokens come from the token endpoint, which has no option.
        include_email: request.include_email && email_option,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::credentials::parse_credential_file;
    use crate::testing::TEST_KEY;

    fn credential(file: &serde_json::Value) -> Credential {
        parse_credential_file(Path::new("c.json"), file.to_string().as_bytes()).unwrap()
    }

    fn params(audience: Option<&str>, include_email: bool) -> IdTokenParams {
        IdTokenParams {
            credential_file: None,
            audience: audience.map(str::to_string),
            include_email,
            min_lifetime: None,
            acting: None,
        }
    }

    #[test]
    fn each_type_gets_the_id_tokens_it_can_have() {
        let user = credential(&json!({"type": "authorized_user", "client_id": "id",
            "client_secret": "s", "refresh_token": "r"}));
        let own = Want::Id {
            audience: String::new(),
            include_email: false,
        };
        assert_eq!(want(&user, &params(None, true)).unwrap(), own);
        let e = want(&user, &params(Some("https://svc"), false)).unwrap_err();
        assert!(matches!(e, Error::IdTokenRequest { .. }), "{e:?}");
        let no_openid = credential(&json!({"type": "authorized_user", "client_id": "id",
            "client_secret": "s", "refresh_token": "r", "scopes": ["x"]}));
        let e = want(&no_openid, &params(None, false)).unwrap_err();
        assert!(matches!(e, Error::ScopesNotGranted { .. }), "{e:?}");

        let key = credential(&json!({"type": "service_account", "client_email": "sa@p",
            "private_key": TEST_KEY}));
        let e = want(&key, &params(None, false)).unwrap_err();
        assert!(
            e.to_string()
                .contains("needs --audiences for a service_account"),
            "{e}"
        );
        // The token endpoint takes no email option: it is not asked for.
        assert_eq!(
            want(&key, &params(Some(" https://svc "), true)).unwrap(),
            Want::Id {
                audience: "https://svc".into(),
                include_email: false
            }
        );
        let metadata = Credential::Metadata {
            host: "127.0.0.1:9".into(),
        };
        assert_eq!(
            want(&metadata, &params(Some("https://svc"), true)).unwrap(),
            Want::Id {
                audience: "https://svc".into(),
                include_email: true
            }
        );

        let federated = credential(&json!({"type": "external_account", "audience": "//pool",
            "subject_token_type": "t", "token_url": "https://sts.googleapis.com/v1/token",
            "credential_source": {"file": "/nonexistent"}}));
        let e = want(&federated, &params(Some("https://svc"), false)).unwrap_err();
        assert!(matches!(e, Error::IdTokenRequest { .. }), "{e:?}");
    }

    #[test]
    fn audiences_are_one_plain_value() {
        let metadata = Credential::Metadata {
            host: "127.0.0.1:9".into(),
        };
        let long = "a".repeat(MAX_AUDIENCE_LEN + 1);
        for (audience, problem) in [
            ("  ", "is empty"),
            ("https://a b", "without spaces"),
            ("https://a\u{1b}[31m", "without spaces"),
            (long.as_str(), "without spaces"),
            ("https://a,https://b", "more than one audience"),
        ] {
            let e = want(&metadata, &params(Some(audience), false)).unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{e:?}");
            assert!(e.to_string().contains(problem), "{audience:?}: {e}");
            assert!(!e.to_string().contains('\u{1b}'), "{e}");
        }
    }
}
