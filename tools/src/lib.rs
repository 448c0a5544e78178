//! The `linrt` command line: one module per subcommand in `commands/`, the engines
//! beside them (`onnx/`, `asr/`, `audio/`, `run.rs`, `bench.rs`, `paper/`).
//! Everything that knows about files, ONNX and the terminal lives here; the
//! runtime crate knows none of it.

pub mod asr;
pub mod audio;
pub mod bench;
pub mod bundled;
pub mod cli;
pub mod commands;
pub mod compare;
pub mod cpu;
pub mod device;
pub mod inspect;
pub mod memory;
pub mod npy;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod paper;
pub mod run;
