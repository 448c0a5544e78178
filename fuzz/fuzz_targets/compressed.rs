#![no_main]
//! See `linrt_fuzz::contracts::compressed` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| linrt_fuzz::contracts::compressed(data));
