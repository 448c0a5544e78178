//! Streaming WAV reader: parses the RIFF header, then decodes the data chunk block by
//! block, so a long recording (or `arecord` writing to a pipe) never sits in memory.
//! Hostile headers are errors with one line that names the problem, never a panic.

use std::io::{self, ErrorKind, Read};

use anyhow::{anyhow, bail, Context, Result};

use super::pcm::{check_sample_rate, FrameStream, SampleFormat};
use super::AudioSource;

/// Tail of every "unsupported encoding" message.
const READS: &str = "linrt reads 8/16/24/32-bit PCM and 32/64-bit float";

const FORMAT_PCM: u16 = 1;
const FORMAT_FLOAT: u16 = 3;
/// WAVE_FORMAT_EXTENSIBLE: the real format tag is the sub-format GUID's first two bytes.
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// A data chunk size writers put when they cannot seek back to fill in the real one
/// (`arecord` to a pipe); like 0, it means "until the end of input".
const SIZE_UNKNOWN: u32 = 0xFFFF_FFFF;

/// Reads a WAV file or stream as mono f32 samples.
pub struct WavReader<R: Read> {
    stream: FrameStream<R>,
    format: SampleFormat,
    channels: u16,
    frames: Option<u64>,
}

/// What the fmt chunk says, checked.
struct Fmt {
    format: SampleFormat,
    channels: u16,
    sample_rate: u32,
    block_align: u16,
}

impl<R: Read> WavReader<R> {
    /// Reads the header up to the start of the audio data; nothing after it is read yet.
    /// The header is read in small pieces, so give a file a `BufReader`.
    pub fn new(mut reader: R) -> Result<Self> {
        let rf64 = read_riff_header(&mut reader)?;
        let mut fmt = None;
        let mut ds64_data_size = None;
        loop {
            let (id, size) = read_chunk_header(&mut reader, fmt.is_some())?;
            match &id {
                b"fmt " => fmt = Some(read_fmt(&mut reader, size)?),
                b"ds64" if rf64 => ds64_data_size = Some(read_ds64(&mut reader, size)?),
                b"data" => {
                    let fmt = fmt.ok_or_else(|| anyhow!("WAV data chunk comes before the fmt chunk"))?;
                    let declared = match size {
                        // RF64 keeps the real size of a data chunk over 4 GiB in its ds64 chunk.
                        SIZE_UNKNOWN if rf64 => ds64_data_size,
                        0 | SIZE_UNKNOWN => None,
                        size => Some(u64::from(size)),
                    };
                    return Ok(Self::start(reader, fmt, declared));
                }
                // LIST, fact, cue, bext, …: nothing we need.
                _ => skip(&mut reader, padded(size), &id)?,
            }
        }
    }

    fn start(reader: R, fmt: Fmt, declared: Option<u64>) -> Self {
        let stream = FrameStream::new(reader, fmt.format, fmt.channels, fmt.sample_rate, declared);
        // block_align was checked to be channels × sample bytes, so it is not 0.
        let frames = declared.map(|bytes| bytes / u64::from(fmt.block_align.max(1)));
        WavReader { stream, format: fmt.format, channels: fmt.channels, frames }
    }

    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Bits of one sample of one channel.
    pub fn bits(&self) -> u16 {
        (self.format.bytes() * 8) as u16
    }

    /// "16-bit PCM", "32-bit float", … for messages and `linrt asr` summaries.
    pub fn encoding_name(&self) -> &'static str {
        match self.format {
            SampleFormat::U8 => "8-bit PCM",
            SampleFormat::S16 => "16-bit PCM",
            SampleFormat::S24 => "24-bit PCM",
            SampleFormat::S32 => "32-bit PCM",
            SampleFormat::F32 => "32-bit float",
            SampleFormat::F64 => "64-bit float",
        }
    }

    /// Frames the data chunk declares; None when the writer did not know (streaming).
    pub fn frames(&self) -> Option<u64> {
        self.frames
    }
}

impl<R: Read> AudioSource for WavReader<R> {
    fn sample_rate(&self) -> u32 {
        self.stream.sample_rate()
    }

    fn read(&mut self, out: &mut Vec<f32>, max: usize) -> Result<usize> {
        self.stream.read(out, max)
    }
}

