//! One encoder layer of fast-transformers' `TransformerEncoderLayer`, over T rows:
//!
//! post-norm (fast-transformers): `x = norm1(x + out(attn(x)))`, `x = norm2(x + linear2(act(linear1(x))))`
//! pre-norm:                      `x = x + out(attn(norm1(x)))`, `x = x + linear2(act(linear1(norm2(x))))`

use super::attention::Heads;
use crate::config::{Activation, ModelConfig, NormPlacement};
use crate::format::LayerWeights;
use crate::kernels::scalar::{add_assign, gelu, layer_norm, relu};
use crate::kernels::Kernels;

/// Working buffers carved from the arena, each at least `T × width`.
pub(crate) struct Scratch<'s> {
    pub hidden: &'s mut [f32],
    pub normed: &'s mut [f32],
    pub query: &'s mut [f32],
    pub key: &'s mut [f32],
    pub value: &'s mut [f32],
    pub attended: &'s mut [f32],
    pub ffn: &'s mut [f32],
    /// Quantized activations for int8 matrices (empty for other models).
    pub quant: &'s mut [f32],
}

/// Which form of attention runs: the recurrent step (T = 1) or the causal parallel form.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    Recurrent,
    Causal,
}

/// LayerNorm applied to each of the `rows.len() / width` rows.
pub(crate) fn layer_norm_rows(rows: &mut [f32], width: usize, gamma: &[f32], beta: &[f32], eps: f32) {
    for row in rows.chunks_exact_mut(width) {
        layer_norm(row, gamma, beta, eps);
    }
}

/// Runs one layer on `scratch.hidden[..t·d_model]` in place, advancing `state`,
/// which is stored multiplied by `state_factor` (a power of two, see
/// `attention::rescale_if_grown`): new terms and eps get the same factor.
#[allow(clippy::too_many_arguments)]
pub(crate) fn encoder_layer(
    kern: &Kernels,
    cfg: &ModelConfig,
    w: &LayerWeights,
    state: &mut [f32],
    state_factor: f32,
    s: &mut Scratch,
    t: usize,
    form: Form,
) {
    let d = cfg.d_model as usize;
    let (qk_w, v_w, ff) = (cfg.qk_width(), cfg.v_width(), cfg.d_ff as usize);
    let eps = cfg.layernorm_eps;
    let pre = cfg.norm_placement == NormPlacement::Pre;
    let x = &mut s.hidden[..t * d];
    let normed = &mut s.normed[..t * d];
    let (q, k, v) = (&mut s.query[..t * qk_w], &mut s.key[..t * qk_w], &mut s.value[..t * v_w]);
    let attended = &mut s.attended[..t * v_w];
    let hidden_ff = &mut s.ffn[..t * ff];
    // int8 models quantize each matmul input once, shared by the matmuls reading it.
    let int8 = !s.quant.is_empty();

    // Attention block.
    if pre {
        normed.copy_from_slice(x);
        layer_norm_rows(normed, d, w.n1_w, w.n1_b, eps);
    }
    let attn_in: &[f32] = if pre { &*normed } else { &*x };
    let a = kern.activations(attn_in, t, d, int8, s.quant);
    kern.matmul(&w.q_w, w.q_b, &a, q);
    kern.matmul(&w.k_w, w.k_b, &a, k);
    kern.matmul(&w.v_w, w.v_b, &a, v);
    kern.elu_plus_one(q);
    kern.elu_plus_one(k);
    if state_factor != 1.0 {
        k.iter_mut().for_each(|x| *x *= state_factor);
    }
    let heads = Heads {
        n: cfg.n_heads as usize,
        dk: cfg.d_query as usize,
        dv: cfg.d_value as usize,
        eps: cfg.attention_eps * state_factor,
    };
    match form {
        Form::Recurrent => heads.step(kern, state, q, k, v, attended),
        // Over a chunk the causal form is computed by its recurrence, one position
        // after another on the (small, cache-resident) state: O(T·Dk·Dv) per head
        // against O(T²·(Dk+Dv)) for the quadratic form, 16× fewer operations at
        // T = 512, Dk = Dv = 32. The projections around it are matrix-matrix.
        Form::Causal => {
            for (((qp, kp), vp), op) in q
                .chunks_exact(qk_w)
                .zip(k.chunks_exact(qk_w))
                .zip(v.chunks_exact(v_w))
                .zip(attended.chunks_exact_mut(v_w))
            {
                heads.step(kern, state, qp, kp, vp, op);
            }
        }
    }
    kern.matmul(&w.o_w, w.o_b, &kern.activations(attended, t, v_w, int8, s.quant), normed);
    add_assign(x, normed);
    if !pre {
        layer_norm_rows(x, d, w.n1_w, w.n1_b, eps);
    }

    // Feed-forward block.
    if pre {
        normed.copy_from_slice(x);
        layer_norm_rows(normed, d, w.n2_w, w.n2_b, eps);
    }
    let ffn_in: &[f32] = if pre { &*normed } else { &*x };
    kern.matmul(&w.l1_w, w.l1_b, &kern.activations(ffn_in, t, d, int8, s.quant), hidden_ff);
    match cfg.activation {
        Activation::Relu => relu(hidden_ff),
        Activation::Gelu => gelu(hidden_ff),
    }
    kern.matmul(&w.l2_w, w.l2_b, &kern.activations(hidden_ff, t, ff, int8, s.quant), normed);
    add_assign(x, normed);
    if !pre {
        layer_norm_rows(x, d, w.n2_w, w.n2_b, eps);
    }
}
