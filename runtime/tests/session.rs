//! Session behaviour: exact arena sizing, recurrent step == causal parallel form,
//! state save/restore, and typed errors for bad calls.

mod common;

use common::{random_model, Arena, Draw, Rng};
use linrt::{
    Activation, AlignedBytes, Error, FeatureMap, FeatureParams, Input, InputKind, Inputs, ModelConfig, NormPlacement,
    OutputKind, Positional, Session, SessionOptions, StreamState, STATE_HEADER_BYTES,
};

fn configs() -> Vec<ModelConfig> {
    let mut out = Vec::new();
    // fast-transformers default: post-norm, relu, vectors in, hidden out.
    out.push(ModelConfig::new(16, 2, 2, 32));
    // tokens in, logits out, gelu, pre-norm, no final norm, sinusoidal positions.
    let mut c = ModelConfig::new(24, 3, 3, 40);
    c.positional = Positional::Sinusoidal;
    c.input_kind = InputKind::Tokens;
    c.input_dim = 11;
    c.output_kind = OutputKind::Linear;
    c.output_dim = 7;
    c.activation = Activation::Gelu;
    c.norm_placement = NormPlacement::Pre;
    c.final_norm = false;
    out.push(c);
    // query dims != value dims, projected vector input.
    let mut c = ModelConfig::new(32, 2, 4, 48);
    c.d_query = 5;
    c.d_value = 8;
    c.input_projection = true;
    c.input_dim = 13;
    out.push(c);
    out.extend(feature_map_configs());
    out
}

/// One small model per feature map other than elu+1, with fast-transformers' default
/// constants for their widths.
fn feature_map_configs() -> Vec<ModelConfig> {
    let base = ModelConfig::new(16, 2, 2, 32); // d_query 8
    let temp = (1.0f32 / 8f32.sqrt()).sqrt();
    let with = |map, f: u32, params: FeatureParams| ModelConfig {
        feature_map: map,
        feature_dim: f,
        feature_params: params,
        ..base
    };
    vec![
        with(FeatureMap::Relu, 0, FeatureParams::default()),
        with(
            FeatureMap::Favor,
            16,
            FeatureParams { input_scale: temp, log_offset: 0.5 * 16f32.ln(), ..Default::default() },
        ),
        with(
            FeatureMap::RandomFourier,
            12,
            FeatureParams { input_scale: temp, output_scale: (2.0f32 / 12.0).sqrt(), ..Default::default() },
        ),
        with(
            FeatureMap::SmoothedRandomFourier,
            7,
            FeatureParams {
                input_scale: temp,
                output_scale: (2.0f32 / 6.0).sqrt(),
                smoothing: 1.0,
                ..Default::default()
            },
        ),
        with(FeatureMap::GeneralizedRandom, 10, FeatureParams { input_scale: 1.0, ..Default::default() }),
    ]
}

enum Data {
    Tokens(Vec<u32>),
    Vectors(Vec<f32>),
}

fn inputs(cfg: &ModelConfig, t: usize, seed: u64) -> Data {
    let mut rng = Rng::from_state(seed);
    match cfg.input_kind {
        InputKind::Tokens => Data::Tokens((0..t).map(|_| (rng.next() % cfg.input_dim as u64) as u32).collect()),
        InputKind::Vectors => Data::Vectors((0..t * cfg.input_dim as usize).map(|_| 2.0 * rng.unit()).collect()),
    }
}

fn step_all(session: &mut Session, cfg: &ModelConfig, data: &Data, t: usize) -> Vec<f32> {
    let d_out = cfg.output_dim();
    let w = cfg.input_width();
    let mut out = vec![0f32; t * d_out];
    for (p, o) in out.chunks_exact_mut(d_out).enumerate() {
        let input = match data {
            Data::Tokens(ids) => Input::Token(ids[p]),
            Data::Vectors(v) => Input::Vector(&v[p * w..(p + 1) * w]),
        };
        session.step(input, o).unwrap();
    }
    out
}

