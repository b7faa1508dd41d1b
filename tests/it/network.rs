//! Proxies and private certificate authorities: a local TLS front for the fake server with a
//! certificate from a test CA (trusted through `SSL_CERT_FILE`), a local CONNECT proxy
//! (`HTTPS_PROXY`, `NO_PROXY`), and a proxy that inspects TLS, re-signing traffic with its own
//! CA (trusted through `CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE` or `SSL_CERT_FILE`). Linux only: on macOS and Windows certificates are checked by
//! the system's verifier, which does not read `SSL_CERT_FILE`.
#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;

use crate::harness::*;
use crate::runner::{Trial, trials};
/// Reads one HTTP/1.1 request (head and Content-Length body) from a stream.
fn read_request(stream: &mut impl Read) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).unwrap_or(0) == 0 {
            return buf;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    buf.extend(body);
    buf
}

/// Answers one TLS connection on `tcp` with `config`: reads the decrypted request, hands its
/// request line to `record`, forwards it to `upstream` (the fake server, plain http; one
/// request per connection, so the upstream is asked to close when it is done) and writes the
/// answer back.
fn forward_tls(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    upstream: u16,
    record: impl FnOnce(&str),
) {
    let conn = rustls::ServerConnection::new(config).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let request = read_request(&mut tls);
    if request.is_empty() {
        return;
    }
    let text = String::from_utf8_lossy(&request).into_owned();
    let (line, rest) = text.split_once("\r\n").unwrap_or((&text, ""));
    record(line);
    let mut plain = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
    write!(plain, "{line}\r\nConnection: close\r\n{rest}").unwrap();
    let mut response = Vec::new();
    plain.read_to_end(&mut response).unwrap();
    let _ = tls.write_all(&response);
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

/// Terminates TLS on `https://localhost:PORT` and forwards each request to `upstream`.
fn tls_front(ca: &TestCa, upstream: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = ca.server_config.clone();
    thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = config.clone();
            thread::spawn(move || forward_tls(tcp, config, upstream, |_| {}));
        }
    });
    port
}

/// A CONNECT proxy that records the targets it was asked for.
fn connect_proxy() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    thread::spawn(move || {
        for mut client in listener.incoming().flatten() {
            let log = log.clone();
            thread::spawn(move || {
                let head = String::from_utf8_lossy(&read_request(&mut client)).into_owned();
                let target = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                log.lock()
                    .unwrap()
                    .push(head.lines().next().unwrap_or_default().to_string());
                let Some(port) = target
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse::<u16>().ok())
                else {
                    return;
                };
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", port)) else {
                    return;
                };
                client
                    .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    .unwrap();
                let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                let up = thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut u2);
                    let _ = u2.shutdown(std::net::Shutdown::Write);
                });
                let (mut c3, mut u3) = (client, upstream);
                let _ = std::io::copy(&mut u3, &mut c3);
                let _ = c3.shutdown(std::net::Shutdown::Write);
                let _ = up.join();
            });
        }
    });
    (port, seen)
}

fn https_credentials(env: &TestEnv, tls_port: u16) -> std::path::PathBuf {
    let path = env.path("https-creds.json");
    env.google.add_refresh_token("1//tls");
    let creds = serde_json::json!({
        "type": "authorized_user", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "refresh_token": "1//tls", "token_uri": format!("https://localhost:{tls_port}/token"),
    });
    std::fs::write(&path, creds.to_string()).unwrap();
    path
}

/// The fake server behind `https://localhost:PORT` with a certificate from a new test CA: the
/// port, a credential file whose token endpoint is there, and the CA's PEM bundle (not trusted
/// until a test points `SSL_CERT_FILE` at it).
fn https_token_endpoint(env: &TestEnv) -> (u16, PathBuf, PathBuf) {
    let ca = TestCa::new("gemauth test CA", "localhost");
    let upstream = env.google.base.rsplit(':').next().unwrap().parse().unwrap();
    let tls_port = tls_front(&ca, upstream);
    let bundle = env.path("ca.pem");
    std::fs::write(&bundle, &ca.ca_pem).unwrap();
    (tls_port, https_credentials(env, tls_port), bundle)
}

