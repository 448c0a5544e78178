//! Which kernel implementation runs: chosen once when a session is created, from the
//! CPU features found at run time (std) or enabled at compile time (no_std).

use super::matrix::{Matrix, Weights};
use super::scalar;
use super::table::KernelTable;
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
    /// 32-bit ARM with the DSP extension (Cortex-M4/M7, ARMv7-A): int8 with `SMLAD`.
    #[cfg(linrt_arm_dsp)]
    Dsp,
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
    #[cfg(linrt_arm_dsp)]
    KernelPath::Dsp,
];

/// `[(feature, found)]` for the listed features: probed at run time with std, the
/// compile-time target features without.
#[cfg(all(target_arch = "x86_64", feature = "std"))]
macro_rules! probe {
    ($($f:tt),+) => { [$(($f, std::is_x86_feature_detected!($f))),+] };
}
#[cfg(all(target_arch = "aarch64", feature = "std"))]
macro_rules! probe {
    ($($f:tt),+) => { [$(($f, std::arch::is_aarch64_feature_detected!($f))),+] };
}
#[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), not(feature = "std")))]
macro_rules! probe {
    ($($f:tt),+) => { [$(($f, cfg!(target_feature = $f))),+] };
}

/// Every CPU feature some kernel path needs ([`KernelPath::features`]), and whether
/// this CPU has it: the one place features are detected (`linrt info` lists these).
pub fn cpu_features() -> &'static [(&'static str, bool)] {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    {
        static FOUND: std::sync::OnceLock<[(&str, bool); 7]> = std::sync::OnceLock::new();
        FOUND.get_or_init(|| probe!("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512vnni"))
    }
    #[cfg(all(target_arch = "x86_64", not(feature = "std")))]
    {
        const FOUND: [(&str, bool); 7] = probe!("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512vnni");
        &FOUND
    }
    #[cfg(all(target_arch = "aarch64", feature = "std"))]
    {
        static FOUND: std::sync::OnceLock<[(&str, bool); 2]> = std::sync::OnceLock::new();
        FOUND.get_or_init(|| probe!("neon", "dotprod"))
    }
    #[cfg(all(target_arch = "aarch64", not(feature = "std")))]
    {
        const FOUND: [(&str, bool); 2] = probe!("neon", "dotprod");
        &FOUND
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        &[]
    }
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
            #[cfg(linrt_arm_dsp)]
            KernelPath::Dsp => "dsp",
        }
    }

    /// The path called `name` in this build, if any.
    pub fn from_name(name: &str) -> Option<KernelPath> {
        ALL_PATHS.iter().copied().find(|p| p.name() == name)
    }

    /// True when this CPU has every feature the path needs.
    pub fn is_supported(self) -> bool {
        let has = |f: &str| cpu_features().iter().any(|&(name, found)| name == f && found);
        self.features().iter().all(|f| has(f))
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

/// The kernel set a session uses: a path and its table ([`super::table`]).
#[derive(Clone, Copy)]
pub struct Kernels {
    path: KernelPath,
    table: &'static KernelTable,
}

impl PartialEq for Kernels {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl Eq for Kernels {}

impl core::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Kernels").field("path", &self.path).finish()
    }
}

impl Kernels {
    /// The fastest path this CPU supports.
    pub fn detect() -> Self {
        let path = ALL_PATHS.iter().rev().copied().find(|p| p.is_supported()).unwrap_or(KernelPath::Scalar);
        Kernels { path, table: path.table() }
    }

    /// A specific path (to force a lower one); an error if this CPU cannot run it.
    pub fn with_path(path: KernelPath) -> Result<Self, Error> {
        if path.is_supported() {
            Ok(Kernels { path, table: path.table() })
        } else {
            Err(Error::KernelUnavailable { path: path.name() })
        }
    }

    /// `path` running `table` instead of its own: for tests and experiments with a
    /// new table before it has a path of its own.
    ///
    /// # Safety
    /// Every entry of `table` must run on this CPU, keeping the preconditions its
    /// field states.
    pub unsafe fn with_table(path: KernelPath, table: &'static KernelTable) -> Self {
        Kernels { path, table }
    }

    pub fn path(&self) -> KernelPath {
        self.path
    }

