//! `service_account`: a service account's key file: parsing, cache key, identity, status
//! details, the one JWT builder (RS256) and the JWT-bearer grant that mints access tokens
//! (`scope`) and ID tokens (`target_audience`).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use url::Url;

use super::{Credential, FileProblem, IdTokenSupport, Issued, Minted, Want};
use crate::context::Context;
use crate::error::{Error, Rejecter, Result};
use crate::oauth;
use crate::rules::{self, endpoint_name};
use crate::secret::Secret;

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A `service_account` key file.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ServiceAccount {
    pub client_email: String,
    pub private_key: Secret<String>,
    #[serde(default)]
    pub private_key_id: Option<String>,
    #[serde(default)]
    pub token_uri: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub quota_project_id: Option<String>,
    #[serde(default)]
    pub universe_domain: Option<String>,
}

/// What `status` shows of a service account key.
#[derive(Debug, Serialize)]
pub(crate) struct ServiceAccountDetails {
    pub(crate) client_email: String,
    pub(crate) project_id: Option<String>,
    pub(crate) universe_domain: String,
    pub(crate) token_uri: String,
}

/// Parses a `service_account` key file.
pub(super) fn parse(map: Map<String, Value>, problem: FileProblem) -> Result<Credential> {
    let key: ServiceAccount = problem.typed(map)?;
    problem.nonempty("client_email", &key.client_email)?;
    problem.nonempty("private_key", key.private_key.expose())?;
    key.token_endpoint()?;
    Ok(Credential::ServiceAccount {
        key: Box::new(key),
        path: problem.path.to_path_buf(),
    })
}

