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

/// True when a browser can plausibly be opened here: `$BROWSER` is set, on macOS and Windows,
/// under WSL (Windows' browser), or on Linux and other Unix desktops when a display is available.
pub fn browser_available() -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    if set("BROWSER") || is_wsl() {
        return true;
    }
    if cfg!(all(unix, not(target_os = "macos"))) {
        return set("DISPLAY") || set("WAYLAND_DISPLAY");
    }
    true
}

/// Opens the authorization URL: `$BROWSER` if set (split into words like a shell would, `%s`
/// replaced by the URL or the URL appended), else the system's launchers (`open` crate). An
/// error means nothing could be started; a launcher that starts and then fails is reported
/// later through `on_failure`, from a background thread. A failure never ends the login.
pub fn open_browser(
    url: &str,
    on_failure: impl FnOnce(String) + Send + 'static,
) -> std::result::Result<(), String> {
    let commands = match std::env::var("BROWSER") {
        Ok(cmd) if !cmd.trim().is_empty() => vec![browser_command(&cmd, url)?],
        _ => system_launchers(url, is_wsl()),
    };
    let mut last_error = "no browser launcher found".to_string();
    let mut commands = commands.into_iter();
    for mut command in commands.by_ref() {
        let program = command.get_program().to_string_lossy().into_owned();
        command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        match command.spawn() {
            Ok(mut child) => {
                std::thread::spawn(move || match child.wait() {
                    Ok(status) if !status.success() => {
                        on_failure(format!("{program:?} exited with {status}"))
                    }
                    _ => {}
                });
                return Ok(());
            }
            Err(e) => last_error = format!("cannot start {program:?} ({e})"),
        }
    }
    Err(last_error)
}

/// True under the Windows Subsystem for Linux, where the browser is Windows' own.
fn is_wsl() -> bool {
    #[cfg(target_os = "linux")]
    return is_wsl::is_wsl();
    #[cfg(not(target_os = "linux"))]
    return false;
}

/// The system's ways to open a URL, in order: under WSL `wslview` (wslu, installed with most WSL
/// distributions) first; then the `open` crate's: `open` on macOS, the default browser's handler
/// on Windows, PowerShell under WSL, `xdg-open` and the desktops' tools on Linux.
fn system_launchers(url: &str, wsl: bool) -> Vec<std::process::Command> {
    let mut commands = Vec::new();
    if wsl {
        let mut wslview = std::process::Command::new("wslview");
        wslview.arg(url);
        commands.push(wslview);
    }
    commands.extend(open::commands(url));
    commands
}

fn browser_command(cmd: &str, url: &str) -> std::result::Result<std::process::Command, String> {
    let cmd = if cfg!(windows) {
        literal_backslashes(cmd)
    } else {
        cmd.to_string()
    };
    let mut words = shell_words::split(&cmd).map_err(|e| format!("cannot parse $BROWSER ({e})"))?;
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
    let mut command = std::process::Command::new(&words[0]);
    command.args(&words[1..]);
    Ok(command)
}

/// Escapes the backslashes of a Windows command (`C:\Program Files\…\browser.exe`) so that
/// shell-style splitting keeps them as they are: on Windows they separate path components. Quotes
/// still group words; inside single quotes nothing is escaped, so nothing is changed there.
fn literal_backslashes(cmd: &str) -> String {
    let mut out = String::with_capacity(cmd.len());
    let (mut single, mut double) = (false, false);
    for c in cmd.chars() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '\\' if !single => out.push('\\'),
            _ => {}
        }
        out.push(c);
    }
    out
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

/// The final result of a login attempt.
pub enum Outcome {
    Code(AuthorizationCode),
    Denied {
        error: String,
        description: Option<String>,
    },
}

/// How many bad pastes are tolerated before the login gives up.
pub const MAX_PASTE_ATTEMPTS: u32 = 3;

/// How the login is completed: options of [`authorize`].
pub struct Options {
    pub timeout: Duration,
    /// Start in paste mode and open no browser.
    pub no_browser: bool,
}

/// Something that happened while the login waits.
enum Event {
    Redirect(Outcome),
    BrowserFailed(String),
    Line(String),
    StdinClosed,
}

