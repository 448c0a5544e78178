//! Recognizes speech in a 16-bit mono WAV with the `linrt` crate alone: the model
//! file mapped, every buffer sized by the runtime and handed to it, the audio fed
//! in 10 ms chunks as a microphone would deliver it, and each final printed.
//! std is used only to read the two files and print.
//!
//!   cargo run --release -p linrt --example recognize -- \
//!       models/asr-commands/asr-commands.int8.lrt models/asr-commands/sample.wav

use linrt::asr::{AsrInfo, Decoder, Event, Recognizer, RecognizerMemory, RecognizerSizes, WordSpan};
use linrt::decode::{BeamConfig, BeamMemory, Candidate, DecodedWord, EndpointConfig, Hypothesis, Lexicon, TrieNode};
use linrt::{Error, ModelFile};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: recognize MODEL.lrt AUDIO.wav (16-bit PCM, mono, at the model's rate)");
        std::process::exit(2);
    }
    if let Err(e) = run(&args[1], &args[2]) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(model_path: &str, wav_path: &str) -> Result<(), String> {
    let file = ModelFile::open(model_path).map_err(|e| format!("{model_path}: {e}"))?;
    let model = file.model().map_err(|e| format!("{model_path}: {e}"))?;
    let info = AsrInfo::from_model(&model).map_err(|e| format!("{model_path}: {e}"))?;
    let samples = read_wav(wav_path, info.sample_rate)?;
    let fail = |e: Error| e.to_string();

    // The lexicon: the words the model lists in app.words.
    let mut nodes = vec![TrieNode::default(); info.word_chars() + 1];
    let mut word_nodes = vec![0u32; info.word_count()];
    let mut ranks = vec![0u32; info.word_count()];
    let mut lexicon = Lexicon::new(&mut nodes, &mut word_nodes, &mut ranks).map_err(fail)?;
    info.insert_words(&mut lexicon).map_err(fail)?;
    lexicon.finish();

    // The beam decoder's memory.
    let config = BeamConfig { beam: 16, ..BeamConfig::default() };
    let sizes = config.sizes(info.symbols()).map_err(fail)?;
    let mut hypotheses = vec![Hypothesis::default(); sizes.hypotheses];
    let mut decoded = vec![DecodedWord::default(); sizes.words];
    let mut candidates = vec![Candidate::default(); sizes.candidates];
    let mut log_probs = vec![0f32; sizes.log_probs];
    let memory = BeamMemory {
        hypotheses: &mut hypotheses,
        words: &mut decoded,
        candidates: &mut candidates,
        log_probs: &mut log_probs,
    };
    let decoder = Decoder::beam(&info, config, &lexicon, None, None, memory).map_err(fail)?;

    // The recognizer's memory: the session's arena and its own buffers.
    let sizes = RecognizerSizes::new(&model, &info, None, Some(&config)).map_err(fail)?;
    let mut arena = vec![0u8; sizes.arena_bytes];
    let mut floats = vec![0f32; sizes.floats];
    let mut words = vec![WordSpan::default(); sizes.words];
    let mut finals = vec![DecodedWord::default(); sizes.finals];
    let mut text = vec![0u8; sizes.text_bytes];
    let memory = RecognizerMemory {
        arena: &mut arena,
        floats: &mut floats,
        words: &mut words,
        finals: &mut finals,
        text: &mut text,
    };
    let chunk = info.sample_rate as usize / 100;
    let mut recognizer =
        Box::new(Recognizer::new(&model, info, EndpointConfig::default(), None, decoder, memory).map_err(fail)?);

    let mut print = |event: Event| {
        if let Event::Final(u) = event {
            println!("{:6.2}-{:6.2} s  {}", u.start, u.end, u.text);
        }
    };
    for piece in samples.chunks(chunk) {
        recognizer.accept(piece, &mut print).map_err(fail)?;
    }
    recognizer.finish(&mut print).map_err(fail)
}

/// The samples of a canonical 16-bit PCM mono WAV, in [-1, 1].
fn read_wav(path: &str, rate: u32) -> Result<Vec<f32>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let u16_at = |at: usize| bytes.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return Err(format!("{path}: not a WAV file"));
    }
    if u16_at(20) != Some(1) || u16_at(22) != Some(1) || u16_at(34) != Some(16) || u32_at(24) != Some(rate) {
        return Err(format!("{path}: this example reads 16-bit PCM mono at {rate} Hz only"));
    }
    // The chunks after "fmt ": skip to "data".
    let mut at = 12;
    while let (Some(id), Some(len)) = (bytes.get(at..at + 4), u32_at(at + 4)) {
        let body = at + 8;
        if id == b"data" {
            let data = bytes.get(body..body + len as usize).unwrap_or(&bytes[body.min(bytes.len())..]);
            return Ok(data.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0).collect());
        }
        at = body + len as usize + (len as usize & 1);
    }
    Err(format!("{path}: no data chunk"))
}
