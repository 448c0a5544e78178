//! One table of functions per kernel path: every operation the layers run. A path
//! is one `const` [`KernelTable`]; an entry left out does not compile, so adding a
//! path is filling one table. [`super::Kernels`] picks the table once, when a
//! session is created, and checks the preconditions each entry states.
//!
//! The entries are `unsafe fn` because the SIMD ones need their CPU features:
//! a table may only be called through once [`KernelPath::is_supported`] said yes.
//! Every table names every entry (no `..` from another table): where a path has no
//! faster version of an operation it names the scalar twin, so that a new
//! operation makes each path decide.

use super::{quant, scalar, KernelPath};

/// The features each path needs, and where they are probed. One list for the
/// dispatcher and for `linrt info`.
pub const PATH_FEATURES: &[(KernelPath, &[&str])] = &[
    (KernelPath::Scalar, &[]),
    #[cfg(target_arch = "x86_64")]
    (KernelPath::Avx2, &["avx2", "fma", "f16c"]),
    // AVX2 too: the AVX-512 path also runs the AVX2 layer norm and gelu.
    #[cfg(target_arch = "x86_64")]
    (KernelPath::Avx512, &["avx512f", "avx512bw", "avx512vl", "avx512vnni", "avx2", "fma", "f16c"]),
    #[cfg(target_arch = "aarch64")]
    (KernelPath::Neon, &["neon"]),
    #[cfg(target_arch = "aarch64")]
    (KernelPath::NeonDotprod, &["neon", "dotprod"]),
    // Chosen at build time (build.rs: the target has the DSP extension).
    #[cfg(linrt_arm_dsp)]
    (KernelPath::Dsp, &[]),
];

type MatVec<W> = unsafe fn(w: &[W], b: &[f32], x: &[f32], y: &mut [f32]);
type MatVecI8 = unsafe fn(w: &[i8], scales: &[f32], b: &[f32], xq: &[i8], xs: f32, y: &mut [f32]);
type MatMul4<W> = unsafe fn(w: &[W], b: &[f32], x: &[f32], cols: usize, y: &mut [f32]);
type MatMulI8 = unsafe fn(w: &[i8], scales: &[f32], b: &[f32], xq: &[i8], xs: &[f32], cols: usize, y: &mut [f32]);
type MatMulPanels =
    unsafe fn(panels: &[u8], scales: &[f32], b: &[f32], xq: &[i8], xs: &[f32], cols: usize, y: &mut [f32]);
type HeadStep = unsafe fn(s: &mut [f32], z: &mut [f32], q: &[f32], k: &[f32], v: &[f32], out: &mut [f32], eps: f32);

/// Every operation of a path. A new path is one complete literal — this compiles:
///
/// ```
/// use linrt::kernels::{table::SCALAR, KernelTable};
/// const MINE: KernelTable = KernelTable {
///     add_assign: SCALAR.add_assign,
///     scale: SCALAR.scale,
///     relu: SCALAR.relu,
///     elu_plus_one: SCALAR.elu_plus_one,
///     gelu: SCALAR.gelu,
///     layer_norm: SCALAR.layer_norm,
///     quantize: SCALAR.quantize,
///     attention_head_step: SCALAR.attention_head_step,
///     matvec_f32: SCALAR.matvec_f32,
///     matvec_f16: SCALAR.matvec_f16,
///     matvec_i8: SCALAR.matvec_i8,
///     matvec_i8_packed: SCALAR.matvec_i8_packed,
///     matmul4_f32: SCALAR.matmul4_f32,
///     matmul4_f16: SCALAR.matmul4_f16,
///     matmul_i8_packed: SCALAR.matmul_i8_packed,
///     matmul_i8_panels: SCALAR.matmul_i8_panels,
/// };
/// ```
///
/// and the same with one entry left out does not:
///
/// ```compile_fail,E0063
/// use linrt::kernels::{table::SCALAR, KernelTable};
/// const MINE: KernelTable = KernelTable {
///     add_assign: SCALAR.add_assign,
///     relu: SCALAR.relu,
///     elu_plus_one: SCALAR.elu_plus_one,
///     gelu: SCALAR.gelu,
///     layer_norm: SCALAR.layer_norm,
///     quantize: SCALAR.quantize,
///     attention_head_step: SCALAR.attention_head_step,
///     matvec_f32: SCALAR.matvec_f32,
///     matvec_f16: SCALAR.matvec_f16,
///     matvec_i8: SCALAR.matvec_i8,
///     matvec_i8_packed: SCALAR.matvec_i8_packed,
///     matmul4_f32: SCALAR.matmul4_f32,
///     matmul4_f16: SCALAR.matmul4_f16,
///     matmul_i8_packed: SCALAR.matmul_i8_packed,
///     matmul_i8_panels: SCALAR.matmul_i8_panels,
/// };
/// ```
pub struct KernelTable {
    /// `x += y` (residual adds).
    pub add_assign: unsafe fn(x: &mut [f32], y: &[f32]),
    /// `x *= a` (input scales of the random feature maps, keys and state rescaled).
    pub scale: unsafe fn(x: &mut [f32], a: f32),
    pub relu: unsafe fn(x: &mut [f32]),
    pub elu_plus_one: unsafe fn(x: &mut [f32]),
    pub gelu: unsafe fn(x: &mut [f32]),
    /// γ and β hold at least `x.len()` values.
    pub layer_norm: unsafe fn(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32),
    /// As [`quant::quantize`], to the same bits.
    pub quantize: unsafe fn(x: &[f32], q: &mut [i8]) -> f32,
    /// One head's recurrent step; `q`, `k`, `z` of one length, `out` of `v`'s, `s` their product.
    pub attention_head_step: HeadStep,
    /// One position through row-major weights; the weights hold `y.len() × x.len()`.
    pub matvec_f32: MatVec<f32>,
    pub matvec_f16: MatVec<u16>,
    /// One scale per row.
    pub matvec_i8: MatVecI8,
    /// Weights packed in [`super::PACK_ROWS`]-row panels ([`super::pack_rows`]).
    pub matvec_i8_packed: MatVecI8,
    /// Four positions at once (`x`: 4 rows of `cols`, `y`: 4 rows of `b.len()`).
    pub matmul4_f32: MatMul4<f32>,
    pub matmul4_f16: MatMul4<u16>,
    /// Several quantized positions through packed weights, from this many positions
    /// on (fewer go one at a time); None: one at a time always.
    pub matmul_i8_packed: Option<(usize, MatMulI8)>,
    /// The same through weights a backend rearranged once into sixteen-row panels
    /// ([`super::panels`]), from this many positions on; None: the path reads the
    /// file's layout and the CPU backend's prepare writes no panels.
    pub matmul_i8_panels: Option<(usize, MatMulPanels)>,
}

