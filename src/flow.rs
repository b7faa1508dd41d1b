//! The authorization-code flow of an installed app: PKCE and `state`, the authorization URL,
//! opening the browser, and the loopback listener that receives the redirect.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use url::Url;

use crate::credentials::ClientConfig;
use crate::error::{Error, Result, sanitize};

/// Largest request head the listener reads from a browser.
const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// How long one connection may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the loopback listener on 127.0.0.1, on `port` or an ephemeral one. The socket is kept
/// until the login ends, so the redirect URI cannot be taken over by another program.
pub fn bind(port: Option<u16>) -> Result<StdListener> {
    let requested = port.unwrap_or(0);
    let listener =
        StdListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, requested))).map_err(|e| {
            Error::PortUnavailable {
                port: requested,
                reason: match e.kind() {
                    std::io::ErrorKind::AddrInUse => "it is already in use".into(),
                    _ => e.to_string(),
                },
            }
        })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::Internal(format!("cannot configure the listener: {e}")))?;
    Ok(listener)
}

/// The redirect URI for a listener's port: exactly `http://127.0.0.1:PORT/`.
pub fn redirect_uri(port: u16) -> String {
    format!("http://127.0.0.1:{port}/")
}

/// One authorization attempt: the URL to open and the secrets to check the answer against.
pub struct AuthorizationRequest {
    pub url: Url,
    pub state: CsrfToken,
    pub verifier: PkceCodeVerifier,
    pub redirect_uri: String,
}

/// Builds the authorization URL: code flow, PKCE S256, a fresh 256-bit `state`, offline access
/// and forced consent so that a refresh token is issued.
pub fn authorization_request(
    client: &ClientConfig,
    scopes: &[String],
    redirect_uri: String,
) -> Result<AuthorizationRequest> {
    let redirect = RedirectUrl::new(redirect_uri.clone())
        .map_err(|e| Error::Internal(format!("bad redirect URI: {e}")))?;
    let oauth = BasicClient::new(ClientId::new(client.client_id.clone()))
        .set_auth_uri(AuthUrl::from_url(client.auth_uri.clone()))
        .set_redirect_uri(redirect);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = oauth
        .authorize_url(|| CsrfToken::new_random_len(32))
        .add_scopes(scopes.iter().cloned().map(Scope::new))
        .set_pkce_challenge(challenge)
        .add_extra_param("access_type", "offline")
        .add_extra_param("prompt", "consent")
        .url();
    Ok(AuthorizationRequest {
        url,
        state,
        verifier,
        redirect_uri,
    })
}

/// Opens the authorization URL: `$BROWSER` if set (split into words like a shell would, `%s`
/// replaced by the URL or the URL appended), else the system's default browser. Returns why it
/// failed, if it did; a failure never ends the login.
pub fn open_browser(url: &str) -> std::result::Result<(), String> {
    match std::env::var("BROWSER") {
        Ok(cmd) if !cmd.trim().is_empty() => run_browser_command(&cmd, url),
        _ => open::that_detached(url).map_err(|e| e.to_string()),
    }
}

fn run_browser_command(cmd: &str, url: &str) -> std::result::Result<(), String> {
    let mut words = shell_words::split(cmd).map_err(|e| format!("cannot parse $BROWSER ({e})"))?;
    if words.is_empty() {
        return Err("$BROWSER is empty".into());
    }
    if words.iter().any(|w| w.contains("%s")) {
        for w in &mut words {
            *w = w.replace("%s", url);
        }
    } else {
        words.push(url.to_string());
    }
    std::process::Command::new(&words[0])
        .args(&words[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| format!("cannot start {:?} ({e})", words[0]))
}

/// What one request to the loopback listener means.
#[derive(Debug, PartialEq, Eq)]
pub enum Callback {
    /// The redirect carrying the authorization code.
    Code(String),
    /// The redirect carrying an error (e.g. the user denied access).
    Denied {
        error: String,
        description: Option<String>,
    },
    /// Anything else: the listener answers with an error and keeps waiting.
    Ignored { status: u16, reason: &'static str },
}

/// Interprets a request target (`/?code=…&state=…`) against the expected `state`. Only the
/// callback path `/` with exactly one matching `state` can end the login.
pub fn parse_callback(target: &str, expected_state: &str) -> Callback {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != "/" {
        return Callback::Ignored {
            status: 404,
            reason: "This address is not part of the sign-in.",
        };
    }
    let mut params: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        params
            .entry(k.into_owned())
            .or_default()
            .push(v.into_owned());
    }
    let single = |name: &str| -> std::result::Result<Option<&str>, ()> {
        match params.get(name).map(Vec::as_slice) {
            None => Ok(None),
            Some([one]) => Ok(Some(one.as_str())),
            Some(_) => Err(()),
        }
    };
    let stale = Callback::Ignored {
        status: 400,
        reason: "This sign-in response does not belong to the login that is waiting (missing or wrong state). Return to the terminal.",
    };
    match single("state") {
        Ok(Some(s)) if constant_time_eq(s.as_bytes(), expected_state.as_bytes()) => {}
        _ => return stale,
    }
    match (single("code"), single("error")) {
        (Err(()), _) | (_, Err(())) => Callback::Ignored {
            status: 400,
            reason: "The sign-in response repeats a parameter.",
        },
        (_, Ok(Some(error))) => Callback::Denied {
            error: sanitize(error),
            description: single("error_description")
                .ok()
                .flatten()
                .map(sanitize)
                .filter(|d| !d.is_empty()),
        },
        (Ok(Some(code)), Ok(None)) if !code.is_empty() => Callback::Code(code.to_string()),
        _ => Callback::Ignored {
            status: 400,
            reason: "The sign-in response carries no authorization code.",
        },
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The final result of a login attempt through the listener.
pub enum Outcome {
    Code(AuthorizationCode),
    Denied {
        error: String,
        description: Option<String>,
    },
}

/// Waits until the browser delivers the redirect with the right `state`, or `timeout` passes.
/// Every connection is served on its own task, so an idle or slow connection (browsers open
/// speculative ones) never blocks the real redirect.
pub async fn wait_for_redirect(
    listener: StdListener,
    state: &CsrfToken,
    timeout: Duration,
) -> Result<Outcome> {
    let listener = TcpListener::from_std(listener)
        .map_err(|e| Error::Internal(format!("cannot use the listener: {e}")))?;
    let (tx, mut rx) = mpsc::channel::<Outcome>(4);
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    let tx = tx.clone();
                    let expected = state.secret().clone();
                    tokio::spawn(async move {
                        if let Some(outcome) = serve(stream, &expected).await {
                            let _ = tx.send(outcome).await;
                        }
                    });
                }
            }
            Some(outcome) = rx.recv() => return Ok(outcome),
            () = &mut deadline => return Err(Error::LoginTimeout { secs: timeout.as_secs() }),
        }
    }
}

