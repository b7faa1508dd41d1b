//! Fuzzes the parser of what a user pastes in `login --no-browser`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = gemauth::fuzzing::parse_paste(text, "expected-state", 8085);
    }
});
