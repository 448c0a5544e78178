//! 32-bit ARM kernels: the DSP extension's dual 16-bit multiply-accumulate (`SMLAD`)
//! for int8 on Cortex-M4/M7 and ARMv7-A.

pub mod dsp;
