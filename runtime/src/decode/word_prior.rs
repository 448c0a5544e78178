//! A word prior: how likely each word of a model's word list is first in an
//! utterance and after each other word (a bigram language model), as scores the
//! beam search adds to a hypothesis when it completes a word.
//!
//! A character model cannot tell "two" from "to" or "four" from "for" by sound;
//! which words usually follow which can ("set the volume to", "one two three").
//! The scores arrive ready to add: the trainer folds the language model's weight
//! and a per-word bonus into them (`app.word_prior`, runtime/FORMAT.md), so the
//! decoder only looks one up.
//!
//! Row 0 holds the scores of each word first in an utterance, row `v + 1` the
//! scores of each word after word `v`; words are numbered as the model lists them
//! (`app.words`), which is how the lexicon numbers them when they go in first.

use crate::error::Error;

use super::lexicon::WordId;

#[derive(Debug, Clone, Copy)]
pub struct WordPrior<'m> {
    words: usize,
    scores: &'m [f32],
}

impl<'m> WordPrior<'m> {
    /// `scores` of `(words + 1) × words` finite values, rows as above.
    pub fn new(words: usize, scores: &'m [f32]) -> Result<WordPrior<'m>, Error> {
        let expected = words.checked_add(1).and_then(|r| r.checked_mul(words)).ok_or(Error::SizeOverflow)?;
        if words == 0 || scores.len() != expected {
            return Err(Error::BadLength { what: "word prior scores", expected, found: scores.len() });
        }
        if let Some(index) = scores.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteInput { index });
        }
        Ok(WordPrior { words, scores })
    }

    /// The words it scores (the first `words` ids of the lexicon).
    pub fn words(&self) -> usize {
        self.words
    }

    /// The score of `word` after `previous` (None: first in the utterance). A
    /// previous word the prior does not know counts as a start; a word it does not
    /// know (one a grammar or hotword list added) scores as its row's least likely
    /// word, so that the prior never favours it.
    pub fn score(&self, previous: Option<WordId>, word: WordId) -> f32 {
        let row = match previous {
            Some(p) if (p as usize) < self.words => p as usize + 1,
            _ => 0,
        };
        let row = &self.scores[row * self.words..(row + 1) * self.words];
        match row.get(word as usize) {
            Some(score) => *score,
            None => row.iter().fold(f32::INFINITY, |m, v| m.min(*v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_the_start_and_each_previous_word() {
        // Two words: start row, after word 0, after word 1.
        let scores = [-1.0, -2.0, -0.5, -3.0, -4.0, -0.25];
        let p = WordPrior::new(2, &scores).unwrap();
        assert_eq!(p.score(None, 0), -1.0);
        assert_eq!(p.score(None, 1), -2.0);
        assert_eq!(p.score(Some(0), 1), -3.0);
        assert_eq!(p.score(Some(1), 1), -0.25);
        // A word the prior does not know: as a start, or its row's lowest.
        assert_eq!(p.score(Some(7), 0), -1.0);
        assert_eq!(p.score(Some(1), 5), -4.0);
    }

    #[test]
    fn shapes_and_values_are_checked() {
        assert_eq!(
            WordPrior::new(2, &[0.0; 5]).err(),
            Some(Error::BadLength { what: "word prior scores", expected: 6, found: 5 })
        );
        assert_eq!(
            WordPrior::new(0, &[]).err(),
            Some(Error::BadLength { what: "word prior scores", expected: 0, found: 0 })
        );
        let mut bad = [0.0; 6];
        bad[4] = f32::NAN;
        assert_eq!(WordPrior::new(2, &bad).err(), Some(Error::NonFiniteInput { index: 4 }));
    }
}
