//! The softmax-attention baseline, for measurement only: the same layers as linrt's
//! (same weights, same matrix kernels for the projections and feed-forward blocks)
//! with `softmax(q·kᵀ/√d) v` in place of linear attention. With a KV cache each new
//! token attends to the cached keys and values (which grow with position); without
//! one, every token recomputes the whole prefix, as the paper's main tables did.

use anyhow::{anyhow, Result};
use linrt::config::{Activation, NormPlacement};
use linrt::kernels::scalar::{add_assign, gelu, layer_norm, relu};
use linrt::{Kernels, Model, ModelConfig, OutputKind, TensorRole};

/// Keys and values of every position so far, per layer.
#[derive(Default)]
pub struct KvCache {
    layers: Vec<(Vec<f32>, Vec<f32>)>,
}

impl KvCache {
    /// Bytes the cache holds.
    pub fn bytes(&self) -> usize {
        self.layers.iter().map(|(k, v)| 4 * (k.len() + v.len())).sum()
    }

    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(|(k, v)| {
            k.clear();
            v.clear();
        });
    }
}

pub struct SoftmaxBaseline<'m> {
    model: Model<'m>,
    kern: Kernels,
    cfg: ModelConfig,
}

impl<'m> SoftmaxBaseline<'m> {
    /// A token model with an output head (the configurations the paper's
    /// benchmark uses).
    pub fn new(model: Model<'m>, kern: Kernels) -> Result<Self> {
        let cfg = *model.config();
        if cfg.input_kind != linrt::InputKind::Tokens || cfg.output_kind != OutputKind::Linear {
            anyhow::bail!("the softmax baseline runs token models with an output head");
        }
        Ok(SoftmaxBaseline { model, kern, cfg })
    }

    /// One new token with a KV cache: its logits, attending to every cached position.
    pub fn step_cached(&self, token: u32, cache: &mut KvCache, logits: &mut [f32]) -> Result<()> {
        let mut x = self.embed(&[token])?;
        self.layers(&mut x, 1, cache)?;
        self.head(&x, logits)
    }

    /// The logits after `tokens` computed from scratch (no cache kept): the whole
    /// prefix goes through every layer, keys and values rebuilt.
    pub fn step_recompute(&self, tokens: &[u32], logits: &mut [f32]) -> Result<()> {
        let t = tokens.len();
        let mut x = self.embed(tokens)?;
        let mut cache = KvCache::default();
        self.layers(&mut x, t, &mut cache)?;
        let d = self.cfg.d_model as usize;
        self.head(&x[(t - 1) * d..], logits)
    }

    fn embed(&self, tokens: &[u32]) -> Result<Vec<f32>> {
        let d = self.cfg.d_model as usize;
        let table = self.model.f32_tensor(TensorRole::Embedding, 0)?;
        let mut x = Vec::with_capacity(tokens.len() * d);
        for &t in tokens {
            let row =
                table.get(t as usize * d..(t as usize + 1) * d).ok_or_else(|| anyhow!("token {t} out of range"))?;
            x.extend_from_slice(row);
        }
        Ok(x)
    }

