//! `linrt bench --paper`: the paper's speed claims, measured here in one run. Linear
//! attention (linrt, f32 and int8) against the same layers with softmax attention,
//! with a KV cache and without one (every token recomputes its prefix, as the
//! paper's main tables did): time per token against position, time per sequence,
//! and memory against position, for the small configuration and the paper's
//! CIFAR-10 configuration (16 layers, 8 heads, d_model 256, ffn 1024, 3,072 steps),
//! with PNG plots of both.

mod plot;
pub mod softmax;

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, Result};
use linrt::{
    AlignedBytes, DType, Input, InputKind, Kernels, LrtWriter, ModelConfig, OutputKind, Session, SessionOptions,
};
use serde_json::json;

use softmax::{KvCache, SoftmaxBaseline};

/// One configuration of the benchmark.
pub struct PaperConfig {
    pub name: &'static str,
    pub cfg: ModelConfig,
    pub steps: usize,
}

/// 256 symbols in and out (8-bit pixels, as in the paper's image experiments).
pub fn configs(steps: usize) -> Vec<PaperConfig> {
    let make = |layers| {
        let mut c = ModelConfig::new(256, layers, 8, 1024);
        c.input_kind = InputKind::Tokens;
        c.input_dim = 256;
        c.output_kind = OutputKind::Linear;
        c.output_dim = 256;
        c
    };
    vec![PaperConfig { name: "small", cfg: make(4), steps }, PaperConfig { name: "cifar10", cfg: make(16), steps }]
}

/// A model with random weights (uniform, scaled like PyTorch's init), deterministic.
pub fn random_model(cfg: &ModelConfig, dtype: DType) -> Result<Vec<u8>> {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut unit = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    };
    let mut w = LrtWriter::new(*cfg);
    for i in 0..linrt::format::tensor_count(cfg) {
        let spec = linrt::format::expected_tensor(cfg, i).ok_or_else(|| anyhow!("tensor {i}"))?;
        let n = spec.dims[0] as usize * spec.dims[1] as usize;
        let bound = 1.0 / (spec.dims[1] as f32).sqrt();
        let gain = matches!(
            spec.role,
            linrt::TensorRole::Norm1Weight | linrt::TensorRole::Norm2Weight | linrt::TensorRole::FinalNormWeight
        );
        w.tensor(spec.role, spec.layer, (0..n).map(|_| if gain { 1.0 } else { bound * unit() }).collect());
    }
    w.weight_dtype(dtype, 0);
    Ok(w.to_bytes()?)
}

/// Measured figures of one configuration.
pub struct Figures {
    pub name: &'static str,
    pub steps: usize,
    /// Seconds per token at each position.
    pub linear_f32: Vec<f64>,
    pub linear_int8: Vec<f64>,
    pub softmax_cached: Vec<f64>,
    /// (position, seconds) at the sampled positions.
    pub softmax_recompute: Vec<(usize, f64)>,
    /// Whole-sequence estimate from a fit `a + b·p + c·p²` to the samples.
    pub softmax_recompute_total: f64,
    pub state_bytes: usize,
    /// (position, bytes of keys and values).
    pub cache_bytes: Vec<(usize, usize)>,
}

fn tokens(n: usize) -> Vec<u32> {
    (0..n).map(|i| ((i * 7919 + 13) % 256) as u32).collect()
}

fn linear_times(bytes: &[u8], steps: usize) -> Result<(Vec<f64>, usize)> {
    let aligned = AlignedBytes::from_slice(bytes);
    let model = aligned.model()?;
    let opts = SessionOptions::default();
    let mut arena = vec![0u8; model.arena_bytes(opts)?];
    let mut session = Session::new(&model, &mut arena, opts)?;
    let mut logits = vec![0f32; model.config().output_dim()];
    let mut times = Vec::with_capacity(steps);
    for t in tokens(steps) {
        let start = Instant::now();
        session.step(Input::Token(t), &mut logits)?;
        times.push(start.elapsed().as_secs_f64());
    }
    Ok((times, session.state_bytes() - linrt::STATE_HEADER_BYTES))
}

