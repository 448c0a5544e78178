//! AVX2 + FMA + F16C kernels. Every function requires those features: callers go
//! through `Kernels`, which only selects this path when the CPU has them.

use core::arch::x86_64::*;

#[inline]
#[target_feature(enable = "avx2,fma")]
fn hsum_ps(v: __m256) -> f32 {
    let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
    _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1)))
}

#[inline]
#[target_feature(enable = "avx2")]
fn hsum_epi32(v: __m256i) -> i32 {
    let quad = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let pair = _mm_add_epi32(quad, _mm_unpackhi_epi64(quad, quad));
    _mm_cvtsi128_si32(_mm_add_epi32(pair, _mm_shuffle_epi32(pair, 1)))
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY (all loads below): i + 8·k + 8 ≤ n, so every 8-float load is inside both slices.
    unsafe {
        while i + 32 <= n {
            for (k, a_k) in acc.iter_mut().enumerate() {
                let j = i + 8 * k;
                *a_k = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(j)), _mm256_loadu_ps(pb.add(j)), *a_k);
            }
            i += 32;
        }
        while i + 8 <= n {
            acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc[0]);
            i += 8;
        }
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut s = hsum_ps(sum);
    for j in i..n {
        s += a[j] * b[j];
    }
    s
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_f16(a: &[u16], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 2];
    let mut i = 0;
    // SAFETY: i + 16 ≤ n (or i + 8 ≤ n): 8 halves (16 bytes) and 8 floats stay in bounds.
    unsafe {
        while i + 16 <= n {
            let w0 = _mm256_cvtph_ps(_mm_loadu_si128(pa.add(i) as *const __m128i));
            let w1 = _mm256_cvtph_ps(_mm_loadu_si128(pa.add(i + 8) as *const __m128i));
            acc[0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(pb.add(i)), acc[0]);
            acc[1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(pb.add(i + 8)), acc[1]);
            i += 16;
        }
        while i + 8 <= n {
            let w = _mm256_cvtph_ps(_mm_loadu_si128(pa.add(i) as *const __m128i));
            acc[0] = _mm256_fmadd_ps(w, _mm256_loadu_ps(pb.add(i)), acc[0]);
            i += 8;
        }
    }
    let mut s = hsum_ps(_mm256_add_ps(acc[0], acc[1]));
    for j in i..n {
        s += half::f16::from_bits(a[j]).to_f32() * b[j];
    }
    s
}

/// Four int8 rows · x → four i32 with `vpmaddubsw`, which multiplies unsigned by
/// signed bytes: feed it |x| and w·sign(x). With both in [-127, 127] a pair sum stays
/// ≤ 32 258, so the 16-bit intermediate never saturates. |x| is computed once per 32
/// columns for all four rows.
#[inline]
#[target_feature(enable = "avx2")]
fn dot4_i8(w: [&[i8]; 4], x: &[i8]) -> [i32; 4] {
    let n = x.len();
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_si256(); 4];
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: i + 32 ≤ n: each 32-byte load is inside x and every row.
        let xv = unsafe { _mm256_loadu_si256(x.as_ptr().add(i) as *const __m256i) };
        let ax = _mm256_sign_epi8(xv, xv);
        for (a, row) in acc.iter_mut().zip(w) {
            // SAFETY: as above.
            let wv = unsafe { _mm256_loadu_si256(row.as_ptr().add(i) as *const __m256i) };
            let pairs = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(wv, xv));
            *a = _mm256_add_epi32(*a, _mm256_madd_epi16(pairs, ones));
        }
        i += 32;
    }
    let mut out = [0i32; 4];
    for ((o, a), row) in out.iter_mut().zip(acc).zip(w) {
        *o = hsum_epi32(a);
        for j in i..n {
            *o += row[j] as i32 * x[j] as i32;
        }
    }
    out
}

/// `y = W·x + b`, f32 weights.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn matvec_f32(w: &[f32], b: &[f32], x: &[f32], y: &mut [f32]) {
    for ((yo, row), bo) in y.iter_mut().zip(w.chunks_exact(x.len())).zip(b) {
        *yo = dot_f32(row, x) + bo;
    }
}

