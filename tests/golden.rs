//! Golden equivalence with fast-transformers: each golden model converts from both
//! ONNX forms, and `linrt run` reproduces the reference outputs at every one of 512
//! steps (recurrent form) and over the whole sequence (causal parallel form).
//! Fixtures come from models/make_golden.py; CI never needs Python.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Parser;
use linrt::ModelFile;
use linrt_tools::cli::{execute, Cli};
use linrt_tools::npy::{self, NpyData};
use linrt_tools::onnx::convert::{convert_file, ConvertOptions};
use linrt_tools::run::{read_inputs, run_model};

const TOLERANCE: f32 = 1e-5;

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name)
}

/// A scratch copy of a golden folder with every `.gz` decompressed.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str, tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("linrt-golden-{name}-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        for entry in fs::read_dir(golden(name)).unwrap() {
            let path = entry.unwrap().path();
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            if let Some(plain) = file.strip_suffix(".gz") {
                let mut raw = Vec::new();
                flate2::read::GzDecoder::new(fs::File::open(&path).unwrap()).read_to_end(&mut raw).unwrap();
                fs::write(dir.join(plain), raw).unwrap();
            } else {
                fs::copy(&path, dir.join(&file)).unwrap();
            }
        }
        Scratch(dir)
    }
    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn floats(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let a = npy::read(path).unwrap();
    match a.data {
        NpyData::F32(v) => (a.shape, v),
        NpyData::I64(_) => panic!("{} holds integers", path.display()),
    }
}

/// Checks every step's row against the reference, relative to the output scale.
fn assert_matches(what: &str, got: &[f32], reference: &Path) {
    let (shape, want) = floats(reference);
    assert_eq!(got.len(), want.len(), "{what}: output size");
    let width = shape[1];
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let mut worst = 0f32;
    for (t, (g, w)) in got.chunks_exact(width).zip(want.chunks_exact(width)).enumerate() {
        let err = g.iter().zip(w).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale;
        assert!(err <= TOLERANCE, "{what}: step {t} differs from fast-transformers by {err:.2e} of the output scale");
        worst = worst.max(err);
    }
    eprintln!("{what}: worst step {worst:.2e} of output scale {scale:.3}");
}

fn check(name: &str, form: &str) {
    let dir = Scratch::new(name, form);
    let onnx = dir.path(&format!("{form}.onnx"));
    let lrt = dir.path("model.lrt");
    let done = convert_file(&onnx, &lrt, &ConvertOptions::default(), &mut |_| {}).unwrap();
    let report = done.report.expect("verification runs by default");
    assert!(report.passed() && report.max_rel() < 1e-5, "{name}/{form}: tract comparison {:.2e}", report.max_rel());

    // `linrt run`, the command itself (in process): one recurrent step per row.
    let y = dir.path("y.npy");
    let cli = Cli::try_parse_from([
        "linrt",
        "run",
        lrt.to_str().unwrap(),
        "--input",
        dir.path("input.npy").to_str().unwrap(),
        "--output",
        y.to_str().unwrap(),
    ])
    .unwrap();
    execute(cli.command).unwrap();
    let (shape, stepped) = floats(&y);
    assert_eq!(shape[0], 512);
    assert_matches(&format!("{name}/{form} recurrent"), &stepped, &dir.path("recurrent.npy"));

    // The causal parallel form, over the whole sequence and in chunks.
    let file = ModelFile::open(&lrt).unwrap();
    let model = file.model().unwrap();
    let inputs = read_inputs(&dir.path("input.npy"), &model).unwrap();
    let whole = run_model(&model, &inputs, 512, None).unwrap();
    assert_matches(&format!("{name}/{form} causal, one chunk"), &whole, &dir.path("causal.npy"));
    let chunked = run_model(&model, &inputs, 48, None).unwrap();
    assert_matches(&format!("{name}/{form} causal, chunks of 48"), &chunked, &dir.path("causal.npy"));

    // Inferring everything from the graph alone gives the same file.
    let bare = dir.path("bare.lrt");
    let opts = ConvertOptions {
        overrides: linrt_tools::onnx::infer::Overrides { ignore_metadata: true, ..Default::default() },
        ..Default::default()
    };
    convert_file(&onnx, &bare, &opts, &mut |_| {}).unwrap();
    assert_eq!(
        fs::read(&bare).unwrap(),
        fs::read(&lrt).unwrap(),
        "{name}/{form}: graph-only inference differs from metadata"
    );
}

