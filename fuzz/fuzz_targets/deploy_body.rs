//! Fuzz target: see `roost::fuzzing::deploy_body`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| roost::fuzzing::deploy_body(data));
