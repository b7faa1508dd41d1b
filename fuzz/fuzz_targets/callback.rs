//! Fuzzes what the loopback listener does with a request from the network.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(target) = gemauth::fuzzing::parse_request(data) {
        let _ = gemauth::fuzzing::parse_callback(&target, "expected-state");
    }
});
