//! Fuzz target: see `roost::fuzzing::metadata`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| roost::fuzzing::metadata(data));
