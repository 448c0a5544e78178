//! Audio input for `linrt asr`: WAV files, raw PCM (stdin), the microphone, and the
//! band-limited resampler that brings any of them to the model's sample rate.
//! Every source yields mono f32 samples in [-1, 1] through [`AudioSource`].

use anyhow::Result;

#[cfg(feature = "mic")]
pub mod mic;
pub mod pcm;
pub mod resample;
pub mod wav;

/// A stream of mono samples at a fixed rate, read in blocks.
pub trait AudioSource {
    /// Samples per second of what `read` returns.
    fn sample_rate(&self) -> u32;

    /// Appends up to `max` mono samples (channels already averaged) to `out` and
    /// returns how many; 0 means the stream ended normally. A failure (truncated
    /// file, bad sample, lost device) is returned only after every good sample
    /// before it has been handed out by earlier calls, so callers lose nothing.
    fn read(&mut self, out: &mut Vec<f32>, max: usize) -> Result<usize>;
}
