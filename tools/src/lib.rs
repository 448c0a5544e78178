//! The `linrt` command line: convert ONNX to `.lrt`, verify, inspect, run.
//! Everything that knows about files, ONNX and the terminal lives here; the
//! runtime crate knows none of it.

pub mod asr;
pub mod audio;
pub mod bench;
pub mod cli;
pub mod compare;
pub mod cpu;
pub mod generate;
pub mod inspect;
pub mod npy;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod paper;
pub mod run;