/// What the assertion asks the token endpoint for.
enum Ask<'a> {
    /// An access token with these scopes.
    Scopes(&'a [String]),
    /// An ID token for this audience (as google-auth's `IDTokenCredentials` asks).
    TargetAudience(&'a str),
}

impl ServiceAccount {
    /// The token endpoint: the key's `token_uri`, else Google's.
    pub(crate) fn token_endpoint(&self) -> Result<Url> {
        Ok(rules::token_uri(self.token_uri.as_deref())?)
    }

    /// The endpoint that receives the signed assertion.
    pub(super) fn secret_endpoints(&self) -> Vec<super::SecretEndpoint> {
        self.token_uri
            .as_deref()
            .map(|url| {
                super::SecretEndpoint::new(
                    "token_uri",
                    url,
                    self.universe_domain.as_deref(),
                    "https://oauth2.{}/token",
                )
            })
            .into_iter()
            .collect()
    }

    /// The parts of the cache key: the account, a digest of its key and the token endpoint.
    pub(super) fn key_parts(&self) -> Vec<String> {
        let digest: String = Sha256::digest(self.private_key.expose().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        vec![
            "service_account".into(),
            self.client_email.clone(),
            digest,
            self.token_uri.clone().unwrap_or_default(),
        ]
    }

    /// What `status` shows.
    pub(super) fn details(&self) -> ServiceAccountDetails {
        ServiceAccountDetails {
            client_email: self.client_email.clone(),
            project_id: self.project_id.clone(),
            universe_domain: rules::universe_domain(self.universe_domain.as_deref()).to_string(),
            token_uri: self
                .token_uri
                .clone()
                .unwrap_or_else(|| rules::GOOGLE_TOKEN_URI.into()),
        }
    }

    /// Any audience; the token endpoint takes no option to include the email.
    pub(super) fn id_tokens() -> IdTokenSupport {
        IdTokenSupport::AnyAudience {
            email_option: false,
        }
    }

    /// Builds and signs the JWT of the jwt-bearer grant (RFC 7523): RS256 with the key's ID as
    /// `kid`, `iss` and `sub` the service account, `aud` the token endpoint, one hour of lifetime.
    fn assertion(&self, path: &Path, audience: &str, ask: &Ask, now: u64) -> Result<String> {
        let mut claims = json!({
            "iss": self.client_email,
            "sub": self.client_email,
            "aud": audience,
            "iat": now,
            "exp": now + rules::HOUR_SECS,
        });
        match ask {
            Ask::Scopes(scopes) => claims["scope"] = json!(scopes.join(" ")),
            Ask::TargetAudience(target) => claims["target_audience"] = json!(target),
        }
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.private_key_id {
            header["kid"] = json!(kid);
        }
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let pair = rsa_key(self.private_key.expose(), path)?;
        let mut signature = vec![0u8; pair.public().modulus_len()];
        pair.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            input.as_bytes(),
            &mut signature,
        )
        .map_err(|_| Error::Internal("cannot sign the service account assertion".into()))?;
        Ok(format!("{input}.{}", b64(&signature)))
    }

    /// Mints with the JWT-bearer grant: an access token for the scopes, or an ID token for the
    /// audience.
    pub(super) async fn mint(&self, path: &Path, ctx: &Context, want: &Want) -> Result<Minted> {
        let token_uri = self.token_endpoint()?;
        let ask = match want {
            Want::Access { scopes } => Ask::Scopes(scopes),
            Want::Id { audience, .. } => Ask::TargetAudience(audience),
        };
        let assertion = self.assertion(path, token_uri.as_str(), &ask, ctx.now())?;
        let form = [
            ("grant_type", JWT_BEARER),
            ("assertion", assertion.as_str()),
        ];
        let (status, body) = ctx.http()?.post_form(&token_uri, &form).await?;
        let endpoint = endpoint_name(&token_uri);
        let sent = oauth::Sent::form(&form);
        let rejected = |e: Error| {
            e.rejected_by(Rejecter::ServiceAccountKey {
                email: self.client_email.clone(),
                key_id: self.private_key_id.clone(),
            })
        };
        let issued = match ask {
            Ask::Scopes(scopes) => {
                let response = oauth::parse_token_response(&endpoint, status, &body, &sent)
                    .map_err(rejected)?;
                Issued::Access(response.cached_at(ctx.now(), scopes.to_vec()))
            }
            Ask::TargetAudience(_) => Issued::Id {
                token: oauth::parse_id_token_response(&endpoint, status, &body, &sent)
                    .map_err(rejected)?,
                endpoint,
            },
        };
        Ok(Minted::issued(issued))
    }
}

fn key_problem(path: &Path, problem: String) -> Error {
    Error::CredentialFile {
        path: PathBuf::from(path),
        problem,
    }
}

/// Parses the key's PEM into an RSA signing key.
fn rsa_key(pem: &str, path: &Path) -> Result<ring::signature::RsaKeyPair> {
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject;
    if pem.contains("ENCRYPTED PRIVATE KEY") || pem.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(key_problem(
            path,
            "private_key is encrypted; use the unencrypted key from the JSON key file Google issues".into(),
        ));
    }
    let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| key_problem(path, format!("private_key is not a PEM private key ({e})")))?;
    let parsed = match &der {
        PrivateKeyDer::Pkcs8(k) => ring::signature::RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
        PrivateKeyDer::Pkcs1(k) => ring::signature::RsaKeyPair::from_der(k.secret_pkcs1_der()),
        _ => {
            return Err(key_problem(path, "private_key is not an RSA key".into()));
        }
    };
    parsed.map_err(|e| key_problem(path, format!("private_key is not a usable RSA key ({e})")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::credentials::parse_credential_file;
    use crate::testing::{Fake, NOW, TEST_KEY, claims, context, jwt, run, token_answer};

    fn key(extra: Value) -> (ServiceAccount, PathBuf) {
        let mut file = json!({"type": "service_account", "client_email": "sa@p.iam.gserviceaccount.com",
            "private_key": TEST_KEY, "private_key_id": "kid-1",
            "token_uri": "http://127.0.0.1:1/token"});
        if let (Value::Object(file), Value::Object(extra)) = (&mut file, extra) {
            file.extend(extra);
        }
        match parse_credential_file(Path::new("sa.json"), file.to_string().as_bytes()) {
            Ok(Credential::ServiceAccount { key, path }) => (*key, path),
            other => panic!("not a service account: {other:?}"),
        }
    }

    #[test]
    fn the_jwt_bearer_grant_signs_the_scopes() {
        let (key, path) = key(json!({}));
        let fake = Fake::default();
        let ctx = context(fake.http(|_| token_answer("ya29.sa")), &[], None);
        let scopes = vec!["https://www.googleapis.com/auth/cloud-platform".to_string()];
        let minted = run(key.mint(&path, &ctx, &Want::access(scopes.clone()))).unwrap();
        let Ok(Issued::Access(token)) = minted.issued else {
            panic!("no access token");
        };
        assert_eq!(token.access_token.unwrap().expose(), "ya29.sa");
        assert_eq!(token.scopes, scopes);
        let seen = fake.seen();
        assert_eq!(seen[0].form["grant_type"], JWT_BEARER);
        let assertion = &seen[0].form["assertion"];
        let header =
            crate::oauth::jwt_claims(&format!("x.{}.y", assertion.split('.').next().unwrap()))
                .unwrap();
        assert_eq!(header["kid"], "kid-1");
        assert_eq!(header["alg"], "RS256");
        let claims = claims(assertion);
        assert_eq!(claims["iss"], "sa@p.iam.gserviceaccount.com");
        assert_eq!(claims["sub"], "sa@p.iam.gserviceaccount.com");
        assert_eq!(claims["aud"], "http://127.0.0.1:1/token");
        assert_eq!(claims["scope"], scopes[0]);
        assert_eq!(claims["iat"], NOW);
        assert_eq!(claims["exp"], NOW + 3600);
        assert!(claims.get("target_audience").is_none());
    }

    #[test]
    fn an_id_token_is_asked_with_a_target_audience() {
        let (key, path) = key(json!({}));
        let id = jwt(&json!({"aud": "https://svc", "exp": NOW + 3600}));
        let answer = json!({ "id_token": id }).to_string();
        let fake = Fake::default();
        let ctx = context(fake.http(move |_| Ok((200, answer.clone()))), &[], None);
        let want = Want::Id {
            audience: "https://svc".into(),
            include_email: false,
        };
        let minted = run(key.mint(&path, &ctx, &want)).unwrap();
        let Ok(Issued::Id { token, .. }) = minted.issued else {
            panic!("no ID token");
        };
        assert_eq!(token.expose(), &id);
        let claims = claims(&fake.seen()[0].form["assertion"]);
        assert_eq!(claims["target_audience"], "https://svc");
        assert!(claims.get("scope").is_none());
        assert_eq!(
            ServiceAccount::id_tokens(),
            IdTokenSupport::AnyAudience {
                email_option: false
            }
        );
    }

    #[test]
    fn a_refused_key_says_it_was_deleted_or_disabled_not_to_log_in() {
        let (key, path) = key(json!({}));
        let http = Fake::default().http(|_| {
            Ok((
                400,
                r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#.into(),
            ))
        });
        let ctx = context(http, &[], None);
        let e = run(key.mint(&path, &ctx, &Want::access(Vec::new()))).unwrap_err();
        let (hint, code) = crate::testing::hint(e);
        assert!(hint.contains("deleted or disabled"), "{hint}");
        assert!(hint.contains("sa@p.iam.gserviceaccount.com"), "{hint}");
        assert!(hint.contains("kid-1"), "{hint}");
        assert!(!hint.contains("gemauth login"), "{hint}");
        assert_eq!(code, crate::commands::report::EXIT_CREDENTIALS);
    }

    #[test]
    fn unusable_keys_are_refused_before_any_request() {
        for (pem, problem) in [
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAA==\n-----END ENCRYPTED PRIVATE KEY-----\n",
                "encrypted",
            ),
            ("not a pem", "not a PEM private key"),
        ] {
            let (key, path) = key(json!({ "private_key": pem }));
            let fake = Fake::default();
            let ctx = context(fake.http(|_| token_answer("x")), &[], None);
            let e = run(key.mint(&path, &ctx, &Want::access(Vec::new()))).unwrap_err();
            assert!(e.to_string().contains(problem), "{e}");
            assert!(fake.seen().is_empty());
        }
    }

    #[test]
    fn key_parts_hold_a_digest_of_the_key_not_the_key() {
        let (key, _) = key(json!({}));
        let parts = key.key_parts().join(" ");
        assert!(!parts.contains("PRIVATE KEY"));
        let (other, _) = self::key(json!({"private_key": TEST_KEY.replace('A', "B")}));
        assert_ne!(key.key_parts(), other.key_parts());
        assert!(!format!("{key:?}").contains("PRIVATE"));
    }
}