fn a_private_ca_is_trusted_only_through_ssl_cert_file() {
    let env = TestEnv::new();
    let (tls_port, creds, bundle) = https_token_endpoint(&env);
    let before = std::fs::read(&creds).unwrap();

    let mut cmd = env.cmd();
    cmd.args(["print-access-token", "--credential-file"])
        .arg(&creds);
    let untrusted = Running::spawn(cmd, env.path("browser-args")).finish();
    assert_eq!(untrusted.code(), 1, "{}", untrusted.stderr);
    assert!(
        untrusted
            .stderr
            .contains(&format!("https://localhost:{tls_port}/token"))
    );
    assert!(
        untrusted.stderr.to_lowercase().contains("certificate"),
        "{}",
        untrusted.stderr
    );
    assert_eq!(std::fs::read(&creds).unwrap(), before);
    assert!(env.google.seen("/token").is_empty());

    let mut cmd = env.cmd();
    cmd.args(["print-access-token", "--credential-file"])
        .arg(&creds)
        .env("SSL_CERT_FILE", &bundle);
    let trusted = Running::spawn(cmd, env.path("browser-args")).finish();
    assert_eq!(trusted.code(), 0, "{}", trusted.stderr);
    assert_eq!(trusted.stdout, "ya29.access-1\n");
}

fn https_proxy_is_used_and_no_proxy_bypasses_it() {
    let env = TestEnv::new();
    let (tls_port, creds, bundle) = https_token_endpoint(&env);
    let (proxy_port, seen) = connect_proxy();

    let mut cmd = env.cmd();
    cmd.args(["print-access-token", "--credential-file"])
        .arg(&creds)
        .env("SSL_CERT_FILE", &bundle)
        .env("HTTPS_PROXY", format!("http://127.0.0.1:{proxy_port}"));
    let proxied = Running::spawn(cmd, env.path("browser-args")).finish();
    assert_eq!(proxied.code(), 0, "{}", proxied.stderr);
    assert_eq!(
        seen.lock().unwrap().clone(),
        vec![format!("CONNECT localhost:{tls_port} HTTP/1.1")]
    );

    for cached in env.cached_tokens() {
        std::fs::remove_file(cached).unwrap();
    }
    let mut cmd = env.cmd();
    cmd.args(["print-access-token", "--credential-file"])
        .arg(&creds)
        .env("SSL_CERT_FILE", &bundle)
        .env("HTTPS_PROXY", format!("http://127.0.0.1:{proxy_port}"))
        .env("NO_PROXY", "localhost");
    let direct = Running::spawn(cmd, env.path("browser-args")).finish();
    assert_eq!(direct.code(), 0, "{}", direct.stderr);
    assert_eq!(seen.lock().unwrap().len(), 1, "NO_PROXY bypassed the proxy");
    assert_eq!(env.google.seen_grants("refresh_token").len(), 2);
}

/// `status --check` behind a proxy that re-signs TLS (here: a server whose CA is not trusted):
/// the network check names the proxy in use and the variables that add a CA.
fn status_check_names_the_proxy_and_the_ca_variables_when_a_certificate_is_not_trusted() {
    let env = TestEnv::new();
    let (_tls_port, creds, bundle) = https_token_endpoint(&env);
    let (proxy_port, _seen) = connect_proxy();
    let proxy = format!("http://user:pl4nted@127.0.0.1:{proxy_port}");
    let args = [
        "status",
        "--check",
        "--credential-file",
        creds.to_str().unwrap(),
    ];
    let done = env.run_with(&args, &[("HTTPS_PROXY", proxy.as_str())]);
    assert_eq!(done.code(), 1, "{}", done.stderr);
    assert_eq!(done.stdout, "");
    let line = done
        .stderr
        .lines()
        .find(|l| l.contains("TLS certificate is not trusted"))
        .unwrap_or_else(|| panic!("no TLS line:\n{}", done.stderr));
    assert!(line.contains("✗"), "{line}");
    assert!(
        line.contains(&format!(
            "through the proxy http://127.0.0.1:{proxy_port}/ (HTTPS_PROXY)"
        )),
        "{line}"
    );
    assert!(
        line.contains("CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE")
            && line.contains("SSL_CERT_FILE")
            && line.contains("SSL_CERT_DIR"),
        "{line}"
    );
    assert!(!done.stderr.contains("pl4nted"), "{}", done.stderr);
    // With the CA given, every check passes.
    let done = env.run_with(
        &args,
        &[
            ("HTTPS_PROXY", proxy.as_str()),
            ("SSL_CERT_FILE", bundle.to_str().unwrap()),
            ("GOOGLE_CLOUD_QUOTA_PROJECT", PROJECT_ID),
        ],
    );
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert!(
        done.stdout
            .contains("✓ Google's servers are reachable through the proxy"),
        "{}",
        done.stdout
    );
}

