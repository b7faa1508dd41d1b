//! The metadata server's defences: which requests are refused before routing (no
//! `Metadata-Flavor: Google`, any forwarding header, a Host name a web page could control, a
//! method other than GET), and the bounds on connections (an idle or slow client is cut off).

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::http::request::Parts;
use hyper::{Method, StatusCode, header};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

/// Largest request head (request line and headers) the server reads.
pub(super) const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most headers a request may have (hyper answers 431 beyond).
pub(super) const MAX_HEADERS: usize = 64;
/// hyper's smallest allowed read buffer; the head limit above is what bounds a request.
pub(super) const READ_BUFFER_BYTES: usize = 16 * 1024;

/// Most connections being refused at once when every slot is taken; beyond, they are closed.
pub(super) const MAX_REFUSING: usize = 64;

/// The whole answer to a connection that finds every slot taken.
const BUSY: &[u8] = concat!(
    "HTTP/1.1 503 Service Unavailable\r\n",
    "Metadata-Flavor: Google\r\n",
    "Content-Type: text/plain; charset=utf-8\r\n",
    "Content-Length: 45\r\n",
    "Connection: close\r\n",
    "\r\n",
    "Too many connections to the metadata server.\n",
)
.as_bytes();

/// Answers 503 to a connection the server has no slot for, on a task of its own (at most
/// [`MAX_REFUSING`] at a time, each bounded to a second), then closes it. The request is read
/// (and dropped) first, so that closing does not reset the connection before the client reads.
pub(super) fn refuse_busy(stream: tokio::net::TcpStream, refusing: &Arc<Semaphore>) {
    let Ok(permit) = Arc::clone(refusing).try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let mut stream = stream;
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let mut head = [0u8; 4096];
            let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut head)).await;
            stream.write_all(BUSY).await?;
            stream.shutdown().await
        })
        .await;
        drop(permit);
    });
}

/// Why a request is refused before it is routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Refusal {
    pub status: StatusCode,
    pub reason: &'static str,
}

/// Checks a request the way GCE does, and more: forwarded requests and requests without the
/// flavor header are refused (a proxy or a web page cannot reach tokens), as are Host names that
/// are not a loopback or internal name (DNS rebinding), and every method but GET.
pub(super) fn check(parts: &Parts, allowed_hosts: &[String]) -> Result<(), Refusal> {
    if parts.headers.contains_key("x-forwarded-for")
        || parts.headers.contains_key(header::FORWARDED)
    {
        return Err(Refusal {
            status: StatusCode::FORBIDDEN,
            reason: "Request had an X-Forwarded-For or Forwarded header: the metadata server \
                     does not answer requests that went through a proxy.",
        });
    }
    let mut flavors = parts.headers.get_all("metadata-flavor").iter();
    let flavor_ok = matches!((flavors.next(), flavors.next()), (Some(v), None) if v == "Google");
    if !flavor_ok {
        return Err(Refusal {
            status: StatusCode::FORBIDDEN,
            reason: "Missing or wrong Metadata-Flavor header: send `Metadata-Flavor: Google`.",
        });
    }
    if let Some(host) = parts.headers.get(header::HOST)
        && !host_allowed(host.to_str().unwrap_or_default(), allowed_hosts)
    {
        return Err(Refusal {
            status: StatusCode::FORBIDDEN,
            reason: "Host name not accepted: use an IP address, localhost, a name ending in \
                     .internal, or one given with --allow-host.",
        });
    }
    if parts.method != Method::GET {
        return Err(Refusal {
            status: StatusCode::METHOD_NOT_ALLOWED,
            reason: "Only GET is supported.",
        });
    }
    Ok(())
}

/// Whether a `Host` header names this server in a way no web page can: an IP address, `localhost`
/// (or `*.localhost`), `metadata`, a name under `.internal` (metadata.google.internal,
/// host.docker.internal, host.containers.internal), or a name the user allowed. A page that
/// rebinds its own domain to 127.0.0.1 sends its own domain, and is refused.
pub(super) fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        // [v6]:port
        Some(rest) => match rest.split_once(']') {
            Some((v6, port)) if port.is_empty() || valid_port(port) => {
                return v6.parse::<std::net::Ipv6Addr>().is_ok();
            }
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if valid_port(port) => name,
            Some(_) => return false,
            None => host,
        },
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if name.is_empty() {
        return false;
    }
    name.parse::<IpAddr>().is_ok()
        || name == "localhost"
        || name == "metadata"
        || name.ends_with(".localhost")
        || name.ends_with(".internal")
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(&name))
}

