//! Test harness: an in-process fake Google authorization server on 127.0.0.1 that records what
//! it receives, a fake browser (`BROWSER` points at a script that hands the URL to the test,
//! which then follows it), and an isolated environment (HOME, XDG dirs, CLOUDSDK_CONFIG) per test.

use std::collections::{HashMap, VecDeque};
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "123-test.apps.googleusercontent.com";
pub const CLIENT_SECRET: &str = "GOCSPX-test-client-secret";
pub const PROJECT_ID: &str = "test-project-1";
pub const EMAIL: &str = "dev@example.com";

/// One request the fake server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    pub form: HashMap<String, String>,
    pub headers: HashMap<String, String>,
    pub body: String,
}

/// A canned answer that replaces the server's normal behaviour for one request to `path`.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub body: String,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    /// Time to wait before answering (a slow server).
    pub delay: Duration,
}

impl Canned {
    pub fn json(status: u16, body: &str) -> Self {
        Canned {
            status,
            body: body.to_string(),
            content_type: "application/json",
            headers: vec![],
            delay: Duration::ZERO,
        }
    }
    pub fn html(status: u16, body: &str) -> Self {
        Canned {
            status,
            body: body.to_string(),
            content_type: "text/html",
            headers: vec![],
            delay: Duration::ZERO,
        }
    }
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }
}

struct CodeGrant {
    challenge: String,
    redirect_uri: String,
    scope: String,
}

/// How the fake server behaves; tests change it through [`FakeGoogle::with`].
pub struct Behaviour {
    /// When set, the authorization endpoint redirects back with this `error`.
    pub deny: Option<(String, String)>,
    /// Scope string returned by the token endpoint (default: what was requested).
    pub granted_scope: Option<String>,
    pub issue_refresh_token: bool,
    /// Refresh-token rotation: each refresh returns a new refresh token and invalidates the old.
    pub rotate: bool,
    pub expires_in: u64,
    pub canned: HashMap<String, VecDeque<Canned>>,
    /// RSA public keys (ring's RSAPublicKey DER) whose JWT assertions the token endpoint accepts.
    pub service_account_keys: Vec<Vec<u8>>,
    /// The subject token the STS endpoint accepts.
    pub subject_token: String,
    /// Whether refresh-token grants answer with an `id_token` too (Google does when the grant
    /// included the `openid` scope).
    pub refresh_id_token: bool,
    /// Lifetime (seconds) of the ID tokens the server issues.
    pub id_token_lifetime: u64,
}

struct State {
    seen: Vec<Seen>,
    codes: HashMap<String, CodeGrant>,
    refresh_tokens: HashMap<String, bool>,
    counter: u32,
    behaviour: Behaviour,
}

pub struct FakeGoogle {
    pub base: String,
    state: Arc<Mutex<State>>,
    server: Arc<tiny_http::Server>,
}

impl Drop for FakeGoogle {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

impl FakeGoogle {
    pub fn start() -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind fake server"));
        let port = server.server_addr().to_ip().expect("ip address").port();
        let state = Arc::new(Mutex::new(State {
            seen: vec![],
            codes: HashMap::new(),
            refresh_tokens: HashMap::new(),
            counter: 0,
            behaviour: Behaviour {
                deny: None,
                granted_scope: None,
                issue_refresh_token: true,
                rotate: false,
                expires_in: 3599,
                canned: HashMap::new(),
                service_account_keys: vec![],
                subject_token: "subject-token-123".into(),
                refresh_id_token: true,
                id_token_lifetime: 3600,
            },
        }));
        let (srv, st) = (server.clone(), state.clone());
        thread::spawn(move || {
            for request in srv.incoming_requests() {
                handle(&st, request);
            }
        });
        FakeGoogle {
            base: format!("http://127.0.0.1:{port}"),
            state,
            server,
        }
    }

