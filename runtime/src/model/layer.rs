//! One encoder layer of fast-transformers' `TransformerEncoderLayer`, over T rows:
//!
//! post-norm (fast-transformers): `x = norm1(x + out(attn(x)))`, `x = norm2(x + linear2(act(linear1(x))))`
//! pre-norm:                      `x = x + out(attn(norm1(x)))`, `x = x + linear2(act(linear1(norm2(x))))`

use super::attention::Heads;
pub(crate) use super::features::FeatureScratch;
use crate::config::{Activation, ModelConfig, NormPlacement};
use crate::format::LayerWeights;
use crate::kernels::Kernels;

/// Working buffers carved from the arena, each at least `T × width`.
pub(crate) struct Scratch<'s> {
    /// The residual stream x, `T × d_model`.
    pub hidden: &'s mut [f32],
    /// A block's residual branch, `T × d_model`: its normed input (pre-norm), then
    /// the out projection or the feed-forward output that is added back to x.
    pub branch: &'s mut [f32],
    pub query: &'s mut [f32],
    pub key: &'s mut [f32],
    pub value: &'s mut [f32],
    pub attended: &'s mut [f32],
    pub ffn: &'s mut [f32],
    /// Quantized activations for int8 matrices (empty for other models).
    pub quant: &'s mut [f32],
    /// The random-feature maps' buffers (empty for other models).
    pub features: FeatureScratch<'s>,
}

/// LayerNorm applied to each of the `rows.len() / width` rows.
pub(crate) fn layer_norm_rows(kern: &Kernels, rows: &mut [f32], width: usize, gamma: &[f32], beta: &[f32], eps: f32) {
    for row in rows.chunks_exact_mut(width) {
        kern.layer_norm(row, gamma, beta, eps);
    }
}

/// The attention of one row: `(row, φ(q), φ(k), v, out)`, φ(q) and φ(k) of
/// `H·F` values (F = features per head). It owns the state the
/// row belongs to (one stream's, or each row its own stream's in a batch).
pub(crate) type Attend<'f> = dyn FnMut(usize, &[f32], &mut [f32], &[f32], &mut [f32]) + 'f;

/// Another attention in place of linear attention, over a layer's raw projections
/// of its T rows: `(q, k, v, out)`, `T × H·Dk`, `T × H·Dk`, `T × H·Dv` and
/// `T × H·Dv` row-major (the softmax baseline of `linrt bench --paper`).
pub type RawAttention<'f> = dyn FnMut(&[f32], &[f32], &[f32], &mut [f32]) + 'f;

/// The attention block of a layer.
pub(crate) enum Attention<'a, 'f> {
    /// Linear attention: the feature maps, then `attend` row by row.
    Linear(&'a mut Attend<'f>),
    /// Another attention over the raw projections.
    Raw(&'a mut RawAttention<'f>),
}

/// One row's attention step on `state`, stored multiplied by `state_factor` (a power
/// of two, see `attention::rescale_if_grown`): new terms and eps get the same factor.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend_row(
    kern: &Kernels,
    cfg: &ModelConfig,
    state: &mut [f32],
    state_factor: f32,
    q: &[f32],
    k: &mut [f32],
    v: &[f32],
    out: &mut [f32],
) {
    if state_factor != 1.0 {
        kern.scale(k, state_factor);
    }
    let heads = Heads {
        n: cfg.n_heads as usize,
        dk: cfg.features_per_head() as usize,
        dv: cfg.d_value as usize,
        eps: cfg.attention_eps * state_factor,
    };
    heads.step(kern, state, q, k, v, out);
}

/// Runs one layer on `scratch.hidden[..t·d_model]` in place. Projections and the
/// feed-forward block are matrix-matrix over the t rows; the attention runs row by
/// row, in order, through `attend`: over a chunk of one stream that is the causal
/// form computed by its recurrence (O(T·Dk·Dv) per head against O(T²·(Dk+Dv)) for
/// the quadratic form, 16× fewer operations at T = 512, Dk = Dv = 32).
pub(crate) fn encoder_layer(
    kern: &Kernels,
    cfg: &ModelConfig,
    w: &LayerWeights,
    s: &mut Scratch,
    t: usize,
    attention: Attention,
) {
    let d = cfg.d_model as usize;
    let (qk_w, v_w, ff) = (cfg.qk_width(), cfg.v_width(), cfg.d_ff as usize);
    let eps = cfg.layernorm_eps;
    let pre = cfg.norm_placement == NormPlacement::Pre;
    let x = &mut s.hidden[..t * d];
    let branch = &mut s.branch[..t * d];
    let (q, k, v) = (&mut s.query[..t * qk_w], &mut s.key[..t * qk_w], &mut s.value[..t * v_w]);
    let attended = &mut s.attended[..t * v_w];
    let hidden_ff = &mut s.ffn[..t * ff];
    // int8 models quantize each matmul input once, shared by the matmuls reading it.
    let int8 = !s.quant.is_empty();

    // Attention block.
    if pre {
        branch.copy_from_slice(x);
        layer_norm_rows(kern, branch, d, w.n1_w, w.n1_b, eps);
    }
    let attn_in: &[f32] = if pre { &*branch } else { &*x };
    let a = kern.activations(attn_in, t, d, int8, s.quant);
    kern.matmul(&w.q_w, w.q_b, &a, q);
    kern.matmul(&w.k_w, w.k_b, &a, k);
    kern.matmul(&w.v_w, w.v_b, &a, v);
    match attention {
        Attention::Linear(attend) => {
            let fs = &mut s.features;
            let omega = w.omega.as_ref();
            let q = super::features::apply(kern, cfg, omega, q, t, fs.projected, fs.zeros, fs.q);
            let k = super::features::apply(kern, cfg, omega, k, t, fs.projected, fs.zeros, fs.k);
            let f_w = cfg.feature_width();
            for (row, (((qp, kp), vp), op)) in q
                .chunks_exact(f_w)
                .zip(k.chunks_exact_mut(f_w))
                .zip(v.chunks_exact(v_w))
                .zip(attended.chunks_exact_mut(v_w))
                .enumerate()
            {
                attend(row, qp, kp, vp, op);
            }
        }
        Attention::Raw(attend) => attend(q, k, v, attended),
    }
    kern.matmul(&w.o_w, w.o_b, &kern.activations(attended, t, v_w, int8, s.quant), branch);
    kern.add_assign(x, branch);
    if !pre {
        layer_norm_rows(kern, x, d, w.n1_w, w.n1_b, eps);
    }

    // Feed-forward block.
    if pre {
        branch.copy_from_slice(x);
        layer_norm_rows(kern, branch, d, w.n2_w, w.n2_b, eps);
    }
    let ffn_in: &[f32] = if pre { &*branch } else { &*x };
    kern.matmul(&w.l1_w, w.l1_b, &kern.activations(ffn_in, t, d, int8, s.quant), hidden_ff);
    match cfg.activation {
        Activation::Relu => kern.relu(hidden_ff),
        Activation::Gelu => kern.gelu(hidden_ff),
    }
    kern.matmul(&w.l2_w, w.l2_b, &kern.activations(hidden_ff, t, ff, int8, s.quant), branch);
    kern.add_assign(x, branch);
    if !pre {
        layer_norm_rows(kern, x, d, w.n2_w, w.n2_b, eps);
    }
}
