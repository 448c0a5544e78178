//! Causal linear attention, exactly as fast-transformers computes it, per head h:
//!
//! recurrent step:  S ← S + φ(k) vᵀ,  z ← z + φ(k),  out = φ(q)ᵀ S / (φ(q)·z + eps)
//! The causal (parallel) form over T positions,
//!   out_t = (φ(q_t)ᵀ S₀ + Σ_{s≤t} (φ(q_t)·φ(k_s)) v_s) / (φ(q_t)·z₀ + Σ_{s≤t} φ(q_t)·φ(k_s) + eps),
//! is the same sums: a chunk runs the step for each of its positions (cheaper than
//! the quadratic form on a CPU, see `layer.rs`). φ has already been applied to q
//! and k by the caller.
//!
//! A layer's state is `[S: H×F×Dv][z: H×F]` (F features per head: Dk for elu+1),
//! whatever the stream length, stored
//! multiplied by the stream's 2^-e (see `rescale_if_grown`).

use crate::kernels::Kernels;

/// When any z of any layer passes this, every layer's S and z are multiplied by
/// [`GROWTH_SCALE`] and the stream's state exponent grows by [`GROWTH_EXPONENT`].
pub const GROWTH_LIMIT: f32 = (1u32 << 20) as f32;
pub const GROWTH_EXPONENT: u32 = 20;
/// Past this exponent the per-step factor would near f32's smallest normal numbers;
/// a stream would need about 2^100 steps to get there.
pub const MAX_STATE_EXPONENT: u32 = 100;

/// 2^-exponent, exactly: built from its bits (a normal f32 for every exponent up
/// to [`MAX_STATE_EXPONENT`]), cheap enough to ask for at every row.
#[inline]
pub fn state_factor(exponent: u32) -> f32 {
    let e = exponent.min(MAX_STATE_EXPONENT);
    f32::from_bits((127 - e) << 23)
}

/// Keeps long streams in range: the state is stored multiplied by 2^-e, with e
/// growing by 20 whenever a |z| (a sum of feature maps, positive ones for most maps:
/// the fastest-growing part) passes 2^20. New terms get the same factor and eps is scaled with it, so
/// the outputs are unchanged: powers of two scale exactly. Returns the new exponent,
/// or None when a z is NaN or infinite (the stream is broken; nothing is scaled).
pub(crate) fn rescale_if_grown(
    kern: &Kernels,
    state: &mut [f32],
    layer_floats: usize,
    z_offset: usize,
    exponent: u32,
) -> Option<u32> {
    // |z|: random Fourier features may be negative. NaN fails `<=` too, so one scan
    // finds both growth and a broken z.
    let in_range = |z: &f32| z.abs() <= GROWTH_LIMIT;
    if state.chunks_exact(layer_floats).all(|layer| layer[z_offset..].iter().all(in_range)) {
        return Some(exponent);
    }
    if state.chunks_exact(layer_floats).any(|layer| layer[z_offset..].iter().any(|z| !z.is_finite())) {
        return None;
    }
    if exponent + GROWTH_EXPONENT > MAX_STATE_EXPONENT {
        return Some(exponent);
    }
    kern.scale(state, state_factor(GROWTH_EXPONENT));
    Some(exponent + GROWTH_EXPONENT)
}

/// Head geometry of one attention layer.
#[derive(Clone, Copy)]
pub(crate) struct Heads {
    pub n: usize,
    pub dk: usize,
    pub dv: usize,
    pub eps: f32,
}

