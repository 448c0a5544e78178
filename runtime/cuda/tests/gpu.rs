//! The CUDA backend against the CPU, on a GPU. Each test runs wherever a CUDA device
//! is present and says plainly when it was skipped; `LINRT_REQUIRE_GPU=1` (set by
//! the device check, runtime/cuda/device-check.sh) turns a skip into a failure.
//!
//! Models: small random ones with odd sizes (every kernel's edge cases: widths not a
//! multiple of 4, 8 or 32, one head and several, query and value widths apart, pre-
//! and post-norm, relu and gelu, elu+1 and relu feature maps, tokens and vectors,
//! sinusoidal positions), in f32, f16, int8 per row and int8 per block of 8.

use linrt::format::{expected_tensor, tensor_count};
use linrt::rng::Rng;
use linrt::{
    Activation, AlignedBytes, DType, FeatureMap, Input, InputKind, Inputs, LrtWriter, Model, ModelConfig,
    NormPlacement, OutputKind, Positional, Session, SessionOptions,
};
use linrt_cuda::{CudaModel, CudaSession, CudaStreams, IoMemory};

fn device_or_skip(test: &str) -> Option<usize> {
    match linrt_cuda::devices() {
        Ok(list) if !list.is_empty() => Some(0),
        other => {
            let why = match other {
                Ok(_) => "the driver sees no device".to_string(),
                Err(e) => e.to_string(),
            };
            if std::env::var_os("LINRT_REQUIRE_GPU").is_some() {
                panic!("{test}: LINRT_REQUIRE_GPU is set but {why}");
            }
            eprintln!("SKIPPED {test}: {why}");
            None
        }
    }
}

fn configs() -> Vec<(&'static str, ModelConfig)> {
    let mut out = Vec::new();
    out.push(("post-norm relu vectors", ModelConfig::new(16, 2, 2, 32)));
    let mut c = ModelConfig::new(24, 3, 3, 40);
    c.positional = Positional::Sinusoidal;
    c.input_kind = InputKind::Tokens;
    c.input_dim = 11;
    c.output_kind = OutputKind::Linear;
    c.output_dim = 7;
    c.activation = Activation::Gelu;
    c.norm_placement = NormPlacement::Pre;
    c.final_norm = false;
    out.push(("tokens gelu pre-norm sinusoidal", c));
    let mut c = ModelConfig::new(36, 2, 4, 52);
    c.d_query = 5;
    c.d_value = 11;
    c.input_projection = true;
    c.input_dim = 13;
    c.output_kind = OutputKind::Linear;
    c.output_dim = 29;
    out.push(("odd heads, projected input", c));
    let mut c = ModelConfig::new(20, 1, 1, 24);
    c.feature_map = FeatureMap::Relu;
    out.push(("relu feature map, one head", c));
    out
}

fn random_model(cfg: &ModelConfig, seed: u64, dtype: DType, block: u32) -> AlignedBytes {
    let mut rng = Rng::from_state(seed | 1);
    let mut w = LrtWriter::new(*cfg);
    for i in 0..tensor_count(cfg) {
        let spec = expected_tensor(cfg, i).expect("index inside count");
        let n = spec.dims[0] as usize * spec.dims[1] as usize;
        let gain = matches!(
            spec.role,
            linrt::TensorRole::Norm1Weight | linrt::TensorRole::Norm2Weight | linrt::TensorRole::FinalNormWeight
        );
        let bound = 1.0 / (spec.dims[1] as f32).sqrt();
        let values = (0..n)
            .map(|_| {
                let u = rng.next_f32() * 2.0 - 1.0;
                if gain {
                    1.0 + 0.2 * u
                } else if spec.rank == 1 {
                    0.1 * u
                } else {
                    bound * u
                }
            })
            .collect();
        w.tensor(spec.role, spec.layer, values);
    }
    w.weight_dtype(dtype, block);
    AlignedBytes::from_slice(&w.to_bytes().expect("valid model"))
}

