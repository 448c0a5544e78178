//! Raw interleaved PCM, as `arecord -t raw` or `sox -t raw` write it to a pipe, and the
//! frame decoding the WAV reader shares with it: bytes → per-channel samples → mono f32.

use std::fmt;
use std::io::{self, ErrorKind, Read};
use std::str::FromStr;

use anyhow::{anyhow, bail, Context, Result};

use super::AudioSource;

/// Below 4 kHz is not speech audio; above 768 kHz is a corrupt header or a wrong
/// command-line value rather than a real recording.
pub(crate) const MIN_RATE: u32 = 4000;
pub(crate) const MAX_RATE: u32 = 768_000;

/// More channels than this on a raw stream is a typo, not a microphone array.
const MAX_PCM_CHANNELS: u16 = 64;

/// The most bytes one `read` call buffers, so a caller asking for `usize::MAX`
/// samples (or a WAV file with 65535 channels) cannot make us allocate gigabytes.
const MAX_BLOCK_BYTES: usize = 1 << 20;

/// The encodings `PcmEncoding::from_str` accepts, for its error message.
const ACCEPTED: &str = "U8, S16_LE (s16le), S24_3LE (s24le), S32_LE (s32le), FLOAT_LE (f32le)";

/// Checks a sample rate from a header or the command line.
pub fn check_sample_rate(rate: u32) -> Result<()> {
    if !(MIN_RATE..=MAX_RATE).contains(&rate) {
        bail!("absurd sample rate {rate} Hz (linrt accepts {MIN_RATE} to {MAX_RATE} Hz)");
    }
    Ok(())
}

/// Sample layouts of a raw stream, named as `arecord -f` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcmEncoding {
    /// Unsigned 8-bit, 128 is silence.
    U8,
    /// Signed 16-bit little-endian.
    S16Le,
    /// Signed 24-bit little-endian packed in 3 bytes (arecord's S24_3LE).
    S24Le,
    /// Signed 32-bit little-endian.
    S32Le,
    /// 32-bit IEEE float little-endian.
    F32Le,
}

impl PcmEncoding {
    /// Bytes one sample of one channel takes.
    pub fn bytes(self) -> usize {
        self.format().bytes()
    }

    /// The name `arecord -f` uses.
    pub fn name(self) -> &'static str {
        match self {
            PcmEncoding::U8 => "U8",
            PcmEncoding::S16Le => "S16_LE",
            PcmEncoding::S24Le => "S24_3LE",
            PcmEncoding::S32Le => "S32_LE",
            PcmEncoding::F32Le => "FLOAT_LE",
        }
    }

    fn format(self) -> SampleFormat {
        match self {
            PcmEncoding::U8 => SampleFormat::U8,
            PcmEncoding::S16Le => SampleFormat::S16,
            PcmEncoding::S24Le => SampleFormat::S24,
            PcmEncoding::S32Le => SampleFormat::S32,
            PcmEncoding::F32Le => SampleFormat::F32,
        }
    }
}

impl fmt::Display for PcmEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PcmEncoding {
    type Err = anyhow::Error;

    /// arecord's names (`-f`), any case, and ffmpeg's (`-f s16le`), where s24le is packed.
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "u8" => PcmEncoding::U8,
            "s16_le" | "s16le" => PcmEncoding::S16Le,
            "s24_3le" | "s24le" => PcmEncoding::S24Le,
            "s32_le" | "s32le" => PcmEncoding::S32Le,
            "float_le" | "f32le" => PcmEncoding::F32Le,
            // arecord's S24_LE looks like the packed format but is not: say so rather than misread it.
            "s24_le" => {
                bail!(
                    "S24_LE holds 24-bit samples in 4-byte words, which linrt does not read; record S24_3LE or S32_LE"
                )
            }
            _ => bail!("unknown PCM encoding {s:?}; linrt accepts {ACCEPTED}"),
        })
    }
}

/// Reads headerless interleaved PCM with the layout given on the command line.
pub struct PcmReader<R: Read> {
    stream: FrameStream<R>,
    encoding: PcmEncoding,
    channels: u16,
}

