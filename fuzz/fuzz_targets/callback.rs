//! Fuzzes what the loopback listener does with a request from the network.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(target) = gemauth::flow::parse_request(data) {
        let _ = gemauth::flow::parse_callback(&target, "expected-state");
    }
});
