//! A local GCE metadata server: the endpoints Google's client libraries use to get tokens on
//! Google Cloud, answered from a [`TokenSource`] (gemauth's refresh pipeline), on hyper's HTTP/1
//! server with bounded connections, request heads and times, and a graceful shutdown.
//!
//! `routes` maps paths to GCE's formats, `security` refuses what GCE refuses (and more) and
//! bounds connections, `refresh` caches tokens, refreshes them ahead of expiry and decides what
//! is served while the source is down, `source` is the trait the command implements.

pub(crate) mod pipeline_source;
mod refresh;
mod routes;
mod security;
pub(crate) mod source;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

pub(crate) use source::TokenSource;

use crate::error::{Error, Result};
use refresh::{Cache, Settings};
use routes::{Body, Routes};

/// The port the server listens on by default: fixed, so that `GCE_METADATA_HOST` can be set once
/// (in a shell profile, a compose file); 8169 echoes 169.254.169.254 and is clear of the ports
/// development servers and the gcloud emulators take (8080, 8081, 8085, 8086, 9010).
pub(crate) const DEFAULT_PORT: u16 = 8169;

/// What a request may take beyond its wait for a token.
const REQUEST_MARGIN: Duration = Duration::from_millis(500);

/// How the server runs. [`Config::new`] gives the defaults.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Scopes of a token requested without `?scopes=` (full URLs).
    pub default_scopes: Vec<String>,
    /// Overrides the source's project ID (`--project`).
    pub project_id: Option<String>,
    /// Host names accepted besides IP addresses, `localhost` and `*.internal` (`--allow-host`).
    pub allowed_hosts: Vec<String>,
    /// Tokens are refreshed this long before they expire (at most half their lifetime).
    pub refresh_margin: Duration,
    /// A token with less than this left is never handed out.
    pub min_lifetime: Duration,
    /// How long a request waits for a token before it gets a 503.
    pub wait_timeout: Duration,
    /// How long one call to the token source may take.
    pub source_timeout: Duration,
    /// How long the identity (email, project) is kept.
    pub identity_ttl: Duration,
    /// A client must send its request head within this time.
    pub header_read_timeout: Duration,
    /// A connection with no byte read or written for this long is closed (never less than a
    /// request may take).
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// How long a shutdown waits for requests in progress.
    pub shutdown_grace: Duration,
}

impl Config {
    pub(crate) fn new(default_scopes: Vec<String>) -> Self {
        let mut default_scopes = default_scopes;
        default_scopes.sort();
        default_scopes.dedup();
        Config {
            default_scopes,
            project_id: None,
            allowed_hosts: Vec::new(),
            refresh_margin: Duration::from_secs(300),
            min_lifetime: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(5),
            source_timeout: Duration::from_secs(30),
            identity_ttl: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            max_connections: 256,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// A bound server, not yet serving.
pub(crate) struct Server<S> {
    listener: TcpListener,
    config: Config,
    cache: Arc<Cache<S>>,
    source: Arc<S>,
}

/// Binds `addr`. Must be called inside a Tokio runtime.
pub(crate) async fn bind<S: TokenSource>(
    addr: SocketAddr,
    config: Config,
    source: S,
) -> Result<Server<S>> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        let reason = match e.kind() {
            std::io::ErrorKind::AddrInUse => "the address is already in use".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => e.to_string(),
        };
        Error::Usage(format!("cannot listen on {addr}: {reason}"))
    })?;
    let source = Arc::new(source);
    let cache = Cache::new(
        Arc::clone(&source),
        Settings {
            refresh_margin: config.refresh_margin,
            min_lifetime: config.min_lifetime,
            wait_timeout: config.wait_timeout,
            source_timeout: config.source_timeout,
            identity_ttl: config.identity_ttl,
        },
    );
    Ok(Server {
        listener,
        config,
        cache,
        source,
    })
}

/// Everything one request needs.
struct Shared<S> {
    routes: Routes<S>,
    allowed_hosts: Vec<String>,
    /// Upper bound on a whole request's handling (the token wait plus a margin).
    request_timeout: Duration,
}