fn max_rel(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn arena_bytes_is_exact() {
    for cfg in configs() {
        let bytes = AlignedBytes::from_slice(&random_model(&cfg, 1));
        let model = bytes.model().unwrap();
        for max_chunk in [1, 7, 64] {
            let opts = SessionOptions { max_chunk, ..SessionOptions::default() };
            let n = model.arena_bytes(opts).unwrap();
            // The formula in the docs, term by term.
            let r = |x: usize| x.next_multiple_of(16);
            let (d, qk, v, ff) = (cfg.d_model as usize, cfg.qk_width(), cfg.v_width(), cfg.d_ff as usize);
            let t = max_chunk;
            let mut want =
                4 * (r(cfg.state_floats().unwrap()) + 2 * r(t * d) + 2 * r(t * qk) + 2 * r(t * v) + r(t * ff));
            if cfg.feature_map.has_omega() {
                // φ(q), φ(k), the projections u and the zero bias of the Ω matmul.
                let (f, m) = (cfg.feature_width(), cfg.omega_cols());
                want += 4 * (2 * r(t * f) + r(t * cfg.n_heads as usize * m) + r(m));
            }
            // int8 models add room for quantized inputs: a byte per value of the widest
            // matrix input, and a scale, per position.
            let widest =
                [d, v, ff, if cfg.input_projection { cfg.input_dim as usize } else { 0 }].into_iter().max().unwrap();
            let int8_bytes = linrt::AlignedBytes::from_slice(&common::random_model_dtype(&cfg, 1, linrt::DType::I8));
            let int8_model = int8_bytes.model().unwrap();
            assert_eq!(int8_model.arena_bytes(opts).unwrap(), want + 4 * r(t * (widest.div_ceil(4) + 1)));
            assert_eq!(n, want);
            let mut arena = vec![0f32; n / 4 + 1];
            let arena_bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut arena);
            assert!(Session::new(&model, &mut arena_bytes[..n], opts).is_ok());
            let err = Session::new(&model, &mut arena_bytes[..n - 1], opts).err().unwrap();
            assert_eq!(err, Error::ArenaTooSmall { needed: n, given: n - 1 });
        }
        assert!(matches!(
            model.arena_bytes(SessionOptions { max_chunk: 0, ..SessionOptions::default() }),
            Err(Error::BadChunkLength { len: 0, .. })
        ));
    }
}

#[test]
fn causal_form_equals_stepping() {
    for (i, cfg) in configs().into_iter().enumerate() {
        let bytes = AlignedBytes::from_slice(&random_model(&cfg, 10 + i as u64));
        let model = bytes.model().unwrap();
        let t = 50;
        let data = inputs(&cfg, t, 99 + i as u64);
        let opts = SessionOptions { max_chunk: 16, ..SessionOptions::default() };
        let mut arena = vec![0u8; model.arena_bytes(opts).unwrap()];
        let mut s = Session::new(&model, &mut arena, opts).unwrap();
        let stepped = step_all(&mut s, &cfg, &data, t);

        // Chunks of uneven length, state carried across chunk boundaries.
        s.reset();
        let d_out = cfg.output_dim();
        let w = cfg.input_width();
        let mut chunked = vec![0f32; t * d_out];
        let mut p = 0;
        for len in [1, 16, 3, 16, 14] {
            let input = match &data {
                Data::Tokens(ids) => Inputs::Tokens(&ids[p..p + len]),
                Data::Vectors(v) => Inputs::Vectors(&v[p * w..(p + len) * w]),
            };
            s.step_chunk(input, &mut chunked[p * d_out..(p + len) * d_out]).unwrap();
            p += len;
        }
        assert_eq!(p, t);
        let rel = max_rel(&chunked, &stepped);
        assert!(rel < 1e-5, "config {i}: causal vs recurrent max rel {rel}");
    }
}

