#![no_main]
//! See `linrt_fuzz::contracts::audio` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| linrt_fuzz::contracts::audio(data));
