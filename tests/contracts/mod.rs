//! What every input surface promises, whatever the bytes: one function per fuzz
//! target. The fuzz crate (`fuzz/`, nightly, libFuzzer) calls them millions of
//! times; `tests/fuzz_corpus.rs` calls them on every committed corpus file and
//! crasher, so a regression fails the ordinary test suite on stable too.
//!
//! Each function panics exactly when a contract is broken: a panic inside linrt,
//! a non-finite output returned as Ok, a state that does not restore, a result that
//! depends on how the input was chunked, an error message of more than one line.
#![allow(dead_code)]

use std::io::Read;
use std::path::Path;

use linrt::asr::AsrInfo;
use linrt::decode::{BeamBuffers, BeamConfig};
use linrt::{AlignedBytes, Error, Input, InputKind, Inputs, Model, Session, SessionOptions};
use linrt_tools::asr::decoding::{Sources, Tables};
use linrt_tools::audio::compressed::CompressedReader;
use linrt_tools::audio::pcm::{PcmEncoding, PcmReader};
use linrt_tools::audio::resample::Resampler;
use linrt_tools::audio::wav::WavReader;
use linrt_tools::audio::AudioSource;

/// The speech model we ship: the vocabulary and metadata the text targets run against.
pub static SPEECH_MODEL: &[u8] = include_bytes!("../../models/asr-commands/asr-commands.int8.lrt");

/// The shipped speech model, read once per process: reading its 1.7 MB again in
/// every run made the text targets a hundred times slower than their parsers.
fn shipped() -> &'static Model<'static> {
    use std::sync::OnceLock;
    static BYTES: OnceLock<AlignedBytes> = OnceLock::new();
    static MODEL: OnceLock<Model<'static>> = OnceLock::new();
    MODEL.get_or_init(|| {
        BYTES.get_or_init(|| AlignedBytes::from_slice(SPEECH_MODEL)).model().expect("the shipped model reads")
    })
}

/// The shipped model's `AsrInfo`, built once per process.
fn shipped_info() -> &'static AsrInfo<'static> {
    use std::sync::OnceLock;
    static INFO: OnceLock<AsrInfo<'static>> = OnceLock::new();
    INFO.get_or_init(|| AsrInfo::from_model(shipped()).expect("the shipped model is a speech model"))
}

/// Largest arena a fuzzed model may ask for before the check skips it (the reader
/// bounds the state by the file's weights, so this is never near for small inputs).
const MAX_ARENA: usize = 64 << 20;

/// The targets, by the name of their corpus folder.
pub const TARGETS: [&str; 7] = ["lrt", "state", "audio", "resample", "metadata", "words", "onnx"];

/// Runs target `name` on `data`.
pub fn check(name: &str, data: &[u8]) {
    match name {
        "lrt" => lrt(data),
        "state" => state(data),
        "audio" => audio(data),
        "compressed" => compressed(data),
        "resample" => resample(data),
        "metadata" => metadata(data),
        "words" => words(data),
        "onnx" => onnx(data),
        other => panic!("no fuzz target named {other}"),
    }
}

/// An error message fit for one line of a terminal (anyhow chains are first rendered
/// as the CLI prints them, `linrt_tools::cli::one_line`).
fn one_line(message: &str) {
    assert!(!message.is_empty() && !message.chars().any(char::is_control), "error is not one line: {message:?}");
}

/// Inputs for `model` drawn from `bytes`: tokens in range, or vector values in [-4, 4].
fn inputs_for(model: &Model, bytes: &[u8], t: usize) -> (Vec<u32>, Vec<f32>) {
    let cfg = model.config();
    let byte = |i: usize| bytes.get(i % bytes.len().max(1)).copied().unwrap_or(7);
    match cfg.input_kind {
        InputKind::Tokens => ((0..t).map(|i| u32::from(byte(i)) % cfg.input_dim).collect(), Vec::new()),
        InputKind::Vectors => {
            let n = t * cfg.input_width();
            (Vec::new(), (0..n).map(|i| (f32::from(byte(i)) - 127.5) / 32.0).collect())
        }
    }
}