#[test]
fn reset_and_state_round_trip() {
    let cfg = configs()[1];
    let bytes = AlignedBytes::from_slice(&random_model(&cfg, 5));
    let model = bytes.model().unwrap();
    let opts = SessionOptions::default();
    let mut arena = Arena::new(model.arena_bytes(opts).unwrap());
    let mut s = Session::new(&model, arena.bytes(), opts).unwrap();
    let data = inputs(&cfg, 20, 3);
    let first = step_all(&mut s, &cfg, &data, 20);
    s.reset();
    assert_eq!(s.position(), 0);
    assert_eq!(step_all(&mut s, &cfg, &data, 20), first, "reset must forget everything");

    // Save after 10 steps, run 10 more, restore, run them again: identical outputs.
    s.reset();
    let Data::Tokens(ids) = &data else { panic!("token model") };
    let mut out = vec![0f32; cfg.output_dim()];
    for &id in &ids[..10] {
        s.step(Input::Token(id), &mut out).unwrap();
    }
    let mut saved = vec![0u8; s.state_bytes()];
    assert_eq!(s.save_state(&mut saved).unwrap(), saved.len());
    assert_eq!(saved.len(), STATE_HEADER_BYTES + 4 * cfg.state_floats().unwrap());
    assert_eq!(s.position(), 10);
    let mut tail = Vec::new();
    for &id in &ids[10..] {
        s.step(Input::Token(id), &mut out).unwrap();
        tail.extend_from_slice(&out);
    }
    s.restore_state(&saved).unwrap();
    assert_eq!(s.position(), 10, "the position travels with the state");
    let mut again = Vec::new();
    for &id in &ids[10..] {
        s.step(Input::Token(id), &mut out).unwrap();
        again.extend_from_slice(&out);
    }
    assert_eq!(again, tail);
    assert_eq!(&tail[..], &first[10 * cfg.output_dim()..]);

    // Damaged or foreign states are refused.
    assert!(matches!(s.restore_state(&saved[..saved.len() - 1]), Err(Error::BadState { .. })));
    let mut bad = saved.clone();
    bad[0] = b'X';
    assert!(matches!(s.restore_state(&bad), Err(Error::BadState { reason: "not a linrt state" })));
    let mut bad = saved.clone();
    bad[8] ^= 1;
    assert!(matches!(s.restore_state(&bad), Err(Error::BadState { reason: "saved from a different model" })));
    let mut bad = saved.clone();
    bad[STATE_HEADER_BYTES + 4..STATE_HEADER_BYTES + 8].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(matches!(s.restore_state(&bad), Err(Error::BadState { reason: "contains NaN or infinite values" })));
    let mut small = vec![0u8; 3];
    assert!(matches!(s.save_state(&mut small), Err(Error::BadLength { .. })));
}

/// `StreamState::load` (a GPU's copy of a stream coming back) makes the state that
/// saving writes byte for byte, and refuses what `restore` refuses.
#[test]
fn loaded_values_save_as_the_session_saved_them() {
    let cfg = configs()[1];
    let bytes = AlignedBytes::from_slice(&random_model(&cfg, 5));
    let model = bytes.model().unwrap();
    let opts = SessionOptions::default();
    let mut arena = Arena::new(model.arena_bytes(opts).unwrap());
    let mut s = Session::new(&model, arena.bytes(), opts).unwrap();
    let data = inputs(&cfg, 7, 3);
    step_all(&mut s, &cfg, &data, 7);
    let mut saved = vec![0u8; s.state_bytes()];
    s.save_state(&mut saved).unwrap();
    let values = s.state().floats().to_vec();
    let mut floats = vec![0f32; values.len()];
    let mut host = StreamState::new(&model, &mut floats).unwrap();
    host.load(&values, s.position(), s.state_exponent()).unwrap();
    let mut again = vec![0u8; saved.len()];
    host.save(&mut again).unwrap();
    assert_eq!(again, saved);
    let mut nan = values.clone();
    nan[3] = f32::NAN;
    assert!(matches!(host.load(&nan, 1, 0), Err(Error::BadState { reason: "contains NaN or infinite values" })));
    assert!(matches!(host.load(&values[1..], 1, 0), Err(Error::BadState { .. })));
    assert!(matches!(host.load(&values, 1, 101), Err(Error::BadState { reason: "state exponent out of range" })));
    assert_eq!(host.position(), 7, "a refused load changes nothing");
}

