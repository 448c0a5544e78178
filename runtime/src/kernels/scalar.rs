//! Portable scalar kernels: the reference every SIMD path is tested against.
//! Callers pass slices of exactly the documented lengths (the session checks them).

/// Dot product with eight independent partial sums (lets LLVM vectorise it and
/// keeps rounding error low on long rows).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let chunks = n / 8;
    for c in 0..chunks {
        let (x, y) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0f32;
    for i in chunks * 8..n {
        tail += a[i] * b[i];
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `y = W·x + b` for a row-major f32 `W` of `y.len()` rows and `x.len()` columns.
pub fn matvec(w: &[f32], b: &[f32], x: &[f32], y: &mut [f32]) {
    let cols = x.len();
    for (o, (yo, row)) in y.iter_mut().zip(w.chunks_exact(cols)).enumerate() {
        *yo = dot(row, x) + b[o];
    }
}

/// `y = W·x + b` for f16 weights (bit patterns), computed in f32.
pub fn matvec_f16(w: &[u16], b: &[f32], x: &[f32], y: &mut [f32]) {
    let cols = x.len();
    for (o, (yo, row)) in y.iter_mut().zip(w.chunks_exact(cols)).enumerate() {
        let mut acc = [0f32; 8];
        for (c, (&h, &xv)) in row.iter().zip(x).enumerate() {
            acc[c % 8] += half::f16::from_bits(h).to_f32() * xv;
        }
        *yo = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + b[o];
    }
}

/// `y = (W_q · scales) · x + b` for int8 weights and an f32 input (no activation
/// quantization): the exact product of what the file stores.
pub fn matvec_i8_f32_input(w: &[i8], scales: &[f32], block: usize, b: &[f32], x: &[f32], y: &mut [f32]) {
    let cols = x.len();
    let per_row = if block == 0 { 1 } else { cols.div_ceil(block) };
    let span = if block == 0 { cols.max(1) } else { block };
    for (o, (yo, row)) in y.iter_mut().zip(w.chunks_exact(cols)).enumerate() {
        let s = &scales[o * per_row..(o + 1) * per_row];
        let acc: f32 = row
            .chunks(span)
            .zip(x.chunks(span))
            .zip(s)
            .map(|((wb, xb), &sb)| wb.iter().zip(xb).map(|(&q, &v)| q as f32 * v).sum::<f32>() * sb)
            .sum();
        *yo = acc + b[o];
    }
}

/// `y = (W_q · x_q) · scale_row · x_scale + b` for int8 weights in the packed 4-row
/// layout (see `Weights::I8Packed`).
pub fn matvec_i8_packed(w: &[i8], scales: &[f32], b: &[f32], xq: &[i8], x_scale: f32, y: &mut [f32]) {
    use super::matrix::{PACK_COLS, PACK_ROWS};
    let blocks = xq.len().div_ceil(PACK_COLS);
    for (g, group) in w.chunks_exact(blocks * PACK_ROWS * PACK_COLS).enumerate() {
        for k in 0..PACK_ROWS {
            let row = g * PACK_ROWS + k;
            if row >= y.len() {
                break;
            }
            let acc: i32 = xq
                .chunks(PACK_COLS)
                .enumerate()
                .map(|(blk, xb)| dot_i8(&group[(blk * PACK_ROWS + k) * PACK_COLS..], xb))
                .sum();
            y[row] = acc as f32 * scales[row] * x_scale + b[row];
        }
    }
}

/// `y = (W_q · scale_row) · x + b` for packed int8 weights and an f32 input.
pub fn matvec_i8_packed_f32_input(w: &[i8], scales: &[f32], b: &[f32], x: &[f32], y: &mut [f32]) {
    use super::matrix::{PACK_COLS, PACK_ROWS};
    let blocks = x.len().div_ceil(PACK_COLS);
    for (row, yo) in y.iter_mut().enumerate() {
        let (g, k) = (row / PACK_ROWS, row % PACK_ROWS);
        let acc: f32 = x
            .chunks(PACK_COLS)
            .enumerate()
            .map(|(blk, xb)| {
                let at = ((g * blocks + blk) * PACK_ROWS + k) * PACK_COLS;
                w[at..at + xb.len()].iter().zip(xb).map(|(&q, &v)| q as f32 * v).sum::<f32>()
            })
            .sum();
        *yo = acc * scales[row] + b[row];
    }
}

/// Integer dot product of two int8 vectors.
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}

/// `y = (W_q · x_q) · scales · x_scale + b` for int8 weights with one scale per row
/// (`block == 0`) or per `block` columns, and an int8-quantized input.
pub fn matvec_i8(w: &[i8], scales: &[f32], block: usize, b: &[f32], xq: &[i8], x_scale: f32, y: &mut [f32]) {
    let cols = xq.len();
    let per_row = if block == 0 { 1 } else { cols.div_ceil(block) };
    for (o, (yo, row)) in y.iter_mut().zip(w.chunks_exact(cols)).enumerate() {
        let s = &scales[o * per_row..(o + 1) * per_row];
        let acc = if block == 0 {
            dot_i8(row, xq) as f32 * s[0]
        } else {
            row.chunks(block).zip(xq.chunks(block)).zip(s).map(|((wb, xb), &sb)| dot_i8(wb, xb) as f32 * sb).sum()
        };
        *yo = acc * x_scale + b[o];
    }
}

/// `x += y`.
pub fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// LayerNorm over the whole slice, in place: biased variance, eps inside the sqrt.
/// Its two sums run as 16 interleaved partial sums (element i into sum i % 16) folded
/// in a fixed tree ([`fold_lanes`]), so that the SIMD versions (two vectors of 8
/// lanes on AVX2, four of 4 on NEON) compute the same bits.
pub fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let mut sums = [0f32; NORM_LANES];
    add_lanes(x, 0, &mut sums, |v| v);
    let mean = fold_lanes(sums) / x.len() as f32;
    let mut squares = [0f32; NORM_LANES];
    add_lanes(x, 0, &mut squares, |v| (v - mean) * (v - mean));
    let inv = 1.0 / libm::sqrtf(fold_lanes(squares) / x.len() as f32 + eps);
    layer_norm_scale_shift_from(x, gamma, beta, mean, inv, 0);
}

