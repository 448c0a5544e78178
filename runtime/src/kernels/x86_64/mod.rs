//! x86_64 kernels: AVX2 (+FMA, F16C) and AVX-512 (F, BW, VL, VNNI).

pub mod avx2;
pub mod avx512;

/// Runs a four-row int8 dot kernel over row-major `[rows, cols]` weights:
/// `y[r] = dot · scale_r · x_scale + b_r`. The last block repeats its final row to
/// stay in bounds and drops the extra results. Shared by the AVX2 and AVX-512 paths,
/// which pass their own `dot4`.
#[inline(always)]
pub(crate) fn four_rows_at_a_time(
    w: &[i8],
    scales: &[f32],
    b: &[f32],
    xq: &[i8],
    x_scale: f32,
    y: &mut [f32],
    dot4: impl Fn([&[i8]; 4], &[i8]) -> [i32; 4],
) {
    let cols = xq.len();
    let rows = y.len();
    let mut r = 0;
    while r < rows {
        let row = |k: usize| {
            let rr = (r + k).min(rows - 1);
            &w[rr * cols..(rr + 1) * cols]
        };
        let dots = dot4([row(0), row(1), row(2), row(3)], xq);
        for (k, d) in dots.iter().enumerate().take(rows - r) {
            y[r + k] = *d as f32 * scales[r + k] * x_scale + b[r + k];
        }
        r += 4;
    }
}
