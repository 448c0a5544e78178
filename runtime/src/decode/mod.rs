//! Decoders on top of a session's outputs: greedy CTC and a CTC beam search
//! constrained by a lexicon (with an optional grammar, hotwords and word prior) for speech
//! models, the endpoint rules that split an endless stream into utterances, and
//! token sampling for generation.

pub mod beam;
pub mod ctc;
pub mod endpoint;
pub mod grammar;
pub mod hotwords;
pub mod lexicon;
pub mod sampling;
pub mod text;
pub mod word_prior;

#[cfg(feature = "std")]
pub use beam::BeamBuffers;
pub use beam::{BeamConfig, BeamDecoder, BeamMemory, BeamSizes, Candidate, DecodedWord, Hypothesis};
pub use ctc::{CtcDecoder, Token, MAX_TOKENS};
pub use endpoint::{EndpointConfig, EndpointRule};
pub use grammar::{Grammar, GrammarArc, GrammarSet, SlotDef, GRAMMAR_STATES};
pub use hotwords::{Hotword, Hotwords};
pub use lexicon::{Lexicon, TrieNode, WordId, MAX_WORD_SYMBOLS};
pub use sampling::{Sampler, Sampling};
pub use word_prior::WordPrior;
