//! The fake server's endpoints for the other credential types: the JWT-bearer grant, STS token
//! exchange, IAM Credentials impersonation, the metadata server, a subject token URL, and the
//! ID-token endpoints of each.

use std::time::Duration;

use base64::Engine as _;

use super::*;

/// The endpoints of the other credential types: the JWT-bearer grant, STS token exchange, IAM
/// Credentials impersonation, the metadata server and a subject token URL. `None` for the rest.
pub(super) fn google_extras(st: &mut State, seen: &Seen) -> Option<Canned> {
    let form = |k: &str| seen.form.get(k).cloned().unwrap_or_default();
    let bearer = seen
        .headers
        .get("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::to_string);
    let ok = |st: &mut State, prefix: &str| {
        st.counter += 1;
        Canned::json(
            200,
            &serde_json::json!({
                "access_token": format!("ya29.{prefix}-{}", st.counter),
                "expires_in": st.behaviour.expires_in,
                "token_type": "Bearer",
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            })
            .to_string(),
        )
    };
    if let Some(answer) = id_token_endpoints(st, seen) {
        return Some(answer);
    }
    match seen.path.as_str() {
        "/token" if form("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
            Some(if signed_by_a_test_key(st, &form("assertion")) {
                ok(st, "sa")
            } else {
                oauth_error("invalid_grant", "Invalid JWT Signature.")
            })
        }
        "/sts" => {
            let valid = form("grant_type") == "urn:ietf:params:oauth:grant-type:token-exchange"
                && form("requested_token_type") == "urn:ietf:params:oauth:token-type:access_token"
                && form("subject_token") == st.behaviour.subject_token;
            Some(if valid {
                ok(st, "sts")
            } else {
                oauth_error("invalid_grant", "The subject token is invalid.")
            })
        }
        p if p.starts_with("/v1/projects/-/serviceAccounts/")
            && p.ends_with(":generateAccessToken") =>
        {
            let issued = bearer.is_some_and(|b| b.starts_with("ya29."));
            if !issued {
                return Some(Canned::json(
                    401,
                    r#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}"#,
                ));
            }
            st.counter += 1;
            let expire = std::time::SystemTime::now() + Duration::from_secs(3600);
            Some(Canned::json(
                200,
                &serde_json::json!({
                    "accessToken": format!("ya29.impersonated-{}", st.counter),
                    "expireTime": humantime::format_rfc3339_seconds(expire).to_string(),
                })
                .to_string(),
            ))
        }
        "/computeMetadata/v1/instance/service-accounts/default/token"
        | "/computeMetadata/v1/instance/service-accounts/default/email" => {
            if seen.headers.get("metadata-flavor").map(String::as_str) != Some("Google") {
                return Some(Canned::html(403, "Missing Metadata-Flavor:Google header."));
            }
            if seen.path.ends_with("/email") {
                let mut c = Canned::html(200, "vm-sa@test-project-1.iam.gserviceaccount.com");
                c.content_type = "application/text";
                return Some(c);
            }
            Some(ok(st, "metadata"))
        }
        "/subject-token" => Some(
            if seen.headers.get("x-test-header").map(String::as_str) == Some("yes") {
                Canned::json(
                    200,
                    &serde_json::json!({"value": st.behaviour.subject_token}).to_string(),
                )
            } else {
                Canned::html(403, "forbidden")
            },
        ),
        _ => None,
    }
}

/// True when `assertion` is a JWT signed (RS256) by one of the registered service account keys.
pub(super) fn signed_by_a_test_key(st: &State, assertion: &str) -> bool {
    let parts: Vec<&str> = assertion.split('.').collect();
    parts.len() == 3
        && st.behaviour.service_account_keys.iter().any(|key| {
            let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(parts[2])
                .unwrap_or_default();
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                key,
            )
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .is_ok()
        })
}

/// The ID token endpoints: the JWT-bearer grant whose assertion names a `target_audience`
/// (and no `scope`), IAM Credentials `generateIdToken` and the metadata server's `identity`.
/// `None` for the rest.
pub(super) fn id_token_endpoints(st: &mut State, seen: &Seen) -> Option<Canned> {
    let lifetime = st.behaviour.id_token_lifetime;
    let path = seen.path.as_str();
    let form = |k: &str| seen.form.get(k).cloned().unwrap_or_default();
    if path == "/token" && form("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer" {
        let assertion = form("assertion");
        let Some(claims) = assertion
            .split('.')
            .nth(1)
            .and_then(|p| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p)
                    .ok()
            })
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        else {
            return Some(oauth_error("invalid_grant", "Invalid JWT."));
        };
        let audience = claims.get("target_audience")?.as_str().unwrap_or_default();
        if !signed_by_a_test_key(st, &assertion) {
            return Some(oauth_error("invalid_grant", "Invalid JWT Signature."));
        }
        if claims.get("scope").is_some() || audience.is_empty() {
            return Some(oauth_error(
                "invalid_request",
                "An ID token assertion needs target_audience and no scope.",
            ));
        }
        st.counter += 1;
        let email = claims["iss"].as_str().unwrap_or_default();
        let token = make_id_token(
            serde_json::json!({"aud": audience, "azp": email, "email": email,
                "email_verified": true, "sub": "sa-1", "n": st.counter}),
            lifetime,
        );
        return Some(Canned::json(
            200,
            &serde_json::json!({"id_token": token}).to_string(),
        ));
    }
    if path.starts_with("/v1/projects/-/serviceAccounts/") && path.ends_with(":generateIdToken") {
        let issued = seen
            .headers
            .get("authorization")
            .is_some_and(|h| h.starts_with("Bearer ya29."));
        if !issued {
            return Some(Canned::json(
                401,
                r#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}"#,
            ));
        }
        let body: serde_json::Value = serde_json::from_str(&seen.body).unwrap_or_default();
        let audience = body["audience"].as_str().unwrap_or_default();
        let include_email = body["includeEmail"].as_bool();
        if audience.is_empty() || include_email.is_none() || !body["delegates"].is_array() {
            return Some(Canned::json(
                400,
                r#"{"error":{"code":400,"message":"Invalid request.","status":"INVALID_ARGUMENT"}}"#,
            ));
        }
        let email = path
            .trim_start_matches("/v1/projects/-/serviceAccounts/")
            .trim_end_matches(":generateIdToken");
        st.counter += 1;
        let mut claims =
            serde_json::json!({"aud": audience, "azp": "1", "sub": "imp-1", "n": st.counter});
        if include_email == Some(true) {
            claims["email"] = email.into();
            claims["email_verified"] = true.into();
        }
        return Some(Canned::json(
            200,
            &serde_json::json!({"token": make_id_token(claims, lifetime)}).to_string(),
        ));
    }
    if path == "/computeMetadata/v1/instance/service-accounts/default/identity" {
        if seen.headers.get("metadata-flavor").map(String::as_str) != Some("Google") {
            return Some(Canned::html(403, "Missing Metadata-Flavor:Google header."));
        }
        let Some(audience) = seen.query.get("audience").filter(|a| !a.is_empty()) else {
            return Some(Canned::html(400, "non-empty audience parameter required"));
        };
        st.counter += 1;
        let mut claims =
            serde_json::json!({"aud": audience, "azp": "1", "sub": "vm-1", "n": st.counter});
        if seen.query.get("format").map(String::as_str) == Some("full") {
            claims["email"] = "vm-sa@test-project-1.iam.gserviceaccount.com".into();
            claims["email_verified"] = true.into();
        }
        let mut canned = Canned::html(200, &make_id_token(claims, lifetime));
        canned.content_type = "text/html";
        return Some(canned);
    }
    None
}
