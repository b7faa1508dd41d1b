//! Fuzzes the credential file loader.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gemauth::fuzzing::parse_credential_file(std::path::Path::new("fuzz.json"), data);
});
