//! AVX-512 kernels (F, BW, VL, VNNI). Tails use masked loads, so odd sizes stay in SIMD.
//! Every function requires those features: callers go through `Kernels`, which only
//! selects this path when the CPU has them.

use core::arch::x86_64::*;

/// Mask of the first `n` (< 16) lanes.
#[inline]
fn mask16(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

#[inline]
fn mask64(n: usize) -> __mmask64 {
    if n >= 64 {
        !0
    } else {
        (1u64 << n) - 1
    }
}

#[inline]
#[target_feature(enable = "avx512f")]
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY: full loads read i..i+16 ≤ n; the masked tail load touches only the
    // first n - i < 16 lanes, all inside both slices.
    unsafe {
        while i + 64 <= n {
            for (k, a_k) in acc.iter_mut().enumerate() {
                let j = i + 16 * k;
                *a_k = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(j)), _mm512_loadu_ps(pb.add(j)), *a_k);
            }
            i += 64;
        }
        while i + 16 <= n {
            acc[0] = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc[0]);
            i += 16;
        }
        if i < n {
            let m = mask16(n - i);
            acc[1] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, pa.add(i)), _mm512_maskz_loadu_ps(m, pb.add(i)), acc[1]);
        }
    }
    _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])))
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn dot_f16(a: &[u16], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 2];
    let mut i = 0;
    // SAFETY: 16 halves (32 bytes) and 16 floats from i ≤ n - 16; the masked tail
    // touches only lanes below n.
    unsafe {
        while i + 32 <= n {
            let w0 = _mm512_cvtph_ps(_mm256_loadu_si256(pa.add(i) as *const __m256i));
            let w1 = _mm512_cvtph_ps(_mm256_loadu_si256(pa.add(i + 16) as *const __m256i));
            acc[0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(pb.add(i)), acc[0]);
            acc[1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(pb.add(i + 16)), acc[1]);
            i += 32;
        }
        while i + 16 <= n {
            let w = _mm512_cvtph_ps(_mm256_loadu_si256(pa.add(i) as *const __m256i));
            acc[0] = _mm512_fmadd_ps(w, _mm512_loadu_ps(pb.add(i)), acc[0]);
            i += 16;
        }
        if i < n {
            let m = mask16(n - i);
            let w = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, pa.add(i) as *const i16));
            acc[1] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m, pb.add(i)), acc[1]);
        }
    }
    _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]))
}

/// Four int8 rows · x → four i32, with VNNI `vpdpbusd` (unsigned × signed bytes,
/// 4 products per i32 lane, no saturation): feed it |x| and each w negated where
/// x < 0. |x| and the sign mask are computed once per 64 columns for all four rows.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn dot4_i8(w: [&[i8]; 4], x: &[i8]) -> [i32; 4] {
    let n = x.len();
    let zero = _mm512_setzero_si512();
    let mut acc = [zero; 4];
    let mut i = 0;
    while i < n {
        let m = mask64(n - i);
        // SAFETY: the mask covers only bytes i..min(i + 64, n); every row has n bytes.
        let xv = unsafe { _mm512_maskz_loadu_epi8(m, x.as_ptr().add(i)) };
        let ax = _mm512_abs_epi8(xv);
        let negative = _mm512_movepi8_mask(xv);
        for (a, row) in acc.iter_mut().zip(w) {
            // SAFETY: as above.
            let wv = unsafe { _mm512_maskz_loadu_epi8(m, row.as_ptr().add(i)) };
            *a = _mm512_dpbusd_epi32(*a, ax, _mm512_mask_sub_epi8(wv, negative, zero, wv));
        }
        i += 64;
    }
    acc.map(|a| _mm512_reduce_add_epi32(a))
}

/// `y = W·x + b`, f32 weights.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn matvec_f32(w: &[f32], b: &[f32], x: &[f32], y: &mut [f32]) {
    for ((yo, row), bo) in y.iter_mut().zip(w.chunks_exact(x.len())).zip(b) {
        *yo = dot_f32(row, x) + bo;
    }
}

/// `Y = X·Wᵀ + b` for four positions at once (`x`: 4 rows of `cols`, `y`: 4 rows
/// of `b.len()`): each weight vector is loaded once for the four, which is what
/// makes chunks and batches cheaper per position than single steps when the
/// weights come from beyond L2. Four weight rows at a time keep 16 sums in flight,
/// so that loads (4 of x, 4 of w) are half the FMAs; the last rows go one by one.
///
/// # Safety
/// The CPU must support AVX-512F, AVX-512BW and AVX-512VL; `w` holds `b.len()`
/// rows of `cols`, `x` 4 rows of `cols`, `y` 4 rows of `b.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub unsafe fn matmul4_f32(w: &[f32], b: &[f32], x: &[f32], cols: usize, y: &mut [f32]) {
    let rows = b.len();
    debug_assert!(w.len() >= rows * cols && x.len() >= 4 * cols && y.len() >= 4 * rows);
    let mut r = 0;
    while r + 4 <= rows {
        // SAFETY: rows r..r+4 lie inside w; features as this function's.
        unsafe { four_rows_by_four(w, b, x, cols, y, r, |p| _mm512_loadu_ps(p), |p, m| _mm512_maskz_loadu_ps(m, p)) };
        r += 4;
    }
    for r in r..rows {
        let row = &w[r * cols..(r + 1) * cols];
        for p in 0..4 {
            y[p * rows + r] = dot_f32(row, &x[p * cols..(p + 1) * cols]) + b[r];
        }
    }
}