impl<R: Read> PcmReader<R> {
    /// `channels` interleaved channels of `encoding` at `sample_rate`; nothing is read yet.
    pub fn new(reader: R, encoding: PcmEncoding, sample_rate: u32, channels: u16) -> Result<Self> {
        check_sample_rate(sample_rate)?;
        if !(1..=MAX_PCM_CHANNELS).contains(&channels) {
            bail!("PCM channel count {channels} is out of range (linrt accepts 1 to {MAX_PCM_CHANNELS})");
        }
        let stream = FrameStream::new(reader, encoding.format(), channels, sample_rate, None);
        Ok(PcmReader { stream, encoding, channels })
    }

    pub fn encoding(&self) -> PcmEncoding {
        self.encoding
    }

    pub fn channels(&self) -> u16 {
        self.channels
    }
}

impl<R: Read> AudioSource for PcmReader<R> {
    fn sample_rate(&self) -> u32 {
        self.stream.sample_rate()
    }

    fn read(&mut self, out: &mut Vec<f32>, max: usize) -> Result<usize> {
        self.stream.read(out, max)
    }
}

/// One channel's sample layout, for raw PCM and WAV alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SampleFormat {
    U8,
    S16,
    S24,
    S32,
    F32,
    F64,
}

impl SampleFormat {
    pub(crate) fn bytes(self) -> usize {
        match self {
            SampleFormat::U8 => 1,
            SampleFormat::S16 => 2,
            SampleFormat::S24 => 3,
            SampleFormat::S32 | SampleFormat::F32 => 4,
            SampleFormat::F64 => 8,
        }
    }

    fn is_float(self) -> bool {
        matches!(self, SampleFormat::F32 | SampleFormat::F64)
    }

    /// One little-endian sample; integers are scaled by 2^(bits-1) into [-1, 1).
    /// `raw` holds `bytes()` bytes (missing ones would read as zero, never panic).
    fn decode(self, raw: &[u8]) -> f64 {
        match self {
            SampleFormat::U8 => {
                let [x] = le::<1>(raw);
                (f64::from(x) - 128.0) / 128.0
            }
            SampleFormat::S16 => f64::from(i16::from_le_bytes(le(raw))) / 32768.0,
            SampleFormat::S24 => {
                // Put the 24 bits at the top of an i32 so its sign bit is the sample's.
                let [a, b, c] = le::<3>(raw);
                f64::from(i32::from_le_bytes([0, a, b, c])) / 2_147_483_648.0
            }
            SampleFormat::S32 => f64::from(i32::from_le_bytes(le(raw))) / 2_147_483_648.0,
            SampleFormat::F32 => f64::from(f32::from_le_bytes(le(raw))),
            SampleFormat::F64 => f64::from_le_bytes(le(raw)),
        }
    }
}

/// The first `N` bytes of `raw` as an array, without a length check that could panic.
fn le<const N: usize>(raw: &[u8]) -> [u8; N] {
    let mut bytes = [0u8; N];
    bytes.iter_mut().zip(raw).for_each(|(to, from)| *to = *from);
    bytes
}

/// Averages one interleaved frame to mono, or names what is wrong with a float sample.
/// Float samples must lie in [-1, 1], as integer ones do by construction: anything
/// else (NaN, infinity, 3e38, or a file that was never normalised) would reach the
/// front-end as garbage, so it is an error naming the value.
fn mix(format: SampleFormat, frame: &[u8]) -> std::result::Result<f32, String> {
    if frame.len() == format.bytes() && !format.is_float() {
        // Mono integer samples, the usual stream: the average of one, sooner.
        return Ok(format.decode(frame) as f32);
    }
    let values = frame.chunks_exact(format.bytes()).map(|raw| format.decode(raw));
    if format.is_float() {
        if let Some(value) = values.clone().find(|v| !(-1.0..=1.0).contains(v)) {
            return Err(if value.is_nan() {
                "NaN".to_string()
            } else if value.is_infinite() {
                "infinite".to_string()
            } else {
                // As the file holds it: an f32 widened to f64 would print its rounding.
                let shown = match format {
                    SampleFormat::F32 => format!("{:e}", value as f32),
                    _ => format!("{value:e}"),
                };
                format!("{shown}, outside [-1, 1] (float samples must be normalised; `sox in.wav -b 16 out.wav` clips them)")
            });
        }
    }
    Ok(average(values))
}

