//! A recognizer and everything it works in, carved out of one caller buffer: the
//! lexicon of the words the model lists, the beam's memory, the session's arena and
//! the recognizer's own buffers. For callers without an allocator: the firmware
//! and the C API build their recognizers this way.

use super::{AsrInfo, Decoder, Recognizer, RecognizerMemory, RecognizerSizes, WordSpan};
use crate::carve::{Budget, Carver};
use crate::decode::{BeamConfig, BeamMemory, Candidate, DecodedWord, EndpointConfig, Hypothesis, Lexicon, TrieNode};
use crate::error::Error;
use crate::format::Model;
use crate::kernels::KernelPath;

/// How to build a recognizer in a buffer.
#[derive(Debug, Clone, Copy)]
pub struct BufferedRecognizer {
    /// The beam search over the model's words with this beam; 0: greedy decoding.
    pub beam: usize,
    pub endpoint: EndpointConfig,
    /// Force a kernel path (None: the fastest this CPU runs).
    pub kernels: Option<KernelPath>,
}

impl Default for BufferedRecognizer {
    /// The beam `linrt asr` uses by default (16), its endpoints, the fastest kernels.
    fn default() -> Self {
        BufferedRecognizer { beam: 16, endpoint: EndpointConfig::default(), kernels: None }
    }
}

impl BufferedRecognizer {
    fn beam_config(&self) -> Option<BeamConfig> {
        (self.beam > 0).then(|| BeamConfig { beam: self.beam, ..BeamConfig::default() })
    }

    /// Bytes [`BufferedRecognizer::build`] takes for `model`, from a buffer of any alignment.
    pub fn bytes(&self, model: &Model) -> Result<usize, Error> {
        let info = AsrInfo::from_model(model)?;
        let mut budget = Budget::new();
        let config = self.beam_config();
        if let Some(config) = &config {
            let sizes = config.sizes(info.symbols())?;
            budget = budget
                .slice::<TrieNode>(info.word_chars().checked_add(1).ok_or(Error::SizeOverflow)?)?
                .slice::<u32>(info.word_count())?
                .slice::<u32>(info.word_count())?
                .value::<Lexicon>()?
                .slice::<Hypothesis>(sizes.hypotheses)?
                .slice::<DecodedWord>(sizes.words)?
                .slice::<Candidate>(sizes.candidates)?
                .slice::<f32>(sizes.log_probs)?;
        }
        let sizes = RecognizerSizes::new(model, &info, self.kernels, config.as_ref())?;
        let budget = budget
            .slice::<u32>(sizes.arena_bytes.div_ceil(4))?
            .slice::<f32>(sizes.floats)?
            .slice::<WordSpan>(sizes.words)?
            .slice::<DecodedWord>(sizes.finals)?
            .slice::<u8>(sizes.text_bytes)?;
        Ok(budget.bytes())
    }

    /// A recognizer for `model` in memory from `carver` (at least
    /// [`BufferedRecognizer::bytes`] free).
    pub fn build<'m>(&self, model: &Model<'m>, carver: &mut Carver<'m>) -> Result<Recognizer<'m>, Error> {
        let info = AsrInfo::from_model(model)?;
        let config = self.beam_config();
        let decoder = match &config {
            None => Decoder::greedy(&info),
            Some(config) => {
                if !info.has_words() {
                    return Err(Error::BadDecoder {
                        reason: "the beam decoder needs the words the model lists (app.words)",
                    });
                }
                let nodes = carver.slice::<TrieNode>(info.word_chars() + 1)?;
                let word_nodes = carver.slice::<u32>(info.word_count())?;
                let ranks = carver.slice::<u32>(info.word_count())?;
                let mut lexicon = Lexicon::new(nodes, word_nodes, ranks)?;
                info.insert_words(&mut lexicon)?;
                lexicon.finish();
                let lexicon = carver.put(lexicon)?;
                let sizes = config.sizes(info.symbols())?;
                let memory = BeamMemory {
                    hypotheses: carver.slice::<Hypothesis>(sizes.hypotheses)?,
                    words: carver.slice::<DecodedWord>(sizes.words)?,
                    candidates: carver.slice::<Candidate>(sizes.candidates)?,
                    log_probs: carver.slice::<f32>(sizes.log_probs)?,
                };
                Decoder::beam(&info, *config, lexicon, None, None, memory)?
            }
        };
        let sizes = RecognizerSizes::new(model, &info, self.kernels, config.as_ref())?;
        // The arena as 32-bit words: the session needs its 4-byte alignment.
        let arena: &mut [u32] = carver.slice::<u32>(sizes.arena_bytes.div_ceil(4))?;
        let memory = RecognizerMemory {
            arena: bytemuck::cast_slice_mut(arena),
            floats: carver.slice::<f32>(sizes.floats)?,
            words: carver.slice::<WordSpan>(sizes.words)?,
            finals: carver.slice::<DecodedWord>(sizes.finals)?,
            text: carver.slice::<u8>(sizes.text_bytes)?,
        };
        Recognizer::new(model, info, self.endpoint, self.kernels, decoder, memory)
    }
}
