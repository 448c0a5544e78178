//! The recognizer's decoder — greedy CTC, or the beam search constrained by a
//! lexicon (and optionally a grammar and hotwords) — behind one interface, and the
//! transcript so far written out as text and words into caller memory.

use crate::decode::text::Token;
use crate::decode::{
    BeamConfig, BeamDecoder, BeamMemory, CtcDecoder, DecodedWord, Grammar, Hotwords, Lexicon, WordPrior, MAX_TOKENS,
    MAX_WORD_SYMBOLS,
};
use crate::Error;

use super::AsrInfo;

/// How the recognizer turns logits into symbols and words.
// Greedy holds its 1,024 symbols inline (16 KB): no heap to box them in; the
// caller places the recognizer (a static, a Box).
#[allow(clippy::large_enum_variant)]
pub enum Decoder<'m> {
    /// The best symbol per step: fast, any spelling.
    Greedy(CtcDecoder),
    /// Prefix beam search over the words of a lexicon (and grammar).
    Beam(BeamDecoder<'m>),
}

impl<'m> Decoder<'m> {
    /// Greedy CTC over `info`'s symbols (blank 0, words split at its separator).
    pub fn greedy(info: &AsrInfo) -> Decoder<'static> {
        Decoder::Greedy(CtcDecoder::new(0, info.separator()))
    }

    /// The beam search over `lexicon`'s words (finished), with an optional grammar
    /// and hotwords, in `memory` ([`BeamConfig::sizes`]).
    pub fn beam(
        info: &AsrInfo,
        config: BeamConfig,
        lexicon: &'m Lexicon<'m>,
        grammar: Option<&'m Grammar<'m>>,
        hotwords: Option<&'m Hotwords<'m>>,
        memory: BeamMemory<'m>,
    ) -> Result<Decoder<'m>, Error> {
        let separator = info
            .separator()
            .ok_or(Error::BadDecoder { reason: "the beam decoder needs a word separator symbol (\" \")" })?;
        Ok(Decoder::Beam(BeamDecoder::new(config, 0, separator, lexicon, grammar, hotwords, memory)?))
    }

    /// Makes the beam search score words by the one before them too (see
    /// [`BeamDecoder::set_word_prior`]); greedy decoding stays as it is. In place:
    /// a `Decoder` holds greedy's 16 KB inline, and a move by value would put
    /// another copy on a microcontroller's stack.
    pub fn set_word_prior(&mut self, prior: Option<&'m WordPrior<'m>>) {
        if let Decoder::Beam(d) = self {
            d.set_word_prior(prior);
        }
    }

    /// The beam's configuration (None: greedy).
    pub fn beam_config(&self) -> Option<&BeamConfig> {
        match self {
            Decoder::Greedy(_) => None,
            Decoder::Beam(d) => Some(d.config()),
        }
    }

    /// Decodes one step; true when the transcript so far changed.
    pub fn push(&mut self, logits: &[f32]) -> Result<bool, Error> {
        match self {
            Decoder::Greedy(d) => Ok(d.push(logits)),
            Decoder::Beam(d) => d.push(logits),
        }
    }

    pub fn steps(&self) -> u64 {
        match self {
            Decoder::Greedy(d) => d.steps(),
            Decoder::Beam(d) => d.steps(),
        }
    }

    pub fn utterance_start(&self) -> u64 {
        match self {
            Decoder::Greedy(d) => d.utterance_start(),
            Decoder::Beam(d) => d.utterance_start(),
        }
    }

    pub fn trailing_silence(&self) -> u64 {
        match self {
            Decoder::Greedy(d) => d.trailing_silence(),
            Decoder::Beam(d) => d.trailing_silence(),
        }
    }

    /// No room for another symbol or word: the utterance must end.
    pub fn is_full(&self) -> bool {
        match self {
            Decoder::Greedy(d) => d.is_full(),
            Decoder::Beam(d) => d.is_full(),
        }
    }

    /// Nothing decoded in this utterance yet.
    pub fn is_empty(&self) -> bool {
        match self {
            Decoder::Greedy(d) => d.tokens().is_empty(),
            Decoder::Beam(d) => d.is_empty(),
        }
    }

    pub fn rewind(&mut self, steps: u64) -> bool {
        match self {
            Decoder::Greedy(d) => d.rewind(steps),
            Decoder::Beam(d) => d.rewind(steps),
        }
    }

    /// Ends the utterance.
    pub fn reset(&mut self) {
        match self {
            Decoder::Greedy(d) => d.reset(),
            Decoder::Beam(d) => d.reset(),
        }
    }

    /// Back to the start of a stream (step 0).
    pub fn clear(&mut self) {
        match self {
            Decoder::Greedy(d) => d.clear(),
            Decoder::Beam(d) => d.clear(),
        }
    }

    /// Writes the transcript so far (`last` false: the best hypothesis, with the
    /// word being spelled) or the utterance's result (`last` true) into `out`.
    /// `finals` holds the beam's final words on the way.
    pub(super) fn write_words(
        &self,
        info: &AsrInfo,
        last: bool,
        finals: &mut [DecodedWord],
        out: &mut Transcript,
    ) -> Result<(), Error> {
        match self {
            Decoder::Greedy(d) => {
                let separator = info.separator();
                let mut in_word = false;
                for token in d.tokens() {
                    if Some(token.id) == separator {
                        in_word = false;
                        continue;
                    }
                    if in_word {
                        out.extend_to(token.step + 1);
                    } else {
                        out.begin_word(token.step, token.step + 1, None)?;
                    }
                    out.push_str(info.symbol(token.id as usize))?;
                    in_word = true;
                }
            }
            Decoder::Beam(d) => {
                let lexicon = d.lexicon();
                let mut symbols = [0u32; MAX_WORD_SYMBOLS];
                let mut spell = |out: &mut Transcript, node: u32, start: u64, end: u64, confidence| {
                    out.begin_word(start, end, confidence)?;
                    let n = lexicon.spelling(node, &mut symbols);
                    for &s in &symbols[..n] {
                        out.push_str(info.symbol(s as usize))?;
                    }
                    Ok::<(), Error>(())
                };
                let words = if last {
                    let n = d.final_words(finals)?;
                    &finals[..n]
                } else {
                    d.partial_words()
                };
                for w in words {
                    spell(out, lexicon.word_node(w.word), w.start, w.end, Some(w.confidence))?;
                }
                if !last {
                    let mut spelling = [0u32; MAX_WORD_SYMBOLS];
                    let (n, start) = d.partial_spelling(&mut spelling);
                    if n > 0 {
                        out.begin_word(start, d.steps(), None)?;
                        for &s in &spelling[..n] {
                            out.push_str(info.symbol(s as usize))?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Words one transcript can hold with this decoder: every greedy symbol may be a
/// word; the beam's words, and the one being spelled.
pub(super) fn max_words(beam: Option<&BeamConfig>) -> usize {
    match beam {
        None => MAX_TOKENS,
        Some(c) => c.max_words.saturating_add(1),
    }
}

/// Bytes one transcript can take: every symbol at the longest symbol's length and
/// a space before every word.
pub(super) fn max_text_bytes(info: &AsrInfo, beam: Option<&BeamConfig>) -> Result<usize, Error> {
    let longest = info.symbol_texts().map(str::len).max().unwrap_or(0);
    let symbols = match beam {
        None => MAX_TOKENS,
        Some(_) => max_words(beam).checked_mul(MAX_WORD_SYMBOLS).ok_or(Error::SizeOverflow)?,
    };
    symbols.checked_mul(longest).and_then(|b| b.checked_add(max_words(beam))).ok_or(Error::SizeOverflow)
}

/// One word of a transcript: where its text lies in the transcript's text, and its
/// span in steps of the utterance (first symbol to one past the last).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WordSpan {
    pub(super) text_start: u32,
    pub(super) text_end: u32,
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) confidence: Option<f32>,
}

/// A transcript being written: text (words joined by single spaces) and words, in
/// caller memory sized by [`max_text_bytes`] and [`max_words`] — so the errors
/// below mean those sizes are wrong, never that a transcript is cut.
pub(super) struct Transcript<'b> {
    pub text: &'b mut [u8],
    pub len: usize,
    pub words: &'b mut [WordSpan],
    pub count: usize,
}

impl Transcript<'_> {
    fn begin_word(&mut self, start: u64, end: u64, confidence: Option<f32>) -> Result<(), Error> {
        if self.count == self.words.len() {
            return Err(Error::CapacityExceeded { what: "transcript words", capacity: self.words.len() as u32 });
        }
        if self.count > 0 {
            self.append(" ")?;
        }
        let at = self.len as u32;
        self.words[self.count] = WordSpan { text_start: at, text_end: at, start, end, confidence };
        self.count += 1;
        Ok(())
    }

    /// Appends to the current word's text.
    fn push_str(&mut self, s: &str) -> Result<(), Error> {
        self.append(s)?;
        let len = self.len as u32;
        if let Some(w) = self.current() {
            w.text_end = len;
        }
        Ok(())
    }

    /// The current word now ends at step `end`.
    fn extend_to(&mut self, end: u64) {
        if let Some(w) = self.current() {
            w.end = end;
        }
    }

    fn current(&mut self) -> Option<&mut WordSpan> {
        self.count.checked_sub(1).and_then(|i| self.words.get_mut(i))
    }

    fn append(&mut self, s: &str) -> Result<(), Error> {
        let end = self.len + s.len();
        let Some(dst) = self.text.get_mut(self.len..end) else {
            return Err(Error::CapacityExceeded { what: "transcript bytes", capacity: self.text.len() as u32 });
        };
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl AsrInfo<'_> {
    /// Adds the words the model lists in `app.words` to `lexicon`, spelled with the
    /// model's symbols (never the blank nor the separator); the caller finishes
    /// the lexicon once any grammar and hotwords are in too. An entry that cannot
    /// be spelled is reported at line = its index + 1.
    pub fn insert_words(&self, lexicon: &mut Lexicon) -> Result<usize, Error> {
        let skip = [0, self.separator().unwrap_or(0)];
        let mut count = 0;
        self.for_each_word(|i, w| {
            let token = Token { text: w, line: i as u32 + 1, column: 1 };
            lexicon.insert_text_by(token, self.symbols(), |s| self.symbol(s), &skip)?;
            count += 1;
            Ok(())
        })?;
        Ok(count)
    }
}
