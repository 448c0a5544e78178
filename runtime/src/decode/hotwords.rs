//! Hotwords: words or phrases whose hypotheses get a bonus (log-probability units)
//! when their last word is decoded, as sherpa-onnx's hotwords do. A file holds one
//! phrase per line, optionally ending in ` :weight`:
//!
//! ```text
//! lights on :2.5
//! timer          # the default weight
//! ```

use crate::error::Error;

use super::lexicon::{Lexicon, WordId};
use super::text;

/// One phrase: `words[first..first + len]` of its [`Hotwords`], and its bonus.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Hotword {
    first: u32,
    len: u32,
    weight: f32,
}

pub struct Hotwords<'m> {
    words: &'m [WordId],
    phrases: &'m [Hotword],
}

impl<'m> Hotwords<'m> {
    /// Parses a hotword file; its words join `lexicon` (the caller calls
    /// [`Lexicon::finish`] afterwards). `words` and `phrases` bound how many words
    /// in all and how many phrases the file may hold.
    pub fn parse(
        text: &str,
        default_weight: f32,
        lexicon: &mut Lexicon,
        vocabulary: &[&str],
        skip: &[u32],
        words: &'m mut [WordId],
        phrases: &'m mut [Hotword],
    ) -> Result<Hotwords<'m>, Error> {
        let (mut n_words, mut n_phrases) = (0usize, 0usize);
        for (line_no, line) in text::lines(text) {
            let mut weight = default_weight;
            let first = n_words;
            for token in text::tokens(line_no, line) {
                if let Some(w) = token.text.strip_prefix(':') {
                    weight = match w.parse::<f32>() {
                        Ok(v) if v.is_finite() => v,
                        _ => return Err(token.error(0, "a weight is written :number, e.g. :2.5")),
                    };
                    continue;
                }
                if weight != default_weight || token.text.contains(':') {
                    return Err(token.error(0, "the :weight goes last on its line"));
                }
                if n_words == words.len() {
                    let full = Error::CapacityExceeded { what: "hotword words", capacity: words.len() as u32 };
                    return Err(token.locate(full));
                }
                words[n_words] = lexicon.insert_text(token, vocabulary, skip)?;
                n_words += 1;
            }
            if n_words == first {
                if weight != default_weight {
                    return Err(Error::BadText { line: line_no, column: 1, reason: "a weight without a phrase" });
                }
                continue;
            }
            if n_phrases == phrases.len() {
                let capacity = phrases.len() as u32;
                return Err(Error::TooLarge { line: line_no, column: 1, what: "hotword phrases", capacity });
            }
            phrases[n_phrases] = Hotword { first: first as u32, len: (n_words - first) as u32, weight };
            n_phrases += 1;
        }
        if n_phrases == 0 {
            return Err(Error::BadText { line: 1, column: 1, reason: "the hotword list holds no phrase" });
        }
        Ok(Hotwords { words: &words[..n_words], phrases: &phrases[..n_phrases] })
    }

    /// The bonus when `word` is decoded after `history` (the words before it, oldest
    /// first): the sum of the weights of every phrase that ends with them.
    pub fn bonus(&self, history: impl Fn(usize) -> Option<WordId>, history_len: usize, word: WordId) -> f32 {
        let mut bonus = 0.0;
        for p in self.phrases {
            let phrase = &self.words[p.first as usize..(p.first + p.len) as usize];
            let Some((last, before)) = phrase.split_last() else { continue };
            if *last != word || before.len() > history_len {
                continue;
            }
            let start = history_len - before.len();
            if before.iter().enumerate().all(|(i, w)| history(start + i) == Some(*w)) {
                bonus += p.weight;
            }
        }
        bonus
    }

    pub fn phrases(&self) -> usize {
        self.phrases.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::lexicon::TrieNode;

    #[test]
    fn phrases_boost_when_their_last_word_completes_them() {
        let vocab = ["<blank>", " ", "a", "b", "c"];
        let mut nodes = [TrieNode::default(); 32];
        let (mut wn, mut ranks) = ([0u32; 8], [0u32; 8]);
        let mut lex = Lexicon::new(&mut nodes, &mut wn, &mut ranks).unwrap();
        let (mut words, mut phrases) = ([0u32; 8], [Hotword::default(); 4]);
        let h = Hotwords::parse("ab c :2.5\n\nc # default\n", 1.5, &mut lex, &vocab, &[0, 1], &mut words, &mut phrases)
            .unwrap();
        assert_eq!(h.phrases(), 2);
        let (ab, c) = (lex.find(&[2, 3]).unwrap(), lex.find(&[4]).unwrap());
        let history = [ab];
        let at = |i: usize| history.get(i).copied();
        assert_eq!(h.bonus(at, 1, c), 4.0); // "ab c" and "c"
        assert_eq!(h.bonus(at, 0, c), 1.5);
        assert_eq!(h.bonus(at, 1, ab), 0.0);
    }

    #[test]
    fn bad_lists_name_line_and_column() {
        let vocab = ["<blank>", " ", "a", "b"];
        let parse = |text: &str, cap: usize| {
            let mut nodes = [TrieNode::default(); 32];
            let (mut wn, mut ranks) = ([0u32; 8], [0u32; 8]);
            let mut lex = Lexicon::new(&mut nodes, &mut wn, &mut ranks).unwrap();
            let (mut words, mut phrases) = ([0u32; 8], [Hotword::default(); 4]);
            Hotwords::parse(text, 1.5, &mut lex, &vocab, &[0, 1], &mut words[..cap], &mut phrases).err()
        };
        let e = |line, column, reason| Some(Error::BadText { line, column, reason });
        assert_eq!(parse("ab :x", 8), e(1, 4, "a weight is written :number, e.g. :2.5"));
        assert_eq!(parse("a\nab :2 b", 8), e(2, 7, "the :weight goes last on its line"));
        assert_eq!(parse(":2", 8), e(1, 1, "a weight without a phrase"));
        assert_eq!(parse("\n# none", 8), e(1, 1, "the hotword list holds no phrase"));
        assert_eq!(parse("ac", 8), e(1, 2, "this character is not one of the model's output symbols"));
        assert_eq!(parse("a b a", 2), Some(Error::TooLarge { line: 1, column: 5, what: "hotword words", capacity: 2 }));
    }
}