/// Weight rows `r..r + 4` times the four positions of [`matmul4_f32`]: 16 sums in
/// registers, reduced together at the end. `load(p)` gives the 16 weights at `p` as
/// floats, `load_tail(p, m)` the lanes of `m` only.
///
/// # Safety
/// As [`matmul4_f32`], and rows `r..r + 4` must exist.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[allow(clippy::too_many_arguments)]
unsafe fn four_rows_by_four<W>(
    w: &[W],
    b: &[f32],
    x: &[f32],
    cols: usize,
    y: &mut [f32],
    r: usize,
    load: impl Fn(*const W) -> __m512,
    load_tail: impl Fn(*const W, __mmask16) -> __m512,
) {
    let rows = b.len();
    let (pw, px) = (w.as_ptr(), x.as_ptr());
    // Lanes of the last, partial 16-column chunk.
    let tail = mask16(cols % 16);
    let full = cols / 16 * 16;
    let mut acc = [[_mm512_setzero_ps(); 4]; 4];
    // SAFETY: rows r..r+4 lie inside w and the 4 x rows inside x (the caller's
    // contract); full loads stay below `full` ≤ cols and the masked tail reads only
    // cols % 16 lanes.
    unsafe {
        let mut c = 0;
        while c < full {
            let xs = [0, 1, 2, 3].map(|p| _mm512_loadu_ps(px.add(p * cols + c)));
            for (k, acc_k) in acc.iter_mut().enumerate() {
                let wv = load(pw.add((r + k) * cols + c));
                for (a, xv) in acc_k.iter_mut().zip(&xs) {
                    *a = _mm512_fmadd_ps(wv, *xv, *a);
                }
            }
            c += 16;
        }
        if full < cols {
            let xs = [0, 1, 2, 3].map(|p| _mm512_maskz_loadu_ps(tail, px.add(p * cols + full)));
            for (k, acc_k) in acc.iter_mut().enumerate() {
                let wv = load_tail(pw.add((r + k) * cols + full), tail);
                for (a, xv) in acc_k.iter_mut().zip(&xs) {
                    *a = _mm512_fmadd_ps(wv, *xv, *a);
                }
            }
        }
    }
    // All 16 sums in one tree (a reduction per sum would cost half as much as the
    // FMAs at 256 columns): lane 4p + k is row r + k at position p.
    let sums = reduce16_ps(core::array::from_fn(|i| acc[i % 4][i / 4]));
    let mut out = [0f32; 16];
    // SAFETY: rows r..r+4 exist in b; `out` holds the 16 lanes stored.
    unsafe {
        let bias = _mm512_broadcast_f32x4(_mm_loadu_ps(b.as_ptr().add(r)));
        _mm512_storeu_ps(out.as_mut_ptr(), _mm512_add_ps(sums, bias));
    }
    for (p, four) in out.chunks_exact(4).enumerate() {
        y[p * rows + r..p * rows + r + 4].copy_from_slice(four);
    }
}

/// The sums of 16 vectors, lane i holding the sum of `v[i]`: pairwise
/// interleave-and-add inside 128-bit lanes, then across them (45 instructions
/// instead of 16 separate reductions).
#[inline]
#[target_feature(enable = "avx512f")]
fn reduce16_ps(v: [__m512; 16]) -> __m512 {
    // Within each 128-bit lane: four vectors a, b, c, d become [Σa, Σb, Σc, Σd].
    let quad = |a: __m512, b: __m512, c: __m512, d: __m512| {
        let ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
        let cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
        let (ab, cd) = (_mm512_castps_pd(ab), _mm512_castps_pd(cd));
        _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(ab, cd)), _mm512_castpd_ps(_mm512_unpackhi_pd(ab, cd)))
    };
    let q: [__m512; 4] = core::array::from_fn(|j| quad(v[4 * j], v[4 * j + 1], v[4 * j + 2], v[4 * j + 3]));
    // Across 128-bit lanes: q[j]'s four lanes summed into lane j of the result.
    let pair = |x: __m512, y: __m512| {
        _mm512_add_ps(_mm512_shuffle_f32x4::<0b01_00_01_00>(x, y), _mm512_shuffle_f32x4::<0b11_10_11_10>(x, y))
    };
    let (u01, u23) = (pair(q[0], q[1]), pair(q[2], q[3]));
    _mm512_add_ps(_mm512_shuffle_f32x4::<0b10_00_10_00>(u01, u23), _mm512_shuffle_f32x4::<0b11_01_11_01>(u01, u23))
}

