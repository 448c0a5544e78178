//! Running a model: the arena layout, the session that owns a stream's state, the
//! encoder layer, its feature maps, and the linear attention itself (recurrent and
//! causal forms).

mod arena;
mod attention;
mod features;
mod layer;
mod positional;
mod session;

pub use arena::SessionOptions;
pub use session::{Input, Inputs, Session, STATE_HEADER_BYTES};