#[test]
fn tiny_step_form() {
    check("tiny", "step");
}
#[test]
fn tiny_sequence_form() {
    check("tiny", "sequence");
}
#[test]
fn small_step_form() {
    check("small", "step");
}
#[test]
fn small_sequence_form() {
    check("small", "sequence");
}
#[test]
fn mixed_dims_gelu_no_final_norm_step_form() {
    check("mixed", "step");
}
#[test]
fn mixed_dims_gelu_no_final_norm_sequence_form() {
    check("mixed", "sequence");
}

// The paper's other feature maps, as fast-transformers computes them (Ω frozen).
#[test]
fn relu_feature_map_step_form() {
    check("fm_relu", "step");
}
#[test]
fn relu_feature_map_sequence_form() {
    check("fm_relu", "sequence");
}
#[test]
fn favor_step_form() {
    check("fm_favor", "step");
}
#[test]
fn favor_sequence_form() {
    check("fm_favor", "sequence");
}
#[test]
fn random_fourier_features_step_form() {
    check("fm_random_fourier", "step");
}
#[test]
fn random_fourier_features_sequence_form() {
    check("fm_random_fourier", "sequence");
}
#[test]
fn smoothed_random_fourier_features_step_form() {
    check("fm_smoothed_random_fourier", "step");
}
#[test]
fn smoothed_random_fourier_features_sequence_form() {
    check("fm_smoothed_random_fourier", "sequence");
}
#[test]
fn generalized_random_features_step_form() {
    check("fm_generalized_random", "step");
}
#[test]
fn generalized_random_features_sequence_form() {
    check("fm_generalized_random", "sequence");
}

/// Each map is recognised from the graph, with the width and constants
/// fast-transformers used, and Ω travels transposed.
#[test]
fn feature_maps_are_read_from_the_graph() {
    use linrt::FeatureMap::*;
    for (name, map, per_head) in [
        ("fm_relu", Relu, 16),
        ("fm_favor", Favor, 32),
        ("fm_random_fourier", RandomFourier, 24),
        ("fm_smoothed_random_fourier", SmoothedRandomFourier, 21),
        ("fm_generalized_random", GeneralizedRandom, 20),
    ] {
        let dir = Scratch::new(name, "inferred");
        let mut opts = ConvertOptions::default();
        opts.overrides.ignore_metadata = true;
        let done = convert_file(&dir.path("sequence.onnx"), &dir.path("m.lrt"), &opts, &mut |_| {}).unwrap();
        let c = done.inferred.config;
        assert_eq!((c.feature_map, c.features_per_head()), (map, per_head), "{name}");
        let p = c.feature_params;
        // softmax_temp defaults to 1/√d_query (random Fourier, Favor) or 1 (generalized).
        let scale = if map == GeneralizedRandom || map == Relu { 1.0 } else { 0.5 };
        if map != Relu {
            assert_eq!(p.input_scale, scale, "{name}");
        }
        match map {
            Favor => assert!((p.log_offset - 0.5 * 32f32.ln()).abs() < 1e-6, "{name}: {p:?}"),
            RandomFourier => assert!((p.output_scale - (2.0f32 / 24.0).sqrt()).abs() < 1e-6, "{name}: {p:?}"),
            SmoothedRandomFourier => {
                assert!((p.output_scale - (2.0f32 / 20.0).sqrt()).abs() < 1e-6 && p.smoothing == 0.5, "{name}: {p:?}")
            }
            _ => {}
        }
    }
}

