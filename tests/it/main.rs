//! gemauth's integration tests, one module per area, in one test binary (one link instead of
//! one per file). Each test runs the real `gemauth` binary against the in-process fake Google
//! server of [`harness`], in an environment of its own.
//!
//! Tests that need a program besides gemauth (node with oidc-provider, Python with google-auth,
//! curl, groff, zsh, fish, git, kubectl) or root (a tmpfs mount) are compiled as ignored, with the reason, when `build.rs` did not
//! find it; with `GEMAUTH_REQUIRE_INTEROP=1` (set by `.ci/run`) none is ignored, and a missing
//! program fails its tests.

mod harness;

mod adc_types;
mod credential_helpers;
mod curl_command;
mod docker_answers;
mod edge_cases;
mod features;
mod headless;
mod hints;
mod identity_tokens;
mod interop_google_auth;
mod interop_oidc;
mod library;
mod login;
mod login_destination;
mod man_pages;
mod network;
mod print_access_token;
#[cfg(unix)]
mod process;
mod reliability;
mod revoke;
mod secrets;
mod token_json;
mod untrusted_input;
#[cfg(windows)]
mod windows;