/// [`reduce16_ps`] for i32 lanes: lane i of the result holds the sum of `v[i]`.
#[inline]
#[target_feature(enable = "avx512f")]
fn reduce16_epi32(v: [__m512i; 16]) -> __m512i {
    let quad = |a: __m512i, b: __m512i, c: __m512i, d: __m512i| {
        let ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
        let cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
        _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd))
    };
    let q: [__m512i; 4] = core::array::from_fn(|j| quad(v[4 * j], v[4 * j + 1], v[4 * j + 2], v[4 * j + 3]));
    let pair = |x: __m512i, y: __m512i| {
        _mm512_add_epi32(_mm512_shuffle_i32x4::<0b01_00_01_00>(x, y), _mm512_shuffle_i32x4::<0b11_10_11_10>(x, y))
    };
    let (u01, u23) = (pair(q[0], q[1]), pair(q[2], q[3]));
    _mm512_add_epi32(_mm512_shuffle_i32x4::<0b10_00_10_00>(u01, u23), _mm512_shuffle_i32x4::<0b11_01_11_01>(u01, u23))
}

/// `Y = X·Wᵀ + b` for four positions at once, f16 weights (`x`: 4 rows of `cols`,
/// `y`: 4 rows of `b.len()`), in the tiles of [`matmul4_f32`]: each 16 halves of a
/// row are widened once and used for the four positions, so widening
/// (`vcvtph2ps`), which bounds the matrix-vector kernel, is paid a quarter as often
/// per position.
///
/// # Safety
/// The CPU must support AVX-512F, AVX-512BW and AVX-512VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub unsafe fn matmul4_f16(w: &[u16], b: &[f32], x: &[f32], cols: usize, y: &mut [f32]) {
    let rows = b.len();
    assert!(w.len() >= rows * cols && x.len() >= 4 * cols && y.len() >= 4 * rows);
    // SAFETY (both): `four_rows_by_four` passes only pointers to 16 halves (or to the
    // masked lanes) inside rows r..r+4 of w.
    let widen = |p: *const u16| _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(p as *const __m256i) });
    let widen_tail = |p: *const u16, m| _mm512_cvtph_ps(unsafe { _mm256_maskz_loadu_epi16(m, p as *const i16) });
    let mut r = 0;
    while r + 4 <= rows {
        // SAFETY: rows r..r+4 lie inside w (asserted above); `four_rows_by_four` loads
        // 16 halves (or the masked tail) inside them; features as this function's.
        unsafe { four_rows_by_four(w, b, x, cols, y, r, widen, widen_tail) };
        r += 4;
    }
    for r in r..rows {
        let row = &w[r * cols..(r + 1) * cols];
        for p in 0..4 {
            y[p * rows + r] = dot_f16(row, &x[p * cols..(p + 1) * cols]) + b[r];
        }
    }
}

/// `y = W·x + b`, f16 weights widened in registers.
///
/// # Safety
/// The CPU must support AVX-512F, AVX-512BW and AVX-512VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub unsafe fn matvec_f16(w: &[u16], b: &[f32], x: &[f32], y: &mut [f32]) {
    for ((yo, row), bo) in y.iter_mut().zip(w.chunks_exact(x.len())).zip(b) {
        *yo = dot_f16(row, x) + bo;
    }
}

/// `y = (W_q·x_q)·scale_row·x_scale + b`, int8 weights with one scale per row.
///
/// # Safety
/// The CPU must support AVX-512F, AVX-512BW and AVX-512 VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn matvec_i8(w: &[i8], scales: &[f32], b: &[f32], xq: &[i8], x_scale: f32, y: &mut [f32]) {
    super::four_rows_at_a_time(w, scales, b, xq, x_scale, y, |rows, x| dot4_i8(rows, x));
}

/// Rows of at most this many 64-column blocks (2048 columns) get their x blocks
/// prepared once per product instead of once per four rows.
const PREPARED_BLOCKS: usize = 32;

/// `y = (W_q·x_q)·scale_row·x_scale + b` for int8 weights in the packed 4-row layout:
/// each 64-column block of four rows is 256 contiguous bytes, read as one stream.
/// `vpdpbusd` wants u8 × i8, so x enters as |x| and its sign moves onto w. At batch 1
/// the kernel is bound by instructions, not by memory, so |x| and the sign mask are
/// computed once per product (rows up to 2048 columns) rather than once per group.
///
/// # Safety
/// The CPU must support AVX-512F, AVX-512BW, AVX-512VL and AVX-512 VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn matvec_i8_packed(w: &[i8], scales: &[f32], b: &[f32], xq: &[i8], x_scale: f32, y: &mut [f32]) {
    let cols = xq.len();
    let blocks = cols.div_ceil(64);
    // SAFETY: the mask covers only the columns of x that exist.
    let load_x = |blk: usize| unsafe { _mm512_maskz_loadu_epi8(mask64(cols - blk * 64), xq.as_ptr().add(blk * 64)) };
    if blocks <= PREPARED_BLOCKS {
        let mut abs_x = [_mm512_setzero_si512(); PREPARED_BLOCKS];
        let mut negative = [0 as __mmask64; PREPARED_BLOCKS];
        for blk in 0..blocks {
            let xv = load_x(blk);
            abs_x[blk] = _mm512_abs_epi8(xv);
            negative[blk] = _mm512_movepi8_mask(xv);
        }
        // SAFETY: features as this function's.
        unsafe { packed_groups(w, blocks, |blk| (abs_x[blk], negative[blk]), scales, b, x_scale, y) }
    } else {
        let x_block = |blk: usize| {
            let xv = load_x(blk);
            (_mm512_abs_epi8(xv), _mm512_movepi8_mask(xv))
        };
        // SAFETY: features as this function's.
        unsafe { packed_groups(w, blocks, x_block, scales, b, x_scale, y) }
    }
}

