//! A session: one stream's recurrent state plus scratch, all inside the caller's
//! arena. Stepping never allocates; the state never grows.

use super::arena::{ArenaLayout, SessionOptions};
use super::attention::{rescale_if_grown, state_factor, MAX_STATE_EXPONENT};
use super::layer::{attend_row, encoder_layer, layer_norm_rows, FeatureScratch, Scratch};
use super::positional::add_sinusoidal;
use crate::config::{InputKind, ModelConfig, OutputKind, Positional};
use crate::error::Error;
use crate::format::{Model, TensorRole};
use crate::kernels::Kernels;

/// One position of input.
#[derive(Debug, Clone, Copy)]
pub enum Input<'x> {
    Token(u32),
    Vector(&'x [f32]),
}

/// T positions of input, for [`Session::step_chunk`].
#[derive(Debug, Clone, Copy)]
pub enum Inputs<'x> {
    Tokens(&'x [u32]),
    /// `T × input_dim` values, row-major.
    Vectors(&'x [f32]),
}

/// Saved state starts with this many bytes: magic `LRTS`, version, model checksum,
/// float count, position (u64), state exponent (u32), 4 reserved zero bytes.
pub const STATE_HEADER_BYTES: usize = 32;
const STATE_MAGIC: [u8; 4] = *b"LRTS";
/// Version 2 added the position, version 3 the state exponent (version 2 files,
/// with a 24-byte header, are still read: their exponent is 0).
const STATE_VERSION: u32 = 3;
const STATE_V2_HEADER_BYTES: usize = 24;

/// A stream running a [`Model`] with its state in a caller-provided arena.
pub struct Session<'a> {
    model: Model<'a>,
    state: &'a mut [f32],
    scratch: Scratch<'a>,
    max_chunk: usize,
    layer_state_floats: usize,
    kernels: Kernels,
    /// Positions consumed since creation or the last reset (for the position encoding).
    position: u64,
    /// The state is stored multiplied by 2^-state_exponent (see `rescale_if_grown`).
    state_exponent: u32,
}

impl<'a> Session<'a> {
    /// Carves state and scratch out of `arena` (at least
    /// [`Model::arena_bytes`]`(opts)` bytes, 4-byte aligned) and zeroes the state.
    pub fn new(model: &Model<'a>, arena: &'a mut [u8], opts: SessionOptions) -> Result<Self, Error> {
        let layout = ArenaLayout::new(model.config(), model.has_int8(), opts)?;
        let needed = layout.total_floats()?.checked_mul(4).ok_or(Error::SizeOverflow)?;
        if arena.len() < needed {
            return Err(Error::ArenaTooSmall { needed, given: arena.len() });
        }
        let floats: &'a mut [f32] = bytemuck::try_cast_slice_mut(&mut arena[..needed])
            .map_err(|_| Error::Misaligned { what: "arena", align: 4 })?;
        let (state, rest) = floats.split_at_mut(layout.state);
        // The region is padded to 64 bytes; the state itself is exactly L·(H·F·Dv + H·F).
        let state_floats = model.config().state_floats()?;
        let state = &mut state[..state_floats];
        let (hidden, rest) = rest.split_at_mut(layout.hidden);
        let (normed, rest) = rest.split_at_mut(layout.normed);
        let (query, rest) = rest.split_at_mut(layout.query);
        let (key, rest) = rest.split_at_mut(layout.key);
        let (value, rest) = rest.split_at_mut(layout.value);
        let (attended, rest) = rest.split_at_mut(layout.attended);
        let (ffn, rest) = rest.split_at_mut(layout.ffn);
        let (quant, rest) = rest.split_at_mut(layout.quant);
        let (q_features, rest) = rest.split_at_mut(layout.q_features);
        let (k_features, rest) = rest.split_at_mut(layout.k_features);
        let (projected, zeros) = rest.split_at_mut(layout.projected);
        zeros.fill(0.0); // the Ω projection's bias: nothing writes it again
        let features = FeatureScratch { q: q_features, k: k_features, projected, zeros };
        let mut session = Session {
            model: *model,
            state,
            scratch: Scratch { hidden, normed, query, key, value, attended, ffn, quant, features },
            kernels: match opts.kernels {
                Some(path) => Kernels::with_path(path)?,
                None => Kernels::detect(),
            },
            max_chunk: opts.max_chunk,
            layer_state_floats: state_floats / model.config().n_layers as usize,
            position: 0,
            state_exponent: 0,
        };
        session.reset();
        Ok(session)
    }

