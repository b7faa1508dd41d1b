//! Build script. Tells the binary its target triple (`gemauth --version`). For the integration
//! tests (tests/it): looks, once per build, for the programs
//! some of them need besides gemauth, and sets a cfg for each one found. A test whose program is
//! missing is compiled as ignored, with the reason, so that `cargo test` counts it as ignored and
//! not as passed. With GEMAUTH_REQUIRE_INTEROP=1 (set by .ci/run) every cfg is set: nothing is
//! ignored, and a missing program fails its tests. A cross build (Windows tests run under Wine)
//! sets none of them.
//!
//! The search runs again when PATH, GEMAUTH_TEST_PYTHON or GEMAUTH_REQUIRE_INTEROP change, or
//! tests/interop does (`npm ci --prefix tests/interop`). After installing a program some other
//! way (`pip install google-auth`), `touch build.rs`.

use std::path::Path;
use std::process::{Command, Stdio};

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo::rustc-env=GEMAUTH_TARGET={target}");
    println!("cargo::rerun-if-changed=tests/interop");
    for var in [
        "PATH",
        "GEMAUTH_TEST_PYTHON",
        "GEMAUTH_TEST_KUBECTL",
        "GEMAUTH_REQUIRE_INTEROP",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let required = std::env::var("GEMAUTH_REQUIRE_INTEROP").is_ok_and(|v| v == "1");
    let python = std::env::var("GEMAUTH_TEST_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".into());
    let oidc_provider = "tests/interop/node_modules/oidc-provider/package.json";
    let kubectl = std::env::var("GEMAUTH_TEST_KUBECTL")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "kubectl".into());
    let programs: [(&str, &dyn Fn() -> bool); 9] = [
        ("has_curl", &|| runs("curl", &["--version"])),
        ("has_groff", &|| runs("groff", &["--version"])),
        ("has_zsh", &|| runs("zsh", &["-c", "true"])),
        ("has_fish", &|| runs("fish", &["-c", "true"])),
        ("has_google_auth", &|| {
            runs(&python, &["-c", "import google.auth.transport.requests"])
        }),
        ("has_oidc_provider", &|| {
            Path::new(oidc_provider).exists() && runs("node", &["--version"])
        }),
        ("has_git", &|| runs("git", &["--version"])),
        ("has_kubectl", &|| {
            runs(&kubectl, &["version", "--client"])
                || Path::new("/usr/lib/google-cloud-sdk/bin/kubectl").exists()
        }),
        // Mounting a small tmpfs (the disk-full test) needs root.
        ("is_root", &|| {
            Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
        }),
    ];
    // The programs found are this machine's: a cross build's tests (Windows under Wine) run
    // none of them.
    let native = std::env::var("HOST").is_ok_and(|host| host == target);
    for (cfg, found) in programs {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if native && (required || found()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
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
