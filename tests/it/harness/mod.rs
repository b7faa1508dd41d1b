//! Test harness: an in-process fake Google authorization server on 127.0.0.1 that records what
//! it receives, a fake browser (`BROWSER` points at a script that hands the URL to the test,
//! which then follows it), and an isolated environment (HOME, XDG dirs, CLOUDSDK_CONFIG) per test.
//!
//! One file per concern: `google` (the server, its state and dispatch), `endpoints` and
//! `credential_endpoints` (what it answers), `canned` (answers a test queues), `env` (the
//! isolated [`TestEnv`]), `browser` (the fake browser), `running` (background processes), `tls`
//! (a test CA for https servers), `http` (raw requests), `jwt` (tokens, fixtures and the test
//! key), `python` (google-auth run against the fake server), `status_report` (the JSON of `status --check`) and `workforce` (gcloud's workforce identity federation login and its STS endpoints). Tests `use crate::harness::*`.

pub(crate) const CLIENT_ID: &str = "123-test.apps.googleusercontent.com";
pub(crate) const CLIENT_SECRET: &str = "GOCSPX-test-client-secret";
pub(crate) const PROJECT_ID: &str = "test-project-1";
pub(crate) const EMAIL: &str = "dev@example.com";

mod browser;
mod canned;
mod credential_endpoints;
mod endpoints;
mod env;
mod google;
mod http;
mod jwt;
mod python;
mod running;
mod status_report;
#[cfg(unix)]
mod tls;
mod workforce;

pub(crate) use browser::*;
pub(crate) use canned::*;
use credential_endpoints::*;
use endpoints::*;
pub(crate) use env::*;
pub(crate) use google::*;
pub(crate) use http::*;
pub(crate) use jwt::*;
pub(crate) use python::*;
pub(crate) use running::*;
pub(crate) use status_report::*;
#[cfg(unix)]
pub(crate) use tls::*;
pub(crate) use workforce::*;
