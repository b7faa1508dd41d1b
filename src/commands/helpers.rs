//! What the credential helpers for Docker, Git and kubectl (and `gemauth curl`) share: reading
//! the tool's request on stdin, obtaining the token they hand out, and the host checks that decide
//! where a token may go (`split_port`, `is_loopback`). It imports none of the helpers' modules.

use std::io::{BufRead, Read};
use std::path::PathBuf;

use super::report::{Error, Result};
use crate::credentials::resolve_scopes;
use crate::token::{self, Token};

/// The most a helper reads from stdin: the tools send a URL or a few `key=value` lines.
const MAX_INPUT: usize = 64 * 1024;

/// Reads all of stdin (Docker writes the server URL, then closes it).
pub(crate) fn read_all(tool: &'static str) -> Result<String> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_INPUT as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| input_error(tool, format!("cannot read standard input: {e}")))?;
    checked_text(tool, bytes)
}

/// Reads stdin up to the first blank line or the end (gitcredentials(7)), and returns the
/// lines before it.
pub(crate) fn read_lines(tool: &'static str) -> Result<Vec<String>> {
    let mut input = std::io::stdin().lock().take(MAX_INPUT as u64 + 1);
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = Vec::new();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|e| input_error(tool, format!("cannot read standard input: {e}")))?;
        total += n;
        let line = checked_text(tool, line)?;
        if total > MAX_INPUT {
            return Err(too_long(tool));
        }
        let line = line.strip_suffix('\n').unwrap_or(&line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if n == 0 || line.is_empty() {
            return Ok(lines);
        }
        lines.push(line.to_string());
    }
}

fn checked_text(tool: &'static str, bytes: Vec<u8>) -> Result<String> {
    if bytes.len() > MAX_INPUT {
        return Err(too_long(tool));
    }
    String::from_utf8(bytes).map_err(|_| input_error(tool, "standard input is not UTF-8".into()))
}

fn too_long(tool: &'static str) -> Error {
    input_error(
        tool,
        format!("more than {} KiB on standard input", MAX_INPUT / 1024),
    )
}

pub(crate) fn input_error(tool: &'static str, problem: String) -> Error {
    Error::HelperInput { tool, problem }
}

/// The token a helper hands out: the same discovery, cache and single-flight refresh as
/// `print-access-token`. Warnings go to stderr, where the tools show them to the user.
pub(crate) fn token(
    credential_file: Option<PathBuf>,
    scopes: Option<&str>,
    min_lifetime: Option<u64>,
) -> Result<Token> {
    let scopes = match scopes {
        Some(spec) => Some(resolve_scopes(Some(spec))?),
        None => None,
    };
    let token = token::get_with(&token::Request {
        credential_file,
        min_lifetime,
        scopes,
    })?;
    super::print_warnings(&token.warnings);
    Ok(token)
}

/// The host of `host[:port]` (IPv6 in brackets), when it is a plausible host name.
pub(crate) fn split_port(host_port: &str) -> Option<&str> {
    let (host, port) = if let Some(rest) = host_port.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        (v6, after.strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.parse::<u16>().is_ok());
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    (port_ok && host_ok).then_some(host)
}

/// A loopback host: `localhost`, 127.0.0.0/8 or `::1` (without brackets).
pub(crate) fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
