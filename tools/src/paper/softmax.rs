//! The softmax-attention baseline, for measurement only: linrt's own layers
//! (`linrt::model::layer_with_attention`: the same weights, kernels, norms and
//! activations as a session runs) with `softmax(q·kᵀ/√d) v` in place of linear
//! attention. With a KV cache each new token attends to the cached keys and values
//! (which grow with position); without one, every token recomputes the whole
//! prefix, as the paper's main tables did.

use anyhow::{anyhow, Result};
use linrt::model::{layer_with_attention, output_head};
use linrt::{Kernels, Model, ModelConfig, OutputKind, TensorRole, Workspace};

/// Keys and values of every position so far, per layer, and the workspace one new
/// token is computed in.
#[derive(Default)]
pub struct KvCache {
    layers: Vec<(Vec<f32>, Vec<f32>)>,
    workspace: Vec<f32>,
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
        let KvCache { layers, workspace } = cache;
        workspace.resize(Workspace::floats_for(&self.model, 1)?, 0.0);
        let mut ws = Workspace::new(&self.model, workspace, 1)?;
        self.layers(&[token], &mut ws, layers)?;
        Ok(output_head(&self.kern, &self.model, &mut ws, 1, logits)?)
    }

    /// The logits after `tokens` computed from scratch (no cache kept): the whole
    /// prefix goes through every layer, keys and values rebuilt.
    pub fn step_recompute(&self, tokens: &[u32], logits: &mut [f32]) -> Result<()> {
        let t = tokens.len();
        let mut memory = vec![0f32; Workspace::floats_for(&self.model, t)?];
        let mut ws = Workspace::new(&self.model, &mut memory, t)?;
        let mut layers = Vec::new();
        self.layers(tokens, &mut ws, &mut layers)?;
        // The head of the last position only: move its row first.
        let d = self.cfg.d_model as usize;
        let rows = ws.rows(t, d).ok_or_else(|| anyhow!("workspace too small"))?;
        rows.copy_within((t - 1) * d..t * d, 0);
        Ok(output_head(&self.kern, &self.model, &mut ws, 1, logits)?)
    }

    /// `tokens` as new rows through every layer, their keys and values appended to
    /// the cache of each layer.
    fn layers(&self, tokens: &[u32], ws: &mut Workspace, cache: &mut Vec<(Vec<f32>, Vec<f32>)>) -> Result<()> {
        let (t, d, qk_w) = (tokens.len(), self.cfg.d_model as usize, self.cfg.qk_width());
        let table = self.model.f32_tensor(TensorRole::Embedding, 0)?;
        let rows = ws.rows(t, d).ok_or_else(|| anyhow!("workspace too small"))?;
        for (&token, row) in tokens.iter().zip(rows.chunks_exact_mut(d)) {
            let at = token as usize * d;
            row.copy_from_slice(table.get(at..at + d).ok_or_else(|| anyhow!("token {token} out of range"))?);
        }
        cache.resize_with(self.cfg.n_layers as usize, Default::default);
        for (layer, (keys, values)) in cache.iter_mut().enumerate() {
            let base = keys.len() / qk_w;
            let mut softmax = |q: &[f32], k: &[f32], v: &[f32], out: &mut [f32]| {
                keys.extend_from_slice(k);
                values.extend_from_slice(v);
                self.attend(q, keys, values, base, t, out);
            };
            layer_with_attention(&self.kern, &self.model, layer as u32, ws, t, &mut softmax)?;
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
}