/// Shows the authorization URL, opens the browser (or not), and waits for whichever comes
/// first: the browser's redirect to the loopback listener, or the redirect address pasted on
/// standard input (paste mode: `--no-browser`, or when no browser can be opened).
pub async fn authorize(
    listener: StdListener,
    request: &AuthorizationRequest,
    options: Options,
) -> Result<Outcome> {
    let port = listener
        .local_addr()
        .map_err(|e| Error::Internal(format!("cannot read the listener's address: {e}")))?
        .port();
    let listener = TcpListener::from_std(listener)
        .map_err(|e| Error::Internal(format!("cannot use the listener: {e}")))?;
    let (tx, mut events) = mpsc::unbounded_channel::<Event>();
    tokio::spawn(listen(listener, request.state.secret().clone(), tx.clone()));

    let url = request.url.as_str();
    let mut paste_mode = false;
    if options.no_browser {
        eprintln!("To sign in, open this URL in a browser on any device:\n\n    {url}\n");
        start_paste_mode(port, &tx);
        paste_mode = true;
    } else {
        eprintln!(
            "Sign in to Google in your browser. If it does not open, visit this URL:\n\n    {url}\n"
        );
        let failed = tx.clone();
        let started = if browser_available() {
            open_browser(url, move |reason| {
                let _ = failed.send(Event::BrowserFailed(reason));
            })
        } else {
            Err("no display (DISPLAY/WAYLAND_DISPLAY) and no $BROWSER".into())
        };
        match started {
            Ok(()) => eprintln!(
                "Waiting for the browser to finish the sign-in (up to {} s)…",
                options.timeout.as_secs()
            ),
            Err(reason) => {
                eprintln!("note: could not open a browser ({reason}); switching to paste mode.");
                start_paste_mode(port, &tx);
                paste_mode = true;
            }
        }
    }

    let deadline = tokio::time::sleep(options.timeout);
    tokio::pin!(deadline);
    let mut bad_pastes = 0;
    let mut stdin_closed = false;
    loop {
        let event = tokio::select! {
            Some(event) = events.recv() => event,
            () = &mut deadline => {
                return Err(Error::LoginTimeout { secs: options.timeout.as_secs(), stdin_closed });
            }
        };
        match event {
            Event::Redirect(outcome) => {
                if paste_mode && !stdin_closed {
                    eprintln!();
                }
                return Ok(outcome);
            }
            Event::BrowserFailed(reason) if !paste_mode => {
                eprintln!("note: the browser did not start ({reason}); switching to paste mode.");
                start_paste_mode(port, &tx);
                paste_mode = true;
            }
            Event::BrowserFailed(_) => {}
            Event::Line(line) if line.trim().is_empty() => prompt(),
            Event::Line(line) => match parse_paste(&line, request.state.secret(), port) {
                Ok(Callback::Code(code)) => return Ok(Outcome::Code(AuthorizationCode::new(code))),
                Ok(Callback::Denied { error, description }) => {
                    return Ok(Outcome::Denied { error, description });
                }
                Ok(Callback::Ignored { reason, .. }) | Err(reason) => {
                    bad_pastes += 1;
                    if bad_pastes >= MAX_PASTE_ATTEMPTS {
                        return Err(Error::BadPaste {
                            reason: reason.to_string(),
                            attempts: bad_pastes,
                        });
                    }
                    eprintln!(
                        "That did not work: {reason} (attempt {bad_pastes} of {MAX_PASTE_ATTEMPTS})."
                    );
                    prompt();
                }
            },
            Event::StdinClosed => {
                stdin_closed = true;
                eprintln!(
                    "\nnote: standard input is closed; still waiting for the browser to reach http://127.0.0.1:{port}/"
                );
            }
        }
    }
}

