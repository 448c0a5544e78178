//! ONNX import (feature `onnx`): read a fast-transformers style ONNX export through
//! tract-onnx, infer its hyperparameters, write a `.lrt`, and verify it against
//! tract running the same ONNX.

pub mod convert;
pub mod feature_map;
pub mod graph;
pub mod infer;
mod params;
pub mod verify;

use std::panic::{catch_unwind, AssertUnwindSafe};

use anyhow::{anyhow, Result};

/// Runs a tract call, turning a panic inside tract (it has a few on malformed
/// protobufs) into an ordinary error.
pub(crate) fn guard<T>(what: &str, f: impl FnOnce() -> tract_onnx::prelude::TractResult<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(anyhow!("{what}: {e:#}")),
        Err(_) => Err(anyhow!("{what}: tract failed on malformed input")),
    }
}