/// Least-squares fit of `a + b·p + c·p²`, summed over positions `0..n`.
fn quadratic_total(samples: &[(usize, f64)], n: usize) -> f64 {
    // Normal equations of the 3-parameter fit.
    let mut m = [[0f64; 4]; 3];
    for &(p, t) in samples {
        let row = [1.0, p as f64, (p as f64).powi(2)];
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] += row[i] * row[j];
            }
            m[i][3] += row[i] * t;
        }
    }
    // Gauss-Jordan elimination with partial pivoting.
    for col in 0..3 {
        let pivot = (col..3).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs())).unwrap_or(col);
        m.swap(col, pivot);
        let pivot_row = m[col];
        for (row, r) in m.iter_mut().enumerate() {
            if row != col && pivot_row[col] != 0.0 {
                let f = r[col] / pivot_row[col];
                r.iter_mut().zip(&pivot_row).skip(col).for_each(|(x, p)| *x -= f * p);
            }
        }
    }
    let coef: Vec<f64> = (0..3).map(|i| if m[i][i] != 0.0 { m[i][3] / m[i][i] } else { 0.0 }).collect();
    (0..n).map(|p| (coef[0] + coef[1] * p as f64 + coef[2] * (p as f64).powi(2)).max(0.0)).sum()
}

pub fn measure(pc: &PaperConfig, progress: &mut dyn FnMut(&str)) -> Result<Figures> {
    let n = pc.steps;
    let f32_bytes = random_model(&pc.cfg, DType::F32)?;
    let int8_bytes = random_model(&pc.cfg, DType::I8)?;
    progress(&format!("{}: linear attention, f32 and int8, {n} steps", pc.name));
    let (linear_f32, state_bytes) = linear_times(&f32_bytes, n)?;
    let (linear_int8, _) = linear_times(&int8_bytes, n)?;

    let aligned = AlignedBytes::from_slice(&f32_bytes);
    let model = aligned.model()?;
    let softmax = SoftmaxBaseline::new(model, Kernels::detect())?;
    let mut logits = vec![0f32; pc.cfg.output_dim()];
    progress(&format!("{}: softmax with a KV cache, {n} steps", pc.name));
    let ids = tokens(n);
    let mut cache = KvCache::default();
    let mut softmax_cached = Vec::with_capacity(n);
    let mut cache_bytes = Vec::new();
    for (p, &t) in ids.iter().enumerate() {
        let start = Instant::now();
        softmax.step_cached(t, &mut cache, &mut logits)?;
        softmax_cached.push(start.elapsed().as_secs_f64());
        if p % 16 == 0 || p + 1 == n {
            cache_bytes.push((p, cache.bytes()));
        }
    }
    // Without a cache a token costs its whole prefix: sampled, then fitted.
    let mut softmax_recompute = Vec::new();
    let samples: Vec<usize> = [0, n / 64, n / 16, n / 8, n / 4, n / 2, 3 * n / 4, n - 1].into_iter().collect();
    for &p in &samples {
        progress(&format!("{}: softmax recomputing its prefix, position {p}", pc.name));
        let start = Instant::now();
        softmax.step_recompute(&ids[..=p], &mut logits)?;
        softmax_recompute.push((p, start.elapsed().as_secs_f64()));
    }
    let softmax_recompute_total = quadratic_total(&softmax_recompute, n);
    Ok(Figures {
        name: pc.name,
        steps: n,
        linear_f32,
        linear_int8,
        softmax_cached,
        softmax_recompute,
        softmax_recompute_total,
        state_bytes,
        cache_bytes,
    })
}