fn start_paste_mode(port: u16, tx: &mpsc::UnboundedSender<Event>) {
    eprintln!("After you approve, the browser is sent to http://127.0.0.1:{port}/?state=…&code=…");
    eprintln!(
        "On another device that page will not load: copy the whole address from the browser's address bar and paste it here."
    );
    eprintln!("Or forward the port before approving, and the sign-in finishes by itself:");
    eprintln!("    ssh -L {port}:127.0.0.1:{port} <this-host>");
    prompt();
    tracing::debug!(port, "paste mode started");
    let tx = tx.clone();
    // A plain thread: a blocking read of the terminal must not keep the runtime alive.
    std::thread::spawn(move || {
        use std::io::{BufRead, IsTerminal};
        let stdin = std::io::stdin();
        // A terminal echoes the pasted line and its newline; piped input does not.
        let echo_newline = !stdin.is_terminal();
        let mut lines = stdin.lock();
        loop {
            let mut line = String::new();
            match lines.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Event::StdinClosed);
                    return;
                }
                Ok(_) => {
                    if echo_newline {
                        eprintln!();
                    }
                    if tx.send(Event::Line(line)).is_err() {
                        return;
                    }
                }
            }
        }
    });
}

fn prompt() {
    use std::io::Write;
    eprint!("Paste the address (or the code): ");
    let _ = std::io::stderr().flush();
}

/// Interprets a pasted answer: the full redirect URL, its query string, or the bare code. Quotes,
/// angle brackets and spaces around it are trimmed. A URL must point at this login's listener
/// (127.0.0.1 or localhost, same port), and a URL or query string must carry the right `state`.
pub fn parse_paste(
    input: &str,
    expected_state: &str,
    port: u16,
) -> std::result::Result<Callback, &'static str> {
    let text = input
        .trim()
        .trim_matches(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>'));
    if text.is_empty() {
        return Err("nothing was pasted");
    }
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        let url = Url::parse(text).map_err(|_| "the pasted address is not a valid URL")?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            _ => false,
        };
        if url.scheme() != "http" || !loopback {
            return Err(
                "the pasted address is not the http://127.0.0.1 address this login printed",
            );
        }
        if url.port_or_known_default() != Some(port) {
            return Err(
                "the pasted address is for another port than the one this login printed; paste the address from the sign-in started here",
            );
        }
        return Ok(parse_callback(
            &format!("{}?{}", url.path(), url.query().unwrap_or("")),
            expected_state,
        ));
    }
    if let Some(query) = text
        .strip_prefix("/?")
        .or_else(|| text.strip_prefix('?'))
        .or_else(|| text.contains('=').then_some(text))
    {
        return Ok(parse_callback(&format!("/?{query}"), expected_state));
    }
    let code = percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map_err(|_| "the pasted code is not valid text")?;
    let plausible = (10..=2048).contains(&code.len())
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '/' | '+'));
    if plausible {
        Ok(Callback::Code(code.into_owned()))
    } else {
        Err("that is neither the redirect address, its query string, nor an authorization code")
    }
}

/// Accepts connections until the login ends. Every connection is served on its own task, so an
/// idle or slow connection (browsers open speculative ones) never blocks the real redirect.
async fn listen(listener: TcpListener, expected_state: String, tx: mpsc::UnboundedSender<Event>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors or similar: wait a little instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let tx = tx.clone();
        let expected = expected_state.clone();
        tokio::spawn(async move {
            if let Some(outcome) = serve(stream, &expected).await {
                let _ = tx.send(Event::Redirect(outcome));
            }
        });
    }
}

