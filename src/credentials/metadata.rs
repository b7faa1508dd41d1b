//! `metadata_server`: the metadata server of a Google Cloud machine (no file): when to use it,
//! its account, and its access-token and identity endpoints.

use serde::Serialize;
use url::Url;

use super::{IdTokenSupport, Issued, Minted, Want};
use crate::context::{Context, Env};
use crate::error::{Error, Rejecter, Result};
use crate::oauth::{self, ErrorBody, HttpRequest};
use crate::rules::{endpoint_name, sanitize};
use crate::store;

/// The metadata server's address on Google Cloud.
pub(crate) const METADATA_IP: &str = "169.254.169.254";
/// Environment variable overriding the metadata server's host (and port).
pub(crate) const ENV_METADATA_HOST: &str = "GCE_METADATA_HOST";
/// Environment variable that, when true, keeps gemauth from looking for a metadata server.
pub(crate) const ENV_NO_GCE_CHECK: &str = "NO_GCE_CHECK";
/// The paths of the default service account's token, identity and email.
const TOKEN_PATH: &str = "instance/service-accounts/default/token";
const IDENTITY_PATH: &str = "instance/service-accounts/default/identity";
const EMAIL_PATH: &str = "instance/service-accounts/default/email";

/// What `status` shows of the metadata server.
#[derive(Debug, Serialize)]
pub(crate) struct MetadataDetails {
    pub(crate) metadata_host: String,
}

/// The metadata server's host, when gemauth should use it: `GCE_METADATA_HOST`, or on Google
/// Cloud (detected from the machine's DMI product name, with no network call) the well-known
/// address. `NO_GCE_CHECK=true` turns this off.
pub(crate) fn host(env: &Env) -> Option<String> {
    if gce_check_disabled(env) {
        return None;
    }
    if let Some(host) = env.var(ENV_METADATA_HOST).filter(|h| !h.trim().is_empty()) {
        return Some(host.trim().to_string());
    }
    let product = std::fs::read_to_string("/sys/class/dmi/id/product_name").unwrap_or_default();
    product.contains("Google").then(|| METADATA_IP.to_string())
}

/// Whether `NO_GCE_CHECK` (true, 1 or yes) keeps gemauth from looking for a metadata server.
pub(crate) fn gce_check_disabled(env: &Env) -> bool {
    env.var(ENV_NO_GCE_CHECK)
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// The metadata server of one host.
pub(crate) struct Metadata<'a> {
    pub(crate) host: &'a str,
}