/// Checks "RIFF <size> WAVE" (or RF64/BW64, the > 4 GiB variants); returns whether it is RF64.
fn read_riff_header(reader: &mut impl Read) -> Result<bool> {
    let mut head = [0u8; 12];
    let got = read_full(reader, &mut head).context("reading the WAV header")?;
    let (magic, kind) = head.split_at(4);
    let seen = head.get(..got.min(4)).unwrap_or_default();
    if got == 0 {
        bail!("empty file");
    }
    if got >= 4 && magic == b"RIFX" {
        bail!("big-endian WAV (RIFX) is not supported; convert it to an ordinary WAV");
    }
    let riff = [b"RIFF", b"RF64", b"BW64"].iter().any(|m| m.starts_with(seen));
    if !riff || (got == head.len() && &kind[4..] != b"WAVE") {
        bail!("not a WAV file (no RIFF/WAVE header){}", sniff(&head[..got]));
    }
    if got < head.len() {
        bail!("WAV header truncated");
    }
    Ok(magic != b"RIFF")
}

/// A hint at what a non-WAV file is, from its first bytes.
fn sniff(head: &[u8]) -> &'static str {
    if head.starts_with(b"fLaC") {
        "; it looks like FLAC"
    } else if head.starts_with(b"OggS") {
        "; it looks like Ogg (Vorbis/Opus)"
    } else if head.starts_with(b"ID3") || head.starts_with(&[0xFF, 0xFB]) || head.starts_with(&[0xFF, 0xF3]) {
        "; it looks like MP3"
    } else {
        ""
    }
}

/// The next chunk's id and size; running out here means the chunk we need is missing.
fn read_chunk_header(reader: &mut impl Read, have_fmt: bool) -> Result<([u8; 4], u32)> {
    let mut head = [0u8; 8];
    match read_full(reader, &mut head).context("reading the WAV header")? {
        0 if have_fmt => bail!("WAV header truncated: the file ends before the data chunk"),
        0 => bail!("WAV header truncated: the file ends before the fmt chunk"),
        8 => {}
        _ => bail!("WAV header truncated"),
    }
    let [a, b, c, d, e, f, g, h] = head;
    Ok(([a, b, c, d], u32::from_le_bytes([e, f, g, h])))
}

fn read_fmt(reader: &mut impl Read, size: u32) -> Result<Fmt> {
    if size < 16 {
        bail!("WAV fmt chunk is too short ({size} bytes, needs at least 16)");
    }
    // The fields we use lie in the first 40 bytes (WAVEFORMATEXTENSIBLE's size).
    let mut b = [0u8; 40];
    let keep = b.len().min(size as usize);
    if read_full(reader, &mut b[..keep]).context("reading the WAV header")? < keep {
        bail!("WAV header truncated inside the fmt chunk");
    }
    skip(reader, padded(size) - keep as u64, b"fmt ")?;

    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let channels = u16_at(2);
    let sample_rate = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let block_align = u16_at(12);
    let bits = u16_at(14);
    let mut tag = u16_at(0);
    if tag == FORMAT_EXTENSIBLE {
        if size < 40 {
            bail!("WAV extensible fmt chunk is too short ({size} bytes, needs 40)");
        }
        tag = u16_at(24);
    }

    let format = sample_format(tag, bits)?;
    if channels == 0 {
        bail!("WAV file declares 0 channels");
    }
    check_sample_rate(sample_rate)?;
    let expected = u32::from(channels) * format.bytes() as u32;
    if u32::from(block_align) != expected {
        let what = match channels {
            1 => format!("{bits} bits"),
            _ => format!("{channels} channels of {bits} bits"),
        };
        bail!("WAV fmt says {what} but block align is {block_align} (expected {expected})");
    }
    Ok(Fmt { format, channels, sample_rate, block_align })
}

fn sample_format(tag: u16, bits: u16) -> Result<SampleFormat> {
    Ok(match (tag, bits) {
        (FORMAT_PCM, 8) => SampleFormat::U8,
        (FORMAT_PCM, 16) => SampleFormat::S16,
        (FORMAT_PCM, 24) => SampleFormat::S24,
        (FORMAT_PCM, 32) => SampleFormat::S32,
        (FORMAT_FLOAT, 32) => SampleFormat::F32,
        (FORMAT_FLOAT, 64) => SampleFormat::F64,
        (FORMAT_PCM, bits) => bail!("unsupported WAV encoding: {bits}-bit PCM; {READS}"),
        (FORMAT_FLOAT, bits) => bail!("unsupported WAV encoding: {bits}-bit float; {READS}"),
        (tag, _) => bail!("unsupported WAV encoding: {} (format {tag}); {READS}", format_name(tag)),
    })
}

