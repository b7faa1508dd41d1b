//! The metadata server's token cache: one entry per key (a scope set, an ID token request, the
//! identity), one refresh at a time per key (single-flight), background refresh ahead of expiry
//! for keys clients use, and the policy while the source is down: a cached token is served until
//! it expires, then the source's reason is returned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::source::{AccessToken, IdToken, IdTokenRequest, Identity, SourceError, TokenSource};

/// At most this many keys are kept; the least recently used idle one goes first. Clients choose
/// scopes and audiences, so the map must not grow with what they send.
const MAX_KEYS: usize = 64;
/// Longest wait between retries of a failing source.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The timing policy.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    /// Refresh this long before expiry (at most half the token's lifetime).
    pub refresh_margin: Duration,
    /// A token with less than this left is never handed out.
    pub min_lifetime: Duration,
    /// How long a request waits for a refresh before it gets a 503.
    pub wait_timeout: Duration,
    /// How long one call to the source may take.
    pub source_timeout: Duration,
    /// How long the identity (email, project) is kept before it is asked for again.
    pub identity_ttl: Duration,
}

/// What is cached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Key {
    Access(Vec<String>),
    Id(IdTokenRequest),
    Identity,
}

#[derive(Debug, Clone)]
pub(super) enum Value {
    Access(AccessToken),
    Id(IdToken),
    Identity(Identity),
}

/// Why a request got no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Failure {
    Source(SourceError),
    /// The refresh did not finish within the request's wait.
    Timeout(Duration),
    /// The path names an account this server does not have.
    NotFound,
}

#[derive(Debug)]
struct Stored {
    value: Value,
    fetched_at: SystemTime,
    expires_at: SystemTime,
    /// A token stops working at `expires_at`; the identity is only stale then.
    hard: bool,
}

#[derive(Debug)]
struct LastFailure {
    error: SourceError,
    at: Instant,
    consecutive: u32,
}

#[derive(Debug)]
struct Entry {
    stored: Option<Stored>,
    refreshing: bool,
    failure: Option<LastFailure>,
    /// Served since the current value was stored: worth refreshing in the background.
    wanted: bool,
    last_used: Instant,
    /// Bumped when a refresh ends; waiters watch it.
    done: watch::Sender<u64>,
}

impl Entry {
    fn new(now: Instant) -> Self {
        Entry {
            stored: None,
            refreshing: false,
            failure: None,
            wanted: false,
            last_used: now,
            done: watch::Sender::new(0),
        }
    }
}

/// What a request does with an entry.
#[derive(Debug)]
enum Decision {
    /// Answer with this value; start a background refresh when `refresh` is true.
    Serve { value: Value, refresh: bool },
    /// Wait for a refresh, starting one when `start` is true.
    Wait { start: bool },
    /// Answer with the last failure (the source failed moments ago).
    Fail(SourceError),
}

pub(super) struct Cache<S> {
    source: Arc<S>,
    settings: Settings,
    entries: Mutex<HashMap<Key, Entry>>,
    /// Wakes the background refresher when an entry changed.
    wake: Notify,
}

