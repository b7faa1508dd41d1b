//! Interoperability with an OpenID-certified authorization server that nobody here wrote:
//! panva/oidc-provider (npm), configured like Google for a Desktop client
//! (`tests/interop/oidc_server.mjs`). The test plays the user's browser through the server's
//! development login and consent pages, cookies included.
//!
//! Needs `node` and `tests/interop/node_modules` (`npm ci --prefix tests/interop`). Without them
//! the tests are ignored (the runner, runner.rs), unless `GEMAUTH_REQUIRE_INTEROP=1` (set by `.ci/run`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::harness::*;
use crate::runner::{Trial, interop_dir, trials};

const CLIENT_ID: &str = "gemauth-interop.apps.googleusercontent.com";
const CLIENT_SECRET: &str = "GOCSPX-interop-secret";
const USER: &str = "alice";

/// The running oidc-provider; it exits when its standard input closes (on drop).
struct OidcServer {
    child: Child,
    issuer: String,
}

impl Drop for OidcServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OidcServer {
    fn start(rotate: bool) -> Self {
        let installed = interop_dir()
            .join("node_modules/oidc-provider/package.json")
            .exists();
        assert!(
            installed,
            "oidc-provider is not installed: run `npm ci --prefix tests/interop`"
        );
        let mut cmd = Command::new("node");
        cmd.arg(interop_dir().join("oidc_server.mjs"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if rotate {
            cmd.arg("--rotate");
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run node (`bash .ci/run` installs it): {e}"));
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        // Keep draining: the server must never write into a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let started: serde_json::Value = serde_json::from_str(&line).expect("server started");
        OidcServer {
            child,
            issuer: started["issuer"].as_str().unwrap().to_string(),
        }
    }

    fn client_json(&self) -> serde_json::Value {
        serde_json::json!({"installed": {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "project_id": "interop-project",
            "auth_uri": format!("{}/auth", self.issuer),
            "token_uri": format!("{}/token", self.issuer),
            "revoke_uri": format!("{}/token/revocation", self.issuer),
            "redirect_uris": ["http://localhost"],
        }})
    }

    /// POSTs `token` with the client's credentials to one of the server's token endpoints.
    fn post_token(&self, path: &str, token: &str) -> Page {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .append_pair("client_id", CLIENT_ID)
            .append_pair("client_secret", CLIENT_SECRET)
            .finish();
        let resp = Browser::default().send("POST", &format!("{}{path}", self.issuer), Some(&body));
        assert_eq!(resp.status, 200, "{}", resp.body);
        resp
    }

    /// RFC 7662 introspection: is this token active?
    fn active(&self, token: &str) -> bool {
        let resp = self.post_token("/token/introspection", token);
        let v: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
        v["active"].as_bool().unwrap()
    }

    /// RFC 7009 revocation, as if done elsewhere (another tool, the account page).
    fn revoke(&self, token: &str) {
        self.post_token("/token/revocation", token);
    }
}

/// A browser with a cookie jar, speaking HTTP/1.0 (no chunked bodies) over plain sockets.
#[derive(Default)]
struct Browser {
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn send(&mut self, method: &str, url: &str, form: Option<&str>) -> Page {
        let url = url::Url::parse(url).unwrap();
        let host = url.host_str().unwrap();
        let port = url.port_or_known_default().unwrap();
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let mut request = format!("{method} {target} HTTP/1.0\r\nHost: {host}:{port}\r\n");
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            request.push_str(&format!("Cookie: {}\r\n", jar.join("; ")));
        }
        if let Some(body) = form {
            request.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        request.push_str(form.unwrap_or_default());
        let page = raw_request(host, port, &request);
        for (k, v) in &page.header_lines {
            if k == "set-cookie" {
                let pair = v.split(';').next().unwrap_or_default();
                if let Some((name, value)) = pair.split_once('=') {
                    self.cookies.retain(|(n, _)| n != name);
                    if !value.is_empty() {
                        self.cookies.push((name.to_string(), value.to_string()));
                    }
                }
            }
        }
        page
    }

    /// Signs in and answers the consent page (approving or aborting) until the server redirects
    /// to the loopback address; returns that redirect address without visiting it.
    fn authorize(&mut self, auth_url: &str, approve: bool) -> String {
        let mut next = (String::from("GET"), auth_url.to_string(), None::<String>);
        for _ in 0..20 {
            let (method, url, form) = next.clone();
            let resp = self.send(&method, &url, form.as_deref());
            if let Some(location) = resp.headers.get("location") {
                let target = url::Url::parse(&url)
                    .unwrap()
                    .join(location)
                    .unwrap()
                    .to_string();
                if target.starts_with("http://127.0.0.1:") && !target.starts_with(&origin(&url)) {
                    return target;
                }
                next = ("GET".into(), target, None);
                continue;
            }
            assert_eq!(resp.status, 200, "{url}: {}", resp.body);
            if resp.body.contains("name=\"login\"") {
                next = (
                    "POST".into(),
                    url,
                    Some(format!("prompt=login&login={USER}&password=any")),
                );
            } else if resp.body.contains("value=\"consent\"") {
                if approve {
                    next = ("POST".into(), url, Some("prompt=consent".into()));
                } else {
                    next = ("GET".into(), format!("{url}/abort"), None);
                }
            } else {
                panic!("unexpected page at {url}: {}", resp.body);
            }
        }
        panic!("the authorization never redirected back");
    }
}

fn origin(url: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    format!(
        "{}://{}:{}",
        u.scheme(),
        u.host_str().unwrap(),
        u.port_or_known_default().unwrap()
    )
}

fn write_client(env: &TestEnv, server: &OidcServer) -> PathBuf {
    env.write_client(&server.client_json())
}

fn login(env: &TestEnv, server: &OidcServer) -> Finished {
    let client = write_client(env, server);
    let mut cmd = env.cmd();
    cmd.args(["login", "--client-id-file"]).arg(&client);
    let run = Running::spawn(cmd, env.path("browser-args"));
    let redirect = Browser::default().authorize(&run.browser_url(), true);
    let page = http_get(&redirect);
    assert_eq!(page.status, 200, "{}", page.body);
    let done = run.finish();
    assert_eq!(done.code(), 0, "{}", done.stderr);
    done
}

fn refresh_token(env: &TestEnv) -> String {
    read_json(&env.adc_path())["refresh_token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn loopback_login_then_cached_and_refreshed_tokens() {
    let server = OidcServer::start(false);
    let env = TestEnv::new();
    let done = login(&env, &server);
    assert!(!done.stderr.contains("not granted"), "{}", done.stderr);
    let written = read_json(&env.adc_path());
    assert_eq!(written["type"], "authorized_user");
    assert_eq!(written["account"], format!("{USER}@example.com"));
    assert_eq!(written["token_uri"], format!("{}/token", server.issuer));
    let rt = refresh_token(&env);
    assert!(server.active(&rt));

    let first = env.run(&["print-access-token"]);
    assert_eq!(first.code(), 0, "{}", first.stderr);
    let cached = env.run(&["print-access-token"]);
    assert_eq!(cached.stdout, first.stdout, "the cached token is reused");
    let token = first.stdout.trim().to_string();
    assert!(server.active(&token));

    env.expire_cache();
    let refreshed = env.run(&["print-access-token"]);
    assert_eq!(refreshed.code(), 0, "{}", refreshed.stderr);
    let new_token = refreshed.stdout.trim().to_string();
    assert_ne!(new_token, token);
    assert!(server.active(&new_token));
    assert_eq!(refresh_token(&env), rt, "no rotation configured");
}

fn pasted_redirect_url_login() {
    let server = OidcServer::start(false);
    let env = TestEnv::new();
    let client = write_client(&env, &server);
    let mut cmd = env.cmd();
    cmd.args(["login", "--no-browser", "--client-id-file"])
        .arg(&client);
    let mut run = Running::spawn_interactive(cmd, env.path("browser-args"));
    run.wait_stderr("Paste the address");
    let redirect = Browser::default().authorize(&run.printed_url(), true);
    assert!(
        redirect.contains("iss="),
        "oidc-provider sends iss: {redirect}"
    );
    run.paste(&redirect);
    let done = run.finish();
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(server.active(&refresh_token(&env)));
}

fn rotated_refresh_tokens_are_saved() {
    let server = OidcServer::start(true);
    let env = TestEnv::new();
    login(&env, &server);
    let before = refresh_token(&env);
    env.expire_cache();
    let done = env.run(&["print-access-token"]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let after = refresh_token(&env);
    assert_ne!(after, before, "the server rotated the refresh token");
    assert!(server.active(&after));
    assert!(!server.active(&before));
    env.expire_cache();
    let again = env.run(&["print-access-token"]);
    assert_eq!(again.code(), 0, "{}", again.stderr);
}

fn revoke_makes_the_grant_inactive() {
    let server = OidcServer::start(false);
    let env = TestEnv::new();
    login(&env, &server);
    let rt = refresh_token(&env);
    let done = env.run(&["revoke"]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(done.stderr.contains("Revoked"), "{}", done.stderr);
    assert!(!server.active(&rt));
    assert!(!env.adc_path().exists());
}

fn out_of_band_revocation_exits_3_and_keeps_the_file() {
    let server = OidcServer::start(false);
    let env = TestEnv::new();
    login(&env, &server);
    server.revoke(&refresh_token(&env));
    let before = std::fs::read(env.adc_path()).unwrap();
    env.expire_cache();
    let done = env.run(&["print-access-token"]);
    assert_eq!(done.code(), 3, "{}", done.stderr);
    assert!(done.stderr.contains("invalid_grant"), "{}", done.stderr);
    assert_eq!(done.stdout, "");
    assert_eq!(std::fs::read(env.adc_path()).unwrap(), before);
}

fn denied_consent_fails_the_login() {
    let server = OidcServer::start(false);
    let env = TestEnv::new();
    let client = write_client(&env, &server);
    let mut cmd = env.cmd();
    cmd.args(["login", "--client-id-file"]).arg(&client);
    let run = Running::spawn(cmd, env.path("browser-args"));
    let redirect = Browser::default().authorize(&run.browser_url(), false);
    let page = http_get(&redirect);
    assert!(page.body.contains("access_denied"), "{}", page.body);
    let done = run.finish();
    assert_eq!(done.code(), 1);
    assert!(done.stderr.contains("access_denied"), "{}", done.stderr);
    assert!(done.stderr.contains("End-User aborted interaction"));
    assert!(!env.adc_path().exists());
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        loopback_login_then_cached_and_refreshed_tokens => OidcProvider,
        pasted_redirect_url_login => OidcProvider,
        rotated_refresh_tokens_are_saved => OidcProvider,
        revoke_makes_the_grant_inactive => OidcProvider,
        out_of_band_revocation_exits_3_and_keeps_the_file => OidcProvider,
        denied_consent_fails_the_login => OidcProvider,
    ]
}
