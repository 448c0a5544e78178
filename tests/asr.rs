//! Streaming speech recognition end to end: the log-mel front-end against
//! kaldi-native-fbank, and the recognizer pipeline on the shipped model.

mod common;

use std::path::{Path, PathBuf};

use linrt::audio::{Fbank, FbankOptions};
use linrt::decode::EndpointConfig;
use linrt::ModelFile;
use linrt_tools::asr::{with_recognizer, AsrInfo, DecodeOptions, DecoderKind, Event};
use linrt_tools::audio::wav::WavReader;
use linrt_tools::audio::AudioSource;
use linrt_tools::npy::{self, NpyData};

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/fbank").join(name)
}

/// 16-bit mono PCM of a WAV written by soundfile (the goldens' writer).
fn wav_samples(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let data = bytes.windows(4).position(|w| w == b"data").unwrap() + 8;
    bytes[data..].chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0).collect()
}

fn features(samples: &[f32], chunk: usize) -> Vec<f32> {
    let mut fbank = Fbank::new(FbankOptions::default()).unwrap();
    let mut out = Vec::new();
    for piece in samples.chunks(chunk.max(1)) {
        fbank.accept(piece, |f| out.extend_from_slice(f));
    }
    fbank.finish(|f| out.extend_from_slice(f));
    out
}

fn floats(path: &Path) -> Vec<f32> {
    match npy::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).data {
        NpyData::F32(v) => v,
        NpyData::I64(_) => panic!("{} holds integers", path.display()),
    }
}

/// Largest |a − b| over the frames' bins that `keep(frame, bin)` selects, and where.
fn worst(got: &[f32], want: &[f32], keep: impl Fn(&[f32], usize) -> bool) -> (f32, usize) {
    assert_eq!(got.len(), want.len(), "frame count");
    let mut worst = (0f32, 0);
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        let frame = &want[i / 80 * 80..][..80];
        if keep(frame, i % 80) && (a - b).abs() > worst.0 {
            worst = ((a - b).abs(), i);
        }
    }
    worst
}

/// Bins within this many nepers (60 dB) of their frame's loudest: below that,
/// kaldi-native-fbank's float32 FFT is noise (its error is 1e-7 of the loudest bin).
const KALDI_RANGE: f32 = 13.8;

#[test]
fn fbank_matches_kaldi_native_fbank() {
    // speech: real-length speech (5 s), every bin. short: 300 samples, reflected at
    // both ends. stress: a chirp, noise, silence, a quiet stretch, clipping — compared
    // with kaldi-native-fbank where its float32 arithmetic is meaningful, and
    // everywhere with the float64 computation of the same features.
    for name in ["speech", "short", "stress"] {
        let samples = wav_samples(&golden(&format!("{name}.wav")));
        let kaldi = floats(&golden(&format!("{name}.fbank.npy")));
        let exact = floats(&golden(&format!("{name}.exact.npy")));
        let got = features(&samples, samples.len());
        let in_range = |frame: &[f32], bin: usize| {
            name != "stress" || frame[bin] >= frame.iter().fold(f32::MIN, |m, v| m.max(*v)) - KALDI_RANGE
        };
        let (vs_kaldi, at) = worst(&got, &kaldi, in_range);
        let (vs_exact, _) = worst(&got, &exact, |_, _| true);
        println!(
            "{name}: {} frames, max |linrt − kaldi-native-fbank| {vs_kaldi:.2e}, max |linrt − float64| {vs_exact:.2e}",
            kaldi.len() / 80
        );
        assert!(
            vs_kaldi <= 1e-3,
            "{name}: log-mel differs from kaldi-native-fbank by {vs_kaldi} at frame {} bin {}",
            at / 80,
            at % 80
        );
        assert!(vs_exact <= 1e-4, "{name}: log-mel differs from the float64 features by {vs_exact}");
    }
}

#[test]
fn fbank_is_identical_whatever_the_chunking() {
    let samples = wav_samples(&golden("speech.wav"));
    let whole = features(&samples, samples.len());
    for chunk in [1, 7, 160, 1600] {
        let got = features(&samples, chunk);
        assert!(
            got.iter().zip(&whole).all(|(a, b)| a.to_bits() == b.to_bits()) && got.len() == whole.len(),
            "chunk {chunk}"
        );
    }
}

fn model_path(dtype: &str) -> PathBuf {
    common::model_file("asr-commands", dtype)
}

fn read_wav(path: &Path) -> Vec<f32> {
    let mut wav = WavReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut samples = Vec::new();
    while wav.read(&mut samples, 1 << 16).unwrap() > 0 {}
    samples
}