fn dtypes() -> [(&'static str, DType, u32, f32); 4] {
    // (name, dtype, int8 block, tolerance of max|gpu − cpu| / max|cpu|): f32 and f16
    // differ by summation order only; int8 also where an activation lands on a
    // quantization boundary after such a difference.
    [
        ("f32", DType::F32, 0, 1e-5),
        ("f16", DType::F16, 0, 1e-5),
        ("int8", DType::I8, 0, 2e-3),
        ("int8/8", DType::I8, 8, 2e-3),
    ]
}

fn inputs(cfg: &ModelConfig, t: usize, seed: u64) -> (Vec<u32>, Vec<f32>) {
    let mut rng = Rng::from_state(seed | 1);
    let tokens = (0..t).map(|_| (rng.next_u64() % cfg.input_dim.max(1) as u64) as u32).collect();
    let vectors = (0..t * cfg.input_width()).map(|_| rng.next_f32() * 2.0 - 1.0).collect();
    (tokens, vectors)
}

fn as_inputs<'x>(cfg: &ModelConfig, tokens: &'x [u32], vectors: &'x [f32]) -> Inputs<'x> {
    match cfg.input_kind {
        InputKind::Tokens => Inputs::Tokens(tokens),
        InputKind::Vectors => Inputs::Vectors(vectors),
    }
}

fn relative(got: &[f32], want: &[f32]) -> f32 {
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    got.iter().zip(want).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale
}

/// The CPU session's outputs for 12 steps then a chunk of 9 positions.
fn cpu_outputs(model: &Model, tokens: &[u32], vectors: &[f32]) -> Vec<f32> {
    let cfg = *model.config();
    let opts = SessionOptions { max_chunk: 9, kernels: Some(linrt::KernelPath::Scalar) };
    let mut arena = vec![0u32; model.arena_bytes(opts).unwrap().div_ceil(4)];
    let mut s = Session::new(model, bytemuck_bytes(&mut arena), opts).unwrap();
    let (d_out, width) = (cfg.output_dim(), cfg.input_width());
    let mut out = vec![0f32; 21 * d_out];
    for i in 0..12 {
        let input = match cfg.input_kind {
            InputKind::Tokens => Input::Token(tokens[i]),
            InputKind::Vectors => Input::Vector(&vectors[i * width..(i + 1) * width]),
        };
        s.step(input, &mut out[i * d_out..(i + 1) * d_out]).unwrap();
    }
    let chunk = as_inputs(&cfg, &tokens[12..21], &vectors[12 * width..21 * width]);
    s.step_chunk(chunk, &mut out[12 * d_out..]).unwrap();
    out
}

fn bytemuck_bytes(words: &mut [u32]) -> &mut [u8] {
    bytemuck::cast_slice_mut(words)
}

#[test]
fn sessions_match_the_cpu_for_every_dtype_and_shape() {
    let Some(ordinal) = device_or_skip("sessions_match_the_cpu") else { return };
    for (name, cfg) in configs() {
        for (dname, dtype, block, tolerance) in dtypes() {
            let bytes = random_model(&cfg, 7, dtype, block);
            let model = bytes.model().unwrap();
            let (tokens, vectors) = inputs(&cfg, 21, 3);
            let want = cpu_outputs(&model, &tokens, &vectors);
            let gpu = CudaModel::load(&model, ordinal).unwrap();
            let mut s = CudaSession::new(&gpu, 9).unwrap();
            let (d_out, width) = (cfg.output_dim(), cfg.input_width());
            let mut got = vec![0f32; 21 * d_out];
            for i in 0..12 {
                let input = match cfg.input_kind {
                    InputKind::Tokens => Input::Token(tokens[i]),
                    InputKind::Vectors => Input::Vector(&vectors[i * width..(i + 1) * width]),
                };
                s.step(input, &mut got[i * d_out..(i + 1) * d_out]).unwrap();
            }
            let chunk = as_inputs(&cfg, &tokens[12..21], &vectors[12 * width..21 * width]);
            s.step_chunk(chunk, &mut got[12 * d_out..]).unwrap();
            let rel = relative(&got, &want);
            eprintln!("{name}, {dname}: max |gpu - cpu| = {rel:.2e} of the output scale");
            assert!(rel <= tolerance, "{name}, {dname}: {rel:.2e} > {tolerance:.0e}");
        }
    }
}

/// B streams in one pass give each stream's outputs bit for bit as B separate sessions.
#[test]
fn batched_streams_equal_single_streams() {
    let Some(ordinal) = device_or_skip("batched_streams_equal_single_streams") else { return };
    for (name, cfg) in configs() {
        let bytes = random_model(&cfg, 11, DType::I8, 0);
        let model = bytes.model().unwrap();
        let gpu = CudaModel::load(&model, ordinal).unwrap();
        let (b, steps) = (5, 6);
        let (d_out, width) = (cfg.output_dim(), cfg.input_width());
        let per_stream: Vec<_> = (0..b).map(|i| inputs(&cfg, steps, 100 + i as u64)).collect();
        let mut batch = CudaStreams::new(&gpu, b, 1).unwrap();
        let mut together = vec![vec![0f32; steps * d_out]; b];
        for t in 0..steps {
            let tokens: Vec<u32> = per_stream.iter().map(|(tk, _)| tk[t]).collect();
            let vectors: Vec<f32> =
                per_stream.iter().flat_map(|(_, v)| v[t * width..(t + 1) * width].to_vec()).collect();
            let mut out = vec![0f32; b * d_out];
            batch.forward(as_inputs(&cfg, &tokens, &vectors), &mut out).unwrap();
            for (i, row) in out.chunks_exact(d_out).enumerate() {
                together[i][t * d_out..(t + 1) * d_out].copy_from_slice(row);
            }
        }
        for (i, (tokens, vectors)) in per_stream.iter().enumerate() {
            let mut s = CudaSession::new(&gpu, 1).unwrap();
            let mut alone = vec![0f32; steps * d_out];
            for t in 0..steps {
                let input = match cfg.input_kind {
                    InputKind::Tokens => Input::Token(tokens[t]),
                    InputKind::Vectors => Input::Vector(&vectors[t * width..(t + 1) * width]),
                };
                s.step(input, &mut alone[t * d_out..(t + 1) * d_out]).unwrap();
            }
            assert_eq!(together[i], alone, "{name}: stream {i} in a batch differs from itself alone");
        }
    }
}

/// State saved on either side restores on the other, and both continue alike.
#[test]
fn saved_states_cross_between_cpu_and_gpu() {
    let Some(ordinal) = device_or_skip("saved_states_cross_between_cpu_and_gpu") else { return };
    let (_, cfg) = configs().remove(1);
    let bytes = random_model(&cfg, 5, DType::F32, 0);
    let model = bytes.model().unwrap();
    let gpu = CudaModel::load(&model, ordinal).unwrap();
    let (tokens, _) = inputs(&cfg, 10, 9);
    let d_out = cfg.output_dim();
    let opts = SessionOptions { max_chunk: 1, kernels: Some(linrt::KernelPath::Scalar) };
    let mut arena = vec![0u32; model.arena_bytes(opts).unwrap().div_ceil(4)];
    let mut cpu = Session::new(&model, bytemuck_bytes(&mut arena), opts).unwrap();
    let mut out = vec![0f32; d_out];
    for &t in &tokens[..5] {
        cpu.step(Input::Token(t), &mut out).unwrap();
    }
    let mut saved = vec![0u8; cpu.state_bytes()];
    cpu.save_state(&mut saved).unwrap();
    let mut g = CudaSession::new(&gpu, 1).unwrap();
    g.restore_state(&saved).unwrap();
    assert_eq!(g.position(), 5);
    let (mut a, mut b) = (vec![0f32; d_out], vec![0f32; d_out]);
    for &t in &tokens[5..] {
        cpu.step(Input::Token(t), &mut a).unwrap();
        g.step(Input::Token(t), &mut b).unwrap();
        assert!(relative(&b, &a) <= 1e-5, "after a CPU state: {:.2e}", relative(&b, &a));
    }
    let mut from_gpu = vec![0u8; g.state_bytes()];
    assert_eq!(g.save_state(&mut from_gpu).unwrap(), saved.len());
    cpu.restore_state(&from_gpu).unwrap();
    assert_eq!(cpu.position(), 10);
    g.reset().unwrap();
    assert_eq!(g.position(), 0);
    assert!(g.restore_state(&from_gpu[..from_gpu.len() - 4]).is_err(), "a truncated state is refused");
}

/// Bad calls get the CPU's typed errors, and a device session is never left half-run.
#[test]
fn bad_inputs_are_typed_errors() {
    let Some(ordinal) = device_or_skip("bad_inputs_are_typed_errors") else { return };
    let (_, cfg) = configs().remove(1);
    let bytes = random_model(&cfg, 5, DType::F32, 0);
    let model = bytes.model().unwrap();
    let gpu = CudaModel::load(&model, ordinal).unwrap();
    let mut s = CudaSession::new(&gpu, 2).unwrap();
    let mut out = vec![0f32; cfg.output_dim()];
    let e = s.step(Input::Token(cfg.input_dim), &mut out).unwrap_err();
    assert!(e.to_string().contains("token"), "{e}");
    let mut three = vec![0f32; 3 * cfg.output_dim()];
    assert!(s.step_chunk(Inputs::Tokens(&[1, 2, 3]), &mut three).is_err(), "a chunk longer than max_chunk");
    assert_eq!(s.position(), 0, "failed calls consume nothing");
}

/// Inputs and outputs in mapped host memory (what an integrated GPU uses) give the
/// bits of copied device buffers (what a discrete one uses); a discrete GPU maps host
/// memory too, over the bus, so this runs on either.
#[test]
fn mapped_io_equals_copied_io() {
    let Some(ordinal) = device_or_skip("mapped_io_equals_copied_io") else { return };
    for (name, cfg) in configs() {
        let bytes = random_model(&cfg, 13, DType::I8, 0);
        let model = bytes.model().unwrap();
        let gpu = CudaModel::load(&model, ordinal).unwrap();
        let (tokens, vectors) = inputs(&cfg, 8, 4);
        let d_out = cfg.output_dim();
        let mut results = Vec::new();
        for io in [IoMemory::Copied, IoMemory::Mapped] {
            let mut s = CudaStreams::with_io(&gpu, 1, 4, io).unwrap();
            let mut out = vec![0f32; 8 * d_out];
            let width = cfg.input_width();
            for t in 0..4 {
                let one = as_inputs(&cfg, &tokens[t..t + 1], &vectors[t * width..(t + 1) * width]);
                s.forward(one, &mut out[t * d_out..(t + 1) * d_out]).unwrap();
            }
            s.forward(as_inputs(&cfg, &tokens[4..8], &vectors[4 * width..8 * width]), &mut out[4 * d_out..]).unwrap();
            results.push(out);
        }
        assert_eq!(results[0], results[1], "{name}: mapped and copied inputs and outputs differ");
    }
}

/// The backend seam itself: `linrt::Backend::forward` of `Cuda` over B streams × T
/// positions, each state its own device allocation, equals each stream alone.
#[test]
fn backend_seam_forward_equals_sessions() {
    use linrt::Backend;
    use linrt_cuda::{Cuda, CudaState, CudaWorkspace};
    let Some(ordinal) = device_or_skip("backend_seam_forward_equals_sessions") else { return };
    let cuda = Cuda::new(ordinal).unwrap();
    for (name, cfg) in configs() {
        let bytes = random_model(&cfg, 17, DType::F16, 0);
        let model = bytes.model().unwrap();
        assert_eq!(cuda.prepared_bytes(&model).unwrap(), 0);
        let prepared = cuda.prepare(&model, &mut []).unwrap();
        let (b, t) = (3, 4);
        let mut ws = CudaWorkspace::new(&prepared, b * t).unwrap();
        let mut states: Vec<CudaState> = (0..b).map(|_| CudaState::new(&prepared).unwrap()).collect();
        let (d_out, width) = (cfg.output_dim(), cfg.input_width());
        let data: Vec<_> = (0..b).map(|i| inputs(&cfg, 2 * t, 60 + i as u64)).collect();
        let mut together = vec![vec![0f32; 2 * t * d_out]; b];
        for round in 0..2 {
            let tokens: Vec<u32> = data.iter().flat_map(|(tk, _)| tk[round * t..(round + 1) * t].to_vec()).collect();
            let vectors: Vec<f32> =
                data.iter().flat_map(|(_, v)| v[round * t * width..(round + 1) * t * width].to_vec()).collect();
            let mut out = vec![0f32; b * t * d_out];
            let mut refs: Vec<&mut CudaState> = states.iter_mut().collect();
            cuda.forward(&prepared, &mut ws, &mut refs, as_inputs(&cfg, &tokens, &vectors), &mut out).unwrap();
            for (i, rows) in out.chunks_exact(t * d_out).enumerate() {
                together[i][round * t * d_out..(round + 1) * t * d_out].copy_from_slice(rows);
            }
        }
        for (i, (tokens, vectors)) in data.iter().enumerate() {
            let mut s = CudaSession::new(&prepared, t).unwrap();
            let mut alone = vec![0f32; 2 * t * d_out];
            for round in 0..2 {
                let chunk = as_inputs(
                    &cfg,
                    &tokens[round * t..(round + 1) * t],
                    &vectors[round * t * width..(round + 1) * t * width],
                );
                s.step_chunk(chunk, &mut alone[round * t * d_out..(round + 1) * t * d_out]).unwrap();
            }
            // Rows of several streams share the matrix kernels' launches but not their sums.
            assert_eq!(together[i], alone, "{name}: stream {i} through the seam differs from itself alone");
            assert_eq!(states[i].position(), 2 * t as u64);
        }
    }
}

/// A state whose normalisers pass the growth limit is rescaled by 2^-20 on the GPU as
/// on the CPU: the same exponent, the same values to rounding, the same outputs.
#[test]
fn grown_states_rescale_as_on_the_cpu() {
    let Some(ordinal) = device_or_skip("grown_states_rescale_as_on_the_cpu") else { return };
    let (_, cfg) = configs().remove(1);
    let bytes = random_model(&cfg, 21, DType::F32, 0);
    let model = bytes.model().unwrap();
    let gpu = CudaModel::load(&model, ordinal).unwrap();
    let (tokens, _) = inputs(&cfg, 8, 2);
    let d_out = cfg.output_dim();
    let opts = SessionOptions { max_chunk: 1, kernels: Some(linrt::KernelPath::Scalar) };
    let mut arena = vec![0u32; model.arena_bytes(opts).unwrap().div_ceil(4)];
    let mut cpu = Session::new(&model, bytemuck_bytes(&mut arena), opts).unwrap();
    let mut out = vec![0f32; d_out];
    for &t in &tokens[..5] {
        cpu.step(Input::Token(t), &mut out).unwrap();
    }
    // The same stream with S and z 2^19 times larger: outputs barely change, and
    // the next step's z passes 2^20.
    let mut saved = vec![0u8; cpu.state_bytes()];
    cpu.save_state(&mut saved).unwrap();
    for v in saved[linrt::STATE_HEADER_BYTES..].chunks_exact_mut(4) {
        let x = f32::from_le_bytes([v[0], v[1], v[2], v[3]]) * 524_288.0;
        v.copy_from_slice(&x.to_le_bytes());
    }
    cpu.restore_state(&saved).unwrap();
    let mut g = CudaSession::new(&gpu, 1).unwrap();
    g.restore_state(&saved).unwrap();
    let (mut a, mut b) = (vec![0f32; d_out], vec![0f32; d_out]);
    for &t in &tokens[5..] {
        cpu.step(Input::Token(t), &mut a).unwrap();
        g.step(Input::Token(t), &mut b).unwrap();
        assert!(relative(&b, &a) <= 1e-5, "{:.2e}", relative(&b, &a));
    }
    assert_eq!(cpu.state_exponent(), 20, "the CPU rescaled");
    let (mut from_cpu, mut from_gpu) = (vec![0u8; saved.len()], vec![0u8; saved.len()]);
    cpu.save_state(&mut from_cpu).unwrap();
    g.save_state(&mut from_gpu).unwrap();
    assert_eq!(from_cpu[..linrt::STATE_HEADER_BYTES], from_gpu[..linrt::STATE_HEADER_BYTES], "position and exponent");
    let floats = |bytes: &[u8]| -> Vec<f32> {
        bytes[linrt::STATE_HEADER_BYTES..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    assert!(relative(&floats(&from_gpu), &floats(&from_cpu)) <= 1e-5);
}
