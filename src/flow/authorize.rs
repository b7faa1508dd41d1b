//! One authorization attempt: the URL with PKCE (S256), a fresh `state`, offline access and
//! forced consent; the options of the wait; and the wait for whichever answer comes first (the
//! listener's redirect or a paste).

use std::net::TcpListener as StdListener;

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use url::Url;

use super::callback::{Callback, Outcome};
use super::event::{Event, Notice};
use super::{Error, Result};
use super::{browser, listener, paste};
use crate::credentials::{ClientConfig, LoginConfig, WORKFORCE_CLIENT_ID};

/// How many bad pastes are tolerated before the login gives up.
pub(super) const MAX_PASTE_ATTEMPTS: u32 = 3;

/// How the login is completed: options of [`authorize`].
pub(crate) struct Options {
    pub timeout: std::time::Duration,
    /// Start in paste mode and open no browser.
    pub no_browser: bool,
    /// The listener's port was chosen with `--port`: a forwarded port (`ssh -L`) can still bring
    /// the redirect when nothing else can answer.
    pub port_fixed: bool,
}

/// The redirect URI for a listener's port: exactly `http://127.0.0.1:PORT/`.
pub(crate) fn redirect_uri(port: u16) -> String {
    format!("http://127.0.0.1:{port}/")
}

/// One authorization attempt: the URL to open and the secrets to check the answer against.
pub(crate) struct AuthorizationRequest {
    pub url: Url,
    pub state: CsrfToken,
    pub verifier: PkceCodeVerifier,
    pub redirect_uri: String,
}

/// Builds the authorization URL: code flow, PKCE S256, a fresh 256-bit `state`, offline access
/// and forced consent so that a refresh token is issued.
pub(crate) fn authorization_request(
    client: &ClientConfig,
    scopes: &[String],
    redirect_uri: String,
) -> Result<AuthorizationRequest> {
    let redirect = RedirectUrl::new(redirect_uri.clone())
        .map_err(|e| crate::Error::Internal(format!("bad redirect URI: {e}")))?;
    let oauth = BasicClient::new(ClientId::new(client.client_id.clone()))
        .set_auth_uri(AuthUrl::from_url(client.auth_uri.clone()))
        .set_redirect_uri(redirect);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = oauth
        .authorize_url(|| CsrfToken::new_random_len(32))
        .add_scopes(scopes.iter().cloned().map(Scope::new))
        .set_pkce_challenge(challenge)
        .add_extra_param("access_type", "offline")
        .add_extra_param("prompt", "consent")
        .url();
    Ok(AuthorizationRequest {
        url,
        state,
        verifier,
        redirect_uri,
    })
}

/// The redirect URI of a workforce login for a listener's port: `http://localhost:PORT/`, as
/// gcloud registers it for its client (the listener is on 127.0.0.1, which localhost names).
pub(crate) fn workforce_redirect_uri(port: u16) -> String {
    format!("http://localhost:{port}/")
}

/// Builds the authorization URL of a workforce identity federation login with exactly the
/// parameters gcloud sends: `response_type=code`, gcloud's `client_id`, the `redirect_uri`, its
/// four `scope`s, a fresh `state`, `access_type=offline`, PKCE S256 (a 128-character verifier,
/// as google-auth-oauthlib makes) and the pool's `provider_name`; no `prompt`.
pub(crate) fn workforce_authorization_request(
    config: &LoginConfig,
    redirect_uri: String,
) -> Result<AuthorizationRequest> {
    let redirect = RedirectUrl::new(redirect_uri.clone())
        .map_err(|e| crate::Error::Internal(format!("bad redirect URI: {e}")))?;
    let oauth = BasicClient::new(ClientId::new(WORKFORCE_CLIENT_ID.to_string()))
        .set_auth_uri(AuthUrl::from_url(config.auth_url.clone()))
        .set_redirect_uri(redirect);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256_len(96);
    let mut request = oauth
        .authorize_url(|| CsrfToken::new_random_len(32))
        .add_scopes(LoginConfig::scopes().into_iter().map(Scope::new))
        .set_pkce_challenge(challenge)
        .add_extra_param("access_type", "offline");
    if let Some(provider) = config.provider_name() {
        request = request.add_extra_param("provider_name", provider.to_string());
    }
    let (url, state) = request.url();
    Ok(AuthorizationRequest {
        url,
        state,
        verifier,
        redirect_uri,
    })
}

/// Shows the authorization URL (through `notify`), opens the browser (or not), and waits for
/// whichever comes first: the browser's redirect to the loopback listener, or the redirect
/// address pasted on standard input (paste mode: `--no-browser`, or when no browser can be
/// opened).
pub(crate) async fn authorize(
    listener: StdListener,
    request: &AuthorizationRequest,
    options: Options,
    notify: &mut dyn FnMut(Notice),
) -> Result<Outcome> {
    let port = listener
        .local_addr()
        .map_err(|e| crate::Error::Internal(format!("cannot read the listener's address: {e}")))?
        .port();
    let listener = TcpListener::from_std(listener)
        .map_err(|e| crate::Error::Internal(format!("cannot use the listener: {e}")))?;
    let (tx, events) = mpsc::unbounded_channel::<Event>();
    tokio::spawn(listener::listen(
        listener,
        request.state.secret().clone(),
        tx.clone(),
    ));
    let paste_mode = start(request, port, &options, &tx, notify);
    let mut wait = Wait {
        port,
        redirect_uri: &request.redirect_uri,
        state: request.state.secret(),
        tx,
        paste_mode,
        port_fixed: options.port_fixed,
        stdin_closed: false,
        bad_pastes: 0,
    };
    wait.run(events, options.timeout, notify).await
}

