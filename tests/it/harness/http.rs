//! Raw HTTP as a browser or another program would send it, URL queries, and a loopback port
//! on which nothing answers.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A minimal HTTP/1.1 GET over a raw socket, as a browser would send it.
pub(crate) struct Page {
    pub status: u16,
    /// Header names in lower case; of a repeated header, the last value.
    pub headers: HashMap<String, String>,
    /// Every header line in order, repeated ones included (Set-Cookie).
    pub header_lines: Vec<(String, String)>,
    pub body: String,
}

pub(crate) fn http_get(url: &str) -> Page {
    let url = url::Url::parse(url).expect("valid URL");
    let host = url.host_str().expect("host");
    let port = url.port_or_known_default().expect("port");
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    raw_request(
        host,
        port,
        &format!("GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"),
    )
}

pub(crate) fn raw_request(host: &str, port: u16, request: &str) -> Page {
    let mut stream = TcpStream::connect((host, port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let header_lines: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Page {
        status,
        headers: header_lines.iter().cloned().collect(),
        header_lines,
        body: body.to_string(),
    }
}

/// A loopback port that refuses connections at once: a socket bound to it but not listening.
/// While it lives no other program can bind the port, so a test's "nothing answers there"
/// cannot meet a server that happened to start on a port the test had closed.
pub(crate) struct ClosedPort(tokio::net::TcpSocket);

impl ClosedPort {
    pub(crate) fn new() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("create a socket");
        socket
            .bind((std::net::Ipv4Addr::LOCALHOST, 0).into())
            .expect("bind a loopback port");
        ClosedPort(socket)
    }

    pub(crate) fn port(&self) -> u16 {
        self.0.local_addr().expect("bound address").port()
    }
}

/// Parses the query of a URL into a map (last value wins).
pub(crate) fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}
