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
    /// x86_64 AVX-512 F/BW/VL with VNNI `vpdpbusd` for int8.
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
            // AVX2 too: the AVX-512 path also runs the AVX2 layer norm and gelu.
            KernelPath::Avx512 => cpu_has!("avx512f", "avx512bw", "avx512vl", "avx512vnni", "avx2", "fma", "f16c"),
            #[cfg(target_arch = "aarch64")]
            KernelPath::Neon => cpu_has!("neon"),
            #[cfg(target_arch = "aarch64")]
            KernelPath::NeonDotprod => cpu_has!("neon", "dotprod"),
        }
    }
}

/// The input rows of a matmul, and their int8 form when int8 weights will read them.
#[derive(Debug, Clone, Copy)]
pub struct Activations<'x> {
    x: &'x [f32],
    cols: usize,
    /// Quantized rows and one scale per row.
    quantized: Option<(&'x [i8], &'x [f32])>,
}

/// The weights that go through the float matrix-matrix kernels.
#[derive(Clone, Copy)]
enum FloatWeights<'a> {
    F32(&'a [f32]),
    F16(&'a [u16]),
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

    /// Prepares `t` rows of `cols` values as the input of one or more matmuls. With
    /// `quantize` (the model has int8 weights) each row is also quantized once, into
    /// `scratch` (at least `t · (⌈cols/4⌉ + 1)` floats), and reused by every matmul
    /// that reads the same input.
    pub fn activations<'x>(
        &self,
        x: &'x [f32],
        t: usize,
        cols: usize,
        quantize: bool,
        scratch: &'x mut [f32],
    ) -> Activations<'x> {
        let x = &x[..t * cols];
        if !quantize {
            return Activations { x, cols, quantized: None };
        }
        let (scales, bytes) = scratch.split_at_mut(t);
        let q = &mut bytemuck::cast_slice_mut::<f32, i8>(bytes)[..t * cols];
        for ((row, qrow), s) in x.chunks_exact(cols).zip(q.chunks_exact_mut(cols)).zip(scales.iter_mut()) {
            *s = self.quantize(row, qrow);
        }
        Activations { x, cols, quantized: Some((q, scales)) }
    }

    /// `Y = X·Wᵀ + b` for every row of `a` into `y` (`[t, m.rows]`).
    pub fn matmul(&self, m: &Matrix, b: &[f32], a: &Activations, y: &mut [f32]) {
        let (rows, cols) = (m.rows, a.cols);
        // Several positions and packed int8: the path's matrix-matrix kernel, where it
        // has one, reads each block of weight rows once for several positions.
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        if let (Weights::I8Packed { q, scales }, Some((xq, xs))) = (m.weights, a.quantized) {
            let t = xs.len();
            if t > 1
                && y.len() >= t * rows
                && b.len() == rows
                && scales.len() >= rows
                && q.len() >= super::matrix::packed_len(rows, cols)
                && self.matmul_i8_packed(q, scales, b, &xq[..t * cols], xs, cols, &mut y[..t * rows])
            {
                return;
            }
        }
        // Several positions with f32 or f16 weights: four positions per pass over the
        // weights on every SIMD path; the positions left over (and the scalar path) go
        // one at a time below.
        let t = a.x.len() / cols.max(1);
        let float = match m.weights {
            Weights::F32(w) if w.len() >= rows * cols => Some(FloatWeights::F32(w)),
            Weights::F16(w) if w.len() >= rows * cols => Some(FloatWeights::F16(w)),
            _ => None,
        };
        let mut done = 0;
        if let Some(weights) =
            float.filter(|_| self.path != KernelPath::Scalar && b.len() == rows && y.len() >= t * rows)
        {
            while done + 4 <= t {
                let x4 = &a.x[done * cols..(done + 4) * cols];
                self.matmul4(weights, b, x4, cols, &mut y[done * rows..(done + 4) * rows]);
                done += 4;
            }
        }
        for (p, (xt, yt)) in a.x.chunks_exact(cols).zip(y.chunks_exact_mut(rows)).enumerate().skip(done) {
            match (m.weights, a.quantized) {
                (Weights::F32(w), _) => self.matvec_f32(w, b, xt, yt),
                (Weights::F16(w), _) => self.matvec_f16(w, b, xt, yt),
                (Weights::I8 { q, scales, block }, Some((xq, xs))) => {
                    self.matvec_i8(q, scales, block, b, &xq[p * cols..(p + 1) * cols], xs[p], yt)
                }
                (Weights::I8Packed { q, scales }, Some((xq, xs))) => {
                    self.matvec_i8_packed(q, scales, b, &xq[p * cols..(p + 1) * cols], xs[p], yt)
                }
                // Inputs prepared without quantization: int8 weights times f32 inputs.
                (Weights::I8 { q, scales, block }, None) => scalar::matvec_i8_f32_input(q, scales, block, b, xt, yt),
                (Weights::I8Packed { q, scales }, None) => scalar::matvec_i8_packed_f32_input(q, scales, b, xt, yt),
            }
        }
    }

    /// Quantizes one vector exactly as [`quant::quantize`] does, on this path.
    pub fn quantize(&self, x: &[f32], q: &mut [i8]) -> f32 {
        match self.path {
            // SAFETY: `Kernels` only holds a path the CPU supports (see `with_path`).
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512 => unsafe { super::x86_64::avx512::quantize(x, q) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 => unsafe { super::x86_64::avx2::quantize(x, q) },
            #[cfg(target_arch = "aarch64")]
            KernelPath::Neon | KernelPath::NeonDotprod => super::aarch64::neon::quantize(x, q),
            _ => quant::quantize(x, q),
        }
    }

    /// φ(x) = elu(x) + 1 in place (see [`scalar::elu_plus_one`]); the same bits on
    /// every path.
    pub fn elu_plus_one(&self, x: &mut [f32]) {
        match self.path {
            // SAFETY: `Kernels` only holds a path the CPU supports (see `with_path`).
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512 => unsafe { super::x86_64::avx512::elu_plus_one(x) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 => unsafe { super::x86_64::avx2::elu_plus_one(x) },
            #[cfg(target_arch = "aarch64")]
            KernelPath::Neon | KernelPath::NeonDotprod => super::aarch64::neon::elu_plus_one(x),
            _ => scalar::elu_plus_one(x),
        }
    }

    /// LayerNorm in place (see [`scalar::layer_norm`]); the same bits on every path.
    pub fn layer_norm(&self, x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
        // The SIMD versions read γ and β alongside x.
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        let consistent = gamma.len() >= x.len() && beta.len() >= x.len();
        match self.path {
            // The AVX2 version on AVX-512 too: a 16-lane version has one chain of adds
            // where AVX2 has two, and measured slower (55 against 37 ns for 64 values).
            // SAFETY: `Kernels` only holds a path the CPU supports (see `with_path`),
            // the AVX-512 path requires AVX2 too, and the slice lengths were just checked.
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512 | KernelPath::Avx2 if consistent => unsafe {
                super::x86_64::avx2::layer_norm(x, gamma, beta, eps)
            },
            #[cfg(target_arch = "aarch64")]
            KernelPath::Neon | KernelPath::NeonDotprod if consistent => {
                super::aarch64::neon::layer_norm(x, gamma, beta, eps)
            }
            _ => scalar::layer_norm(x, gamma, beta, eps),
        }
    }

    /// gelu in place (see [`scalar::gelu`]); the same bits on every path.
    pub fn gelu(&self, x: &mut [f32]) {
        match self.path {
            // The AVX2 version on AVX-512 too (the path requires AVX2).
            // SAFETY: `Kernels` only holds a path the CPU supports (see `with_path`).
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512 | KernelPath::Avx2 => unsafe { super::x86_64::avx2::gelu(x) },
            #[cfg(target_arch = "aarch64")]
            KernelPath::Neon | KernelPath::NeonDotprod => super::aarch64::neon::gelu(x),
            _ => scalar::gelu(x),
        }
    }

    /// One head's recurrent attention step (see [`scalar::attention_head_step`]);
    /// the same bits on every path.
    #[allow(clippy::too_many_arguments)]
    pub fn attention_head_step(
        &self,
        s: &mut [f32],
        z: &mut [f32],
        q: &[f32],
        k: &[f32],
        v: &[f32],
        out: &mut [f32],
        eps: f32,
    ) {
        // The SIMD version indexes by k and v: it needs the shapes to agree.
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        let consistent =
            q.len() == k.len() && z.len() == k.len() && out.len() == v.len() && s.len() == k.len() * v.len();
        match self.path {
            // SAFETY: `Kernels` only holds a path the CPU supports (see `with_path`),
            // and the slice lengths were just checked.
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512 if consistent => unsafe {
                super::x86_64::avx512::attention_head_step(s, z, q, k, v, out, eps)
            },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 if consistent => unsafe {
                super::x86_64::avx2::attention_head_step(s, z, q, k, v, out, eps)
            },
            #[cfg(target_arch = "aarch64")]
            KernelPath::Neon | KernelPath::NeonDotprod if consistent => {
                super::aarch64::neon::attention_head_step(s, z, q, k, v, out, eps)
            }
            _ => scalar::attention_head_step(s, z, q, k, v, out, eps),
        }
    }

    fn matvec_i8_packed(&self, w: &[i8], scales: &[f32], b: &[f32], xq: &[i8], xs: f32, y: &mut [f32]) {
        match self.path {
            KernelPath::Scalar => scalar::matvec_i8_packed(w, scales, b, xq, xs, y),
            // SAFETY: `Kernels` only holds a path the CPU supports (see `with_path`).
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 => unsafe { super::x86_64::avx2::matvec_i8_packed(w, scales, b, xq, xs, y) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512 => unsafe { super::x86_64::avx512::matvec_i8_packed(w, scales, b, xq, xs, y) },
            #[cfg(target_arch = "aarch64")]
            KernelPath::Neon => super::aarch64::neon::matvec_i8_packed(w, scales, b, xq, xs, y),
            // SAFETY: as above.
            #[cfg(target_arch = "aarch64")]
            KernelPath::NeonDotprod => unsafe {
                super::aarch64::neon::matvec_i8_packed_dotprod(w, scales, b, xq, xs, y)
            },
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

    /// `t` quantized positions (`xq`: `[t, cols]`, `xs`: `[t]`) through the path's
    /// packed int8 matrix-matrix kernel into `y` (`[t, b.len()]`); false, touching
    /// nothing, on a path without one (the caller then goes one position at a time).
    /// The caller has checked that `w`, `y` and `scales` are long enough.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[allow(clippy::too_many_arguments)]
    fn matmul_i8_packed(
        &self,
        w: &[i8],
        scales: &[f32],
        b: &[f32],
        xq: &[i8],
        xs: &[f32],
        cols: usize,
        y: &mut [f32],
    ) -> bool {
        match self.path {
            // Below four positions the AVX-512 kernel's panel rearrangement costs more
            // than it saves: those go one position at a time.
            // SAFETY: `Kernels` only holds a path the CPU supports (see `with_path`);
            // the kernels index y, b and scales within the checked lengths, x by `cols`.
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512 if xs.len() >= 4 => unsafe {
                super::x86_64::avx512::matmul_i8_packed(w, scales, b, xq, xs, cols, y)
            },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 => unsafe { super::x86_64::avx2::matmul_i8_packed(w, scales, b, xq, xs, cols, y) },
            #[cfg(target_arch = "aarch64")]
            KernelPath::Neon => super::aarch64::neon::matmul_i8_packed(w, scales, b, xq, xs, cols, y),
            // SAFETY: as above.
            #[cfg(target_arch = "aarch64")]
            KernelPath::NeonDotprod => unsafe {
                super::aarch64::neon::matmul_i8_packed_dotprod(w, scales, b, xq, xs, cols, y)
            },
            _ => return false,
        };
        true
    }

    /// Four positions (`x`: 4 rows of `cols`, `y`: 4 rows of `b.len()`) through the
    /// path's matrix-matrix kernel; `w` holds `b.len()` rows of `cols`.
    fn matmul4(&self, weights: FloatWeights, b: &[f32], x: &[f32], cols: usize, y: &mut [f32]) {
        match (self.path, weights) {
            // SAFETY: `Kernels` only holds a path the CPU supports (see `with_path`);
            // the kernels check their slice lengths.
            #[cfg(target_arch = "x86_64")]
            (KernelPath::Avx512, FloatWeights::F32(w)) => unsafe {
                super::x86_64::avx512::matmul4_f32(w, b, x, cols, y)
            },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            (KernelPath::Avx512, FloatWeights::F16(w)) => unsafe {
                super::x86_64::avx512::matmul4_f16(w, b, x, cols, y)
            },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            (KernelPath::Avx2, FloatWeights::F32(w)) => unsafe { super::x86_64::avx2::matmul4_f32(w, b, x, cols, y) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            (KernelPath::Avx2, FloatWeights::F16(w)) => unsafe { super::x86_64::avx2::matmul4_f16(w, b, x, cols, y) },
            #[cfg(target_arch = "aarch64")]
            (KernelPath::Neon | KernelPath::NeonDotprod, FloatWeights::F32(w)) => {
                super::aarch64::neon::matmul4_f32(w, b, x, cols, y)
            }
            #[cfg(target_arch = "aarch64")]
            (KernelPath::Neon | KernelPath::NeonDotprod, FloatWeights::F16(w)) => {
                super::aarch64::neon::matmul4_f16(w, b, x, cols, y)
            }
            // The scalar path (and any other): the twin, one position at a time.
            (_, FloatWeights::F32(w)) => {
                for (xt, yt) in x.chunks_exact(cols).zip(y.chunks_exact_mut(b.len())) {
                    scalar::matvec(w, b, xt, yt)
                }
            }
            (_, FloatWeights::F16(w)) => {
                for (xt, yt) in x.chunks_exact(cols).zip(y.chunks_exact_mut(b.len())) {
                    scalar::matvec_f16(w, b, xt, yt)
                }
            }
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
