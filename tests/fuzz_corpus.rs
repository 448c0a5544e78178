//! Every committed fuzz corpus file and every crasher the campaigns found, through
//! the same contract the fuzz target checks (tests/contracts): a parser regression
//! fails here on stable, without libFuzzer.

mod contracts;

use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn run_target(name: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let corpus = files(&root.join("corpus").join(name));
    let crashers = files(&root.join("regressions").join(name));
    assert!(!corpus.is_empty(), "fuzz/corpus/{name} is empty: seed it (fuzz/README.md)");
    for path in corpus.iter().chain(&crashers) {
        let data = std::fs::read(path).unwrap();
        let outcome = std::panic::catch_unwind(|| contracts::check(name, &data));
        assert!(outcome.is_ok(), "{} breaks the {name} contract", path.display());
    }
    eprintln!("{name}: {} corpus files, {} crashers", corpus.len(), crashers.len());
}

#[test]
fn lrt_corpus() {
    run_target("lrt");
}

#[test]
fn state_corpus() {
    run_target("state");
}

#[test]
fn audio_corpus() {
    run_target("audio");
}

#[test]
fn compressed_corpus() {
    run_target("compressed");
}

#[test]
fn resample_corpus() {
    run_target("resample");
}

#[test]
fn metadata_corpus() {
    run_target("metadata");
}

#[test]
fn words_corpus() {
    run_target("words");
}

#[test]
fn onnx_corpus() {
    run_target("onnx");
}

/// The names here and the fuzz crate's targets agree.
#[test]
fn every_target_has_a_test_and_a_fuzz_binary() {
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/Cargo.toml")).unwrap();
    for name in contracts::TARGETS {
        assert!(manifest.contains(&format!("name = \"{name}\"")), "fuzz/Cargo.toml has no {name} target");
    }
}