/// A feature map linrt does not run is refused at conversion, naming the node it
/// found, and no file is written.
#[test]
fn unsupported_feature_map_is_refused_with_its_node() {
    let dir = Scratch::new("cases", "softplus");
    let out = dir.path("never.lrt");
    let err = convert_file(&dir.path("unsupported_feature_map.onnx"), &out, &ConvertOptions::default(), &mut |_| {})
        .err()
        .expect("refused");
    let msg = format!("{err:#}");
    assert!(msg.contains("unsupported feature map") && msg.contains("Softplus"), "{msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    assert!(!out.exists());
}

#[test]
fn softmax_attention_under_linear_names_is_rejected_by_verification() {
    let dir = Scratch::new("softmax", "reject");
    let out = dir.path("softmax.lrt");
    let err = convert_file(&dir.path("sequence.onnx"), &out, &ConvertOptions::default(), &mut |_| {}).err().unwrap();
    let msg = format!("{err:#}");
    assert!(msg.starts_with("verification failed"), "{msg}");
    assert!(!out.exists(), "a failed conversion must leave no file");
    // Skipping verification is the only way such a file gets written.
    let opts = ConvertOptions { skip_verify: true, ..Default::default() };
    convert_file(&dir.path("sequence.onnx"), &out, &opts, &mut |_| {}).unwrap();
    assert!(out.exists());
}

#[test]
fn malformed_onnx_inputs_get_clear_errors() {
    let dir = Scratch::new("cases", "errors");
    let cases = [
        ("missing_tensor.onnx", "missing tensor layers.0.linear2.bias"),
        ("shape_mismatch.onnx", "contradictory d_ff: metadata says 32, the weights say 31"),
        ("contradictory_heads.onnx", "contradictory n_heads: metadata says 4, the graph says 2"),
        ("bad_metadata.onnx", "metadata key linrt.layernorm_eps has unusable value \"tiny\""),
        ("not_a_transformer.onnx", "missing tensor layers.0.attention.query_projection.weight"),
        ("corrupted.onnx", "is not a valid ONNX model"),
        ("micro_batch2.sequence.onnx", "the ONNX input x fixes the batch at 2 (shape [2, 40, 16])"),
        ("does_not_exist.onnx", "cannot read"),
        // Graphs tract cannot run: the node, in the user's terms, and what to try.
        (
            "unknown_op.onnx",
            "tract cannot run node \"/layers.0/FancyActivation\": it does not implement the op FancyActivation",
        ),
        ("untypable.onnx", "tract cannot type node \"/input/Reshape\" (Reshape): the shapes it is given do not fit it"),
        (
            "unsupported_feature_map.onnx",
            "unsupported feature map: the query projection of layer 0 feeds node \"/layers.0/Softplus\"",
        ),
    ];
    for (file, expected) in cases {
        let out = dir.path("out.lrt");
        let err = convert_file(&dir.path(file), &out, &ConvertOptions::default(), &mut |_| {}).err().unwrap();
        let msg = format!("{err:#}");
        assert!(msg.contains(expected), "{file}: got {msg:?}");
        assert!(!msg.contains('\n'), "{file}: error is not one line");
        assert!(!out.exists(), "{file}: left a file behind");
    }
    // The unbroken original converts; with its metadata ignored a flag must supply nothing
    // (heads come from the state inputs), and a wrong flag is a contradiction.
    let ok =
        convert_file(&dir.path("micro.step.onnx"), &dir.path("micro.lrt"), &ConvertOptions::default(), &mut |_| {});
    assert!(ok.is_ok(), "{:?}", ok.err());
    let mut opts = ConvertOptions::default();
    opts.overrides.n_heads = Some(4);
    let err = convert_file(&dir.path("micro.step.onnx"), &dir.path("x.lrt"), &opts, &mut |_| {}).err().unwrap();
    assert!(format!("{err:#}").contains("contradictory n_heads"), "{err:#}");
    // Shape checks stand even without metadata.
    opts = ConvertOptions::default();
    opts.overrides.ignore_metadata = true;
    let err = convert_file(&dir.path("shape_mismatch.onnx"), &dir.path("x.lrt"), &opts, &mut |_| {}).err().unwrap();
    assert!(format!("{err:#}").contains("tensor layers.0.linear1.bias has shape [32], expected [31]"), "{err:#}");
}

#[test]
fn a_sequence_length_the_graph_fixes_is_the_length_verified() {
    // torch.onnx.export without dynamic axes fixes x at [1, 40, 16]: verification
    // must feed exactly 40 positions (16, the default, cannot even load), say why,
    // and give the same file as the dynamic-length export of the same weights.
    let dir = Scratch::new("cases", "fixed");
    let mut said = Vec::new();
    let fixed = dir.path("fixed.lrt");
    let done = convert_file(&dir.path("micro_fixed40.sequence.onnx"), &fixed, &ConvertOptions::default(), &mut |m| {
        said.push(m.to_string())
    })
    .unwrap();
    let report = done.report.unwrap();
    assert!(report.passed());
    assert_eq!(report.steps, 40);
    assert_eq!(report.steps_note.as_deref(), Some("the ONNX input x fixes the sequence length at 40"));
    assert!(
        said.iter()
            .any(|m| m == "verifying against tract (40 steps: the ONNX input x fixes the sequence length at 40)"),
        "{said:?}"
    );
    // Asking for 40 says nothing more; the step form of the same weights gives the same tensors.
    let mut opts = ConvertOptions::default();
    opts.verify.steps = 40;
    let again = convert_file(&dir.path("micro_fixed40.sequence.onnx"), &dir.path("again.lrt"), &opts, &mut |_| {});
    assert_eq!(again.unwrap().report.unwrap().steps_note, None);
    let step = dir.path("step.lrt");
    convert_file(&dir.path("micro.step.onnx"), &step, &ConvertOptions::default(), &mut |_| {}).unwrap();
    let (fa, fb) = (std::fs::read(&fixed).unwrap(), std::fs::read(&step).unwrap());
    let (ba, bb) = (linrt::AlignedBytes::from_slice(&fa), linrt::AlignedBytes::from_slice(&fb));
    let (a, b) = (ba.model().unwrap(), bb.model().unwrap());
    assert_eq!(a.config(), b.config());
    let bytes =
        |file: &[u8], t: linrt::format::TensorInfo| file[t.offset as usize..(t.offset + t.size) as usize].to_vec();
    for i in 0..a.tensor_count() {
        let (ta, tb) = (a.tensor(i).unwrap(), b.tensor(i).unwrap());
        assert_eq!(bytes(&fa, ta), bytes(&fb, tb), "tensor {i}");
    }
}

#[test]
fn pre_norm_gelu_is_inferred_from_the_graph() {
    let dir = Scratch::new("cases", "prenorm");
    let onnx = dir.path("micro_prenorm.step.onnx");
    for ignore_metadata in [false, true] {
        let mut opts = ConvertOptions::default();
        opts.overrides.ignore_metadata = ignore_metadata;
        let out = dir.path(&format!("pre-{ignore_metadata}.lrt"));
        let done = convert_file(&onnx, &out, &opts, &mut |_| {}).unwrap();
        assert_eq!(done.inferred.config.norm_placement, linrt::NormPlacement::Pre);
        assert_eq!(done.inferred.config.activation, linrt::Activation::Gelu);
        assert!(done.report.unwrap().passed());
    }
    // Forcing the other placement is a contradiction with the graph, not a silent mix-up.
    let mut opts = ConvertOptions::default();
    opts.overrides.ignore_metadata = true;
    opts.overrides.norm_placement = Some(linrt::NormPlacement::Post);
    let err = convert_file(&onnx, &dir.path("x.lrt"), &opts, &mut |_| {}).err().unwrap();
    assert!(format!("{err:#}").contains("contradictory norm_placement"), "{err:#}");
}

/// f16 stays within 2e-3 of the f32 model's output scale at every one of 512 steps;
/// int8 keeps a cosine similarity of at least 0.999 with f32 at every step. Files
/// shrink to about 1/2 and 1/4.
#[test]
fn quantized_models_track_f32_over_512_steps() {
    // Random Fourier features are ill-conditioned (their normaliser can near zero), so
    // the quantization bars are checked on the positive random maps.
    for name in ["tiny", "small", "mixed", "fm_favor", "fm_generalized_random"] {
        let dir = Scratch::new(name, "quantized");
        let onnx = dir.path("step.onnx");
        let mut outputs = Vec::new();
        let mut sizes = Vec::new();
        for dtype in [linrt::DType::F32, linrt::DType::F16, linrt::DType::I8] {
            let lrt = dir.path(&format!("{}.lrt", dtype.name()));
            let done = convert_file(&onnx, &lrt, &ConvertOptions::for_dtype(dtype), &mut |_| {}).unwrap();
            assert!(done.report.unwrap().passed());
            sizes.push(done.file_size as f64);
            let file = ModelFile::open(&lrt).unwrap();
            let model = file.model().unwrap();
            assert_eq!(model.weight_dtype(), dtype);
            let inputs = read_inputs(&dir.path("input.npy"), &model).unwrap();
            outputs.push((run_model(&model, &inputs, 1, None).unwrap(), model.config().output_dim()));
        }
        let (f32_out, width) = &outputs[0];
        let scale = f32_out.iter().fold(0f32, |m, v| m.max(v.abs()));
        let mut worst_f16 = 0f32;
        for (t, (a, b)) in outputs[1].0.chunks(*width).zip(f32_out.chunks(*width)).enumerate() {
            let err = linrt_tools::compare::distance(a, b).max_abs / scale;
            assert!(err <= 2e-3, "{name} f16: step {t} off by {err:.2e} of the f32 output scale");
            worst_f16 = worst_f16.max(err);
        }
        let cosine = linrt_tools::compare::min_cosine(&outputs[2].0, f32_out, *width);
        assert!(cosine >= 0.999, "{name} int8: cosine {cosine} with f32");
        eprintln!(
            "{name}: f16 worst step {worst_f16:.2e} of scale, int8 min cosine {cosine:.6}, sizes f16 {:.1}% int8 {:.1}% of f32",
            100.0 * sizes[1] / sizes[0],
            100.0 * sizes[2] / sizes[0]
        );
        if name == "small" {
            assert!(sizes[1] / sizes[0] <= 0.51 && sizes[2] / sizes[0] <= 0.27, "sizes {sizes:?}");
        }
    }
}

/// A model with sinusoidal positions: converted from its sequence-form ONNX (with
/// and without metadata), it matches PyTorch at every one of 300 recurrent steps and
/// in chunks; application metadata travels into the file; a step-form ONNX cannot
/// carry positions and is refused.
#[test]
fn sinusoidal_positions_match_pytorch() {
    let dir = Scratch::new("cases", "positional");
    let onnx = dir.path("micro_positional.sequence.onnx");
    for ignore_metadata in [false, true] {
        let lrt = dir.path(&format!("pos-{ignore_metadata}.lrt"));
        let mut opts = ConvertOptions::default();
        opts.overrides.ignore_metadata = ignore_metadata;
        opts.overrides.n_heads = ignore_metadata.then_some(2);
        let done = convert_file(&onnx, &lrt, &opts, &mut |_| {}).unwrap();
        assert_eq!(done.inferred.config.positional, linrt::Positional::Sinusoidal);
        assert!(done.report.unwrap().passed());
        let file = ModelFile::open(&lrt).unwrap();
        let model = file.model().unwrap();
        assert_eq!(model.version(), (1, 1));
        assert_eq!(model.metadata_value("app.task"), Some("test"));
        assert_eq!(
            model.metadata_value("app.vocabulary"),
            Some(r#"["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"]"#)
        );
        let inputs = read_inputs(&dir.path("micro_positional.input.npy"), &model).unwrap();
        let reference = dir.path("micro_positional.reference.npy");
        assert_matches("positional recurrent", &run_model(&model, &inputs, 1, None).unwrap(), &reference);
        assert_matches("positional chunks of 7", &run_model(&model, &inputs, 7, None).unwrap(), &reference);
    }
    // The flag against the step form's metadata ("none") is a contradiction; without
    // metadata, the step form cannot take positions at all.
    let mut opts = ConvertOptions::default();
    opts.overrides.positional = Some(linrt::Positional::Sinusoidal);
    let step = dir.path("micro.step.onnx");
    let err = convert_file(&step, &dir.path("x.lrt"), &opts, &mut |_| {}).err().unwrap();
    assert!(format!("{err:#}").contains("contradictory positional"), "{err:#}");
    opts.overrides.ignore_metadata = true;
    opts.overrides.n_heads = Some(2);
    let err = convert_file(&step, &dir.path("x.lrt"), &opts, &mut |_| {}).err().unwrap();
    assert!(format!("{err:#}").contains("step-form ONNX has no position input"), "{err:#}");
}
