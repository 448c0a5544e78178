#![no_main]
//! See `linrt_fuzz::contracts::words` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| linrt_fuzz::contracts::words(data));
