//! Name lookups (hosts, users) in the statically linked build: glibc's built-in services only.
//!
//! The release binary is statically linked (README, "Install"). glibc then still reads
//! /etc/nsswitch.conf and would load the shared-library modules it names (`mdns4_minimal`,
//! `resolve`, `myhostname`, `sss`…): built against the system's glibc, such a module crashes a
//! static binary (a segfault, which `tests/process.rs` shows even on the glibc it was linked
//! with). So before its first lookup a static gemauth limits hosts to `files dns` (/etc/hosts,
//! then DNS per /etc/resolv.conf) and users to `files` (/etc/passwd). A dynamically linked
//! gemauth keeps the system's configuration. The cached token path looks nothing up and never
//! gets here.

/// Call before anything that may resolve a host name or look up a user.
pub fn before_lookups() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            if statically_linked() {
                builtin_services_only();
            }
        });
    }
}

/// Whether this process was started without a program interpreter (ld.so), i.e. is static.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn statically_linked() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector; AT_BASE is where the kernel loaded the
    // program interpreter, and 0 when there is none.
    unsafe { libc::getauxval(libc::AT_BASE) == 0 }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn builtin_services_only() {
    use std::ffi::{c_char, c_int};
    unsafe extern "C" {
        /// glibc, <nss.h>: replaces the nsswitch.conf line of one database.
        fn __nss_configure_lookup(dbname: *const c_char, service_line: *const c_char) -> c_int;
    }
    // SAFETY: NUL-terminated static strings. Called once (under the Once), before any lookup.
    unsafe {
        __nss_configure_lookup(c"hosts".as_ptr(), c"files dns".as_ptr());
        __nss_configure_lookup(c"passwd".as_ptr(), c"files".as_ptr());
    }
}
