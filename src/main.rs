//! The `gemauth` binary: parse the command line, run it, map the outcome to an exit code.
//!
//! On Unix the entry point is C's `main` (`#![no_main]`), so Rust's runtime start-up is skipped.
//! Most of it costs nothing, but finding the main thread's stack guard reads and parses
//! `/proc/self/maps`: about a sixth of a cached `print-access-token`, which runs before every
//! curl call of a script. What that start-up does and gemauth needs is done here instead:
//! file descriptors 0–2 are made sure to be open, SIGPIPE is ignored, the exit flushes stdout and
//! a panic exits with 101. What is lost: the "has overflowed its stack" message (gemauth has no
//! deep recursion; serde_json limits its nesting) and the main thread's name in panic messages.

#![cfg_attr(unix, no_main)]

/// # Safety
/// Called by the C runtime, with `argv` holding `argc` NUL-terminated strings.
#[cfg(unix)]
#[unsafe(no_mangle)]
unsafe extern "C" fn main(
    argc: std::ffi::c_int,
    argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    start::standard_fds_open();
    start::ignore_sigpipe();
    // The release binary is statically linked (README, "Install"): see gemauth::names.
    if cfg!(target_feature = "crt-static") {
        gemauth::names::static_build();
    }
    // SAFETY: these are the argc and argv the C runtime passes to `main`.
    let args = unsafe { start::args(argc, argv) };
    // A panic (in builds that unwind) exits with 101 as under Rust's runtime, instead of
    // aborting at this C boundary. process::exit, unlike returning to C, flushes stdout.
    let code = std::panic::catch_unwind(|| run(start::parse(args))).unwrap_or(101);
    std::process::exit(i32::from(code))
}

#[cfg(not(unix))]
fn main() -> std::process::ExitCode {
    use clap::Parser;
    std::process::ExitCode::from(run(gemauth::cli::Cli::parse()))
}

fn run(cli: gemauth::cli::Cli) -> u8 {
    match gemauth::commands::run(cli) {
        Ok(code) => code,
        Err(err) => gemauth::error::report(&err),
    }
}

#[cfg(unix)]
mod start {
    use std::ffi::{CStr, OsStr, OsString, c_char, c_int};
    use std::os::unix::ffi::OsStrExt;

    /// Opens /dev/null on whichever of file descriptors 0, 1 and 2 are closed, as Rust's runtime
    /// does: otherwise a file gemauth opens (a lock, a credential) could become its stdout, and
    /// the token or an error would be written into it. The descriptors are inheritable (no
    /// O_CLOEXEC), so that the programs gemauth runs (curl, a credential executable) get them
    /// too. Like Rust's runtime, gemauth aborts when one is closed and /dev/null cannot be opened.
    pub fn standard_fds_open() {
        for fd in 0..=2 {
            // SAFETY: fcntl(F_GETFD) only queries a descriptor number.
            if unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1 {
                continue;
            }
            // SAFETY: a NUL-terminated path. The lowest free descriptor is returned, so while
            // `fd` is closed the result is at most `fd`.
            let opened = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
            if opened != fd {
                std::process::abort();
            }
        }
    }

    /// Writes to a closed pipe or socket fail with EPIPE instead of killing the process, as
    /// under Rust's runtime: a reader that went away gets a clean error, and HTTP code sees
    /// a connection error.
    pub fn ignore_sigpipe() {
        // SAFETY: sets a signal disposition; no handler code runs, no other thread exists yet.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
    }

    /// `Cli::parse_from`, except that clap's command tree is left for the process's end to free
    /// (a twelfth of a cached `print-access-token` went to dropping it).
    pub fn parse(args: Vec<OsString>) -> gemauth::cli::Cli {
        use clap::{CommandFactory, FromArgMatches};
        let mut command = gemauth::cli::Cli::command();
        let parsed = command
            .try_get_matches_from_mut(args)
            .and_then(|mut matches| gemauth::cli::Cli::from_arg_matches_mut(&mut matches))
            .map_err(|e| e.format(&mut command));
        std::mem::forget(command);
        parsed.unwrap_or_else(|e| e.exit())
    }

    /// The command line as `OsString`s, from C's `argc`/`argv`.
    ///
    /// # Safety
    /// `argv` must point to `argc` valid NUL-terminated strings, as C's `main` receives them.
    pub unsafe fn args(argc: c_int, argv: *const *const c_char) -> Vec<OsString> {
        let count = usize::try_from(argc).unwrap_or(0);
        (0..count)
            // SAFETY: i < argc, so argv[i] is readable (the caller's contract).
            .map(|i| unsafe { *argv.add(i) })
            .filter(|arg| !arg.is_null())
            // SAFETY: a non-null argv entry is a NUL-terminated string (the caller's contract).
            .map(|arg| OsStr::from_bytes(unsafe { CStr::from_ptr(arg) }.to_bytes()).to_os_string())
            .collect()
    }
}
