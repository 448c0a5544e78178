//! Running a model: a stream's state ([`StreamState`]), the scratch one worker
//! computes in ([`Workspace`]), the backend seam and its CPU forward pass
//! ([`Backend`], [`Cpu`]), the one-stream [`Session`] around them, the arena
//! layout, the encoder layer, its feature maps, and the linear attention itself.

mod arena;
mod attention;
mod backend;
mod features;
pub(crate) mod layer;
mod positional;
mod prepared;
mod session;
mod state;
mod workspace;

pub use arena::SessionOptions;
/// How a stream's state is kept in range (for backends that keep states elsewhere).
pub use attention::{state_factor, GROWTH_EXPONENT, GROWTH_LIMIT, MAX_STATE_EXPONENT};
pub use backend::{layer_with_attention, output_head, Backend, Cpu};
pub use layer::RawAttention;
pub use positional::add_sinusoidal;
pub use prepared::CpuPrepared;
pub use session::{Input, Inputs, Session};
pub use state::{StreamState, STATE_HEADER_BYTES};
pub use workspace::Workspace;