#[test]
fn bad_calls_get_typed_errors() {
    let tok = configs()[1];
    let bytes = AlignedBytes::from_slice(&random_model(&tok, 7));
    let model = bytes.model().unwrap();
    let opts = SessionOptions { max_chunk: 4, ..SessionOptions::default() };
    let mut arena = vec![0u8; model.arena_bytes(opts).unwrap()];
    let mut s = Session::new(&model, &mut arena, opts).unwrap();
    let mut out = vec![0f32; tok.output_dim()];
    assert_eq!(s.step(Input::Token(11), &mut out), Err(Error::TokenOutOfRange { token: 11, vocab: 11 }));
    assert_eq!(s.step(Input::Vector(&[0.0; 24]), &mut out), Err(Error::WrongInputKind { expected: InputKind::Tokens }));
    assert!(matches!(s.step(Input::Token(1), &mut out[..3]), Err(Error::BadLength { what: "output", .. })));
    let mut big = vec![0f32; 5 * tok.output_dim()];
    assert_eq!(s.step_chunk(Inputs::Tokens(&[1; 5]), &mut big), Err(Error::BadChunkLength { len: 5, max: 4 }));
    assert_eq!(s.step_chunk(Inputs::Tokens(&[]), &mut big[..0]), Err(Error::BadChunkLength { len: 0, max: 4 }));

    let vec_cfg = configs()[0];
    let bytes = AlignedBytes::from_slice(&random_model(&vec_cfg, 8));
    let model = bytes.model().unwrap();
    let mut arena = vec![0u8; model.arena_bytes(opts).unwrap()];
    let mut s = Session::new(&model, &mut arena, opts).unwrap();
    let mut out = vec![0f32; 16];
    let mut x = vec![0.5f32; 16];
    assert!(matches!(s.step(Input::Vector(&x[..15]), &mut out), Err(Error::BadLength { what: "input", .. })));
    x[3] = f32::NAN;
    assert_eq!(s.step(Input::Vector(&x), &mut out), Err(Error::NonFiniteInput { index: 3 }));
    x[3] = f32::INFINITY;
    assert_eq!(s.step(Input::Vector(&x), &mut out), Err(Error::NonFiniteInput { index: 3 }));

    // A misaligned arena is refused, not UB.
    let mut raw = vec![0u32; model.arena_bytes(opts).unwrap() / 4 + 1];
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut raw);
    let err = Session::new(&model, &mut bytes[1..], opts).err().unwrap();
    assert_eq!(err, Error::Misaligned { what: "arena", align: 4 });
}

#[test]
fn state_size_does_not_depend_on_stream_length() {
    let cfg = configs()[2];
    let bytes = AlignedBytes::from_slice(&random_model(&cfg, 9));
    let model = bytes.model().unwrap();
    let opts = SessionOptions::default();
    let mut arena = vec![0u8; model.arena_bytes(opts).unwrap()];
    let mut s = Session::new(&model, &mut arena, opts).unwrap();
    let before = s.state_bytes();
    let data = inputs(&cfg, 300, 1);
    let out = step_all(&mut s, &cfg, &data, 300);
    assert!(out.iter().all(|v| v.is_finite()));
    assert_eq!(s.state_bytes(), before);
    let expected = cfg.n_layers as usize * cfg.n_heads as usize * cfg.d_query as usize * (cfg.d_value as usize + 1);
    assert_eq!(cfg.state_floats().unwrap(), expected);
}

#[test]
fn runs_from_aligned_static_style_buffers() {
    // What a no_std user does: model bytes and arena in `Aligned` arrays, no heap.
    let cfg = configs()[0];
    let bytes = random_model(&cfg, 21);
    const N: usize = 1 << 16;
    let mut model_buf = Box::new(linrt::Aligned([0u8; N]));
    model_buf.0[..bytes.len()].copy_from_slice(&bytes);
    let model = linrt::Model::from_bytes(&model_buf.0[..bytes.len()]).unwrap();
    let mut arena = linrt::Aligned([0u8; 16384]);
    let opts = SessionOptions::default();
    assert!(model.arena_bytes(opts).unwrap() <= arena.0.len());
    let mut s = Session::new(&model, &mut arena.0, opts).unwrap();
    let mut out = [0f32; 16];
    s.step(Input::Vector(&[0.25; 16]), &mut out).unwrap();
    assert!(out.iter().all(|v| v.is_finite()));
}

