//! NEON kernels. f32 with `fmla`; f16 weights widened with `fcvtl` (base ARMv8, no
//! FP16 arithmetic needed); int8 with `smull` + `sadalp` everywhere, or `sdot` on CPUs
//! with the dotprod extension. `sdot` and `fcvtl` on f16 vectors go through `asm!`:
//! their intrinsics are not stable Rust.

use core::arch::aarch64::*;
use core::arch::asm;

#[inline]
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut i = 0;
    // SAFETY: NEON is part of every aarch64 CPU; each 4-float load reads i..i+4 ≤ n.
    let mut s = unsafe {
        let mut acc = [vdupq_n_f32(0.0); 4];
        while i + 16 <= n {
            for (k, a_k) in acc.iter_mut().enumerate() {
                let j = i + 4 * k;
                *a_k = vfmaq_f32(*a_k, vld1q_f32(pa.add(j)), vld1q_f32(pb.add(j)));
            }
            i += 16;
        }
        while i + 4 <= n {
            acc[0] = vfmaq_f32(acc[0], vld1q_f32(pa.add(i)), vld1q_f32(pb.add(i)));
            i += 4;
        }
        vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])))
    };
    for j in i..n {
        s += a[j] * b[j];
    }
    s
}

/// Eight f16 bit patterns widened to two f32 vectors with `fcvtl`/`fcvtl2`.
#[inline]
fn widen(h: uint16x8_t) -> (float32x4_t, float32x4_t) {
    let (lo, hi): (float32x4_t, float32x4_t);
    // SAFETY: fcvtl/fcvtl2 (half → single) are base ARMv8 AdvSIMD instructions that
    // only read and write the named vector registers.
    unsafe {
        asm!(
            "fcvtl {lo:v}.4s, {h:v}.4h",
            "fcvtl2 {hi:v}.4s, {h:v}.8h",
            h = in(vreg) h,
            lo = out(vreg) lo,
            hi = out(vreg) hi,
            options(pure, nomem, nostack),
        );
    }
    (lo, hi)
}

#[inline]
fn dot_f16(a: &[u16], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut i = 0;
    // SAFETY: each load of 8 halves and 2×4 floats reads i..i+8 ≤ n.
    let mut s = unsafe {
        let mut acc = [vdupq_n_f32(0.0); 2];
        while i + 8 <= n {
            let (lo, hi) = widen(vld1q_u16(pa.add(i)));
            acc[0] = vfmaq_f32(acc[0], lo, vld1q_f32(pb.add(i)));
            acc[1] = vfmaq_f32(acc[1], hi, vld1q_f32(pb.add(i + 4)));
            i += 8;
        }
        vaddvq_f32(vaddq_f32(acc[0], acc[1]))
    };
    for j in i..n {
        s += half::f16::from_bits(a[j]).to_f32() * b[j];
    }
    s
}

/// i8 · i8 → i32 with `smull` (products fit i16: |w|, |x| ≤ 127) and pairwise
/// accumulation into i32 with `sadalp`.
#[inline]
fn dot_i8_smull(w: &[i8], x: &[i8]) -> i32 {
    let n = w.len().min(x.len());
    let mut i = 0;
    // SAFETY: each 16-byte load reads i..i+16 ≤ n of both slices.
    let mut s = unsafe {
        let mut acc = vdupq_n_s32(0);
        while i + 16 <= n {
            let (wv, xv) = (vld1q_s8(w.as_ptr().add(i)), vld1q_s8(x.as_ptr().add(i)));
            acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(wv), vget_low_s8(xv)));
            acc = vpadalq_s16(acc, vmull_high_s8(wv, xv));
            i += 16;
        }
        vaddvq_s32(acc)
    };
    for j in i..n {
        s += w[j] as i32 * x[j] as i32;
    }
    s
}

/// `acc` plus, in each i32 lane, the four products of its bytes of `w` and `x`
/// (`sdot`, through `asm!`: its intrinsic is not stable Rust).
#[inline]
#[target_feature(enable = "dotprod")]
fn sdot(mut acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
    // SAFETY: sdot only touches the named registers, and this function requires the
    // dotprod extension.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {w:v}.16b, {x:v}.16b",
            acc = inout(vreg) acc,
            w = in(vreg) w,
            x = in(vreg) x,
            options(pure, nomem, nostack),
        )
    };
    acc
}

