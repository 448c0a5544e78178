//! A weight matrix as the kernels see it: row-major `[rows, cols]` in one of the
//! three stored element types, borrowed straight from the model file.

/// The stored values of a matrix.
#[derive(Debug, Clone, Copy)]
pub enum Weights<'a> {
    F32(&'a [f32]),
    /// IEEE binary16 bit patterns.
    F16(&'a [u16]),
    /// Symmetric int8: `w ≈ q · scale`; one scale per row (`block == 0`) or per
    /// `block` columns of a row.
    I8 {
        q: &'a [i8],
        scales: &'a [f32],
        block: usize,
    },
}

/// A `[rows, cols]` matrix.
#[derive(Debug, Clone, Copy)]
pub struct Matrix<'a> {
    pub weights: Weights<'a>,
    pub rows: usize,
    pub cols: usize,
}

impl Matrix<'_> {
    /// Scales per row of an int8 matrix with this block size.
    pub fn scales_per_row(cols: usize, block: usize) -> usize {
        if block == 0 {
            1
        } else {
            cols.div_ceil(block)
        }
    }

    pub fn is_int8(&self) -> bool {
        matches!(self.weights, Weights::I8 { .. })
    }
}
