//! `gemauth curl`: run curl with the Authorization header (and `x-goog-user-project`) added, and
//! pass its exit code through. It owns how the header reaches curl without outliving gemauth (a
//! pipe on Unix, a private file removed on every exit on Windows) and the check of curl's URLs
//! that keeps the token off plain http to other machines.

use std::ffi::{OsStr, OsString};

use super::report::{Error, Result};
use crate::cli::CurlArgs;
use crate::{store, token};

use super::helpers::is_loopback;

/// Environment variable naming the curl program [default: `curl` on PATH].
pub(crate) const ENV_CURL: &str = "GEMAUTH_CURL";

/// The names of the private files that carried the header to curl (Windows; earlier versions on
/// every platform), in gemauth's cache directory.
const HEADER_FILE_PREFIX: &str = ".curl-headers-";

pub(crate) fn run(args: CurlArgs) -> Result<u8> {
    remove_leftovers();
    // Before anything is sent, the token refresh included.
    check_urls(&args.args)?;
    let token = token::get(args.credential_file.as_deref(), None)?;
    super::print_warnings(&token.warnings);
    let mut headers = format!("Authorization: Bearer {}\n", token.access_token.expose());
    if let Some(project) = super::effective_quota_project(token.quota_project_id.as_deref())? {
        headers.push_str(&format!("x-goog-user-project: {project}\n"));
    }
    let program = std::env::var_os(ENV_CURL)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "curl".into());
    run_curl(&program, &headers, &args.args)
}

fn not_started(program: &OsStr, e: &std::io::Error) -> Error {
    Error::CurlNotStarted {
        program: program.to_string_lossy().into_owned(),
        reason: e.to_string(),
    }
}

/// Unix: the header goes through a pipe that curl inherits and reads as `-H @/dev/fd/N`, and
/// gemauth becomes curl (exec): no file ever holds the token, the exit code and the signals are
/// curl's own, and nothing is left behind when the process is interrupted.
#[cfg(unix)]
fn run_curl(program: &OsStr, headers: &str, args: &[OsString]) -> Result<u8> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;

    let pipe_error =
        |e: std::io::Error| crate::Error::Internal(format!("cannot create a pipe: {e}"));
    let (reader, mut writer) = std::io::pipe().map_err(pipe_error)?;
    // Nobody reads before curl starts: the header must fit in the pipe's buffer (64 KiB on Linux,
    // at least 16 KiB on macOS; a Google access token is a few hundred bytes). A write that would
    // block fails instead of hanging.
    rustix::io::ioctl_fionbio(&writer, true).map_err(|e| pipe_error(e.into()))?;
    writer.write_all(headers.as_bytes()).map_err(|e| {
        crate::Error::Internal(format!(
            "cannot hand the {}-byte header to curl through a pipe: {e}",
            headers.len()
        ))
    })?;
    drop(writer);
    // Kept open across exec, so that curl can open /dev/fd/N.
    rustix::io::fcntl_setfd(&reader, rustix::io::FdFlags::empty())
        .map_err(|e| pipe_error(e.into()))?;
    let header_arg = format!("@/dev/fd/{}", reader.as_raw_fd());
    tracing::debug!(program = %program.to_string_lossy(), "running curl");
    let e = std::process::Command::new(program)
        .arg("-H")
        .arg(header_arg)
        .args(args)
        .exec();
    Err(not_started(program, &e))
}

/// Windows: no `/dev/fd`, so the header goes in a private file in gemauth's cache directory.
/// gemauth outlives curl on Ctrl-C, Ctrl-Break and console close (curl gets them too and ends),
/// then removes the file; a file left by a killed process is removed by the next run.
#[cfg(not(unix))]
fn run_curl(program: &OsStr, headers: &str, args: &[OsString]) -> Result<u8> {
    use std::io::Write;

    let dir = header_dir();
    store::create_private_dir(&dir)?;
    let mut file = tempfile::Builder::new()
        .prefix(HEADER_FILE_PREFIX)
        .tempfile_in(&dir)
        .map_err(|source| crate::Error::Io {
            action: "cannot create a temporary file in",
            path: dir.clone(),
            source,
        })?;
    file.write_all(headers.as_bytes())
        .and_then(|()| file.flush())
        .map_err(|source| crate::Error::Io {
            action: "cannot write",
            path: file.path().to_path_buf(),
            source,
        })?;
    // While these listeners exist, the console's events no longer end gemauth (tokio's handler
    // takes them); curl, in the same console, gets them and ends, and gemauth cleans up.
    #[cfg(windows)]
    let _console_events = (
        tokio::signal::windows::ctrl_c(),
        tokio::signal::windows::ctrl_break(),
        tokio::signal::windows::ctrl_close(),
    );
    let mut header_arg = OsString::from("@");
    header_arg.push(file.path());
    let status = std::process::Command::new(program)
        .arg("-H")
        .arg(header_arg)
        .args(args)
        .status();
    // Removed before anything else, whether curl ran or not.
    drop(file);
    let status = status.map_err(|e| not_started(program, &e))?;
    Ok(status
        .code()
        .and_then(|code| u8::try_from(code).ok())
        .unwrap_or(1))
}

