//! The whole speech pipeline over what is in flash: the int8 model and the sample's
//! audio, recognized in 10 ms chunks as a microphone would deliver them, every buffer
//! from the static pool. The same code runs on the host, so the two can be compared
//! line for line.

use core::fmt;

use linrt::asr::{AsrInfo, BufferedRecognizer, Event};
use linrt::Model;

use crate::pool;

static MODEL: &linrt::Aligned<[u8]> =
    &linrt::Aligned(*include_bytes!("../../models/asr-commands/asr-commands.int8.lrt"));
static SAMPLE_WAV: &[u8] = include_bytes!("../../models/asr-commands/sample.wav");

/// The beam `linrt asr` uses by default.
const BEAM: usize = 16;

/// Why the firmware stopped.
#[derive(Debug)]
pub enum Failure {
    Runtime(linrt::Error),
    Wav(&'static str),
    PoolTaken,
}

impl From<linrt::Error> for Failure {
    fn from(e: linrt::Error) -> Self {
        Failure::Runtime(e)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Runtime(e) => write!(f, "{e}"),
            Failure::Wav(what) => write!(f, "sample: {what}"),
            Failure::PoolTaken => write!(f, "the static pool was already taken"),
        }
    }
}

/// What a run did, for the report after the transcripts.
pub struct Summary {
    pub finals: usize,
    /// Streamed steps (not the replays of state rebuilds).
    pub steps: usize,
    /// FNV-1a over the bits of every streamed step's logits.
    pub logits_checksum: u64,
    pub model_bytes: usize,
    pub pool_used: usize,
    /// What `BufferedRecognizer::bytes` asks for (worst-case alignment padding included).
    pub pool_bound: usize,
}

/// FNV-1a, 64 bits.
struct Fnv(u64);

impl Fnv {
    fn add(&mut self, bytes: [u8; 4]) {
        for b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Recognizes the sample; each final transcript goes to `print` as `linrt asr`
/// prints it (`[start – end] text`).
pub fn run(print: &mut dyn FnMut(fmt::Arguments)) -> Result<Summary, Failure> {
    let model = Model::from_bytes(&MODEL.0)?;
    let info = AsrInfo::from_model(&model)?;
    let pcm = wav_samples(SAMPLE_WAV, info.sample_rate)?;
    let mut pool = pool::take().ok_or(Failure::PoolTaken)?;
    // The beam over the words the model lists (app.words), as `linrt asr` decodes.
    let setup = BufferedRecognizer { beam: BEAM, ..BufferedRecognizer::default() };
    let mut recognizer = setup.build(&model, &mut pool)?;
    let pool_bound = setup.bytes(&model)?;
    recognizer.observe_logits(true);

    let (mut finals, mut steps, mut checksum) = (0, 0, Fnv(0xcbf2_9ce4_8422_2325));
    let mut on_event = |event: Event| match event {
        Event::Logits(logits) => {
            steps += 1;
            for v in logits {
                checksum.add(v.to_bits().to_le_bytes());
            }
        }
        Event::Final(u) => {
            finals += 1;
            print(format_args!("[{:8.2} – {:8.2}] {}", u.start, u.end, u.text));
        }
        Event::Partial(_) => {}
    };
    // 10 ms at a time, converted from 16-bit PCM as it arrives.
    let mut chunk = [0f32; 160];
    for piece in pcm.chunks(2 * chunk.len()) {
        let n = piece.len() / 2;
        for (x, b) in chunk.iter_mut().zip(piece.chunks_exact(2)) {
            *x = i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0;
        }
        recognizer.accept(&chunk[..n], &mut on_event)?;
    }
    recognizer.finish(&mut on_event)?;
    Ok(Summary {
        finals,
        steps,
        logits_checksum: checksum.0,
        model_bytes: MODEL.0.len(),
        pool_used: pool.used(),
        pool_bound,
    })
}

/// The data chunk of a canonical 16-bit PCM mono WAV at `rate`.
fn wav_samples(bytes: &[u8], rate: u32) -> Result<&[u8], Failure> {
    let u16_at = |at: usize| bytes.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return Err(Failure::Wav("not a WAV file"));
    }
    if u16_at(20) != Some(1) || u16_at(22) != Some(1) || u16_at(34) != Some(16) || u32_at(24) != Some(rate) {
        return Err(Failure::Wav("not 16-bit PCM mono at the model's rate"));
    }
    let mut at = 12;
    while let (Some(id), Some(len)) = (bytes.get(at..at + 4), u32_at(at + 4)) {
        let body = at + 8;
        if id == b"data" {
            return bytes.get(body..body + len as usize).ok_or(Failure::Wav("data chunk runs past the file"));
        }
        at = body + len as usize + (len as usize & 1);
    }
    Err(Failure::Wav("no data chunk"))
}