/// Partial sums in [`layer_norm`].
pub(crate) const NORM_LANES: usize = 16;

/// `acc[i % 16] += f(x[i])` for i from `from` on (a SIMD version has done the rest).
pub(crate) fn add_lanes(x: &[f32], from: usize, acc: &mut [f32; NORM_LANES], f: impl Fn(f32) -> f32) {
    for (i, &v) in x.iter().enumerate().skip(from) {
        acc[i % NORM_LANES] += f(v);
    }
}

/// The 16 partial sums added as halves: lane i + 8 onto i, then i + 4, i + 2, i + 1.
pub(crate) fn fold_lanes(mut acc: [f32; NORM_LANES]) -> f32 {
    for half in [8, 4, 2, 1] {
        for i in 0..half {
            acc[i] += acc[i + half];
        }
    }
    acc[0]
}

/// `x = (x - mean)·inv·γ + β` from element `from` on, in that order (never fused).
pub(crate) fn layer_norm_scale_shift_from(
    x: &mut [f32],
    gamma: &[f32],
    beta: &[f32],
    mean: f32,
    inv: f32,
    from: usize,
) {
    for ((v, g), b) in x.iter_mut().zip(gamma).zip(beta).skip(from) {
        *v = (*v - mean) * inv * g + b;
    }
}

/// φ(x) = elu(x) + 1, in place: x + 1 above zero, eˣ at or below.
pub fn elu_plus_one(x: &mut [f32]) {
    for v in x {
        *v = if *v > 0.0 { *v + 1.0 } else { exp_nonpositive(*v) };
    }
}

/// Constants of [`exp_nonpositive`], shared with its SIMD versions so that every
/// path computes the same bits.
pub mod exp_poly {
    /// Below this eˣ is under 1.6e-38; inputs are clamped here so 2ⁿ stays a normal float.
    pub const LOWEST: f32 = -87.0;
    pub const LOG2_E: f32 = core::f32::consts::LOG2_E;
    /// 1.5·2²³: adding and subtracting it rounds to the nearest integer (ties to even).
    pub const ROUND: f32 = 12_582_912.0;
    /// ln 2 split in two (Cody–Waite) so that x − n·ln 2 loses no bits.
    pub const LN2_HI: f32 = 0.693_359_4;
    pub const LN2_LO: f32 = -2.121_944_4e-4;
    /// Minimax coefficients for e^r on |r| ≤ ln2/2 (Cephes `expf`), highest degree first.
    pub const P: [f32; 6] = [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5];
}

