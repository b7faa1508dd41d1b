//! Running Google's Python google-auth against the fake server: the interoperability tests
//! (`interop_google_auth`, `workforce`, `aws_sources`, `impersonation`) start the runner's
//! Python the same way, isolated in the test's HOME and gcloud directory.

use std::ffi::OsString;
use std::process::Command;

use super::*;

/// Runs the runner's Python (`GEMAUTH_TEST_PYTHON`, else `python3`) with `args` in a cleared
/// environment (PATH, the test's HOME and `CLOUDSDK_CONFIG`, `NO_GCE_CHECK=True` so no metadata
/// server is asked), asserts it succeeded and returns its stdout.
pub(crate) fn run_google_auth(env: &TestEnv, args: &[OsString]) -> Vec<u8> {
    let output = Command::new(crate::runner::python())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.path("home"))
        .env("CLOUDSDK_CONFIG", env.gcloud_dir())
        .env("NO_GCE_CHECK", "True")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "google-auth failed: {stderr}");
    output.stdout
}