/// The mean of one frame's channel values, summed in f64, as f32. Every reader
/// (raw PCM, WAV, compressed files) mixes to mono this way, so the same audio gives
/// the same samples whatever holds it.
pub(crate) fn average(values: impl Iterator<Item = f64>) -> f32 {
    let (sum, count) = values.fold((0.0f64, 0u32), |(sum, count), v| (sum + v, count + 1));
    (sum / f64::from(count.max(1))) as f32
}

/// Where a stream of frames stands.
enum State {
    Open,
    Ended,
    /// The message is repeated by every later call.
    Failed(String),
}

/// Interleaved little-endian frames → mono f32, shared by the raw PCM and WAV readers.
/// Copes with short reads (a pipe hands over any number of bytes; a frame may arrive in
/// pieces) and reports a problem only after every good sample before it is handed out.
pub(crate) struct FrameStream<R> {
    reader: R,
    format: SampleFormat,
    frame_bytes: usize,
    sample_rate: u32,
    /// The byte count a WAV data chunk declares; None reads to the end of input.
    declared: Option<u64>,
    /// Data bytes read from `reader` so far.
    received: u64,
    /// Bytes read but not decoded yet: a partial frame, or frames beyond what a call asked for.
    pending: Vec<u8>,
    /// Frames decoded so far, to number a bad sample in its message.
    decoded: u64,
    state: State,
}

impl<R: Read> FrameStream<R> {
    /// `channels` must be at least 1 (both readers check it first).
    pub(crate) fn new(reader: R, format: SampleFormat, channels: u16, sample_rate: u32, declared: Option<u64>) -> Self {
        FrameStream {
            reader,
            format,
            frame_bytes: format.bytes() * usize::from(channels.max(1)),
            sample_rate,
            declared,
            received: 0,
            pending: Vec::new(),
            decoded: 0,
            state: State::Open,
        }
    }

    pub(crate) fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// The `AudioSource::read` contract: up to `max` mono samples, 0 at the end, errors last.
    pub(crate) fn read(&mut self, out: &mut Vec<f32>, max: usize) -> Result<usize> {
        match &self.state {
            State::Failed(message) => return Err(anyhow!("{message}")),
            State::Ended => return Ok(0),
            State::Open => {}
        }
        if max == 0 {
            return Ok(0);
        }
        let frame = self.frame_bytes;
        let block_frames = (max.saturating_mul(frame).min(MAX_BLOCK_BYTES) / frame).clamp(1, max);
        loop {
            // Hand out whatever whole frames we have rather than block for more.
            if self.pending.len() >= frame {
                return self.decode(out, block_frames);
            }
            if self.fill(block_frames * frame)? == 0 {
                return self.end();
            }
        }
    }

    /// One read from the input into `pending`, at most up to `block` pending bytes and
    /// never past the declared data; returns the byte count, 0 at the end of the data.
    fn fill(&mut self, block: usize) -> Result<usize> {
        let mut room = block.saturating_sub(self.pending.len()).max(1);
        if let Some(declared) = self.declared {
            let left = declared.saturating_sub(self.received);
            room = room.min(usize::try_from(left).unwrap_or(usize::MAX));
            if room == 0 {
                return Ok(0);
            }
        }
        let start = self.pending.len();
        self.pending.resize(start + room, 0);
        let got = read_some(&mut self.reader, &mut self.pending[start..]).map(|n| n.min(room));
        self.pending.truncate(start + *got.as_ref().unwrap_or(&0));
        let got = got.context("reading audio input")?;
        self.received += got as u64;
        Ok(got)
    }

    /// Decodes up to `max_frames` whole frames from `pending`, stopping before a bad one.
    fn decode(&mut self, out: &mut Vec<f32>, max_frames: usize) -> Result<usize> {
        let mut done = 0;
        let mut bad = None;
        for frame in self.pending.chunks_exact(self.frame_bytes).take(max_frames) {
            match mix(self.format, frame) {
                Ok(sample) => out.push(sample),
                Err(what) => {
                    bad = Some(what);
                    break;
                }
            }
            done += 1;
        }
        self.pending.drain(..done * self.frame_bytes);
        self.decoded += done as u64;
        if let Some(what) = bad {
            let seconds = self.decoded as f64 / f64::from(self.sample_rate.max(1));
            let message = format!("sample {} (at {seconds:.3} s) is {what}", self.decoded);
            self.pending.clear();
            self.state = State::Failed(message.clone());
            // The good samples go out now; the error comes with the next call.
            if done == 0 {
                bail!(message);
            }
        }
        Ok(done)
    }

