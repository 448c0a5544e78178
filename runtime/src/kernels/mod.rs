//! Numeric kernels. Every kernel has a portable scalar version in [`scalar`]; SIMD
//! versions per ISA (x86_64 AVX2/AVX-512, aarch64 NEON, 32-bit ARM DSP) sit beside it and are tested
//! against it.

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(linrt_arm_dsp)]
mod arm;
mod dispatch;
mod matrix;
pub mod panels;
pub mod quant;
pub mod scalar;
pub mod table;
#[cfg(target_arch = "x86_64")]
mod x86_64;

pub use dispatch::{cpu_features, Activations, KernelPath, Kernels, ALL_PATHS};
pub use matrix::{pack_rows, packed_len, Matrix, Weights, PACK_COLS, PACK_ROWS};
pub use table::KernelTable;