/// The body of [`matvec_i8_packed`]: one pass over the packed groups, with x block
/// `blk` given as (|x|, sign mask) by `x_block`. Each group's four dot products are
/// reduced together and scaled as one 4-lane vector, in the scalar twin's order
/// (multiply, multiply, add), so the results match it bit for bit.
///
/// # Safety
/// The CPU must support AVX-512F, AVX-512BW, AVX-512VL and AVX-512 VNNI.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn packed_groups(
    w: &[i8],
    blocks: usize,
    x_block: impl Fn(usize) -> (__m512i, __mmask64),
    scales: &[f32],
    b: &[f32],
    x_scale: f32,
    y: &mut [f32],
) {
    let rows = y.len().min(scales.len()).min(b.len());
    let zero = _mm512_setzero_si512();
    let group_len = blocks * 256;
    let one_group = |group: &[i8], acc: &mut [__m512i; 4]| {
        for blk in 0..blocks {
            let (ax, negative) = x_block(blk);
            for (k, a) in acc.iter_mut().enumerate() {
                // SAFETY: the group holds `blocks` full 256-byte blocks.
                let wv = unsafe { _mm512_loadu_si512(group.as_ptr().add(blk * 256 + k * 64) as *const __m512i) };
                *a = _mm512_dpbusd_epi32(*a, ax, _mm512_mask_sub_epi8(wv, negative, zero, wv));
            }
        }
    };
    // Four groups (sixteen rows) at a time, still read one after the other (one
    // stream: interleaving groups measured slower), so that their sums reduce together
    // and are scaled and stored as one vector. With 256 columns the per-group
    // reduction otherwise costs about as much as the dot products.
    let mut g = 0;
    while (g + 4) * 4 <= rows && (g + 4) * group_len <= w.len() {
        let [mut a0, mut a1, mut a2, mut a3] = [[zero; 4]; 4];
        one_group(&w[g * group_len..], &mut a0);
        one_group(&w[(g + 1) * group_len..], &mut a1);
        one_group(&w[(g + 2) * group_len..], &mut a2);
        one_group(&w[(g + 3) * group_len..], &mut a3);
        let all = [a0, a1, a2, a3];
        let row0 = g * 4;
        // SAFETY: rows row0..row0 + 16 ≤ rows, inside y, scales and b.
        unsafe {
            let dots = _mm512_cvtepi32_ps(reduce16_epi32(core::array::from_fn(|r| all[r / 4][r % 4])));
            let s = _mm512_loadu_ps(scales.as_ptr().add(row0));
            let bias = _mm512_loadu_ps(b.as_ptr().add(row0));
            let r = _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(dots, s), _mm512_set1_ps(x_scale)), bias);
            _mm512_storeu_ps(y.as_mut_ptr().add(row0), r);
        }
        g += 4;
    }
    // The last groups one at a time.
    for (g, group) in w.chunks_exact(group_len).enumerate().skip(g) {
        let row0 = g * 4;
        if row0 >= rows {
            break;
        }
        let mut acc = [zero; 4];
        one_group(group, &mut acc);
        let m = mask16((rows - row0).min(4)) as __mmask8;
        // SAFETY: the mask covers only rows below `rows`, inside y, scales and b.
        unsafe {
            let dots = _mm_cvtepi32_ps(reduce4(acc));
            let s = _mm_maskz_loadu_ps(m, scales.as_ptr().add(row0));
            let bias = _mm_maskz_loadu_ps(m, b.as_ptr().add(row0));
            let r = _mm_add_ps(_mm_mul_ps(_mm_mul_ps(dots, s), _mm_set1_ps(x_scale)), bias);
            _mm_mask_storeu_ps(y.as_mut_ptr().add(row0), m, r);
        }
    }
}

