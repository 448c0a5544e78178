//! aarch64 kernels: NEON (every aarch64 CPU) and the dotprod extension's `sdot`.

pub mod neon;
