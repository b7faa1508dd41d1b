//! The report of `gemauth status --check --format json`: on a failure it is the first line of
//! standard error (stdout stays empty), one entry per check with `name`, `ok`, `detail`, `fix`.

use super::*;

/// The report of a check that failed: on stderr (stdout stays empty), with exit `code` (3 when
/// there is no token, 1 when another check failed).
pub(crate) fn failed_report(done: &Finished, code: i32) -> serde_json::Value {
    assert_eq!(done.code(), code, "{}", done.stderr);
    assert_eq!(done.stdout, "");
    let json = done.stderr.lines().next().unwrap_or_default();
    serde_json::from_str(json).unwrap_or_else(|_| panic!("{}", done.stderr))
}

/// The check called `name` in a report.
pub(crate) fn named_check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {name} check in {report}"))
}

/// Asserts that a check's `field` (`detail` or `fix`) says `text`.
pub(crate) fn assert_check_says(check: &serde_json::Value, field: &str, text: &str) {
    assert!(check[field].as_str().unwrap().contains(text), "{check}");
}

/// `gemauth status --check --format json` for the credential file at `path`.
pub(crate) fn status_check_json(env: &TestEnv, path: &std::path::Path) -> Finished {
    env.run(&[
        "status",
        "--check",
        "--format",
        "json",
        "--credential-file",
        path.to_str().unwrap(),
    ])
}
