//! The feature maps φ of linear attention, applied to the queries or keys of T rows
//! exactly as fast-transformers' `feature_maps` compute them (see [`FeatureMap`]).
//!
//! elu+1 and relu keep the width (F = Dk) and run in place. The random-feature maps
//! project each head's `x' = input_scale · x` by Ω, one matmul over all T·H head rows
//! (Ωᵀ is stored `[M, Dk]` like a `Linear` weight, so the dispatched kernels of every
//! path run it), then apply their element-wise functions into a wider buffer.

use crate::config::{FeatureMap, ModelConfig};
use crate::kernels::{Kernels, Matrix};

/// Working buffers of the random-feature maps (all empty for elu+1 and relu).
pub(crate) struct FeatureScratch<'s> {
    /// φ(q), `T × H·F`.
    pub q: &'s mut [f32],
    /// φ(k), `T × H·F`.
    pub k: &'s mut [f32],
    /// `u = x'·Ω` of every head row, `T·H × M`.
    pub projected: &'s mut [f32],
    /// M zeros: the bias of the Ω matmul.
    pub zeros: &'s mut [f32],
}

/// φ of the `t` rows of `x` (`t × H·Dk`, a query or key projection, overwritten):
/// `x` itself for elu+1 and relu, else `out[..t·H·F]`. `omega` is Ωᵀ for the random
/// maps (None for the others).
#[allow(clippy::too_many_arguments)]
pub(crate) fn apply<'s>(
    kern: &Kernels,
    cfg: &ModelConfig,
    omega: Option<&Matrix>,
    x: &'s mut [f32],
    t: usize,
    projected: &mut [f32],
    zeros: &[f32],
    out: &'s mut [f32],
) -> &'s mut [f32] {
    let map = cfg.feature_map;
    let omega = match (map, omega) {
        (FeatureMap::EluPlusOne, _) => {
            kern.elu_plus_one(x);
            return x;
        }
        (FeatureMap::Relu, _) => {
            kern.relu(x);
            return x;
        }
        (_, Some(omega)) => omega,
        // The reader gives every random map its Ω (`Model::layer`), so this is never
        // reached; the width would be wrong, not the memory.
        (_, None) => {
            debug_assert!(false, "a random-feature map without Ω");
            return x;
        }
    };
    let p = cfg.feature_params;
    let (dk, f, m) = (cfg.d_query as usize, cfg.feature_dim as usize, cfg.omega_cols());
    let rows = t * cfg.n_heads as usize;
    let x = &mut x[..rows * dk];
    // x' = input_scale · x first, as PyTorch rounds it (Favor also needs |x'|²).
    kern.scale(x, p.input_scale);
    let u = &mut projected[..rows * m];
    kern.matmul(omega, &zeros[..m], &kern.activations(x, rows, dk, false, &mut []), u);
    let out = &mut out[..rows * f];
    for ((xr, ur), phi) in x.chunks_exact(dk).zip(u.chunks_exact(m)).zip(out.chunks_exact_mut(f)) {
        let (first, second) = phi.split_at_mut(m);
        match map {
            FeatureMap::Favor => {
                // exp(±u − |x'|²/2 − ½·ln n): Performer's positive features.
                let offset = xr.iter().map(|v| v * v).sum::<f32>() * 0.5 + p.log_offset;
                for ((a, b), &ui) in first.iter_mut().zip(second.iter_mut()).zip(ur) {
                    *a = libm::expf(ui - offset);
                    *b = libm::expf(-ui - offset);
                }
            }
            FeatureMap::RandomFourier | FeatureMap::SmoothedRandomFourier => {
                for ((a, b), &ui) in first.iter_mut().zip(second.iter_mut()).zip(ur) {
                    *a = libm::cosf(ui) * p.output_scale;
                    *b = libm::sinf(ui) * p.output_scale;
                }
                if map == FeatureMap::SmoothedRandomFourier {
                    second[m] = p.smoothing;
                }
            }
            FeatureMap::GeneralizedRandom => first.copy_from_slice(ur),
            FeatureMap::EluPlusOne | FeatureMap::Relu => {}
        }
    }
    if map == FeatureMap::GeneralizedRandom {
        kern.relu(out);
    }
    out
}