/// `y = W·x + b`, f16 weights widened with F16C.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn matvec_f16(w: &[u16], b: &[f32], x: &[f32], y: &mut [f32]) {
    for ((yo, row), bo) in y.iter_mut().zip(w.chunks_exact(x.len())).zip(b) {
        *yo = dot_f16(row, x) + bo;
    }
}

/// `Y = X·Wᵀ + b` for four positions at once, f32 weights (`x`: 4 rows of `cols`,
/// `y`: 4 rows of `b.len()`): each weight vector is loaded once for the four.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn matmul4_f32(w: &[f32], b: &[f32], x: &[f32], cols: usize, y: &mut [f32]) {
    assert!(w.len() >= b.len() * cols);
    // SAFETY: `matmul4` asks for 8 weights at flat indices i..i+8 inside rows × cols,
    // inside w (asserted above).
    unsafe { matmul4(b, x, cols, y, |i| _mm256_loadu_ps(w.as_ptr().add(i)), |i| w[i]) }
}

/// [`matmul4_f32`] for f16 weights: each 8 halves are widened once for the four
/// positions.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn matmul4_f16(w: &[u16], b: &[f32], x: &[f32], cols: usize, y: &mut [f32]) {
    assert!(w.len() >= b.len() * cols);
    // SAFETY: as in `matmul4_f32`: 8 halves at i..i+8, inside w.
    unsafe {
        matmul4(
            b,
            x,
            cols,
            y,
            |i| _mm256_cvtph_ps(_mm_loadu_si128(w.as_ptr().add(i) as *const __m128i)),
            |i| half::f16::from_bits(w[i]).to_f32(),
        )
    }
}

/// One row at a time times four positions, 16 columns per pass (8 sums in flight);
/// `load8(i)` gives the 8 weights at flat index i, `at(i)` one weight, for the last
/// columns.
///
/// # Safety
/// `load8(i)` must be sound for every `i + 8 ≤ b.len() · cols`; `x` holds 4 rows of
/// `cols` and `y` 4 rows of `b.len()`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn matmul4(
    b: &[f32],
    x: &[f32],
    cols: usize,
    y: &mut [f32],
    load8: impl Fn(usize) -> __m256,
    at: impl Fn(usize) -> f32,
) {
    let rows = b.len();
    assert!(x.len() >= 4 * cols && y.len() >= 4 * rows);
    let px = x.as_ptr();
    for r in 0..rows {
        let base = r * cols;
        let mut acc = [[_mm256_setzero_ps(); 2]; 4];
        let mut c = 0;
        // SAFETY: c + 16 (or c + 8) ≤ cols: the x loads stay inside each position's
        // row, the weight loads inside row r (the caller's contract).
        unsafe {
            while c + 16 <= cols {
                let (w0, w1) = (load8(base + c), load8(base + c + 8));
                for (p, a) in acc.iter_mut().enumerate() {
                    a[0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(px.add(p * cols + c)), a[0]);
                    a[1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(px.add(p * cols + c + 8)), a[1]);
                }
                c += 16;
            }
            if c + 8 <= cols {
                let w0 = load8(base + c);
                for (p, a) in acc.iter_mut().enumerate() {
                    a[0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(px.add(p * cols + c)), a[0]);
                }
                c += 8;
            }
        }
        for (p, a) in acc.iter().enumerate() {
            let mut s = hsum_ps(_mm256_add_ps(a[0], a[1]));
            for j in c..cols {
                s += at(base + j) * x[p * cols + j];
            }
            y[p * rows + r] = s + b[r];
        }
    }
}

/// `y = (W_q·x_q)·scale_row·x_scale + b`, int8 weights with one scale per row.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn matvec_i8(w: &[i8], scales: &[f32], b: &[f32], xq: &[i8], x_scale: f32, y: &mut [f32]) {
    super::four_rows_at_a_time(w, scales, b, xq, x_scale, y, |rows, x| dot4_i8(rows, x));
}