/// An endless stream: loud inputs (the attention of this post-norm model sees them
/// unnormalised) make the normalisers pass 2^20 within a few thousand steps, and the
/// state is rescaled (exponent 20). Outputs stay finite, a saved state carries the
/// exponent, and a restored session continues bit for bit. A version-2 state (no
/// exponent, 24-byte header) still restores.
#[test]
fn endless_streams_rescale_their_state_and_save_it() {
    let cfg = ModelConfig::new(8, 1, 2, 16);
    let bytes = AlignedBytes::from_slice(&random_model(&cfg, 21));
    let model = bytes.model().unwrap();
    let opts = SessionOptions::default();
    let (mut arena_a, mut arena_b) =
        (vec![0u8; model.arena_bytes(opts).unwrap()], vec![0u8; model.arena_bytes(opts).unwrap()]);
    let mut a = Session::new(&model, &mut arena_a, opts).unwrap();
    let mut out = [0f32; 8];
    let mut rng = Rng::from_state(5);
    let mut loud = move || -> [f32; 8] { core::array::from_fn(|_| 1000.0 * rng.unit()) };
    let mut steps = 0u64;
    while a.state_exponent() == 0 {
        a.step(Input::Vector(&loud()), &mut out).unwrap();
        assert!(out.iter().all(|v| v.is_finite()), "step {steps}");
        steps += 1;
        assert!(steps < 100_000, "z never passed 2^20");
    }
    assert_eq!(a.state_exponent(), 20);
    let mut saved = vec![0u8; a.state_bytes()];
    a.save_state(&mut saved).unwrap();
    let mut b = Session::new(&model, &mut arena_b, opts).unwrap();
    b.restore_state(&saved).unwrap();
    assert_eq!((b.state_exponent(), b.position()), (20, steps));
    let (mut oa, mut ob) = ([0f32; 8], [0f32; 8]);
    for _ in 0..100 {
        let x = loud();
        a.step(Input::Vector(&x), &mut oa).unwrap();
        b.step(Input::Vector(&x), &mut ob).unwrap();
        assert_eq!(oa.map(f32::to_bits), ob.map(f32::to_bits));
    }
    // Version 2: drop the exponent and reserved bytes, mark the version.
    a.reset();
    a.step(Input::Vector(&loud()), &mut oa).unwrap();
    a.save_state(&mut saved).unwrap();
    let mut v2: Vec<u8> = saved[..24].iter().chain(&saved[STATE_HEADER_BYTES..]).copied().collect();
    v2[4..8].copy_from_slice(&2u32.to_le_bytes());
    b.restore_state(&v2).unwrap();
    let x = loud();
    a.step(Input::Vector(&x), &mut oa).unwrap();
    b.step(Input::Vector(&x), &mut ob).unwrap();
    assert_eq!(oa.map(f32::to_bits), ob.map(f32::to_bits));
}

/// Batched streams: five sessions with different histories stepped together equal
/// the same five stepped one by one, for every config and f32/int8 weights.
#[test]
fn step_batch_equals_separate_sessions() {
    for (i, cfg) in configs().into_iter().enumerate() {
        for dtype in [linrt::DType::F32, linrt::DType::I8] {
            let bytes = AlignedBytes::from_slice(&common::random_model_dtype(&cfg, 30 + i as u64, dtype));
            let model = bytes.model().unwrap();
            let b = 5;
            let wide = SessionOptions { max_chunk: b, ..SessionOptions::default() };
            let one = SessionOptions::default();
            let mut arenas: Vec<Vec<u8>> =
                (0..b).map(|s| vec![0u8; model.arena_bytes(if s == 0 { wide } else { one }).unwrap()]).collect();
            let mut twin_arenas: Vec<Vec<u8>> = (0..b).map(|_| vec![0u8; model.arena_bytes(one).unwrap()]).collect();
            let mut batch: Vec<Session> = arenas
                .iter_mut()
                .enumerate()
                .map(|(s, a)| Session::new(&model, a, if s == 0 { wide } else { one }).unwrap())
                .collect();
            let mut alone: Vec<Session> =
                twin_arenas.iter_mut().map(|a| Session::new(&model, a, one).unwrap()).collect();
            let data = inputs(&cfg, 64, 7 + i as u64);
            let w = cfg.input_width();
            let input = |p: usize| match &data {
                Data::Tokens(ids) => Input::Token(ids[p]),
                Data::Vectors(v) => Input::Vector(&v[p * w..(p + 1) * w]),
            };
            let d_out = cfg.output_dim();
            let mut o = vec![0f32; d_out];
            // Different histories: stream s has seen s positions.
            for s in 0..b {
                for p in 0..s {
                    batch[s].step(input(p), &mut o).unwrap();
                    alone[s].step(input(p), &mut o).unwrap();
                }
            }
            let mut together = vec![0f32; b * d_out];
            for round in 0..20 {
                let step_inputs: Vec<Input> = (0..b).map(|s| input(10 + s + round)).collect();
                Session::step_batch(&mut batch, &step_inputs, &mut together).unwrap();
                for s in 0..b {
                    alone[s].step(step_inputs[s], &mut o).unwrap();
                    let rel = max_rel(&together[s * d_out..(s + 1) * d_out], &o);
                    assert!(rel <= 1e-6, "config {i} {dtype:?} stream {s} round {round}: {rel:.2e}");
                }
            }
            assert_eq!(batch[3].position(), alone[3].position());
            // Bad batches: more streams than the first arena holds, inputs of another
            // length, sessions of another model.
            let mut extra_arena = vec![0u8; model.arena_bytes(one).unwrap()];
            batch.push(Session::new(&model, &mut extra_arena, one).unwrap());
            let six: Vec<Input> = (0..6).map(input).collect();
            let mut out6 = vec![0f32; 6 * d_out];
            assert_eq!(
                Session::step_batch(&mut batch, &six, &mut out6),
                Err(Error::BatchTooLarge { batch: 6, max: 5 })
            );
            batch.pop();
            assert!(matches!(
                Session::step_batch(&mut batch, &six[..4], &mut together),
                Err(Error::BadLength { what: "batch inputs", .. })
            ));
            let other_bytes = AlignedBytes::from_slice(&random_model(&cfg, 99));
            let other = other_bytes.model().unwrap();
            let mut other_arena = vec![0u8; other.arena_bytes(one).unwrap()];
            let mut mixed = vec![Session::new(&other, &mut other_arena, one).unwrap()];
            let mut a0 = vec![0u8; model.arena_bytes(wide).unwrap()];
            mixed.insert(0, Session::new(&model, &mut a0, wide).unwrap());
            let mut out2 = vec![0f32; 2 * d_out];
            assert!(matches!(Session::step_batch(&mut mixed, &six[..2], &mut out2), Err(Error::BatchMismatch { .. })));
        }
    }
}

