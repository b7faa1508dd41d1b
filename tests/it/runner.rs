//! The runner of the `it` test binary (`harness = false` in Cargo.toml, run by libtest-mimic):
//! each module lists its tests with [`trials!`], and a test that needs a program besides gemauth
//! names it ([`Needs`]). Whether this machine has it is decided when the tests run, not when
//! they are built: each program is looked for once per run, the first time a test needs it. A
//! test whose program is missing is reported as ignored with the reason; with
//! `GEMAUTH_REQUIRE_INTEROP=1` (set by `.ci/run`) it fails instead.
//!
//! A panicking test fails with the panic's message (libtest-mimic catches the panic).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub(crate) use libtest_mimic::Trial;
use libtest_mimic::{Completion, Failed};

/// A program (or privilege) some tests need besides gemauth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Needs {
    Curl,
    Groff,
    Zsh,
    Fish,
    /// Python with google-auth: GEMAUTH_TEST_PYTHON, else python3.
    GoogleAuth,
    /// node, and oidc-provider in tests/interop/node_modules.
    OidcProvider,
    /// node, and google-auth-library in tests/interop/node_modules.
    GoogleAuthLibrary,
    /// gcloud: google-cloud-cli's in /usr/lib/google-cloud-sdk, else on PATH.
    Gcloud,
    Git,
    /// GEMAUTH_TEST_KUBECTL, kubectl on PATH, or google-cloud-cli's.
    Kubectl,
    /// Root: to mount a small tmpfs (the disk-full test) or to act as another user, `nobody`,
    /// through setpriv (the cache another user created).
    Root,
}

const ALL: [Needs; 11] = [
    Needs::Curl,
    Needs::Groff,
    Needs::Zsh,
    Needs::Fish,
    Needs::GoogleAuth,
    Needs::OidcProvider,
    Needs::GoogleAuthLibrary,
    Needs::Gcloud,
    Needs::Git,
    Needs::Kubectl,
    Needs::Root,
];

impl Needs {
    /// Why a test that needs it is ignored when it is missing.
    fn reason(self) -> &'static str {
        match self {
            Needs::Curl => "curl not found (`bash .ci/run` installs it)",
            Needs::Groff => "groff not found (`bash .ci/run` installs it)",
            Needs::Zsh => "zsh not found (`bash .ci/run` installs it)",
            Needs::Fish => "fish not found (`bash .ci/run` installs it)",
            Needs::GoogleAuth => {
                "needs a Python with google-auth: GEMAUTH_TEST_PYTHON, else python3 (`bash .ci/run` installs one)"
            }
            Needs::OidcProvider => {
                "needs node and `npm ci --prefix tests/interop` (`bash .ci/run` does both)"
            }
            Needs::GoogleAuthLibrary => {
                "needs node and `npm ci --prefix tests/interop` (google-auth-library; `bash .ci/run` does both)"
            }
            Needs::Gcloud => {
                "gcloud is not installed (google-cloud-cli: /usr/lib/google-cloud-sdk)"
            }
            Needs::Git => "git is not installed (`bash .ci/run` installs it)",
            Needs::Kubectl => "kubectl is not installed (`bash .ci/run` installs it)",
            Needs::Root => {
                "needs root, to mount a small tmpfs or act as another user (CI runs as root)"
            }
        }
    }

    /// Whether this machine has it: looked for once per run.
    pub(crate) fn found(self) -> bool {
        static FOUND: [OnceLock<bool>; ALL.len()] = [const { OnceLock::new() }; ALL.len()];
        *FOUND[self as usize].get_or_init(|| self.probe())
    }

    fn probe(self) -> bool {
        match self {
            Needs::Curl => runs("curl", &["--version"]),
            Needs::Groff => runs("groff", &["--version"]),
            Needs::Zsh => runs("zsh", &["-c", "true"]),
            Needs::Fish => runs("fish", &["-c", "true"]),
            Needs::GoogleAuth => runs(
                &python(),
                &["-c", "import google.auth, google.auth.transport.requests"],
            ),
            Needs::OidcProvider => {
                interop_dir()
                    .join("node_modules/oidc-provider/package.json")
                    .is_file()
                    && runs("node", &["--version"])
            }
            Needs::GoogleAuthLibrary => {
                interop_dir()
                    .join("node_modules/google-auth-library/package.json")
                    .is_file()
                    && runs("node", &["--version"])
            }
            Needs::Gcloud => {
                Path::new("/usr/lib/google-cloud-sdk/bin/gcloud").is_file()
                    || runs("gcloud", &["--version"])
            }
            Needs::Git => runs("git", &["--version"]),
            Needs::Kubectl => match std::env::var_os("GEMAUTH_TEST_KUBECTL") {
                Some(path) if !path.is_empty() => Path::new(&path).is_file(),
                _ => {
                    runs("kubectl", &["version", "--client"])
                        || Path::new("/usr/lib/google-cloud-sdk/bin/kubectl").is_file()
                }
            },
            Needs::Root => is_root(),
        }
    }
}

/// The Python the google-auth tests run: GEMAUTH_TEST_PYTHON, else python3.
pub(crate) fn python() -> String {
    std::env::var("GEMAUTH_TEST_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".into())
}

/// tests/interop: the other implementations' scripts and their packages.
pub(crate) fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// True when `program ARGS` can be started and succeeds.
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[cfg(unix)]
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

#[cfg(not(unix))]
fn is_root() -> bool {
    false
}

/// GEMAUTH_REQUIRE_INTEROP=1: a missing program fails the tests that need it.
pub(crate) fn required() -> bool {
    std::env::var("GEMAUTH_REQUIRE_INTEROP").is_ok_and(|v| v == "1")
}

/// One test: `module::name`, as libtest names it (the filter, `--exact` and `--skip` match
/// that). `needs` is checked when the test runs.
pub(crate) fn trial(module: &str, name: &str, test: fn(), needs: Option<Needs>) -> Trial {
    let module = module.strip_prefix("it::").unwrap_or(module);
    Trial::ignorable_test(format!("{module}::{name}"), move || {
        if let Some(needs) = needs.filter(|needs| !needs.found()) {
            if required() {
                return Err(Failed::from(format!(
                    "GEMAUTH_REQUIRE_INTEROP=1, but this test's program is missing: {}",
                    needs.reason()
                )));
            }
            return Ok(Completion::ignored_with(needs.reason()));
        }
        test();
        Ok(Completion::Completed)
    })
}

/// The tests of a module as trials, in the order given: `trials![a, b => Git, #[cfg(unix)] c]`
/// (`=> Git`: the test needs [`Needs::Git`]). A `cfg` attribute leaves the test out where it is
/// not compiled.
macro_rules! trials {
    ($($(#[$attr:meta])* $test:ident $(=> $needs:ident)?),* $(,)?) => {
        Vec::<$crate::runner::Trial>::from([$(
            $(#[$attr])*
            $crate::runner::trial(
                module_path!(),
                stringify!($test),
                $test,
                None $(.or(Some($crate::runner::Needs::$needs)))?,
            ),
        )*])
    };
}
pub(crate) use trials;