/// `y = (W_q·x_q)·scale_row·x_scale + b` for int8 weights in the packed 4-row layout:
/// each 64-column block of four rows is 256 contiguous bytes, read as one stream.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn matvec_i8_packed(w: &[i8], scales: &[f32], b: &[f32], xq: &[i8], x_scale: f32, y: &mut [f32]) {
    // SAFETY: the caller guarantees AVX2; one position is a one-row matmul.
    unsafe { matmul_i8_packed(w, scales, &b[..y.len()], xq, &[x_scale], xq.len(), y) }
}

/// `Y = X_q·W_qᵀ` scaled, for `t` quantized rows (`xq`: `[t, cols]`, `xs`: `[t]`) and
/// int8 weights in the packed 4-row layout; `y` is `[t, rows]`. Each group of four
/// rows is streamed from memory once and then read from L1 for every position, two
/// positions per pass. The sums are the matrix-vector kernel's, bit for bit.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul_i8_packed(w: &[i8], scales: &[f32], b: &[f32], xq: &[i8], xs: &[f32], cols: usize, y: &mut [f32]) {
    let (t, rows) = (xs.len(), b.len());
    let group_len = cols.div_ceil(64) * 256;
    assert!(xq.len() >= t * cols && y.len() >= t * rows && scales.len() >= rows);
    for (g, group) in w.chunks_exact(group_len).enumerate().take(rows.div_ceil(4)) {
        let mut p = 0;
        while p < t {
            let dots: &[[i32; 4]] =
                if p + 2 <= t { &packed_dots::<2>(group, xq, cols, p) } else { &packed_dots::<1>(group, xq, cols, p) };
            for (j, d) in dots.iter().enumerate() {
                for (k, dot) in d.iter().enumerate() {
                    let row = g * 4 + k;
                    if row < rows {
                        y[(p + j) * rows + row] = *dot as f32 * scales[row] * xs[p + j] + b[row];
                    }
                }
            }
            p += dots.len();
        }
    }
}

/// The four rows of one packed group · positions `p .. p + P` of `xq` (`cols` each),
/// with the sign trick of [`dot4_i8`].
#[inline]
#[target_feature(enable = "avx2")]
fn packed_dots<const P: usize>(group: &[i8], xq: &[i8], cols: usize, p: usize) -> [[i32; 4]; P] {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_si256(); 4]; P];
    for start in (0..cols).step_by(32) {
        // Column `start` sits in block start / 64, half (start % 64) / 32; the four
        // rows of that block are 64 bytes apart.
        let at = start / 64 * 256 + start % 64;
        for (j, acc_j) in acc.iter_mut().enumerate() {
            let xv = load_x(&xq[(p + j) * cols..(p + j + 1) * cols], start);
            let ax = _mm256_sign_epi8(xv, xv);
            for (k, a) in acc_j.iter_mut().enumerate() {
                // SAFETY: the group holds every 64-column block of its four rows.
                let wv = unsafe { _mm256_loadu_si256(group.as_ptr().add(at + k * 64) as *const __m256i) };
                let pairs = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(wv, xv));
                *a = _mm256_add_epi32(*a, _mm256_madd_epi16(pairs, ones));
            }
        }
    }
    acc.map(|a| hsum4_epi32(a))
}

/// 32 bytes of `row` from `start`, zero-padded past its end as the weights are. A
/// tail of 16 (widths that are multiples of 16, the usual case) is one 16-byte load
/// rather than a copy through the stack.
#[inline]
#[target_feature(enable = "avx2")]
fn load_x(row: &[i8], start: usize) -> __m256i {
    let left = row.len() - start;
    if left >= 32 {
        // SAFETY: start + 32 ≤ row.len(): the 32 bytes are inside the row.
        unsafe { _mm256_loadu_si256(row.as_ptr().add(start) as *const __m256i) }
    } else if left == 16 {
        // SAFETY: start + 16 = row.len(): the 16 bytes are inside the row.
        unsafe { _mm256_zextsi128_si256(_mm_loadu_si128(row.as_ptr().add(start) as *const __m128i)) }
    } else {
        let mut padded = [0i8; 32];
        padded[..left].copy_from_slice(&row[start..]);
        // SAFETY: 32 bytes, all of `padded`.
        unsafe { _mm256_loadu_si256(padded.as_ptr() as *const __m256i) }
    }
}