pub fn run(out_dir: &Path, steps: usize, json_out: bool, out: &mut dyn Write) -> Result<()> {
    std::fs::create_dir_all(out_dir).map_err(|e| anyhow!("cannot create {}: {e}", out_dir.display()))?;
    let mut all = Vec::new();
    for pc in configs(steps) {
        let figures = measure(&pc, &mut |msg| eprintln!("{msg}"))?;
        plot::time_per_token(&out_dir.join(format!("{}-time.png", pc.name)), &figures)?;
        plot::memory(&out_dir.join(format!("{}-memory.png", pc.name)), &figures)?;
        all.push(figures);
    }
    let sum = |v: &[f64]| v.iter().sum::<f64>();
    if json_out {
        let rows: Vec<_> = all
            .iter()
            .map(|f| {
                json!({"config": f.name, "steps": f.steps,
                       "linear_int8_s": sum(&f.linear_int8), "linear_f32_s": sum(&f.linear_f32),
                       "softmax_cached_s": sum(&f.softmax_cached), "softmax_recompute_s": f.softmax_recompute_total,
                       "softmax_recompute_samples": f.softmax_recompute,
                       "state_bytes": f.state_bytes, "cache_bytes_at_end": f.cache_bytes.last().map(|c| c.1)})
            })
            .collect();
        writeln!(out, "{}", json!({"configs": rows, "plots": out_dir.display().to_string()}))?;
        return Ok(());
    }
    writeln!(
        out,
        "seconds per sequence, one thread ({} kernels); softmax in f32 with the same matrix kernels",
        Kernels::detect().path().name()
    )?;
    writeln!(
        out,
        "{:<8} {:>6} {:>12} {:>12} {:>14} {:>16} {:>12} {:>14} {:>12} {:>14}",
        "config",
        "steps",
        "linear int8",
        "linear f32",
        "softmax+cache",
        "softmax (recomp.)",
        "vs recomp.",
        "vs softmax+cache",
        "state",
        "cache at end"
    )?;
    for f in &all {
        let (lin, cached) = (sum(&f.linear_f32), sum(&f.softmax_cached));
        writeln!(
            out,
            "{:<8} {:>6} {:>11.3}s {:>11.3}s {:>13.2}s {:>15.0}s {:>11.0}× {:>13.2}× {:>9} KB {:>11} KB",
            f.name,
            f.steps,
            sum(&f.linear_int8),
            lin,
            cached,
            f.softmax_recompute_total,
            f.softmax_recompute_total / lin,
            cached / lin,
            f.state_bytes / 1024,
            f.cache_bytes.last().map(|c| c.1 / 1024).unwrap_or(0)
        )?;
    }
    writeln!(out, "softmax (recomputed) per sequence: fitted a + b·p + c·p² to the positions measured, summed")?;
    writeln!(out, "plots: {}", out_dir.display())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At the first position softmax attention returns v exactly and linear
    /// attention v·φ(q)·φ(k)/(φ(q)·φ(k) + eps): the two stacks share everything else,
    /// so their logits agree; a cached and a recomputing softmax agree everywhere.
    #[test]
    fn softmax_baseline_shares_linrts_layers() {
        let mut cfg = configs(8)[0].cfg;
        cfg.n_layers = 2;
        let bytes = random_model(&cfg, DType::F32).unwrap();
        let aligned = AlignedBytes::from_slice(&bytes);
        let model = aligned.model().unwrap();
        let kern = Kernels::detect();
        let softmax = SoftmaxBaseline::new(model, kern).unwrap();
        let opts = SessionOptions::default();
        let mut arena = vec![0u8; model.arena_bytes(opts).unwrap()];
        let mut session = Session::new(&model, &mut arena, opts).unwrap();
        let ids = tokens(20);
        let (mut lin, mut cached, mut again) = (vec![0f32; 256], vec![0f32; 256], vec![0f32; 256]);
        session.step(Input::Token(ids[0]), &mut lin).unwrap();
        let mut cache = KvCache::default();
        for (p, &t) in ids.iter().enumerate() {
            softmax.step_cached(t, &mut cache, &mut cached).unwrap();
            if p == 0 {
                let worst = lin.iter().zip(&cached).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(worst < 1e-4, "first position: linear and softmax differ by {worst}");
            }
            softmax.step_recompute(&ids[..=p], &mut again).unwrap();
            let worst = cached.iter().zip(&again).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(worst < 1e-4, "position {p}: cached and recomputed softmax differ by {worst}");
        }
        assert_eq!(cache.bytes(), 2 * 2 * 20 * 256 * 4);
    }

    #[test]
    fn the_fit_sums_a_quadratic_exactly() {
        let f = |p: usize| 2.0 + 0.5 * p as f64 + 0.01 * (p as f64).powi(2);
        let samples: Vec<(usize, f64)> = [0, 10, 50, 99].iter().map(|&p| (p, f(p))).collect();
        let want: f64 = (0..100).map(f).sum();
        assert!((quadratic_total(&samples, 100) - want).abs() < 1e-6 * want);
    }
}