    pub fn config(&self) -> &ModelConfig {
        self.model.config()
    }

    /// The kernel set this session runs.
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// Forgets the stream: zero state and position 0, as at creation.
    pub fn reset(&mut self) {
        self.state.fill(0.0);
        self.position = 0;
        self.state_exponent = 0;
    }

    /// The state is stored multiplied by 2^-this: it grows by 20 each time a
    /// normaliser z passes 2^20, so that endless streams never overflow. Outputs do
    /// not depend on it.
    pub fn state_exponent(&self) -> u32 {
        self.state_exponent
    }

    /// Positions this stream has consumed since creation or the last reset.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Advances the stream by one position with the recurrent form and writes
    /// `output_dim` values to `output`.
    pub fn step(&mut self, input: Input, output: &mut [f32]) -> Result<(), Error> {
        let inputs = match input {
            Input::Token(ref t) => Inputs::Tokens(core::slice::from_ref(t)),
            Input::Vector(v) => Inputs::Vectors(v),
        };
        self.run(inputs, 1, output)
    }

    /// Advances the stream by T positions at once with the causal parallel form
    /// (1 ≤ T ≤ `max_chunk`); `output` gets `T × output_dim` values. Equal to T
    /// calls of [`Session::step`] up to f32 rounding.
    pub fn step_chunk(&mut self, inputs: Inputs, output: &mut [f32]) -> Result<(), Error> {
        let t = match inputs {
            Inputs::Tokens(ids) => ids.len(),
            Inputs::Vectors(v) => v.len() / self.config().input_width().max(1),
        };
        if t == 0 || t > self.max_chunk {
            return Err(Error::BadChunkLength { len: t, max: self.max_chunk });
        }
        self.run(inputs, t, output)
    }

