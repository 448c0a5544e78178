//! x86_64 kernels: AVX2 (+FMA, F16C) and AVX-512 (F, BW, VNNI).

pub mod avx2;
pub mod avx512;