/// i8 · i8 → i32 with `sdot` (4 products per i32 lane).
#[inline]
#[target_feature(enable = "dotprod")]
fn dot_i8_sdot(w: &[i8], x: &[i8]) -> i32 {
    let n = w.len().min(x.len());
    let mut i = 0;
    // SAFETY: each 16-byte load reads i..i+16 ≤ n of both slices.
    let mut s = unsafe {
        let mut acc = [vdupq_n_s32(0); 2];
        while i + 16 <= n {
            let (wv, xv) = (vld1q_s8(w.as_ptr().add(i)), vld1q_s8(x.as_ptr().add(i)));
            let k = (i / 16) % 2;
            acc[k] = sdot(acc[k], wv, xv);
            i += 16;
        }
        vaddvq_s32(vaddq_s32(acc[0], acc[1]))
    };
    for j in i..n {
        s += w[j] as i32 * x[j] as i32;
    }
    s
}

/// `y = W·x + b`, f32 weights.
pub fn matvec_f32(w: &[f32], b: &[f32], x: &[f32], y: &mut [f32]) {
    for ((yo, row), bo) in y.iter_mut().zip(w.chunks_exact(x.len())).zip(b) {
        *yo = dot_f32(row, x) + bo;
    }
}

/// `y = W·x + b`, f16 weights widened with `fcvtl`.
pub fn matvec_f16(w: &[u16], b: &[f32], x: &[f32], y: &mut [f32]) {
    for ((yo, row), bo) in y.iter_mut().zip(w.chunks_exact(x.len())).zip(b) {
        *yo = dot_f16(row, x) + bo;
    }
}

/// `Y = X·Wᵀ + b` for four positions at once, f32 weights (`x`: 4 rows of `cols`,
/// `y`: 4 rows of `b.len()`): each weight vector is loaded once for the four.
pub fn matmul4_f32(w: &[f32], b: &[f32], x: &[f32], cols: usize, y: &mut [f32]) {
    assert!(w.len() >= b.len() * cols);
    // SAFETY: NEON is part of every aarch64 CPU; `matmul4` asks for 8 weights at flat
    // indices i..i+8 inside rows × cols, inside w (asserted above).
    let load8 = |i: usize| unsafe { (vld1q_f32(w.as_ptr().add(i)), vld1q_f32(w.as_ptr().add(i + 4))) };
    matmul4(b, x, cols, y, load8, |i| w[i]);
}

/// [`matmul4_f32`] for f16 weights: each 8 halves are widened once for the four
/// positions.
pub fn matmul4_f16(w: &[u16], b: &[f32], x: &[f32], cols: usize, y: &mut [f32]) {
    assert!(w.len() >= b.len() * cols);
    // SAFETY: as in `matmul4_f32`: 8 halves at i..i+8, inside w.
    let load8 = |i: usize| widen(unsafe { vld1q_u16(w.as_ptr().add(i)) });
    matmul4(b, x, cols, y, load8, |i| half::f16::from_bits(w[i]).to_f32());
}

/// One row at a time times four positions, 8 columns per pass (8 sums in flight);
/// `load8(i)` gives the 8 weights at flat index i as two vectors, `at(i)` one
/// weight, for the last columns. `load8(i)` is only called with
/// `i + 8 ≤ b.len() · cols`.
#[inline(always)]
fn matmul4(
    b: &[f32],
    x: &[f32],
    cols: usize,
    y: &mut [f32],
    load8: impl Fn(usize) -> (float32x4_t, float32x4_t),
    at: impl Fn(usize) -> f32,
) {
    let rows = b.len();
    assert!(x.len() >= 4 * cols && y.len() >= 4 * rows);
    let px = x.as_ptr();
    for r in 0..rows {
        let base = r * cols;
        let mut c = 0;
        // SAFETY: NEON is part of every aarch64 CPU; c + 8 ≤ cols, so the x loads
        // stay inside each position's row (asserted above).
        let sums = unsafe {
            let mut acc = [[vdupq_n_f32(0.0); 2]; 4];
            while c + 8 <= cols {
                let (w0, w1) = load8(base + c);
                for (p, a) in acc.iter_mut().enumerate() {
                    a[0] = vfmaq_f32(a[0], w0, vld1q_f32(px.add(p * cols + c)));
                    a[1] = vfmaq_f32(a[1], w1, vld1q_f32(px.add(p * cols + c + 4)));
                }
                c += 8;
            }
            acc.map(|a| vaddvq_f32(vaddq_f32(a[0], a[1])))
        };
        for (p, mut s) in sums.into_iter().enumerate() {
            for j in c..cols {
                s += at(base + j) * x[p * cols + j];
            }
            y[p * rows + r] = s + b[r];
        }
    }
}

