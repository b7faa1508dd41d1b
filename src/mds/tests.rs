//! The metadata server end to end in-process: a fake token source that counts its calls, the
//! server on 127.0.0.1:0, and a raw HTTP/1.1 client (so that malformed and slow requests can be
//! sent too).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::source::{
    AccessToken, IdToken, IdTokenFormat, IdTokenRequest, Identity, SourceError, TokenSource,
};
use super::{Config, bind};
use crate::secret::Secret;

const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
const EMAIL: &str = "robot@my-project.iam.gserviceaccount.com";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Up,
    Down,
    Revoked,
}

/// The fake source's state, shared with the test.
struct Fake {
    access_calls: AtomicUsize,
    id_calls: AtomicUsize,
    identity_calls: AtomicUsize,
    lifetime_ms: AtomicU64,
    delay_ms: AtomicU64,
    mode: Mutex<Mode>,
    /// Mint ID tokens that decode as JWTs (for real clients), not placeholders.
    real_jwt: std::sync::atomic::AtomicBool,
    scopes_seen: Mutex<Vec<Vec<String>>>,
    id_seen: Mutex<Vec<IdTokenRequest>>,
    identity: Mutex<Identity>,
}

impl Fake {
    fn new() -> Arc<Self> {
        Arc::new(Fake {
            access_calls: AtomicUsize::new(0),
            id_calls: AtomicUsize::new(0),
            identity_calls: AtomicUsize::new(0),
            lifetime_ms: AtomicU64::new(3_600_000),
            delay_ms: AtomicU64::new(0),
            mode: Mutex::new(Mode::Up),
            real_jwt: std::sync::atomic::AtomicBool::new(false),
            scopes_seen: Mutex::new(Vec::new()),
            id_seen: Mutex::new(Vec::new()),
            identity: Mutex::new(Identity {
                email: Some(EMAIL.into()),
                project_id: Some("my-project".into()),
                numeric_project_id: Some(123456789012),
                universe_domain: Some("googleapis.com".into()),
            }),
        })
    }

    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn access_calls(&self) -> usize {
        self.access_calls.load(Ordering::SeqCst)
    }

    async fn answer(&self) -> Result<Duration, SourceError> {
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        match *self.mode.lock().unwrap() {
            Mode::Up => Ok(Duration::from_millis(
                self.lifetime_ms.load(Ordering::SeqCst),
            )),
            Mode::Down => Err(SourceError::Unavailable(
                "oauth2.googleapis.com answered HTTP 503".into(),
            )),
            Mode::Revoked => Err(SourceError::Permanent(
                "the refresh token was revoked; run `gemauth login`".into(),
            )),
        }
    }
}

struct Source(Arc<Fake>);

impl TokenSource for Source {
    async fn access_token(&self, scopes: &[String]) -> Result<AccessToken, SourceError> {
        let n = self.0.access_calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.scopes_seen.lock().unwrap().push(scopes.to_vec());
        let lifetime = self.0.answer().await?;
        Ok(AccessToken {
            token: Secret::new(format!("ya29.token-{n}")),
            expires_at: SystemTime::now() + lifetime,
            scopes: scopes.to_vec(),
        })
    }

    async fn id_token(&self, request: &IdTokenRequest) -> Result<IdToken, SourceError> {
        let n = self.0.id_calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.id_seen.lock().unwrap().push(request.clone());
        if request.audience == "unsupported" {
            return Err(SourceError::BadRequest(
                "this credential cannot mint ID tokens".into(),
            ));
        }
        let lifetime = self.0.answer().await?;
        let expires_at = SystemTime::now() + lifetime;
        let token = if self.0.real_jwt.load(Ordering::SeqCst) {
            unsigned_jwt(&request.audience, expires_at, n)
        } else {
            format!("eyJhbGciOiJSUzI1NiJ9.id-{n}.sig")
        };
        Ok(IdToken {
            token: Secret::new(token),
            expires_at,
        })
    }

    async fn identity(&self) -> Result<Identity, SourceError> {
        self.0.identity_calls.fetch_add(1, Ordering::SeqCst);
        self.0.answer().await?;
        Ok(self.0.identity.lock().unwrap().clone())
    }
}