/// eˣ for x ≤ 0 (the elu branch of φ), within 2 ulp of the true value, by range
/// reduction to e^r·2ⁿ and a degree-6 polynomial. Its SIMD versions repeat these
/// operations in this order (multiply and add, never fused), so all paths agree bit
/// for bit; libm's `expf` has no SIMD twin and cost 7 % of an int8 step. NaN stays NaN.
pub fn exp_nonpositive(x: f32) -> f32 {
    use exp_poly::*;
    let x = if LOWEST > x { LOWEST } else { x };
    let n = (x * LOG2_E + ROUND) - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = P[0];
    for c in &P[1..] {
        p = p * r + c;
    }
    let e = (p * r * r + r) + 1.0;
    e * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

pub fn relu(x: &mut [f32]) {
    for v in x {
        *v = v.max(0.0);
    }
}

/// gelu: `0.5·x·(1 + erf(x/√2))`, with [`erf`].
pub fn gelu(x: &mut [f32]) {
    for v in x {
        *v = 0.5 * *v * (1.0 + erf(*v * core::f32::consts::FRAC_1_SQRT_2));
    }
}

/// Constants of [`erf`], shared with its SIMD versions.
pub mod erf_poly {
    /// Beyond ±4, erf is ±1 in f32.
    pub const CLAMP: f32 = 4.0;
    /// Numerator: odd powers x¹³ … x¹, as a polynomial in x², highest degree first.
    pub const NUM: [f32; 7] = [
        -2.726_142_4e-10,
        2.770_681_5e-8,
        -2.101_024e-6,
        -5.692_506_2e-5,
        -7.349_906_4e-4,
        -2.954_6e-3,
        -1.609_603_3e-2,
    ];
    /// Denominator: even powers x⁸ … x⁰, highest degree first.
    pub const DEN: [f32; 5] = [-1.456_607_15e-5, -2.133_740_5e-4, -1.682_827e-3, -7.373_329_3e-3, -1.426_473_9e-2];
}

/// erf(x) as the rational approximation x·P(x²)/Q(x²) on [-4, 4] that Eigen and XLA
/// use, within 4.5e-7 of the true value (libm's `erff` has no SIMD twin). Its SIMD
/// versions repeat these operations in this order (multiply and add, never fused), so
/// all paths agree bit for bit. NaN stays NaN.
pub fn erf(x: f32) -> f32 {
    use erf_poly::*;
    let x = if x > CLAMP { CLAMP } else { x };
    let x = if x < -CLAMP { -CLAMP } else { x };
    let x2 = x * x;
    let mut p = NUM[0];
    for c in &NUM[1..] {
        p = p * x2 + c;
    }
    let mut q = DEN[0];
    for c in &DEN[1..] {
        q = q * x2 + c;
    }
    x * p / q
}

/// `S += k·vᵀ` for one head: `s` is `[k.len(), v.len()]` row-major.
pub fn rank1_update(s: &mut [f32], k: &[f32], v: &[f32]) {
    for (row, &kd) in s.chunks_exact_mut(v.len()).zip(k) {
        for (sm, &vm) in row.iter_mut().zip(v) {
            *sm += kd * vm;
        }
    }
}

/// `out = qᵀ·S` for one head: `s` is `[q.len(), out.len()]` row-major.
pub fn vec_mat(q: &[f32], s: &[f32], out: &mut [f32]) {
    out.fill(0.0);
    for (row, &qd) in s.chunks_exact(out.len()).zip(q) {
        for (o, &sm) in out.iter_mut().zip(row) {
            *o += qd * sm;
        }
    }
}

/// One head's recurrent step of linear attention (φ already applied to q and k):
/// `z += k`, `S += k vᵀ`, `out = qᵀS / (q·z + eps)`. `s` is `[Dk, Dv]`.
pub fn attention_head_step(s: &mut [f32], z: &mut [f32], q: &[f32], k: &[f32], v: &[f32], out: &mut [f32], eps: f32) {
    for (zd, kd) in z.iter_mut().zip(k) {
        *zd += kd;
    }
    rank1_update(s, k, v);
    vec_mat(q, s, out);
    divide_by_normaliser(out, q, z, eps);
}

/// Columns `from..` of [`attention_head_step`]'s state update and readout, column by
/// column with the twin's operations in its order: the tail the SIMD versions leave.
/// Returns nothing; the caller still applies the normaliser.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn attention_columns(s: &mut [f32], q: &[f32], k: &[f32], v: &[f32], out: &mut [f32], from: usize) {
    let dv = v.len();
    for j in from..dv {
        let mut acc = 0f32;
        for (d, (&kd, &qd)) in k.iter().zip(q).enumerate() {
            let sm = &mut s[d * dv + j];
            *sm += kd * v[j];
            acc += qd * *sm;
        }
        out[j] = acc;
    }
}

