//! Fuzzes the workforce login configuration loader (`gemauth login --login-config`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gemauth::fuzzing::parse_login_config(data);
});