/// The sums of four vectors' lanes, in one reduction (integer sums: exact in any
/// order, so the same as four `hsum_epi32`).
#[inline]
#[target_feature(enable = "avx2")]
fn hsum4_epi32(v: [__m256i; 4]) -> [i32; 4] {
    let pairs = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    let sums = _mm_add_epi32(_mm256_castsi256_si128(pairs), _mm256_extracti128_si256(pairs, 1));
    let mut out = [0i32; 4];
    // SAFETY: 16 bytes, all of `out`.
    unsafe { _mm_storeu_si128(out.as_mut_ptr() as *mut __m128i, sums) };
    out
}

/// LayerNorm in place, like [`crate::kernels::scalar::layer_norm`] and with its exact
/// results: two 8-lane vectors hold the twin's 16 partial sums.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    use crate::kernels::scalar::{add_lanes, fold_lanes, layer_norm_scale_shift_from, NORM_LANES};
    let n = x.len();
    assert!(gamma.len() >= n && beta.len() >= n);
    let full = n / 16 * 16;
    let px = x.as_mut_ptr();
    // SAFETY (all accesses below): i + 16 ≤ full ≤ n, inside x, gamma and beta.
    let mut sums = [0f32; NORM_LANES];
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 2];
        for i in (0..full).step_by(16) {
            for (h, a) in acc.iter_mut().enumerate() {
                *a = _mm256_add_ps(*a, _mm256_loadu_ps(px.add(i + 8 * h)));
            }
        }
        _mm256_storeu_ps(sums.as_mut_ptr(), acc[0]);
        _mm256_storeu_ps(sums.as_mut_ptr().add(8), acc[1]);
    }
    add_lanes(x, full, &mut sums, |v| v);
    let mean = fold_lanes(sums) / n as f32;
    let mut squares = [0f32; NORM_LANES];
    unsafe {
        let (m, mut acc) = (_mm256_set1_ps(mean), [_mm256_setzero_ps(); 2]);
        for i in (0..full).step_by(16) {
            for (h, a) in acc.iter_mut().enumerate() {
                let d = _mm256_sub_ps(_mm256_loadu_ps(px.add(i + 8 * h)), m);
                *a = _mm256_add_ps(*a, _mm256_mul_ps(d, d));
            }
        }
        _mm256_storeu_ps(squares.as_mut_ptr(), acc[0]);
        _mm256_storeu_ps(squares.as_mut_ptr().add(8), acc[1]);
    }
    add_lanes(x, full, &mut squares, |v| (v - mean) * (v - mean));
    let inv = 1.0 / libm::sqrtf(fold_lanes(squares) / n as f32 + eps);
    let whole = n / 8 * 8;
    // SAFETY: i + 8 ≤ whole ≤ n, inside x, gamma and beta.
    unsafe {
        let (m, iv) = (_mm256_set1_ps(mean), _mm256_set1_ps(inv));
        for i in (0..whole).step_by(8) {
            let scaled = _mm256_mul_ps(
                _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(px.add(i)), m), iv),
                _mm256_loadu_ps(gamma.as_ptr().add(i)),
            );
            _mm256_storeu_ps(px.add(i), _mm256_add_ps(scaled, _mm256_loadu_ps(beta.as_ptr().add(i))));
        }
    }
    layer_norm_scale_shift_from(x, gamma, beta, mean, inv, whole);
}

