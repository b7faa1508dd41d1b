//! The authorization-code flow of an installed app: the authorization request (PKCE, `state`),
//! the browser, the loopback listener that receives the redirect, and the pasted answer. What the
//! user reads about it is written by `commands/login.rs`, from the [`Notice`]s sent here. This
//! file only names the parts and what the rest of the crate may use; lowest first: `callback`
//! (what an answer means), `event` (what happens while waiting), `browser`, `listener` and
//! `paste` (the three sources of events), `authorize` (the wait itself).

mod authorize;
mod browser;
mod callback;
mod error;
mod event;
mod listener;
mod paste;

pub(crate) use authorize::{
    AuthorizationRequest, Options, authorization_request, authorize, redirect_uri,
    workforce_authorization_request, workforce_redirect_uri,
};
pub(crate) use callback::Outcome;
#[cfg(any(test, feature = "fuzzing"))]
#[cfg_attr(not(feature = "fuzzing"), allow(unreachable_pub))]
pub use callback::{Callback, parse_callback};
pub(crate) use error::{Error, Result};
pub(crate) use event::Notice;
pub(crate) use listener::bind;
#[cfg(any(test, feature = "fuzzing"))]
#[cfg_attr(not(feature = "fuzzing"), allow(unreachable_pub))]
pub use listener::parse_request;
#[cfg(any(test, feature = "fuzzing"))]
#[cfg_attr(not(feature = "fuzzing"), allow(unreachable_pub))]
pub use paste::parse_paste;