impl<S: TokenSource> Cache<S> {
    pub(super) fn new(source: Arc<S>, settings: Settings) -> Arc<Self> {
        Arc::new(Cache {
            source,
            settings,
            entries: Mutex::new(HashMap::new()),
            wake: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Entry>> {
        // A panic while holding the lock leaves consistent data (every update is one assignment).
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An access token for `scopes` (already normalized).
    pub(super) async fn access_token(
        self: &Arc<Self>,
        scopes: Vec<String>,
    ) -> Result<AccessToken, Failure> {
        match self.get(Key::Access(scopes)).await? {
            Value::Access(token) => Ok(token),
            other => Err(mismatch(&other)),
        }
    }

    pub(super) async fn id_token(
        self: &Arc<Self>,
        request: IdTokenRequest,
    ) -> Result<IdToken, Failure> {
        match self.get(Key::Id(request)).await? {
            Value::Id(token) => Ok(token),
            other => Err(mismatch(&other)),
        }
    }

    pub(super) async fn identity(self: &Arc<Self>) -> Result<Identity, Failure> {
        match self.get(Key::Identity).await? {
            Value::Identity(identity) => Ok(identity),
            other => Err(mismatch(&other)),
        }
    }

    /// The scopes the cached token for `scopes` carries, without asking the source.
    pub(super) fn peek_access_scopes(&self, scopes: &[String]) -> Option<Vec<String>> {
        let entries = self.lock();
        match &entries
            .get(&Key::Access(scopes.to_vec()))?
            .stored
            .as_ref()?
            .value
        {
            Value::Access(token) => Some(token.scopes.clone()),
            _ => None,
        }
    }

    /// The value for `key`: cached, or after the one refresh in flight for it, within the wait.
    async fn get(self: &Arc<Self>, key: Key) -> Result<Value, Failure> {
        let deadline = Instant::now() + self.settings.wait_timeout;
        loop {
            let mut changed = {
                let mut entries = self.lock();
                let now = Instant::now();
                if !entries.contains_key(&key) {
                    evict_one(&mut entries);
                }
                let entry = entries
                    .entry(key.clone())
                    .or_insert_with(|| Entry::new(now));
                entry.last_used = now;
                match decide(entry, &self.settings, SystemTime::now(), now) {
                    Decision::Serve { value, refresh } => {
                        let newly_wanted = !entry.wanted;
                        entry.wanted = true;
                        if refresh {
                            self.start_refresh(entry, &key);
                        }
                        drop(entries);
                        if newly_wanted {
                            // The background refresher now has this entry to schedule.
                            self.wake.notify_one();
                        }
                        return Ok(value);
                    }
                    Decision::Fail(error) => return Err(Failure::Source(error)),
                    Decision::Wait { start } => {
                        if start {
                            self.start_refresh(entry, &key);
                        }
                        entry.done.subscribe()
                    }
                }
            };
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                // The refresh ended (or the entry was dropped): look again.
                Ok(_) => continue,
                Err(_) => return Err(Failure::Timeout(self.settings.wait_timeout)),
            }
        }
    }

    /// Starts the one refresh of `entry` on its own task, so that it finishes (and is cached)
    /// even when the request that started it gave up.
    fn start_refresh(self: &Arc<Self>, entry: &mut Entry, key: &Key) {
        entry.refreshing = true;
        let cache = Arc::clone(self);
        let key = key.clone();
        tokio::spawn(async move {
            let limit = cache.settings.source_timeout;
            let result = match tokio::time::timeout(limit, cache.fetch(&key)).await {
                Ok(result) => result,
                Err(_) => Err(SourceError::Unavailable(format!(
                    "the token source did not answer within {} s",
                    limit.as_secs_f64()
                ))),
            };
            cache.complete(&key, result);
        });
    }

    /// Asks the source.
    async fn fetch(&self, key: &Key) -> Result<Stored, SourceError> {
        let fetched_at = SystemTime::now();
        let (value, expires_at, hard) = match key {
            Key::Access(scopes) => {
                let token = self.source.access_token(scopes).await?;
                let expires_at = token.expires_at;
                (Value::Access(token), expires_at, true)
            }
            Key::Id(request) => {
                let token = self.source.id_token(request).await?;
                let expires_at = token.expires_at;
                (Value::Id(token), expires_at, true)
            }
            Key::Identity => {
                let identity = self.source.identity().await?;
                let expires_at = fetched_at + self.settings.identity_ttl;
                (Value::Identity(identity), expires_at, false)
            }
        };
        if hard {
            let left = expires_at
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            if left < self.settings.min_lifetime {
                return Err(SourceError::Unavailable(format!(
                    "the token source returned a token that expires in {} s",
                    left.as_secs()
                )));
            }
        }
        Ok(Stored {
            value,
            fetched_at,
            expires_at,
            hard,
        })
    }

    /// Records a refresh's outcome and wakes its waiters and the background refresher.
    fn complete(&self, key: &Key, result: Result<Stored, SourceError>) {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(key) else {
            return;
        };
        entry.refreshing = false;
        match result {
            Ok(stored) => {
                entry.stored = Some(stored);
                entry.failure = None;
                entry.wanted = false;
            }
            Err(error) => {
                tracing::debug!(key = key.describe(), %error, "metadata server: refresh failed");
                if !matches!(error, SourceError::Unavailable(_)) {
                    // Rejected or revoked: what was cached must not be handed out any more.
                    entry.stored = None;
                }
                let consecutive = entry.failure.as_ref().map_or(0, |f| f.consecutive) + 1;
                entry.failure = Some(LastFailure {
                    error,
                    at: Instant::now(),
                    consecutive,
                });
            }
        }
        entry.done.send_modify(|generation| *generation += 1);
        drop(entries);
        self.wake.notify_one();
    }

    /// Refreshes, ahead of expiry, every entry clients used since it was stored (and retries a
    /// failing source with backoff while the cached value lasts), until `stop` turns true.
    pub(super) async fn refresh_in_background(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let next = {
                let mut entries = self.lock();
                let (now, now_sys) = (Instant::now(), SystemTime::now());
                let mut next: Option<Instant> = None;
                let mut due = Vec::new();
                for (key, entry) in entries.iter() {
                    let Some(at) = background_due(entry, &self.settings, now_sys, now) else {
                        continue;
                    };
                    if at <= now {
                        due.push(key.clone());
                    } else {
                        next = Some(next.map_or(at, |n| n.min(at)));
                    }
                }
                for key in due {
                    if let Some(entry) = entries.get_mut(&key) {
                        tracing::debug!(
                            key = key.describe(),
                            "metadata server: refreshing ahead of expiry"
                        );
                        self.start_refresh(entry, &key);
                    }
                }
                next
            };
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = sleep => {}
                () = self.wake.notified() => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }
}

impl Key {
    /// For logs: what the key is, without anything a client could use.
    fn describe(&self) -> String {
        match self {
            Key::Access(scopes) => format!("access token ({} scopes)", scopes.len()),
            Key::Id(request) => format!("ID token ({:?})", request.format),
            Key::Identity => "identity".into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Source(SourceError::Unavailable(reason)) => {
                write!(f, "the token source is unavailable: {reason}")
            }
            Failure::Source(SourceError::Permanent(reason)) => {
                write!(f, "the credential cannot be used: {reason}")
            }
            Failure::Source(SourceError::BadRequest(reason)) => f.write_str(reason),
            Failure::Timeout(wait) => write!(
                f,
                "no token within {} s: the token source is slow",
                wait.as_secs_f64()
            ),
            Failure::NotFound => f.write_str("no such metadata key"),
        }
    }
}

fn mismatch(value: &Value) -> Failure {
    let kind = match value {
        Value::Access(_) => "access token",
        Value::Id(_) => "ID token",
        Value::Identity(_) => "identity",
    };
    Failure::Source(SourceError::Unavailable(format!(
        "internal error: the cache held an {kind} for another key"
    )))
}

/// Makes room for one more key: removes the least recently used entry with no refresh running.
fn evict_one(entries: &mut HashMap<Key, Entry>) {
    if entries.len() < MAX_KEYS {
        return;
    }
    let oldest = entries
        .iter()
        .filter(|(_, e)| !e.refreshing)
        .min_by_key(|(_, e)| e.last_used)
        .map(|(k, _)| k.clone());
    if let Some(key) = oldest {
        entries.remove(&key);
    }
}

/// How long to wait after `consecutive` failures before asking the source again.
fn backoff(consecutive: u32) -> Duration {
    let exp = consecutive.saturating_sub(1).min(5);
    Duration::from_secs(1u64 << exp).min(MAX_BACKOFF)
}

/// When a stored value should be refreshed: `margin` before expiry (at most half its lifetime)
/// for a token, at expiry for the identity.
fn refresh_at(stored: &Stored, settings: &Settings) -> SystemTime {
    if !stored.hard {
        return stored.expires_at;
    }
    let lifetime = stored
        .expires_at
        .duration_since(stored.fetched_at)
        .unwrap_or_default();
    stored.expires_at - settings.refresh_margin.min(lifetime / 2)
}

/// Whether a stored value may be handed out now.
fn usable(stored: &Stored, settings: &Settings, now: SystemTime) -> bool {
    !stored.hard
        || stored
            .expires_at
            .duration_since(now)
            .is_ok_and(|left| left >= settings.min_lifetime)
}

fn backoff_over(entry: &Entry, now: Instant) -> bool {
    entry
        .failure
        .as_ref()
        .is_none_or(|f| now >= f.at + backoff(f.consecutive))
}

fn decide(entry: &Entry, settings: &Settings, now_sys: SystemTime, now: Instant) -> Decision {
    let can_start = !entry.refreshing && backoff_over(entry, now);
    if let Some(stored) = entry
        .stored
        .as_ref()
        .filter(|s| usable(s, settings, now_sys))
    {
        return Decision::Serve {
            value: stored.value.clone(),
            refresh: can_start && now_sys >= refresh_at(stored, settings),
        };
    }
    if entry.refreshing {
        return Decision::Wait { start: false };
    }
    match &entry.failure {
        Some(failure) if !backoff_over(entry, now) => Decision::Fail(failure.error.clone()),
        _ => Decision::Wait { start: true },
    }
}

/// When the background refresher should refresh `entry`: only entries clients used since they
/// were stored and that can still be served (an expired token is refreshed by the next request).
fn background_due(
    entry: &Entry,
    settings: &Settings,
    now_sys: SystemTime,
    now: Instant,
) -> Option<Instant> {
    let stored = entry.stored.as_ref()?;
    if !entry.wanted || entry.refreshing || !usable(stored, settings, now_sys) {
        return None;
    }
    let until_refresh = refresh_at(stored, settings)
        .duration_since(now_sys)
        .unwrap_or_default();
    let mut at = now + until_refresh;
    if let Some(failure) = &entry.failure {
        at = at.max(failure.at + backoff(failure.consecutive));
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn settings() -> Settings {
        Settings {
            refresh_margin: Duration::from_secs(300),
            min_lifetime: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(5),
            source_timeout: Duration::from_secs(30),
            identity_ttl: Duration::from_secs(60),
        }
    }

    fn token_entry(lifetime: u64, left: u64, now_sys: SystemTime) -> Entry {
        let expires_at = now_sys + Duration::from_secs(left);
        let mut entry = Entry::new(Instant::now());
        entry.stored = Some(Stored {
            value: Value::Access(AccessToken {
                token: Secret::new("t".into()),
                expires_at,
                scopes: vec![],
            }),
            fetched_at: expires_at - Duration::from_secs(lifetime),
            expires_at,
            hard: true,
        });
        entry
    }

    #[test]
    fn a_fresh_token_is_served_without_a_refresh() {
        let now_sys = SystemTime::now();
        let entry = token_entry(3600, 3000, now_sys);
        let d = decide(&entry, &settings(), now_sys, Instant::now());
        assert!(matches!(d, Decision::Serve { refresh: false, .. }), "{d:?}");
    }

    #[test]
    fn a_token_inside_the_margin_is_served_and_refreshed_once() {
        let now_sys = SystemTime::now();
        let mut entry = token_entry(3600, 200, now_sys);
        let d = decide(&entry, &settings(), now_sys, Instant::now());
        assert!(matches!(d, Decision::Serve { refresh: true, .. }), "{d:?}");
        entry.refreshing = true;
        let d = decide(&entry, &settings(), now_sys, Instant::now());
        assert!(matches!(d, Decision::Serve { refresh: false, .. }), "{d:?}");
    }

    #[test]
    fn the_margin_is_at_most_half_a_short_lifetime() {
        let now_sys = SystemTime::now();
        // 60 s tokens: refreshed after 30 s, not at once (the margin is 300 s).
        let entry = token_entry(60, 40, now_sys);
        let d = decide(&entry, &settings(), now_sys, Instant::now());
        assert!(matches!(d, Decision::Serve { refresh: false, .. }), "{d:?}");
        let entry = token_entry(60, 20, now_sys);
        let d = decide(&entry, &settings(), now_sys, Instant::now());
        assert!(matches!(d, Decision::Serve { refresh: true, .. }), "{d:?}");
    }

    #[test]
    fn a_token_below_the_minimum_lifetime_is_never_served() {
        let now_sys = SystemTime::now();
        let mut entry = token_entry(3600, 4, now_sys);
        let d = decide(&entry, &settings(), now_sys, Instant::now());
        assert!(matches!(d, Decision::Wait { start: true }), "{d:?}");
        // After a failure moments ago: the failure, not another call to the source.
        entry.failure = Some(LastFailure {
            error: SourceError::Unavailable("down".into()),
            at: Instant::now(),
            consecutive: 1,
        });
        let d = decide(&entry, &settings(), now_sys, Instant::now());
        assert!(
            matches!(d, Decision::Fail(SourceError::Unavailable(_))),
            "{d:?}"
        );
    }

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        let secs: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn only_used_servable_entries_are_refreshed_in_the_background() {
        let now_sys = SystemTime::now();
        let now = Instant::now();
        let mut entry = token_entry(3600, 1000, now_sys);
        assert_eq!(background_due(&entry, &settings(), now_sys, now), None);
        entry.wanted = true;
        let at = background_due(&entry, &settings(), now_sys, now).unwrap();
        let wait = at - now;
        assert!(
            wait > Duration::from_secs(695) && wait <= Duration::from_secs(700),
            "{wait:?}"
        );
        let expired = token_entry(3600, 2, now_sys);
        assert_eq!(background_due(&expired, &settings(), now_sys, now), None);
    }
}
