//! gemauth's integration tests, one module per area, in one test binary (one link instead of
//! one per file). Each test runs the real `gemauth` binary against the in-process fake Google
//! server of [`harness`], in an environment of its own.
//!
//! A `harness = false` test binary: [`main`] collects every module's `tests()` and hands them to
//! libtest-mimic, which takes libtest's options (a name filter, `--exact`, `--skip`, `--list`,
//! `--ignored`, `--test-threads`) and prints its summary line. Tests that need a program besides
//! gemauth (node with oidc-provider, Python with google-auth, curl, groff, zsh, fish, git,
//! kubectl) or root (a tmpfs mount, acting as `nobody`) are reported as ignored, with the reason, when the program
//! is missing at run time; with `GEMAUTH_REQUIRE_INTEROP=1` (set by `.ci/run`) none is ignored,
//! and a missing program fails its tests ([`runner`]). Platform-specific tests stay `cfg`-gated.

mod harness;
mod runner;

mod adc_types;
mod aws_sources;
mod credential_helpers;
mod curl_command;
mod docker_answers;
mod doctor;
mod edge_cases;
mod features;
mod headless;
mod hints;
mod identity_tokens;
mod impersonation;
mod interop_google_auth;
mod interop_oidc;
mod library;
mod login;
mod login_destination;
mod man_pages;
#[cfg(target_os = "linux")]
mod metadata_server;
mod network;
mod print_access_token;
#[cfg(unix)]
mod process;
mod reliability;
mod revoke;
mod secrets;
mod security_cache;
mod security_endpoints;
mod security_messages;
mod token_json;
mod untrusted_input;
#[cfg(windows)]
mod windows;
mod workforce;

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let mut trials = Vec::new();
    trials.extend(adc_types::tests());
    trials.extend(aws_sources::tests());
    #[cfg(unix)]
    trials.extend(credential_helpers::tests());
    trials.extend(curl_command::tests());
    trials.extend(docker_answers::tests());
    trials.extend(doctor::tests());
    trials.extend(edge_cases::tests());
    trials.extend(features::tests());
    trials.extend(headless::tests());
    trials.extend(hints::tests());
    trials.extend(identity_tokens::tests());
    trials.extend(impersonation::tests());
    trials.extend(interop_google_auth::tests());
    trials.extend(interop_oidc::tests());
    trials.extend(library::tests());
    trials.extend(login::tests());
    trials.extend(login_destination::tests());
    trials.extend(man_pages::tests());
    #[cfg(target_os = "linux")]
    trials.extend(metadata_server::tests());
    #[cfg(target_os = "linux")]
    trials.extend(network::tests());
    trials.extend(print_access_token::tests());
    #[cfg(unix)]
    trials.extend(process::tests());
    trials.extend(reliability::tests());
    trials.extend(revoke::tests());
    trials.extend(secrets::tests());
    trials.extend(security_cache::tests());
    trials.extend(security_endpoints::tests());
    trials.extend(security_messages::tests());
    trials.extend(token_json::tests());
    trials.extend(untrusted_input::tests());
    #[cfg(windows)]
    trials.extend(windows::tests());
    trials.extend(workforce::tests());
    // In name order, as libtest runs them.
    trials.sort_by(|a, b| a.name().cmp(b.name()));
    libtest_mimic::run(&args, trials).exit();
}