/// `y = (W_q·x_q)·scale_row·x_scale + b`, int8 weights, `smull` path.
pub fn matvec_i8(w: &[i8], scales: &[f32], b: &[f32], xq: &[i8], x_scale: f32, y: &mut [f32]) {
    for (((yo, row), s), bo) in y.iter_mut().zip(w.chunks_exact(xq.len())).zip(scales).zip(b) {
        *yo = dot_i8_smull(row, xq) as f32 * s * x_scale + bo;
    }
}

/// `y = (W_q·x_q)·scale_row·x_scale + b`, int8 weights, `sdot` path.
///
/// # Safety
/// The CPU must have the dotprod extension.
#[target_feature(enable = "dotprod")]
pub unsafe fn matvec_i8_dotprod(w: &[i8], scales: &[f32], b: &[f32], xq: &[i8], x_scale: f32, y: &mut [f32]) {
    for (((yo, row), s), bo) in y.iter_mut().zip(w.chunks_exact(xq.len())).zip(scales).zip(b) {
        *yo = dot_i8_sdot(row, xq) as f32 * s * x_scale + bo;
    }
}

/// Runs `dot` on each 64-column block of four packed rows; `dot(w, x)` gets 64 bytes
/// of one row and the (zero-padded) 64 bytes of x.
#[inline(always)]
fn packed(
    w: &[i8],
    scales: &[f32],
    b: &[f32],
    xq: &[i8],
    x_scale: f32,
    y: &mut [f32],
    dot: impl Fn(&[i8], &[i8]) -> i32,
) {
    let blocks = xq.len().div_ceil(64);
    for (g, group) in w.chunks_exact(blocks * 256).enumerate() {
        let mut acc = [0i32; 4];
        for (blk, xs) in xq.chunks(64).enumerate() {
            let mut xb = [0i8; 64];
            xb[..xs.len()].copy_from_slice(xs);
            for (k, a) in acc.iter_mut().enumerate() {
                let at = blk * 256 + k * 64;
                *a += dot(&group[at..at + 64], &xb);
            }
        }
        for (k, a) in acc.iter().enumerate() {
            let row = g * 4 + k;
            if row < y.len() {
                y[row] = *a as f32 * scales[row] * x_scale + b[row];
            }
        }
    }
}

/// Packed 4-row int8 layout, `smull` path.
pub fn matvec_i8_packed(w: &[i8], scales: &[f32], b: &[f32], xq: &[i8], x_scale: f32, y: &mut [f32]) {
    packed(w, scales, b, xq, x_scale, y, dot_i8_smull);
}

/// Packed 4-row int8 layout, `sdot` path.
///
/// # Safety
/// The CPU must have the dotprod extension.
#[target_feature(enable = "dotprod")]
pub unsafe fn matvec_i8_packed_dotprod(w: &[i8], scales: &[f32], b: &[f32], xq: &[i8], x_scale: f32, y: &mut [f32]) {
    packed(w, scales, b, xq, x_scale, y, |a, x| dot_i8_sdot(a, x));
}

/// `Y = X_q·W_qᵀ` scaled, for `t` quantized rows (`xq`: `[t, cols]`, `xs`: `[t]`) and
/// int8 weights in the packed 4-row layout, `smull` path; `y` is `[t, rows]`. Each
/// 16 bytes of four weight rows are loaded once for four positions (see
/// [`packed_by_four`]). The integer sums are exact, so y equals the matrix-vector
/// kernel's bit for bit.
#[allow(clippy::too_many_arguments)]
pub fn matmul_i8_packed(w: &[i8], scales: &[f32], b: &[f32], xq: &[i8], xs: &[f32], cols: usize, y: &mut [f32]) {
    // SAFETY: NEON is part of every aarch64 CPU; the intrinsics only touch registers.
    let mac = |acc: int32x4_t, w: int8x16_t, x: int8x16_t| unsafe {
        let acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(w), vget_low_s8(x)));
        vpadalq_s16(acc, vmull_high_s8(w, x))
    };
    packed_by_four(w, scales, b, xq, xs, cols, y, mac);
}

