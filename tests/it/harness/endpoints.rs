//! The fake server's OAuth endpoints for a user: authorization (code flow with PKCE), the
//! token endpoint's code and refresh-token grants, revocation and a stand-in for the Gemini API.

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::*;

/// The authorization endpoint: checks the request (code flow, PKCE S256, a state, a loopback
/// redirect) and redirects back with a code, or with the configured denial.
pub(super) fn authorization_endpoint(st: &mut State, seen: &Seen) -> Canned {
    let get = |k: &str| seen.query.get(k).cloned().unwrap_or_default();
    let redirect = get("redirect_uri");
    let valid = get("response_type") == "code"
        && get("client_id") == CLIENT_ID
        && redirect.starts_with("http://127.0.0.1:")
        && get("code_challenge_method") == "S256"
        && !get("code_challenge").is_empty()
        && !get("state").is_empty();
    if !valid {
        return Canned::html(400, "<p>bad authorization request</p>");
    }
    let scope = get("scope");
    redirect_with_code(
        st,
        seen,
        "4/0Ab-code+",
        &[("scope", &scope), ("iss", "https://accounts.google.com")],
    )
}

/// The end of an authorization endpoint once the request is accepted: redirects to the
/// request's `redirect_uri` with the configured denial (`error`, `error_description`,
/// `state`), or with the request's `state` and a new code (`code_prefix` and a counter), the
/// `extra` pairs after it; the code is remembered with the request's PKCE challenge, redirect
/// and scope for the token endpoint. Shared by the Google and the workforce authorization pages.
pub(super) fn redirect_with_code(
    st: &mut State,
    seen: &Seen,
    code_prefix: &str,
    extra: &[(&str, &str)],
) -> Canned {
    let get = |k: &str| seen.query.get(k).cloned().unwrap_or_default();
    let redirect = get("redirect_uri");
    let mut location = url::Url::parse(&redirect).unwrap();
    if let Some((error, description)) = st.behaviour.deny.clone() {
        location
            .query_pairs_mut()
            .append_pair("error", &error)
            .append_pair("error_description", &description)
            .append_pair("state", &get("state"));
    } else {
        st.counter += 1;
        let code = format!("{code_prefix}{}", st.counter);
        st.codes.insert(
            code.clone(),
            CodeGrant {
                challenge: get("code_challenge"),
                redirect_uri: redirect.clone(),
                scope: get("scope"),
            },
        );
        let mut pairs = location.query_pairs_mut();
        pairs
            .append_pair("state", &get("state"))
            .append_pair("code", &code);
        for (key, value) in extra {
            pairs.append_pair(key, value);
        }
    }
    Canned::html(302, "").header("Location", location.as_str())
}

/// The token endpoint's code and refresh-token grants (client authentication in the body).
pub(super) fn token_endpoint(st: &mut State, seen: &Seen) -> Canned {
    let get = |k: &str| seen.form.get(k).cloned().unwrap_or_default();
    if get("client_id") != CLIENT_ID || get("client_secret") != CLIENT_SECRET {
        return oauth_error("invalid_client", "Unauthorized");
    }
    st.counter += 1;
    if st.behaviour.echo_token_form && get("grant_type") == "authorization_code" {
        return echo_form(seen);
    }
    let answer = match get("grant_type").as_str() {
        "authorization_code" => code_grant(st, seen),
        "refresh_token" => refresh_grant(st, seen),
        _ => Err(oauth_error("unsupported_grant_type", "")),
    };
    match answer {
        Ok(body) => Canned::json(200, &body.to_string()),
        Err(refusal) => refusal,
    }
}

/// A 400 whose description repeats the form received, both as sent (form-encoded) and decoded.
fn echo_form(seen: &Seen) -> Canned {
    let mut decoded: Vec<String> = seen.form.iter().map(|(k, v)| format!("{k}={v}")).collect();
    decoded.sort();
    let description = format!("cannot use {} (decoded: {})", seen.body, decoded.join(" "));
    Canned::json(
        400,
        &serde_json::json!({"error": "invalid_request", "error_description": description})
            .to_string(),
    )
}

pub(super) fn code_grant(st: &mut State, seen: &Seen) -> Result<serde_json::Value, Canned> {
    let get = |k: &str| seen.form.get(k).cloned().unwrap_or_default();
    let n = st.counter;
    let Some(grant) = st.codes.remove(&get("code")) else {
        return Err(oauth_error("invalid_grant", "Bad code"));
    };
    let digest = Sha256::digest(get("code_verifier").as_bytes());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    if challenge != grant.challenge || get("redirect_uri") != grant.redirect_uri {
        return Err(oauth_error("invalid_grant", "PKCE or redirect mismatch"));
    }
    let scope = st.behaviour.granted_scope.clone().unwrap_or(grant.scope);
    let mut body = serde_json::json!({
        "access_token": format!("ya29.access-{n}"),
        "expires_in": st.behaviour.expires_in,
        "scope": scope,
        "token_type": "Bearer",
        "id_token": id_token(EMAIL),
        "refresh_token_expires_in": 604799,
    });
    if st.behaviour.issue_refresh_token {
        let rt = format!("1//refresh-{n}");
        st.refresh_tokens.insert(rt.clone(), true);
        body["refresh_token"] = rt.into();
    }
    Ok(body)
}

pub(super) fn refresh_grant(st: &mut State, seen: &Seen) -> Result<serde_json::Value, Canned> {
    let n = st.counter;
    let rt = seen.form.get("refresh_token").cloned().unwrap_or_default();
    if st.refresh_tokens.get(&rt) != Some(&true) {
        return Err(oauth_error(
            "invalid_grant",
            "Token has been expired or revoked.",
        ));
    }
    let mut body = serde_json::json!({
        "access_token": format!("ya29.access-{n}"),
        "expires_in": st.behaviour.expires_in,
        "scope": "https://www.googleapis.com/auth/cloud-platform",
        "token_type": "Bearer",
    });
    if st.behaviour.refresh_id_token {
        body["id_token"] = make_id_token(
            serde_json::json!({"aud": CLIENT_ID, "azp": CLIENT_ID,
                "email": EMAIL, "email_verified": true, "sub": "1", "n": n}),
            st.behaviour.id_token_lifetime,
        )
        .into();
    }
    if st.behaviour.rotate {
        let new = format!("1//refresh-{n}");
        st.refresh_tokens.insert(rt, false);
        st.refresh_tokens.insert(new.clone(), true);
        body["refresh_token"] = new.into();
    }
    Ok(body)
}

/// RFC 7009 revocation of a refresh token this server issued.
pub(super) fn revocation_endpoint(st: &mut State, seen: &Seen) -> Canned {
    let token = seen.form.get("token").cloned().unwrap_or_default();
    if st.refresh_tokens.get(&token) != Some(&true) {
        return oauth_error("invalid_token", "Bad Request");
    }
    st.refresh_tokens.insert(token, false);
    Canned::json(200, "{}")
}

/// A stand-in for the Gemini API: accepts only access tokens this server issued.
pub(super) fn models_endpoint(st: &mut State, seen: &Seen) -> Canned {
    let issued = seen
        .headers
        .get("authorization")
        .and_then(|auth| auth.strip_prefix("Bearer ya29.access-"))
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| n <= st.counter);
    if issued {
        Canned::json(
            200,
            r#"{"models":[{"name":"models/gemini-test-pro"},{"name":"models/gemini-test-flash"}]}"#,
        )
    } else {
        Canned::json(401, r#"{"error":{"code":401,"status":"UNAUTHENTICATED"}}"#)
    }
}