/// Streams `samples` through a recognizer with the `kind` decoder in chunks of
/// `chunk`: every step's logits and the finals (text, start, end).
fn stream(dtype: &str, kind: DecoderKind, samples: &[f32], chunk: usize) -> (Vec<f32>, Vec<(String, f64, f64)>) {
    let file = ModelFile::open(model_path(dtype)).unwrap();
    let model = file.model().unwrap();
    let info = AsrInfo::from_model(&model).unwrap();
    let options = DecodeOptions { kind: Some(kind), ..DecodeOptions::default() };
    with_recognizer(&model, info, &options, EndpointConfig::default(), None, |rec| {
        rec.record_logits();
        let mut finals = Vec::new();
        let mut collect = |events: Vec<Event>| {
            for e in events {
                if let Event::Final(u) = e {
                    finals.push((u.text, u.start, u.end));
                }
            }
        };
        for piece in samples.chunks(chunk) {
            rec.accept(piece)?;
            collect(rec.events());
        }
        rec.finish()?;
        collect(rec.events());
        Ok((rec.recorded_logits().to_vec(), finals))
    })
    .unwrap()
}

#[test]
fn any_chunking_gives_bit_identical_logits_and_transcripts() {
    let sample = read_wav(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/asr-commands/sample.wav"));
    for dtype in ["f32", "int8"] {
        for kind in [DecoderKind::Beam, DecoderKind::Greedy] {
            let (logits, finals) = stream(dtype, kind, &sample, sample.len());
            assert!(!finals.is_empty() && !logits.is_empty());
            for chunk in [1, 160, 1600] {
                let (l, f) = stream(dtype, kind, &sample, chunk);
                assert_eq!(f, finals, "{dtype} {kind:?}: chunks of {chunk}: transcripts");
                assert_eq!(l.len(), logits.len(), "{dtype} {kind:?}: chunks of {chunk}: steps");
                assert!(
                    l.iter().zip(&logits).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{dtype} {kind:?}: chunks of {chunk}: logits"
                );
            }
        }
    }
}

/// All of an audio file's samples, through the reader `linrt asr` picks for it.
fn file_samples(path: &Path) -> (Vec<f32>, u32) {
    let (mut source, _) = linrt_tools::audio::open_file(path).unwrap();
    let mut samples = Vec::new();
    while source.read(&mut samples, 1 << 16).unwrap() > 0 {}
    (samples, source.sample_rate())
}

#[test]
fn a_lossless_file_gives_the_wav_logits_bit_for_bit_and_lossy_ones_its_transcripts() {
    // tools/tests/audio/: the sample encoded by ffmpeg (see its README).
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let wav = read_wav(&root.join("models/asr-commands/sample.wav"));
    let audio = |name: &str| file_samples(&root.join("tools/tests/audio").join(name));
    let (flac, rate) = audio("sample.flac");
    assert_eq!(rate, 16000);
    assert!(flac.len() == wav.len() && flac.iter().zip(&wav).all(|(a, b)| a.to_bits() == b.to_bits()), "FLAC samples");
    let (logits, finals) = stream("int8", DecoderKind::Beam, &wav, 160);
    let (flac_logits, flac_finals) = stream("int8", DecoderKind::Beam, &flac, 160);
    assert_eq!(flac_finals, finals);
    assert_eq!(flac_logits.len(), logits.len());
    assert!(flac_logits.iter().zip(&logits).all(|(a, b)| a.to_bits() == b.to_bits()), "FLAC logits");
    // Lossy: the same words; AAC in MP4 comes 64 ms late (1,024 priming samples
    // that symphonia does not trim: it reads the file's edit list but does not apply it).
    for (name, late) in [("sample.ogg", 0.0), ("sample.mp3", 0.0), ("sample.m4a", 0.064)] {
        let (samples, rate) = audio(name);
        assert_eq!(rate, 16000, "{name}");
        let (_, got) = stream("int8", DecoderKind::Beam, &samples, 160);
        let texts: Vec<&str> = got.iter().map(|f| f.0.as_str()).collect();
        let want: Vec<&str> = finals.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(texts, want, "{name}");
        for (g, w) in got.iter().zip(&finals) {
            assert!((g.1 - late - w.1).abs() <= 0.035, "{name}: {g:?} against {w:?}");
        }
    }
}

#[test]
fn the_sample_stream_ends_each_utterance_at_an_endpoint_with_its_command() {
    // sample.wav: the golden utterances with 1.4 s of quiet between them. Streamed
    // (as `linrt asr` plays it, with the default beam decoder), each becomes one
    // final inside its own stretch of audio, and reads exactly what was said.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sample = read_wav(&root.join("models/asr-commands/sample.wav"));
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("models/asr-commands/golden/cases.json")).unwrap())
            .unwrap();
    let cases = cases.as_array().unwrap();
    for dtype in ["f32", "int8"] {
        let (_, finals) = stream(dtype, DecoderKind::Beam, &sample, 160);
        assert_eq!(finals.len(), cases.len(), "{dtype}: {finals:?}");
        for (i, ((text, start, end), case)) in finals.iter().zip(cases).enumerate() {
            let seconds = |key: &str| case[key].as_f64().unwrap() / 16000.0;
            assert!(*start >= seconds("start") && *end <= seconds("end") + 0.05, "{dtype} {i}: {start}..{end} s");
            assert_eq!(text, case["reference"].as_str().unwrap(), "{dtype}: utterance {i}");
        }
    }
}