pub const SCALAR: KernelTable = KernelTable {
    add_assign: scalar::add_assign,
    scale: scalar::scale,
    relu: scalar::relu,
    elu_plus_one: scalar::elu_plus_one,
    gelu: scalar::gelu,
    layer_norm: scalar::layer_norm,
    quantize: quant::quantize,
    attention_head_step: scalar::attention_head_step,
    matvec_f32: scalar::matvec,
    matvec_f16: scalar::matvec_f16,
    matvec_i8: scalar_matvec_i8,
    matvec_i8_packed: scalar::matvec_i8_packed,
    matmul4_f32: scalar_matmul4_f32,
    matmul4_f16: scalar_matmul4_f16,
    matmul_i8_packed: None,
    matmul_i8_panels: None,
};

#[cfg(target_arch = "x86_64")]
pub const AVX2: KernelTable = {
    use super::x86_64::avx2;
    KernelTable {
        elu_plus_one: avx2::elu_plus_one,
        gelu: avx2::gelu,
        layer_norm: avx2::layer_norm,
        quantize: avx2::quantize,
        attention_head_step: avx2::attention_head_step,
        matvec_f32: avx2::matvec_f32,
        matvec_f16: avx2::matvec_f16,
        matvec_i8: avx2::matvec_i8,
        matvec_i8_packed: avx2::matvec_i8_packed,
        matmul4_f32: avx2::matmul4_f32,
        matmul4_f16: avx2::matmul4_f16,
        matmul_i8_packed: Some((2, avx2::matmul_i8_packed)),
        matmul_i8_panels: None,
        add_assign: scalar::add_assign,
        scale: scalar::scale,
        relu: scalar::relu,
    }
};

#[cfg(target_arch = "x86_64")]
pub const AVX512: KernelTable = {
    use super::x86_64::{avx2, avx512};
    KernelTable {
        elu_plus_one: avx512::elu_plus_one,
        // The AVX2 versions (the path requires AVX2): a 16-lane layer norm has one
        // chain of adds where AVX2 has two, and measured slower (55 against 37 ns
        // for 64 values).
        gelu: avx2::gelu,
        layer_norm: avx2::layer_norm,
        quantize: avx512::quantize,
        attention_head_step: avx512::attention_head_step,
        matvec_f32: avx512::matvec_f32,
        matvec_f16: avx512::matvec_f16,
        matvec_i8: avx512::matvec_i8,
        matvec_i8_packed: avx512::matvec_i8_packed,
        matmul4_f32: avx512::matmul4_f32,
        matmul4_f16: avx512::matmul4_f16,
        // Below four positions its panel rearrangement costs more than it saves.
        matmul_i8_packed: Some((4, avx512::matmul_i8_packed)),
        // The threshold of the rearranging kernel, not yet measured without the
        // rearrangement (it can only be lower).
        matmul_i8_panels: Some((4, avx512::matmul_i8_panels)),
        add_assign: scalar::add_assign,
        scale: scalar::scale,
        relu: scalar::relu,
    }
};