/// A JWT with Google's claims and a dummy signature: what a client decodes (without checking
/// the signature) to learn the expiry.
fn unsigned_jwt(audience: &str, expires_at: SystemTime, n: usize) -> String {
    use base64::Engine;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
    };
    let exp = expires_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = b64(serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "fake"}));
    let claims = b64(serde_json::json!({
        "aud": audience, "azp": "1234567890", "email": EMAIL, "email_verified": true,
        "exp": exp, "iat": exp - 3600, "iss": "https://accounts.google.com",
        "sub": "1234567890", "n": n,
    }));
    format!("{header}.{claims}.c2lnbmF0dXJl")
}

struct Harness {
    addr: SocketAddr,
    fake: Arc<Fake>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<crate::error::Result<()>>,
}

impl Harness {
    async fn start(config: Config, fake: Arc<Fake>) -> Harness {
        let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let server = bind(loopback, config, Source(Arc::clone(&fake)))
            .await
            .unwrap();
        let addr = server.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        Harness {
            addr,
            fake,
            stop: Some(stop),
            task,
        }
    }

    async fn default() -> Harness {
        Harness::start(config(), Fake::new()).await
    }

    async fn get(&self, path: &str) -> Reply {
        get(self.addr, path).await
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
    }
}

fn config() -> Config {
    Config::new(vec![CLOUD_PLATFORM.to_string()])
}

/// A config for short-lived tokens.
fn short_config() -> Config {
    let mut config = config();
    config.min_lifetime = Duration::from_millis(200);
    config
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }

    /// 200 with GCE's headers and this content type.
    fn assert_ok(&self, content_type: &str) {
        assert_eq!(self.status, 200, "{self:?}");
        assert_eq!(self.header("metadata-flavor"), Some("Google"), "{self:?}");
        assert_eq!(self.header("content-type"), Some(content_type), "{self:?}");
    }
}

/// Sends raw bytes and reads the answer until the server closes the connection.
async fn send_raw(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes))
        .await
        .expect("the server answers and closes")
        .unwrap();
    parse_reply(&bytes)
}

fn parse_reply(bytes: &[u8]) -> Reply {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!(
            "no complete answer ({other:?}): {:?}",
            String::from_utf8_lossy(bytes)
        ),
    };
    Reply {
        status: response.code.unwrap(),
        headers: response
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&bytes[head_len..]).into_owned(),
    }
}

async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    send_raw(addr, raw.as_bytes()).await
}

/// A GET as Google's clients send it.
async fn get(addr: SocketAddr, path: &str) -> Reply {
    let host = addr.to_string();
    request(
        addr,
        "GET",
        path,
        &[("Host", &host), ("Metadata-Flavor", "Google")],
    )
    .await
}

const SA: &str = "/computeMetadata/v1/instance/service-accounts";

