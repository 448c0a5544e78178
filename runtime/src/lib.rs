//! linrt: a runtime for linear-attention transformers ("Transformers are RNNs",
//! Katharopoulos et al., 2020) in their recurrent form.
//!
//! The crate is `#![no_std]` and never allocates: a [`Model`] borrows the bytes of a
//! `.lrt` file (mmap, flash, `include_bytes!`), a [`Session`] keeps its state and
//! scratch in one byte slice the caller provides ([`Model::arena_bytes`] says how
//! big). The `std` feature adds file loading through memmap2 and the `.lrt` writer.
//!
//! Layers, bottom-up: [`kernels`] and [`config`] → [`format`] (bytes → validated
//! [`Model`]) → [`model`] (arena, session, layers, attention) → [`audio`] (the
//! speech front-end) and [`decode`] (greedy CTC, endpoints).
//!
//! ```no_run
//! # fn main() -> Result<(), linrt::Error> {
//! let file = linrt::ModelFile::open("model.lrt")?;
//! let model = file.model()?;
//! let opts = linrt::SessionOptions::default();
//! let mut arena = vec![0u8; model.arena_bytes(opts)?];
//! let mut session = linrt::Session::new(&model, &mut arena, opts)?;
//! let mut out = vec![0f32; model.config().output_dim()];
//! session.step(linrt::Input::Token(3), &mut out)?;
//! # Ok(()) }
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]

mod aligned;
pub mod asr;
pub mod audio;
pub mod carve;
pub mod config;
pub mod decode;
pub mod error;
pub mod format;
pub mod kernels;
pub mod model;
pub mod rng;
pub mod tensor;

pub use aligned::Aligned;
pub use config::{
    Activation, FeatureMap, FeatureParams, InputKind, ModelConfig, NormPlacement, OutputKind, Positional,
};
pub use error::Error;
#[cfg(feature = "std")]
pub use format::{writer::LrtWriter, AlignedBytes, ModelFile};
pub use format::{DType, Model, TensorRole};
pub use kernels::{KernelPath, Kernels};
pub use model::{
    Backend, Cpu, CpuPrepared, Input, Inputs, Session, SessionOptions, StreamState, Workspace, STATE_HEADER_BYTES,
};
