//! A session: one stream's recurrent state plus a workspace, all inside the
//! caller's arena. Stepping never allocates; the state never grows.

use super::arena::{ArenaLayout, SessionOptions};
use super::backend::{forward_rows, Embed, States};
use super::prepared::CpuPrepared;
use super::state::StreamState;
use super::workspace::Workspace;
use crate::config::ModelConfig;
use crate::error::Error;
use crate::format::Model;
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

/// A stream running a [`Model`] with its state and workspace in a caller-provided
/// arena: the convenient one-stream wrapper of [`StreamState`], [`Workspace`] and
/// the CPU backend's forward pass.
pub struct Session<'a> {
    weights: CpuPrepared<'a>,
    state: StreamState<'a>,
    workspace: Workspace<'a>,
    max_chunk: usize,
    kernels: Kernels,
}

impl<'a> Session<'a> {
    /// Carves state and workspace out of `arena` (at least
    /// [`Model::arena_bytes`]`(opts)` bytes, 4-byte aligned) and zeroes the state.
    pub fn new(model: &Model<'a>, arena: &'a mut [u8], opts: SessionOptions) -> Result<Self, Error> {
        Self::with_prepared(&CpuPrepared::unprepared(model), arena, opts)
    }

    /// As [`Session::new`], running weights the CPU backend prepared
    /// ([`super::Backend::prepare`]), which any number of sessions can share.
    pub fn with_prepared(weights: &CpuPrepared<'a>, arena: &'a mut [u8], opts: SessionOptions) -> Result<Self, Error> {
        let model = weights.model();
        let layout = ArenaLayout::new(model.config(), model.has_int8(), opts)?;
        let needed = layout.total_floats()?.checked_mul(4).ok_or(Error::SizeOverflow)?;
        if arena.len() < needed {
            return Err(Error::ArenaTooSmall { needed, given: arena.len() });
        }
        let floats: &'a mut [f32] = bytemuck::try_cast_slice_mut(&mut arena[..needed])
            .map_err(|_| Error::Misaligned { what: "arena", align: 4 })?;
        // The state region is padded to 64 bytes; the workspace follows it.
        let (state, workspace) = floats.split_at_mut(layout.state);
        let kernels = match opts.kernels {
            Some(path) => Kernels::with_path(path)?,
            None => Kernels::detect(),
        };
        Ok(Session {
            weights: *weights,
            state: StreamState::new(model, state)?,
            workspace: Workspace::new(model, workspace, opts.max_chunk)?,
            max_chunk: opts.max_chunk,
            kernels,
        })
    }

    fn model(&self) -> &Model<'a> {
        self.weights.model()
    }

    pub fn config(&self) -> &ModelConfig {
        self.weights.model().config()
    }

    /// The kernel set this session runs.
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// Forgets the stream: zero state and position 0, as at creation.
    pub fn reset(&mut self) {
        self.state.reset();
    }

    /// The state is stored multiplied by 2^-this: it grows by 20 each time a
    /// normaliser z passes 2^20, so that endless streams never overflow. Outputs do
    /// not depend on it.
    pub fn state_exponent(&self) -> u32 {
        self.state.exponent()
    }

    /// Positions this stream has consumed since creation or the last reset.
    pub fn position(&self) -> u64 {
        self.state.position()
    }

    /// The stream's state.
    pub fn state(&self) -> &StreamState<'a> {
        &self.state
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

    fn run(&mut self, inputs: Inputs, t: usize, output: &mut [f32]) -> Result<(), Error> {
        let Session { weights, state, workspace, kernels, .. } = self;
        let mut one = OneState(state);
        forward_rows(kernels, weights, workspace, &mut one, t, Embed::All(inputs), output)
    }

    /// Steps several independent streams at once: `sessions[i]` takes `inputs[i]`
    /// and `outputs` gets their `output_dim` rows in order. One pass over the
    /// weights serves them all: the projections and feed-forward blocks run
    /// matrix-matrix over the batch, and each stream's attention uses its own state
    /// (and position). Equal to stepping each session alone. The first session
    /// does the work in its workspace: its arena must be sized for `max_chunk` ≥
    /// the batch; the others need only their state. (The [`Backend`] seam takes a
    /// workspace of its own and bare [`StreamState`]s instead.) All must run the
    /// same model with the same kernels.
    ///
    /// [`Backend`]: super::Backend
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
        if rest.iter().any(|s| {
            s.model().checksum() != first.model().checksum() || s.model().file_size() != first.model().file_size()
        }) {
            return Err(Error::BatchMismatch { reason: "the sessions run different models" });
        }
        if rest.iter().any(|s| s.kernels.path() != first.kernels.path()) {
            return Err(Error::BatchMismatch { reason: "the sessions use different kernel paths" });
        }
        let Session { weights, state, workspace, kernels, .. } = first;
        let mut states = BatchStates { first: state, rest };
        forward_rows(kernels, weights, workspace, &mut states, 1, Embed::PerStream(inputs), outputs)
    }

    /// Bytes [`Session::save_state`] writes.
    pub fn state_bytes(&self) -> usize {
        self.state.saved_bytes()
    }

    /// Writes the stream's state (tagged with the model's checksum) to `out`;
    /// returns the number of bytes written.
    pub fn save_state(&self, out: &mut [u8]) -> Result<usize, Error> {
        self.state.save(out)
    }

    /// Restores a state written by [`Session::save_state`] for the same model.
    /// Nothing changes unless the whole state is valid.
    pub fn restore_state(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.state.restore(bytes)
    }
}

/// One session's stream.
struct OneState<'s, 'x>(&'s mut StreamState<'x>);

impl<'x> States<'x> for OneState<'_, 'x> {
    fn count(&self) -> usize {
        1
    }
    #[inline]
    fn get(&mut self, _: usize) -> &mut StreamState<'x> {
        self.0
    }
}

/// A batch of sessions' streams: the first's state, then each other's.
struct BatchStates<'s, 'x> {
    first: &'s mut StreamState<'x>,
    rest: &'s mut [Session<'x>],
}

impl<'x> States<'x> for BatchStates<'_, 'x> {
    fn count(&self) -> usize {
        1 + self.rest.len()
    }
    fn get(&mut self, i: usize) -> &mut StreamState<'x> {
        match i {
            0 => self.first,
            _ => &mut self.rest[i - 1].state,
        }
    }
}