/// Quantizes `x` like [`crate::kernels::quant::quantize`], bit for bit: the same
/// scale, and `cvtps2dq` rounds to nearest even exactly as the scalar twin's
/// add-and-subtract of 1.5·2²³ does.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512BW.
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn quantize(x: &[f32], q: &mut [i8]) -> f32 {
    let n = x.len().min(q.len());
    let mut vmax = _mm512_setzero_ps();
    let mut i = 0;
    while i < n {
        let m = if n - i >= 16 { 0xFFFF } else { mask16(n - i) };
        // SAFETY: the mask covers only lanes below n.
        let v = unsafe { _mm512_maskz_loadu_ps(m, x.as_ptr().add(i)) };
        vmax = _mm512_max_ps(vmax, _mm512_abs_ps(v));
        i += 16;
    }
    let max = _mm512_reduce_max_ps(vmax);
    // Same rule as the scalar twin: a vector too small to scale quantizes to zeros.
    if !(127.0 / max).is_finite() {
        q[..n].fill(0);
        return 0.0;
    }
    let inv = _mm512_set1_ps(127.0 / max);
    let mut i = 0;
    while i < n {
        let m = if n - i >= 16 { 0xFFFF } else { mask16(n - i) };
        // SAFETY: the masked load and store touch only lanes below n.
        unsafe {
            let v = _mm512_maskz_loadu_ps(m, x.as_ptr().add(i));
            let r = _mm512_cvtps_epi32(_mm512_mul_ps(v, inv));
            _mm512_mask_cvtsepi32_storeu_epi8(q.as_mut_ptr().add(i) as *mut _, m, r);
        }
        i += 16;
    }
    max / 127.0
}

/// One head's recurrent attention step, like
/// [`crate::kernels::scalar::attention_head_step`] and with its exact results: the
/// state update and the readout share one pass over S, 16 value columns at a time,
/// with the same multiply-then-add order (no FMA).
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn attention_head_step(
    s: &mut [f32],
    z: &mut [f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    eps: f32,
) {
    let (dk, dv) = (k.len(), v.len());
    for (zd, kd) in z.iter_mut().zip(k) {
        *zd += kd;
    }
    let mut j = 0;
    while j < dv {
        let m = if dv - j >= 16 { 0xFFFF } else { mask16(dv - j) };
        // SAFETY: every masked access touches columns j..min(j + 16, dv) of v, out and
        // of rows d < dk of s, which is dk × dv.
        unsafe {
            let vv = _mm512_maskz_loadu_ps(m, v.as_ptr().add(j));
            let mut acc = _mm512_setzero_ps();
            for d in 0..dk {
                let row = s.as_mut_ptr().add(d * dv + j);
                let updated = _mm512_add_ps(_mm512_maskz_loadu_ps(m, row), _mm512_mul_ps(_mm512_set1_ps(k[d]), vv));
                _mm512_mask_storeu_ps(row, m, updated);
                acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_set1_ps(q[d]), updated));
            }
            _mm512_mask_storeu_ps(out.as_mut_ptr().add(j), m, acc);
        }
        j += 16;
    }
    crate::kernels::scalar::divide_by_normaliser(out, q, z, eps);
}

/// Sums of four i32 vectors, one per lane 0..4 of the result (lanes 4.. are 0).
#[inline]
#[target_feature(enable = "avx512f")]
fn reduce4(a: [__m512i; 4]) -> __m128i {
    // Pairwise interleave-and-add, then fold the four 128-bit lanes together.
    let ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a[0], a[1]), _mm512_unpackhi_epi32(a[0], a[1]));
    let cd = _mm512_add_epi32(_mm512_unpacklo_epi32(a[2], a[3]), _mm512_unpackhi_epi32(a[2], a[3]));
    let abcd = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
    let half = _mm256_add_epi32(_mm512_castsi512_si256(abcd), _mm512_extracti64x4_epi64(abcd, 1));
    _mm_add_epi32(_mm256_castsi256_si128(half), _mm256_extracti128_si256(half, 1))
}

/// Columns of the weight panel the broadcast kernel rearranges at a time: 16 rows of
/// it (16 KB) stay in L1 next to the activations they meet.
const PANEL_COLS: usize = 1024;
/// Positions whose activation sums are kept at a time.
const POSITION_CHUNK: usize = 64;

/// `Y = X_q·W_qᵀ` scaled, for `t` quantized rows (`xq`: `[t, cols]`, `xs`: `[t]`) and
/// int8 weights in the packed 4-row layout; `y` is `[t, rows]`.
///
/// Sixteen weight rows are first rearranged (on the stack) into the panel layout of
/// [`crate::kernels::panels`]: one 64-byte vector holds four columns of all sixteen
/// rows; each `vpdpbusd` then multiplies it by four bytes of one position broadcast to
/// every lane, and its sixteen lanes are the sixteen rows' sums: no horizontal
/// reduction anywhere. `vpdpbusd` wants u8 × i8, so the weights are stored as w + 128
/// and 128 · Σx is taken off each position's sums; the integer result, and hence y,
/// equals the matrix-vector kernel's exactly. A prepared model skips the
/// rearrangement: [`matmul_i8_panels`].
///
/// # Safety
/// The CPU must support AVX-512F, AVX-512BW, AVX-512VL and AVX-512 VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul_i8_packed(w: &[i8], scales: &[f32], b: &[f32], xq: &[i8], xs: &[f32], cols: usize, y: &mut [f32]) {
    let rows = b.len();
    let group_len = cols.div_ceil(64) * 256;
    let groups = rows.div_ceil(4);
    assert!(w.len() >= groups * group_len);
    // SAFETY: the CPU features are the caller's promise; w holds every group.
    unsafe { broadcast_matmul(Panels::Rearrange { w, group_len, groups }, scales, b, xq, xs, cols, y) }
}