/// [`matmul_i8_packed`] with `sdot`.
///
/// # Safety
/// The CPU must have the dotprod extension.
#[target_feature(enable = "dotprod")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul_i8_packed_dotprod(
    w: &[i8],
    scales: &[f32],
    b: &[f32],
    xq: &[i8],
    xs: &[f32],
    cols: usize,
    y: &mut [f32],
) {
    packed_by_four(w, scales, b, xq, xs, cols, y, |acc, w, x| sdot(acc, w, x));
}

/// Four packed weight rows by four positions: 16 sums of `int32x4_t` in registers,
/// `mac(acc, w, x)` adding 16 byte products into one. A position past `t` repeats the
/// last one and its sums are dropped; the last, partial 64-column block of x is
/// zero-padded like the weights.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn packed_by_four(
    w: &[i8],
    scales: &[f32],
    b: &[f32],
    xq: &[i8],
    xs: &[f32],
    cols: usize,
    y: &mut [f32],
    mac: impl Fn(int32x4_t, int8x16_t, int8x16_t) -> int32x4_t,
) {
    let (t, rows) = (xs.len(), b.len());
    let blocks = cols.div_ceil(64);
    assert!(xq.len() >= t * cols && y.len() >= t * rows && scales.len() >= rows);
    for (g, group) in w.chunks_exact(blocks * 256).enumerate() {
        for p0 in (0..t).step_by(4) {
            let n = (t - p0).min(4);
            // SAFETY: NEON is part of every aarch64 CPU; weight loads read 16 bytes at
            // blk·256 + k·64 + c·16 < blocks·256, inside the group; x loads read from a
            // position's full 64-byte block (blk·64 + 64 ≤ cols) or from `pad`.
            let sums = unsafe {
                let mut acc = [[vdupq_n_s32(0); 4]; 4];
                // Only the last block can be partial: the one copy of it needs zeroing once.
                let mut pad = [[0i8; 64]; 4];
                for blk in 0..blocks {
                    let xp: [*const i8; 4] = core::array::from_fn(|j| {
                        let at = (p0 + j.min(n - 1)) * cols + blk * 64;
                        if blk * 64 + 64 <= cols {
                            xq.as_ptr().add(at)
                        } else {
                            pad[j][..cols - blk * 64].copy_from_slice(&xq[at..at + cols - blk * 64]);
                            pad[j].as_ptr()
                        }
                    });
                    for c in 0..4 {
                        let wv: [int8x16_t; 4] =
                            core::array::from_fn(|k| vld1q_s8(group.as_ptr().add(blk * 256 + k * 64 + c * 16)));
                        for (acc_j, p) in acc.iter_mut().zip(xp) {
                            let xv = vld1q_s8(p.add(c * 16));
                            for (a, wk) in acc_j.iter_mut().zip(wv) {
                                *a = mac(*a, wk, xv);
                            }
                        }
                    }
                }
                acc.map(|acc_j| acc_j.map(|a| vaddvq_s32(a)))
            };
            for (j, dots) in sums.iter().enumerate().take(n) {
                let p = p0 + j;
                for (k, d) in dots.iter().enumerate() {
                    let row = g * 4 + k;
                    if row < rows {
                        y[p * rows + row] = *d as f32 * scales[row] * xs[p] + b[row];
                    }
                }
            }
        }
    }
}