/// Serves one connection: reads the request head, answers with a small page, and returns the
/// outcome when the request was the real redirect.
async fn serve(mut stream: TcpStream, expected_state: &str) -> Option<Outcome> {
    let head = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream))
        .await
        .ok()
        .flatten();
    let (status, page, outcome) = match head.as_deref().map(parse_request) {
        Some(Ok(target)) => match parse_callback(&target, expected_state) {
            Callback::Code(code) => (
                200,
                page(
                    "Signed in",
                    "gemauth received your authorization. You can close this tab and return to the terminal.",
                ),
                Some(Outcome::Code(AuthorizationCode::new(code))),
            ),
            Callback::Denied { error, description } => (
                200,
                page(
                    "Sign-in failed",
                    &format!(
                        "The authorization server answered: {}{}. Return to the terminal.",
                        html_escape(&error),
                        description
                            .as_deref()
                            .map(|d| format!(" ({})", html_escape(d)))
                            .unwrap_or_default()
                    ),
                ),
                Some(Outcome::Denied { error, description }),
            ),
            Callback::Ignored { status, reason } => (status, page("Not signed in", reason), None),
        },
        Some(Err(status)) => (
            status,
            page("Bad request", "gemauth could not read this request."),
            None,
        ),
        None => (
            400,
            page("Bad request", "gemauth could not read this request."),
            None,
        ),
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Bad Request",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nContent-Security-Policy: default-src 'none'; style-src 'unsafe-inline'\r\nConnection: close\r\n\r\n{page}",
        page.len()
    );
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
    outcome
}

async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return if buf.is_empty() { None } else { Some(buf) };
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.len() >= MAX_REQUEST_BYTES {
            return Some(buf);
        }
    }
}

/// Parses an HTTP/1.x request head and returns its target, or the status to answer with.
pub fn parse_request(head: &[u8]) -> std::result::Result<String, u16> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(400),
    }
    match request.method {
        Some("GET") => {}
        _ => return Err(405),
    }
    request.path.map(str::to_string).ok_or(400)
}

fn html_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '&' => "&amp;".into(),
            '"' => "&quot;".into(),
            '\'' => "&#39;".into(),
            c => c.to_string(),
        })
        .collect()
}

/// A small self-contained page: no scripts, no external resources.
fn page(title: &str, message: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>gemauth: {title}</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em;color:#222}}</style>\
</head><body><h1>{title}</h1><p>{message}</p></body></html>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_state_on_the_callback_path_counts() {
        assert_eq!(
            parse_callback("/?state=s1&code=4%2F0Ab&iss=https://x", "s1"),
            Callback::Code("4/0Ab".into())
        );
        assert!(matches!(
            parse_callback("/?state=s2&code=c", "s1"),
            Callback::Ignored { status: 400, .. }
        ));
        assert!(matches!(
            parse_callback("/?code=c", "s1"),
            Callback::Ignored { status: 400, .. }
        ));
        assert!(matches!(
            parse_callback("/favicon.ico", "s1"),
            Callback::Ignored { status: 404, .. }
        ));
        assert!(matches!(
            parse_callback("/?state=s1&state=s1&code=c", "s1"),
            Callback::Ignored { status: 400, .. }
        ));
        assert!(matches!(
            parse_callback("/?state=s1&code=c&code=d", "s1"),
            Callback::Ignored { status: 400, .. }
        ));
        assert!(matches!(
            parse_callback("/?state=s1&code=", "s1"),
            Callback::Ignored { status: 400, .. }
        ));
        assert_eq!(
            parse_callback(
                "/?state=s1&error=access_denied&error_description=no%0A",
                "s1"
            ),
            Callback::Denied {
                error: "access_denied".into(),
                description: Some("no".into())
            }
        );
    }

    #[test]
    fn requests_are_parsed_strictly() {
        assert_eq!(
            parse_request(b"GET /?a=b HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok("/?a=b".to_string())
        );
        assert_eq!(parse_request(b"POST / HTTP/1.1\r\n\r\n"), Err(405));
        assert_eq!(parse_request(b"garbage\r\n\r\n"), Err(400));
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\n"), Err(400));
    }

    #[test]
    fn pages_escape_server_text() {
        assert_eq!(html_escape("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
    }
}