#[test]
fn feature_maps_agree_on_every_kernel_path() {
    let paths: Vec<_> = linrt::kernels::ALL_PATHS.iter().copied().filter(|p| p.is_supported()).collect();
    for (i, cfg) in feature_map_configs().into_iter().enumerate() {
        let bytes = AlignedBytes::from_slice(&random_model(&cfg, 40 + i as u64));
        let model = bytes.model().unwrap();
        let data = inputs(&cfg, 40, 7 + i as u64);
        let run = |path| {
            let opts = SessionOptions { max_chunk: 1, kernels: Some(path) };
            let mut arena = vec![0u8; model.arena_bytes(opts).unwrap()];
            let mut s = Session::new(&model, &mut arena, opts).unwrap();
            step_all(&mut s, &cfg, &data, 40)
        };
        let scalar = run(linrt::KernelPath::Scalar);
        assert!(scalar.iter().all(|v| v.is_finite()), "{}", cfg.feature_map.name());
        for &path in &paths {
            let rel = max_rel(&run(path), &scalar);
            assert!(rel < 1e-5, "{} on {}: max rel {rel:.2e} from scalar", cfg.feature_map.name(), path.name());
        }
    }
}

/// The backend seam: one forward pass over B streams × T positions, in a workspace
/// of its own, equals each stream taking its T positions alone through a session
/// (bit for bit with one stream; to f32 rounding with several, whose rows share
/// the matrix-matrix kernels), for every config and f32/int8 weights. The state
/// and workspace formulas add up to the session's arena exactly.
#[test]
fn backend_forward_over_streams_and_positions_equals_sessions() {
    use linrt::{Backend, Cpu, StreamState, Workspace};
    for (i, cfg) in configs().into_iter().enumerate() {
        for dtype in [linrt::DType::F32, linrt::DType::I8] {
            let bytes = AlignedBytes::from_slice(&common::random_model_dtype(&cfg, 50 + i as u64, dtype));
            let model = bytes.model().unwrap();
            let (b, t) = (3, 4);
            let opts = SessionOptions { max_chunk: t, ..SessionOptions::default() };
            let state_floats = StreamState::floats_for(&cfg).unwrap();
            let ws_floats = Workspace::floats_for(&model, t).unwrap();
            assert_eq!(
                model.arena_bytes(opts).unwrap(),
                4 * (state_floats.next_multiple_of(16) + ws_floats),
                "config {i}: state + workspace = arena"
            );
            let cpu = Cpu::new(None).unwrap();
            // Panels where this CPU's path reads them (AVX-512); nothing elsewhere.
            let mut prepared_mem = vec![0u8; cpu.prepared_bytes(&model).unwrap()];
            let prepared = cpu.prepare(&model, &mut prepared_mem).unwrap();
            let mut ws_mem = vec![0f32; Workspace::floats_for(&model, b * t).unwrap()];
            let mut ws = Workspace::new(&model, &mut ws_mem, b * t).unwrap();
            let mut state_mem = vec![0f32; b * state_floats];
            let mut states: Vec<StreamState> =
                state_mem.chunks_exact_mut(state_floats).map(|m| StreamState::new(&model, m).unwrap()).collect();
            let mut arenas: Vec<Vec<u8>> = (0..b).map(|_| vec![0u8; model.arena_bytes(opts).unwrap()]).collect();
            let mut alone: Vec<Session> = arenas.iter_mut().map(|a| Session::new(&model, a, opts).unwrap()).collect();
            let data = inputs(&cfg, 64, 9 + i as u64);
            let w = cfg.input_width();
            let d_out = cfg.output_dim();
            let mut together = vec![0f32; b * t * d_out];
            let mut o = vec![0f32; t * d_out];
            for round in 0..4 {
                // Stream s takes positions 8s + 4·round.. of the data: different histories.
                let at = |s: usize| 8 * s + 4 * round;
                let mut refs: Vec<&mut StreamState> = states.iter_mut().collect();
                match &data {
                    Data::Tokens(ids) => {
                        let rows: Vec<u32> = (0..b).flat_map(|s| ids[at(s)..at(s) + t].to_vec()).collect();
                        cpu.forward(&prepared, &mut ws, &mut refs, Inputs::Tokens(&rows), &mut together).unwrap();
                    }
                    Data::Vectors(v) => {
                        let rows: Vec<f32> = (0..b).flat_map(|s| v[at(s) * w..(at(s) + t) * w].to_vec()).collect();
                        cpu.forward(&prepared, &mut ws, &mut refs, Inputs::Vectors(&rows), &mut together).unwrap();
                    }
                }
                for (s, session) in alone.iter_mut().enumerate() {
                    let chunk = match &data {
                        Data::Tokens(ids) => Inputs::Tokens(&ids[at(s)..at(s) + t]),
                        Data::Vectors(v) => Inputs::Vectors(&v[at(s) * w..(at(s) + t) * w]),
                    };
                    session.step_chunk(chunk, &mut o).unwrap();
                    let rel = max_rel(&together[s * t * d_out..(s + 1) * t * d_out], &o);
                    assert!(rel <= 1e-6, "config {i} {dtype:?} stream {s} round {round}: {rel:.2e}");
                    assert_eq!(states[s].position(), session.position());
                }
            }
            // One stream: the same bits as its session.
            let mut one: Vec<&mut StreamState> = states.iter_mut().take(1).collect();
            one[0].reset();
            alone[0].reset();
            let chunk = match &data {
                Data::Tokens(ids) => Inputs::Tokens(&ids[..t]),
                Data::Vectors(v) => Inputs::Vectors(&v[..t * w]),
            };
            cpu.forward(&prepared, &mut ws, &mut one, chunk, &mut together[..t * d_out]).unwrap();
            alone[0].step_chunk(chunk, &mut o).unwrap();
            assert!(together[..t * d_out].iter().zip(&o).all(|(a, b)| a.to_bits() == b.to_bits()), "config {i}");
            // More rows than the workspace holds, and a state of another shape: errors.
            let mut refs: Vec<&mut StreamState> = states.iter_mut().collect();
            let too_many = match &data {
                Data::Tokens(ids) => Inputs::Tokens(&ids[..b * (t + 1)]),
                Data::Vectors(v) => Inputs::Vectors(&v[..b * (t + 1) * w]),
            };
            let mut big = vec![0f32; b * (t + 1) * d_out];
            assert!(matches!(
                cpu.forward(&prepared, &mut ws, &mut refs, too_many, &mut big),
                Err(Error::BadChunkLength { .. })
            ));
        }
    }
}