/// As [`matmul_i8_packed`], the weights already in panels
/// ([`crate::kernels::panels::write_panels`], done once by the CPU backend's prepare).
///
/// # Safety
/// The CPU must support AVX-512F, AVX-512BW, AVX-512VL and AVX-512 VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul_i8_panels(
    panels: &[u8],
    scales: &[f32],
    b: &[f32],
    xq: &[i8],
    xs: &[f32],
    cols: usize,
    y: &mut [f32],
) {
    assert!(panels.len() >= crate::kernels::panels::panels_len(b.len(), cols));
    // SAFETY: the CPU features are the caller's promise; the panels cover the matrix.
    unsafe { broadcast_matmul(Panels::Prepared(panels), scales, b, xq, xs, cols, y) }
}

/// Where the broadcast kernel's sixteen-row panels come from.
#[derive(Clone, Copy)]
enum Panels<'a> {
    /// Rearranged from the packed 4-row layout, one panel at a time.
    Rearrange { w: &'a [i8], group_len: usize, groups: usize },
    /// Written once, whole ([`crate::kernels::panels`]).
    Prepared(&'a [u8]),
}

/// The loops of the broadcast kernel: positions in chunks, sixteen rows at a time,
/// [`PANEL_COLS`] columns at a time.
///
/// SAFETY (the caller's): the CPU runs the four AVX-512 features above, and the
/// panels (rearranged or prepared) cover the matrix `b.len()` rows by `cols`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn broadcast_matmul(
    source: Panels,
    scales: &[f32],
    b: &[f32],
    xq: &[i8],
    xs: &[f32],
    cols: usize,
    y: &mut [f32],
) {
    let (t, rows) = (xs.len(), b.len());
    assert!(xq.len() >= t * cols && y.len() >= t * rows && scales.len() >= rows);
    let block_len = crate::kernels::panels::block_len(cols);
    let mut buffer = crate::Aligned([0u8; 16 * PANEL_COLS]);
    for p0 in (0..t).step_by(POSITION_CHUNK) {
        let positions = (t - p0).min(POSITION_CHUNK);
        // What the + 128 on every weight adds to each position's sums: 128 · Σx.
        let mut offsets = [0i32; POSITION_CHUNK];
        for (j, o) in offsets.iter_mut().enumerate().take(positions) {
            *o = column_sum(&xq[(p0 + j) * cols..(p0 + j + 1) * cols]).wrapping_mul(128);
        }
        for r0 in (0..rows).step_by(16) {
            for c0 in (0..cols).step_by(PANEL_COLS) {
                let panel_cols = (cols - c0).min(PANEL_COLS);
                // Four columns of sixteen rows per 64 bytes, for whole 64-column blocks.
                let panel_len = panel_cols.div_ceil(64) * 1024;
                let panel: &[u8] = match source {
                    Panels::Rearrange { w, group_len, groups } => {
                        // SAFETY: rows r0.. are groups r0/4.. of w (checked by the
                        // caller); the buffer holds PANEL_COLS columns of 16 rows.
                        unsafe { rearrange_sixteen_rows(w, group_len, groups, r0 / 4, c0, panel_cols, &mut buffer.0) };
                        &buffer.0[..panel_len]
                    }
                    // Block r0 / 16 starts at r0 / 16 · block_len; column c0 at c0 / 4 · 64.
                    Panels::Prepared(all) => &all[(r0 / 16) * block_len + c0 * 16..][..panel_len],
                };
                let tile =
                    Tile { panel, xq, cols, c0, panel_cols, rows, r0, first: c0 == 0, last: c0 + panel_cols == cols };
                let mut p = 0;
                while p < positions {
                    let left = positions - p;
                    // SAFETY: each call covers positions p0 + p .. + P, all below t.
                    unsafe {
                        p += if left >= 16 {
                            tile.positions::<16>(p0 + p, &offsets[p..], xs, scales, b, y)
                        } else if left >= 4 {
                            tile.positions::<4>(p0 + p, &offsets[p..], xs, scales, b, y)
                        } else {
                            tile.positions::<1>(p0 + p, &offsets[p..], xs, scales, b, y)
                        };
                    }
                }
            }
        }
    }
}

/// Σ x over one quantized position, as i32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn column_sum(x: &[i8]) -> i32 {
    let ones = _mm512_set1_epi8(1);
    let mut acc = _mm512_setzero_si512();
    for (i, chunk) in x.chunks(64).enumerate() {
        // SAFETY: the mask covers only the chunk's bytes.
        let v = unsafe { _mm512_maskz_loadu_epi8(mask64(chunk.len()), x.as_ptr().add(i * 64)) };
        acc = _mm512_dpbusd_epi32(acc, ones, v);
    }
    _mm512_reduce_add_epi32(acc)
}

