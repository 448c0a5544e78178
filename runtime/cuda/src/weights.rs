//! A `.lrt` matrix rearranged, on the host, into the layout the GPU kernels read
//! (kernels.cu's header): the file's layout is an input here, as it is for the CPU
//! backend's `prepare`. Uploaded once; nothing is rearranged per step.

use crate::error::CudaError;
use linrt::kernels::{Matrix, Weights, PACK_COLS, PACK_ROWS};

/// A matrix in a device layout, still on the host.
#[derive(Debug, Clone, PartialEq)]
pub enum HostMatrix {
    /// `[rows, cols]` f32.
    F32 { values: Vec<f32>, rows: usize, cols: usize },
    /// `[rows, ceil(cols / 2)]` words of two IEEE halves (column 2p low, 2p + 1 high;
    /// an odd last column pairs with zero).
    F16 { pairs: Vec<u32>, rows: usize, cols: usize },
    /// `[rows, ceil(cols / 4)]` words of four int8 (column 4w in the low byte), rows
    /// zero-padded; `scales`: one per row (`block` 0) or per `block` columns.
    I8 { words: Vec<u32>, scales: Vec<f32>, block: usize, rows: usize, cols: usize },
}

impl HostMatrix {
    pub fn rows(&self) -> usize {
        match self {
            HostMatrix::F32 { rows, .. } | HostMatrix::F16 { rows, .. } | HostMatrix::I8 { rows, .. } => *rows,
        }
    }

    pub fn cols(&self) -> usize {
        match self {
            HostMatrix::F32 { cols, .. } | HostMatrix::F16 { cols, .. } | HostMatrix::I8 { cols, .. } => *cols,
        }
    }

    /// Bytes it takes on the device.
    pub fn device_bytes(&self) -> usize {
        match self {
            HostMatrix::F32 { values, .. } => 4 * values.len(),
            HostMatrix::F16 { pairs, .. } => 4 * pairs.len(),
            HostMatrix::I8 { words, scales, .. } => 4 * (words.len() + scales.len()),
        }
    }
}

/// `m` in the device layout of its type.
pub fn repack(m: &Matrix) -> Result<HostMatrix, CudaError> {
    let (rows, cols) = (m.rows, m.cols);
    Ok(match m.weights {
        Weights::F32(values) => HostMatrix::F32 { values: values[..rows * cols].to_vec(), rows, cols },
        Weights::F16(bits) => {
            let k2 = cols.div_ceil(2);
            let mut pairs = vec![0u32; rows * k2];
            for (row, out) in bits.chunks_exact(cols).take(rows).zip(pairs.chunks_exact_mut(k2)) {
                for (p, word) in out.iter_mut().enumerate() {
                    let lo = row[2 * p] as u32;
                    let hi = row.get(2 * p + 1).map_or(0, |&h| h as u32);
                    *word = lo | hi << 16;
                }
            }
            HostMatrix::F16 { pairs, rows, cols }
        }
        Weights::I8 { q, scales, block } => {
            if block % 4 != 0 {
                return Err(CudaError::Unsupported(format!(
                    "int8 blocks of {block} columns (the dp4a kernel needs a multiple of 4; convert with --int8-block 0 or a multiple of 4)"
                )));
            }
            let words = pack_words(rows, cols, |r, c| q[r * cols + c]);
            let per_row = if block == 0 { 1 } else { cols.div_ceil(block) };
            HostMatrix::I8 { words, scales: scales[..rows * per_row].to_vec(), block, rows, cols }
        }
        Weights::I8Packed { q, scales } => {
            // The file's 4-row groups of PACK_COLS-column blocks, back to row-major.
            let blocks = cols.div_ceil(PACK_COLS);
            let at = |r: usize, c: usize| {
                let (g, k) = (r / PACK_ROWS, r % PACK_ROWS);
                q[((g * blocks + c / PACK_COLS) * PACK_ROWS + k) * PACK_COLS + c % PACK_COLS]
            };
            let words = pack_words(rows, cols, at);
            HostMatrix::I8 { words, scales: scales[..rows].to_vec(), block: 0, rows, cols }
        }
    })
}

/// Row-major int8 values as words of four, each row zero-padded to whole words.
fn pack_words(rows: usize, cols: usize, value: impl Fn(usize, usize) -> i8) -> Vec<u32> {
    let k4 = cols.div_ceil(4);
    let mut words = vec![0u32; rows * k4];
    for r in 0..rows {
        for c in 0..cols {
            words[r * k4 + c / 4] |= (value(r, c) as u8 as u32) << (8 * (c % 4));
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use linrt::kernels::{pack_rows, packed_len};

    fn int8(rows: usize, cols: usize) -> Vec<i8> {
        (0..rows * cols).map(|i| ((i * 37 + 11) % 255) as i32 as i8).collect()
    }

    fn byte(words: &[u32], k4: usize, r: usize, c: usize) -> i8 {
        (words[r * k4 + c / 4] >> (8 * (c % 4))) as u8 as i8
    }

    /// The file's packed 4-row layout and its row-major one give the same words, on
    /// sizes that pad both rows and columns.
    #[test]
    fn packed_int8_unpacks_to_row_major() {
        for (rows, cols) in [(1, 1), (5, 3), (7, 33), (13, 70), (64, 144)] {
            let q = int8(rows, cols);
            let scales: Vec<f32> = (0..rows).map(|r| r as f32 + 0.5).collect();
            let mut packed = vec![0i8; packed_len(rows, cols)];
            pack_rows(&q, rows, cols, &mut packed);
            let plain = repack(&Matrix::new(Weights::I8 { q: &q, scales: &scales, block: 0 }, rows, cols)).unwrap();
            let from_packed =
                repack(&Matrix::new(Weights::I8Packed { q: &packed, scales: &scales }, rows, cols)).unwrap();
            assert_eq!(plain, from_packed, "{rows}×{cols}");
            let HostMatrix::I8 { words, .. } = plain else { panic!("not int8") };
            let k4 = cols.div_ceil(4);
            assert_eq!(words.len(), rows * k4);
            for r in 0..rows {
                for c in 0..k4 * 4 {
                    let want = if c < cols { q[r * cols + c] } else { 0 };
                    assert_eq!(byte(&words, k4, r, c), want, "{rows}×{cols} at {r},{c}");
                }
            }
        }
    }

    #[test]
    fn half_pairs_keep_column_order_and_pad_odd_rows() {
        let bits: Vec<u16> = (1..=6).collect(); // 2 × 3
        let m = repack(&Matrix::new(Weights::F16(&bits), 2, 3)).unwrap();
        assert_eq!(m, HostMatrix::F16 { pairs: vec![1 | 2 << 16, 3, 4 | 5 << 16, 6], rows: 2, cols: 3 });
        assert_eq!(m.device_bytes(), 16);
    }

    #[test]
    fn blocks_not_a_multiple_of_four_are_refused_by_name() {
        let q = int8(2, 10);
        let scales = [1.0f32; 4];
        let e = repack(&Matrix::new(Weights::I8 { q: &q, scales: &scales, block: 5 }, 2, 10)).unwrap_err();
        assert!(e.to_string().contains("int8 blocks of 5 columns"), "{e}");
        let m = repack(&Matrix::new(Weights::I8 { q: &q, scales: &scales, block: 8 }, 2, 10)).unwrap();
        let HostMatrix::I8 { scales, block, .. } = m else { panic!() };
        assert_eq!((scales.len(), block), (4, 8));
    }
}