impl Metadata<'_> {
    /// What `status` shows.
    pub(super) fn details(&self) -> MetadataDetails {
        MetadataDetails {
            metadata_host: self.host.to_string(),
        }
    }

    /// Any audience, with or without the email claims (`format=full`).
    pub(super) fn id_tokens() -> IdTokenSupport {
        IdTokenSupport::AnyAudience { email_option: true }
    }

    /// GETs a path of the metadata server (with `Metadata-Flavor: Google`); an unreachable
    /// server means there are no credentials here. A refusal is the metadata server's.
    async fn get(
        &self,
        ctx: &Context,
        path: &str,
        query: &[(&str, &str)],
        kind: ErrorBody<'_>,
    ) -> Result<(String, u16, Vec<u8>)> {
        let host = self.host;
        let mut url =
            Url::parse(&format!("http://{host}/computeMetadata/v1/{path}")).map_err(|e| {
                Error::Usage(format!("{ENV_METADATA_HOST}={host:?} is not a host ({e})"))
            })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let request = HttpRequest::get(&url).header("Metadata-Flavor", "Google");
        let (status, body) = ctx
            .metadata_http()?
            .send(&request)
            .await
            .map_err(|e| match e {
                Error::Network {
                    endpoint,
                    detail,
                    source,
                } => Error::NoMetadataServer {
                    searched: store::well_known_path(&ctx.env).unwrap_or_default(),
                    endpoint,
                    detail,
                    source,
                },
                other => other,
            })?;
        let endpoint = endpoint_name(&url);
        oauth::success(&endpoint, status, &body, kind, &oauth::Sent::of(&request))
            .map_err(|e| e.rejected_by(Rejecter::MetadataServer))?;
        Ok((endpoint, status, body))
    }

    /// The email of the default service account (also proves that the server answers).
    pub(crate) async fn email(&self, ctx: &Context) -> Result<String> {
        let (_, _, body) = self
            .get(ctx, EMAIL_PATH, &[], ErrorBody::Plain("is not an email"))
            .await?;
        Ok(sanitize(String::from_utf8_lossy(&body).trim()))
    }

    /// Mints an access token with the scopes, or an ID token for the audience.
    pub(super) async fn mint(&self, ctx: &Context, want: &Want) -> Result<Minted> {
        let issued = match want {
            Want::Access { scopes } => {
                let joined = scopes.join(",");
                let query: &[(&str, &str)] = if joined.is_empty() {
                    &[]
                } else {
                    &[("scopes", &joined)]
                };
                let (endpoint, status, body) =
                    self.get(ctx, TOKEN_PATH, query, ErrorBody::OAuth).await?;
                let response =
                    oauth::parse_token_response(&endpoint, status, &body, &oauth::Sent::default())?;
                Issued::Access(response.cached_at(ctx.now(), scopes.clone()))
            }
            Want::Id {
                audience,
                include_email,
            } => {
                let mut query = vec![("audience", audience.as_str())];
                if *include_email {
                    query.push(("format", "full"));
                }
                let (endpoint, _, body) = self
                    .get(
                        ctx,
                        IDENTITY_PATH,
                        &query,
                        ErrorBody::Plain("is not an ID token"),
                    )
                    .await?;
                Issued::Id {
                    endpoint,
                    token: String::from_utf8_lossy(&body).trim().to_string().into(),
                }
            }
        };
        Ok(Minted::issued(issued))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::{Fake, NOW, context, jwt, path, run, token_answer};

    #[test]
    fn the_host_follows_the_environment() {
        let env = |vars: &[(&str, &str)]| {
            context(Fake::default().http(|_| token_answer("x")), vars, None)
        };
        assert_eq!(
            host(&env(&[(ENV_METADATA_HOST, " 127.0.0.1:9 ")]).env).as_deref(),
            Some("127.0.0.1:9")
        );
        assert_eq!(
            host(
                &env(&[
                    (ENV_METADATA_HOST, "127.0.0.1:9"),
                    (ENV_NO_GCE_CHECK, "True")
                ])
                .env
            ),
            None
        );
    }

    #[test]
    fn tokens_come_from_the_default_account_with_the_metadata_flavor() {
        let id = jwt(&json!({"aud": "https://svc", "exp": NOW + 60}));
        let answer = id.clone();
        let fake = Fake::default();
        let http = fake.http(move |request| match path(request) {
            "/computeMetadata/v1/instance/service-accounts/default/token" => {
                token_answer("ya29.gce")
            }
            "/computeMetadata/v1/instance/service-accounts/default/identity" => {
                Ok((200, format!("{answer}\n")))
            }
            _ => Ok((200, "sa@p.iam.gserviceaccount.com\n".into())),
        });
        let ctx = context(http, &[], None);
        let metadata = Metadata {
            host: "127.0.0.1:9",
        };
        let minted = run(metadata.mint(&ctx, &Want::access(vec!["a".into(), "b".into()]))).unwrap();
        assert!(matches!(minted.issued, Ok(Issued::Access(_))));
        let want = Want::Id {
            audience: "https://svc".into(),
            include_email: true,
        };
        let Ok(Issued::Id { token, .. }) = run(metadata.mint(&ctx, &want)).unwrap().issued else {
            panic!("no ID token");
        };
        assert_eq!(token.expose(), &id);
        assert_eq!(
            run(metadata.email(&ctx)).unwrap(),
            "sa@p.iam.gserviceaccount.com"
        );
        let seen = fake.seen();
        assert!(
            seen[0].url.ends_with("/token?scopes=a%2Cb"),
            "{}",
            seen[0].url
        );
        assert!(
            seen[1]
                .url
                .ends_with("/identity?audience=https%3A%2F%2Fsvc&format=full"),
            "{}",
            seen[1].url
        );
        for request in &seen {
            assert_eq!(
                request.headers,
                [("Metadata-Flavor".to_string(), "Google".to_string())]
            );
        }
    }

    #[test]
    fn no_answer_means_no_metadata_server_and_a_refusal_is_its_own() {
        let http = Fake::default().http(|_| {
            Err(Error::Network {
                endpoint: "http://127.0.0.1:9/".into(),
                detail: "connection failed".into(),
                source: None,
            })
        });
        let metadata = Metadata {
            host: "127.0.0.1:9",
        };
        let e = run(metadata.email(&context(http, &[], None))).unwrap_err();
        assert!(matches!(e, Error::NoMetadataServer { .. }), "{e:?}");

        let http = Fake::default().http(|_| Ok((403, r#"{"error":"invalid_grant"}"#.into())));
        let e =
            run(metadata.mint(&context(http, &[], None), &Want::access(Vec::new()))).unwrap_err();
        let (hint, _) = crate::testing::hint(e);
        assert!(hint.contains("metadata server"), "{hint}");
    }
}