/// Shows the URL and starts the browser, or paste mode; returns whether paste mode is on.
fn start(
    request: &AuthorizationRequest,
    port: u16,
    options: &Options,
    tx: &mpsc::UnboundedSender<Event>,
    notify: &mut dyn FnMut(Notice),
) -> bool {
    let url = request.url.as_str();
    notify(Notice::Url {
        url,
        browser: !options.no_browser,
    });
    if options.no_browser {
        paste::start(port, &request.redirect_uri, tx, notify);
        return true;
    }
    let failed = tx.clone();
    let started = if browser::available() {
        browser::open(url, move |reason| {
            let _ = failed.send(Event::BrowserFailed(reason));
        })
    } else {
        Err("no display (DISPLAY/WAYLAND_DISPLAY) and no $BROWSER".into())
    };
    match started {
        Ok(()) => {
            notify(Notice::Waiting {
                timeout: options.timeout,
            });
            false
        }
        Err(reason) => {
            notify(Notice::BrowserFailed {
                reason: &reason,
                started: false,
            });
            paste::start(port, &request.redirect_uri, tx, notify);
            true
        }
    }
}

/// The state of the wait for an answer.
struct Wait<'a> {
    port: u16,
    /// Where the browser is sent after the approval.
    redirect_uri: &'a str,
    state: &'a str,
    tx: mpsc::UnboundedSender<Event>,
    paste_mode: bool,
    port_fixed: bool,
    stdin_closed: bool,
    bad_pastes: u32,
}

impl Wait<'_> {
    async fn run(
        &mut self,
        mut events: mpsc::UnboundedReceiver<Event>,
        timeout: std::time::Duration,
        notify: &mut dyn FnMut(Notice),
    ) -> Result<Outcome> {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            let event = tokio::select! {
                Some(event) = events.recv() => event,
                () = &mut deadline => {
                    return Err(Error::LoginTimeout {
                        secs: timeout.as_secs(),
                        stdin_closed: self.stdin_closed,
                        // The caller knows the command line: `commands/login.rs` fills it in.
                        rerun: None,
                    });
                }
            };
            if let Some(outcome) = self.handle(event, notify)? {
                return Ok(outcome);
            }
        }
    }

    /// Handles one event; `Some` ends the wait.
    fn handle(&mut self, event: Event, notify: &mut dyn FnMut(Notice)) -> Result<Option<Outcome>> {
        match event {
            Event::Redirect(outcome) => {
                if self.paste_mode && !self.stdin_closed {
                    notify(Notice::RedirectWhilePrompting);
                }
                return Ok(Some(outcome));
            }
            Event::BrowserFailed(reason) if !self.paste_mode => {
                notify(Notice::BrowserFailed {
                    reason: &reason,
                    started: true,
                });
                paste::start(self.port, self.redirect_uri, &self.tx, notify);
                self.paste_mode = true;
            }
            Event::BrowserFailed(_) => {}
            Event::Line { text, from_pipe } => {
                if from_pipe {
                    notify(Notice::PastedFromPipe);
                }
                return self.pasted(&text, notify);
            }
            Event::StdinClosed => {
                self.stdin_closed = true;
                // No browser was opened and nothing can be pasted: only a forwarded, fixed port
                // could still bring the redirect. Without one, nothing can answer: fail now.
                if self.paste_mode && !self.port_fixed {
                    return Err(Error::NothingCanAnswer);
                }
                notify(Notice::StdinClosed { port: self.port });
            }
        }
        Ok(None)
    }

    /// A pasted line: the answer, or another prompt (up to [`MAX_PASTE_ATTEMPTS`] bad ones).
    fn pasted(&mut self, line: &str, notify: &mut dyn FnMut(Notice)) -> Result<Option<Outcome>> {
        if line.trim().is_empty() {
            notify(Notice::Prompt);
            return Ok(None);
        }
        let reason = match paste::parse_paste(line, self.state, self.port) {
            Ok(Callback::Code(code)) => {
                return Ok(Some(Outcome::Code(AuthorizationCode::new(code))));
            }
            Ok(Callback::Denied { error, description }) => {
                return Ok(Some(Outcome::Denied { error, description }));
            }
            Ok(Callback::Ignored { reason, .. }) | Err(reason) => reason,
        };
        self.bad_pastes += 1;
        if self.bad_pastes >= MAX_PASTE_ATTEMPTS {
            return Err(Error::BadPaste {
                reason: reason.to_string(),
                attempts: self.bad_pastes,
            });
        }
        notify(Notice::BadPaste {
            reason,
            attempt: self.bad_pastes,
            max: MAX_PASTE_ATTEMPTS,
        });
        notify(Notice::Prompt);
        Ok(None)
    }
}
