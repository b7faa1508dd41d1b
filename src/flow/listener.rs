//! The loopback listener on 127.0.0.1 that receives the browser's redirect: one task per
//! connection, bounded request heads and times, and small self-contained answer pages.

use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::time::Duration;

use oauth2::AuthorizationCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::callback::{Callback, Outcome, parse_callback};
use super::event::Event;
use super::{Error, Result};

/// Largest request head the listener reads from a browser.
const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// How long one connection may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the loopback listener on 127.0.0.1, on `port` or an ephemeral one. The socket is kept
/// until the login ends, so the redirect URI cannot be taken over by another program.
pub(crate) fn bind(port: Option<u16>) -> Result<StdListener> {
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
        .map_err(|e| crate::Error::Internal(format!("cannot configure the listener: {e}")))?;
    Ok(listener)
}

/// Accepts connections until the login ends. Every connection is served on its own task, so an
/// idle or slow connection (browsers open speculative ones) never blocks the real redirect.
pub(super) async fn listen(
    listener: TcpListener,
    expected_state: String,
    tx: mpsc::UnboundedSender<Event>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors or similar: wait a little instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let tx = tx.clone();
        let expected = expected_state.clone();
        tokio::spawn(async move { serve(stream, &expected, &tx).await });
    }
}

/// Serves one connection: reads the request head, hands the outcome on when the request was the
/// real redirect (before answering: once the browser has its page, the login has its answer,
/// whatever else happens next), and answers with a small page.
async fn serve(mut stream: TcpStream, expected_state: &str, tx: &mpsc::UnboundedSender<Event>) {
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
    if let Some(outcome) = outcome {
        let _ = tx.send(Event::Redirect(outcome));
    }
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
#[cfg_attr(not(feature = "fuzzing"), allow(unreachable_pub))]
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
