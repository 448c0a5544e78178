//! Decoders on top of a session's outputs: greedy CTC for speech models, with
//! the endpoint rules that split an endless stream into utterances, and token
//! sampling for generation.

pub mod ctc;
pub mod endpoint;
pub mod sampling;

pub use ctc::{CtcDecoder, Token, MAX_TOKENS};
pub use endpoint::{EndpointConfig, EndpointRule};
pub use sampling::{Sampler, Sampling};