/// Writes the seed corpus (fixtures and small hand-made cases) into fuzz/corpus;
/// the committed corpus is these seeds and what the campaigns added, minimised
/// (fuzz/README.md). Run with `cargo test --test fuzz_corpus -- --ignored`.
#[test]
#[ignore]
fn write_seed_corpus() {
    use linrt::{DType, FeatureMap, FeatureParams, InputKind, LrtWriter, ModelConfig, OutputKind, Positional};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let put = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    // .lrt: small models of every input kind, dtype and feature-map family.
    let mut configs = Vec::new();
    let mut c = ModelConfig::new(8, 1, 2, 8);
    configs.push(("vectors", c));
    c.input_kind = InputKind::Tokens;
    c.input_dim = 5;
    c.output_kind = OutputKind::Linear;
    c.output_dim = 3;
    c.positional = Positional::Sinusoidal;
    configs.push(("tokens", c));
    let mut p = ModelConfig::new(4, 1, 1, 4);
    p.input_projection = true;
    p.input_dim = 3;
    configs.push(("projected", p));
    let f = ModelConfig {
        feature_map: FeatureMap::Favor,
        feature_dim: 4,
        feature_params: FeatureParams { input_scale: 0.5, log_offset: 0.7, ..Default::default() },
        ..ModelConfig::new(4, 1, 1, 4)
    };
    configs.push(("favor", f));
    for (name, cfg) in configs {
        for (dtype, tag) in [(DType::F32, "f32"), (DType::F16, "f16"), (DType::I8, "int8")] {
            let mut w = LrtWriter::new(cfg);
            let mut rng = linrt::rng::Rng::seeded(7);
            for i in 0..linrt::format::tensor_count(&cfg) {
                let spec = linrt::format::expected_tensor(&cfg, i).unwrap();
                let n = spec.dims[0] as usize * spec.dims[1] as usize;
                w.tensor(spec.role, spec.layer, (0..n).map(|_| rng.next_f32() - 0.5).collect());
            }
            w.weight_dtype(dtype, 0);
            let bytes = w.to_bytes().unwrap();
            for mode in [0u8, 1, 0x41] {
                put("lrt", &format!("{name}-{tag}-{mode:02x}"), &[&[mode][..], &bytes].concat());
            }
        }
    }
    // State blobs: XOR masks over a real state (first byte odd), and raw bytes.
    put("state", "zero-mask", &[1]);
    put("state", "flip-position", &[&[1u8][..], &[0; 16], &[1]].concat());
    put("state", "raw-header", &[&[0u8][..], b"LRTS\x03\0\0\0"].concat());
    // Audio: a head (raw? encoding, channels; piece sizes), then WAV or raw PCM.
    let wav = |format: u16, channels: u16, bits: u16, data: &[u8]| {
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&format.to_le_bytes());
        b.extend_from_slice(&channels.to_le_bytes());
        b.extend_from_slice(&16000u32.to_le_bytes());
        let align = channels * bits / 8;
        b.extend_from_slice(&(16000 * u32::from(align)).to_le_bytes());
        b.extend_from_slice(&align.to_le_bytes());
        b.extend_from_slice(&bits.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(data);
        b
    };
    let s16: Vec<u8> = (0..64i16).flat_map(|i| (i * 517).to_le_bytes()).collect();
    let f32s: Vec<u8> = (0..32).flat_map(|i| (i as f32 / 40.0 - 0.4).to_le_bytes()).collect();
    put("audio", "wav-s16", &[&[0u8, 3, 17, 200][..], &wav(1, 1, 16, &s16)].concat());
    put("audio", "wav-f32-stereo", &[&[0u8, 1, 2, 3][..], &wav(3, 2, 32, &f32s)].concat());
    put("audio", "wav-u8", &[&[0u8, 0, 0, 0][..], &wav(1, 1, 8, &s16[..40])].concat());
    put("audio", "wav-s24", &[&[0u8, 5, 9, 1][..], &wav(1, 1, 24, &s16[..60])].concat());
    put("audio", "raw-s16", &[&[3u8, 7, 7, 7][..], &s16].concat());
    put("audio", "raw-f32", &[&[9u8, 1, 4, 9][..], &f32s].concat());
    // Resampler: two rates (4000 + three bytes), a piece size, samples.
    for (name, from, to) in [
        ("16k-8k", 16000u32, 8000u32),
        ("44k1-16k", 44100, 16000),
        ("8k-48k", 8000, 48000),
        ("192k-44k1", 192_000, 44100),
    ] {
        let (a, b) = ((from - 4000).to_le_bytes(), (to - 4000).to_le_bytes());
        let samples: Vec<u8> = (0..200u32).map(|i| (128.0 + 100.0 * (i as f32 * 0.3).sin()) as u8).collect();
        put("resample", name, &[&a[..3], &b[..3], &[13], &samples].concat());
    }
    // Metadata: the speech model's own (mask 0), and single keys replaced.
    let speech = linrt::AlignedBytes::from_slice(contracts::SPEECH_MODEL);
    let model = speech.model().unwrap();
    put("metadata", "shipped", &[0]);
    for (bit, key) in [(1u8, "app.task"), (2, "app.frontend"), (4, "app.vocabulary"), (32, "app.words")] {
        let value = model.metadata_value(key).unwrap_or("asr-ctc");
        put("metadata", key, &[&[bit][..], value.as_bytes()].concat());
    }
    // Words, grammar, hotwords: the documented examples.
    let grammar = "<digit> = zero | one | two | three\n<unit> = minutes | seconds\nset a timer for <digit>+ <unit>\nturn <onoff> the lights please?\n<onoff> = on | off\n";
    put("words", "model-words", &[0]);
    put("words", "word-list", b"\x01turn on off lights\nnext\n");
    put("words", "grammar", &[&[2u8, 0][..], grammar.as_bytes()].concat());
    put("words", "hotwords", &[&[4u8, 0, 0][..], b"lights :2.0\nturn on\n"].concat());
    put("words", "all", &[&[7u8][..], b"stop go\0", grammar.as_bytes(), b"\0volume up :1.0\n"].concat());
    // ONNX: the converter's small fixtures.
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/cases");
    for path in files(&cases).into_iter().filter(|p| p.extension().is_some_and(|e| e == "onnx")) {
        let bytes = std::fs::read(&path).unwrap();
        if bytes.len() <= 64 << 10 {
            put("onnx", path.file_stem().unwrap().to_str().unwrap(), &bytes);
        }
    }
}
