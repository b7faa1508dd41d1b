//! Name lookups (hosts, users) in the statically linked build: glibc's built-in services only.
//!
//! The release binary is statically linked (README, "Install"). glibc then still reads
//! /etc/nsswitch.conf and would load the shared-library modules it names (`mdns4_minimal`,
//! `resolve`, `myhostname`, `sss`…): built against the system's glibc, such a module crashes a
//! static binary (a segfault, which `tests/process.rs` shows even on the glibc it was linked
//! with). So before its first lookup a static gemauth limits hosts to `files dns` (/etc/hosts,
//! then DNS per /etc/resolv.conf) and users to `files` (/etc/passwd): glibc has these built in
//! since 2.34, so the static build needs glibc 2.34 or later where it is built. A dynamically
//! linked gemauth, and any program using the library, keeps the system's configuration. The
//! cached token path looks nothing up and never gets here.

use std::sync::atomic::{AtomicBool, Ordering};

static STATIC_BUILD: AtomicBool = AtomicBool::new(false);

/// Tells gemauth that this is the statically linked build. The binary calls it at start-up when
/// compiled with `-C target-feature=+crt-static` (a compile-time fact of the binary crate alone,
/// since `cargo rustc` passes the flag to it only); programs that use the library never need to.
pub fn static_build() {
    STATIC_BUILD.store(true, Ordering::Relaxed);
}

/// Call before anything that may resolve a host name or look up a user.
pub(crate) fn before_lookups() {
    if STATIC_BUILD.load(Ordering::Relaxed) {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(builtin_services_only);
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn builtin_services_only() {
    use std::ffi::{c_char, c_int};
    unsafe extern "C" {
        /// glibc, <nss.h>: replaces the nsswitch.conf line of one database; 0 on success.
        fn __nss_configure_lookup(dbname: *const c_char, service_line: *const c_char) -> c_int;
    }
    for (db, services) in [(c"hosts", c"files dns"), (c"passwd", c"files")] {
        // SAFETY: NUL-terminated static strings. Called once (under the Once), before the
        // process's first lookup.
        let status = unsafe { __nss_configure_lookup(db.as_ptr(), services.as_ptr()) };
        if status != 0 {
            tracing::debug!(?db, status, "could not restrict the name services");
        }
    }
}