#[tokio::test]
async fn detection_requests_get_the_flavor_header() {
    let h = Harness::default().await;
    let root = h.get("/").await;
    root.assert_ok("application/text");
    assert_eq!(root.body, "computeMetadata/\n");
    let v1 = h.get("/computeMetadata/v1/").await;
    v1.assert_ok("application/text");
    assert_eq!(v1.body, "instance/\nproject/\nuniverse/\n");
    let instance = h.get("/computeMetadata/v1/instance/").await;
    instance.assert_ok("application/text");
    assert_eq!(instance.body, "service-accounts/\n");
    // Detection asks the token source nothing.
    assert_eq!(h.fake.access_calls(), 0);
    assert_eq!(h.fake.identity_calls.load(Ordering::SeqCst), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn directories_without_the_slash_redirect_keeping_the_query() {
    let h = Harness::default().await;
    for (path, location) in [
        ("/computeMetadata", "/computeMetadata/"),
        ("/computeMetadata/v1", "/computeMetadata/v1/"),
        (
            "/computeMetadata/v1/instance",
            "/computeMetadata/v1/instance/",
        ),
        (
            "/computeMetadata/v1/instance/service-accounts/default?recursive=true",
            "/computeMetadata/v1/instance/service-accounts/default/?recursive=true",
        ),
    ] {
        let reply = h.get(path).await;
        assert_eq!(reply.status, 301, "{path}: {reply:?}");
        assert_eq!(reply.header("location"), Some(location), "{path}");
        assert_eq!(reply.header("metadata-flavor"), Some("Google"));
    }
    // A value with a slash is not a directory.
    assert_eq!(h.get(&format!("{SA}/default/email/")).await.status, 404);
    h.shutdown().await;
}

#[tokio::test]
async fn service_accounts_are_listed_and_described_as_on_gce() {
    let h = Harness::default().await;
    let list = h.get(&format!("{SA}/")).await;
    list.assert_ok("application/text");
    assert_eq!(list.body, format!("default/\n{EMAIL}/\n"));

    let expected = serde_json::json!({
        "aliases": ["default"],
        "email": EMAIL,
        "scopes": [CLOUD_PLATFORM],
    });
    for account in [
        "default",
        EMAIL,
        "robot%40my-project.iam.gserviceaccount.com",
    ] {
        let reply = h.get(&format!("{SA}/{account}/?recursive=true")).await;
        reply.assert_ok("application/json");
        assert_eq!(reply.json(), expected, "{account}");
    }
    let all = h.get(&format!("{SA}/?recursive=true")).await;
    all.assert_ok("application/json");
    assert_eq!(
        all.json(),
        serde_json::json!({ "default": expected, EMAIL: expected })
    );

    let listing = h.get(&format!("{SA}/default/")).await;
    listing.assert_ok("application/text");
    assert_eq!(listing.body, "aliases\nemail\nidentity\nscopes\ntoken\n");

    let email = h.get(&format!("{SA}/default/email")).await;
    email.assert_ok("application/text");
    assert_eq!(email.body, EMAIL);
    let scopes = h.get(&format!("{SA}/default/scopes")).await;
    scopes.assert_ok("application/text");
    assert_eq!(scopes.body, format!("{CLOUD_PLATFORM}\n"));
    let aliases = h.get(&format!("{SA}/{EMAIL}/aliases")).await;
    aliases.assert_ok("application/text");
    assert_eq!(aliases.body, "default\n");

    // alt=json.
    let email = h.get(&format!("{SA}/default/email?alt=json")).await;
    email.assert_ok("application/json");
    assert_eq!(email.json(), serde_json::json!(EMAIL));
    let scopes = h.get(&format!("{SA}/default/scopes?alt=json")).await;
    assert_eq!(scopes.json(), serde_json::json!([CLOUD_PLATFORM]));
    let list = h.get(&format!("{SA}/?alt=json")).await;
    list.assert_ok("application/json");
    assert_eq!(
        list.json(),
        serde_json::json!(["default/", format!("{EMAIL}/")])
    );
    assert_eq!(h.get(&format!("{SA}/?alt=xml")).await.status, 400);
    assert_eq!(
        h.get(&format!("{SA}/?recursive=true&alt=text"))
            .await
            .status,
        400
    );

    // Another account is not there.
    assert_eq!(
        h.get(&format!("{SA}/other@x.iam.gserviceaccount.com/email"))
            .await
            .status,
        404
    );
    assert_eq!(
        h.get(&format!("{SA}/other@x.iam.gserviceaccount.com/token"))
            .await
            .status,
        404
    );
    assert_eq!(
        h.get(&format!("{SA}/other@x.iam.gserviceaccount.com/"))
            .await
            .status,
        404
    );
    // The identity was asked for once (then cached).
    assert_eq!(h.fake.identity_calls.load(Ordering::SeqCst), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn the_token_endpoint_answers_gce_json_from_the_cache() {
    let h = Harness::default().await;
    let reply = h.get(&format!("{SA}/default/token")).await;
    reply.assert_ok("application/json");
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let body = reply.json();
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["access_token", "expires_in", "token_type"]);
    assert_eq!(body["access_token"], "ya29.token-1");
    assert_eq!(body["token_type"], "Bearer");
    let expires_in = body["expires_in"].as_u64().unwrap();
    assert!((3595..=3600).contains(&expires_in), "{expires_in}");

    // The same token again, and for the account's email: one call to the source.
    let again = h.get(&format!("{SA}/{EMAIL}/token")).await.json();
    assert_eq!(again["access_token"], "ya29.token-1");
    assert_eq!(h.fake.access_calls(), 1);

    // ?scopes= is its own key, normalized; an empty list means the default scopes.
    let scoped = h
        .get(&format!(
            "{SA}/default/token?scopes=https://b.example/s,https://a.example/s,https://b.example/s"
        ))
        .await;
    assert_eq!(scoped.json()["access_token"], "ya29.token-2");
    let same = h
        .get(&format!(
            "{SA}/default/token?scopes=https://a.example/s,https://b.example/s"
        ))
        .await;
    assert_eq!(same.json()["access_token"], "ya29.token-2");
    let empty = h.get(&format!("{SA}/default/token?scopes=")).await;
    assert_eq!(empty.json()["access_token"], "ya29.token-1");
    assert_eq!(
        *h.fake.scopes_seen.lock().unwrap(),
        [
            vec![CLOUD_PLATFORM.to_string()],
            vec![
                "https://a.example/s".to_string(),
                "https://b.example/s".to_string()
            ]
        ]
    );
    assert_eq!(
        h.get(&format!("{SA}/default/token?scopes=a%20b"))
            .await
            .status,
        400
    );
    h.shutdown().await;
}

#[tokio::test]
async fn the_identity_endpoint_answers_the_jwt_as_text() {
    let h = Harness::default().await;
    let reply = h
        .get(&format!(
            "{SA}/default/identity?audience=https%3A%2F%2Fsvc.example&format=full&licenses=TRUE"
        ))
        .await;
    reply.assert_ok("application/text");
    assert_eq!(reply.body, "eyJhbGciOiJSUzI1NiJ9.id-1.sig");
    let plain = h
        .get(&format!(
            "{SA}/default/identity?audience=https://svc.example"
        ))
        .await;
    assert_eq!(plain.body, "eyJhbGciOiJSUzI1NiJ9.id-2.sig");
    let cached = h
        .get(&format!(
            "{SA}/default/identity?audience=https://svc.example&format=standard&licenses=FALSE"
        ))
        .await;
    assert_eq!(cached.body, "eyJhbGciOiJSUzI1NiJ9.id-2.sig");
    assert_eq!(
        *h.fake.id_seen.lock().unwrap(),
        [
            IdTokenRequest {
                audience: "https://svc.example".into(),
                format: IdTokenFormat::Full,
                licenses: true
            },
            IdTokenRequest {
                audience: "https://svc.example".into(),
                format: IdTokenFormat::Standard,
                licenses: false
            },
        ]
    );
    for bad in [
        "identity",
        "identity?audience=",
        "identity?audience=x&format=compact",
        "identity?audience=x&licenses=maybe",
    ] {
        let reply = h.get(&format!("{SA}/default/{bad}")).await;
        assert_eq!(reply.status, 400, "{bad}: {reply:?}");
        assert_eq!(reply.header("metadata-flavor"), Some("Google"));
    }
    let unsupported = h
        .get(&format!("{SA}/default/identity?audience=unsupported"))
        .await;
    assert_eq!(unsupported.status, 400);
    assert_eq!(unsupported.body, "this credential cannot mint ID tokens\n");
    h.shutdown().await;
}

#[tokio::test]
async fn project_values_are_served_when_known_and_404_otherwise() {
    let h = Harness::default().await;
    let id = h.get("/computeMetadata/v1/project/project-id").await;
    id.assert_ok("application/text");
    assert_eq!(id.body, "my-project");
    let number = h
        .get("/computeMetadata/v1/project/numeric-project-id")
        .await;
    number.assert_ok("application/text");
    assert_eq!(number.body, "123456789012");
    let number = h
        .get("/computeMetadata/v1/project/numeric-project-id?alt=json")
        .await;
    assert_eq!(number.json(), serde_json::json!(123456789012u64));
    let project = h.get("/computeMetadata/v1/project/?recursive=true").await;
    assert_eq!(
        project.json(),
        serde_json::json!({"numericProjectId": 123456789012u64, "projectId": "my-project"})
    );
    let universe = h.get("/computeMetadata/v1/universe/universe-domain").await;
    assert_eq!(universe.body, "googleapis.com");
    let everything = h.get("/computeMetadata/v1/?recursive=true").await;
    everything.assert_ok("application/json");
    assert_eq!(
        everything.json()["instance"]["serviceAccounts"]["default"]["email"],
        EMAIL
    );
    assert_eq!(everything.json()["project"]["projectId"], "my-project");
    h.shutdown().await;

    // Nothing known: 404 (the alias stands in for the email).
    let fake = Fake::new();
    *fake.identity.lock().unwrap() = Identity::default();
    let h = Harness::start(config(), fake).await;
    for path in [
        "/computeMetadata/v1/project/project-id",
        "/computeMetadata/v1/project/numeric-project-id",
        "/computeMetadata/v1/universe/universe-domain",
    ] {
        assert_eq!(h.get(path).await.status, 404, "{path}");
    }
    assert_eq!(h.get("/computeMetadata/v1/project/").await.body, "");
    assert_eq!(h.get(&format!("{SA}/")).await.body, "default/\n");
    assert_eq!(h.get(&format!("{SA}/default/email")).await.body, "default");
    h.shutdown().await;

    // --project overrides the source's project, and drops its number.
    let mut config = config();
    config.project_id = Some("other-project".into());
    let h = Harness::start(config, Fake::new()).await;
    assert_eq!(
        h.get("/computeMetadata/v1/project/project-id").await.body,
        "other-project"
    );
    assert_eq!(
        h.get("/computeMetadata/v1/project/numeric-project-id")
            .await
            .status,
        404
    );
    h.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_get_404() {
    let h = Harness::default().await;
    for path in [
        "/computeMetadata/v1/instance/zone",
        "/computeMetadata/v1beta1/",
        "/favicon.ico",
        "/computeMetadata/v1/instance/service-accounts/default/token/x",
        "/computeMetadata//v1/",
    ] {
        let reply = h.get(path).await;
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(reply.header("metadata-flavor"), Some("Google"), "{path}");
    }
    h.shutdown().await;
}

/// Request headers, name and value.
type Headers<'a> = Vec<(&'a str, &'a str)>;

#[tokio::test]
async fn requests_without_the_flavor_through_a_proxy_or_from_a_web_page_are_refused() {
    let h = Harness::default().await;
    let host = h.addr.to_string();
    let token = format!("{SA}/default/token");
    let cases: Vec<(&str, Headers, u16)> = vec![
        ("GET", vec![("Host", &host)], 403),
        (
            "GET",
            vec![("Host", &host), ("Metadata-Flavor", "Googlez")],
            403,
        ),
        (
            "GET",
            vec![
                ("Host", &host),
                ("Metadata-Flavor", "Google"),
                ("X-Forwarded-For", "10.0.0.9"),
            ],
            403,
        ),
        (
            "GET",
            vec![
                ("Host", "attacker.example:8169"),
                ("Metadata-Flavor", "Google"),
            ],
            403,
        ),
        (
            "POST",
            vec![
                ("Host", &host),
                ("Metadata-Flavor", "Google"),
                ("Content-Length", "0"),
            ],
            405,
        ),
        (
            "PUT",
            vec![
                ("Host", &host),
                ("Metadata-Flavor", "Google"),
                ("Content-Length", "0"),
            ],
            405,
        ),
    ];
    for (method, headers, status) in cases {
        let reply = request(h.addr, method, &token, &headers).await;
        assert_eq!(reply.status, status, "{method} {headers:?}: {reply:?}");
        assert_eq!(reply.header("metadata-flavor"), Some("Google"));
        assert!(!reply.body.contains("ya29"), "{reply:?}");
        if status == 405 {
            assert_eq!(reply.header("allow"), Some("GET"));
        }
    }
    assert_eq!(h.fake.access_calls(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn oversized_heads_are_refused() {
    let h = Harness::default().await;
    let big = "x".repeat(20 * 1024);
    let reply = request(
        h.addr,
        "GET",
        "/",
        &[("Metadata-Flavor", "Google"), ("X-Big", &big)],
    )
    .await;
    assert_eq!(reply.status, 431, "{reply:?}");
    let names: Vec<String> = (0..100).map(|i| format!("X-H{i}")).collect();
    let mut headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    headers.push(("Metadata-Flavor", "Google"));
    let reply = request(h.addr, "GET", "/", &headers).await;
    assert_eq!(reply.status, 431, "{reply:?}");
    let long_path = format!("/{}", "a".repeat(20 * 1024));
    let reply = request(h.addr, "GET", &long_path, &[("Metadata-Flavor", "Google")]).await;
    assert!(reply.status == 431 || reply.status == 414, "{reply:?}");
    // The server still answers.
    h.get("/").await.assert_ok("application/text");
    h.shutdown().await;
}

/// Reads until the server closes the connection; returns how long that took.
async fn time_until_closed(mut stream: TcpStream) -> Duration {
    let started = tokio::time::Instant::now();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut sink))
        .await
        .expect("the server closes the connection");
    started.elapsed()
}

#[tokio::test]
async fn slow_and_idle_clients_are_cut_off() {
    let mut config = config();
    config.header_read_timeout = Duration::from_millis(300);
    config.idle_timeout = Duration::from_millis(600);
    // The idle limit is never below a request's own limit (the wait plus 2 × 0.5 s).
    config.wait_timeout = Duration::from_millis(100);
    let h = Harness::start(config, Fake::new()).await;

    // A head that never ends.
    let mut slow = TcpStream::connect(h.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nMetadata-Flavor: Go")
        .await
        .unwrap();
    let took = time_until_closed(slow).await;
    assert!(took < Duration::from_secs(3), "{took:?}");

    // A connection that says nothing.
    let silent = TcpStream::connect(h.addr).await.unwrap();
    let took = time_until_closed(silent).await;
    assert!(took < Duration::from_secs(3), "{took:?}");

    // A kept-alive connection that goes idle after its request.
    let mut idle = TcpStream::connect(h.addr).await.unwrap();
    let raw = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nMetadata-Flavor: Google\r\n\r\n",
        h.addr
    );
    idle.write_all(raw.as_bytes()).await.unwrap();
    let took = time_until_closed(idle).await;
    assert!(took < Duration::from_secs(3), "{took:?}");
    h.shutdown().await;
}

#[tokio::test]
async fn when_every_connection_slot_is_taken_clients_get_a_quick_503() {
    let mut config = config();
    config.max_connections = 2;
    let h = Harness::start(config, Fake::new()).await;
    // Two kept-alive connections hold both slots.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(h.addr).await.unwrap();
        let raw = format!(
            "GET / HTTP/1.1\r\nHost: {}\r\nMetadata-Flavor: Google\r\n\r\n",
            h.addr
        );
        stream.write_all(raw.as_bytes()).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(stream);
    }
    let started = tokio::time::Instant::now();
    let busy = h.get("/").await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(busy.status, 503, "{busy:?}");
    assert_eq!(busy.header("metadata-flavor"), Some("Google"));
    assert_eq!(busy.body, "Too many connections to the metadata server.\n");
    // A slot freed is a slot served.
    drop(held.pop());
    let mut ok = None;
    for _ in 0..20 {
        let reply = h.get("/").await;
        if reply.status == 200 {
            ok = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ok.expect("served once a slot is free")
        .assert_ok("application/text");
    h.shutdown().await;
}

#[tokio::test]
async fn the_idle_limit_does_not_cut_a_request_waiting_for_its_token() {
    let fake = Fake::new();
    fake.delay_ms.store(1_200, Ordering::SeqCst);
    let mut config = config();
    config.idle_timeout = Duration::from_millis(200);
    config.wait_timeout = Duration::from_secs(3);
    let h = Harness::start(config, fake).await;
    let reply = h.get(&format!("{SA}/default/token")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    h.shutdown().await;
}

#[tokio::test]
async fn warm_up_fetches_what_the_first_client_needs_or_says_why_not() {
    let fake = Fake::new();
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = bind(loopback, config(), Source(Arc::clone(&fake)))
        .await
        .unwrap();
    server.warm_up().await.unwrap();
    assert_eq!(fake.access_calls(), 1);
    assert_eq!(fake.identity_calls.load(Ordering::SeqCst), 1);
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));
    // Python's Credentials asks for the account's scopes explicitly: the same cache entry.
    let reply = get(addr, &format!("{SA}/default/token?scopes={CLOUD_PLATFORM}")).await;
    assert_eq!(reply.json()["access_token"], "ya29.token-1");
    get(addr, &format!("{SA}/default/?recursive=true"))
        .await
        .assert_ok("application/json");
    assert_eq!(fake.access_calls(), 1);
    assert_eq!(fake.identity_calls.load(Ordering::SeqCst), 1);
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();

    let fake = Fake::new();
    fake.set_mode(Mode::Revoked);
    let server = bind(loopback, config(), Source(fake)).await.unwrap();
    assert_eq!(
        server.warm_up().await.unwrap_err(),
        "the credential cannot be used: the refresh token was revoked; run `gemauth login`"
    );
}

#[tokio::test]
async fn tokens_are_refreshed_in_the_background_before_they_expire() {
    let fake = Fake::new();
    fake.lifetime_ms.store(3_000, Ordering::SeqCst);
    let h = Harness::start(short_config(), fake).await;
    let first = h.get(&format!("{SA}/default/token")).await.json();
    assert_eq!(first["access_token"], "ya29.token-1");
    // The margin is half the lifetime here: the refresh runs at 1.5 s with no request waiting.
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    assert_eq!(h.fake.access_calls(), 2);
    let started = tokio::time::Instant::now();
    let second = h.get(&format!("{SA}/default/token")).await.json();
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(second["access_token"], "ya29.token-2");
    assert!(second["expires_in"].as_u64().unwrap() >= 2, "{second}");
    h.shutdown().await;
}

#[tokio::test]
async fn while_the_source_is_down_the_cached_token_is_served_until_it_expires() {
    let fake = Fake::new();
    fake.lifetime_ms.store(3_000, Ordering::SeqCst);
    let h = Harness::start(short_config(), fake).await;
    let token = format!("{SA}/default/token");
    assert_eq!(h.get(&token).await.json()["access_token"], "ya29.token-1");
    h.fake.set_mode(Mode::Down);
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    // The background refresh failed; the cached token is still good for about a second.
    assert!(h.fake.access_calls() >= 2);
    let cached = h.get(&token).await;
    assert_eq!(cached.status, 200, "{cached:?}");
    assert_eq!(cached.json()["access_token"], "ya29.token-1");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    // Expired: never handed out; the reason instead.
    let down = h.get(&token).await;
    assert_eq!(down.status, 503, "{down:?}");
    assert_eq!(down.header("metadata-flavor"), Some("Google"));
    assert_eq!(
        down.body,
        "The token source is unavailable: oauth2.googleapis.com answered HTTP 503\n"
    );
    // Back up: the next request after the backoff gets a new token.
    h.fake.set_mode(Mode::Up);
    let mut recovered = None;
    for _ in 0..40 {
        let reply = h.get(&token).await;
        if reply.status == 200 {
            recovered = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let recovered = recovered.expect("a token once the source is back");
    assert_ne!(recovered.json()["access_token"], "ya29.token-1");
    h.shutdown().await;
}

#[tokio::test]
async fn a_revoked_credential_stops_the_cached_token_at_once() {
    let fake = Fake::new();
    fake.lifetime_ms.store(3_000, Ordering::SeqCst);
    let h = Harness::start(short_config(), fake).await;
    let token = format!("{SA}/default/token");
    assert_eq!(h.get(&token).await.status, 200);
    h.fake.set_mode(Mode::Revoked);
    // The background refresh at 1.5 s learns of the revocation.
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let reply = h.get(&token).await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(
        reply.body,
        "The credential cannot be used: the refresh token was revoked; run `gemauth login`\n"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn concurrent_requests_share_one_refresh() {
    let fake = Fake::new();
    fake.delay_ms.store(300, Ordering::SeqCst);
    let h = Harness::start(config(), fake).await;
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let addr = h.addr;
        requests.spawn(async move { get(addr, &format!("{SA}/default/token")).await });
    }
    let mut tokens = Vec::new();
    while let Some(reply) = requests.join_next().await {
        let reply = reply.unwrap();
        assert_eq!(reply.status, 200, "{reply:?}");
        tokens.push(reply.json()["access_token"].as_str().unwrap().to_string());
    }
    assert_eq!(tokens.len(), 50);
    assert!(tokens.iter().all(|t| t == "ya29.token-1"), "{tokens:?}");
    assert_eq!(h.fake.access_calls(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn a_slow_source_gets_a_503_in_time_and_the_token_is_kept_for_the_retry() {
    let fake = Fake::new();
    fake.delay_ms.store(1_000, Ordering::SeqCst);
    let mut config = config();
    config.wait_timeout = Duration::from_millis(300);
    let h = Harness::start(config, fake).await;
    let token = format!("{SA}/default/token");
    let started = tokio::time::Instant::now();
    let slow = h.get(&token).await;
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(slow.status, 503, "{slow:?}");
    assert!(slow.body.starts_with("No token within 0.3 s"), "{slow:?}");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let retry = h.get(&token).await;
    assert_eq!(retry.json()["access_token"], "ya29.token-1");
    assert_eq!(h.fake.access_calls(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_requests_in_progress_finish_then_stops_listening() {
    let fake = Fake::new();
    fake.delay_ms.store(500, Ordering::SeqCst);
    let h = Harness::start(config(), fake).await;
    let addr = h.addr;
    let in_flight = tokio::spawn(async move { get(addr, &format!("{SA}/default/token")).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    h.shutdown().await;
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["access_token"], "ya29.token-1");
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
}

#[tokio::test]
async fn keep_alive_connections_serve_several_requests() {
    let h = Harness::default().await;
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    let raw = format!(
        "GET {SA}/default/token HTTP/1.1\r\nHost: {0}\r\nMetadata-Flavor: Google\r\n\r\n\
         GET {SA}/default/email HTTP/1.1\r\nHost: {0}\r\nMetadata-Flavor: Google\r\nConnection: close\r\n\r\n",
        h.addr
    );
    stream.write_all(raw.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    assert!(text.ends_with(EMAIL), "{text}");
    h.shutdown().await;
}

/// Log output captured in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_request_log_has_one_line_per_request_and_no_token() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("gemauth=debug"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The test's runtime runs every task on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);
    let h = Harness::default().await;
    h.get(&format!("{SA}/default/token?scopes={CLOUD_PLATFORM}"))
        .await
        .assert_ok("application/json");
    h.get(&format!(
        "{SA}/default/identity?audience=https://private.example&format=full"
    ))
    .await
    .assert_ok("application/text");
    assert_eq!(request(h.addr, "GET", "/", &[]).await.status, 403);
    h.shutdown().await;

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("metadata server request"))
        .collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(lines[0].contains("method=GET"), "{log}");
    assert!(
        lines[0].contains("path=/computeMetadata/v1/instance/service-accounts/default/token"),
        "{log}"
    );
    assert!(
        lines[0].contains("query=scopes=…") && lines[0].contains("status=200"),
        "{log}"
    );
    assert!(lines[0].contains("latency_us="), "{log}");
    assert!(lines[1].contains("query=audience=…&format=…"), "{log}");
    assert!(lines[2].contains("status=403"), "{log}");
    for secret in ["ya29.", "eyJ", "private.example", "googleapis.com/auth"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

#[test]
fn log_lines_name_query_parameters_without_their_values() {
    assert_eq!(
        super::query_names(Some("audience=https://secret.example&format=full")),
        "audience=…&format=…"
    );
    assert_eq!(super::query_names(None), "");
}

/// Serves the fake source for a real client run by hand
/// (tests/interop/metadata_server/README.md):
/// `GEMAUTH_MDS_INTEROP_ADDR` (default 127.0.0.1:8169) for `GEMAUTH_MDS_INTEROP_SECS` seconds
/// (default 60), then prints how often each source method was called.
#[tokio::test]
#[ignore = "serves a fake source for clients run by hand: tests/interop/metadata_server"]
async fn interop_server() {
    let addr: SocketAddr = std::env::var("GEMAUTH_MDS_INTEROP_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:8169".into())
        .parse()
        .expect("GEMAUTH_MDS_INTEROP_ADDR is ADDR:PORT");
    let secs: u64 = std::env::var("GEMAUTH_MDS_INTEROP_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let fake = Fake::new();
    fake.real_jwt.store(true, Ordering::SeqCst);
    fake.identity.lock().unwrap().project_id = Some("interop-project".into());
    let server = bind(addr, config(), Source(Arc::clone(&fake)))
        .await
        .unwrap();
    eprintln!(
        "interop: serving on {} for {secs} s",
        server.local_addr().unwrap()
    );
    server
        .serve(tokio::time::sleep(Duration::from_secs(secs)))
        .await
        .unwrap();
    eprintln!(
        "interop: source calls: access_token={} id_token={} identity={}",
        fake.access_calls(),
        fake.id_calls.load(Ordering::SeqCst),
        fake.identity_calls.load(Ordering::SeqCst)
    );
    eprintln!(
        "interop: ID tokens asked for: {:?}",
        fake.id_seen.lock().unwrap()
    );
}
