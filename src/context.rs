//! The outside world as values, passed down to the token pipeline and the credential types: the
//! HTTP client (built on first use; a fake in unit tests), the environment and the clock, and
//! the directory of the token cache.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

pub(crate) use crate::clock::Clock;
pub(crate) use crate::env::Env;
use crate::error::Result;
use crate::oauth::Http;

/// The metadata server must answer fast or not at all.
const METADATA_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the token pipeline and the credential types reach the outside world through.
pub(crate) struct Context {
    /// The environment variables.
    pub(crate) env: Env,
    /// The clock.
    pub(crate) clock: Clock,
    /// The token cache's directory (none: nothing is cached, and there are no locks, so
    /// concurrent calls may each refresh).
    pub(crate) cache_dir: Option<PathBuf>,
    /// Why there is no cache directory (another user's, writable by others, none at all), for
    /// the user: one line, given with every token obtained through this context.
    pub(crate) cache_warning: Option<String>,
    http: OnceLock<Http>,
    metadata_http: OnceLock<Http>,
}

impl Context {
    /// The process's environment, the system clock, gemauth's cache directory (checked once per
    /// process: the user's own, writable by no one else) and a real HTTP client, built only when
    /// a request is sent (the cached path starts none).
    pub(crate) fn from_process() -> Self {
        let cache = crate::store::process_cache();
        Context {
            env: Env::Process,
            clock: Clock::System,
            cache_dir: cache.dir.clone(),
            cache_warning: cache.warning.clone(),
            http: OnceLock::new(),
            metadata_http: OnceLock::new(),
        }
    }

    /// A context for unit tests: the given variables, time, cache directory and HTTP (a fake).
    #[cfg(test)]
    pub(crate) fn fixed(
        vars: &[(&str, &str)],
        now: u64,
        cache_dir: Option<PathBuf>,
        http: Http,
    ) -> Self {
        let env = vars
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        let context = Context {
            env: Env::Fixed(env),
            clock: Clock::Fixed(now),
            cache_dir,
            cache_warning: None,
            http: OnceLock::new(),
            metadata_http: OnceLock::new(),
        };
        let _ = context.metadata_http.set(http.clone());
        let _ = context.http.set(http);
        context
    }

    /// Seconds since the Unix epoch.
    pub(crate) fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The HTTP client for OAuth and Google APIs.
    pub(crate) fn http(&self) -> Result<&Http> {
        self.http_with(&self.http, None)
    }

    /// The HTTP client for the metadata server (a short connect timeout).
    pub(crate) fn metadata_http(&self) -> Result<&Http> {
        self.http_with(&self.metadata_http, Some(METADATA_CONNECT_TIMEOUT))
    }

    fn http_with<'a>(
        &self,
        cell: &'a OnceLock<Http>,
        connect: Option<Duration>,
    ) -> Result<&'a Http> {
        if let Some(http) = cell.get() {
            return Ok(http);
        }
        let http = Http::from_env(|name| self.env.var(name), connect)?;
        Ok(cell.get_or_init(|| http))
    }
}