    /// Steps several independent streams at once: `sessions[i]` takes `inputs[i]`
    /// and `outputs` gets their `output_dim` rows in order. One pass over the
    /// weights serves them all: the projections and feed-forward blocks run
    /// matrix-matrix over the batch, and each stream's attention uses its own state
    /// (and position). Equal to stepping each session alone. The first session
    /// does the work in its scratch: its arena must be sized for `max_chunk` ≥ the
    /// batch; the others need only their state. All must run the same model with
    /// the same kernels.
    pub fn step_batch(sessions: &mut [Session<'a>], inputs: &[Input], outputs: &mut [f32]) -> Result<(), Error> {
        let b = sessions.len();
        if inputs.len() != b {
            return Err(Error::BadLength { what: "batch inputs", expected: b, found: inputs.len() });
        }
        let Some((first, rest)) = sessions.split_first_mut() else {
            return Err(Error::BatchTooLarge { batch: 0, max: 0 });
        };
        if b > first.max_chunk {
            return Err(Error::BatchTooLarge { batch: b, max: first.max_chunk });
        }
        if rest
            .iter()
            .any(|s| s.model.checksum() != first.model.checksum() || s.model.file_size() != first.model.file_size())
        {
            return Err(Error::BatchMismatch { reason: "the sessions run different models" });
        }
        if rest.iter().any(|s| s.kernels.path() != first.kernels.path()) {
            return Err(Error::BatchMismatch { reason: "the sessions use different kernel paths" });
        }
        let cfg = *first.model.config();
        let expected_out = b.checked_mul(cfg.output_dim()).ok_or(Error::SizeOverflow)?;
        if outputs.len() != expected_out {
            return Err(Error::BadLength { what: "output", expected: expected_out, found: outputs.len() });
        }
        let d = cfg.d_model as usize;
        for (row, input) in inputs.iter().enumerate() {
            let one = match input {
                Input::Token(t) => Inputs::Tokens(core::slice::from_ref(t)),
                Input::Vector(v) => Inputs::Vectors(v),
            };
            first.embed(one, 1, row)?;
        }
        // Positions: each stream its own.
        if cfg.positional == Positional::Sinusoidal {
            let rows = first.scratch.hidden[..b * d].chunks_exact_mut(d);
            let positions = core::iter::once(first.position).chain(rest.iter().map(|s| s.position));
            for (row, position) in rows.zip(positions) {
                add_sinusoidal(row, d, position);
            }
        }
        first.position = first.position.saturating_add(1);
        rest.iter_mut().for_each(|s| s.position = s.position.saturating_add(1));
        let kern = first.kernels;
        let lsf = first.layer_state_floats;
        let first_factor = state_factor(first.state_exponent);
        for layer in 0..cfg.n_layers {
            let weights = first.model.layer(layer)?;
            let span = layer as usize * lsf..(layer as usize + 1) * lsf;
            let first_state = &mut first.state[span.clone()];
            let mut attend = |row: usize, q: &[f32], k: &mut [f32], v: &[f32], out: &mut [f32]| {
                if row == 0 {
                    attend_row(&kern, &cfg, first_state, first_factor, q, k, v, out);
                } else {
                    let other = &mut rest[row - 1];
                    let factor = state_factor(other.state_exponent);
                    attend_row(&kern, &cfg, &mut other.state[span.clone()], factor, q, k, v, out);
                }
            };
            encoder_layer(&kern, &cfg, &weights, &mut first.scratch, b, &mut attend);
        }
        let z_offset = cfg.feature_width() * cfg.d_value as usize;
        for session in core::iter::once(&mut *first).chain(rest.iter_mut()) {
            session.state_exponent =
                rescale_if_grown(&session.kernels, session.state, lsf, z_offset, session.state_exponent);
        }
        first.head(b, outputs)
    }

    fn run(&mut self, inputs: Inputs, t: usize, output: &mut [f32]) -> Result<(), Error> {
        let cfg = *self.model.config();
        let expected_out = t.checked_mul(cfg.output_dim()).ok_or(Error::SizeOverflow)?;
        if output.len() != expected_out {
            return Err(Error::BadLength { what: "output", expected: expected_out, found: output.len() });
        }
        self.embed(inputs, t, 0)?;
        let d = cfg.d_model as usize;
        if cfg.positional == Positional::Sinusoidal {
            add_sinusoidal(&mut self.scratch.hidden[..t * d], d, self.position);
        }
        self.position = self.position.saturating_add(t as u64);
        // Each layer's state is `[S: H×F×Dv][z: H×F]`, layers back to back; the
        // chunk's rows go through it in order.
        let (kern, factor) = (self.kernels, state_factor(self.state_exponent));
        for (layer, state) in (0..cfg.n_layers).zip(self.state.chunks_exact_mut(self.layer_state_floats)) {
            let weights = self.model.layer(layer)?;
            let mut attend = |_: usize, q: &[f32], k: &mut [f32], v: &[f32], out: &mut [f32]| {
                attend_row(&kern, &cfg, state, factor, q, k, v, out)
            };
            encoder_layer(&kern, &cfg, &weights, &mut self.scratch, t, &mut attend);
        }
        let z_offset = cfg.feature_width() * cfg.d_value as usize;
        self.state_exponent =
            rescale_if_grown(&self.kernels, self.state, self.layer_state_floats, z_offset, self.state_exponent);
        self.head(t, output)
    }

    /// The final norm and the output head over the first `t` rows of the scratch.
    fn head(&mut self, t: usize, output: &mut [f32]) -> Result<(), Error> {
        let cfg = *self.model.config();
        let d = cfg.d_model as usize;
        let x = &mut self.scratch.hidden[..t * d];
        if cfg.final_norm {
            let g = self.model.f32_tensor(TensorRole::FinalNormWeight, 0)?;
            let b = self.model.f32_tensor(TensorRole::FinalNormBias, 0)?;
            layer_norm_rows(&self.kernels, x, d, g, b, cfg.layernorm_eps);
        }
        match cfg.output_kind {
            OutputKind::Hidden => output.copy_from_slice(x),
            OutputKind::Linear => {
                let w = self.model.matrix(TensorRole::OutputWeight, 0)?;
                let b = self.model.f32_tensor(TensorRole::OutputBias, 0)?;
                let int8 = !self.scratch.quant.is_empty();
                let a = self.kernels.activations(x, t, d, int8, self.scratch.quant);
                self.kernels.matmul(&w, b, &a, output);
            }
        }
        Ok(())
    }

    /// Writes the first hidden vectors of T positions into scratch rows `at..at + t`.
    fn embed(&mut self, inputs: Inputs, t: usize, at: usize) -> Result<(), Error> {
        let cfg = *self.model.config();
        let d = cfg.d_model as usize;
        let x = &mut self.scratch.hidden[at * d..(at + t) * d];
        match (cfg.input_kind, inputs) {
            (InputKind::Tokens, Inputs::Tokens(ids)) => {
                let table = self.model.f32_tensor(TensorRole::Embedding, 0)?;
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
                    let w = self.model.matrix(TensorRole::InputWeight, 0)?;
                    let b = self.model.f32_tensor(TensorRole::InputBias, 0)?;
                    let int8 = !self.scratch.quant.is_empty();
                    let a = self.kernels.activations(v, t, width, int8, self.scratch.quant);
                    self.kernels.matmul(&w, b, &a, x);
                } else {
                    x.copy_from_slice(v);
                }
            }
            _ => return Err(Error::WrongInputKind { expected: cfg.input_kind }),
        }
        Ok(())
    }

