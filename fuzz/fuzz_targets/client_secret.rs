//! Fuzzes the client secret (Desktop OAuth client) loader.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gemauth::fuzzing::parse_client_config(std::path::Path::new("fuzz.json"), data);
});
