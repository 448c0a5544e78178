//! Streaming speech recognition with a CTC model, `no_std` and heap-free: what the
//! model carries in its `app.*` metadata ([`AsrInfo`], runtime/FORMAT.md), the
//! [`Decoder`] (greedy CTC or the lexicon-constrained beam search), and the
//! [`Recognizer`] that turns audio, in chunks of any size, into partial and final
//! transcripts with word times. The CLI (`linrt asr`), the tests and the firmware
//! use this one implementation.

mod decoder;
mod in_buffer;
pub mod info;
mod json;
pub mod recognizer;

pub use decoder::{Decoder, WordSpan};
pub use in_buffer::BufferedRecognizer;
pub use info::AsrInfo;
#[cfg(feature = "std")]
pub use recognizer::RecognizerBuffers;
pub use recognizer::{Event, Recognizer, RecognizerMemory, RecognizerSizes, Utterance, Word};
