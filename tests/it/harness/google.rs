//! The fake Google server: one tiny_http server on 127.0.0.1 per test, what it saw, how it
//! behaves ([`Behaviour`]) and which endpoint answers a request (the endpoints are in
//! `endpoints.rs` and `credential_endpoints.rs`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::thread;

use super::*;

/// One request the fake server saw.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    pub form: HashMap<String, String>,
    pub headers: HashMap<String, String>,
    pub body: String,
}

pub(super) struct CodeGrant {
    pub(super) challenge: String,
    pub(super) redirect_uri: String,
    pub(super) scope: String,
}

/// How the fake server behaves; tests change it through [`FakeGoogle::with`].
pub(crate) struct Behaviour {
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
    /// When set, the token endpoint answers an authorization_code grant with a 400 whose
    /// `error_description` repeats the form it received (raw and form-encoded), as a careless
    /// server that echoes its request would.
    pub echo_token_form: bool,
}

pub(super) struct State {
    pub(super) seen: Vec<Seen>,
    pub(super) codes: HashMap<String, CodeGrant>,
    pub(super) refresh_tokens: HashMap<String, bool>,
    pub(super) counter: u32,
    pub(super) behaviour: Behaviour,
}

pub(crate) struct FakeGoogle {
    pub base: String,
    pub(super) state: Arc<Mutex<State>>,
    pub(super) server: Arc<tiny_http::Server>,
}

impl Drop for FakeGoogle {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

impl FakeGoogle {
    pub(crate) fn start() -> Self {
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
                echo_token_form: false,
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

    pub(crate) fn with(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.state.lock().unwrap().behaviour);
    }

    /// Queues a canned response for the next request to `path`.
    pub(crate) fn enqueue(&self, path: &str, canned: Canned) {
        self.with(|b| {
            b.canned
                .entry(path.to_string())
                .or_default()
                .push_back(canned)
        });
    }

    pub(crate) fn seen(&self, path: &str) -> Vec<Seen> {
        let state = self.state.lock().unwrap();
        state
            .seen
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }

    /// Every request seen so far, in the order they arrived.
    pub(crate) fn seen_all(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    pub(crate) fn seen_grants(&self, grant_type: &str) -> Vec<Seen> {
        self.seen("/token")
            .into_iter()
            .filter(|s| s.form.get("grant_type").map(String::as_str) == Some(grant_type))
            .collect()
    }

    /// Registers a refresh token as valid (for tests that write credential files by hand).
    pub(crate) fn add_refresh_token(&self, token: &str) {
        self.state
            .lock()
            .unwrap()
            .refresh_tokens
            .insert(token.to_string(), true);
    }

    pub(crate) fn refresh_token_valid(&self, token: &str) -> bool {
        self.state
            .lock()
            .unwrap()
            .refresh_tokens
            .get(token)
            .copied()
            .unwrap_or(false)
    }
}

pub(super) fn parse_pairs(s: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(s.as_bytes())
        .into_owned()
        .collect()
}

pub(super) fn handle(state: &Mutex<State>, mut request: tiny_http::Request) {
    let seen = read_request(&mut request);
    let answer = {
        let mut st = state.lock().unwrap();
        st.seen.push(seen.clone());
        answer(&mut st, &seen)
    };
    respond(request, answer);
}

/// What the server saw of a request.
pub(super) fn read_request(request: &mut tiny_http::Request) -> Seen {
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
pub(super) fn answer(st: &mut State, seen: &Seen) -> Canned {
    if let Some(canned) = st
        .behaviour
        .canned
        .get_mut(&seen.path)
        .and_then(VecDeque::pop_front)
    {
        return canned;
    }
    if let Some(canned) = workforce_endpoints(st, seen) {
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