/// Where header files are (or were) written: gemauth's cache directory when it passed the checks
/// (the user's own, writable by no one else), else the temporary one (the user's own on Windows).
fn header_dir() -> std::path::PathBuf {
    store::process_cache()
        .dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
}

/// Removes the header files that a killed `gemauth curl` left behind. On Unix none is created any
/// more, so every one goes; on Windows one younger than a minute may belong to a `gemauth curl`
/// that is starting right now (curl reads it at once), and is left to that process.
fn remove_leftovers() {
    // On Unix only the cache directory ever held them, and only one that passed the checks is
    // the user's to clean: never a shared temporary directory.
    let dir = if cfg!(unix) {
        match &store::process_cache().dir {
            Some(dir) => dir.clone(),
            None => return,
        }
    } else {
        header_dir()
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with(HEADER_FILE_PREFIX)
        {
            continue;
        }
        // Not followed: a link is removed itself, a directory left alone.
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if meta.is_dir() || !old_enough(&meta) {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => {
                tracing::debug!(file = %entry.path().display(), "removed a leftover header file")
            }
            Err(e) => {
                tracing::debug!(file = %entry.path().display(), "cannot remove a leftover header file: {e}")
            }
        }
    }
}

fn old_enough(meta: &std::fs::Metadata) -> bool {
    if cfg!(unix) {
        return true;
    }
    meta.modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .is_none_or(|age| age > std::time::Duration::from_secs(60))
}

/// curl's options that take a value (the next argument, or the rest of a short-option cluster),
/// as of curl 8.x: their values are not URLs.
const LONG_WITH_VALUE: &[&str] = &[
    "abstract-unix-socket",
    "alt-svc",
    "aws-sigv4",
    "cacert",
    "capath",
    "cert",
    "cert-type",
    "ciphers",
    "config",
    "connect-timeout",
    "connect-to",
    "continue-at",
    "cookie",
    "cookie-jar",
    "create-file-mode",
    "crlfile",
    "curves",
    "data",
    "data-ascii",
    "data-binary",
    "data-raw",
    "data-urlencode",
    "delegation",
    "dns-interface",
    "dns-ipv4-addr",
    "dns-ipv6-addr",
    "dns-servers",
    "doh-url",
    "dump-header",
    "ech",
    "egd-file",
    "engine",
    "etag-compare",
    "etag-save",
    "expect100-timeout",
    "form",
    "form-string",
    "ftp-account",
    "ftp-alternative-to-user",
    "ftp-method",
    "ftp-port",
    "ftp-ssl-ccc-mode",
    "happy-eyeballs-timeout-ms",
    "haproxy-clientip",
    "header",
    "help",
    "hostpubmd5",
    "hostpubsha256",
    "hsts",
    "interface",
    "ip-tos",
    "ipfs-gateway",
    "json",
    "keepalive-cnt",
    "keepalive-time",
    "key",
    "key-type",
    "knownhosts",
    "krb",
    "krb4",
    "libcurl",
    "limit-rate",
    "local-port",
    "login-options",
    "mail-auth",
    "mail-from",
    "mail-rcpt",
    "max-filesize",
    "max-redirs",
    "max-time",
    "netrc-file",
    "noproxy",
    "oauth2-bearer",
    "output",
    "output-dir",
    "parallel-max",
    "parallel-max-host",
    "pass",
    "pinnedpubkey",
    "preproxy",
    "proto",
    "proto-default",
    "proto-redir",
    "proxy",
    "proxy-cacert",
    "proxy-capath",
    "proxy-cert",
    "proxy-cert-type",
    "proxy-ciphers",
    "proxy-crlfile",
    "proxy-header",
    "proxy-key",
    "proxy-key-type",
    "proxy-pass",
    "proxy-pinnedpubkey",
    "proxy-service-name",
    "proxy-tls13-ciphers",
    "proxy-tlsauthtype",
    "proxy-tlspassword",
    "proxy-tlsuser",
    "proxy-user",
    "proxy1.0",
    "pubkey",
    "quote",
    "random-file",
    "range",
    "rate",
    "referer",
    "request",
    "request-target",
    "resolve",
    "retry",
    "retry-delay",
    "retry-max-time",
    "sasl-authzid",
    "service-name",
    "sigalgs",
    "socks4",
    "socks4a",
    "socks5",
    "socks5-gssapi-service",
    "socks5-hostname",
    "speed-limit",
    "speed-time",
    "ssl-sessions",
    "stderr",
    "telnet-option",
    "tftp-blksize",
    "time-cond",
    "tls-max",
    "tls13-ciphers",
    "tlsauthtype",
    "tlspassword",
    "tlsuser",
    "trace",
    "trace-ascii",
    "trace-config",
    "unix-socket",
    "upload-file",
    "upload-flags",
    "url",
    "url-query",
    "user",
    "user-agent",
    "variable",
    "vlan-priority",
    "write-out",
];

