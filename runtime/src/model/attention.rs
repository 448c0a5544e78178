//! Causal linear attention, exactly as fast-transformers computes it, per head h:
//!
//! recurrent step:  S ← S + φ(k) vᵀ,  z ← z + φ(k),  out = φ(q)ᵀ S / (φ(q)·z + eps)
//! causal (parallel) form over T positions, starting from (S₀, z₀):
//!   out_t = (φ(q_t)ᵀ S₀ + Σ_{s≤t} (φ(q_t)·φ(k_s)) v_s) / (φ(q_t)·z₀ + Σ_{s≤t} φ(q_t)·φ(k_s) + eps)
//! after which S and z hold the sums over the whole chunk. Both forms give the same
//! outputs; φ has already been applied to q and k by the caller.
//!
//! A layer's state is `[S: H×Dk×Dv][z: H×Dk]`, whatever the stream length.

use crate::kernels::scalar::{axpy, dot, rank1_update, scale, vec_mat};
use crate::kernels::Kernels;

/// Head geometry of one attention layer.
#[derive(Clone, Copy)]
pub(crate) struct Heads {
    pub n: usize,
    pub dk: usize,
    pub dv: usize,
    pub eps: f32,
}

impl Heads {
    /// Splits a layer's state into the S matrices and the z vectors of all heads.
    fn split<'s>(&self, state: &'s mut [f32]) -> (&'s mut [f32], &'s mut [f32]) {
        state.split_at_mut(self.n * self.dk * self.dv)
    }

    /// One recurrent step: q, k are `[H·Dk]` (φ applied), v and out are `[H·Dv]`.
    pub fn step(&self, kern: &Kernels, state: &mut [f32], q: &[f32], k: &[f32], v: &[f32], out: &mut [f32]) {
        let (dk, dv) = (self.dk, self.dv);
        let (s_all, z_all) = self.split(state);
        for h in 0..self.n {
            let (qh, kh) = (&q[h * dk..(h + 1) * dk], &k[h * dk..(h + 1) * dk]);
            let vh = &v[h * dv..(h + 1) * dv];
            let s = &mut s_all[h * dk * dv..(h + 1) * dk * dv];
            let z = &mut z_all[h * dk..(h + 1) * dk];
            kern.attention_head_step(s, z, qh, kh, vh, &mut out[h * dv..(h + 1) * dv], self.eps);
        }
    }

    /// The causal parallel form over `t` positions (`q`, `k`: `[T, H·Dk]`, `v`,
    /// `out`: `[T, H·Dv]`), continuing from and then advancing `state`.
    pub fn causal(&self, state: &mut [f32], t: usize, q: &[f32], k: &[f32], v: &[f32], out: &mut [f32]) {
        let (dk, dv) = (self.dk, self.dv);
        let (qk_w, v_w) = (self.n * dk, self.n * dv);
        let (s_all, z_all) = self.split(state);
        for h in 0..self.n {
            let s = &mut s_all[h * dk * dv..(h + 1) * dk * dv];
            let z = &mut z_all[h * dk..(h + 1) * dk];
            // Range of head h's slice in row p of a [T, w] matrix with per-head width d.
            let head = |p: usize, w: usize, d: usize| p * w + h * d..p * w + (h + 1) * d;
            for p in 0..t {
                let qp = &q[head(p, qk_w, dk)];
                let op = &mut out[head(p, v_w, dv)];
                vec_mat(qp, s, op);
                let mut den = dot(qp, z);
                for r in 0..=p {
                    let w = dot(qp, &k[head(r, qk_w, dk)]);
                    den += w;
                    axpy(op, w, &v[head(r, v_w, dv)]);
                }
                scale(op, 1.0 / (den + self.eps));
            }
            for p in 0..t {
                let kp = &k[head(p, qk_w, dk)];
                for (zd, kd) in z.iter_mut().zip(kp) {
                    *zd += kd;
                }
                rank1_update(s, kp, &v[head(p, v_w, dv)]);
            }
        }
    }
}
