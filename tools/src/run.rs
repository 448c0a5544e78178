//! `linrt run`: feed a `.npy` of inputs through a model, one step per row (or in
//! causal chunks), state carried, and write the outputs as `.npy`.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use linrt::{Input, InputKind, Inputs, KernelPath, Model, Session, SessionOptions};

use crate::npy::{self, NpyData};

/// The inputs of a whole run, checked against the model before anything runs.
pub enum RunInputs {
    Tokens(Vec<u32>),
    /// `T × input_dim` values.
    Vectors(Vec<f32>),
}

impl RunInputs {
    pub fn len(&self, width: usize) -> usize {
        match self {
            RunInputs::Tokens(t) => t.len(),
            RunInputs::Vectors(v) => v.len() / width.max(1),
        }
    }
    pub fn is_empty(&self) -> bool {
        match self {
            RunInputs::Tokens(t) => t.is_empty(),
            RunInputs::Vectors(v) => v.is_empty(),
        }
    }
}

/// Reads `x.npy` as `[T]` token ids or `[T, input_dim]` floats, as the model takes.
pub fn read_inputs(path: &Path, model: &Model) -> Result<RunInputs> {
    let cfg = model.config();
    let arr = npy::read(path)?;
    match (cfg.input_kind, arr.data) {
        (InputKind::Tokens, NpyData::I64(ids)) => {
            if !(arr.shape.len() == 1 || (arr.shape.len() == 2 && arr.shape[1] == 1)) {
                bail!("{}: token ids must have shape [T], got {:?}", path.display(), arr.shape);
            }
            let tokens = ids
                .iter()
                .enumerate()
                .map(|(i, &t)| {
                    u32::try_from(t).ok().filter(|&t| t < cfg.input_dim).ok_or_else(|| {
                        anyhow!(
                            "{}: token id {t} at position {i} is outside the vocabulary (0..{})",
                            path.display(),
                            cfg.input_dim
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(RunInputs::Tokens(tokens))
        }
        (InputKind::Tokens, NpyData::F32(_)) => {
            bail!("{}: this model takes integer token ids (int64 [T]), the file holds floats", path.display())
        }
        (InputKind::Vectors, NpyData::F32(values)) => {
            let width = cfg.input_dim as usize;
            if arr.shape.len() != 2 || arr.shape[1] != width {
                bail!("{}: expected shape [T, {width}], got {:?}", path.display(), arr.shape);
            }
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                bail!("{}: value at row {}, column {} is NaN or infinite", path.display(), i / width, i % width);
            }
            Ok(RunInputs::Vectors(values))
        }
        (InputKind::Vectors, NpyData::I64(_)) => {
            bail!(
                "{}: this model takes float32 vectors [T, {}], the file holds integers",
                path.display(),
                cfg.input_dim
            )
        }
    }
}

/// Runs all positions; `chunk` > 1 uses the causal parallel form that many at a time.
pub fn run_model(model: &Model, inputs: &RunInputs, chunk: usize, kernels: Option<KernelPath>) -> Result<Vec<f32>> {
    let cfg = model.config();
    if chunk == 0 {
        bail!("--chunk must be at least 1");
    }
    let width = cfg.input_width();
    let t = inputs.len(width);
    let d_out = cfg.output_dim();
    // No chunk is longer than the input: size the arena for what will run.
    let chunk = chunk.min(t.max(1));
    let opts = SessionOptions { max_chunk: chunk, kernels };
    let mut arena = crate::memory::zeroed(model.arena_bytes(opts)?, "the session's arena")?;
    let mut prepared = Vec::new();
    let weights = crate::cpu::prepare(model, kernels, &mut prepared)?;
    let mut session = Session::with_prepared(&weights, &mut arena, opts)?;
    let mut out = vec![0f32; t * d_out];
    for (c, out_chunk) in out.chunks_mut(chunk * d_out).enumerate() {
        let start = c * chunk;
        let n = out_chunk.len() / d_out.max(1);
        if chunk == 1 {
            let input = match inputs {
                RunInputs::Tokens(ids) => Input::Token(ids[start]),
                RunInputs::Vectors(v) => Input::Vector(&v[start * width..(start + 1) * width]),
            };
            session.step(input, out_chunk)?;
        } else {
            let input = match inputs {
                RunInputs::Tokens(ids) => Inputs::Tokens(&ids[start..start + n]),
                RunInputs::Vectors(v) => Inputs::Vectors(&v[start * width..(start + n) * width]),
            };
            session.step_chunk(input, out_chunk)?;
        }
    }
    Ok(out)
}

/// `max |y − expected| / max |expected|` for reference outputs stored as `[T, d_out]`.
pub fn compare_with(path: &Path, y: &[f32], t: usize, d_out: usize) -> Result<f32> {
    let arr = npy::read(path)?;
    let NpyData::F32(want) = arr.data else { bail!("{}: expected float32 outputs", path.display()) };
    if arr.shape != [t, d_out] {
        bail!("{}: shape {:?}, the run produced [{t}, {d_out}]", path.display(), arr.shape);
    }
    Ok(crate::compare::distance(y, &want).max_rel)
}
