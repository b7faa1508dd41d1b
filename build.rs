//! Build script: tells the binary its target triple, which `gemauth --version` prints. Nothing
//! else: it runs no program and looks at nothing on the machine. Whether the integration tests'
//! tools (curl, node, Python's google-auth, …) are there is decided when the tests run
//! (tests/it/runner.rs).

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo::rustc-env=GEMAUTH_TARGET={target}");
}