/// Serves one connection: reads the request head, answers with a small page, and returns the
/// outcome when the request was the real redirect.
async fn serve(mut stream: TcpStream, expected_state: &str) -> Option<Outcome> {
    let head = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream))
        .await
        .ok()
        .flatten();
    let parsed = head.as_deref().map(parse_request);
    if let Some(Ok(target)) = &parsed {
        // The path only: the query carries the code and the state.
        let path = target.split('?').next().unwrap_or_default();
        tracing::debug!(path, "listener received a request");
    }
    let (status, page, outcome) = match parsed {
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
    fn wsl_opens_the_url_with_wslview_first() {
        let url = "http://127.0.0.1:1/auth?a=b&c=d";
        let programs = |wsl| -> Vec<(String, Vec<String>)> {
            system_launchers(url, wsl)
                .iter()
                .map(|c| {
                    let s = |v: &std::ffi::OsStr| v.to_string_lossy().into_owned();
                    (s(c.get_program()), c.get_args().map(s).collect())
                })
                .collect()
        };
        let under_wsl = programs(true);
        assert_eq!(under_wsl[0], ("wslview".to_string(), vec![url.to_string()]));
        assert_eq!(under_wsl[1..], programs(false)[..]);
        let native = programs(false);
        if cfg!(target_os = "macos") {
            assert_eq!(
                native[0],
                ("/usr/bin/open".into(), vec!["--".into(), url.into()])
            );
        } else if cfg!(windows) {
            assert!(native.iter().any(|(program, _)| program == "explorer.exe"));
        } else {
            assert!(native.iter().any(|(program, _)| program == "xdg-open"));
        }
    }

    #[test]
    fn windows_browser_paths_keep_their_backslashes() {
        let split = |cmd: &str| shell_words::split(&literal_backslashes(cmd)).unwrap();
        assert_eq!(
            split(r#""C:\Program Files\Browser\browser.exe" --new-window"#),
            [r"C:\Program Files\Browser\browser.exe", "--new-window"]
        );
        assert_eq!(
            split(r"C:\Users\me\open.cmd %s"),
            [r"C:\Users\me\open.cmd", "%s"]
        );
        assert_eq!(split(r"'C:\a b\c.exe' x"), [r"C:\a b\c.exe", "x"]);
        assert_eq!(split(r#""it's" C:\x"#), ["it's", r"C:\x"]);
    }

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
    fn pasted_answers_in_every_accepted_form() {
        let code = || Ok(Callback::Code("4/0Ab+c".into()));
        let url = "http://127.0.0.1:8085/?state=s1&code=4%2F0Ab%2Bc&scope=x&iss=https%3A%2F%2Faccounts.google.com";
        assert_eq!(parse_paste(url, "s1", 8085), code());
        assert_eq!(parse_paste(&format!("  <{url}>\n"), "s1", 8085), code());
        assert_eq!(parse_paste(&format!("'{url}'"), "s1", 8085), code());
        assert_eq!(
            parse_paste(
                "http://localhost:8085/?state=s1&code=4%2F0Ab%2Bc",
                "s1",
                8085
            ),
            code()
        );
        assert_eq!(parse_paste("state=s1&code=4%2F0Ab%2Bc", "s1", 8085), code());
        assert_eq!(
            parse_paste("?state=s1&code=4%2F0Ab%2Bc", "s1", 8085),
            code()
        );
        assert_eq!(
            parse_paste("/?code=4%2F0Ab%2Bc&state=s1", "s1", 8085),
            code()
        );
        assert_eq!(
            parse_paste("4%2F0Ab%2Bc1234", "s1", 8085),
            Ok(Callback::Code("4/0Ab+c1234".into()))
        );
        assert_eq!(
            parse_paste(" \"4/0Ab-xyz_123\" ", "s1", 8085),
            Ok(Callback::Code("4/0Ab-xyz_123".into()))
        );
        assert!(matches!(
            parse_paste(
                "http://127.0.0.1:8085/?state=s1&error=access_denied",
                "s1",
                8085
            ),
            Ok(Callback::Denied { .. })
        ));
    }

    #[test]
    fn bad_pastes_are_refused() {
        let ignored = |r| matches!(r, Ok(Callback::Ignored { .. }));
        assert!(ignored(parse_paste(
            "http://127.0.0.1:8085/?state=s2&code=c",
            "s1",
            8085
        )));
        assert!(ignored(parse_paste("state=s1&code=a&code=b", "s1", 8085)));
        assert!(ignored(parse_paste("code=abc", "s1", 8085)));
        assert!(parse_paste("http://127.0.0.1:9999/?state=s1&code=c", "s1", 8085).is_err());
        assert!(parse_paste("http://example.com:8085/?state=s1&code=c", "s1", 8085).is_err());
        assert!(parse_paste("https://127.0.0.1:8085/?state=s1&code=c", "s1", 8085).is_err());
        assert!(parse_paste("hello world", "s1", 8085).is_err());
        assert!(parse_paste("short", "s1", 8085).is_err());
        assert!(parse_paste("%FF%FE%FD%FC%FB%FA", "s1", 8085).is_err());
        assert!(parse_paste("<>", "s1", 8085).is_err());
        assert!(parse_paste(&"a".repeat(5000), "s1", 8085).is_err());
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
