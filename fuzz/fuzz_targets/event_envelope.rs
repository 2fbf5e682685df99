//! Fuzz target: see `roost::fuzzing::event_envelope`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| roost::fuzzing::event_envelope(data));
