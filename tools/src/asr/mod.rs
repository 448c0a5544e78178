//! `linrt asr`: streaming speech recognition with a CTC model, around the
//! runtime's recognizer ([`linrt::asr`]: the `app.*` metadata, the front-end, state
//! rebuilds, endpoints and decoding). This module adds what needs `std`: word
//! lists, grammars and hotwords read from files, and owned events. The command is
//! `commands/asr.rs`.

pub mod decoding;
pub mod latency;
pub mod recognizer;

pub use decoding::{with_recognizer, DecodeOptions, DecoderKind, Tables, Vocabulary};
pub use linrt::asr::AsrInfo;
pub use linrt::decode::BeamBuffers;
pub use recognizer::{Event, Recognizer, Utterance, Word};