/// `.lrt` bytes: when the reader takes them, a session over the exact arena steps,
/// takes a chunk, and saves and restores its state; every output is finite or the
/// step is a typed error, and a restored stream repeats itself bit for bit. The first
/// byte chooses whether the checksum is recomputed first (so that mutations reach
/// past it).
pub fn lrt(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 {
        linrt::format::writer::seal(&mut bytes);
    }
    let file = AlignedBytes::from_slice(&bytes);
    let model = match file.model() {
        Ok(m) => m,
        Err(e) => return one_line(&e.to_string()),
    };
    let t = 1 + usize::from(mode >> 6);
    let opts = SessionOptions { max_chunk: t, kernels: None };
    let arena_bytes = match model.arena_bytes(opts) {
        Ok(n) => n,
        Err(e) => return one_line(&e.to_string()),
    };
    if arena_bytes > MAX_ARENA {
        return;
    }
    let _ = AsrInfo::from_model(&model).map_err(|e| one_line(&e.to_string()));
    let mut arena = vec![0u8; arena_bytes];
    let mut session = Session::new(&model, &mut arena, opts).expect("a session over the exact arena");
    let d_out = model.config().output_dim();
    let (tokens, vectors) = inputs_for(&model, &bytes, t + 2);
    let input = |i: usize| match model.config().input_kind {
        InputKind::Tokens => Input::Token(tokens[i]),
        InputKind::Vectors => {
            let w = model.config().input_width();
            Input::Vector(&vectors[i * w..(i + 1) * w])
        }
    };
    let mut out = vec![0f32; d_out];
    let step_ok = |result: Result<(), Error>, out: &[f32]| match result {
        Ok(()) => {
            assert!(out.iter().all(|v| v.is_finite()), "a step returned Ok with non-finite outputs");
            true
        }
        Err(Error::NonFiniteStep { .. }) => false,
        Err(e) => panic!("a valid input was refused: {e}"),
    };
    if !step_ok(session.step(input(0), &mut out), &out) {
        return;
    }
    // Save, step twice, restore, step twice again: the same bits.
    let mut saved = vec![0u8; session.state_bytes()];
    assert_eq!(session.save_state(&mut saved).expect("a finite stream saves"), saved.len());
    let mut first = Vec::new();
    for i in 1..3 {
        let ok = step_ok(session.step(input(i), &mut out), &out);
        first.push(ok.then(|| out.clone()));
    }
    session.restore_state(&saved).expect("restore_state takes what save_state wrote");
    for (i, expected) in (1..3).zip(&first) {
        let ok = step_ok(session.step(input(i), &mut out), &out);
        assert_eq!(ok.then(|| out.clone()).as_ref(), expected.as_ref(), "a restored stream differs");
        if !ok {
            break;
        }
    }
    // A chunk of t positions from the saved state.
    session.restore_state(&saved).expect("restore again");
    let mut outs = vec![0f32; t * d_out];
    let chunk = match model.config().input_kind {
        InputKind::Tokens => Inputs::Tokens(&tokens[..t]),
        InputKind::Vectors => Inputs::Vectors(&vectors[..t * model.config().input_width()]),
    };
    step_ok(session.step_chunk(chunk, &mut outs), &outs);
}

/// A small token model built once, for the state target.
fn state_model() -> &'static AlignedBytes {
    use std::sync::OnceLock;
    static MODEL: OnceLock<AlignedBytes> = OnceLock::new();
    MODEL.get_or_init(|| {
        let mut cfg = linrt::ModelConfig::new(8, 2, 2, 16);
        cfg.input_kind = InputKind::Tokens;
        cfg.input_dim = 5;
        let mut w = linrt::LrtWriter::new(cfg);
        let mut rng = linrt::rng::Rng::seeded(3);
        for i in 0..linrt::format::tensor_count(&cfg) {
            let spec = linrt::format::expected_tensor(&cfg, i).expect("in range");
            let n = spec.dims[0] as usize * spec.dims[1] as usize;
            w.tensor(spec.role, spec.layer, (0..n).map(|_| rng.next_f32() - 0.5).collect());
        }
        AlignedBytes::from_slice(&w.to_bytes().expect("a valid model"))
    })
}

