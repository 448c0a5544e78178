//! Which kernel implementation runs: chosen once when a session is created, from the
//! CPU features found at run time (std) or enabled at compile time (no_std).

use super::matrix::{Matrix, Weights};
use super::{quant, scalar};

/// An implementation of the kernel set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelPath {
    /// Portable Rust; runs everywhere, and every other path is tested against it.
    Scalar,
}

impl KernelPath {
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::Scalar => "scalar",
        }
    }
}

/// The kernel set a session uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernels {
    path: KernelPath,
}

impl Kernels {
    /// The best path this CPU supports.
    pub fn detect() -> Self {
        Kernels { path: KernelPath::Scalar }
    }

    pub fn path(&self) -> KernelPath {
        self.path
    }

    /// `Y = X·Wᵀ + b` for `t` rows of `x` (`[t, m.cols]`) into `y` (`[t, m.rows]`).
    /// `qbuf` holds at least `t · m.cols` bytes for quantized activations (int8 only).
    pub fn matmul(&self, m: &Matrix, b: &[f32], x: &[f32], t: usize, y: &mut [f32], qbuf: &mut [i8]) {
        let (rows, cols) = (m.rows, m.cols);
        for p in 0..t {
            let xt = &x[p * cols..(p + 1) * cols];
            let yt = &mut y[p * rows..(p + 1) * rows];
            match m.weights {
                Weights::F32(w) => scalar::matvec(w, b, xt, yt),
                Weights::F16(w) => scalar::matvec_f16(w, b, xt, yt),
                Weights::I8 { q, scales, block } => {
                    let xq = &mut qbuf[p * cols..(p + 1) * cols];
                    let xs = quant::quantize(xt, xq);
                    scalar::matvec_i8(q, scales, block, b, xq, xs, yt);
                }
            }
        }
    }
}