/// Prepared panels, the layout the AVX-512 int8 kernel wants: through a table whose
/// panel kernel is the scalar twin (counting its calls), the CPU backend's prepare
/// rearranges every packed int8 matrix once, the forward pass then runs them from the
/// panels, and the outputs are the bits of the file's layout, through the backend and
/// through sessions sharing the prepared weights. On every host, whatever its CPU.
#[test]
fn prepared_panels_give_the_bits_of_the_file_layout() {
    use linrt::kernels::{panels, table::SCALAR, KernelTable};
    use linrt::{Backend, Cpu, CpuPrepared, KernelPath, Kernels, StreamState, Workspace};
    use std::sync::atomic::{AtomicUsize, Ordering};

    static CALLS: AtomicUsize = AtomicUsize::new(0);
    fn counting(p: &[u8], scales: &[f32], b: &[f32], xq: &[i8], xs: &[f32], cols: usize, y: &mut [f32]) {
        CALLS.fetch_add(1, Ordering::Relaxed);
        panels::matmul_i8_panels(p, scales, b, xq, xs, cols, y)
    }
    static WITH_PANELS: KernelTable = KernelTable { matmul_i8_panels: Some((2, counting)), ..SCALAR };
    // SAFETY: every entry is portable Rust.
    let kernels = unsafe { Kernels::with_table(KernelPath::Scalar, &WITH_PANELS) };
    let cpu = Cpu::with_kernels(kernels);
    for (i, cfg) in configs().into_iter().enumerate() {
        let bytes = AlignedBytes::from_slice(&common::random_model_dtype(&cfg, 70 + i as u64, linrt::DType::I8));
        let model = bytes.model().unwrap();
        let needed = cpu.prepared_bytes(&model).unwrap();
        assert!(needed > 0, "config {i}");
        let mut short = vec![0u8; needed - 1];
        assert!(matches!(cpu.prepare(&model, &mut short), Err(Error::ArenaTooSmall { .. })), "config {i}");
        let mut arena = vec![0u8; needed];
        let prepared = cpu.prepare(&model, &mut arena).unwrap();
        assert!(prepared.has_panels());
        let plain = CpuPrepared::unprepared(&model);

        let (b, t) = (2, 5);
        let data = inputs(&cfg, 16, 3 + i as u64);
        let rows_in = match &data {
            Data::Tokens(ids) => Inputs::Tokens(&ids[..b * t]),
            Data::Vectors(v) => Inputs::Vectors(&v[..b * t * cfg.input_width()]),
        };
        let run = |weights: &CpuPrepared| {
            let state_floats = StreamState::floats_for(&cfg).unwrap();
            let mut ws_mem = vec![0f32; Workspace::floats_for(&model, b * t).unwrap()];
            let mut ws = Workspace::new(&model, &mut ws_mem, b * t).unwrap();
            let mut state_mem = vec![0f32; b * state_floats];
            let mut states: Vec<StreamState> =
                state_mem.chunks_exact_mut(state_floats).map(|m| StreamState::new(&model, m).unwrap()).collect();
            let mut refs: Vec<&mut StreamState> = states.iter_mut().collect();
            let mut out = vec![0f32; b * t * cfg.output_dim()];
            cpu.forward(weights, &mut ws, &mut refs, rows_in, &mut out).unwrap();
            out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        let before = CALLS.load(Ordering::Relaxed);
        let from_panels = run(&prepared);
        let calls = CALLS.load(Ordering::Relaxed) - before;
        // q, k, v, out and the two feed-forward matrices of every layer, at least.
        assert!(calls >= 6 * cfg.n_layers as usize, "config {i}: {calls} panel calls");
        let before = CALLS.load(Ordering::Relaxed);
        assert_eq!(from_panels, run(&plain), "config {i}: backend");
        assert_eq!(CALLS.load(Ordering::Relaxed), before, "config {i}: unprepared weights use no panels");

        // Sessions (on the kernels this CPU runs: through the AVX-512 panel kernel
        // where there is one): on the prepared weights and on the file's, one chunk.
        let opts = SessionOptions { max_chunk: t, ..SessionOptions::default() };
        let mut a1 = vec![0u8; model.arena_bytes(opts).unwrap()];
        let mut a2 = a1.clone();
        let mut on_panels = Session::with_prepared(&prepared, &mut a1, opts).unwrap();
        let mut on_file = Session::new(&model, &mut a2, opts).unwrap();
        let chunk = match &data {
            Data::Tokens(ids) => Inputs::Tokens(&ids[..t]),
            Data::Vectors(v) => Inputs::Vectors(&v[..t * cfg.input_width()]),
        };
        let (mut o1, mut o2) = (vec![0f32; t * cfg.output_dim()], vec![0f32; t * cfg.output_dim()]);
        on_panels.step_chunk(chunk, &mut o1).unwrap();
        on_file.step_chunk(chunk, &mut o2).unwrap();
        assert!(o1.iter().zip(&o2).all(|(x, y)| x.to_bits() == y.to_bits()), "config {i}: session");
    }
}