    /// `t` new rows through every layer, appending their keys and values to `cache`.
    fn layers(&self, x: &mut [f32], t: usize, cache: &mut KvCache) -> Result<()> {
        let cfg = &self.cfg;
        let (d, ff) = (cfg.d_model as usize, cfg.d_ff as usize);
        let (qk_w, v_w) = (cfg.qk_width(), cfg.v_width());
        let pre = cfg.norm_placement == NormPlacement::Pre;
        let eps = cfg.layernorm_eps;
        cache.layers.resize_with(cfg.n_layers as usize, Default::default);
        let (mut q, mut k, mut v) = (vec![0f32; t * qk_w], vec![0f32; t * qk_w], vec![0f32; t * v_w]);
        let (mut attended, mut normed, mut hidden) = (vec![0f32; t * v_w], vec![0f32; t * d], vec![0f32; t * ff]);
        let mut quant = vec![0f32; t * (d.max(v_w).max(ff).div_ceil(4) + 1)];
        let norm_rows = |rows: &mut [f32], g: &[f32], b: &[f32]| {
            for r in rows.chunks_exact_mut(d) {
                layer_norm(r, g, b, eps);
            }
        };
        let int8 = self.model.has_int8();
        for layer in 0..cfg.n_layers {
            let w = self.model.layer(layer)?;
            if pre {
                normed.copy_from_slice(x);
                norm_rows(&mut normed, w.n1_w, w.n1_b);
            }
            let input: &[f32] = if pre { &normed } else { x };
            let a = self.kern.activations(input, t, d, int8, &mut quant);
            self.kern.matmul(&w.q_w, w.q_b, &a, &mut q);
            self.kern.matmul(&w.k_w, w.k_b, &a, &mut k);
            self.kern.matmul(&w.v_w, w.v_b, &a, &mut v);
            let (ck, cv) = &mut cache.layers[layer as usize];
            let base = ck.len() / qk_w;
            ck.extend_from_slice(&k);
            cv.extend_from_slice(&v);
            self.attend(&q, ck, cv, base, t, &mut attended);
            let a = self.kern.activations(&attended, t, v_w, int8, &mut quant);
            self.kern.matmul(&w.o_w, w.o_b, &a, &mut normed);
            add_assign(x, &normed);
            if !pre {
                norm_rows(x, w.n1_w, w.n1_b);
            }
            if pre {
                normed.copy_from_slice(x);
                norm_rows(&mut normed, w.n2_w, w.n2_b);
            }
            let input: &[f32] = if pre { &normed } else { x };
            let a = self.kern.activations(input, t, d, int8, &mut quant);
            self.kern.matmul(&w.l1_w, w.l1_b, &a, &mut hidden);
            match cfg.activation {
                Activation::Relu => relu(&mut hidden),
                Activation::Gelu => gelu(&mut hidden),
            }
            let a = self.kern.activations(&hidden, t, ff, int8, &mut quant);
            self.kern.matmul(&w.l2_w, w.l2_b, &a, &mut normed);
            add_assign(x, &normed);
            if !pre {
                norm_rows(x, w.n2_w, w.n2_b);
            }
        }
        Ok(())
    }

    /// Causal softmax attention of `t` new rows (positions `base..base + t`) over the
    /// cached keys and values of positions `0..=` their own.
    fn attend(&self, q: &[f32], keys: &[f32], values: &[f32], base: usize, t: usize, out: &mut [f32]) {
        let (h, dk, dv) = (self.cfg.n_heads as usize, self.cfg.d_query as usize, self.cfg.d_value as usize);
        let (qk_w, v_w) = (h * dk, h * dv);
        let scale = 1.0 / (dk as f32).sqrt();
        let mut scores = vec![0f32; base + t];
        for p in 0..t {
            let n = base + p + 1;
            for head in 0..h {
                let qh = &q[p * qk_w + head * dk..][..dk];
                let mut max = f32::NEG_INFINITY;
                for (s, score) in scores[..n].iter_mut().enumerate() {
                    let kh = &keys[s * qk_w + head * dk..][..dk];
                    *score = qh.iter().zip(kh).map(|(a, b)| a * b).sum::<f32>() * scale;
                    max = max.max(*score);
                }
                let mut total = 0.0;
                for score in &mut scores[..n] {
                    *score = (*score - max).exp();
                    total += *score;
                }
                let oh = &mut out[p * v_w + head * dv..][..dv];
                oh.fill(0.0);
                for (s, score) in scores[..n].iter().enumerate() {
                    let vh = &values[s * v_w + head * dv..][..dv];
                    let w = score / total;
                    oh.iter_mut().zip(vh).for_each(|(o, v)| *o += w * v);
                }
            }
        }
    }

    fn head(&self, x: &[f32], logits: &mut [f32]) -> Result<()> {
        let d = self.cfg.d_model as usize;
        let mut row = x[..d].to_vec();
        if self.cfg.final_norm {
            let g = self.model.f32_tensor(TensorRole::FinalNormWeight, 0)?;
            let b = self.model.f32_tensor(TensorRole::FinalNormBias, 0)?;
            layer_norm(&mut row, g, b, self.cfg.layernorm_eps);
        }
        let w = self.model.matrix(TensorRole::OutputWeight, 0)?;
        let b = self.model.f32_tensor(TensorRole::OutputBias, 0)?;
        let mut quant = vec![0f32; d.div_ceil(4) + 1];
        let a = self.kern.activations(&row, 1, d, self.model.has_int8(), &mut quant);
        self.kern.matmul(&w, b, &a, logits);
        Ok(())
    }
}