/// Copies columns `c0 .. c0 + n` of the sixteen rows from packed group `g0` on into
/// `panel` as `[column / 4][row][4 bytes]`, each byte + 128. Rows past the matrix
/// (missing groups) are zero, then 128; their sums are never stored.
///
/// # Safety
/// `w` holds `groups` packed groups of `group_len` bytes; `c0` is a multiple of 64;
/// `n ≤ PANEL_COLS`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn rearrange_sixteen_rows(
    w: &[i8],
    group_len: usize,
    groups: usize,
    g0: usize,
    c0: usize,
    n: usize,
    panel: &mut [u8; 16 * PANEL_COLS],
) {
    let flip = _mm512_set1_epi8(-128);
    for blk in 0..n.div_ceil(64) {
        let block = c0 / 64 + blk;
        // Row 4i + k of the sixteen: group g0 + i, row k, this 64-column block, read
        // as 16 dwords (4 columns each).
        // SAFETY: a present group holds every block of its four rows.
        let r: [__m512i; 16] = core::array::from_fn(|row| {
            let g = g0 + row / 4;
            if g < groups {
                unsafe {
                    _mm512_loadu_si512(w.as_ptr().add(g * group_len + block * 256 + (row % 4) * 64) as *const __m512i)
                }
            } else {
                _mm512_setzero_si512()
            }
        });
        // A 16 × 16 transpose of dwords (a dword is four columns): interleave pairs
        // of rows, then pairs of pairs; u[4i + m] then holds, in 128-bit lane L,
        // dword 4L + m of rows 4i..4i + 4.
        let t: [__m512i; 16] = core::array::from_fn(|j| {
            let (a, b) = (r[j / 2 * 2], r[j / 2 * 2 + 1]);
            if j % 2 == 0 {
                _mm512_unpacklo_epi32(a, b)
            } else {
                _mm512_unpackhi_epi32(a, b)
            }
        });
        let u: [__m512i; 16] = core::array::from_fn(|j| {
            let (i, m) = (j / 4, j % 4);
            let (a, b) = (t[4 * i + m / 2], t[4 * i + m / 2 + 2]);
            if m % 2 == 0 {
                _mm512_unpacklo_epi64(a, b)
            } else {
                _mm512_unpackhi_epi64(a, b)
            }
        });
        // Then for each m a 4 × 4 transpose of 128-bit lanes gives dwords m, 4 + m,
        // 8 + m and 12 + m of all sixteen rows.
        for m in 0..4 {
            let (a, b, c, d) = (u[m], u[4 + m], u[8 + m], u[12 + m]);
            let ab_lo = _mm512_shuffle_i32x4::<0x44>(a, b);
            let ab_hi = _mm512_shuffle_i32x4::<0xEE>(a, b);
            let cd_lo = _mm512_shuffle_i32x4::<0x44>(c, d);
            let cd_hi = _mm512_shuffle_i32x4::<0xEE>(c, d);
            let dwords = [
                _mm512_shuffle_i32x4::<0x88>(ab_lo, cd_lo),
                _mm512_shuffle_i32x4::<0xDD>(ab_lo, cd_lo),
                _mm512_shuffle_i32x4::<0x88>(ab_hi, cd_hi),
                _mm512_shuffle_i32x4::<0xDD>(ab_hi, cd_hi),
            ];
            for (lane, v) in dwords.into_iter().enumerate() {
                let chunk = blk * 16 + 4 * lane + m;
                // SAFETY: chunk < PANEL_COLS / 4, so the 64 bytes are inside the panel.
                unsafe {
                    _mm512_store_si512(panel.as_mut_ptr().add(chunk * 64) as *mut __m512i, _mm512_xor_si512(v, flip))
                };
            }
        }
    }
}

/// Sixteen rows (`r0..`) and one column panel (`c0..c0 + panel_cols`) of the broadcast
/// kernel, ready for its positions.
struct Tile<'a> {
    /// `[column / 4][row][4 bytes]`, at least ⌈panel_cols / 4⌉ · 64 bytes.
    panel: &'a [u8],
    xq: &'a [i8],
    cols: usize,
    c0: usize,
    panel_cols: usize,
    rows: usize,
    r0: usize,
    /// The first panel starts the sums; later ones continue those kept in y.
    first: bool,
    /// The last panel finishes the sums into y; earlier ones keep them there as i32.
    last: bool,
}