/// State bytes into `restore_state` of a valid model: refused with a typed error,
/// or taken, after which saving writes the same bytes back (version 3) and a step
/// is finite or reports the overflow.
pub fn state(data: &[u8]) {
    let model = state_model().model().expect("valid");
    let opts = SessionOptions::default();
    let mut arena = vec![0u8; model.arena_bytes(opts).expect("sized")];
    let mut session = Session::new(&model, &mut arena, opts).expect("session");
    // The header of a real state, then the fuzzer's bytes: mutations past the header
    // matter most, and the header alone has a 2^-32 chance of a matching checksum.
    let mut blob = vec![0u8; session.state_bytes()];
    session.save_state(&mut blob).expect("zero state saves");
    let bytes: Vec<u8> = match data.split_first() {
        Some((&b, rest)) if b & 1 == 1 => {
            let mut v = blob.clone();
            for (i, x) in rest.iter().enumerate() {
                let at = i % v.len();
                v[at] ^= x;
            }
            v
        }
        Some((_, rest)) => rest.to_vec(),
        None => return,
    };
    match session.restore_state(&bytes) {
        Err(Error::BadState { reason }) => one_line(reason),
        Err(e) => panic!("restore_state failed with {e}, not BadState"),
        Ok(()) => {
            let mut again = vec![0u8; session.state_bytes()];
            if bytes.len() == again.len() {
                session.save_state(&mut again).expect("a restored state saves");
                assert_eq!(again, bytes, "save_state does not write back what restore_state took");
            }
            let mut out = vec![0f32; model.config().output_dim()];
            match session.step(Input::Token(1), &mut out) {
                Ok(()) => assert!(out.iter().all(|v| v.is_finite())),
                Err(Error::NonFiniteStep { .. }) => {}
                Err(e) => panic!("step after restore: {e}"),
            }
        }
    }
}

/// A reader that hands over the bytes in the pieces `sizes` says.
struct Pieces<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
    next: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let size = self.sizes.get(self.next % self.sizes.len().max(1)).map_or(4096, |&s| usize::from(s) + 1);
        self.next += 1;
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Reads a whole source in blocks of `block` samples: the samples and the error.
fn drain(source: &mut impl AudioSource, block: usize) -> (Vec<f32>, Option<String>) {
    let mut out = Vec::new();
    for _ in 0..1_000_000 {
        match source.read(&mut out, block) {
            Ok(0) => return (out, None),
            Ok(_) => {}
            Err(e) => return (out, Some(linrt_tools::cli::one_line(&e))),
        }
    }
    panic!("a finite input never ended");
}

/// WAV or raw PCM bytes through the streaming readers, delivered whole and in the
/// pieces the first bytes choose, read in blocks of different sizes: the same
/// samples and the same error either way; every sample finite and in [-1, 1].
pub fn audio(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let (head, body) = data.split_at(4);
    let sizes = &head[1..4];
    let block = 1 + usize::from(head[2]) * 7;
    let raw = head[0] & 1 == 1;
    let encodings = [PcmEncoding::U8, PcmEncoding::S16Le, PcmEncoding::S24Le, PcmEncoding::S32Le, PcmEncoding::F32Le];
    let encoding = encodings[usize::from(head[0] >> 1) % encodings.len()];
    let channels = 1 + u16::from(head[0] >> 5);
    let read = |reader: Box<dyn Read + '_>, block: usize| -> (Vec<f32>, Option<String>) {
        if raw {
            match PcmReader::new(reader, encoding, 16000, channels) {
                Ok(mut r) => drain(&mut r, block),
                Err(e) => (Vec::new(), Some(linrt_tools::cli::one_line(&e))),
            }
        } else {
            match WavReader::new(reader) {
                Ok(mut r) => drain(&mut r, block),
                Err(e) => (Vec::new(), Some(linrt_tools::cli::one_line(&e))),
            }
        }
    };
    let whole = read(Box::new(body), 4096);
    let pieces = read(Box::new(Pieces { data: body, sizes, next: 0 }), block);
    assert_eq!(whole.0.len(), pieces.0.len(), "sample count depends on chunking");
    assert!(whole.0.iter().zip(&pieces.0).all(|(a, b)| a.to_bits() == b.to_bits()), "samples depend on chunking");
    assert_eq!(whole.1, pieces.1, "the error depends on chunking");
    if let Some(e) = &whole.1 {
        one_line(e);
    }
    assert!(whole.0.iter().all(|v| (-1.0..=1.0).contains(v)), "a sample outside [-1, 1]");
}