/// The normaliser of [`attention_head_step`]: `out /= q·z + eps`, as a multiply by
/// the reciprocal (every path the same bits).
pub(crate) fn divide_by_normaliser(out: &mut [f32], q: &[f32], z: &[f32], eps: f32) {
    scale(out, 1.0 / (dot(q, z) + eps));
}

/// `x *= a`.
pub fn scale(x: &mut [f32], a: f32) {
    for v in x {
        *v *= a;
    }
}

/// `y += a·x`.
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (yv, xv) in y.iter_mut().zip(x) {
        *yv += a * xv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_handles_odd_lengths() {
        for n in [0usize, 1, 7, 8, 9, 17] {
            let a: [f32; 17] = core::array::from_fn(|i| i as f32);
            let b = [2f32; 17];
            let want: f32 = (0..n).map(|i| 2.0 * i as f32).sum();
            assert_eq!(dot(&a[..n], &b[..n]), want);
        }
    }

    #[test]
    fn exp_nonpositive_is_within_two_ulp_of_libm() {
        // Every 97th float between -87 and 0, plus the edges.
        let mut worst = 0f64;
        let mut check = |x: f32| {
            let (got, want) = (exp_nonpositive(x) as f64, (x as f64).exp());
            let ulp = (libm::expf(x).next_up() - libm::expf(x)) as f64;
            worst = worst.max((got - want).abs() / ulp);
        };
        let mut bits = 0x8000_0000u32; // -0.0, growing in magnitude
        while f32::from_bits(bits) >= exp_poly::LOWEST {
            check(f32::from_bits(bits));
            bits += 97;
        }
        check(exp_poly::LOWEST);
        assert!(worst <= 2.0, "worst error {worst} ulp");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(f32::NAN).is_nan());
        assert!(exp_nonpositive(-1000.0) > 0.0 && exp_nonpositive(-1000.0) < 1e-37);
    }

    #[test]
    fn elu_plus_one_is_positive_and_continuous() {
        let mut x = [-30.0f32, -1.0, 0.0, 1e-7, 2.0];
        elu_plus_one(&mut x);
        assert!(x.iter().all(|v| *v > 0.0));
        assert_eq!(x[2], 1.0);
        assert!((x[1] - libm::expf(-1.0)).abs() < 1e-7);
        assert_eq!(x[4], 3.0);
    }

    #[test]
    fn layer_norm_normalises() {
        let mut x = [1.0f32, 2.0, 3.0, 4.0];
        layer_norm(&mut x, &[1.0; 4], &[0.0; 4], 0.0);
        let mean: f32 = x.iter().sum::<f32>() / 4.0;
        let var: f32 = x.iter().map(|v| v * v).sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5);
    }

    #[test]
    fn gelu_matches_known_values() {
        let mut x = [-1.0f32, 0.0, 1.0];
        gelu(&mut x);
        assert!((x[0] + 0.158_655_3).abs() < 1e-6);
        assert_eq!(x[1], 0.0);
        assert!((x[2] - 0.841_344_7).abs() < 1e-6);
    }
}
