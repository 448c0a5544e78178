//! Greedy CTC decoding, one step at a time: the best symbol per step, repeats
//! merged, blanks dropped. Tokens keep the step they were emitted at, for word
//! times; the decoder also counts the trailing silence the endpoint rules need.

use heapless::Vec;

/// Tokens one utterance can hold. The 20 s endpoint rule ends utterances long before
/// (at 30 ms per step, 667 steps); a caller that lifts it ends the utterance when
/// [`CtcDecoder::is_full`] says so, so nothing is dropped.
pub const MAX_TOKENS: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub id: u32,
    /// Step of the utterance at which the symbol was emitted (0 = its first step).
    pub step: u64,
}

pub struct CtcDecoder {
    blank: u32,
    /// The word separator (a space symbol): it neither counts as speech nor ends silence.
    separator: Option<u32>,
    previous: u32,
    tokens: Vec<Token, MAX_TOKENS>,
    steps: u64,
    trailing_silence: u64,
    /// Steps decoded in earlier utterances of the stream.
    utterance_start: u64,
}

impl CtcDecoder {
    pub fn new(blank: u32, separator: Option<u32>) -> CtcDecoder {
        CtcDecoder {
            blank,
            separator,
            previous: blank,
            tokens: Vec::new(),
            steps: 0,
            trailing_silence: 0,
            utterance_start: 0,
        }
    }

    /// Decodes one step's logits; returns true when a symbol was added.
    pub fn push(&mut self, logits: &[f32]) -> bool {
        let best = logits.iter().enumerate().fold(0, |b, (i, v)| if *v > logits[b] { i } else { b }) as u32;
        let step = self.steps;
        self.steps += 1;
        let emitted = best != self.blank && best != self.previous && !self.is_full();
        self.previous = best;
        if emitted {
            // Cannot fail: is_full() was checked above.
            let _ = self.tokens.push(Token { id: best, step });
        }
        if emitted && Some(best) != self.separator {
            self.trailing_silence = 0;
        } else if best == self.blank || Some(best) == self.separator {
            self.trailing_silence += 1;
        }
        emitted
    }

    /// The utterance's symbols so far.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// Steps decoded in this utterance.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Steps since the last symbol other than the separator (all of them if none).
    pub fn trailing_silence(&self) -> u64 {
        self.trailing_silence
    }

    /// Stream step at which this utterance began.
    pub fn utterance_start(&self) -> u64 {
        self.utterance_start
    }

    /// No room for another symbol: the caller must end the utterance.
    pub fn is_full(&self) -> bool {
        self.tokens.is_full()
    }

    /// Takes back the last `steps` steps, and every symbol decoded in them, so that
    /// they can be decoded again (from a rebuilt model state). All of the
    /// utterance's symbols must lie in those steps; steps reaching back before the
    /// utterance come from an ended one and are only ever blank here. Returns false,
    /// changing nothing, when a symbol lies before them or not enough steps exist.
    pub fn rewind(&mut self, steps: u64) -> bool {
        let first_taken = self.steps.saturating_sub(steps);
        if steps > self.utterance_start + self.steps || self.tokens.first().is_some_and(|t| t.step < first_taken) {
            return false;
        }
        if steps <= self.steps {
            self.steps -= steps;
        } else {
            self.utterance_start -= steps - self.steps;
            self.steps = 0;
        }
        self.tokens.clear();
        // No symbol is left, so every step that remains was blank.
        self.trailing_silence = self.steps;
        self.previous = self.blank;
        true
    }

    /// Back to the start of a stream: no steps, no utterance before.
    pub fn clear(&mut self) {
        *self = CtcDecoder::new(self.blank, self.separator);
    }

    /// Ends the utterance; the next one starts at the following step.
    pub fn reset(&mut self) {
        self.utterance_start += self.steps;
        self.steps = 0;
        self.trailing_silence = 0;
        self.previous = self.blank;
        self.tokens.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_hot(i: usize) -> [f32; 4] {
        core::array::from_fn(|k| if k == i { 1.0 } else { 0.0 })
    }

    #[test]
    fn merges_repeats_drops_blanks_and_counts_silence() {
        // symbols: 0 blank, 1 space, 2 a, 3 b
        let mut d = CtcDecoder::new(0, Some(1));
        for best in [2, 2, 0, 2, 3, 1, 1, 3, 0, 0] {
            d.push(&one_hot(best));
        }
        let ids: heapless::Vec<u32, 8> = d.tokens().iter().map(|t| t.id).collect();
        assert_eq!(&ids[..], &[2, 2, 3, 1, 3]);
        let steps: heapless::Vec<u64, 8> = d.tokens().iter().map(|t| t.step).collect();
        assert_eq!(&steps[..], &[0, 3, 4, 5, 7]);
        assert_eq!(d.trailing_silence(), 2);
        assert_eq!(d.steps(), 10);
        d.reset();
        assert_eq!((d.utterance_start(), d.steps(), d.tokens().len()), (10, 0, 0));
        // A space alone is not speech: silence keeps counting through it.
        for best in [0, 1, 0] {
            d.push(&one_hot(best));
        }
        assert_eq!(d.trailing_silence(), 3);
    }

    #[test]
    fn rewinds_over_whole_utterances_only() {
        let mut d = CtcDecoder::new(0, Some(1));
        for _ in 0..5 {
            d.push(&one_hot(0));
        }
        d.reset(); // an empty utterance of 5 steps ended
        d.push(&one_hot(0));
        assert!(d.rewind(3)); // 1 step of this utterance, 2 of the last
        assert_eq!((d.utterance_start(), d.steps(), d.trailing_silence()), (3, 0, 0));
        assert!(!d.rewind(4)); // only 3 steps exist before
        for best in [0, 0, 2, 2, 0] {
            d.push(&one_hot(best));
        }
        assert_eq!(d.tokens(), &[Token { id: 2, step: 2 }]);
        assert!(!d.rewind(2), "the symbol at step 2 lies before the last 2 steps");
        assert!(d.rewind(3), "the last 3 steps hold every symbol");
        assert_eq!((d.tokens().len(), d.steps(), d.trailing_silence()), (0, 2, 2));
        // Decoded again, the same step can give another symbol.
        d.push(&one_hot(3));
        assert_eq!(d.tokens(), &[Token { id: 3, step: 2 }]);
    }

    #[test]
    fn stops_adding_when_full_instead_of_dropping_silently() {
        let mut d = CtcDecoder::new(0, None);
        for i in 0..MAX_TOKENS + 10 {
            d.push(&one_hot(2 + i % 2));
        }
        assert!(d.is_full());
        assert_eq!(d.tokens().len(), MAX_TOKENS);
    }
}