/// Compressed audio (FLAC, Ogg Vorbis, MP3, AAC in MP4: symphonia behind linrt's
/// reader), from a file and from a pipe, read in blocks of the size the first byte
/// chooses and in large ones: no panic, the same samples and error whatever the
/// block size, every sample finite and in [-1, 1], errors on one line.
pub fn compressed(data: &[u8]) {
    let Some((&head, body)) = data.split_first() else {
        return;
    };
    let block = 1 + usize::from(head) * 13;
    // At most this many samples (a few bytes of FLAC can declare 65,535 samples per
    // frame): the contract is about every sample read, not about reading forever.
    const LIMIT: usize = 1 << 20;
    let read = |pipe: bool, block: usize| -> (Vec<f32>, Option<String>) {
        let opened = if pipe {
            CompressedReader::from_pipe(std::io::Cursor::new(body.to_vec()))
        } else {
            CompressedReader::open(Box::new(std::io::Cursor::new(body.to_vec())), None)
        };
        let mut reader = match opened {
            Ok(r) => r,
            Err(e) => return (Vec::new(), Some(linrt_tools::cli::one_line(&e))),
        };
        let mut out = Vec::new();
        while out.len() < LIMIT {
            match reader.read(&mut out, block) {
                Ok(0) => return (out, None),
                Ok(_) => {}
                Err(e) => return (out, Some(linrt_tools::cli::one_line(&e))),
            }
        }
        out.truncate(LIMIT);
        (out, None)
    };
    for pipe in [false, true] {
        let (small, small_error) = read(pipe, block);
        let (large, large_error) = read(pipe, 1 << 16);
        let n = small.len().min(large.len());
        assert!(small.len() == large.len() || n == LIMIT, "sample count depends on the block size");
        assert!(
            small[..n].iter().zip(&large[..n]).all(|(a, b)| a.to_bits() == b.to_bits()),
            "samples depend on the block size"
        );
        if n < LIMIT {
            assert_eq!(small_error, large_error, "the error depends on the block size");
        }
        if let Some(e) = &small_error {
            one_line(e);
        }
        assert!(small.iter().all(|v| (-1.0..=1.0).contains(v)), "a sample outside [-1, 1] or NaN");
    }
}

/// The resampler between the rates the first bytes choose, the samples fed whole
/// and in pieces: the same output bits; finite and of the expected length.
pub fn resample(data: &[u8]) {
    if data.len() < 8 {
        return;
    }
    // Three bytes per rate: every integer rate from 4 to 192 kHz.
    let rate = |b: &[u8]| 4000 + u32::from_le_bytes([b[0], b[1], b[2], 0]) % 188_001;
    let (from, to) = (rate(&data[0..3]), rate(&data[3..6]));
    let piece = 1 + usize::from(data[6]);
    // At most 2048 samples: enough for the history to be dropped and refilled many
    // times over, while a run at 4 → 192 kHz (98,000 outputs of 74 taps, twice)
    // stays a few milliseconds.
    let samples: Vec<f32> = data[7..].iter().take(2048).map(|&b| (f32::from(b) - 127.5) / 128.0).collect();
    let mut whole = Resampler::new(from, to);
    let mut expected = Vec::new();
    whole.process(&samples, &mut expected);
    whole.finish(&mut expected);
    let mut pieces = Resampler::new(from, to);
    let mut got = Vec::new();
    for chunk in samples.chunks(piece) {
        pieces.process(chunk, &mut got);
    }
    pieces.finish(&mut got);
    assert_eq!(expected.len(), got.len(), "{from} → {to} Hz: length depends on chunking");
    assert!(
        expected.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()),
        "{from} → {to} Hz: output depends on chunking"
    );
    assert!(expected.iter().all(|v| v.is_finite() && v.abs() < 4.0), "{from} → {to} Hz: output out of range");
    let ideal = samples.len() as f64 * f64::from(to) / f64::from(from);
    assert!(
        (expected.len() as f64 - ideal).abs() <= 2.0,
        "{from} → {to} Hz: {} samples for {ideal:.1}",
        expected.len()
    );
}

/// A small model shaped like the speech model (its inputs and outputs), with its
/// `app.*` metadata except where `replace` gives other values.
fn speech_shaped(replace: &[(&str, String)]) -> Result<Vec<u8>, Error> {
    let shipped = shipped();
    let base = shipped.config();
    let mut cfg = linrt::ModelConfig::new(8, 1, 1, 8);
    cfg.input_projection = base.input_projection;
    cfg.input_dim = if base.input_projection { base.input_dim } else { 8 };
    cfg.output_kind = base.output_kind;
    cfg.output_dim = base.output_dim;
    let mut w = linrt::LrtWriter::new(cfg);
    for i in 0..linrt::format::tensor_count(&cfg) {
        let spec = linrt::format::expected_tensor(&cfg, i).expect("in range");
        let n = spec.dims[0] as usize * spec.dims[1] as usize;
        w.tensor(spec.role, spec.layer, (0..n).map(|j| ((j % 7) as f32 - 3.0) / 16.0).collect());
    }
    for (key, value) in shipped.metadata().filter(|(k, _)| k.starts_with("app.")) {
        if !replace.iter().any(|(k, _)| *k == key) {
            w.metadata(key, value);
        }
    }
    for (key, value) in replace {
        w.metadata(*key, value.as_str());
    }
    w.to_bytes()
}

