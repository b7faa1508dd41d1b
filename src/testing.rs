//! Support for the unit tests: a fake Google that answers and records requests in-process, a
//! fixed context (time, environment, cache directory), JWTs, the test key, and a runtime.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::Value;

use crate::context::Context;
use crate::error::Result;
use crate::oauth::{Body, Http, HttpRequest};

/// The fixed time of the unit tests (2027-01-15).
pub(crate) const NOW: u64 = 1_800_000_000;

/// The service account key of the test fixtures (RSA, PKCS#8).
pub(crate) const TEST_KEY: &str = include_str!("../tests/fixtures/test-sa-key.pem");

/// One request the fake saw, with its secrets in the clear (for assertions).
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: crate::oauth::Method,
    pub(crate) url: String,
    pub(crate) form: BTreeMap<String, String>,
    pub(crate) json: Option<Value>,
    pub(crate) bearer: Option<String>,
    pub(crate) basic: Option<(String, String)>,
    pub(crate) headers: Vec<(String, String)>,
}

/// A fake server: `answer` gives the status and body of each request (by its URL path, say);
/// every request is recorded.
#[derive(Clone, Default)]
pub(crate) struct Fake {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    /// An HTTP client answered by `answer`.
    pub(crate) fn http(
        &self,
        answer: impl Fn(&HttpRequest) -> Result<(u16, String)> + Send + Sync + 'static,
    ) -> Http {
        let seen = self.seen.clone();
        Http::fake(move |request| {
            let (form, json) = match &request.body {
                Body::Form(pairs) => (pairs.iter().cloned().collect(), None),
                Body::Json(value) => (BTreeMap::new(), Some(value.clone())),
                Body::Empty => (BTreeMap::new(), None),
            };
            if let Ok(mut seen) = seen.lock() {
                seen.push(Seen {
                    method: request.method,
                    url: request.url.to_string(),
                    form,
                    json,
                    bearer: request.bearer.clone(),
                    basic: request.basic.clone(),
                    headers: request.headers.clone(),
                });
            }
            answer(request).map(|(status, body)| (status, body.into_bytes()))
        })
    }

    /// The requests seen so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// A context at [`NOW`] with these variables, this cache directory and this client.
pub(crate) fn context(http: Http, vars: &[(&str, &str)], cache_dir: Option<&Path>) -> Context {
    Context::fixed(vars, NOW, cache_dir.map(Path::to_path_buf), http)
}

/// Runs a future to completion on a current-thread runtime.
pub(crate) fn run<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a test runtime")
        .block_on(future)
}

/// An unsigned JWT with these claims (gemauth reads claims without checking signatures).
pub(crate) fn jwt(claims: &Value) -> String {
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    format!(
        "{}.{}.{}",
        b64(br#"{"alg":"RS256"}"#),
        b64(claims.to_string().as_bytes()),
        b64(b"sig")
    )
}

/// The claims of a JWT.
pub(crate) fn claims(token: &str) -> Value {
    crate::oauth::jwt_claims(token).expect("a JWT")
}

/// A token endpoint answer with this access token, lasting an hour.
pub(crate) fn token_answer(access_token: &str) -> Result<(u16, String)> {
    Ok((
        200,
        serde_json::json!({"access_token": access_token, "expires_in": 3600, "token_type": "Bearer"})
            .to_string(),
    ))
}

/// What the command line would say to do about an error, and its exit code.
pub(crate) fn hint(e: crate::Error) -> (String, u8) {
    let report = crate::commands::report::Error::from(e);
    (report.hint(), report.exit_code())
}

/// The URL path of a request.
pub(crate) fn path(request: &HttpRequest) -> &str {
    request.url.path()
}
