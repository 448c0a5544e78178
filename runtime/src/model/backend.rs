//! The seam every backend fills: prepare a model's weights once, then run forward
//! passes over any number of streams' states in one workspace.
//!
//! One forward pass takes B streams × T positions (stream-major rows): a step is
//! 1 × 1, a chunk of one stream 1 × T, a batch of streams B × 1 — one code path.
//! The projections and feed-forward blocks run matrix-matrix over all B·T rows
//! (one pass over the weights); the attention runs row by row, in order, each row
//! on its own stream's state.

use super::layer::{attend_row, encoder_layer, layer_norm_rows, Attention, RawAttention};
use super::positional::add_sinusoidal;
use super::prepared::CpuPrepared;
use super::session::{Input, Inputs};
use super::state::StreamState;
use super::workspace::Workspace;
use crate::config::{InputKind, OutputKind, Positional};
use crate::error::Error;
use crate::format::{Model, TensorRole};
use crate::kernels::{KernelPath, Kernels};

/// A way to run models: the CPU kernels here; a GPU in `linrt-cuda`, whose streams
/// and scratch live in device memory. Each backend names where it keeps a stream's
/// state and a worker's scratch; the pass itself is the same contract everywhere.
pub trait Backend {
    /// A model made ready to run: its weights in the backend's layout.
    type Prepared<'m>;
    /// One stream's recurrent state as this backend keeps it (the CPU: a
    /// [`StreamState`] in caller memory).
    type State<'s>;
    /// One worker's scratch for a pass (the CPU: a [`Workspace`] in caller memory).
    type Workspace<'w>;
    /// The runtime's [`Error`], or a backend's own that carries it.
    type Error: From<Error>;

    /// Bytes [`Backend::prepare`] needs in its arena for `model`.
    fn prepared_bytes(&self, model: &Model) -> Result<usize, Self::Error>;

    /// Makes `model` ready, keeping whatever it rearranges in `arena`.
    fn prepare<'m>(&self, model: &Model<'m>, arena: &'m mut [u8]) -> Result<Self::Prepared<'m>, Self::Error>;

    /// `states.len()` streams advance by T positions each: `inputs` holds their
    /// B·T positions stream by stream, `outputs` gets B·T rows of `output_dim`.
    fn forward(
        &self,
        prepared: &Self::Prepared<'_>,
        workspace: &mut Self::Workspace<'_>,
        states: &mut [&mut Self::State<'_>],
        inputs: Inputs,
        outputs: &mut [f32],
    ) -> Result<(), Self::Error>;
}

/// The CPU backend: the dispatched kernels of one path.
#[derive(Debug, Clone, Copy)]
pub struct Cpu {
    kernels: Kernels,
}

impl Cpu {
    /// The kernels of `path` (None: the fastest this CPU runs).
    pub fn new(path: Option<KernelPath>) -> Result<Cpu, Error> {
        let kernels = match path {
            Some(path) => Kernels::with_path(path)?,
            None => Kernels::detect(),
        };
        Ok(Cpu { kernels })
    }

    /// The backend of a kernel set chosen elsewhere.
    pub fn with_kernels(kernels: Kernels) -> Cpu {
        Cpu { kernels }
    }

    pub fn kernels(&self) -> Kernels {
        self.kernels
    }
}

impl Backend for Cpu {
    type Prepared<'m> = CpuPrepared<'m>;
    type State<'s> = StreamState<'s>;
    type Workspace<'w> = Workspace<'w>;
    type Error = Error;

    /// Zero except on a path with a panel kernel (AVX-512): about the int8 weights' size.
    fn prepared_bytes(&self, model: &Model) -> Result<usize, Error> {
        CpuPrepared::bytes(&self.kernels, model)
    }

    fn prepare<'m>(&self, model: &Model<'m>, arena: &'m mut [u8]) -> Result<CpuPrepared<'m>, Error> {
        CpuPrepared::prepare(&self.kernels, model, arena)
    }

    fn forward(
        &self,
        prepared: &CpuPrepared<'_>,
        workspace: &mut Workspace<'_>,
        states: &mut [&mut StreamState<'_>],
        inputs: Inputs,
        outputs: &mut [f32],
    ) -> Result<(), Error> {
        let cfg = prepared.model().config();
        let rows = match inputs {
            Inputs::Tokens(ids) => ids.len(),
            Inputs::Vectors(v) => v.len() / cfg.input_width().max(1),
        };
        let b = states.len();
        if b == 0 || rows == 0 || !rows.is_multiple_of(b) {
            return Err(Error::BadLength {
                what: "forward inputs (B streams × T positions)",
                expected: b,
                found: rows,
            });
        }
        if states.iter().any(|s| s.checksum() != prepared.model().checksum()) {
            return Err(Error::BatchMismatch { reason: "a state belongs to a different model" });
        }
        let mut streams = SliceStates(states);
        forward_rows(&self.kernels, prepared, workspace, &mut streams, rows / b, Embed::All(inputs), outputs)
    }
}

/// The streams of a forward pass, by index.
pub(crate) trait States<'x> {
    fn count(&self) -> usize;
    fn get(&mut self, i: usize) -> &mut StreamState<'x>;
}

struct SliceStates<'s, 'r, 'x>(&'s mut [&'r mut StreamState<'x>]);

