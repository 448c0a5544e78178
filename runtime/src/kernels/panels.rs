//! Int8 weights rearranged once for a matrix-matrix kernel that wants sixteen rows
//! side by side (the AVX-512 `vpdpbusd` kernel): what a backend's `prepare` writes,
//! so that the kernel no longer rearranges the file's 4-row layout on every call.
//!
//! Layout, for a `[rows, cols]` matrix: rows in blocks of [`PANEL_ROWS`], each block
//! stored as `[column / 4][row of the block][4 bytes]` over the columns padded to
//! [`super::PACK_COLS`]. One 64-byte vector then holds four columns of all sixteen
//! rows. Each byte is the weight + 128 (`vpdpbusd` multiplies u8 by i8: the kernel
//! takes 128 · Σx off each sum). Rows and columns past the matrix hold 128 (weight 0).

use super::matrix::{PACK_COLS, PACK_ROWS};

/// Rows side by side in one panel.
pub const PANEL_ROWS: usize = 16;

/// Bytes of the panels of a `[rows, cols]` matrix.
pub fn panels_len(rows: usize, cols: usize) -> usize {
    rows.div_ceil(PANEL_ROWS) * PANEL_ROWS * cols.next_multiple_of(PACK_COLS)
}

/// Bytes of one block of sixteen rows.
pub fn block_len(cols: usize) -> usize {
    PANEL_ROWS * cols.next_multiple_of(PACK_COLS)
}

/// Rearranges packed int8 weights ([`super::pack_rows`]'s layout, `[rows, cols]`)
/// into panels; `out` holds [`panels_len`] bytes.
pub fn write_panels(packed: &[i8], rows: usize, cols: usize, out: &mut [u8]) {
    let blocks = cols.div_ceil(PACK_COLS);
    let group_len = blocks * PACK_ROWS * PACK_COLS;
    let groups = rows.div_ceil(PACK_ROWS);
    for (rb, block) in out[..panels_len(rows, cols)].chunks_exact_mut(block_len(cols)).enumerate() {
        // A block is exactly its padded columns' four-column chunks.
        for (chunk, four_columns) in block.chunks_exact_mut(PANEL_ROWS * 4).enumerate() {
            for (i, bytes) in four_columns.chunks_exact_mut(4).enumerate() {
                let r = rb * PANEL_ROWS + i;
                let (g, k) = (r / PACK_ROWS, r % PACK_ROWS);
                for (j, byte) in bytes.iter_mut().enumerate() {
                    let c = 4 * chunk + j;
                    // Groups past the matrix are not in the file: weight 0.
                    let w = if g < groups {
                        packed[g * group_len + ((c / PACK_COLS) * PACK_ROWS + k) * PACK_COLS + c % PACK_COLS]
                    } else {
                        0
                    };
                    *byte = (w as u8) ^ 0x80;
                }
            }
        }
    }
}

/// `Y = X_q·W_qᵀ` scaled, read from panels: the scalar twin of the panel kernels,
/// the same bits as [`super::scalar::matvec_i8_packed`] row by row (`xq`: `[t, cols]`,
/// `xs`: `[t]`, `y`: `[t, rows]`).
pub fn matmul_i8_panels(panels: &[u8], scales: &[f32], b: &[f32], xq: &[i8], xs: &[f32], cols: usize, y: &mut [f32]) {
    let rows = b.len();
    for ((x, &x_scale), yt) in xq.chunks_exact(cols).zip(xs).zip(y.chunks_exact_mut(rows)) {
        for (r, yo) in yt.iter_mut().enumerate() {
            let block = &panels[(r / PANEL_ROWS) * block_len(cols)..];
            let i = r % PANEL_ROWS;
            let acc: i32 = x
                .iter()
                .enumerate()
                .map(|(c, &v)| {
                    let w = (block[(c / 4) * PANEL_ROWS * 4 + i * 4 + c % 4] ^ 0x80) as i8;
                    w as i32 * v as i32
                })
                .sum();
            *yo = acc as f32 * scales[r] * x_scale + b[r];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{pack_rows, packed_len, scalar};
    use crate::rng::Rng;

    /// Every shape class: rows below, at and past a block of 16 and a group of 4;
    /// columns below, at and past a 64-column block, and not a multiple of 4.
    const SHAPES: &[(usize, usize)] = &[(1, 1), (3, 5), (16, 64), (17, 63), (20, 130), (33, 257), (64, 1030)];

    fn packed(rng: &mut Rng, rows: usize, cols: usize) -> Vec<i8> {
        let q: Vec<i8> = (0..rows * cols).map(|_| (rng.next_u64() % 255) as i8).collect();
        let mut out = vec![0i8; packed_len(rows, cols)];
        pack_rows(&q, rows, cols, &mut out);
        out
    }

    #[test]
    fn panels_hold_each_weight_plus_128_at_its_row_and_column() {
        let mut rng = Rng::seeded(7);
        for &(rows, cols) in SHAPES {
            let q: Vec<i8> = (0..rows * cols).map(|_| (rng.next_u64() % 255) as i8).collect();
            let mut p = vec![0i8; packed_len(rows, cols)];
            pack_rows(&q, rows, cols, &mut p);
            let mut panels = vec![0u8; panels_len(rows, cols)];
            write_panels(&p, rows, cols, &mut panels);
            let padded_rows = rows.div_ceil(PANEL_ROWS) * PANEL_ROWS;
            for r in 0..padded_rows {
                for c in 0..cols.next_multiple_of(PACK_COLS) {
                    let at = (r / PANEL_ROWS) * block_len(cols) + (c / 4) * 64 + (r % PANEL_ROWS) * 4 + c % 4;
                    let w = if r < rows && c < cols { q[r * cols + c] } else { 0 };
                    assert_eq!(panels[at], (w as i16 + 128) as u8, "{rows}×{cols} at ({r}, {c})");
                }
            }
        }
    }

    #[test]
    fn panel_twin_equals_the_packed_matrix_vector_twin_bit_for_bit() {
        let mut rng = Rng::seeded(11);
        for &(rows, cols) in SHAPES {
            let p = packed(&mut rng, rows, cols);
            let mut panels = vec![0u8; panels_len(rows, cols)];
            write_panels(&p, rows, cols, &mut panels);
            let scales: Vec<f32> = (0..rows).map(|_| 0.001 + 0.02 * rng.next_f32()).collect();
            let b: Vec<f32> = (0..rows).map(|_| 2.0 * rng.next_f32() - 1.0).collect();
            let t = 5;
            let xq: Vec<i8> = (0..t * cols).map(|_| (rng.next_u64() % 255) as i8).collect();
            let xs: Vec<f32> = (0..t).map(|_| 0.001 + 0.1 * rng.next_f32()).collect();
            let mut y = vec![0f32; t * rows];
            matmul_i8_panels(&panels, &scales, &b, &xq, &xs, cols, &mut y);
            for p_ in 0..t {
                let mut want = vec![0f32; rows];
                scalar::matvec_i8_packed(&p, &scales, &b, &xq[p_ * cols..(p_ + 1) * cols], xs[p_], &mut want);
                assert_eq!(
                    y[p_ * rows..(p_ + 1) * rows].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{rows}×{cols}, position {p_}"
                );
            }
        }
    }
}
