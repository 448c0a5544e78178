//! A recognizer and everything it works in, carved out of one caller buffer: the
//! lexicon of the words the model lists, the beam's memory, the session's arena and
//! the recognizer's own buffers. For callers without an allocator: the firmware
//! and the C API build their recognizers this way.

use super::{AsrInfo, Decoder, Recognizer, RecognizerMemory, RecognizerSizes, WordSpan};
use crate::carve::{Budget, Carver};
use crate::decode::{
    BeamConfig, BeamMemory, Candidate, DecodedWord, EndpointConfig, Hypothesis, Lexicon, TrieNode, WordPrior,
};
use crate::error::Error;
use crate::format::Model;
use crate::kernels::KernelPath;

/// How to build a recognizer in a buffer.
#[derive(Debug, Clone, Copy)]
pub struct BufferedRecognizer {
    /// The beam search over the model's words with this beam; 0: greedy decoding.
    pub beam: usize,
    /// The beam scores words by the word before them with the model's word prior
    /// (`app.word_prior`), when it carries one.
    pub word_prior: bool,
    pub endpoint: EndpointConfig,
    /// Force a kernel path (None: the fastest this CPU runs).
    pub kernels: Option<KernelPath>,
}

impl Default for BufferedRecognizer {
    /// The beam `linrt asr` uses by default (16) with the model's word prior, its
    /// endpoints, the fastest kernels.
    fn default() -> Self {
        BufferedRecognizer { beam: 16, word_prior: true, endpoint: EndpointConfig::default(), kernels: None }
    }
}

impl BufferedRecognizer {
    fn beam_config(&self) -> Option<BeamConfig> {
        (self.beam > 0).then(|| BeamConfig { beam: self.beam, ..BeamConfig::default() })
    }

    /// Floats of the word prior the beam uses (0: none).
    fn prior_len(&self, info: &AsrInfo) -> usize {
        if self.word_prior {
            info.word_prior_len()
        } else {
            0
        }
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
                .slice::<u32>(info.word_count())?;
            let prior_len = self.prior_len(&info);
            if prior_len > 0 {
                budget = budget.slice::<f32>(prior_len)?.value::<WordPrior>()?;
            }
            budget = budget
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
                let prior = match self.prior_len(&info) {
                    0 => None,
                    len => info.read_word_prior(carver.slice::<f32>(len)?)?.map(|p| carver.put(p)).transpose()?,
                };
                let lexicon = carver.put(lexicon)?;
                let sizes = config.sizes(info.symbols())?;
                let memory = BeamMemory {
                    hypotheses: carver.slice::<Hypothesis>(sizes.hypotheses)?,
                    words: carver.slice::<DecodedWord>(sizes.words)?,
                    candidates: carver.slice::<Candidate>(sizes.candidates)?,
                    log_probs: carver.slice::<f32>(sizes.log_probs)?,
                };
                let mut decoder = Decoder::beam(&info, *config, lexicon, None, None, memory)?;
                decoder.set_word_prior(prior.map(|p| &*p));
                decoder
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
