//! Paste mode: the redirect address (or its query, or the bare code) read from standard input.

use tokio::sync::mpsc;
use url::Url;

use super::callback::{Callback, parse_callback};
use super::event::{Event, Notice};

/// Starts paste mode: tells the user how to hand the answer back, and reads standard input on a
/// thread of its own (a blocking read of the terminal must not keep the runtime alive).
pub(super) fn start(
    port: u16,
    redirect_uri: &str,
    tx: &mpsc::UnboundedSender<Event>,
    notify: &mut dyn FnMut(Notice),
) {
    notify(Notice::PasteInstructions { port, redirect_uri });
    notify(Notice::Prompt);
    tracing::debug!(port, "paste mode started");
    let tx = tx.clone();
    std::thread::spawn(move || {
        use std::io::{BufRead, IsTerminal};
        let stdin = std::io::stdin();
        // A terminal echoes the pasted line and its newline; piped input does not.
        let from_pipe = !stdin.is_terminal();
        let mut lines = stdin.lock();
        loop {
            let mut text = String::new();
            match lines.read_line(&mut text) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Event::StdinClosed);
                    return;
                }
                Ok(_) => {
                    if tx.send(Event::Line { text, from_pipe }).is_err() {
                        return;
                    }
                }
            }
        }
    });
}

/// Interprets a pasted answer: the full redirect URL, its query string, or the bare code. Quotes,
/// angle brackets and spaces around it are trimmed. A URL must point at this login's listener
/// (127.0.0.1 or localhost, same port), and a URL or query string must carry the right `state`.
#[cfg_attr(not(feature = "fuzzing"), allow(unreachable_pub))]
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
