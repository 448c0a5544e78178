//! `linrt bench`: median per-step latency of linrt, of tract running the same ONNX
//! in process, and the time to stream the weights a step reads once (the memory
//! roofline). Single-threaded, measured in one run, taking turns in `ROUNDS` rounds.

use std::hint::black_box;
use std::time::Instant;

use anyhow::Result;
use linrt::{Input, InputKind, Inputs, KernelPath, Model, Session, SessionOptions, TensorRole};

/// Rounds in which linrt, tract and the roofline are timed in turn.
pub const ROUNDS: usize = 5;

/// Median of a set of timings (seconds).
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Seconds per step of linrt on deterministic inputs, after `warmup` steps.
pub fn linrt_step_times(model: &Model, steps: usize, warmup: usize, kernels: Option<KernelPath>) -> Result<Vec<f64>> {
    let cfg = model.config();
    let opts = SessionOptions { max_chunk: 1, kernels };
    let mut arena = crate::memory::zeroed(model.arena_bytes(opts)?, "the session's arena")?;
    let mut prepared = Vec::new();
    let weights = crate::cpu::prepare(model, kernels, &mut prepared)?;
    let mut session = Session::with_prepared(&weights, &mut arena, opts)?;
    let mut out = vec![0f32; cfg.output_dim()];
    let width = cfg.input_width();
    let vector: Vec<f32> = (0..width).map(|i| ((i * 7919) % 200) as f32 / 100.0 - 1.0).collect();
    let mut times = Vec::with_capacity(steps);
    for i in 0..warmup + steps {
        let input = match cfg.input_kind {
            InputKind::Tokens => Input::Token(((i as u64 * 7919) % cfg.input_dim as u64) as u32),
            InputKind::Vectors => Input::Vector(&vector),
        };
        let start = Instant::now();
        session.step(input, &mut out)?;
        if i >= warmup {
            times.push(start.elapsed().as_secs_f64());
        }
        black_box(&out);
    }
    Ok(times)
}

/// Seconds to take `t` positions into a fresh state: (through `step_chunk` in one
/// call, through `t` calls of `step`), each the median of `repeats`, taking turns.
pub fn prefill_times(model: &Model, t: usize, repeats: usize, kernels: Option<KernelPath>) -> Result<(f64, f64)> {
    let cfg = model.config();
    let opts = SessionOptions { max_chunk: t, kernels };
    let mut arena = crate::memory::zeroed(model.arena_bytes(opts)?, "the session's arena")?;
    let mut prepared = Vec::new();
    let weights = crate::cpu::prepare(model, kernels, &mut prepared)?;
    let mut session = Session::with_prepared(&weights, &mut arena, opts)?;
    let width = cfg.input_width();
    let tokens: Vec<u32> = (0..t).map(|i| ((i as u64 * 7919) % cfg.input_dim as u64) as u32).collect();
    let vectors: Vec<f32> = (0..t * width).map(|i| ((i * 7919) % 200) as f32 / 100.0 - 1.0).collect();
    let mut out = vec![0f32; t * cfg.output_dim()];
    let (mut chunked, mut stepped) = (Vec::new(), Vec::new());
    for _ in 0..repeats + 1 {
        session.reset();
        let start = Instant::now();
        let inputs = match cfg.input_kind {
            InputKind::Tokens => Inputs::Tokens(&tokens),
            InputKind::Vectors => Inputs::Vectors(&vectors),
        };
        session.step_chunk(inputs, &mut out)?;
        chunked.push(start.elapsed().as_secs_f64());
        black_box(&out);
        session.reset();
        let start = Instant::now();
        for (p, o) in out.chunks_exact_mut(cfg.output_dim()).enumerate() {
            let input = match cfg.input_kind {
                InputKind::Tokens => Input::Token(tokens[p]),
                InputKind::Vectors => Input::Vector(&vectors[p * width..(p + 1) * width]),
            };
            session.step(input, o)?;
        }
        stepped.push(start.elapsed().as_secs_f64());
        black_box(&out);
    }
    // The first round warms caches and pages up.
    Ok((median(chunked.split_off(1)), median(stepped.split_off(1))))
}

/// Seconds for one step of each of `b` streams: (all in one `step_batch` call, one
/// `step` per stream), medians over `steps` rounds taking turns.
pub fn batch_times(model: &Model, b: usize, steps: usize, kernels: Option<KernelPath>) -> Result<(f64, f64)> {
    let cfg = model.config();
    let wide = SessionOptions { max_chunk: b, kernels };
    let one = SessionOptions { max_chunk: 1, kernels };
    let mut arenas: Vec<Vec<u8>> = (0..b)
        .map(|s| crate::memory::zeroed(model.arena_bytes(if s == 0 { wide } else { one })?, "a session's arena"))
        .collect::<Result<_>>()?;
    let mut prepared = Vec::new();
    let weights = crate::cpu::prepare(model, kernels, &mut prepared)?;
    let mut sessions: Vec<Session> = arenas
        .iter_mut()
        .enumerate()
        .map(|(s, a)| Session::with_prepared(&weights, a, if s == 0 { wide } else { one }))
        .collect::<Result<_, _>>()?;
    let width = cfg.input_width();
    let vectors: Vec<f32> = (0..b * width).map(|i| ((i * 7919) % 200) as f32 / 100.0 - 1.0).collect();
    let input = |s: usize, i: usize| match cfg.input_kind {
        InputKind::Tokens => Input::Token((((s + i) as u64 * 7919) % cfg.input_dim as u64) as u32),
        InputKind::Vectors => Input::Vector(&vectors[s * width..(s + 1) * width]),
    };
    let mut out = vec![0f32; b * cfg.output_dim()];
    let (mut batched, mut separate) = (Vec::new(), Vec::new());
    for i in 0..steps + 10 {
        let inputs: Vec<Input> = (0..b).map(|s| input(s, i)).collect();
        let start = Instant::now();
        Session::step_batch(&mut sessions, &inputs, &mut out)?;
        let t_batch = start.elapsed().as_secs_f64();
        black_box(&out);
        let start = Instant::now();
        for (s, (session, o)) in sessions.iter_mut().zip(out.chunks_exact_mut(cfg.output_dim())).enumerate() {
            session.step(input(s, i), o)?;
        }
        let t_separate = start.elapsed().as_secs_f64();
        black_box(&out);
        if i >= 10 {
            batched.push(t_batch);
            separate.push(t_separate);
        }
    }
    Ok((median(batched), median(separate)))
}

/// The bytes one step reads: every tensor but the embedding table (one row of it).
pub fn step_bytes<'a>(model: &Model<'a>, file: &'a [u8]) -> &'a [u8] {
    let first = (0..model.tensor_count())
        .filter_map(|i| model.tensor(i))
        .find(|t| t.role != TensorRole::Embedding)
        .map(|t| t.offset as usize)
        .unwrap_or(0);
    &file[first.min(file.len())..]
}

/// Median seconds to read `bytes` once, start to end (what a step cannot beat).
pub fn stream_time(bytes: &[u8], repeats: usize) -> f64 {
    let (_, words, _) = bytemuck::pod_align_to::<u8, u64>(bytes);
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats + 3 {
        let start = Instant::now();
        // Eight independent sums so the loads, not the adds, set the pace.
        let mut acc = [0u64; 8];
        for line in black_box(words).chunks_exact(8) {
            for (a, w) in acc.iter_mut().zip(line) {
                *a = a.wrapping_add(*w);
            }
        }
        black_box(acc);
        times.push(start.elapsed().as_secs_f64());
    }
    median(times.split_off(3))
}