/// Names of the codecs one meets in WAV files, so the error says what the file is.
fn format_name(tag: u16) -> &'static str {
    match tag {
        0x0002 => "Microsoft ADPCM",
        0x0006 => "A-law",
        0x0007 => "mu-law",
        0x0011 => "IMA ADPCM",
        0x0031 => "GSM 6.10",
        0x0050 => "MPEG audio",
        0x0055 => "MP3",
        FORMAT_EXTENSIBLE => "nested extensible",
        _ => "an unknown codec",
    }
}

/// RF64's ds64 chunk: 64-bit RIFF size, then the 64-bit data size we want.
fn read_ds64(reader: &mut impl Read, size: u32) -> Result<u64> {
    if size < 16 {
        bail!("RF64 ds64 chunk is too short ({size} bytes, needs at least 16)");
    }
    let mut b = [0u8; 16];
    if read_full(reader, &mut b).context("reading the WAV header")? < b.len() {
        bail!("WAV header truncated inside the ds64 chunk");
    }
    skip(reader, padded(size) - 16, b"ds64")?;
    let [_, _, _, _, _, _, _, _, data @ ..] = b;
    Ok(u64::from_le_bytes(data))
}

/// Chunks are padded to an even size; the pad byte is not in the declared size.
fn padded(size: u32) -> u64 {
    u64::from(size) + u64::from(size % 2)
}

/// Reads and drops `count` bytes of chunk `id`.
fn skip(reader: &mut impl Read, count: u64, id: &[u8; 4]) -> Result<()> {
    let skipped = io::copy(&mut reader.by_ref().take(count), &mut io::sink()).context("reading the WAV header")?;
    if skipped < count {
        bail!("WAV header truncated inside the {:?} chunk", printable(id));
    }
    Ok(())
}

/// A chunk id for a message: hostile bytes (newlines, escapes) become '?'.
fn printable(id: &[u8; 4]) -> String {
    id.iter().map(|&c| if c.is_ascii_graphic() || c == b' ' { char::from(c) } else { '?' }).collect()
}

