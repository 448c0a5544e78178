//! Compressed audio files through symphonia: FLAC, Ogg Vorbis, MP3, and AAC in
//! MP4/M4A. WAV files and raw PCM keep their own readers (they stream from pipes
//! without a container to probe). Channels are averaged to mono exactly as those
//! readers average them, so a FLAC made from a WAV gives the WAV's samples bit for bit.

use std::collections::VecDeque;

use anyhow::{anyhow, bail, Result};
use symphonia::core::codecs::audio::well_known::*;
use symphonia::core::codecs::audio::{AudioCodecId, AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream, ReadOnlySource};
use symphonia::core::meta::MetadataOptions;

use super::pcm::{average, check_sample_rate};
use super::AudioSource;

/// What linrt reads, for the messages of files it cannot.
pub const READABLE: &str = "WAV, FLAC, Ogg Vorbis, MP3, AAC in MP4/M4A";

/// Whether the first bytes of a stream are a compressed format this reader takes
/// from a pipe (FLAC, Ogg, MP3 with an ID3 tag). MP4 needs a seekable file: its
/// index usually comes last.
pub fn is_compressed_stream(head: &[u8]) -> bool {
    [&b"fLaC"[..], b"OggS", b"ID3"].iter().any(|magic| head.starts_with(magic))
}

enum State {
    Open,
    Ended,
    /// The message is repeated by every later call.
    Failed(String),
}

/// A compressed audio file's first audio track, decoded packet by packet into mono
/// f32 samples.
pub struct CompressedReader {
    format: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track: u32,
    rate: u32,
    codec: String,
    /// Decoded mono samples not handed out yet.
    pending: VecDeque<f32>,
    /// One packet's samples, interleaved, as f64 (exact for every integer format).
    interleaved: Vec<f64>,
    /// Frames decoded so far, to place a failure in time.
    decoded: u64,
    /// Frames the container declares, when it does: a file that ends short of them
    /// was cut (an MP3 stream has no other way to tell).
    declared: Option<u64>,
    state: State,
}

impl CompressedReader {
    /// Probes `source` (the file name's `extension` as a hint) and opens a decoder for
    /// its default audio track.
    pub fn open(source: Box<dyn MediaSource>, extension: Option<&str>) -> Result<Self> {
        let mut hint = Hint::new();
        if let Some(extension) = extension {
            hint.with_extension(extension);
        }
        let stream = MediaSourceStream::new(source, Default::default());
        let format = symphonia::default::get_probe()
            .probe(&hint, stream, FormatOptions::default(), MetadataOptions::default())
            .map_err(|e| match e {
                SymphoniaError::IoError(e) => anyhow!("cannot read it: {e}"),
                _ => anyhow!("not an audio format linrt reads ({READABLE})"),
            })?;
        let track = format.default_track(TrackType::Audio).ok_or_else(|| anyhow!("no audio track"))?;
        let params = track.codec_params.as_ref().and_then(|p| p.audio()).ok_or_else(|| anyhow!("no audio track"))?;
        let codec = codec_name(params.codec);
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(params, &AudioDecoderOptions::default())
            .map_err(|e| match e {
                SymphoniaError::Unsupported(_) => {
                    anyhow!("its {codec} audio is not supported (linrt decodes FLAC, Vorbis, MP3 and AAC-LC)")
                }
                e => anyhow!("cannot decode its {codec} audio: {e}"),
            })?;
        let rate = params.sample_rate.ok_or_else(|| anyhow!("its {codec} track gives no sample rate"))?;
        check_sample_rate(rate)?;
        let (track, declared) = (track.id, track.num_frames);
        Ok(CompressedReader {
            format,
            decoder,
            track,
            rate,
            codec,
            pending: VecDeque::new(),
            interleaved: Vec::new(),
            decoded: 0,
            declared,
            state: State::Open,
        })
    }

    /// A compressed stream from a pipe (stdin): probed and decoded without seeking.
    pub fn from_pipe(reader: impl std::io::Read + Send + Sync + 'static) -> Result<Self> {
        Self::open(Box::new(ReadOnlySource::new(reader)), None)
    }

