//! Fuzzes the parsers of AWS instance-metadata answers (IMDSv2 token, availability zone, role
//! name, role credentials) of `external_account` AWS sources.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gemauth::fuzzing::parse_aws_metadata_answer(data);
});