impl<'x> States<'x> for SliceStates<'_, '_, 'x> {
    fn count(&self) -> usize {
        self.0.len()
    }
    fn get(&mut self, i: usize) -> &mut StreamState<'x> {
        self.0[i]
    }
}

/// Where a pass's inputs come from: all rows contiguous, or one position per
/// stream from its own slice (embedded row by row).
pub(crate) enum Embed<'x> {
    All(Inputs<'x>),
    PerStream(&'x [Input<'x>]),
}

/// The forward pass: `states.count()` streams × `t` positions.
pub(crate) fn forward_rows<'x, S: States<'x>>(
    kern: &Kernels,
    weights: &CpuPrepared,
    ws: &mut Workspace,
    states: &mut S,
    t: usize,
    embed: Embed,
    outputs: &mut [f32],
) -> Result<(), Error> {
    let cfg = *weights.model().config();
    let b = states.count();
    let rows = b.checked_mul(t).ok_or(Error::SizeOverflow)?;
    if rows == 0 || rows > ws.max_rows() {
        return Err(Error::BadChunkLength { len: rows, max: ws.max_rows() });
    }
    let expected_out = rows.checked_mul(cfg.output_dim()).ok_or(Error::SizeOverflow)?;
    if outputs.len() != expected_out {
        return Err(Error::BadLength { what: "output", expected: expected_out, found: outputs.len() });
    }
    match embed {
        Embed::All(inputs) => embed_rows(kern, weights, ws, inputs, rows, 0)?,
        Embed::PerStream(list) => {
            if list.len() != b {
                return Err(Error::BadLength { what: "batch inputs", expected: b, found: list.len() });
            }
            for (row, input) in list.iter().enumerate() {
                let one = match input {
                    Input::Token(t) => Inputs::Tokens(core::slice::from_ref(t)),
                    Input::Vector(v) => Inputs::Vectors(v),
                };
                embed_rows(kern, weights, ws, one, 1, row)?;
            }
        }
    }
    for i in 0..b {
        states.get(i).check_finite()?;
    }
    let d = cfg.d_model as usize;
    // Positions: each stream its own, from where it stands.
    for i in 0..b {
        let state = states.get(i);
        if cfg.positional == Positional::Sinusoidal {
            add_sinusoidal(&mut ws.scratch.hidden[i * t * d..(i + 1) * t * d], d, state.position());
        }
        state.advance(t);
    }
    for layer in 0..cfg.n_layers {
        let layer_weights = weights.layer(layer)?;
        let mut attend = |row: usize, q: &[f32], k: &mut [f32], v: &[f32], out: &mut [f32]| {
            let state = states.get(row / t);
            let factor = state.factor();
            attend_row(kern, &cfg, state.layer(layer as usize), factor, q, k, v, out)
        };
        encoder_layer(kern, &cfg, &layer_weights, &mut ws.scratch, rows, Attention::Linear(&mut attend));
        // A NaN or infinity in any S reaches its head's attention output (φ(q)·S:
        // even a zero feature gives NaN), which int8 quantization would hide from
        // the outputs further on: the check is here, where it costs H·Dv per row.
        if !all_finite(&ws.scratch.attended[..rows * cfg.v_width()]) {
            return Err(broken(states, t));
        }
    }
    let mut z_finite = true;
    for i in 0..b {
        z_finite &= states.get(i).rescale_if_grown(kern);
    }
    if !z_finite {
        return Err(broken(states, t));
    }
    head(kern, weights, ws, rows, outputs)?;
    if !all_finite(outputs) {
        return Err(broken(states, t));
    }
    Ok(())
}

fn all_finite(values: &[f32]) -> bool {
    values.iter().all(|v| v.is_finite())
}

/// A pass went non-finite: every stream in it is marked broken at the first
/// position of the pass (its state may be half updated), and the error names the
/// first stream's.
fn broken<'x, S: States<'x>>(states: &mut S, t: usize) -> Error {
    let mut first = None;
    for i in 0..states.count() {
        let state = states.get(i);
        let start = state.position().saturating_sub(t as u64);
        let error = state.mark_broken(start);
        first.get_or_insert(error);
    }
    first.unwrap_or(Error::NonFiniteStep { position: 0 })
}