    /// The data has ended: a clean end, or the error that says how it ended early.
    fn end(&mut self) -> Result<usize> {
        let stray = self.pending.len();
        self.pending.clear();
        let message = match self.declared {
            Some(declared) if self.received < declared => {
                let partial = match stray {
                    0 => String::new(),
                    _ => format!(" ({} of a partial frame ignored)", stray_bytes(stray)),
                };
                Some(format!(
                    "truncated WAV: the data chunk declares {declared} bytes, the file ends after {}{partial}",
                    self.received
                ))
            }
            // A data size that is not a whole number of frames: the odd bytes are padding.
            Some(_) => None,
            None if stray > 0 => Some(format!("input ended mid-frame: {} ignored", stray_bytes(stray))),
            None => None,
        };
        match message {
            Some(message) => {
                self.state = State::Failed(message.clone());
                bail!(message)
            }
            None => {
                self.state = State::Ended;
                Ok(0)
            }
        }
    }
}

fn stray_bytes(count: usize) -> String {
    match count {
        1 => "1 stray byte".to_string(),
        _ => format!("{count} stray bytes"),
    }
}

/// One `read`, retried when a signal interrupts it.
fn read_some(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::testing::{read_all, Trickle};

    fn reader(bytes: &[u8], encoding: PcmEncoding, channels: u16) -> PcmReader<&[u8]> {
        PcmReader::new(bytes, encoding, 16000, channels).unwrap()
    }

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn parses_arecord_and_ffmpeg_names() {
        let cases = [
            ("U8", PcmEncoding::U8),
            ("u8", PcmEncoding::U8),
            ("S16_LE", PcmEncoding::S16Le),
            ("s16_le", PcmEncoding::S16Le),
            ("s16le", PcmEncoding::S16Le),
            ("S24_3LE", PcmEncoding::S24Le),
            ("s24le", PcmEncoding::S24Le),
            ("S32_LE", PcmEncoding::S32Le),
            ("S32LE", PcmEncoding::S32Le),
            ("FLOAT_LE", PcmEncoding::F32Le),
            ("Float_Le", PcmEncoding::F32Le),
            ("f32le", PcmEncoding::F32Le),
        ];
        for (name, encoding) in cases {
            assert_eq!(name.parse::<PcmEncoding>().unwrap(), encoding, "{name}");
        }
        for encoding in
            [PcmEncoding::U8, PcmEncoding::S16Le, PcmEncoding::S24Le, PcmEncoding::S32Le, PcmEncoding::F32Le]
        {
            assert_eq!(encoding.to_string().parse::<PcmEncoding>().unwrap(), encoding);
        }
        assert_eq!(PcmEncoding::S24Le.bytes(), 3);
    }

    #[test]
    fn unknown_encoding_lists_the_accepted_names() {
        let message = "S16_BE".parse::<PcmEncoding>().unwrap_err().to_string();
        assert!(message.contains("\"S16_BE\""), "{message}");
        for name in ["U8", "S16_LE", "S24_3LE", "S32_LE", "FLOAT_LE"] {
            assert!(message.contains(name), "{message}");
        }
        let message = "S24_LE".parse::<PcmEncoding>().unwrap_err().to_string();
        assert!(message.contains("4-byte") && message.contains("S24_3LE"), "{message}");
    }

    #[test]
    fn rejects_bad_rate_and_channel_count() {
        let message = PcmReader::new(&[][..], PcmEncoding::S16Le, 3, 1).err().unwrap().to_string();
        assert!(message.contains("absurd sample rate 3 Hz") && message.contains("4000 to 768000"), "{message}");
        assert!(PcmReader::new(&[][..], PcmEncoding::S16Le, 768_001, 1).is_err());
        assert!(PcmReader::new(&[][..], PcmEncoding::S16Le, 768_000, 64).is_ok());
        for channels in [0, 65] {
            let message = PcmReader::new(&[][..], PcmEncoding::S16Le, 16000, channels).err().unwrap().to_string();
            assert!(message.contains(&format!("channel count {channels}")) && message.contains("1 to 64"), "{message}");
        }
    }

    #[test]
    fn decodes_each_encoding() {
        let (out, error) = read_all(&mut reader(&[0, 64, 128, 255], PcmEncoding::U8, 1), 100);
        assert_eq!((out, error), (vec![-1.0, -0.5, 0.0, 127.0 / 128.0], None));

        let s16: Vec<u8> = [-32768i16, -16384, 0, 1, 32767].iter().flat_map(|v| v.to_le_bytes()).collect();
        let (out, _) = read_all(&mut reader(&s16, PcmEncoding::S16Le, 1), 100);
        assert_eq!(out, vec![-1.0, -0.5, 0.0, 1.0 / 32768.0, 32767.0 / 32768.0]);

        let s24 = [0x00, 0x00, 0x80, 0x00, 0x00, 0x40, 0x01, 0x00, 0x00, 0xff, 0xff, 0xff];
        let (out, _) = read_all(&mut reader(&s24, PcmEncoding::S24Le, 1), 100);
        assert_eq!(out, vec![-1.0, 0.5, 1.0 / 8_388_608.0, -1.0 / 8_388_608.0]);

        let s32: Vec<u8> = [i32::MIN, 1 << 30, 0, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
        let (out, _) = read_all(&mut reader(&s32, PcmEncoding::S32Le, 1), 100);
        assert_eq!(out, vec![-1.0, 0.5, 0.0, -1.0 / 2_147_483_648.0]);

        // Float samples in [-1, 1] pass through untouched; one outside is an error
        // after the good ones.
        let values = [0.25f32, -1.0, 1.0, 1e-30];
        let (out, error) = read_all(&mut reader(&f32_bytes(&values), PcmEncoding::F32Le, 1), 100);
        assert_eq!((out, error), (values.to_vec(), None));
        let (out, error) = read_all(&mut reader(&f32_bytes(&[0.25, 1.5, 0.5]), PcmEncoding::F32Le, 1), 100);
        assert_eq!(out, vec![0.25]);
        assert!(error.unwrap().starts_with("sample 1 (at 0.000 s) is 1.5e0, outside [-1, 1]"));
    }

    #[test]
    fn averages_channels() {
        let stereo: Vec<u8> = [16384i16, -8192, 32767, 32767, -32768, 0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let (out, _) = read_all(&mut reader(&stereo, PcmEncoding::S16Le, 2), 100);
        assert_eq!(out, vec![0.125, 32767.0 / 32768.0, -0.5]);
        let three = f32_bytes(&[0.3, 0.6, 0.9, -1.0, 0.0, 1.0]);
        let (out, _) = read_all(&mut reader(&three, PcmEncoding::F32Le, 3), 100);
        assert!((out[0] - 0.6).abs() < 1e-7 && out[1] == 0.0, "{out:?}");
        assert_eq!(reader(&three, PcmEncoding::F32Le, 3).channels(), 3);
    }

    #[test]
    fn respects_max_and_empty_input() {
        let s16 = vec![0u8; 20];
        let mut source = reader(&s16, PcmEncoding::S16Le, 1);
        let mut out = Vec::new();
        assert_eq!(source.read(&mut out, 3).unwrap(), 3);
        assert_eq!(source.read(&mut out, 0).unwrap(), 0);
        assert_eq!(source.read(&mut out, 100).unwrap(), 7);
        assert_eq!(source.read(&mut out, 100).unwrap(), 0);
        assert_eq!(source.read(&mut out, 100).unwrap(), 0);
        assert_eq!(out.len(), 10);
        assert_eq!(read_all(&mut reader(&[], PcmEncoding::S16Le, 1), 100), (vec![], None));
        // A huge request is served in bounded blocks.
        let mut source = reader(&s16, PcmEncoding::S16Le, 1);
        assert_eq!(source.read(&mut out, usize::MAX).unwrap(), 10);
    }

    #[test]
    fn one_byte_at_a_time_matches_a_whole_read() {
        let values: Vec<i16> = (0..301).map(|i| ((i * 7919) % 65536 - 32768) as i16).collect();
        let s16: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let s24: Vec<u8> = (0..300u32).flat_map(|i| (i * 55_001).to_le_bytes()[..3].to_vec()).collect();
        let f32s = f32_bytes(&(0..300).map(|i| (i as f32 * 0.37).sin()).collect::<Vec<_>>());
        let cases = [
            (&s16, PcmEncoding::S16Le, 2),
            (&s16, PcmEncoding::S16Le, 1),
            (&s24, PcmEncoding::S24Le, 1),
            (&s24, PcmEncoding::S24Le, 4),
            (&f32s, PcmEncoding::F32Le, 3),
        ];
        for (bytes, encoding, channels) in cases {
            let whole = read_all(&mut reader(bytes, encoding, channels), 1 << 16);
            for (step, block) in [(1, 1), (1, 160), (3, 7), (5, 1600)] {
                let trickle = Trickle { data: bytes, step };
                let mut source = PcmReader::new(trickle, encoding, 16000, channels).unwrap();
                assert_eq!(read_all(&mut source, block), whole, "{encoding} ×{channels}, step {step}, block {block}");
            }
        }
    }

    #[test]
    fn partial_frame_at_the_end_comes_after_the_samples() {
        let mut bytes: Vec<u8> = [1000i16, 2000, 3000].iter().flat_map(|v| v.to_le_bytes()).collect();
        bytes.push(7);
        for step in [1, 2, 100] {
            let mut source = PcmReader::new(Trickle { data: &bytes, step }, PcmEncoding::S16Le, 16000, 1).unwrap();
            let mut out = Vec::new();
            let mut got = 0;
            let error = loop {
                match source.read(&mut out, 100) {
                    Ok(0) => panic!("no error for the stray byte"),
                    Ok(n) => got += n,
                    Err(e) => break e.to_string(),
                }
            };
            assert_eq!(got, 3);
            assert_eq!(out, vec![1000.0 / 32768.0, 2000.0 / 32768.0, 3000.0 / 32768.0]);
            assert_eq!(error, "input ended mid-frame: 1 stray byte ignored");
            // The failure sticks.
            assert!(source.read(&mut out, 100).is_err());
        }
        let (out, error) = read_all(&mut reader(&[0; 7], PcmEncoding::F32Le, 1), 100);
        assert_eq!((out.len(), error.as_deref()), (1, Some("input ended mid-frame: 3 stray bytes ignored")));
    }

    #[test]
    fn bad_float_comes_after_the_good_samples() {
        let bytes = f32_bytes(&[0.1, 0.2, f32::NAN, 0.3]);
        let mut source = reader(&bytes, PcmEncoding::F32Le, 1);
        let mut out = Vec::new();
        assert_eq!(source.read(&mut out, 100).unwrap(), 2);
        assert_eq!(out, vec![0.1, 0.2]);
        let message = source.read(&mut out, 100).unwrap_err().to_string();
        assert!(message.starts_with("sample 2 ") && message.ends_with("is NaN"), "{message}");
        assert_eq!(out.len(), 2);

        let bytes = f32_bytes(&[0.5, 0.5, 0.5, f32::NEG_INFINITY]);
        let (out, error) = read_all(&mut reader(&bytes, PcmEncoding::F32Le, 2), 100);
        assert_eq!(out, vec![0.5]);
        assert!(error.unwrap().contains("sample 1 (at 0.000 s) is infinite"));

        let (out, error) = read_all(&mut reader(&f32_bytes(&[f32::INFINITY]), PcmEncoding::F32Le, 1), 100);
        assert!(out.is_empty() && error.unwrap().contains("sample 0"));
    }

    #[test]
    fn retries_interrupted_reads() {
        struct Interrupting(bool, Vec<u8>);
        impl Read for Interrupting {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.0 = !self.0;
                if self.0 {
                    return Err(io::Error::from(ErrorKind::Interrupted));
                }
                let n = buf.len().min(self.1.len()).min(1);
                buf[..n].copy_from_slice(&self.1[..n]);
                self.1.drain(..n);
                Ok(n)
            }
        }
        let mut source = PcmReader::new(Interrupting(false, vec![128, 0, 255]), PcmEncoding::U8, 8000, 1).unwrap();
        assert_eq!(read_all(&mut source, 10), (vec![0.0, -1.0, 127.0 / 128.0], None));
        assert_eq!(source.sample_rate(), 8000);
    }
}
