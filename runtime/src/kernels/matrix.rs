//! A weight matrix as the kernels see it, borrowed straight from the model file.

/// The stored values of a matrix.
#[derive(Debug, Clone, Copy)]
pub enum Weights<'a> {
    /// Row-major f32.
    F32(&'a [f32]),
    /// Row-major IEEE binary16 bit patterns.
    F16(&'a [u16]),
    /// Row-major symmetric int8: `w ≈ q · scale`; one scale per row (`block == 0`)
    /// or per `block` columns of a row.
    I8 { q: &'a [i8], scales: &'a [f32], block: usize },
    /// Symmetric int8 with one scale per row, packed for the 4-row kernels: rows in
    /// groups of [`PACK_ROWS`], each group stored as [`PACK_COLS`]-column blocks of its
    /// four rows back to back, rows and columns zero-padded (`.lrt` layout 1). A 4-row
    /// pass then reads one contiguous stream.
    I8Packed { q: &'a [i8], scales: &'a [f32] },
}

/// Rows per group in the packed int8 layout: the file's ([`crate::tensor`]), which
/// the kernels read as it is. A kernel wanting another tile rearranges the file's
/// layout into its own (a backend's `prepare`), not the other way around.
pub const PACK_ROWS: usize = crate::tensor::INT8_PACK_ROWS;
/// Columns per block in the packed int8 layout.
pub const PACK_COLS: usize = crate::tensor::INT8_PACK_COLS;

/// Bytes of a packed int8 matrix: rows and columns padded to the group and block size.
pub fn packed_len(rows: usize, cols: usize) -> usize {
    rows.next_multiple_of(PACK_ROWS) * cols.next_multiple_of(PACK_COLS)
}

/// Packs row-major int8 `[rows, cols]` into the 4-row layout (`out` has `packed_len` bytes).
pub fn pack_rows(q: &[i8], rows: usize, cols: usize, out: &mut [i8]) {
    let blocks = cols.div_ceil(PACK_COLS);
    out.fill(0);
    for r in 0..rows {
        let (g, k) = (r / PACK_ROWS, r % PACK_ROWS);
        for (blk, chunk) in q[r * cols..(r + 1) * cols].chunks(PACK_COLS).enumerate() {
            let at = ((g * blocks + blk) * PACK_ROWS + k) * PACK_COLS;
            out[at..at + chunk.len()].copy_from_slice(chunk);
        }
    }
}

/// A `[rows, cols]` matrix.
#[derive(Debug, Clone, Copy)]
pub struct Matrix<'a> {
    pub weights: Weights<'a>,
    pub rows: usize,
    pub cols: usize,
    /// Packed int8 weights rearranged once by a backend's prepare for its path's
    /// panel kernel ([`super::panels`]); None where nothing was prepared.
    pub panels: Option<&'a [u8]>,
}

impl<'a> Matrix<'a> {
    /// The matrix as stored, nothing prepared.
    pub fn new(weights: Weights<'a>, rows: usize, cols: usize) -> Matrix<'a> {
        Matrix { weights, rows, cols, panels: None }
    }

    pub fn is_int8(&self) -> bool {
        matches!(self.weights, Weights::I8 { .. } | Weights::I8Packed { .. })
    }
}