    /// Bytes [`Session::save_state`] writes.
    pub fn state_bytes(&self) -> usize {
        STATE_HEADER_BYTES + 4 * self.state.len()
    }

    /// Writes the stream's state (tagged with the model's checksum) to `out`;
    /// returns the number of bytes written.
    pub fn save_state(&self, out: &mut [u8]) -> Result<usize, Error> {
        let n = self.state_bytes();
        if out.len() < n {
            return Err(Error::BadLength { what: "state buffer", expected: n, found: out.len() });
        }
        out[0..4].copy_from_slice(&STATE_MAGIC);
        out[4..8].copy_from_slice(&STATE_VERSION.to_le_bytes());
        out[8..12].copy_from_slice(&self.model.checksum().to_le_bytes());
        out[12..16].copy_from_slice(&(self.state.len() as u32).to_le_bytes());
        out[16..24].copy_from_slice(&self.position.to_le_bytes());
        out[24..28].copy_from_slice(&self.state_exponent.to_le_bytes());
        out[28..32].fill(0);
        for (dst, v) in out[STATE_HEADER_BYTES..n].chunks_exact_mut(4).zip(self.state.iter()) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
        Ok(n)
    }

    /// Restores a state written by [`Session::save_state`] for the same model.
    /// Nothing changes unless the whole state is valid.
    pub fn restore_state(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if bytes.len() < 8 {
            return Err(Error::BadState { reason: "wrong length for this model" });
        }
        let word = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        if bytes[0..4] != STATE_MAGIC || !(2..=STATE_VERSION).contains(&word(4)) {
            return Err(Error::BadState { reason: "not a linrt state" });
        }
        let header = if word(4) == 2 { STATE_V2_HEADER_BYTES } else { STATE_HEADER_BYTES };
        if bytes.len() != header + 4 * self.state.len() {
            return Err(Error::BadState { reason: "wrong length for this model" });
        }
        let exponent = if header == STATE_HEADER_BYTES { word(24) } else { 0 };
        if exponent > MAX_STATE_EXPONENT {
            return Err(Error::BadState { reason: "state exponent out of range" });
        }
        if word(8) != self.model.checksum() || word(12) as usize != self.state.len() {
            return Err(Error::BadState { reason: "saved from a different model" });
        }
        let values = bytes[header..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        if values.clone().any(|v| !v.is_finite()) {
            return Err(Error::BadState { reason: "contains NaN or infinite values" });
        }
        for (dst, v) in self.state.iter_mut().zip(values) {
            *dst = v;
        }
        self.position = u64::from_le_bytes(core::array::from_fn(|i| bytes[16 + i]));
        self.state_exponent = exponent;
        Ok(())
    }
}