impl Tile<'_> {
    /// Positions `p .. p + P` through this tile; returns P.
    ///
    /// # Safety
    /// `p + P ≤ t`, where xq, xs and y hold t positions; `offsets` holds P entries.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn positions<const P: usize>(
        &self,
        p: usize,
        offsets: &[i32],
        xs: &[f32],
        scales: &[f32],
        b: &[f32],
        y: &mut [f32],
    ) -> usize {
        let (cols, rows) = (self.cols, self.rows);
        let live = (rows - self.r0).min(16);
        let m: __mmask16 = if live == 16 { !0 } else { mask16(live) };
        let yp = y.as_mut_ptr();
        // SAFETY (for every use): position p + j < t, row r0 < rows: inside y.
        let out = |j: usize| unsafe { yp.add((p + j) * rows + self.r0) };
        let mut acc: [__m512i; P] = core::array::from_fn(|j| {
            if self.first {
                _mm512_setzero_si512()
            } else {
                // SAFETY: the masked lanes are rows of position p + j in y.
                unsafe { _mm512_maskz_loadu_epi32(m, out(j) as *const i32) }
            }
        });
        // SAFETY (for every use): position p + j < t, column c0 < cols: inside xq.
        let x = |j: usize| unsafe { self.xq.as_ptr().add((p + j) * cols + self.c0) };
        // Four whole columns of x per step; a last partial four (cols not a multiple
        // of 4) is read byte by byte below, never past the row.
        let whole = self.panel_cols / 4;
        for c in 0..whole {
            // SAFETY: c < panel_cols / 4, inside the panel; 4c + 4 ≤ panel_cols, inside
            // each position's row. Prepared panels need not be 64-aligned: loadu.
            let wv = unsafe { _mm512_loadu_si512(self.panel.as_ptr().add(c * 64) as *const __m512i) };
            for (j, a) in acc.iter_mut().enumerate() {
                let four = unsafe { (x(j).add(4 * c) as *const i32).read_unaligned() };
                *a = _mm512_dpbusd_epi32(*a, wv, _mm512_set1_epi32(four));
            }
        }
        let tail = self.panel_cols % 4;
        if tail != 0 {
            // SAFETY: as above for the panel; the bytes read are the row's last `tail`.
            let wv = unsafe { _mm512_loadu_si512(self.panel.as_ptr().add(whole * 64) as *const __m512i) };
            for (j, a) in acc.iter_mut().enumerate() {
                let mut four = [0i8; 4];
                for (k, f) in four.iter_mut().enumerate().take(tail) {
                    *f = unsafe { *x(j).add(4 * whole + k) };
                }
                *a = _mm512_dpbusd_epi32(*a, wv, _mm512_set1_epi32(i32::from_le_bytes(four.map(|v| v as u8))));
            }
        }
        // SAFETY: the mask covers rows r0.. below `rows`: inside scales, b and each
        // position's row of y.
        unsafe {
            if !self.last {
                for (j, a) in acc.iter().enumerate() {
                    _mm512_mask_storeu_epi32(out(j) as *mut i32, m, *a);
                }
                return P;
            }
            let s = _mm512_maskz_loadu_ps(m, scales.as_ptr().add(self.r0));
            let bias = _mm512_maskz_loadu_ps(m, b.as_ptr().add(self.r0));
            for (j, a) in acc.iter().enumerate() {
                // The scalar twin's order: multiply, multiply, add.
                let dots = _mm512_cvtepi32_ps(_mm512_sub_epi32(*a, _mm512_set1_epi32(offsets[j])));
                let r = _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(dots, s), _mm512_set1_ps(xs[p + j])), bias);
                _mm512_mask_storeu_ps(out(j), m, r);
            }
        }
        P
    }
}

/// φ(x) = elu(x) + 1 in place, like [`crate::kernels::scalar::elu_plus_one`] and with
/// its exact results: the same exponential, operation for operation, 16 lanes at a time.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn elu_plus_one(x: &mut [f32]) {
    use crate::kernels::scalar::exp_poly::*;
    let n = x.len();
    let one = _mm512_set1_ps(1.0);
    let mut i = 0;
    while i < n {
        let m = if n - i >= 16 { 0xFFFF } else { mask16(n - i) };
        // SAFETY: the masked load and store touch only lanes below n.
        unsafe {
            let v = _mm512_maskz_loadu_ps(m, x.as_ptr().add(i));
            // Clamp as the twin does: max(LOWEST, v) keeps v when v is NaN.
            let c = _mm512_max_ps(_mm512_set1_ps(LOWEST), v);
            let k = _mm512_sub_ps(
                _mm512_add_ps(_mm512_mul_ps(c, _mm512_set1_ps(LOG2_E)), _mm512_set1_ps(ROUND)),
                _mm512_set1_ps(ROUND),
            );
            let r = _mm512_sub_ps(
                _mm512_sub_ps(c, _mm512_mul_ps(k, _mm512_set1_ps(LN2_HI))),
                _mm512_mul_ps(k, _mm512_set1_ps(LN2_LO)),
            );
            let mut p = _mm512_set1_ps(P[0]);
            for &coef in &P[1..] {
                p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(coef));
            }
            let e = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(p, r), r), r), one);
            let pow2 = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
                _mm512_cvtps_epi32(k),
                _mm512_set1_epi32(127),
            )));
            let positive = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, _mm512_setzero_ps());
            let out = _mm512_mask_add_ps(_mm512_mul_ps(e, pow2), positive, v, one);
            _mm512_mask_storeu_ps(x.as_mut_ptr().add(i), m, out);
        }
        i += 16;
    }
}