fn valid_port(port: &str) -> bool {
    port.strip_prefix(':')
        .is_some_and(|p| p.parse::<u16>().is_ok())
        || port.parse::<u16>().is_ok()
}

/// A connection that fails with `TimedOut` after `idle` without a byte read or written, so that
/// idle keep-alive connections do not hold a connection slot for ever (hyper's header timeout
/// covers a request that has started).
pub(super) struct IdleTimeout<T> {
    inner: T,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
}

impl<T> IdleTimeout<T> {
    pub(super) fn new(inner: T, idle: Duration) -> Self {
        IdleTimeout {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn touch(&mut self) {
        self.timer.as_mut().reset(Instant::now() + self.idle);
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.timer.as_mut().poll(cx).is_ready()
    }

    /// A write that made progress restarts the clock; one that waits fails once it ran out.
    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(n)) => {
                self.touch();
                Poll::Ready(Ok(n))
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            other => other,
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection idle for too long")
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.touch();
                }
                Poll::Ready(result)
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, data);
        this.after_write(cx, written)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.after_write(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)], method: Method) -> Parts {
        let mut builder = hyper::Request::builder().method(method).uri("/");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn requests_are_checked_in_order() {
        let ok = [("metadata-flavor", "Google"), ("host", "127.0.0.1:8169")];
        assert_eq!(check(&parts(&ok, Method::GET), &[]), Ok(()));
        let status = |h: &[(&str, &str)], m: Method| check(&parts(h, m), &[]).map_err(|r| r.status);
        assert_eq!(
            status(&[("host", "127.0.0.1")], Method::GET),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            status(&[("metadata-flavor", "google")], Method::GET),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            status(
                &[("metadata-flavor", "Google"), ("metadata-flavor", "Google")],
                Method::GET
            ),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            status(&[ok[0], ("x-forwarded-for", "")], Method::GET),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            status(&[ok[0], ("forwarded", "for=1.2.3.4")], Method::GET),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            status(&ok, Method::POST),
            Err(StatusCode::METHOD_NOT_ALLOWED)
        );
        assert_eq!(
            status(&ok, Method::HEAD),
            Err(StatusCode::METHOD_NOT_ALLOWED)
        );
        // The refusal of a proxied request comes first, even for another method.
        assert_eq!(
            status(&[("x-forwarded-for", "1.2.3.4")], Method::POST),
            Err(StatusCode::FORBIDDEN)
        );
    }

    #[test]
    fn the_busy_answer_is_well_formed() {
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut response = httparse::Response::new(&mut headers);
        let head = match response.parse(BUSY).unwrap() {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("partial"),
        };
        assert_eq!(response.code, Some(503));
        let length = response
            .headers
            .iter()
            .find(|h| h.name == "Content-Length")
            .unwrap();
        assert_eq!(length.value, (BUSY.len() - head).to_string().as_bytes());
    }

    #[test]
    fn host_names_a_web_page_controls_are_refused() {
        for good in [
            "127.0.0.1",
            "127.0.0.1:8169",
            "[::1]:8169",
            "[::1]",
            "localhost:8169",
            "LOCALHOST",
            "metadata.google.internal",
            "metadata.google.internal.",
            "metadata",
            "host.docker.internal:8169",
            "host.containers.internal:8169",
            "10.0.0.5:80",
        ] {
            assert!(host_allowed(good, &[]), "{good}");
        }
        for bad in [
            "evil.example.com",
            "evil.example.com:8169",
            "127.0.0.1.nip.io:8169",
            "localhost.evil.com",
            "",
            ":8169",
            "[::1]x",
            "127.0.0.1:port",
        ] {
            assert!(!host_allowed(bad, &[]), "{bad}");
        }
        assert!(host_allowed("mds.lan:8169", &["MDS.lan".to_string()]));
    }
}