/// The short options that take a value (`-H VALUE` or `-HVALUE`).
const SHORT_WITH_VALUE: &str = "ACDEFHKPQTUXYbcdehmortuwxyz";

/// Options after which a plain-http URL to this machine may still leave it: a proxy, or a
/// host name mapped to another address.
const REDIRECTING: &[&str] = &[
    "connect-to",
    "preproxy",
    "proxy",
    "proxy1.0",
    "resolve",
    "socks4",
    "socks4a",
    "socks5",
    "socks5-hostname",
];

/// One curl "operation": the options and URLs up to `--next` (`-:`).
#[derive(Default)]
struct Operation {
    urls: Vec<String>,
    proto_default: Option<String>,
    /// `--unix-socket`: the request stays on this machine whatever the URL's host.
    unix_socket: bool,
    /// A proxy or an address mapping may take the request elsewhere.
    redirected: bool,
}

impl Operation {
    fn option(&mut self, name: &str, value: Option<&str>) {
        match name {
            "url" => self.urls.extend(value.map(str::to_string)),
            "proto-default" => self.proto_default = value.map(str::to_ascii_lowercase),
            "unix-socket" | "abstract-unix-socket" => self.unix_socket = true,
            name if REDIRECTING.contains(&name) => self.redirected = true,
            _ => {}
        }
    }
}

/// The long name of a short option that matters to [`Operation::option`].
fn long_name(short: char) -> &'static str {
    match short {
        'x' => "proxy",
        _ => "",
    }
}

/// Splits curl's arguments into operations, as curl reads them: every argument that is not an
/// option nor an option's value is a URL, and so is `--url`'s value.
fn operations(args: &[OsString]) -> Vec<Operation> {
    let mut ops = vec![Operation::default()];
    let mut args = args.iter().map(|a| a.to_string_lossy());
    let mut options_done = false;
    while let Some(arg) = args.next() {
        let op = ops.last_mut().expect("one operation at least");
        if options_done || !arg.starts_with('-') || arg == "-" {
            op.urls.push(arg.into_owned());
        } else if arg == "--" {
            options_done = true;
        } else if let Some(name) = arg.strip_prefix("--") {
            if name == "next" {
                ops.push(Operation::default());
            } else if LONG_WITH_VALUE.contains(&name) {
                let value = args.next();
                op.option(name, value.as_deref());
            } else {
                op.option(name, None);
            }
        } else {
            let cluster: Vec<char> = arg[1..].chars().collect();
            for (i, &letter) in cluster.iter().enumerate() {
                if letter == ':' {
                    ops.push(Operation::default());
                    break;
                }
                if SHORT_WITH_VALUE.contains(letter) {
                    let rest: String = cluster[i + 1..].iter().collect();
                    let value = if rest.is_empty() {
                        args.next().map(|v| v.into_owned())
                    } else {
                        Some(rest)
                    };
                    op.option(long_name(letter), value.as_deref());
                    break;
                }
            }
        }
    }
    ops
}