    pub fn with(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.state.lock().unwrap().behaviour);
    }

    /// Queues a canned response for the next request to `path`.
    pub fn enqueue(&self, path: &str, canned: Canned) {
        self.with(|b| {
            b.canned
                .entry(path.to_string())
                .or_default()
                .push_back(canned)
        });
    }

    pub fn seen(&self, path: &str) -> Vec<Seen> {
        let state = self.state.lock().unwrap();
        state
            .seen
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }

    pub fn seen_grants(&self, grant_type: &str) -> Vec<Seen> {
        self.seen("/token")
            .into_iter()
            .filter(|s| s.form.get("grant_type").map(String::as_str) == Some(grant_type))
            .collect()
    }

    /// Registers a refresh token as valid (for tests that write credential files by hand).
    pub fn add_refresh_token(&self, token: &str) {
        self.state
            .lock()
            .unwrap()
            .refresh_tokens
            .insert(token.to_string(), true);
    }

    pub fn refresh_token_valid(&self, token: &str) -> bool {
        self.state
            .lock()
            .unwrap()
            .refresh_tokens
            .get(token)
            .copied()
            .unwrap_or(false)
    }
}

fn parse_pairs(s: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(s.as_bytes())
        .into_owned()
        .collect()
}

fn respond(request: tiny_http::Request, canned: Canned) {
    thread::sleep(canned.delay);
    let mut response = tiny_http::Response::from_string(canned.body)
        .with_status_code(canned.status)
        .with_header(tiny_http::Header::from_bytes("Content-Type", canned.content_type).unwrap());
    for (name, value) in canned.headers {
        response.add_header(tiny_http::Header::from_bytes(name, value.as_bytes()).unwrap());
    }
    let _ = request.respond(response);
}

fn oauth_error(error: &str, description: &str) -> Canned {
    Canned::json(
        400,
        &serde_json::json!({"error": error, "error_description": description}).to_string(),
    )
}

