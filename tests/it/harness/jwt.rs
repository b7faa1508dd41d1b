//! JWTs and fixtures: ID tokens as the fake issues them, a JWT's claims, the files of
//! tests/fixtures and the test service account key.

use std::path::PathBuf;

use base64::Engine as _;

use super::*;

pub(super) fn id_token(email: &str) -> String {
    let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    format!(
        "{}.{}.{}",
        b64(r#"{"alg":"RS256","typ":"JWT"}"#),
        b64(
            &serde_json::json!({"iss": "https://accounts.google.com", "email": email, "sub": "1"})
                .to_string()
        ),
        b64("signature")
    )
}

/// An ID token as the fake issues them: `claims` plus `iss`, `iat` and `exp` (after `lifetime`
/// seconds), with a placeholder signature (gemauth never verifies it; the service would).
pub(crate) fn make_id_token(mut claims: serde_json::Value, lifetime: u64) -> String {
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    claims["iss"] = "https://accounts.google.com".into();
    claims["iat"] = now.into();
    claims["exp"] = (now + lifetime).into();
    format!(
        "{}.{}.{}",
        b64(br#"{"alg":"RS256","kid":"fake","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes()),
        b64(b"fake-signature-of-the-id-token")
    )
}

/// The payload of a JWT (an ID token or an assertion), decoded without checking anything.
pub(crate) fn jwt_claims(token: &str) -> serde_json::Value {
    let payload = token.trim().split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// A file of tests/fixtures.
pub(crate) fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

/// The public half of the test key, as the fake token endpoint checks signatures with it.
pub(crate) fn register_test_key(env: &TestEnv) {
    use rustls_pki_types::pem::PemObject;
    let der =
        rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(fixture("test-sa-key.pem").as_bytes())
            .unwrap();
    let pair = ring::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
    let public = ring::signature::KeyPair::public_key(&pair)
        .as_ref()
        .to_vec();
    env.google.with(|b| b.service_account_keys.push(public));
}