    /// True when this path has a panel kernel: the CPU backend's prepare then
    /// rearranges packed int8 weights for it ([`super::panels`]).
    pub fn uses_panels(&self) -> bool {
        self.table.matmul_i8_panels.is_some()
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
        let k = self.table;
        // Several positions and packed int8: the path's matrix-matrix kernel, where it
        // has one, reads each block of weight rows once for several positions — from
        // panels prepared once where the path has a panel kernel and they were.
        if let (Weights::I8Packed { q, scales }, Some((xq, xs))) = (m.weights, a.quantized) {
            let t = xs.len();
            if t >= 2 && y.len() >= t * rows && b.len() == rows && scales.len() >= rows {
                let (xq, y) = (&xq[..t * cols], &mut y[..t * rows]);
                if let (Some(panels), Some((fewest, kernel))) = (m.panels, k.matmul_i8_panels) {
                    if t >= fewest && panels.len() >= super::panels::panels_len(rows, cols) {
                        // SAFETY: as below, the panels' length just checked.
                        unsafe { kernel(panels, scales, b, xq, xs, cols, y) };
                        return;
                    }
                }
                if let Some((fewest, kernel)) = k.matmul_i8_packed {
                    if t >= fewest && q.len() >= super::matrix::packed_len(rows, cols) {
                        // SAFETY: the table is this path's, which the CPU supports
                        // (`with_path`); the kernel indexes y, b and scales within the
                        // lengths just checked, x by `cols`.
                        unsafe { kernel(q, scales, b, xq, xs, cols, y) };
                        return;
                    }
                }
            }
        }
        // Several positions with f32 or f16 weights: four positions per pass over the
        // weights (the scalar table goes one at a time inside); the positions left
        // over go one at a time below.
        let t = a.x.len() / cols.max(1);
        let float = match m.weights {
            Weights::F32(w) if w.len() >= rows * cols => Some(FloatWeights::F32(w)),
            Weights::F16(w) if w.len() >= rows * cols => Some(FloatWeights::F16(w)),
            _ => None,
        };
        let mut done = 0;
        if let Some(weights) = float.filter(|_| b.len() == rows && y.len() >= t * rows) {
            while done + 4 <= t {
                let (x4, y4) = (&a.x[done * cols..(done + 4) * cols], &mut y[done * rows..(done + 4) * rows]);
                // SAFETY: this path's table (see above); the kernels check their slice lengths.
                unsafe {
                    match weights {
                        FloatWeights::F32(w) => (k.matmul4_f32)(w, b, x4, cols, y4),
                        FloatWeights::F16(w) => (k.matmul4_f16)(w, b, x4, cols, y4),
                    }
                }
                done += 4;
            }
        }
        for (p, (xt, yt)) in a.x.chunks_exact(cols).zip(y.chunks_exact_mut(rows)).enumerate().skip(done) {
            let at = p * cols..(p + 1) * cols;
            // SAFETY: this path's table (see above); the matrix kernels check their
            // slice lengths.
            unsafe {
                match (m.weights, a.quantized) {
                    (Weights::F32(w), _) => (k.matvec_f32)(w, b, xt, yt),
                    (Weights::F16(w), _) => (k.matvec_f16)(w, b, xt, yt),
                    // The SIMD kernels take one scale per row; per-block files run the scalar twin.
                    (Weights::I8 { q, scales, block }, Some((xq, xs))) if block != 0 => {
                        scalar::matvec_i8(q, scales, block, b, &xq[at.clone()], xs[p], yt)
                    }
                    (Weights::I8 { q, scales, .. }, Some((xq, xs))) => {
                        (k.matvec_i8)(q, scales, b, &xq[at.clone()], xs[p], yt)
                    }
                    (Weights::I8Packed { q, scales }, Some((xq, xs))) => {
                        (k.matvec_i8_packed)(q, scales, b, &xq[at.clone()], xs[p], yt)
                    }
                    // Inputs prepared without quantization: int8 weights times f32 inputs.
                    (Weights::I8 { q, scales, block }, None) => {
                        scalar::matvec_i8_f32_input(q, scales, block, b, xt, yt)
                    }
                    (Weights::I8Packed { q, scales }, None) => scalar::matvec_i8_packed_f32_input(q, scales, b, xt, yt),
                }
            }
        }
    }

    /// Quantizes one vector exactly as [`quant::quantize`] does, on this path.
    pub fn quantize(&self, x: &[f32], q: &mut [i8]) -> f32 {
        // SAFETY: this path's table, which the CPU supports (`with_path`).
        unsafe { (self.table.quantize)(x, q) }
    }

    /// φ(x) = elu(x) + 1 in place (see [`scalar::elu_plus_one`]); the same bits on
    /// every path.
    pub fn elu_plus_one(&self, x: &mut [f32]) {
        // SAFETY: as in `quantize`.
        unsafe { (self.table.elu_plus_one)(x) }
    }

    /// max(x, 0) in place.
    pub fn relu(&self, x: &mut [f32]) {
        // SAFETY: as in `quantize`.
        unsafe { (self.table.relu)(x) }
    }

    /// `x += y` element-wise (over the shorter of the two).
    pub fn add_assign(&self, x: &mut [f32], y: &[f32]) {
        // SAFETY: as in `quantize`.
        unsafe { (self.table.add_assign)(x, y) }
    }

    /// `x *= a` element-wise.
    pub fn scale(&self, x: &mut [f32], a: f32) {
        // SAFETY: as in `quantize`.
        unsafe { (self.table.scale)(x, a) }
    }

    /// LayerNorm in place (see [`scalar::layer_norm`]); the same bits on every path.
    pub fn layer_norm(&self, x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
        // The SIMD versions read γ and β alongside x.
        if gamma.len() >= x.len() && beta.len() >= x.len() {
            // SAFETY: as in `quantize`, and the lengths the entry needs were just checked.
            unsafe { (self.table.layer_norm)(x, gamma, beta, eps) }
        } else {
            scalar::layer_norm(x, gamma, beta, eps)
        }
    }

    /// gelu in place (see [`scalar::gelu`]); the same bits on every path.
    pub fn gelu(&self, x: &mut [f32]) {
        // SAFETY: as in `quantize`.
        unsafe { (self.table.gelu)(x) }
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
        // The SIMD versions index by k and v: they need the shapes to agree.
        if q.len() == k.len() && z.len() == k.len() && out.len() == v.len() && s.len() == k.len() * v.len() {
            // SAFETY: as in `quantize`, and the shapes the entry needs were just checked.
            unsafe { (self.table.attention_head_step)(s, z, q, k, v, out, eps) }
        } else {
            scalar::attention_head_step(s, z, q, k, v, out, eps)
        }
    }
}