/// LayerNorm in place, like [`crate::kernels::scalar::layer_norm`] and with its exact
/// results: four 4-lane vectors hold the twin's 16 partial sums (`fmul` then `fadd`,
/// never fused).
pub fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    use crate::kernels::scalar::{add_lanes, fold_lanes, layer_norm_scale_shift_from, NORM_LANES};
    let n = x.len();
    assert!(gamma.len() >= n && beta.len() >= n);
    let full = n / 16 * 16;
    let px = x.as_mut_ptr();
    // SAFETY (all accesses below): NEON is part of every aarch64 CPU; i + 16 ≤ full ≤ n,
    // inside x, gamma and beta.
    let mut sums = [0f32; NORM_LANES];
    unsafe {
        let mut acc = [vdupq_n_f32(0.0); 4];
        for i in (0..full).step_by(16) {
            for (q, a) in acc.iter_mut().enumerate() {
                *a = vaddq_f32(*a, vld1q_f32(px.add(i + 4 * q)));
            }
        }
        for (q, a) in acc.iter().enumerate() {
            vst1q_f32(sums.as_mut_ptr().add(4 * q), *a);
        }
    }
    add_lanes(x, full, &mut sums, |v| v);
    let mean = fold_lanes(sums) / n as f32;
    let mut squares = [0f32; NORM_LANES];
    // SAFETY: as above: NEON is always there and i + 16 ≤ full ≤ n.
    unsafe {
        let (m, mut acc) = (vdupq_n_f32(mean), [vdupq_n_f32(0.0); 4]);
        for i in (0..full).step_by(16) {
            for (q, a) in acc.iter_mut().enumerate() {
                let d = vsubq_f32(vld1q_f32(px.add(i + 4 * q)), m);
                *a = vaddq_f32(*a, vmulq_f32(d, d));
            }
        }
        for (q, a) in acc.iter().enumerate() {
            vst1q_f32(squares.as_mut_ptr().add(4 * q), *a);
        }
    }
    add_lanes(x, full, &mut squares, |v| (v - mean) * (v - mean));
    let inv = 1.0 / libm::sqrtf(fold_lanes(squares) / n as f32 + eps);
    let whole = n / 4 * 4;
    // SAFETY: NEON is part of every aarch64 CPU; i + 4 ≤ whole ≤ n, inside x, gamma, beta.
    unsafe {
        let (m, iv) = (vdupq_n_f32(mean), vdupq_n_f32(inv));
        for i in (0..whole).step_by(4) {
            let scaled = vmulq_f32(vmulq_f32(vsubq_f32(vld1q_f32(px.add(i)), m), iv), vld1q_f32(gamma.as_ptr().add(i)));
            vst1q_f32(px.add(i), vaddq_f32(scaled, vld1q_f32(beta.as_ptr().add(i))));
        }
    }
    layer_norm_scale_shift_from(x, gamma, beta, mean, inv, whole);
}

/// Quantizes `x` like [`crate::kernels::quant::quantize`], bit for bit: the same
/// scale (a maximum does not depend on order), and `fcvtns` rounds to nearest even
/// exactly as the twin's add-and-subtract of 1.5·2²³ does; the last values go to the
/// twin's rounding.
pub fn quantize(x: &[f32], q: &mut [i8]) -> f32 {
    let n = x.len().min(q.len());
    let (x, q) = (&x[..n], &mut q[..n]);
    let whole = n / 8 * 8;
    // SAFETY (all blocks below): NEON is part of every aarch64 CPU; i + 8 ≤ whole ≤ n.
    let mut lanes = [0f32; 4];
    unsafe {
        let mut vmax = vdupq_n_f32(0.0);
        for i in (0..whole).step_by(4) {
            vmax = vmaxq_f32(vmax, vabsq_f32(vld1q_f32(x.as_ptr().add(i))));
        }
        vst1q_f32(lanes.as_mut_ptr(), vmax);
    }
    let max = x[whole..].iter().chain(&lanes).fold(0f32, |m, v| m.max(v.abs()));
    // Same rule as the twin: a vector too small to scale quantizes to zeros.
    let inv = 127.0 / max;
    if !inv.is_finite() {
        q.fill(0);
        return 0.0;
    }
    for i in (0..whole).step_by(8) {
        // SAFETY: as above: NEON is always there; i + 8 ≤ whole ≤ n, inside x and q.
        unsafe {
            let lo = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x.as_ptr().add(i)), inv));
            let hi = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x.as_ptr().add(i + 4)), inv));
            // Eight i32 in [-127, 127] → eight i8 (the saturating narrows change nothing).
            vst1_s8(q.as_mut_ptr().add(i), vqmovn_s16(vcombine_s16(vqmovn_s32(lo), vqmovn_s32(hi))));
        }
    }
    crate::kernels::quant::quantize_with(&x[whole..], &mut q[whole..], inv);
    max / 127.0
}

/// gelu in place, like [`crate::kernels::scalar::gelu`] and with its exact results:
/// the same erf, operation for operation (`fmul` then `fadd`, never fused), 4 lanes at
/// a time; the tail goes to the twin.
pub fn gelu(x: &mut [f32]) {
    use crate::kernels::scalar::erf_poly::*;
    let mut chunks = x.chunks_exact_mut(4);
    for chunk in &mut chunks {
        // SAFETY: NEON is part of every aarch64 CPU; each chunk holds exactly 4 floats.
        unsafe {
            let v = vld1q_f32(chunk.as_ptr());
            let u = vmulq_f32(v, vdupq_n_f32(core::f32::consts::FRAC_1_SQRT_2));
            // fmin/fmax give NaN for a NaN lane, as the twin's clamps keep it.
            let c = vmaxq_f32(vdupq_n_f32(-CLAMP), vminq_f32(vdupq_n_f32(CLAMP), u));
            let c2 = vmulq_f32(c, c);
            let mut p = vdupq_n_f32(NUM[0]);
            for &coef in &NUM[1..] {
                p = vaddq_f32(vmulq_f32(p, c2), vdupq_n_f32(coef));
            }
            let mut q = vdupq_n_f32(DEN[0]);
            for &coef in &DEN[1..] {
                q = vaddq_f32(vmulq_f32(q, c2), vdupq_n_f32(coef));
            }
            let erf = vdivq_f32(vmulq_f32(c, p), q);
            let out = vmulq_f32(vmulq_f32(vdupq_n_f32(0.5), v), vaddq_f32(vdupq_n_f32(1.0), erf));
            vst1q_f32(chunk.as_mut_ptr(), out);
        }
    }
    crate::kernels::scalar::gelu(chunks.into_remainder());
}