impl Heads {
    /// One recurrent step: q, k are `[H·Dk]` (φ applied), v and out are `[H·Dv]`.
    pub fn step(&self, kern: &Kernels, state: &mut [f32], q: &[f32], k: &[f32], v: &[f32], out: &mut [f32]) {
        let (dk, dv) = (self.dk, self.dv);
        let (s_all, z_all) = super::state::StreamState::split_layer(state, self.n * dk * dv);
        for h in 0..self.n {
            let (qh, kh) = (&q[h * dk..(h + 1) * dk], &k[h * dk..(h + 1) * dk]);
            let vh = &v[h * dv..(h + 1) * dv];
            let s = &mut s_all[h * dk * dv..(h + 1) * dk * dv];
            let z = &mut z_all[h * dk..(h + 1) * dk];
            kern.attention_head_step(s, z, qh, kh, vh, &mut out[h * dv..(h + 1) * dv], self.eps);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn state_factor_is_the_power_of_two() {
        for e in 0..=super::MAX_STATE_EXPONENT {
            assert_eq!(super::state_factor(e), libm::ldexpf(1.0, -(e as i32)), "2^-{e}");
        }
    }

    use super::*;

    /// Ten million steps of one head with random q, k, v: the f32 state, rescaled as
    /// the session rescales it, against sums kept in f64 without any scaling.
    #[test]
    fn ten_million_steps_match_float64_and_stay_finite() {
        let heads = Heads { n: 1, dk: 4, dv: 4, eps: 1e-6 };
        let kern = Kernels::with_path(crate::KernelPath::Scalar).unwrap();
        let mut state = [0f32; 20];
        let (mut s64, mut z64) = ([0f64; 16], [0f64; 4]);
        let mut rng = crate::rng::Rng::seeded(1);
        let mut unit = || rng.next_f32();
        let mut exponent = 0;
        let mut worst = 0f64;
        let steps = 10_000_000;
        for step in 0..steps {
            // φ(q), φ(k) > 0 as elu+1 makes them; v of either sign.
            let q: [f32; 4] = core::array::from_fn(|_| 0.1 + unit());
            let k: [f32; 4] = core::array::from_fn(|_| 0.1 + unit());
            let v: [f32; 4] = core::array::from_fn(|_| 2.0 * unit() - 1.0);
            let factor = state_factor(exponent);
            let scaled_k = k.map(|x| x * factor);
            let mut out = [0f32; 4];
            Heads { eps: heads.eps * factor, ..heads }.step(&kern, &mut state, &q, &scaled_k, &v, &mut out);
            exponent = rescale_if_grown(&kern, &mut state, 20, 16, exponent).unwrap();
            for i in 0..4 {
                z64[i] += k[i] as f64;
                for j in 0..4 {
                    s64[i * 4 + j] += k[i] as f64 * v[j] as f64;
                }
            }
            assert!(out.iter().all(|x| x.is_finite()), "step {step}");
            if step >= steps - 1000 {
                let den: f64 = (0..4).map(|i| q[i] as f64 * z64[i]).sum::<f64>() + 1e-6;
                let scale = (0..4).map(|i| q[i] as f64 * z64[i]).sum::<f64>() / den;
                for j in 0..4 {
                    let want = (0..4).map(|i| q[i] as f64 * s64[i * 4 + j]).sum::<f64>() / den;
                    // Relative to the output's scale (an average of v, 0.5 · |v|).
                    worst = worst.max((out[j] as f64 - want).abs() / (0.5 * scale).max(1e-3));
                }
            }
        }
        assert_eq!(exponent, 20, "rescaled once, when z passed 2^20 (about 1.7 M steps)");
        // Measured 3.5e-8: rounding in f32 sums of 10 M terms is unbiased.
        assert!(worst < 1e-5, "final steps differ from float64 by {worst:.2e} of the output scale");
    }

    /// Feature maps near f32's limit: without rescaling z overflows within 40 steps
    /// and the outputs become NaN; with it they stay finite.
    #[test]
    fn huge_feature_maps_never_overflow() {
        let heads = Heads { n: 1, dk: 2, dv: 2, eps: 1e-6 };
        let kern = Kernels::with_path(crate::KernelPath::Scalar).unwrap();
        let mut state = [0f32; 6];
        let mut exponent = 0;
        for step in 0..1000 {
            let factor = state_factor(exponent);
            let k = [1e37 * factor, 1e36 * factor];
            let mut out = [0f32; 2];
            Heads { eps: heads.eps * factor, ..heads }.step(&kern, &mut state, &[1.0, 1.0], &k, &[1.0, -2.0], &mut out);
            exponent = rescale_if_grown(&kern, &mut state, 6, 4, exponent).unwrap();
            assert!(out.iter().all(|x| x.is_finite()), "step {step}: {out:?}");
            assert!((out[0] - 1.0).abs() < 1e-5 && (out[1] + 2.0).abs() < 1e-5, "step {step}: {out:?}");
        }
        assert_eq!(exponent, MAX_STATE_EXPONENT);
    }

    /// Random Fourier features can be negative, and so can z: a huge negative z
    /// rescales too, and the outputs stay what they are.
    #[test]
    fn negative_normalisers_rescale_as_well() {
        let heads = Heads { n: 1, dk: 2, dv: 2, eps: 1e-6 };
        let kern = Kernels::with_path(crate::KernelPath::Scalar).unwrap();
        let mut state = [0f32; 6];
        let mut exponent = 0;
        for step in 0..100 {
            let factor = state_factor(exponent);
            let k = [-1e30 * factor, -2e30 * factor];
            let mut out = [0f32; 2];
            Heads { eps: heads.eps * factor, ..heads }.step(&kern, &mut state, &[1.0, 1.0], &k, &[3.0, -1.0], &mut out);
            exponent = rescale_if_grown(&kern, &mut state, 6, 4, exponent).unwrap();
            assert!((out[0] - 3.0).abs() < 1e-5 && (out[1] + 1.0).abs() < 1e-5, "step {step}: {out:?}");
        }
        assert!(exponent > 0, "a z of -3e30 per step must have rescaled the state");
    }
}
