//! Audio input for `linrt asr`: WAV files, compressed files (FLAC, Ogg Vorbis, MP3,
//! AAC in MP4/M4A), raw PCM (stdin), the microphone, and the band-limited resampler
//! that brings any of them to the model's sample rate.
//! Every source yields mono f32 samples in [-1, 1] through [`AudioSource`].

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{bail, Context, Result};

pub mod compressed;
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

/// An audio file: WAV through the WAV reader, anything else through symphonia (the
/// file name's extension is a hint, the content decides). Returns the source and a
/// description for the user: "name (encoding, rate, channels)".
pub fn open_file(path: &Path) -> Result<(Box<dyn AudioSource>, String)> {
    let name = path.display().to_string();
    let mut file = File::open(path).with_context(|| format!("cannot open {name}"))?;
    let mut head = [0u8; 4];
    let got = file.read(&mut head).with_context(|| format!("cannot read {name}"))?;
    file.seek(SeekFrom::Start(0)).with_context(|| format!("cannot read {name}"))?;
    if got == 0 {
        bail!("{name}: empty file");
    }
    // A WAV file, or one named so: the WAV reader says best what is wrong with it.
    let extension = path.extension().and_then(|e| e.to_str());
    if head[..got] == *b"RIFF" || extension.is_some_and(|e| e.eq_ignore_ascii_case("wav")) {
        let wav = wav::WavReader::new(BufReader::new(file)).with_context(|| name.clone())?;
        let description = format!("{name} ({}, {} Hz, {} ch)", wav.encoding_name(), wav.sample_rate(), wav.channels());
        return Ok((Box::new(wav), description));
    }
    let reader = compressed::CompressedReader::open(Box::new(file), extension).with_context(|| name.clone())?;
    let description = format!("{name} ({}, {} Hz)", reader.codec(), reader.sample_rate());
    Ok((Box::new(reader), description))
}

/// Test helpers shared by the readers' tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::io::{self, Read};

    use super::AudioSource;

    /// A reader that hands over at most `step` bytes a call, like a slow pipe.
    pub struct Trickle<'a> {
        pub data: &'a [u8],
        pub step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            let (head, rest) = self.data.split_at(n);
            buf[..n].copy_from_slice(head);
            self.data = rest;
            Ok(n)
        }
    }

    /// Reads to the end in blocks of `block`; returns the samples and the error, if any.
    pub fn read_all(source: &mut impl AudioSource, block: usize) -> (Vec<f32>, Option<String>) {
        let mut out = Vec::new();
        loop {
            match source.read(&mut out, block) {
                Ok(0) => return (out, None),
                Ok(_) => {}
                Err(e) => return (out, Some(format!("{e:#}"))),
            }
        }
    }
}