/// Quantizes `x` like [`crate::kernels::quant::quantize`], bit for bit: the same
/// scale (a maximum does not depend on order), and `cvtps2dq` rounds to nearest even
/// exactly as the twin's add-and-subtract of 1.5·2²³ does; the last values go to the
/// twin's rounding.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn quantize(x: &[f32], q: &mut [i8]) -> f32 {
    let n = x.len().min(q.len());
    let (x, q) = (&x[..n], &mut q[..n]);
    let whole = n / 8 * 8;
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MAX));
    let mut vmax = _mm256_setzero_ps();
    for i in (0..whole).step_by(8) {
        // SAFETY: i + 8 ≤ whole ≤ n.
        let v = unsafe { _mm256_loadu_ps(x.as_ptr().add(i)) };
        vmax = _mm256_max_ps(vmax, _mm256_and_ps(v, abs_mask));
    }
    let mut lanes = [0f32; 8];
    // SAFETY: 8 floats into an 8-float array.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), vmax) };
    let max = x[whole..].iter().chain(&lanes).fold(0f32, |m, v| m.max(v.abs()));
    // Same rule as the twin: a vector too small to scale quantizes to zeros.
    let inv = 127.0 / max;
    if !inv.is_finite() {
        q.fill(0);
        return 0.0;
    }
    let scale = _mm256_set1_ps(inv);
    for i in (0..whole).step_by(8) {
        // SAFETY: i + 8 ≤ whole ≤ n: 8 floats read, 8 bytes written.
        unsafe {
            let r = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x.as_ptr().add(i)), scale));
            // Eight i32 in [-127, 127] → eight i8 (the saturating packs change nothing).
            let words = _mm_packs_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
            _mm_storel_epi64(q.as_mut_ptr().add(i) as *mut __m128i, _mm_packs_epi16(words, words));
        }
    }
    crate::kernels::quant::quantize_with(&x[whole..], &mut q[whole..], inv);
    max / 127.0
}

/// gelu in place, like [`crate::kernels::scalar::gelu`] and with its exact results:
/// the same erf, operation for operation, 8 lanes at a time; the tail goes to the twin.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn gelu(x: &mut [f32]) {
    use crate::kernels::scalar::erf_poly::*;
    let mut chunks = x.chunks_exact_mut(8);
    for chunk in &mut chunks {
        // SAFETY: each chunk holds exactly 8 floats.
        let v = unsafe { _mm256_loadu_ps(chunk.as_ptr()) };
        let u = _mm256_mul_ps(v, _mm256_set1_ps(core::f32::consts::FRAC_1_SQRT_2));
        // min(4, u) and max(-4, ·) keep u when it is NaN, as the twin's clamps do.
        let c = _mm256_max_ps(_mm256_set1_ps(-CLAMP), _mm256_min_ps(_mm256_set1_ps(CLAMP), u));
        let c2 = _mm256_mul_ps(c, c);
        let mut p = _mm256_set1_ps(NUM[0]);
        for &coef in &NUM[1..] {
            p = _mm256_add_ps(_mm256_mul_ps(p, c2), _mm256_set1_ps(coef));
        }
        let mut q = _mm256_set1_ps(DEN[0]);
        for &coef in &DEN[1..] {
            q = _mm256_add_ps(_mm256_mul_ps(q, c2), _mm256_set1_ps(coef));
        }
        let erf = _mm256_div_ps(_mm256_mul_ps(c, p), q);
        let out = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5), v), _mm256_add_ps(_mm256_set1_ps(1.0), erf));
        // SAFETY: as for the load.
        unsafe { _mm256_storeu_ps(chunk.as_mut_ptr(), out) };
    }
    crate::kernels::scalar::gelu(chunks.into_remainder());
}