/// A proxy that inspects TLS, as corporate ones do: it accepts `CONNECT`, answers the
/// client's handshake itself with a certificate for `localhost` signed by its own CA, reads the
/// decrypted request and forwards it to `upstream` (the fake server, plain http). Records the
/// `CONNECT` lines and the request lines it decrypted.
fn inspecting_proxy(ca: &TestCa, upstream: u16) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (log, config) = (seen.clone(), ca.server_config.clone());
    thread::spawn(move || {
        for mut client in listener.incoming().flatten() {
            let (log, config) = (log.clone(), config.clone());
            thread::spawn(move || {
                let head = String::from_utf8_lossy(&read_request(&mut client)).into_owned();
                log.lock()
                    .unwrap()
                    .push(head.lines().next().unwrap_or_default().to_string());
                client
                    .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    .unwrap();
                forward_tls(client, config, upstream, |line| {
                    log.lock().unwrap().push(line.to_string());
                });
            });
        }
    });
    (port, seen)
}

fn a_tls_inspecting_proxy_works_once_its_ca_is_given_in_either_variable() {
    let env = TestEnv::new();
    let ca = TestCa::new("Corporate TLS inspection CA", "localhost");
    let upstream = env.google.base.rsplit(':').next().unwrap().parse().unwrap();
    let (proxy_port, seen) = inspecting_proxy(&ca, upstream);
    // The "real" server's port: nothing listens there, the proxy answers for it.
    let server_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let creds = https_credentials(&env, server_port);
    let bundle = env.path("corporate-ca.pem");
    std::fs::write(&bundle, &ca.ca_pem).unwrap();
    let proxy = format!("http://127.0.0.1:{proxy_port}");
    let run = |vars: &[(&str, &str)]| {
        let mut cmd = env.cmd();
        cmd.args(["print-access-token", "--credential-file"])
            .arg(&creds)
            .env("HTTPS_PROXY", &proxy);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        Running::spawn(cmd, env.path("browser-args")).finish()
    };

    let refused = run(&[]);
    assert_eq!(refused.code(), 1, "{}", refused.stderr);
    assert_eq!(refused.stdout, "");
    let hint = refused
        .stderr
        .lines()
        .find(|l| l.starts_with("hint:"))
        .unwrap_or_default();
    assert!(
        hint.contains("CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE") && hint.contains("SSL_CERT_FILE"),
        "{}",
        refused.stderr
    );
    assert!(env.google.seen("/token").is_empty());

    let bundle = bundle.to_str().unwrap();
    for (i, variable) in ["CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE", "SSL_CERT_FILE"]
        .into_iter()
        .enumerate()
    {
        for cached in env.cached_tokens() {
            std::fs::remove_file(cached).unwrap();
        }
        let trusted = run(&[(variable, bundle)]);
        assert_eq!(trusted.code(), 0, "{variable}: {}", trusted.stderr);
        assert_eq!(trusted.stdout, format!("ya29.access-{}\n", i + 1));
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().filter(|l| l.starts_with("POST /token")).count(),
        2,
        "the proxy read both requests in the clear: {seen:?}"
    );
    assert!(seen.contains(&format!("CONNECT localhost:{server_port} HTTP/1.1")));
}

fn an_unusable_ca_file_is_an_error_naming_its_variable() {
    let env = TestEnv::new();
    let (_tls_port, creds, _bundle) = https_token_endpoint(&env);
    let garbage = env.path("not-a-bundle.pem");
    std::fs::write(&garbage, "hello\n").unwrap();
    let missing = env.path("missing.pem");
    for (variable, file, problem) in [
        (
            "CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE",
            &missing,
            "cannot use it",
        ),
        ("SSL_CERT_FILE", &garbage, "holds no PEM certificate"),
        (
            "CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE",
            &garbage,
            "holds no PEM certificate",
        ),
    ] {
        let mut cmd = env.cmd();
        cmd.args(["print-access-token", "--credential-file"])
            .arg(&creds)
            .env(variable, file);
        let done = Running::spawn(cmd, env.path("browser-args")).finish();
        assert_eq!(done.code(), 1, "{}", done.stderr);
        assert_eq!(done.stdout, "");
        let first = done.stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!("error: {variable}=")) && first.contains(problem),
            "{}",
            done.stderr
        );
        assert!(
            done.stderr
                .contains(&format!("hint: point {variable} at a PEM file")),
            "{}",
            done.stderr
        );
        assert_eq!(done.stderr.lines().count(), 2, "{}", done.stderr);
    }
    assert!(env.google.seen("/token").is_empty());
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        a_private_ca_is_trusted_only_through_ssl_cert_file,
        https_proxy_is_used_and_no_proxy_bypasses_it,
        status_check_names_the_proxy_and_the_ca_variables_when_a_certificate_is_not_trusted,
        a_tls_inspecting_proxy_works_once_its_ca_is_given_in_either_variable,
        an_unusable_ca_file_is_an_error_naming_its_variable,
    ]
}