/// A speech-shaped model's `app.*` metadata replaced by the fuzzer's: `AsrInfo`
/// takes it or says why in one line. The first byte chooses the keys; the values
/// are the rest, split at NUL bytes.
pub fn metadata(data: &[u8]) {
    const KEYS: [&str; 6] =
        ["app.task", "app.frontend", "app.vocabulary", "app.feature_mean", "app.feature_std", "app.words"];
    let Some((&mask, rest)) = data.split_first() else { return };
    let mut values = rest.split(|&b| b == 0).map(|v| String::from_utf8_lossy(v).into_owned());
    let replace: Vec<(&str, String)> = KEYS
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, k)| (*k, values.next().unwrap_or_default()))
        .collect();
    let bytes = match speech_shaped(&replace) {
        Ok(b) => AlignedBytes::from_slice(&b),
        Err(e) => return one_line(&e.to_string()),
    };
    let model = bytes.model().expect("the writer's output reads");
    if let Err(e) = AsrInfo::from_model(&model) {
        one_line(&e.to_string());
    }
}

/// A word list, a grammar and hotwords (the input split at the first two NUL
/// bytes) for the speech model's beam decoder: refused in one line naming where,
/// or built and run over a few steps of logits drawn from the same bytes.
pub fn words(data: &[u8]) {
    let Some((&mask, rest)) = data.split_first() else { return };
    let mut parts = rest.splitn(3, |&b| b == 0).map(|p| String::from_utf8_lossy(p).into_owned());
    let (w, g, h) = (parts.next(), parts.next(), parts.next());
    let pick = |bit: u8, text: Option<String>| if mask & bit != 0 { text } else { None };
    let sources = Sources::from_texts(pick(1, w), pick(2, g), pick(4, h));
    let info = shipped_info();
    let mut tables = Tables::new(info, &sources);
    let vocabulary = match tables.build(info, &sources, 1.5) {
        Ok(v) => v,
        Err(e) => return one_line(&linrt_tools::cli::one_line(&e)),
    };
    let config = BeamConfig { beam: 4, ..BeamConfig::default() };
    let mut buffers = BeamBuffers::new(&config, info.symbols()).expect("beam buffers");
    let mut decoder = linrt::asr::Decoder::beam(
        info,
        config,
        &vocabulary.lexicon,
        vocabulary.grammar.as_ref(),
        vocabulary.hotwords.as_ref(),
        buffers.memory(),
    )
    .expect("a decoder over a vocabulary that built");
    let symbols = info.symbols();
    for step in 0..12 {
        let logits: Vec<f32> = (0..symbols)
            .map(|s| f32::from(rest.get((step * symbols + s) % rest.len().max(1)).copied().unwrap_or(0)) / 16.0)
            .collect();
        if let Err(e) = decoder.push(&logits) {
            one_line(&e.to_string());
            break;
        }
    }
}

/// ONNX protobuf bytes through the converter's reading, inference and writing: an
/// error line or a model the reader takes; tract panicking inside is turned into
/// an error by the converter, never an abort.
pub fn onnx(data: &[u8]) {
    use linrt_tools::onnx::{convert::build_writer, graph::OnnxGraph, infer};
    let result = OnnxGraph::from_bytes(data.to_vec(), Path::new("fuzz.onnx")).and_then(|graph| {
        let inferred = infer::infer(&graph, &infer::Overrides::default())?;
        let writer = build_writer(&graph, &inferred)?;
        Ok(writer.to_bytes()?)
    });
    match result {
        Ok(bytes) => {
            let file = AlignedBytes::from_slice(&bytes);
            file.model().expect("the converter wrote a model its reader refuses");
        }
        Err(e) => one_line(&linrt_tools::cli::one_line(&e)),
    }
}