/// For baselines that keep linrt's layers but replace its attention (the softmax
/// comparison of `linrt bench --paper`): the first `t` rows of the workspace
/// ([`Workspace::rows`]) through layer `layer` of `model`, every operation but the
/// attention the one linrt runs, `attention` in its place.
pub fn layer_with_attention(
    kern: &Kernels,
    model: &Model,
    layer: u32,
    ws: &mut Workspace,
    t: usize,
    attention: &mut RawAttention,
) -> Result<(), Error> {
    if t == 0 || t > ws.max_rows() {
        return Err(Error::BadChunkLength { len: t, max: ws.max_rows() });
    }
    let cfg = *model.config();
    let weights = model.layer(layer)?;
    encoder_layer(kern, &cfg, &weights, &mut ws.scratch, t, Attention::Raw(attention));
    Ok(())
}

/// The final norm and the output head over the first `t` rows of the workspace,
/// into `output` (`t × output_dim`).
pub fn output_head(
    kern: &Kernels,
    model: &Model,
    ws: &mut Workspace,
    t: usize,
    output: &mut [f32],
) -> Result<(), Error> {
    if t == 0 || t > ws.max_rows() {
        return Err(Error::BadChunkLength { len: t, max: ws.max_rows() });
    }
    let expected = t.checked_mul(model.config().output_dim()).ok_or(Error::SizeOverflow)?;
    if output.len() != expected {
        return Err(Error::BadLength { what: "output", expected, found: output.len() });
    }
    head(kern, &CpuPrepared::unprepared(model), ws, t, output)
}

/// The final norm and the output head over the first `t` rows of the workspace.
fn head(kern: &Kernels, weights: &CpuPrepared, ws: &mut Workspace, t: usize, output: &mut [f32]) -> Result<(), Error> {
    let model = weights.model();
    let cfg = *model.config();
    let d = cfg.d_model as usize;
    let s = &mut ws.scratch;
    let x = &mut s.hidden[..t * d];
    if cfg.final_norm {
        let g = model.f32_tensor(TensorRole::FinalNormWeight, 0)?;
        let b = model.f32_tensor(TensorRole::FinalNormBias, 0)?;
        layer_norm_rows(kern, x, d, g, b, cfg.layernorm_eps);
    }
    match cfg.output_kind {
        OutputKind::Hidden => output.copy_from_slice(x),
        OutputKind::Linear => {
            let w = weights.matrix(TensorRole::OutputWeight, 0)?;
            let b = model.f32_tensor(TensorRole::OutputBias, 0)?;
            let int8 = !s.quant.is_empty();
            let a = kern.activations(x, t, d, int8, s.quant);
            kern.matmul(&w, b, &a, output);
        }
    }
    Ok(())
}

/// Writes the first hidden vectors of `t` positions into workspace rows `at..at + t`.
fn embed_rows(
    kern: &Kernels,
    weights: &CpuPrepared,
    ws: &mut Workspace,
    inputs: Inputs,
    t: usize,
    at: usize,
) -> Result<(), Error> {
    let model = weights.model();
    let cfg = *model.config();
    let d = cfg.d_model as usize;
    let s = &mut ws.scratch;
    let x = &mut s.hidden[at * d..(at + t) * d];
    match (cfg.input_kind, inputs) {
        (InputKind::Tokens, Inputs::Tokens(ids)) => {
            let table = model.f32_tensor(TensorRole::Embedding, 0)?;
            for (&id, row) in ids.iter().zip(x.chunks_exact_mut(d)) {
                if id >= cfg.input_dim {
                    return Err(Error::TokenOutOfRange { token: id, vocab: cfg.input_dim });
                }
                let at = id as usize * d;
                row.copy_from_slice(&table[at..at + d]);
            }
        }
        (InputKind::Vectors, Inputs::Vectors(v)) => {
            let width = cfg.input_dim as usize;
            if v.len() != t * width {
                return Err(Error::BadLength { what: "input", expected: t * width, found: v.len() });
            }
            if let Some(index) = v.iter().position(|x| !x.is_finite()) {
                return Err(Error::NonFiniteInput { index });
            }
            if cfg.input_projection {
                let w = weights.matrix(TensorRole::InputWeight, 0)?;
                let b = model.f32_tensor(TensorRole::InputBias, 0)?;
                let int8 = !s.quant.is_empty();
                let a = kern.activations(v, t, width, int8, s.quant);
                kern.matmul(&w, b, &a, x);
            } else {
                x.copy_from_slice(v);
            }
        }
        _ => return Err(Error::WrongInputKind { expected: cfg.input_kind }),
    }
    Ok(())
}