impl<S: TokenSource> Server<S> {
    /// The address the server listens on (with the port the system chose for port 0).
    pub(crate) fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .map_err(|e| Error::Internal(format!("cannot read the listening address: {e}")))
    }

    /// Asks the source for the default token and the identity before clients do, so that the
    /// first request is answered from the cache and a credential that does not work is reported
    /// at start. Returns why not, when it could not (the server still serves: a new login or a
    /// source back up is picked up by the next request).
    pub(crate) async fn warm_up(&self) -> std::result::Result<(), String> {
        let token = self
            .cache
            .access_token(self.config.default_scopes.clone())
            .await;
        let identity = self.cache.identity().await;
        match (token, identity) {
            (Err(failure), _) | (_, Err(failure)) => Err(failure.to_string()),
            (Ok(_), Ok(_)) => Ok(()),
        }
    }

    /// What the source has to tell the user (see [`TokenSource::warnings`]).
    pub(crate) fn source_warnings(&self) -> Vec<String> {
        self.source.warnings()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets requests in progress finish
    /// (for at most the configured grace) and stops the background refresh.
    pub(crate) async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let Server {
            listener,
            config,
            cache,
            source: _,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let refresher = tokio::spawn(Arc::clone(&cache).refresh_in_background(stop_rx));
        let shared = Arc::new(Shared {
            routes: Routes {
                cache,
                default_scopes: config.default_scopes.clone(),
                project_id: config.project_id.clone(),
            },
            allowed_hosts: config.allowed_hosts.clone(),
            request_timeout: config.wait_timeout + REQUEST_MARGIN,
        });
        // hyper watches the connection for reads while a request waits for its token: the idle
        // limit must not cut a request that is within its own time limit.
        let idle_timeout = config
            .idle_timeout
            .max(config.wait_timeout + 2 * REQUEST_MARGIN);

        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout)
            .max_headers(security::MAX_HEADERS)
            .max_header_size(security::MAX_HEAD_BYTES)
            .max_buf_size(security::READ_BUFFER_BYTES)
            .keep_alive(true);
        let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
        let overflow = Arc::new(Semaphore::new(security::MAX_REFUSING));
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors or similar: wait instead of spinning.
                        tracing::debug!(error = %e, "metadata server: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                // Every slot is taken (by idle keep-alive connections, say): a quick 503 the
                // client can retry, rather than a wait in the backlog beyond its timeout.
                security::refuse_busy(stream, &overflow);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let io = TokioIo::new(security::IdleTimeout::new(stream, idle_timeout));
            let shared = Arc::clone(&shared);
            let service = service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(handle(&shared, request).await) }
            });
            let connection = graceful.watch(builder.serve_connection(io, service));
            tokio::spawn(async move {
                // A client that misbehaves (slow head, oversized head, reset) only ends its own
                // connection.
                if let Err(e) = connection.await {
                    tracing::trace!(error = %e, "metadata server: connection ended");
                }
                drop(permit);
            });
        }
        drop(listener);
        tracing::debug!("metadata server: shutting down");
        if tokio::time::timeout(config.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::debug!(
                "metadata server: requests still running at the end of the grace period"
            );
        }
        let _ = stop_tx.send(true);
        let _ = refresher.await;
        Ok(())
    }
}

/// Checks, routes and logs one request; every answer carries `Metadata-Flavor: Google`.
async fn handle<S: TokenSource, B>(shared: &Shared<S>, request: Request<B>) -> Response<Body> {
    let started = Instant::now();
    let (parts, _body) = request.into_parts();
    let mut response = match security::check(&parts, &shared.allowed_hosts) {
        Err(refusal) => {
            let mut response = routes::error(refusal.status, refusal.reason);
            if refusal.status == hyper::StatusCode::METHOD_NOT_ALLOWED {
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET"));
            }
            response
        }
        Ok(()) => {
            let answer = shared.routes.answer(parts.uri.path(), parts.uri.query());
            match tokio::time::timeout(shared.request_timeout, answer).await {
                Ok(response) => response,
                Err(_) => routes::error(
                    hyper::StatusCode::SERVICE_UNAVAILABLE,
                    "The request took too long; try again.",
                ),
            }
        }
    };
    let headers = response.headers_mut();
    headers.insert("metadata-flavor", HeaderValue::from_static("Google"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    tracing::debug!(
        method = %parts.method,
        path = %parts.uri.path(),
        query = %query_names(parts.uri.query()),
        status = response.status().as_u16(),
        latency_us = started.elapsed().as_micros() as u64,
        "metadata server request"
    );
    response
}

/// The query with its values left out (an audience or scopes are not secret, but nothing a
/// client sends is logged beyond what identifies the request): `audience=…&format=…`.
fn query_names(query: Option<&str>) -> String {
    let Some(query) = query else {
        return String::new();
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .take(16)
        .map(|pair| {
            let name = pair.split('=').next().unwrap_or_default();
            let name: String = name.chars().filter(|c| !c.is_control()).take(40).collect();
            format!("{name}=…")
        })
        .collect::<Vec<_>>()
        .join("&")
}
