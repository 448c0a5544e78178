//! Running a model: a stream's state ([`StreamState`]), the scratch one worker
//! computes in ([`Workspace`]), the backend seam and its CPU forward pass
//! ([`Backend`], [`Cpu`]), the one-stream [`Session`] around them, the arena
//! layout, the encoder layer, its feature maps, and the linear attention itself.

mod arena;
mod attention;
mod backend;
mod features;
mod layer;
mod positional;
mod session;
mod state;
mod workspace;

pub use arena::SessionOptions;
pub use backend::{Backend, Cpu, CpuPrepared};
pub use session::{Input, Inputs, Session};
pub use state::{StreamState, STATE_HEADER_BYTES};
pub use workspace::Workspace;