/// Refuses any URL that would carry the token over plain http to another machine. https, other
/// protocols (curl sends the header over HTTP only) and plain http to 127.0.0.1, [::1] or
/// localhost pass. A URL without a scheme is http unless `--proto-default` says otherwise, or its
/// host name makes curl guess another protocol (`ftp.…`).
fn check_urls(args: &[OsString]) -> Result<()> {
    for op in operations(args) {
        for url in &op.urls {
            let Some(target) = plain_http_target(url, op.proto_default.as_deref()) else {
                continue;
            };
            let local = is_loopback(&target.host) && !op.redirected;
            if !(local || op.unix_socket) {
                return Err(Error::PlainHttp {
                    host: target.host,
                    url: target.shown,
                });
            }
        }
    }
    Ok(())
}

/// A URL curl would fetch over plain http: its host (lower case, IPv6 without brackets) and the
/// URL as shown in an error (without user name or password).
struct PlainHttpTarget {
    host: String,
    shown: String,
}

fn plain_http_target(url: &str, proto_default: Option<&str>) -> Option<PlainHttpTarget> {
    let url = url.trim();
    let scheme_end = url.find("://").filter(|&end| {
        end > 0
            && url[..end]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.{},[]".contains(c))
    });
    let (scheme, rest) = match scheme_end {
        Some(end) => (url[..end].to_ascii_lowercase(), &url[end + 3..]),
        None => {
            let lower = url.to_ascii_lowercase();
            let guessed = ["ftp.", "dict.", "ldap.", "imap.", "smtp.", "pop3."]
                .iter()
                .any(|prefix| lower.starts_with(prefix));
            let scheme = match proto_default {
                Some(p) => p.to_string(),
                None if guessed => "other".to_string(),
                None => "http".to_string(),
            };
            (scheme, url)
        }
    };
    // `https` is safe; `http`, and a glob that may expand to it (`{http,https}`), are not.
    if scheme == "https" || !scheme.contains("http") {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let shown: String = format!("{scheme}://{host_port}{path}")
        .chars()
        .take(200)
        .collect();
    Some(PlainHttpTarget {
        host: host.to_ascii_lowercase(),
        shown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(args: &[&str]) -> std::result::Result<(), String> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        check_urls(&args).map_err(|e| match e {
            Error::PlainHttp { host, url } => format!("{host} {url}"),
            other => panic!("{other}"),
        })
    }

    #[test]
    fn plain_http_to_another_machine_is_refused_wherever_the_url_is() {
        for args in [
            &["http://example.com/v1"][..],
            &["HTTP://EXAMPLE.com"],
            &["example.com/v1"],
            &["--url", "http://example.com"],
            &["-sS", "-o", "out", "http://example.com"],
            &["-sSH", "x: y", "example.com"],
            &["https://a.example", "--next", "http://example.com"],
            &["--", "-weird-host"],
            &["{http,https}://example.com"],
            &["http://127.0.0.1@example.com/"],
            &["http://localhost.example.com/"],
            &["http://127.0.0.1:8080/", "-x", "http://proxy.example:3128"],
            &["--resolve", "localhost:80:192.0.2.1", "http://localhost/"],
            &["--proto-default", "http", "example.com"],
        ] {
            assert!(check(args).is_err(), "{args:?}");
        }
        assert_eq!(
            check(&["http://user:secret@example.com:8080/p?q"]),
            Err("example.com http://example.com:8080/p?q".into())
        );
    }

    #[test]
    fn https_this_machine_and_option_values_pass() {
        for args in [
            &["https://example.com/v1"][..],
            &["http://127.0.0.1:8080/"],
            &["http://127.1.2.3/"],
            &["http://localhost/"],
            &["http://[::1]:9/"],
            &["-o", "http.txt", "https://example.com"],
            &["-ohttp.txt", "https://example.com"],
            &["-d", "u=http://example.com", "https://example.com"],
            &["-w", "%{http_code}", "-A", "agent", "https://example.com"],
            &["--proto-default", "https", "example.com"],
            &["ftp.example.com/file"],
            &["ftp://example.com/file"],
            &["--unix-socket", "/run/x.sock", "http://example.com/"],
            &["-H", "@/dev/fd/3", "--fail", "https://example.com"],
            &["-h"],
        ] {
            assert_eq!(check(args), Ok(()), "{args:?}");
        }
    }
}