    /// The codec's name, for messages ("FLAC", "Vorbis", "MP3", "AAC").
    pub fn codec(&self) -> &str {
        &self.codec
    }

    /// Decodes the next packet of the track into `pending`; false at the end or on
    /// a failure (kept in `state`).
    fn decode_packet(&mut self) -> bool {
        let packet = loop {
            match self.format.next_packet() {
                Ok(Some(packet)) if packet.track_id == self.track => break packet,
                Ok(Some(_)) => continue,
                Ok(None) => {
                    self.state = match self.declared {
                        Some(declared) if self.decoded < declared => State::Failed(format!(
                            "truncated {} file: it ends after {:.3} s of the {:.3} s it declares",
                            self.codec,
                            self.seconds(),
                            declared as f64 / f64::from(self.rate)
                        )),
                        _ => State::Ended,
                    };
                    return false;
                }
                Err(e) => return self.fail(e),
            }
        };
        let (rate, channels) = match self.decoder.decode(&packet) {
            Ok(buffer) => {
                buffer.copy_to_vec_interleaved(&mut self.interleaved);
                (buffer.spec().rate(), buffer.spec().channels().count().max(1))
            }
            Err(e) => return self.fail(e),
        };
        if rate != self.rate {
            let at = self.seconds();
            self.state = State::Failed(format!("the sample rate changes from {} to {rate} Hz at {at:.3} s", self.rate));
            return false;
        }
        for frame in self.interleaved.chunks_exact(channels) {
            // A lossy decoder may overshoot full scale a little on loud audio; clip
            // it, as a player does. Integer formats are within [-1, 1) already.
            let sample = average(frame.iter().copied());
            if sample.is_nan() {
                let at = self.seconds();
                self.state = State::Failed(format!("the {} decoder gave NaN at {at:.3} s", self.codec));
                return false;
            }
            self.pending.push_back(sample.clamp(-1.0, 1.0));
            self.decoded += 1;
        }
        true
    }

    fn seconds(&self) -> f64 {
        self.decoded as f64 / f64::from(self.rate)
    }

    fn fail(&mut self, e: SymphoniaError) -> bool {
        let at = self.seconds();
        let message = match e {
            SymphoniaError::ResetRequired => {
                format!("the stream changes its format at {at:.3} s (chained streams are not supported)")
            }
            SymphoniaError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                format!("truncated {} file: it ends mid-packet after {at:.3} s", self.codec)
            }
            SymphoniaError::IoError(e) => format!("reading audio input: {e}"),
            e => format!("corrupt {} data at {at:.3} s: {e}", self.codec),
        };
        self.state = State::Failed(message);
        false
    }
}

impl AudioSource for CompressedReader {
    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn read(&mut self, out: &mut Vec<f32>, max: usize) -> Result<usize> {
        while self.pending.len() < max && matches!(self.state, State::Open) && self.decode_packet() {}
        let n = self.pending.len().min(max);
        if n > 0 {
            // Good samples first; a failure comes with a later call.
            out.extend(self.pending.drain(..n));
            return Ok(n);
        }
        match &self.state {
            State::Failed(message) => bail!("{message}"),
            _ => Ok(0),
        }
    }
}

/// A codec's name for messages, supported or not.
fn codec_name(id: AudioCodecId) -> String {
    let name = match id {
        CODEC_ID_FLAC => "FLAC",
        CODEC_ID_VORBIS => "Vorbis",
        CODEC_ID_MP1 => "MP1",
        CODEC_ID_MP2 => "MP2",
        CODEC_ID_MP3 => "MP3",
        CODEC_ID_AAC => "AAC",
        CODEC_ID_OPUS => "Opus",
        CODEC_ID_SPEEX => "Speex",
        CODEC_ID_ALAC => "ALAC",
        CODEC_ID_AC3 => "AC-3",
        CODEC_ID_EAC3 => "E-AC-3",
        CODEC_ID_DCA => "DTS",
        CODEC_ID_WMA => "WMA",
        CODEC_ID_WAVPACK => "WavPack",
        CODEC_ID_MONKEYS_AUDIO => "Monkey's Audio",
        CODEC_ID_TTA => "TTA",
        _ => return format!("codec {id}"),
    };
    name.to_string()
}