#[cfg(target_arch = "aarch64")]
pub const NEON: KernelTable = {
    use super::aarch64::neon;
    KernelTable {
        elu_plus_one: neon::elu_plus_one,
        gelu: neon::gelu,
        layer_norm: neon::layer_norm,
        quantize: neon::quantize,
        attention_head_step: neon::attention_head_step,
        matvec_f32: neon::matvec_f32,
        matvec_f16: neon::matvec_f16,
        matvec_i8: neon::matvec_i8,
        matvec_i8_packed: neon::matvec_i8_packed,
        matmul4_f32: neon::matmul4_f32,
        matmul4_f16: neon::matmul4_f16,
        matmul_i8_packed: Some((2, neon::matmul_i8_packed)),
        matmul_i8_panels: None,
        add_assign: scalar::add_assign,
        scale: scalar::scale,
        relu: scalar::relu,
    }
};

#[cfg(target_arch = "aarch64")]
pub const NEON_DOTPROD: KernelTable = {
    use super::aarch64::neon;
    KernelTable {
        add_assign: scalar::add_assign,
        scale: scalar::scale,
        relu: scalar::relu,
        elu_plus_one: neon::elu_plus_one,
        gelu: neon::gelu,
        layer_norm: neon::layer_norm,
        quantize: neon::quantize,
        attention_head_step: neon::attention_head_step,
        matvec_f32: neon::matvec_f32,
        matvec_f16: neon::matvec_f16,
        matvec_i8: neon::matvec_i8_dotprod,
        matvec_i8_packed: neon::matvec_i8_packed_dotprod,
        matmul4_f32: neon::matmul4_f32,
        matmul4_f16: neon::matmul4_f16,
        matmul_i8_packed: Some((2, neon::matmul_i8_packed_dotprod)),
        matmul_i8_panels: None,
    }
};

/// 32-bit ARM with the DSP extension: the packed int8 matrix-vector kernel (what a
/// speech model spends nearly all its time in); the rest is the scalar twin's,
/// and so are multi-position passes (row by row, as on the scalar path).
#[cfg(linrt_arm_dsp)]
pub const DSP: KernelTable = {
    use super::arm::dsp;
    KernelTable {
        matvec_i8_packed: dsp::matvec_i8_packed,
        add_assign: scalar::add_assign,
        scale: scalar::scale,
        relu: scalar::relu,
        elu_plus_one: scalar::elu_plus_one,
        gelu: scalar::gelu,
        layer_norm: scalar::layer_norm,
        quantize: quant::quantize,
        attention_head_step: scalar::attention_head_step,
        matvec_f32: scalar::matvec,
        matvec_f16: scalar::matvec_f16,
        matvec_i8: scalar_matvec_i8,
        matmul4_f32: scalar_matmul4_f32,
        matmul4_f16: scalar_matmul4_f16,
        matmul_i8_packed: None,
        matmul_i8_panels: None,
    }
};

impl KernelPath {
    /// This path's table.
    pub fn table(self) -> &'static KernelTable {
        match self {
            KernelPath::Scalar => &SCALAR,
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 => &AVX2,
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512 => &AVX512,
            #[cfg(target_arch = "aarch64")]
            KernelPath::Neon => &NEON,
            #[cfg(target_arch = "aarch64")]
            KernelPath::NeonDotprod => &NEON_DOTPROD,
            #[cfg(linrt_arm_dsp)]
            KernelPath::Dsp => &DSP,
        }
    }

    /// The CPU features this path needs.
    pub fn features(self) -> &'static [&'static str] {
        PATH_FEATURES.iter().find(|(p, _)| *p == self).map_or(&[], |(_, f)| f)
    }
}

fn scalar_matvec_i8(w: &[i8], scales: &[f32], b: &[f32], xq: &[i8], xs: f32, y: &mut [f32]) {
    scalar::matvec_i8(w, scales, 0, b, xq, xs, y)
}

fn scalar_matmul4_f32(w: &[f32], b: &[f32], x: &[f32], cols: usize, y: &mut [f32]) {
    for (xt, yt) in x.chunks_exact(cols).zip(y.chunks_exact_mut(b.len())) {
        scalar::matvec(w, b, xt, yt)
    }
}

fn scalar_matmul4_f16(w: &[u16], b: &[f32], x: &[f32], cols: usize, y: &mut [f32]) {
    for (xt, yt) in x.chunks_exact(cols).zip(y.chunks_exact_mut(b.len())) {
        scalar::matvec_f16(w, b, xt, yt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{cpu_features, ALL_PATHS};

    #[test]
    fn every_path_has_a_table_and_its_features_are_probed() {
        for path in ALL_PATHS {
            assert_eq!(PATH_FEATURES.iter().filter(|(p, _)| p == path).count(), 1, "{}", path.name());
            for f in path.features() {
                assert!(cpu_features().iter().any(|(name, _)| name == f), "{}: {f} is never probed", path.name());
            }
            let _ = path.table();
        }
        assert!(KernelPath::Scalar.is_supported());
    }
}
