#![no_main]
//! See `linrt_fuzz::contracts::onnx` for what this target checks.
//!
//! libfuzzer-sys aborts from its panic hook, before any `catch_unwind` runs; the
//! converter catches tract's panics on malformed protobufs by design, so this
//! target puts back a silent hook. A panic that escapes the converter still
//! reaches libfuzzer-sys's own `catch_unwind`, which aborts: a crash, as it must be.

use std::sync::Once;

static QUIET: Once = Once::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    linrt_fuzz::contracts::onnx(data)
});