/// One head's recurrent attention step, like
/// [`crate::kernels::scalar::attention_head_step`] and with its exact results: the
/// state update and the readout share one pass over S, 8 value columns at a time,
/// with the same multiply-then-add order (no FMA); the last columns go to the twin.
///
/// # Safety
/// The CPU must support AVX2; `s` is `k.len() × v.len()`, `q` and `z` as long as `k`,
/// `out` as long as `v`.
#[target_feature(enable = "avx2")]
pub unsafe fn attention_head_step(
    s: &mut [f32],
    z: &mut [f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    eps: f32,
) {
    use crate::kernels::scalar;
    let (dk, dv) = (k.len(), v.len());
    assert!(s.len() >= dk * dv && q.len() >= dk && out.len() >= dv);
    for (zd, kd) in z.iter_mut().zip(k) {
        *zd += kd;
    }
    // Up to four 8-column blocks per pass over S: each column's sum still runs over
    // d in order, but four independent chains hide the add latency.
    let mut j = 0;
    while j + 8 <= dv {
        let blocks = ((dv - j) / 8).min(4);
        // SAFETY: blocks · 8 columns from j fit in dv.
        unsafe {
            match blocks {
                4 => head_columns::<4>(s, q, k, v, out, j),
                3 => head_columns::<3>(s, q, k, v, out, j),
                2 => head_columns::<2>(s, q, k, v, out, j),
                _ => head_columns::<1>(s, q, k, v, out, j),
            }
        }
        j += 8 * blocks;
    }
    scalar::attention_columns(s, q, k, v, out, j);
    scalar::divide_by_normaliser(out, q, z, eps);
}

/// Columns `j .. j + 8N` of [`attention_head_step`]'s update and readout.
///
/// # Safety
/// The CPU must support AVX2; `j + 8N ≤ v.len()`, and the slices are as
/// [`attention_head_step`] requires.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn head_columns<const N: usize>(s: &mut [f32], q: &[f32], k: &[f32], v: &[f32], out: &mut [f32], j: usize) {
    let (dk, dv) = (k.len(), v.len());
    // SAFETY (all accesses): columns j..j + 8N ≤ dv of v, out and of each row d < dk of s.
    unsafe {
        let vv: [__m256; N] = core::array::from_fn(|b| _mm256_loadu_ps(v.as_ptr().add(j + 8 * b)));
        let mut acc = [_mm256_setzero_ps(); N];
        for d in 0..dk {
            let (kd, qd) = (_mm256_set1_ps(k[d]), _mm256_set1_ps(q[d]));
            for b in 0..N {
                let row = s.as_mut_ptr().add(d * dv + j + 8 * b);
                let updated = _mm256_add_ps(_mm256_loadu_ps(row), _mm256_mul_ps(kd, vv[b]));
                _mm256_storeu_ps(row, updated);
                acc[b] = _mm256_add_ps(acc[b], _mm256_mul_ps(qd, updated));
            }
        }
        for (b, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.as_mut_ptr().add(j + 8 * b), *a);
        }
    }
}

/// φ(x) = elu(x) + 1 in place, like [`crate::kernels::scalar::elu_plus_one`] and with
/// its exact results: the same exponential, operation for operation, 8 lanes at a
/// time; the tail goes to the twin.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn elu_plus_one(x: &mut [f32]) {
    use crate::kernels::scalar::exp_poly::*;
    let mut chunks = x.chunks_exact_mut(8);
    let one = _mm256_set1_ps(1.0);
    for chunk in &mut chunks {
        // SAFETY: each chunk holds exactly 8 floats.
        let v = unsafe { _mm256_loadu_ps(chunk.as_ptr()) };
        // Clamp as the twin does: max(LOWEST, v) keeps v when v is NaN.
        let c = _mm256_max_ps(_mm256_set1_ps(LOWEST), v);
        let k = _mm256_sub_ps(
            _mm256_add_ps(_mm256_mul_ps(c, _mm256_set1_ps(LOG2_E)), _mm256_set1_ps(ROUND)),
            _mm256_set1_ps(ROUND),
        );
        let r = _mm256_sub_ps(
            _mm256_sub_ps(c, _mm256_mul_ps(k, _mm256_set1_ps(LN2_HI))),
            _mm256_mul_ps(k, _mm256_set1_ps(LN2_LO)),
        );
        let mut p = _mm256_set1_ps(P[0]);
        for &coef in &P[1..] {
            p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(coef));
        }
        let e = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(p, r), r), r), one);
        let pow2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(k),
            _mm256_set1_epi32(127),
        )));
        let positive = _mm256_cmp_ps::<_CMP_GT_OQ>(v, _mm256_setzero_ps());
        let out = _mm256_blendv_ps(_mm256_mul_ps(e, pow2), _mm256_add_ps(v, one), positive);
        // SAFETY: as for the load.
        unsafe { _mm256_storeu_ps(chunk.as_mut_ptr(), out) };
    }
    crate::kernels::scalar::elu_plus_one(chunks.into_remainder());
}