fn id_token(email: &str) -> String {
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
pub fn make_id_token(mut claims: serde_json::Value, lifetime: u64) -> String {
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
pub fn jwt_claims(token: &str) -> serde_json::Value {
    let payload = token.trim().split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

fn handle(state: &Mutex<State>, mut request: tiny_http::Request) {
    let seen = read_request(&mut request);
    let answer = {
        let mut st = state.lock().unwrap();
        st.seen.push(seen.clone());
        answer(&mut st, &seen)
    };
    respond(request, answer);
}

/// What the server saw of a request.
fn read_request(request: &mut tiny_http::Request) -> Seen {
    let url = request.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let mut body = String::new();
    let _ = request.as_reader().read_to_string(&mut body);
    Seen {
        method: request.method().to_string(),
        path: path.to_string(),
        query: parse_pairs(query),
        form: parse_pairs(&body),
        headers: request
            .headers()
            .iter()
            .map(|h| {
                (
                    h.field.as_str().as_str().to_ascii_lowercase(),
                    h.value.to_string(),
                )
            })
            .collect(),
        body,
    }
}

/// The answer to one request: a canned one queued for its path, else the endpoint's own.
fn answer(st: &mut State, seen: &Seen) -> Canned {
    if let Some(canned) = st
        .behaviour
        .canned
        .get_mut(&seen.path)
        .and_then(VecDeque::pop_front)
    {
        return canned;
    }
    if let Some(canned) = google_extras(st, seen) {
        return canned;
    }
    match seen.path.as_str() {
        "/auth" => authorization_endpoint(st, seen),
        "/token" => token_endpoint(st, seen),
        "/revoke" => revocation_endpoint(st, seen),
        "/v1/models" => models_endpoint(st, seen),
        _ => Canned::html(404, "not found"),
    }
}

/// The authorization endpoint: checks the request (code flow, PKCE S256, a state, a loopback
/// redirect) and redirects back with a code, or with the configured denial.
fn authorization_endpoint(st: &mut State, seen: &Seen) -> Canned {
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
    let mut location = url::Url::parse(&redirect).unwrap();
    if let Some((error, description)) = st.behaviour.deny.clone() {
        location
            .query_pairs_mut()
            .append_pair("error", &error)
            .append_pair("error_description", &description)
            .append_pair("state", &get("state"));
    } else {
        st.counter += 1;
        let code = format!("4/0Ab-code+{}", st.counter);
        st.codes.insert(
            code.clone(),
            CodeGrant {
                challenge: get("code_challenge"),
                redirect_uri: redirect.clone(),
                scope: get("scope"),
            },
        );
        location
            .query_pairs_mut()
            .append_pair("state", &get("state"))
            .append_pair("code", &code)
            .append_pair("scope", &get("scope"))
            .append_pair("iss", "https://accounts.google.com");
    }
    Canned::html(302, "").header("Location", location.as_str())
}

/// The token endpoint's code and refresh-token grants (client authentication in the body).
fn token_endpoint(st: &mut State, seen: &Seen) -> Canned {
    let get = |k: &str| seen.form.get(k).cloned().unwrap_or_default();
    if get("client_id") != CLIENT_ID || get("client_secret") != CLIENT_SECRET {
        return oauth_error("invalid_client", "Unauthorized");
    }
    st.counter += 1;
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

fn code_grant(st: &mut State, seen: &Seen) -> Result<serde_json::Value, Canned> {
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

fn refresh_grant(st: &mut State, seen: &Seen) -> Result<serde_json::Value, Canned> {
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
fn revocation_endpoint(st: &mut State, seen: &Seen) -> Canned {
    let token = seen.form.get("token").cloned().unwrap_or_default();
    if st.refresh_tokens.get(&token) != Some(&true) {
        return oauth_error("invalid_token", "Bad Request");
    }
    st.refresh_tokens.insert(token, false);
    Canned::json(200, "{}")
}

/// A stand-in for the Gemini API: accepts only access tokens this server issued.
fn models_endpoint(st: &mut State, seen: &Seen) -> Canned {
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

/// The endpoints of the other credential types: the JWT-bearer grant, STS token exchange, IAM
/// Credentials impersonation, the metadata server and a subject token URL. `None` for the rest.
fn google_extras(st: &mut State, seen: &Seen) -> Option<Canned> {
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
fn signed_by_a_test_key(st: &State, assertion: &str) -> bool {
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
fn id_token_endpoints(st: &mut State, seen: &Seen) -> Option<Canned> {
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

/// A minimal HTTP/1.1 GET over a raw socket, as a browser would send it.
pub struct Page {
    pub status: u16,
    /// Header names in lower case; of a repeated header, the last value.
    pub headers: HashMap<String, String>,
    /// Every header line in order, repeated ones included (Set-Cookie).
    pub header_lines: Vec<(String, String)>,
    pub body: String,
}

pub fn http_get(url: &str) -> Page {
    let url = url::Url::parse(url).expect("valid URL");
    let host = url.host_str().expect("host");
    let port = url.port_or_known_default().expect("port");
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    raw_request(
        host,
        port,
        &format!("GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"),
    )
}

pub fn raw_request(host: &str, port: u16, request: &str) -> Page {
    let mut stream = TcpStream::connect((host, port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let header_lines: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Page {
        status,
        headers: header_lines.iter().cloned().collect(),
        header_lines,
        body: body.to_string(),
    }
}

/// A loopback port that refuses connections at once: a socket bound to it but not listening.
/// While it lives no other program can bind the port, so a test's "nothing answers there"
/// cannot meet a server that happened to start on a port the test had closed.
pub struct ClosedPort(tokio::net::TcpSocket);

impl ClosedPort {
    pub fn new() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("create a socket");
        socket
            .bind((std::net::Ipv4Addr::LOCALHOST, 0).into())
            .expect("bind a loopback port");
        ClosedPort(socket)
    }

    pub fn port(&self) -> u16 {
        self.0.local_addr().expect("bound address").port()
    }
}

/// The fake browser's file name and text: it hands its arguments to the test, one a line, in
/// the file `browser-args` beside it (written whole, by a rename); the test follows the URL.
#[cfg(unix)]
const FAKE_BROWSER: (&str, &str) = (
    "browser.sh",
    "#!/bin/sh\nout=\"$(dirname \"$0\")/browser-args\"\n\
     printf '%s\\n' \"$@\" > \"$out.tmp\" && mv \"$out.tmp\" \"$out\"\n",
);
/// On Windows a JScript run by cscript: a batch file would get its arguments through cmd.exe,
/// which mangles the `%` of a URL's escapes under Wine.
#[cfg(windows)]
const FAKE_BROWSER: (&str, &str) = (
    "browser.js",
    "var fso = new ActiveXObject('Scripting.FileSystemObject');\r\n\
     var dir = fso.GetParentFolderName(WScript.ScriptFullName);\r\n\
     var tmp = dir + '\\\\browser-args.tmp', out = dir + '\\\\browser-args';\r\n\
     var f = fso.CreateTextFile(tmp, true);\r\n\
     for (var i = 0; i < WScript.Arguments.length; i++) f.WriteLine(WScript.Arguments(i));\r\n\
     f.Close();\r\n\
     if (fso.FileExists(out)) fso.DeleteFile(out);\r\n\
     fso.MoveFile(tmp, out);\r\n",
);

/// An isolated environment: temp HOME, XDG dirs, CLOUDSDK_CONFIG, fake server and browser.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub google: FakeGoogle,
    /// GCE_METADATA_HOST: no metadata server, and the attempt is refused at once.
    no_metadata: ClosedPort,
}

impl TestEnv {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for d in ["home", "config", "cache", "gcloud-parent"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let (name, script) = FAKE_BROWSER;
        let browser = dir.path().join(name);
        std::fs::write(&browser, script).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        TestEnv {
            dir,
            google: FakeGoogle::start(),
            no_metadata: ClosedPort::new(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// gcloud's config dir; gemauth must create it (0700) on first login.
    pub fn gcloud_dir(&self) -> PathBuf {
        self.path("gcloud-parent").join("gcloud")
    }

    pub fn adc_path(&self) -> PathBuf {
        self.gcloud_dir()
            .join("application_default_credentials.json")
    }

    /// gemauth's cache: in `XDG_CACHE_HOME` (Linux) or `LOCALAPPDATA` (Windows), both the test's
    /// `cache`; macOS has one place only, under `HOME`.
    pub fn cache_dir(&self) -> PathBuf {
        if cfg!(target_os = "macos") {
            self.path("home/Library/Caches/gemauth")
        } else {
            self.path("cache/gemauth")
        }
    }

    /// The fake browser as `$BROWSER` names it (a command line, split like a shell's).
    /// The fake browser's script file.
    pub fn browser_script(&self) -> PathBuf {
        self.path(FAKE_BROWSER.0)
    }

    /// `BROWSER` for the fake browser: a command line.
    pub fn browser(&self) -> String {
        let script = self.browser_script();
        if cfg!(windows) {
            format!("cscript //nologo \"{}\"", script.display())
        } else {
            format!("'{}'", script.display())
        }
    }

    /// The gemauth binary with an environment that reaches nothing outside the test.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(gemauth_binary());
        for var in [
            "GOOGLE_APPLICATION_CREDENTIALS",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
            "NO_PROXY",
            "no_proxy",
            "DISPLAY",
            "WAYLAND_DISPLAY",
            "RUST_LOG",
            "APPDATA",
            "NO_GCE_CHECK",
            "GOOGLE_CLOUD_QUOTA_PROJECT",
            "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("XDG_CACHE_HOME", self.path("cache"))
            .env("LOCALAPPDATA", self.path("cache"))
            .env("CLOUDSDK_CONFIG", self.gcloud_dir())
            .env("BROWSER", self.browser())
            .env("GEMAUTH_TIMEOUT", "10")
            // Never look for a real metadata server: a closed loopback port answers at once.
            .env(
                "GCE_METADATA_HOST",
                format!("127.0.0.1:{}", self.no_metadata.port()),
            )
            .stdin(Stdio::null());
        cmd
    }

    /// Gives another command (a wrapper such as `sh -c` that then runs gemauth) the environment
    /// of [`TestEnv::cmd`].
    pub fn isolate<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        for (k, v) in self.cmd().get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd
    }

    pub fn client_json(&self) -> serde_json::Value {
        serde_json::json!({"installed": {
            "client_id": CLIENT_ID,
            "project_id": PROJECT_ID,
            "auth_uri": format!("{}/auth", self.google.base),
            "token_uri": format!("{}/token", self.google.base),
            "revoke_uri": format!("{}/revoke", self.google.base),
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_secret": CLIENT_SECRET,
            "redirect_uris": ["http://localhost"]
        }})
    }

    pub fn write_client(&self, value: &serde_json::Value) -> PathBuf {
        let path = self.path("client_secret.json");
        std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
        path
    }

    pub fn client_file(&self) -> PathBuf {
        self.write_client(&self.client_json())
    }

    /// Starts `gemauth login --client-id-file … ARGS` in the background.
    pub fn start_login(&self, args: &[&str]) -> Running {
        let client = self.client_file();
        let mut cmd = self.cmd();
        cmd.arg("login")
            .arg("--client-id-file")
            .arg(&client)
            .args(args);
        Running::spawn(cmd, self.path("browser-args"))
    }

    /// Starts `gemauth login --no-browser --client-id-file … ARGS` with stdin open.
    pub fn start_headless(&self, args: &[&str]) -> Running {
        let client = self.client_file();
        let mut cmd = self.cmd();
        cmd.arg("login")
            .arg("--no-browser")
            .arg("--client-id-file")
            .arg(&client)
            .args(args);
        Running::spawn_interactive(cmd, self.path("browser-args"))
    }

    /// Calls `start` (e.g. [`TestEnv::start_login`]) with `["--port", PORT]`, PORT a port that
    /// was free a moment ago, and returns the login once gemauth has bound it, with the port.
    /// Another program may take the port between the test's check and gemauth's bind: gemauth
    /// then exits saying so, and another port is tried.
    pub fn start_on_a_free_port(&self, start: impl Fn(&[&str]) -> Running) -> (Running, u16) {
        for _ in 0..10 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|probe| probe.local_addr())
                .expect("a free loopback port")
                .port();
            let mut run = start(&["--port", &port.to_string()]);
            // The authorization URL is printed once the listener is bound.
            if run.wait_stderr_or_exit(&format!("{}/auth?", self.google.base)) {
                return (run, port);
            }
            let done = run.finish();
            assert!(
                done.code() == 1 && done.stderr.contains(&format!("port {port}")),
                "{}",
                done.stderr
            );
        }
        panic!("10 free ports in a row were taken before gemauth could bind them");
    }

    /// Runs a complete, approved login with the default settings.
    pub fn login(&self) -> Finished {
        let run = self.start_login(&[]);
        let url = run.browser_url();
        let page = follow_authorization(&url);
        assert_eq!(page.status, 200, "{}", page.body);
        let done = run.finish();
        assert!(done.status.success(), "login failed: {}", done.stderr);
        done
    }

    /// Writes an authorized_user file by hand (refresh token registered at the fake server).
    pub fn write_credentials(&self, path: &Path, refresh_token: &str) -> Vec<u8> {
        self.google.add_refresh_token(refresh_token);
        let value = serde_json::json!({
            "type": "authorized_user",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": refresh_token,
            "quota_project_id": PROJECT_ID,
            "universe_domain": "googleapis.com",
            "token_uri": format!("{}/token", self.google.base),
            "revoke_uri": format!("{}/revoke", self.google.base),
            "custom_field": {"kept": true},
        });
        let bytes = serde_json::to_vec_pretty(&value).unwrap();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        write_private(path, &bytes);
        bytes
    }

    /// Writes a JSON credential file (mode 0600) in the test directory.
    pub fn write_json(&self, name: &str, value: &serde_json::Value) -> PathBuf {
        let path = self.path(name);
        write_private(&path, &serde_json::to_vec_pretty(value).unwrap());
        path
    }

    /// Starts gemauth with ARGS, its output piped (for many concurrent processes).
    pub fn spawn_piped<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Child {
        self.cmd()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Cache entries (`KEY.json`; not the temp files of a writer that was killed mid-write).
    pub fn cached_tokens(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.cache_dir().join("tokens")) {
            Ok(entries) => entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect(),
            Err(_) => vec![],
        }
    }

    /// Makes every cached token look expired.
    pub fn expire_cache(&self) {
        for path in self.cached_tokens() {
            let mut v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            v["obtained_at"] = 1000.into();
            v["expires_at"] = 4600.into();
            std::fs::write(&path, v.to_string()).unwrap();
        }
    }

    /// Runs a command to completion with more environment variables (30 s limit).
    pub fn run_with<V: AsRef<std::ffi::OsStr>>(
        &self,
        args: &[&str],
        vars: &[(&str, V)],
    ) -> Finished {
        let mut cmd = self.cmd();
        cmd.args(args);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        Running::spawn(cmd, self.path("browser-args")).finish()
    }

    /// Runs a command to completion (30 s limit).
    pub fn run(&self, args: &[&str]) -> Finished {
        let mut cmd = self.cmd();
        cmd.args(args);
        Running::spawn(cmd, self.path("browser-args")).finish()
    }
}

/// The binary under test: the one `cargo test` built, or `GEMAUTH_TEST_BINARY` (.ci/run points
/// it at the static release build, to run the tests against the binary that is shipped).
pub fn gemauth_binary() -> PathBuf {
    match std::env::var_os("GEMAUTH_TEST_BINARY") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_gemauth")),
    }
}

/// Waits for each of `children` (from [`TestEnv::spawn_piped`]) and checks that it succeeded and
/// printed `token`.
pub fn assert_each_prints(children: Vec<Child>, token: &str) {
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{token}\n"));
    }
}

/// Writes a file readable by its owner only, as credential files should be.
pub fn write_private(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// Plays the user's browser: opens the authorization URL at the fake server, then follows its
/// redirect to gemauth's loopback listener. Returns the listener's page.
pub fn follow_authorization(url: &str) -> Page {
    let auth = http_get(url);
    assert_eq!(auth.status, 302, "authorization endpoint: {}", auth.body);
    http_get(&auth.headers["location"])
}

/// Plays a browser on another device: approves at the fake server and returns the redirect
/// address it would show (without following it to the listener).
pub fn approve_elsewhere(url: &str) -> String {
    let auth = http_get(url);
    assert_eq!(auth.status, 302, "authorization endpoint: {}", auth.body);
    auth.headers["location"].clone()
}

/// A gemauth process running in the background. Its standard error goes to a file, so that
/// what gemauth has written is there to read (a pipe's reader could lag behind); its standard
/// output is collected by a thread.
pub struct Running {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: Option<thread::JoinHandle<String>>,
    stderr: tempfile::NamedTempFile,
    browser_args: PathBuf,
}

pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn code(&self) -> i32 {
        self.status.code().expect("exit code")
    }
}

impl Running {
    pub fn spawn(mut cmd: Command, browser_args: PathBuf) -> Self {
        let _ = std::fs::remove_file(&browser_args);
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(stderr.reopen().unwrap())
            .spawn()
            .expect("start gemauth");
        let out = child.stdout.take().unwrap();
        let stdout = thread::spawn(move || {
            let mut s = String::new();
            let _ = BufReader::new(out).read_to_string(&mut s);
            s
        });
        let stdin = child.stdin.take();
        Running {
            child,
            stdin,
            stdout: Some(stdout),
            stderr,
            browser_args,
        }
    }

    /// Like [`Running::spawn`], with standard input kept open for [`Running::paste`].
    pub fn spawn_interactive(mut cmd: Command, browser_args: PathBuf) -> Self {
        cmd.stdin(Stdio::piped());
        Self::spawn(cmd, browser_args)
    }

    /// Types a line on the process's standard input.
    pub fn paste(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("spawned with spawn_interactive");
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Closes standard input (end of file).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The process id.
    #[cfg(target_os = "linux")]
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr_so_far(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.stderr.path()).unwrap()).into_owned()
    }

    /// Waits until stderr contains `needle` (true) or the process has exited (false).
    pub fn wait_stderr_or_exit(&mut self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.stderr_so_far().contains(needle) {
                return true;
            }
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "stderr never contained {needle:?}: {}",
                self.stderr_so_far()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until stderr contains `needle`; returns stderr.
    pub fn wait_stderr(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.stderr_so_far();
            if s.contains(needle) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "stderr never contained {needle:?}: {s}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The arguments the fake browser was started with.
    pub fn browser_args(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(s) = std::fs::read_to_string(&self.browser_args) {
                return s.lines().map(str::to_string).collect();
            }
            assert!(
                Instant::now() < deadline,
                "the browser was never started; stderr: {}",
                self.stderr_so_far()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The URL the fake browser was asked to open (its last argument).
    pub fn browser_url(&self) -> String {
        self.browser_args().pop().expect("browser got a URL")
    }

    /// The authorization URL as printed on stderr.
    pub fn printed_url(&self) -> String {
        let s = self.wait_stderr("http");
        s.split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            .expect("a URL on stderr")
            .to_string()
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn finish(mut self) -> Finished {
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("gemauth did not finish; stderr: {}", self.stderr_so_far());
            }
            thread::sleep(Duration::from_millis(10));
        };
        let stdout = self.stdout.take().unwrap().join().unwrap();
        let stderr = self.stderr_so_far();
        Finished {
            status,
            stdout,
            stderr,
        }
    }
}

/// Parses the query of a URL into a map (last value wins).
pub fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("file exists")).expect("valid JSON")
}

#[cfg(unix)]
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// True when the tests run as root (permission checks cannot be exercised then).
#[cfg(unix)]
pub fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A file of tests/fixtures.
pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

/// The public half of the test key, as the fake token endpoint checks signatures with it.
pub fn register_test_key(env: &TestEnv) {
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
