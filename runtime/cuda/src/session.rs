//! One stream on the GPU, with the CPU session's contract: step, step_chunk, reset,
//! save/restore (bytes interchangeable with the CPU's), typed errors.

use crate::device::CudaModel;
use crate::error::CudaError;
use crate::streams::CudaStreams;
use linrt::{Input, Inputs};

/// A single stream: [`CudaStreams`] of one, whose passes hold up to `max_chunk`
/// positions.
pub struct CudaSession<'a, 'm> {
    streams: CudaStreams<'a, 'm>,
}

impl<'a, 'm> CudaSession<'a, 'm> {
    pub fn new(model: &'a CudaModel<'m>, max_chunk: usize) -> Result<Self, CudaError> {
        Ok(CudaSession { streams: CudaStreams::new(model, 1, max_chunk.max(1))? })
    }

    /// One position in, one output row out.
    pub fn step(&mut self, input: Input, output: &mut [f32]) -> Result<(), CudaError> {
        match input {
            Input::Token(t) => self.streams.forward(Inputs::Tokens(core::slice::from_ref(&t)), output),
            Input::Vector(v) => self.streams.forward(Inputs::Vectors(v), output),
        }
    }

    /// T positions in one pass (T ≤ max_chunk), T output rows out.
    pub fn step_chunk(&mut self, inputs: Inputs, output: &mut [f32]) -> Result<(), CudaError> {
        self.streams.forward(inputs, output)
    }

    pub fn reset(&mut self) -> Result<(), CudaError> {
        self.streams.reset(0)
    }

    pub fn position(&self) -> u64 {
        self.streams.position(0)
    }

    pub fn state_bytes(&self) -> usize {
        self.streams.state_bytes()
    }

    pub fn save_state(&self, out: &mut [u8]) -> Result<usize, CudaError> {
        self.streams.save_state(0, out)
    }

    pub fn restore_state(&mut self, bytes: &[u8]) -> Result<(), CudaError> {
        self.streams.restore_state(0, bytes)
    }
}