/// One head's recurrent attention step, like
/// [`crate::kernels::scalar::attention_head_step`] and with its exact results: the
/// state update and the readout share one pass over S, 4 value columns at a time,
/// with the same multiply-then-add order (`fmul` then `fadd`, never `fmla`); the last
/// columns go to the twin.
pub fn attention_head_step(s: &mut [f32], z: &mut [f32], q: &[f32], k: &[f32], v: &[f32], out: &mut [f32], eps: f32) {
    use crate::kernels::scalar;
    let (dk, dv) = (k.len(), v.len());
    assert!(s.len() >= dk * dv && q.len() >= dk && out.len() >= dv);
    for (zd, kd) in z.iter_mut().zip(k) {
        *zd += kd;
    }
    let mut j = 0;
    while j + 4 <= dv {
        // SAFETY: NEON is part of every aarch64 CPU; columns j..j + 4 ≤ dv of v, out
        // and of each row d < dk of s.
        unsafe {
            let vv = vld1q_f32(v.as_ptr().add(j));
            let mut acc = vdupq_n_f32(0.0);
            for d in 0..dk {
                let row = s.as_mut_ptr().add(d * dv + j);
                let updated = vaddq_f32(vld1q_f32(row), vmulq_f32(vdupq_n_f32(k[d]), vv));
                vst1q_f32(row, updated);
                acc = vaddq_f32(acc, vmulq_f32(vdupq_n_f32(q[d]), updated));
            }
            vst1q_f32(out.as_mut_ptr().add(j), acc);
        }
        j += 4;
    }
    scalar::attention_columns(s, q, k, v, out, j);
    scalar::divide_by_normaliser(out, q, z, eps);
}

/// φ(x) = elu(x) + 1 in place, like [`crate::kernels::scalar::elu_plus_one`] and with
/// its exact results: the same exponential, operation for operation (separate
/// multiplies and adds, no `fmla`), 4 lanes at a time; the tail goes to the twin.
pub fn elu_plus_one(x: &mut [f32]) {
    use crate::kernels::scalar::exp_poly::*;
    let mut chunks = x.chunks_exact_mut(4);
    for chunk in &mut chunks {
        // SAFETY: NEON is part of every aarch64 CPU; each chunk holds exactly 4 floats.
        unsafe {
            let v = vld1q_f32(chunk.as_ptr());
            // fmax gives NaN for a NaN lane, as the twin's clamp keeps it.
            let c = vmaxq_f32(vdupq_n_f32(LOWEST), v);
            let k = vsubq_f32(vaddq_f32(vmulq_f32(c, vdupq_n_f32(LOG2_E)), vdupq_n_f32(ROUND)), vdupq_n_f32(ROUND));
            let r = vsubq_f32(vsubq_f32(c, vmulq_f32(k, vdupq_n_f32(LN2_HI))), vmulq_f32(k, vdupq_n_f32(LN2_LO)));
            let mut p = vdupq_n_f32(P[0]);
            for &coef in &P[1..] {
                p = vaddq_f32(vmulq_f32(p, r), vdupq_n_f32(coef));
            }
            let one = vdupq_n_f32(1.0);
            let e = vaddq_f32(vaddq_f32(vmulq_f32(vmulq_f32(p, r), r), r), one);
            let pow2 = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(vcvtq_s32_f32(k), vdupq_n_s32(127))));
            let positive = vcgtq_f32(v, vdupq_n_f32(0.0));
            vst1q_f32(chunk.as_mut_ptr(), vbslq_f32(positive, vaddq_f32(v, one), vmulq_f32(e, pow2)));
        }
    }
    crate::kernels::scalar::elu_plus_one(chunks.into_remainder());
}
