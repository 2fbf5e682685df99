//! Fuzz target: see `roost::fuzzing::definition`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| roost::fuzzing::definition(data));
