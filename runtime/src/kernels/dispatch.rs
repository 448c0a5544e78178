//! Which kernel implementation runs: chosen once when a session is created, from the
//! CPU features found at run time (std) or enabled at compile time (no_std).

use super::matrix::{Matrix, Weights};
use super::{quant, scalar};
use crate::error::Error;

/// An implementation of the kernel set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelPath {
    /// Portable Rust; runs everywhere, and every other path is tested against it.
    Scalar,
    /// x86_64 AVX2 + FMA + F16C; int8 through `vpmaddubsw`.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// x86_64 AVX-512 F/BW with VNNI `vpdpbusd` for int8.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// aarch64 NEON: `fmla`, f16 widened with `fcvtl`, int8 with `smull`.
    #[cfg(target_arch = "aarch64")]
    Neon,
    /// aarch64 NEON with the dotprod extension: int8 with `sdot`.
    #[cfg(target_arch = "aarch64")]
    NeonDotprod,
}

/// Every path this build knows, slowest first.
pub const ALL_PATHS: &[KernelPath] = &[
    KernelPath::Scalar,
    #[cfg(target_arch = "x86_64")]
    KernelPath::Avx2,
    #[cfg(target_arch = "x86_64")]
    KernelPath::Avx512,
    #[cfg(target_arch = "aarch64")]
    KernelPath::Neon,
    #[cfg(target_arch = "aarch64")]
    KernelPath::NeonDotprod,
];

#[cfg(all(target_arch = "x86_64", feature = "std"))]
macro_rules! cpu_has {
    ($($f:tt),+) => { $(std::is_x86_feature_detected!($f))&&+ };
}
#[cfg(all(target_arch = "aarch64", feature = "std"))]
macro_rules! cpu_has {
    ($($f:tt),+) => { $(std::arch::is_aarch64_feature_detected!($f))&&+ };
}
#[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), not(feature = "std")))]
macro_rules! cpu_has {
    ($($f:tt),+) => { $(cfg!(target_feature = $f))&&+ };
}

impl KernelPath {
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512 => "avx512",
            #[cfg(target_arch = "aarch64")]
            KernelPath::Neon => "neon",
            #[cfg(target_arch = "aarch64")]
            KernelPath::NeonDotprod => "neon-dotprod",
        }
    }

    /// The path called `name` in this build, if any.
    pub fn from_name(name: &str) -> Option<KernelPath> {
        ALL_PATHS.iter().copied().find(|p| p.name() == name)
    }

    /// True when this CPU can run the path.
    pub fn is_supported(self) -> bool {
        match self {
            KernelPath::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 => cpu_has!("avx2", "fma", "f16c"),
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512 => cpu_has!("avx512f", "avx512bw", "avx512vnni"),
            #[cfg(target_arch = "aarch64")]
            KernelPath::Neon => cpu_has!("neon"),
            #[cfg(target_arch = "aarch64")]
            KernelPath::NeonDotprod => cpu_has!("neon", "dotprod"),
        }
    }
}

/// The kernel set a session uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernels {
    path: KernelPath,
}

impl Kernels {
    /// The fastest path this CPU supports.
    pub fn detect() -> Self {
        let path = ALL_PATHS.iter().rev().copied().find(|p| p.is_supported()).unwrap_or(KernelPath::Scalar);
        Kernels { path }
    }

    /// A specific path (to force a lower one); an error if this CPU cannot run it.
    pub fn with_path(path: KernelPath) -> Result<Self, Error> {
        if path.is_supported() {
            Ok(Kernels { path })
        } else {
            Err(Error::KernelUnavailable { path: path.name() })
        }
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
                Weights::F32(w) => self.matvec_f32(w, b, xt, yt),
                Weights::F16(w) => self.matvec_f16(w, b, xt, yt),
                Weights::I8 { q, scales, block } => {
                    let xq = &mut qbuf[p * cols..(p + 1) * cols];
                    let xs = quant::quantize(xt, xq);
                    self.matvec_i8(q, scales, block, b, xq, xs, yt);
                }
            }
        }
    }

    fn matvec_f32(&self, w: &[f32], b: &[f32], x: &[f32], y: &mut [f32]) {
        match self.path {
            KernelPath::Scalar => scalar::matvec(w, b, x, y),
            // SAFETY: `Kernels` only holds a path the CPU supports (see `with_path`).
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 => unsafe { super::x86_64::avx2::matvec_f32(w, b, x, y) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512 => unsafe { super::x86_64::avx512::matvec_f32(w, b, x, y) },
            #[cfg(target_arch = "aarch64")]
            KernelPath::Neon | KernelPath::NeonDotprod => super::aarch64::neon::matvec_f32(w, b, x, y),
        }
    }

    fn matvec_f16(&self, w: &[u16], b: &[f32], x: &[f32], y: &mut [f32]) {
        match self.path {
            KernelPath::Scalar => scalar::matvec_f16(w, b, x, y),
            // SAFETY: `Kernels` only holds a path the CPU supports (see `with_path`).
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 => unsafe { super::x86_64::avx2::matvec_f16(w, b, x, y) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512 => unsafe { super::x86_64::avx512::matvec_f16(w, b, x, y) },
            #[cfg(target_arch = "aarch64")]
            KernelPath::Neon | KernelPath::NeonDotprod => super::aarch64::neon::matvec_f16(w, b, x, y),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn matvec_i8(&self, w: &[i8], scales: &[f32], block: usize, b: &[f32], xq: &[i8], xs: f32, y: &mut [f32]) {
        // The SIMD kernels take one scale per row; per-block files run the scalar twin.
        if block != 0 {
            return scalar::matvec_i8(w, scales, block, b, xq, xs, y);
        }
        match self.path {
            KernelPath::Scalar => scalar::matvec_i8(w, scales, 0, b, xq, xs, y),
            // SAFETY: `Kernels` only holds a path the CPU supports (see `with_path`).
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 => unsafe { super::x86_64::avx2::matvec_i8(w, scales, b, xq, xs, y) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512 => unsafe { super::x86_64::avx512::matvec_i8(w, scales, b, xq, xs, y) },
            #[cfg(target_arch = "aarch64")]
            KernelPath::Neon => super::aarch64::neon::matvec_i8(w, scales, b, xq, xs, y),
            // SAFETY: `Kernels` only holds a path the CPU supports (see `with_path`).
            #[cfg(target_arch = "aarch64")]
            KernelPath::NeonDotprod => unsafe { super::aarch64::neon::matvec_i8_dotprod(w, scales, b, xq, xs, y) },
        }
    }
}
