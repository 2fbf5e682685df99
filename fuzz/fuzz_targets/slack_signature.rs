//! Fuzz target: see `roost::fuzzing::slack_signature`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| roost::fuzzing::slack_signature(data));
