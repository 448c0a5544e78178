//! The audio front-end of speech models: samples → log-mel frames ([`Fbank`],
//! compatible with kaldi-native-fbank) → normalised, stacked encoder inputs
//! ([`FrameStacker`]). Streaming, fixed buffers, no heap: samples can arrive in
//! chunks of any size and every frame is computed from the same samples whatever
//! the chunking, so results are bit-identical.

pub mod fbank;
pub mod fft;
mod mel;
pub mod stacker;

pub use fbank::{Fbank, FbankOptions, Window, MAX_FRAME_SAMPLES, MAX_MEL_BINS};
pub use stacker::{FrameStacker, MAX_CONTEXT_FRAMES};
