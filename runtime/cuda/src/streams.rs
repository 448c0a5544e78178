//! B streams of one model on its device, with their workspace: the convenient way to
//! use the CUDA backend ([`crate::Cuda`]) when one caller owns all the streams.

use crate::device::{forward, CudaModel, CudaState, CudaWorkspace};
use crate::error::CudaError;
use crate::io::IoMemory;
use linrt::Inputs;

/// `streams` independent streams advanced together by [`CudaStreams::forward`]
/// (B streams × T positions per pass, T ≤ `max_positions`).
pub struct CudaStreams<'a, 'm> {
    model: &'a CudaModel<'m>,
    workspace: CudaWorkspace,
    states: Vec<CudaState>,
}

impl<'a, 'm> CudaStreams<'a, 'm> {
    /// Zero states and a workspace for passes of `streams × max_positions` rows;
    /// inputs and outputs mapped on an integrated GPU, copied on a discrete one.
    pub fn new(model: &'a CudaModel<'m>, streams: usize, max_positions: usize) -> Result<Self, CudaError> {
        let rows = streams.checked_mul(max_positions).ok_or(linrt::Error::SizeOverflow)?;
        let workspace = CudaWorkspace::new(model, rows)?;
        Self::with_workspace(model, streams, workspace)
    }

    /// [`CudaStreams::new`] with the host-exchanged buffers where `io` says.
    pub fn with_io(
        model: &'a CudaModel<'m>,
        streams: usize,
        max_positions: usize,
        io: IoMemory,
    ) -> Result<Self, CudaError> {
        let rows = streams.checked_mul(max_positions).ok_or(linrt::Error::SizeOverflow)?;
        let workspace = CudaWorkspace::with_io(model, rows, io)?;
        Self::with_workspace(model, streams, workspace)
    }

    fn with_workspace(model: &'a CudaModel<'m>, streams: usize, workspace: CudaWorkspace) -> Result<Self, CudaError> {
        let states = (0..streams).map(|_| CudaState::new(model)).collect::<Result<Vec<_>, _>>()?;
        Ok(CudaStreams { model, workspace, states })
    }

    pub fn streams(&self) -> usize {
        self.states.len()
    }

    /// Positions stream `i` has consumed since it was created, reset or restored.
    pub fn position(&self, i: usize) -> u64 {
        self.states[i].position()
    }

    /// Forgets stream `i`: zero state, position 0.
    pub fn reset(&mut self, i: usize) -> Result<(), CudaError> {
        self.states[i].reset(self.model)
    }

    /// Bytes [`CudaStreams::save_state`] writes (the CPU session's count).
    pub fn state_bytes(&self) -> usize {
        CudaState::saved_bytes(self.model).unwrap_or(0)
    }

    /// Stream `i`'s state in the CPU's saved-state format.
    pub fn save_state(&self, i: usize, out: &mut [u8]) -> Result<usize, CudaError> {
        self.states[i].save(self.model, out)
    }

    /// Restores stream `i` from bytes [`CudaStreams::save_state`] (or a CPU session)
    /// wrote for this model. Nothing changes unless they are valid.
    pub fn restore_state(&mut self, i: usize, bytes: &[u8]) -> Result<(), CudaError> {
        self.states[i].restore(self.model, bytes)
    }

    /// Every stream advances by T positions: `inputs` holds B·T positions stream by
    /// stream, `outputs` gets B·T rows of `output_dim`.
    pub fn forward(&mut self, inputs: Inputs, outputs: &mut [f32]) -> Result<(), CudaError> {
        let mut refs: Vec<&mut CudaState> = self.states.iter_mut().collect();
        forward(self.model, &mut self.workspace, &mut refs, inputs, outputs)
    }
}
