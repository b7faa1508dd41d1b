//! Build script: hands the target triple to the binary for `gemauth --version`.

fn main() {
    let target = std::env::var("TARGET").expect("Cargo sets TARGET for build scripts");
    println!("cargo::rustc-env=GEMAUTH_TARGET={target}");
    println!("cargo::rerun-if-changed=build.rs");
}