/// Fills `buf` unless the input ends first; returns how many bytes it got.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|rest| !rest.is_empty()) {
        match reader.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n.min(rest.len()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::testing::{read_all, Trickle};

    /// A plain fmt chunk body (16 bytes) with a consistent block align.
    fn fmt_body(tag: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
        let align = channels * bits / 8;
        let mut b = Vec::new();
        b.extend(tag.to_le_bytes());
        b.extend(channels.to_le_bytes());
        b.extend(rate.to_le_bytes());
        b.extend((rate * u32::from(align)).to_le_bytes());
        b.extend(align.to_le_bytes());
        b.extend(bits.to_le_bytes());
        b
    }

    /// A WAVE_FORMAT_EXTENSIBLE fmt body (40 bytes) whose sub-format GUID starts with `tag`.
    fn extensible_body(tag: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
        let mut b = fmt_body(FORMAT_EXTENSIBLE, channels, rate, bits);
        b.extend(22u16.to_le_bytes()); // cbSize
        b.extend(bits.to_le_bytes()); // valid bits
        b.extend(3u32.to_le_bytes()); // channel mask
        b.extend(tag.to_le_bytes());
        b.extend([0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71]);
        b
    }

    fn chunk(id: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = id.to_vec();
        b.extend((body.len() as u32).to_le_bytes());
        b.extend(body);
        if body.len() % 2 == 1 {
            b.push(0);
        }
        b
    }

    /// "RIFF size WAVE" followed by `chunks`.
    fn riff(chunks: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = chunks.concat();
        let mut b = b"RIFF".to_vec();
        b.extend((body.len() as u32 + 4).to_le_bytes());
        b.extend(b"WAVE");
        b.extend(body);
        b
    }

    fn wav(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
        riff(&[chunk(b"fmt ", &fmt_body(tag, channels, rate, bits)), chunk(b"data", data)])
    }

    /// A data chunk header declaring `size` bytes, followed by `data` (which may differ).
    fn data_declaring(size: u32, data: &[u8]) -> Vec<u8> {
        let mut b = b"data".to_vec();
        b.extend(size.to_le_bytes());
        b.extend(data);
        b
    }

    fn decode(bytes: &[u8]) -> Vec<f32> {
        let (out, error) = read_all(&mut WavReader::new(bytes).unwrap(), 1000);
        assert_eq!(error, None);
        out
    }

    fn header_error(bytes: &[u8]) -> String {
        let message = format!("{:#}", WavReader::new(bytes).err().expect("the header should be rejected"));
        assert!(!message.is_empty() && !message.contains('\n'), "{message:?}");
        message
    }

    fn le16(values: &[i16]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn le_f32(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn decodes_each_encoding() {
        assert_eq!(decode(&wav(1, 1, 8000, 8, &[0, 64, 128, 255])), vec![-1.0, -0.5, 0.0, 127.0 / 128.0]);
        assert_eq!(
            decode(&wav(1, 1, 16000, 16, &le16(&[-32768, 16384, 0, 32767]))),
            vec![-1.0, 0.5, 0.0, 32767.0 / 32768.0]
        );
        let s24 = [0x00, 0x00, 0x80, 0x00, 0x00, 0x40, 0xff, 0xff, 0xff];
        assert_eq!(decode(&wav(1, 1, 16000, 24, &s24)), vec![-1.0, 0.5, -1.0 / 8_388_608.0]);
        let s32: Vec<u8> = [i32::MIN, -(1 << 29), 0].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(decode(&wav(1, 1, 16000, 32, &s32)), vec![-1.0, -0.25, 0.0]);
        let floats = [0.5f32, -1.0, 1.0, -0.25];
        assert_eq!(decode(&wav(3, 1, 16000, 32, &le_f32(&floats))), floats.to_vec());
        let f64s: Vec<u8> = [0.5f64, -0.125, 1.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(decode(&wav(3, 1, 16000, 64, &f64s)), vec![0.5, -0.125, 1.0]);
    }

    /// Float samples outside [-1, 1] (3e38 from a hostile file, 1.25 from one never
    /// normalised) would reach the front-end as garbage: an error naming the value,
    /// after the good samples before it.
    #[test]
    fn float_samples_outside_the_unit_range_are_errors() {
        for (bad, shown) in [(3e38f32, "3e38"), (1.25, "1.25e0"), (-2.0, "-2e0")] {
            let bytes = wav(3, 1, 16000, 32, &le_f32(&[0.1, -0.2, bad, 0.4]));
            let (out, error) = read_all(&mut WavReader::new(&bytes[..]).unwrap(), 10);
            assert_eq!(out, vec![0.1, -0.2]);
            let error = error.expect("an error");
            assert!(error.starts_with(&format!("sample 2 (at 0.000 s) is {shown}, outside [-1, 1]")), "{error}");
        }
        // Stereo: one bad channel is enough.
        let bytes = wav(3, 2, 16000, 32, &le_f32(&[0.5, 0.5, 0.25, 7.0]));
        let (out, error) = read_all(&mut WavReader::new(&bytes[..]).unwrap(), 10);
        assert_eq!(out, vec![0.5]);
        assert!(error.unwrap().contains("sample 1 (at 0.000 s) is 7e0, outside [-1, 1]"));
    }

    #[test]
    fn reports_the_header() {
        let cases = [
            (1, 8, "8-bit PCM"),
            (1, 16, "16-bit PCM"),
            (1, 24, "24-bit PCM"),
            (1, 32, "32-bit PCM"),
            (3, 32, "32-bit float"),
            (3, 64, "64-bit float"),
        ];
        for (tag, bits, name) in cases {
            let data = vec![0u8; usize::from(bits / 8) * 2 * 10];
            let bytes = wav(tag, 2, 44100, bits, &data);
            let reader = WavReader::new(&bytes[..]).unwrap();
            assert_eq!(reader.encoding_name(), name);
            assert_eq!((reader.bits(), reader.channels(), reader.sample_rate()), (bits, 2, 44100));
            assert_eq!(reader.frames(), Some(10));
        }
    }

    #[test]
    fn averages_channels() {
        let stereo = le16(&[16384, -8192, -32768, -32768, 100, -100]);
        assert_eq!(decode(&wav(1, 2, 16000, 16, &stereo)), vec![0.125, -1.0, 0.0]);
        let six = le_f32(&[0.6, 0.6, 0.6, 0.0, 0.0, 0.0]);
        let out = decode(&wav(3, 6, 48000, 32, &six));
        assert!(out.len() == 1 && (out[0] - 0.3).abs() < 1e-7, "{out:?}");
        let u8_stereo = [0, 255, 128, 128];
        assert_eq!(decode(&wav(1, 2, 8000, 8, &u8_stereo)), vec![-1.0 / 256.0, 0.0]);
    }

    #[test]
    fn reads_extensible_headers() {
        let data = [0x00, 0x00, 0x40, 0x00, 0x00, 0xC0];
        let bytes = riff(&[chunk(b"fmt ", &extensible_body(FORMAT_PCM, 2, 48000, 24)), chunk(b"data", &data)]);
        let reader = WavReader::new(&bytes[..]).unwrap();
        assert_eq!((reader.encoding_name(), reader.channels(), reader.frames()), ("24-bit PCM", 2, Some(1)));
        assert_eq!(decode(&bytes), vec![0.0]);

        let floats = le_f32(&[0.25, 0.75]);
        let bytes = riff(&[chunk(b"fmt ", &extensible_body(FORMAT_FLOAT, 1, 16000, 32)), chunk(b"data", &floats)]);
        assert_eq!(decode(&bytes), vec![0.25, 0.75]);

        let bytes = riff(&[chunk(b"fmt ", &extensible_body(6, 1, 8000, 8)), chunk(b"data", &[1])]);
        assert!(header_error(&bytes).contains("A-law (format 6)"));
        let short = riff(&[chunk(b"fmt ", &fmt_body(FORMAT_EXTENSIBLE, 1, 8000, 8)), chunk(b"data", &[1])]);
        assert!(header_error(&short).contains("extensible fmt chunk is too short"));
    }

    #[test]
    fn skips_unknown_chunks_with_padding() {
        let samples = le16(&[1000, -1000, 5]);
        let bytes = riff(&[
            chunk(b"LIST", b"INFOISFT\x05\x00\x00\x00Lavf\x00"), // odd size: one pad byte follows
            chunk(b"fmt ", &fmt_body(1, 1, 16000, 16)),
            chunk(b"fact", &3u32.to_le_bytes()),
            chunk(b"junk", b"abc"),
            chunk(b"data", &samples),
            chunk(b"LIST", b"trailing metadata is never read as audio"),
        ]);
        assert_eq!(decode(&bytes), vec![1000.0 / 32768.0, -1000.0 / 32768.0, 5.0 / 32768.0]);
        // A fmt chunk longer than 16 bytes (cbSize = 0) and with an odd size.
        let mut body = fmt_body(1, 1, 16000, 16);
        body.extend([0, 0, 9]);
        assert_eq!(decode(&riff(&[chunk(b"fmt ", &body), chunk(b"data", &samples)])).len(), 3);
    }

    #[test]
    fn streaming_sizes_read_to_the_end() {
        let samples = le16(&[1, 2, 3, 4, 5]);
        for size in [SIZE_UNKNOWN, 0] {
            let bytes = riff(&[chunk(b"fmt ", &fmt_body(1, 1, 16000, 16)), data_declaring(size, &samples)]);
            let mut reader = WavReader::new(&bytes[..]).unwrap();
            assert_eq!(reader.frames(), None);
            assert_eq!(read_all(&mut reader, 2).0.len(), 5);
            // A partial frame at the end of a stream is reported after the samples.
            let mut bytes = bytes.clone();
            bytes.push(9);
            let (out, error) = read_all(&mut WavReader::new(&bytes[..]).unwrap(), 100);
            assert_eq!((out.len(), error.as_deref()), (5, Some("input ended mid-frame: 1 stray byte ignored")));
        }
        // An empty streaming data chunk is a clean, empty stream.
        let bytes = riff(&[chunk(b"fmt ", &fmt_body(1, 1, 16000, 16)), data_declaring(0, &[])]);
        assert_eq!(decode(&bytes), Vec::<f32>::new());
    }

    #[test]
    fn reads_rf64() {
        let samples = le16(&[100, 200, 300]);
        let mut ds64 = 0u64.to_le_bytes().to_vec();
        ds64.extend(4u64.to_le_bytes()); // only the first two samples belong to the data
        ds64.extend([0; 12]);
        let mut bytes = b"RF64".to_vec();
        bytes.extend(SIZE_UNKNOWN.to_le_bytes());
        bytes.extend(b"WAVE");
        bytes.extend(chunk(b"ds64", &ds64));
        bytes.extend(chunk(b"fmt ", &fmt_body(1, 1, 16000, 16)));
        bytes.extend(data_declaring(SIZE_UNKNOWN, &samples));
        let reader = WavReader::new(&bytes[..]).unwrap();
        assert_eq!(reader.frames(), Some(2));
        assert_eq!(decode(&bytes), vec![100.0 / 32768.0, 200.0 / 32768.0]);
    }

    #[test]
    fn one_byte_at_a_time_matches_a_whole_read() {
        let samples: Vec<i16> = (0..333).map(|i| (i * 97 - 16000) as i16).collect();
        let bytes = riff(&[
            chunk(b"LIST", b"xyz"),
            chunk(b"fmt ", &fmt_body(1, 3, 16000, 16)),
            chunk(b"data", &le16(&samples)),
        ]);
        let whole = read_all(&mut WavReader::new(&bytes[..]).unwrap(), 1 << 16);
        assert_eq!(whole.0.len(), 111);
        for (step, block) in [(1, 1), (1, 160), (7, 13)] {
            let mut reader = WavReader::new(Trickle { data: &bytes, step }).unwrap();
            assert_eq!(read_all(&mut reader, block), whole, "step {step}, block {block}");
        }
    }

    #[test]
    fn truncated_data_comes_after_the_whole_frames() {
        // Declares 100 stereo 16-bit frames (400 bytes); holds 10 frames and 3 bytes.
        let mut data = le16(&(0..20).map(|i| i * 100).collect::<Vec<_>>());
        data.extend([1, 2, 3]);
        let bytes = riff(&[chunk(b"fmt ", &fmt_body(1, 2, 16000, 16)), data_declaring(400, &data)]);
        for step in [1, 5, 1000] {
            let mut reader = WavReader::new(Trickle { data: &bytes, step }).unwrap();
            assert_eq!(reader.frames(), Some(100));
            let mut out = Vec::new();
            let error = loop {
                match reader.read(&mut out, 4) {
                    Ok(0) => panic!("truncation not reported"),
                    Ok(_) => {}
                    Err(e) => break e.to_string(),
                }
            };
            assert_eq!(out.len(), 10);
            assert_eq!(out[9], (1800.0 + 1900.0) / 2.0 / 32768.0);
            assert_eq!(
                error,
                "truncated WAV: the data chunk declares 400 bytes, the file ends after 43 (3 stray bytes of a partial \
                 frame ignored)"
            );
            assert!(reader.read(&mut out, 4).is_err(), "the failure sticks");
        }
        // Truncated exactly at a frame boundary: no stray-byte note.
        let bytes = riff(&[chunk(b"fmt ", &fmt_body(1, 1, 16000, 16)), data_declaring(10, &le16(&[1, 2]))]);
        let (out, error) = read_all(&mut WavReader::new(&bytes[..]).unwrap(), 100);
        assert_eq!(out.len(), 2);
        assert_eq!(error.unwrap(), "truncated WAV: the data chunk declares 10 bytes, the file ends after 4");
    }

    #[test]
    fn odd_data_size_is_padding_not_an_error() {
        let bytes = riff(&[chunk(b"fmt ", &fmt_body(1, 1, 16000, 16)), chunk(b"data", &[0, 64, 7])]);
        assert_eq!(decode(&bytes), vec![0.5]);
    }

    #[test]
    fn bad_float_comes_after_the_good_samples() {
        for bad in [f32::NAN, f32::INFINITY] {
            let bytes = wav(3, 1, 16000, 32, &le_f32(&[0.1, 0.2, 0.3, bad, 0.4]));
            let mut reader = WavReader::new(&bytes[..]).unwrap();
            let mut out = Vec::new();
            assert_eq!(reader.read(&mut out, 100).unwrap(), 3);
            let message = reader.read(&mut out, 100).unwrap_err().to_string();
            let what = if bad.is_nan() { "NaN" } else { "infinite" };
            assert_eq!(message, format!("sample 3 (at 0.000 s) is {what}"));
            assert_eq!(out, vec![0.1, 0.2, 0.3]);
        }
        let f64s: Vec<u8> = [0.5f64, 1e300].iter().flat_map(|v| v.to_le_bytes()).collect();
        let (out, error) = read_all(&mut WavReader::new(&wav(3, 1, 16000, 64, &f64s)[..]).unwrap(), 10);
        assert_eq!(out, vec![0.5]);
        assert!(error.unwrap().contains("sample 1 (at 0.000 s) is 1e300, outside [-1, 1]"));
    }

    #[test]
    fn rejects_bad_headers_with_one_clear_line() {
        let good = wav(1, 1, 16000, 16, &le16(&[1, 2]));
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "empty file"),
            (b"hello, world".to_vec(), "not a WAV file (no RIFF/WAVE header)"),
            (b"fLaC\0\0\0\x22".to_vec(), "it looks like FLAC"),
            (b"RIFF\x10\0\0\0AVI LIST".to_vec(), "not a WAV file"),
            (b"RIFX\x10\0\0\0WAVE".to_vec(), "big-endian"),
            (b"RIF".to_vec(), "WAV header truncated"),
            (good[..10].to_vec(), "WAV header truncated"),
            (good[..12].to_vec(), "ends before the fmt chunk"),
            (good[..15].to_vec(), "WAV header truncated"),
            (good[..30].to_vec(), "WAV header truncated inside the fmt chunk"),
            (good[..36].to_vec(), "ends before the data chunk"),
            (riff(&[chunk(b"data", &[0, 0]), chunk(b"fmt ", &fmt_body(1, 1, 8000, 16))]), "data chunk comes before"),
            (riff(&[chunk(b"fmt ", &[1, 0, 1, 0])]), "fmt chunk is too short (4 bytes"),
            (wav(6, 1, 8000, 8, &[0]), "unsupported WAV encoding: A-law (format 6); linrt reads 8/16/24/32-bit PCM"),
            (wav(7, 1, 8000, 8, &[0]), "mu-law (format 7)"),
            (wav(0x1234, 1, 8000, 8, &[0]), "unknown codec (format 4660)"),
            (wav(1, 1, 8000, 12, &[0]), "unsupported WAV encoding: 12-bit PCM"),
            (wav(3, 1, 8000, 16, &[0]), "unsupported WAV encoding: 16-bit float"),
            (wav(1, 0, 16000, 16, &[0]), "WAV file declares 0 channels"),
            (wav(1, 1, 3, 16, &[0]), "absurd sample rate 3 Hz (linrt accepts 4000 to 768000 Hz)"),
            (wav(1, 1, 1_000_000, 16, &[0]), "absurd sample rate 1000000 Hz"),
        ];
        for (bytes, expected) in cases {
            let message = header_error(&bytes);
            assert!(message.contains(expected), "{message:?} should contain {expected:?}");
        }
        let mut body = fmt_body(1, 1, 16000, 16);
        body[12] = 3;
        let message = header_error(&riff(&[chunk(b"fmt ", &body), chunk(b"data", &[0; 6])]));
        assert_eq!(message, "WAV fmt says 16 bits but block align is 3 (expected 2)");
        let mut body = fmt_body(1, 2, 16000, 24);
        body[12] = 8;
        let message = header_error(&riff(&[chunk(b"fmt ", &body), chunk(b"data", &[0; 6])]));
        assert!(message.contains("2 channels of 24 bits but block align is 8 (expected 6)"), "{message}");
        // A chunk that claims more bytes than the file has; its id is printed safely.
        let mut bytes = riff(&[chunk(b"fmt ", &fmt_body(1, 1, 16000, 16))]);
        bytes.extend(b"L\nS\x1b\xff\xff\xff\x7fabc");
        assert!(header_error(&bytes).contains("inside the \"L?S?\" chunk"));
    }

    #[test]
    fn every_prefix_and_mutation_is_handled_without_panic() {
        let good = riff(&[
            chunk(b"LIST", b"abcde"),
            chunk(b"fmt ", &extensible_body(FORMAT_FLOAT, 2, 16000, 32)),
            chunk(b"data", &le_f32(&[0.1, 0.2, 0.3, 0.4, 0.5, 0.6])),
        ]);
        for end in 0..good.len() {
            if let Ok(mut reader) = WavReader::new(&good[..end]) {
                let (_, error) = read_all(&mut reader, 3);
                assert!(error.unwrap().contains("truncated WAV"), "prefix {end}");
            }
        }
        // Deterministic pseudo-random corruption: any outcome but a panic or a hang is fine.
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let mut bytes = good.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % bytes.len() as u64) as usize;
                bytes[at] = next() as u8;
            }
            if let Ok(mut reader) = WavReader::new(&bytes[..]) {
                let _ = reader.frames();
                let _ = read_all(&mut reader, 1 + (next() % 5) as usize);
            }
        }
    }
}
