//! CTC prefix beam search restricted to a lexicon: the decoder a closed-vocabulary
//! speech model runs with. Optionally a [`Grammar`] restricts the word sequences
//! too (a command recognizer can then only say commands), [`Hotwords`] give
//! chosen words and phrases a bonus, and a [`WordPrior`] scores each word by the
//! one before it.
//!
//! A hypothesis is a prefix of the output: the words decoded so far and a node of
//! the [`Lexicon`] trie for the word being spelled. Each step, every hypothesis stays
//! (a blank, or its last symbol repeated) or grows by one symbol: a letter that
//! continues its word in the trie, or the word separator, which ends a word only
//! where the trie has one (and the grammar allows it). As in CTC prefix beam search,
//! each prefix keeps two log probabilities, of its paths ending in a blank and ending
//! in its last symbol, and hypotheses that reach the same prefix are merged. Word
//! boundaries are the model's separator symbol; separators before the first word
//! or repeated between words change nothing.
//!
//! Everything lives in memory the caller provides ([`BeamMemory`], sized by
//! [`BeamConfig::sizes`]); capacities are fixed at construction, and running out
//! of one is an error, never a silent truncation.

use crate::error::Error;

use super::grammar::{Grammar, GrammarSet};
use super::hotwords::Hotwords;
use super::lexicon::{Lexicon, WordId, ROOT};
use super::word_prior::WordPrior;

const NONE: u32 = u32::MAX;
const NO_STEP: u64 = u64::MAX;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BeamConfig {
    /// Hypotheses kept after each step.
    pub beam: usize,
    /// Words one utterance may hold (the caller ends the utterance when
    /// [`BeamDecoder::is_full`] says so).
    pub max_words: usize,
    /// A symbol more than this far (natural log) below the step's most likely one
    /// is not tried as an extension.
    pub symbol_prune: f32,
    /// Added to a hypothesis's score per word (an insertion bonus, or a penalty
    /// when negative).
    pub word_bonus: f32,
    /// A character model often runs two words together ("offgo"): a letter that
    /// cannot continue a whole word may start the next one, as if the separator
    /// had been emitted, at this cost (natural log). Infinity: only the separator
    /// ends a word. The default, 2, was chosen on the speech model's dev set (beam
    /// 8, WER 10.89 % without, 10.73 / 10.65 / 10.57 / 10.73 / 10.73 % at 0, 1, 2,
    /// 3, 5).
    pub boundary_penalty: f32,
}

impl Default for BeamConfig {
    fn default() -> Self {
        BeamConfig { beam: 8, max_words: 64, symbol_prune: 10.0, word_bonus: 0.0, boundary_penalty: 2.0 }
    }
}

/// The lengths of the slices of a [`BeamMemory`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeamSizes {
    pub hypotheses: usize,
    pub words: usize,
    pub candidates: usize,
    pub log_probs: usize,
}

impl BeamConfig {
    /// What a decoder with this configuration needs for a model with `symbols`
    /// outputs: two generations of hypotheses with their words, every extension
    /// of one generation, and one step's log probabilities.
    pub fn sizes(&self, symbols: usize) -> Result<BeamSizes, Error> {
        let hypotheses = self.beam.checked_mul(2).ok_or(Error::SizeOverflow)?;
        Ok(BeamSizes {
            hypotheses,
            words: hypotheses.checked_mul(self.max_words).ok_or(Error::SizeOverflow)?,
            candidates: self.beam.checked_mul(symbols).ok_or(Error::SizeOverflow)?,
            log_probs: symbols,
        })
    }
}

/// One decoded word: its id, its span in steps of the utterance (first symbol to
/// one past the last), and a confidence in [0, 1]: the geometric mean of its
/// symbols' probabilities where they were emitted.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DecodedWord {
    pub word: WordId,
    pub start: u64,
    pub end: u64,
    pub confidence: f32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hypothesis {
    /// log P(prefix, last step a blank) and log P(prefix, last step its last symbol).
    blank: f32,
    nonblank: f32,
    /// Word bonuses and hotword bonuses of the words so far.
    bonus: f32,
    /// Trie node of the word being spelled (ROOT: between words).
    node: u32,
    /// The prefix's last symbol (NONE before anything), for CTC's repeat rule.
    last: u32,
    grammar: GrammarSet,
    words: u32,
    /// The word being spelled: first step, one past its last symbol's step, and
    /// the sum of its symbols' log probabilities.
    partial_start: u64,
    partial_end: u64,
    partial_log_prob: f32,
    partial_len: u32,
    first_symbol_step: u64,
    last_symbol_step: u64,
    /// Of the prefix, to find merges quickly (equality is then checked in full).
    hash: u64,
}

impl Default for Hypothesis {
    fn default() -> Self {
        Hypothesis {
            blank: 0.0,
            nonblank: f32::NEG_INFINITY,
            bonus: 0.0,
            node: ROOT,
            last: NONE,
            grammar: GrammarSet::EMPTY,
            words: 0,
            partial_start: 0,
            partial_end: 0,
            partial_log_prob: 0.0,
            partial_len: 0,
            first_symbol_step: NO_STEP,
            last_symbol_step: NO_STEP,
            hash: 0xcbf2_9ce4_8422_2325,
        }
    }
}

impl Hypothesis {
    fn total(&self) -> f32 {
        log_add(self.blank, self.nonblank)
    }
}

/// A hypothesis of the next step: `parent` stayed (symbol NONE) or grew by `symbol`
/// (after an implicit word end, with `boundary`). When several paths reach the
/// same prefix, their probabilities add up, and the most probable of them
/// (`parent`, `symbol`, `boundary`) gives the word times and confidences.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Candidate {
    parent: u32,
    symbol: u32,
    boundary: bool,
    /// The prefix it reaches: its trie node, the word it completes (NONE if
    /// none), and its hash.
    node: u32,
    word: u32,
    hash: u64,
    blank: f32,
    nonblank: f32,
    /// Bonus the growth adds (a completed word's).
    extra: f32,
    score: f32,
    /// Log probability of the path (`parent`, `symbol`) alone.
    path: f32,
}

/// The caller's memory for a [`BeamDecoder`], with the lengths [`BeamConfig::sizes`] gives.
pub struct BeamMemory<'m> {
    pub hypotheses: &'m mut [Hypothesis],
    pub words: &'m mut [DecodedWord],
    pub candidates: &'m mut [Candidate],
    pub log_probs: &'m mut [f32],
}

pub struct BeamDecoder<'m> {
    config: BeamConfig,
    blank: u32,
    separator: u32,
    lexicon: &'m Lexicon<'m>,
    grammar: Option<&'m Grammar<'m>>,
    hotwords: Option<&'m Hotwords<'m>>,
    prior: Option<&'m WordPrior<'m>>,
    memory: BeamMemory<'m>,
    /// Which half of the hypotheses (and words) holds the current generation.
    generation: usize,
    len: usize,
    steps: u64,
    utterance_start: u64,
}

fn log_add(a: f32, b: f32) -> f32 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    if lo == f32::NEG_INFINITY {
        return hi;
    }
    hi + libm::log1pf(libm::expf(lo - hi))
}

fn mix(hash: u64, symbol: u32) -> u64 {
    (hash ^ (symbol as u64 + 1)).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(17)
}

impl<'m> BeamDecoder<'m> {
    /// A decoder over `memory` for a model whose output `blank` is the CTC blank
    /// and `separator` the word separator. The lexicon must be finished
    /// ([`Lexicon::finish`]) and hold a word; every grammar and hotword word must
    /// be in it.
    pub fn new(
        config: BeamConfig,
        blank: u32,
        separator: u32,
        lexicon: &'m Lexicon<'m>,
        grammar: Option<&'m Grammar<'m>>,
        hotwords: Option<&'m Hotwords<'m>>,
        memory: BeamMemory<'m>,
    ) -> Result<Self, Error> {
        if config.beam == 0 || config.max_words == 0 {
            return Err(Error::BadDecoder { reason: "the beam and the words per utterance must be at least 1" });
        }
        if !(config.symbol_prune > 0.0 && config.word_bonus.is_finite() && config.boundary_penalty >= 0.0) {
            return Err(Error::BadDecoder {
                reason:
                    "the symbol pruning must be positive, the word bonus finite and the boundary penalty not negative",
            });
        }
        if lexicon.words() == 0 || !lexicon.is_finished() {
            return Err(Error::BadDecoder { reason: "the lexicon must hold a word and be finished" });
        }
        let symbols = memory.log_probs.len();
        if blank as usize >= symbols || separator as usize >= symbols || blank == separator {
            return Err(Error::BadDecoder { reason: "the blank and the separator must be two different outputs" });
        }
        let need = config.sizes(symbols)?;
        for (what, expected, found) in [
            ("beam hypotheses", need.hypotheses, memory.hypotheses.len()),
            ("beam words", need.words, memory.words.len()),
            ("beam candidates", need.candidates, memory.candidates.len()),
        ] {
            if found != expected {
                return Err(Error::BadLength { what, expected, found });
            }
        }
        let mut d = BeamDecoder {
            config,
            blank,
            separator,
            lexicon,
            grammar,
            hotwords,
            prior: None,
            memory,
            generation: 0,
            len: 0,
            steps: 0,
            utterance_start: 0,
        };
        d.restart();
        Ok(d)
    }

    /// Scores each completed word by the word before it too (`prior`'s words
    /// must be the lexicon's first ids, as the model lists them).
    pub fn set_word_prior(&mut self, prior: Option<&'m WordPrior<'m>>) {
        self.prior = prior;
    }

    /// One empty hypothesis.
    fn restart(&mut self) {
        self.generation = 0;
        self.len = 1;
        self.memory.hypotheses[0] =
            Hypothesis { grammar: self.grammar.map_or(GrammarSet::EMPTY, |g| g.start()), ..Hypothesis::default() };
    }

    fn hypotheses(&self) -> &[Hypothesis] {
        let beam = self.config.beam;
        &self.memory.hypotheses[self.generation * beam..self.generation * beam + self.len]
    }

    fn words_of(&self, index: usize) -> &[DecodedWord] {
        let (beam, max) = (self.config.beam, self.config.max_words);
        let start = (self.generation * beam + index) * max;
        let n = self.hypotheses()[index].words as usize;
        &self.memory.words[start..start + n]
    }

    /// Whether hypothesis `a`'s words and then `extra_a` (NONE: nothing) are
    /// hypothesis `b`'s words and then `extra_b`.
    fn same_words(&self, a: usize, extra_a: u32, b: usize, extra_b: Option<WordId>) -> bool {
        let extra_b = extra_b.unwrap_or(NONE);
        let (wa, wb) = (self.words_of(a), self.words_of(b));
        let word = |words: &[DecodedWord], extra: u32, k: usize| words.get(k).map_or(extra, |w| w.word);
        let len = |words: &[DecodedWord], extra: u32| words.len() + usize::from(extra != NONE);
        len(wa, extra_a) == len(wb, extra_b)
            && (0..len(wa, extra_a)).all(|k| word(wa, extra_a, k) == word(wb, extra_b, k))
    }

    /// Decodes one step's logits; returns true when the best hypothesis's words or
    /// spelling changed.
    pub fn push(&mut self, logits: &[f32]) -> Result<bool, Error> {
        let symbols = self.memory.log_probs.len();
        if logits.len() != symbols {
            return Err(Error::BadLength { what: "logits", expected: symbols, found: logits.len() });
        }
        if let Some(index) = logits.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteInput { index });
        }
        if self.is_full() {
            return Err(Error::CapacityExceeded {
                what: "words per utterance",
                capacity: self.config.max_words as u32,
            });
        }
        let before = self.best().map(|h| h.hash);
        // log softmax
        let max = logits.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
        let sum: f32 = logits.iter().map(|v| libm::expf(v - max)).sum();
        let log_sum = max + libm::logf(sum);
        let mut best_symbol = f32::NEG_INFINITY;
        for (lp, v) in self.memory.log_probs.iter_mut().zip(logits) {
            *lp = v - log_sum;
            best_symbol = best_symbol.max(*lp);
        }
        let threshold = best_symbol - self.config.symbol_prune;
        let n = self.expand(threshold);
        self.select_and_advance(n);
        self.steps += 1;
        Ok(self.best().map(|h| h.hash) != before)
    }

    /// Every candidate of the next step into `memory.candidates`; returns how many.
    /// The first `len` are the hypotheses staying, in order, so that a growth that
    /// reaches an existing prefix merges into its stay.
    fn expand(&mut self, threshold: f32) -> usize {
        let (blank, sep) = (self.blank, self.separator);
        let mut n = 0;
        for i in 0..self.len {
            let h = self.hypotheses()[i];
            let lp = &self.memory.log_probs;
            let total = h.total();
            // Between words a separator changes nothing: it stays, like a repeat.
            let nonblank = if h.node != ROOT { h.nonblank + lp[h.last as usize] } else { total + lp[sep as usize] };
            let blank_lp = total + lp[blank as usize];
            let path = log_add(blank_lp, nonblank);
            self.memory.candidates[n] = Candidate {
                parent: i as u32,
                symbol: NONE,
                boundary: false,
                node: h.node,
                word: NONE,
                hash: h.hash,
                blank: blank_lp,
                nonblank,
                extra: 0.0,
                score: path + h.bonus,
                path,
            };
            n += 1;
        }
        for i in 0..self.len {
            let h = self.hypotheses()[i];
            let total = h.total();
            for s in 0..self.memory.log_probs.len() as u32 {
                let lp = self.memory.log_probs[s as usize];
                if s == blank || lp < threshold || (s == sep && h.node == ROOT) {
                    continue;
                }
                let (node, word, extra, boundary) = if s == sep {
                    let Some(word) = self.lexicon.word_at(h.node) else { continue };
                    if self.grammar.is_some_and(|g| g.advance(&h.grammar, word).is_empty()) {
                        continue;
                    }
                    (ROOT, Some(word), self.word_bonus(i, word), false)
                } else if let Some(child) = self.lexicon.child(h.node, s) {
                    // A new word needs room (the words and the one being spelled).
                    if h.node == ROOT && h.words as usize >= self.config.max_words {
                        continue;
                    }
                    if self.grammar.is_some_and(|g| !g.allows_prefix(&h.grammar, self.lexicon, child)) {
                        continue;
                    }
                    (child, None, 0.0, false)
                } else {
                    // An implicit word end: the word so far is whole and `s` starts the next.
                    let (Some(word), Some(child)) = (self.lexicon.word_at(h.node), self.lexicon.child(ROOT, s)) else {
                        continue;
                    };
                    if !self.config.boundary_penalty.is_finite() || h.words as usize + 1 >= self.config.max_words {
                        continue;
                    }
                    if let Some(g) = self.grammar {
                        let after = g.advance(&h.grammar, word);
                        if after.is_empty() || !g.allows_prefix(&after, self.lexicon, child) {
                            continue;
                        }
                    }
                    (child, Some(word), self.word_bonus(i, word), true)
                };
                // CTC: the same symbol twice in a row needs a blank between.
                let penalty = if boundary { self.config.boundary_penalty } else { 0.0 };
                let nonblank = if s == h.last { h.blank } else { total } + lp - penalty;
                let hash = if boundary { mix(mix(h.hash, sep), s) } else { mix(h.hash, s) };
                let existing = (0..self.len).find(|&j| {
                    let other = &self.hypotheses()[j];
                    other.hash == hash && other.node == node && self.same_words(j, NONE, i, word)
                });
                // A word's first letter can reach one prefix from two parents (after
                // the separator, and by an implicit word end): merge those too.
                let starts_word = node != ROOT && (h.node == ROOT || boundary);
                let existing = existing.or_else(|| {
                    if !starts_word {
                        return None;
                    }
                    (self.len..n).find(|&m| {
                        let c = self.memory.candidates[m];
                        c.hash == hash && c.node == node && self.same_words(c.parent as usize, c.word, i, word)
                    })
                });
                if let Some(j) = existing {
                    let bonus = if j < self.len { self.hypotheses()[j].bonus } else { h.bonus + extra };
                    let c = &mut self.memory.candidates[j];
                    c.nonblank = log_add(c.nonblank, nonblank);
                    c.score = log_add(c.blank, c.nonblank) + bonus;
                    if nonblank > c.path {
                        (c.parent, c.symbol, c.boundary, c.extra, c.path) = (i as u32, s, boundary, extra, nonblank);
                    }
                    continue;
                }
                // Cannot overflow: at most every symbol of every hypothesis, as sized.
                self.memory.candidates[n] = Candidate {
                    parent: i as u32,
                    symbol: s,
                    boundary,
                    node,
                    word: word.unwrap_or(NONE),
                    hash,
                    blank: f32::NEG_INFINITY,
                    nonblank,
                    extra,
                    score: nonblank + h.bonus + extra,
                    path: nonblank,
                };
                n += 1;
            }
        }
        n
    }

    /// The bonus for hypothesis `i` completing `word`.
    fn word_bonus(&self, i: usize, word: WordId) -> f32 {
        let history = self.words_of(i);
        let hot = self.hotwords.map_or(0.0, |h| h.bonus(|k| history.get(k).map(|w| w.word), history.len(), word));
        let prior = self.prior.map_or(0.0, |p| p.score(history.last().map(|w| w.word), word));
        self.config.word_bonus + hot + prior
    }

    /// Keeps the best `beam` candidates and builds them as the next generation.
    fn select_and_advance(&mut self, n: usize) {
        let keep = n.min(self.config.beam);
        let candidates = &mut self.memory.candidates[..n];
        // Best first; ties keep the earlier candidate, so decoding is deterministic.
        let order = |a: &Candidate, b: &Candidate| {
            b.score.total_cmp(&a.score).then(a.parent.cmp(&b.parent)).then(a.symbol.cmp(&b.symbol))
        };
        if n > keep {
            candidates.select_nth_unstable_by(keep - 1, |a, b| order(a, b));
        }
        candidates[..keep].sort_unstable_by(|a, b| order(a, b));
        let (beam, max) = (self.config.beam, self.config.max_words);
        let (old, new) = (self.generation, 1 - self.generation);
        let step = self.steps;
        for k in 0..keep {
            let c = self.memory.candidates[k];
            let parent = self.memory.hypotheses[old * beam + c.parent as usize];
            let mut h = Hypothesis { blank: c.blank, nonblank: c.nonblank, ..parent };
            let (src, dst) = ((old * beam + c.parent as usize) * max, (new * beam + k) * max);
            self.memory.words.copy_within(src..src + parent.words as usize, dst);
            let mut from = parent.node;
            if c.symbol == self.separator || c.boundary {
                let word = self.lexicon.word_at(parent.node).unwrap_or(NONE);
                self.memory.words[dst + parent.words as usize] = completed(&parent, word);
                h.words += 1;
                h.node = ROOT;
                h.bonus += c.extra;
                if let Some(g) = self.grammar {
                    h.grammar = g.advance(&parent.grammar, word);
                }
                from = ROOT;
            }
            if c.symbol != NONE && c.symbol != self.separator {
                let lp = self.memory.log_probs[c.symbol as usize];
                if from == ROOT {
                    (h.partial_start, h.partial_log_prob, h.partial_len) = (step, 0.0, 0);
                }
                h.node = self.lexicon.child(from, c.symbol).unwrap_or(ROOT);
                h.partial_log_prob += lp;
                h.partial_len += 1;
                h.partial_end = step + 1;
                h.first_symbol_step = h.first_symbol_step.min(step);
                h.last_symbol_step = step;
            }
            if c.symbol != NONE {
                h.last = c.symbol;
                h.hash = c.hash;
            }
            self.memory.hypotheses[new * beam + k] = h;
        }
        self.generation = new;
        self.len = keep;
    }

    fn best(&self) -> Option<&Hypothesis> {
        self.hypotheses().first()
    }

    /// The best hypothesis's words so far (the word being spelled not included).
    pub fn partial_words(&self) -> &[DecodedWord] {
        if self.len == 0 {
            return &[];
        }
        self.words_of(0)
    }

    /// The best hypothesis's word being spelled: its symbols (into `out`, returns
    /// how many) and first step.
    pub fn partial_spelling(&self, out: &mut [u32]) -> (usize, u64) {
        match self.best() {
            Some(h) if h.node != ROOT => (self.lexicon.spelling(h.node, out), h.partial_start),
            _ => (0, 0),
        }
    }

    /// The utterance's result: the best hypothesis that ends on a whole word (the
    /// one being spelled counts when it is a word) and, with a grammar, has said a
    /// whole phrase. Its words go to `out`, which must hold one more than
    /// [`BeamConfig::max_words`]; returns how many. When every hypothesis stops
    /// inside a word that is not one (an utterance cut short), the best one's whole
    /// words are the result without a grammar; with one, nothing is (half a command
    /// is not a command).
    pub fn final_words(&self, out: &mut [DecodedWord]) -> Result<usize, Error> {
        let mut best: Option<(f32, usize, Option<WordId>)> = None;
        for (i, h) in self.hypotheses().iter().enumerate() {
            let (pending, bonus, grammar) = if h.node == ROOT {
                (None, 0.0, h.grammar)
            } else {
                let Some(word) = self.lexicon.word_at(h.node) else { continue };
                let set = self.grammar.map_or(GrammarSet::EMPTY, |g| g.advance(&h.grammar, word));
                (Some(word), self.word_bonus(i, word), set)
            };
            if self.grammar.is_some_and(|g| !g.accepts(&grammar)) {
                continue;
            }
            let score = h.total() + h.bonus + bonus;
            if best.is_none_or(|(s, _, _)| score > s) {
                best = Some((score, i, pending));
            }
        }
        let Some((_, i, pending)) = best.or(match self.grammar {
            None if self.len > 0 => Some((0.0, 0, None)),
            _ => None,
        }) else {
            return Ok(0);
        };
        let words = self.words_of(i);
        let n = words.len() + usize::from(pending.is_some());
        if out.len() < n {
            return Err(Error::CapacityExceeded { what: "final words", capacity: out.len() as u32 });
        }
        out[..words.len()].copy_from_slice(words);
        if let Some(word) = pending {
            out[words.len()] = completed(&self.hypotheses()[i], word);
        }
        Ok(n)
    }

    /// Steps decoded in this utterance.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The words the search spells (a word's id → its symbols: [`Lexicon::spelling`]).
    pub fn lexicon(&self) -> &'m Lexicon<'m> {
        self.lexicon
    }

    /// Hypotheses kept, words per utterance and the other settings.
    pub fn config(&self) -> &BeamConfig {
        &self.config
    }

    /// Stream step at which this utterance began.
    pub fn utterance_start(&self) -> u64 {
        self.utterance_start
    }

    /// Whether the best hypothesis holds no symbol.
    pub fn is_empty(&self) -> bool {
        self.best().is_none_or(|h| h.first_symbol_step == NO_STEP)
    }

    /// Steps since the best hypothesis's last symbol other than the separator (all
    /// of them if none).
    pub fn trailing_silence(&self) -> u64 {
        match self.best() {
            Some(h) if h.last_symbol_step != NO_STEP => self.steps - (h.last_symbol_step + 1),
            _ => self.steps,
        }
    }

    /// The best hypothesis holds (or is spelling) as many words as an utterance
    /// may: the caller must end the utterance before the next step. (Other
    /// hypotheses at the limit only stop starting new words.)
    pub fn is_full(&self) -> bool {
        let max = self.config.max_words as u32;
        self.best().is_some_and(|h| h.words + u32::from(h.node != ROOT) >= max)
    }

    /// Takes back the last `steps` steps so that they can be decoded again (from a
    /// rebuilt model state): the search starts over from them. The best
    /// hypothesis's symbols must all lie in those steps; steps reaching back before
    /// the utterance come from an ended one. Returns false, changing nothing, when
    /// a symbol of the best hypothesis lies before them or not enough steps exist.
    pub fn rewind(&mut self, steps: u64) -> bool {
        let first_taken = self.steps.saturating_sub(steps);
        let first_symbol = self.best().map_or(NO_STEP, |h| h.first_symbol_step);
        if steps > self.utterance_start + self.steps || (first_symbol != NO_STEP && first_symbol < first_taken) {
            return false;
        }
        if steps <= self.steps {
            self.steps -= steps;
        } else {
            self.utterance_start -= steps - self.steps;
            self.steps = 0;
        }
        self.restart();
        true
    }

    /// Back to the start of a stream: no steps, no utterance before.
    pub fn clear(&mut self) {
        self.utterance_start = 0;
        self.steps = 0;
        self.restart();
    }

    /// Ends the utterance; the next one starts at the following step.
    pub fn reset(&mut self) {
        self.utterance_start += self.steps;
        self.steps = 0;
        self.restart();
    }
}

/// A decoder's memory owned on the heap, for callers with `std` ([`BeamMemory`]
/// borrows from it).
#[cfg(feature = "std")]
pub struct BeamBuffers {
    hypotheses: std::vec::Vec<Hypothesis>,
    words: std::vec::Vec<DecodedWord>,
    candidates: std::vec::Vec<Candidate>,
    log_probs: std::vec::Vec<f32>,
}

#[cfg(feature = "std")]
impl BeamBuffers {
    /// Sized by [`BeamConfig::sizes`] for a model with `symbols` outputs.
    pub fn new(config: &BeamConfig, symbols: usize) -> Result<Self, Error> {
        let s = config.sizes(symbols)?;
        Ok(BeamBuffers {
            hypotheses: std::vec![Hypothesis::default(); s.hypotheses],
            words: std::vec![DecodedWord::default(); s.words],
            candidates: std::vec![Candidate::default(); s.candidates],
            log_probs: std::vec![0.0; s.log_probs],
        })
    }

    pub fn memory(&mut self) -> BeamMemory<'_> {
        BeamMemory {
            hypotheses: &mut self.hypotheses,
            words: &mut self.words,
            candidates: &mut self.candidates,
            log_probs: &mut self.log_probs,
        }
    }
}

fn completed(h: &Hypothesis, word: WordId) -> DecodedWord {
    let mean = h.partial_log_prob / h.partial_len.max(1) as f32;
    DecodedWord { word, start: h.partial_start, end: h.partial_end, confidence: libm::expf(mean).clamp(0.0, 1.0) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::grammar::{GrammarArc, SlotDef, GRAMMAR_STATES};
    use crate::decode::hotwords::Hotword;
    use crate::decode::lexicon::TrieNode;
    use crate::decode::text::Token;

    /// blank, space, then a..z.
    const VOCAB: [&str; 28] = [
        "<blank>", " ", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "s",
        "t", "u", "v", "w", "x", "y", "z",
    ];
    const SKIP: [u32; 2] = [0, 1];
    const SYMBOLS: usize = VOCAB.len();

    fn symbol(c: char) -> usize {
        if c == ' ' {
            1
        } else if c == '_' {
            0
        } else {
            c as usize - 'a' as usize + 2
        }
    }

    /// Logits where each step's character of `path` (`_` a blank) has probability
    /// `p` and the rest share what is left, with `second` getting `q` of it.
    fn frames(path: &str, p: f32, second: Option<&str>, q: f32) -> std::vec::Vec<[f32; SYMBOLS]> {
        let second: std::vec::Vec<char> = second.map(|s| s.chars().collect()).unwrap_or_default();
        path.chars()
            .enumerate()
            .map(|(i, c)| {
                let mut probs = [(1.0 - p - q) / (SYMBOLS as f32 - 2.0); SYMBOLS];
                probs[symbol(c)] = p;
                match second.get(i) {
                    Some(&s) if symbol(s) != symbol(c) => probs[symbol(s)] = q,
                    _ => probs[symbol(c)] += q,
                }
                probs.map(|x| x.ln())
            })
            .collect()
    }

    struct Setup {
        nodes: std::vec::Vec<TrieNode>,
        word_nodes: std::vec::Vec<u32>,
        ranks: std::vec::Vec<u32>,
        arcs: std::vec::Vec<GrammarArc>,
        first: std::vec::Vec<u32>,
        hot_words: std::vec::Vec<WordId>,
        hot_phrases: std::vec::Vec<Hotword>,
    }

    fn setup() -> Setup {
        Setup {
            nodes: std::vec![TrieNode::default(); 512],
            word_nodes: std::vec![0; 64],
            ranks: std::vec![0; 64],
            arcs: std::vec![GrammarArc::default(); 256],
            first: std::vec![0; GRAMMAR_STATES + 1],
            hot_words: std::vec![0; 16],
            hot_phrases: std::vec![Hotword::default(); 8],
        }
    }

    struct Buffers {
        hypotheses: std::vec::Vec<Hypothesis>,
        words: std::vec::Vec<DecodedWord>,
        candidates: std::vec::Vec<Candidate>,
        log_probs: std::vec::Vec<f32>,
    }

    fn buffers(config: &BeamConfig) -> Buffers {
        let s = config.sizes(SYMBOLS).unwrap();
        Buffers {
            hypotheses: std::vec![Hypothesis::default(); s.hypotheses],
            words: std::vec![DecodedWord::default(); s.words],
            candidates: std::vec![Candidate::default(); s.candidates],
            log_probs: std::vec![0.0; s.log_probs],
        }
    }

    impl Buffers {
        fn memory(&mut self) -> BeamMemory<'_> {
            BeamMemory {
                hypotheses: &mut self.hypotheses,
                words: &mut self.words,
                candidates: &mut self.candidates,
                log_probs: &mut self.log_probs,
            }
        }
    }

    /// Decodes `steps` with a lexicon of `words`, optionally a grammar and
    /// hotwords; returns the final text.
    fn decode(
        words: &str,
        grammar: Option<&str>,
        hotwords: Option<&str>,
        config: BeamConfig,
        steps: &[[f32; SYMBOLS]],
    ) -> std::string::String {
        decode_with_prior(words, grammar, hotwords, None, config, steps)
    }

    /// [`decode`] with a word prior over the lexicon's words (`prior`: its scores).
    fn decode_with_prior(
        words: &str,
        grammar: Option<&str>,
        hotwords: Option<&str>,
        prior: Option<&[f32]>,
        config: BeamConfig,
        steps: &[[f32; SYMBOLS]],
    ) -> std::string::String {
        let mut s = setup();
        let mut lex = Lexicon::new(&mut s.nodes, &mut s.word_nodes, &mut s.ranks).unwrap();
        lex.insert_list(words, &VOCAB, &SKIP).unwrap();
        let mut slots = [SlotDef::default(); 4];
        let g =
            grammar.map(|t| Grammar::parse(t, &mut lex, &VOCAB, &SKIP, &mut slots, &mut s.arcs, &mut s.first).unwrap());
        let h = hotwords
            .map(|t| Hotwords::parse(t, 1.5, &mut lex, &VOCAB, &SKIP, &mut s.hot_words, &mut s.hot_phrases).unwrap());
        lex.finish();
        let mut b = buffers(&config);
        let prior = prior.map(|scores| WordPrior::new(lex.words(), scores).unwrap());
        let mut d = BeamDecoder::new(config, 0, 1, &lex, g.as_ref(), h.as_ref(), b.memory()).unwrap();
        d.set_word_prior(prior.as_ref());
        for step in steps {
            d.push(step).unwrap();
        }
        let mut out = [DecodedWord::default(); 65];
        let n = d.final_words(&mut out).unwrap();
        let mut text = std::string::String::new();
        for w in &out[..n] {
            let mut sp = [0u32; 64];
            let len = lex.spelling(lex.word_node(w.word), &mut sp);
            if !text.is_empty() {
                text.push(' ');
            }
            text.extend(sp[..len].iter().map(|&i| VOCAB[i as usize]));
        }
        text
    }

    #[test]
    fn spells_only_words_of_the_lexicon() {
        // Greedy reads "nixt on": the lexicon turns it into "next on", as the second
        // choice at the wrong letter says.
        let steps = frames("nn_ii_xx_tt_  oo_nn__", 0.6, Some("nn_ee_xx_tt_  oo_nn__"), 0.3);
        assert_eq!(decode("next nine on off", None, None, BeamConfig::default(), &steps), "next on");
        // Nothing of the lexicon: an empty result, not a word it never had.
        let steps = frames("xxx_yyy__", 0.6, Some("_________"), 0.35);
        assert_eq!(decode("next nine", None, None, BeamConfig::default(), &steps), "");
    }

    #[test]
    fn repeated_letters_need_a_blank_and_separators_collapse() {
        // "off" needs f, blank, f; "of" is not in the lexicon but "o f f" merged is.
        let steps = frames("  oo_ff_ff   __ oo_nn", 0.9, None, 0.0);
        assert_eq!(decode("off on", None, None, BeamConfig::default(), &steps), "off on");
        let steps = frames("oo_ffff__", 0.9, None, 0.0);
        assert_eq!(decode("off of", None, None, BeamConfig::default(), &steps), "of");
    }

    #[test]
    fn words_run_together_split_where_a_letter_cannot_continue() {
        // No separator between "off" and "go": "offgo" is no word, "off" then "go" are.
        // (Sure enough of each step that the separator is pruned everywhere else.)
        let steps = frames("hh_ee_yy_ oo_ff_ff_gg_oo__", 0.9999, None, 0.0);
        let words = "hey off go";
        assert_eq!(decode(words, None, None, BeamConfig::default(), &steps), "hey off go");
        let strict = BeamConfig { boundary_penalty: f32::INFINITY, ..BeamConfig::default() };
        assert_eq!(decode(words, None, None, strict, &steps), "hey off");
        // The split follows the grammar too: "hey off" alone is no phrase of it.
        assert_eq!(decode(words, Some("hey off go"), None, BeamConfig::default(), &steps), "hey off go");
        assert_eq!(decode(words, Some("hey off go"), None, strict, &steps), "");
        // Not where the letters continue a word: "on" and "one" stay one word.
        let steps = frames("oo_nn_ee__", 0.9, None, 0.0);
        assert_eq!(decode("on one e", None, None, BeamConfig::default(), &steps), "one");
    }

    #[test]
    fn an_utterance_cut_inside_a_word_keeps_its_whole_words() {
        // Cut after "th": the one hypothesis of a beam of 1 does not end on a word.
        let steps = frames("tt_uu_rr_nn_ oo_nn_ tt_hh", 0.9, None, 0.0);
        let narrow = BeamConfig { beam: 1, ..BeamConfig::default() };
        assert_eq!(decode("turn on the", None, None, narrow, &steps), "turn on");
        // With a grammar, half a command is still nothing.
        assert_eq!(decode("turn on the", Some("turn on the"), None, narrow, &steps), "");
    }

    #[test]
    fn a_grammar_keeps_only_its_phrases() {
        // The acoustics favour "turn of the lights"; the grammar knows only on/off.
        let path = "tt_uu_rr_nn_ oo_ff_ tt_hh_ee_ ll_ii_gg_hh_tt_ss__";
        let steps = frames(path, 0.6, Some("tt_uu_rr_nn_ oo_nn_ tt_hh_ee_ ll_ii_gg_hh_tt_ss__"), 0.35);
        let words = "turn on of the lights";
        assert_eq!(decode(words, None, None, BeamConfig::default(), &steps), "turn of the lights");
        let g = "<onoff> = on | off\nturn <onoff> the lights";
        assert_eq!(decode(words, Some(g), None, BeamConfig::default(), &steps), "turn on the lights");
        // A phrase said only in part is not a command: no result.
        let steps = frames("tt_uu_rr_nn_ oo_nn__", 0.9, None, 0.0);
        assert_eq!(decode(words, Some(g), None, BeamConfig::default(), &steps), "");
    }

    #[test]
    fn slots_repeat_in_a_grammar() {
        let g = "<digit> = one | two\ncall <digit>+";
        let steps = frames("cc_aa_ll_ll_ oo_nn_ee_ tt_ww_oo_ oo_nn_ee__", 0.9, None, 0.0);
        assert_eq!(decode("call", Some(g), None, BeamConfig::default(), &steps), "call one two one");
    }

    #[test]
    fn hotwords_tip_a_close_call() {
        // "fan" slightly above "fun"; boosting "fun" flips it, boosting the phrase
        // "the fun" too, but not a phrase that is not said.
        let steps = frames("tt_hh_ee_ ff_aa_nn__", 0.5, Some("tt_hh_ee_ ff_uu_nn__"), 0.45);
        let words = "the fan fun";
        assert_eq!(decode(words, None, None, BeamConfig::default(), &steps), "the fan");
        assert_eq!(decode(words, None, Some("fun"), BeamConfig::default(), &steps), "the fun");
        assert_eq!(decode(words, None, Some("the fun :1.0"), BeamConfig::default(), &steps), "the fun");
        assert_eq!(decode(words, None, Some("fan fun :1.0"), BeamConfig::default(), &steps), "the fan");
    }

    #[test]
    fn a_word_prior_tips_a_close_call_by_the_word_before() {
        // "fan" slightly above "fun" by sound. Words: the 0, fan 1, fun 2; rows:
        // first in the utterance, after "the", after "fan", after "fun".
        let steps = frames("tt_hh_ee_ ff_aa_nn__", 0.5, Some("tt_hh_ee_ ff_uu_nn__"), 0.45);
        let words = "the fan fun";
        let decode = |prior: &[f32]| decode_with_prior(words, None, None, Some(prior), BeamConfig::default(), &steps);
        let flat = [-1.0; 12];
        assert_eq!(decode(&flat), "the fan");
        // "fun" more likely after "the": it wins.
        let after_the = [-1.0, -1.0, -1.0, -3.0, -2.0, -0.5, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0];
        assert_eq!(decode(&after_the), "the fun");
        // The same preference after "fan" (not said) changes nothing.
        let after_fan = [-1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -3.0, -2.0, -0.5, -1.0, -1.0, -1.0];
        assert_eq!(decode(&after_fan), "the fan");
        // The first row scores the first word: alone, "fun" wins when it starts utterances.
        let alone = frames("ff_aa_nn__", 0.5, Some("ff_uu_nn__"), 0.45);
        let first_fun = [-3.0, -2.0, -0.5, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0];
        let got = decode_with_prior(words, None, None, Some(&first_fun), BeamConfig::default(), &alone);
        assert_eq!(got, "fun");
    }

    #[test]
    fn words_keep_times_and_confidences() {
        let mut s = setup();
        let mut lex = Lexicon::new(&mut s.nodes, &mut s.word_nodes, &mut s.ranks).unwrap();
        lex.insert_list("go on", &VOCAB, &SKIP).unwrap();
        lex.finish();
        let config = BeamConfig::default();
        let mut b = buffers(&config);
        let mut d = BeamDecoder::new(config, 0, 1, &lex, None, None, b.memory()).unwrap();
        let mut changes = 0;
        for step in frames("__gg_oo_ _oonn__", 0.8, None, 0.0) {
            changes += usize::from(d.push(&step).unwrap());
        }
        assert!(changes >= 4, "{changes} changes of the best hypothesis");
        assert_eq!(d.trailing_silence(), 3);
        let mut out = [DecodedWord::default(); 4];
        assert_eq!(d.final_words(&mut out), Ok(2));
        assert_eq!((out[0].start, out[0].end, out[1].start, out[1].end), (2, 6, 10, 13));
        // 0.8 of the path's symbol, renormalised over the 28 outputs.
        let p = 0.8 / (0.8 + 27.0 * 0.2 / 26.0);
        assert!((out[0].confidence - p).abs() < 1e-4, "{}", out[0].confidence);
        // The partial: "go" done, "on" being spelled.
        let mut d = BeamDecoder::new(config, 0, 1, &lex, None, None, b.memory()).unwrap();
        for step in frames("__gg_oo_ _oo", 0.8, None, 0.0) {
            d.push(&step).unwrap();
        }
        assert_eq!(d.partial_words().len(), 1);
        let mut sp = [0u32; 8];
        assert_eq!(d.partial_spelling(&mut sp), (1, 10));
        assert_eq!(sp[0] as usize, symbol('o'));
    }

    #[test]
    fn rewinds_only_over_the_best_hypothesis() {
        let mut s = setup();
        let mut lex = Lexicon::new(&mut s.nodes, &mut s.word_nodes, &mut s.ranks).unwrap();
        lex.insert_list("go", &VOCAB, &SKIP).unwrap();
        lex.finish();
        let config = BeamConfig::default();
        let mut b = buffers(&config);
        let mut d = BeamDecoder::new(config, 0, 1, &lex, None, None, b.memory()).unwrap();
        for step in frames("___gg_oo", 0.9, None, 0.0) {
            d.push(&step).unwrap();
        }
        assert!(!d.rewind(4), "the g at step 3 lies before the last 4 steps");
        assert!(d.rewind(5));
        assert!(d.is_empty());
        assert_eq!((d.steps(), d.trailing_silence()), (3, 3));
        d.reset();
        assert_eq!((d.utterance_start(), d.steps()), (3, 0));
    }

    #[test]
    fn capacities_and_bad_input_are_errors() {
        let mut s = setup();
        let mut lex = Lexicon::new(&mut s.nodes, &mut s.word_nodes, &mut s.ranks).unwrap();
        lex.insert_text(Token { text: "go", line: 1, column: 1 }, &VOCAB, &SKIP).unwrap();
        lex.finish();
        let config = BeamConfig { max_words: 2, ..BeamConfig::default() };
        let mut b = buffers(&config);
        let mut d = BeamDecoder::new(config, 0, 1, &lex, None, None, b.memory()).unwrap();
        let steps = frames("gg_oo_ gg_oo_ gg", 0.9, None, 0.0);
        let mut full_at = None;
        for (i, step) in steps.iter().enumerate() {
            if d.is_full() {
                full_at = Some(i);
                assert_eq!(d.push(step), Err(Error::CapacityExceeded { what: "words per utterance", capacity: 2 }));
                break;
            }
            d.push(step).unwrap();
        }
        assert_eq!(full_at, Some(8), "one word and a second begun fill it");
        d.reset();
        let three = BeamConfig { max_words: 3, ..config };
        let mut b3 = buffers(&three);
        let mut d3 = BeamDecoder::new(three, 0, 1, &lex, None, None, b3.memory()).unwrap();
        for step in frames("gg_oo_ gg_oo", 0.9, None, 0.0) {
            d3.push(&step).unwrap();
        }
        let mut short = [DecodedWord::default(); 1];
        assert_eq!(d3.final_words(&mut short), Err(Error::CapacityExceeded { what: "final words", capacity: 1 }));
        assert_eq!(d.push(&[0.0; 3]), Err(Error::BadLength { what: "logits", expected: SYMBOLS, found: 3 }));
        let mut nan = [0.0; SYMBOLS];
        nan[4] = f32::NAN;
        assert_eq!(d.push(&nan), Err(Error::NonFiniteInput { index: 4 }));
        // Memory of the wrong size, an unfinished lexicon.
        let mut b = buffers(&BeamConfig::default());
        let r = BeamDecoder::new(config, 0, 1, &lex, None, None, b.memory());
        assert!(matches!(r.err(), Some(Error::BadLength { what: "beam words", .. })));
        let mut s2 = setup();
        let mut open = Lexicon::new(&mut s2.nodes, &mut s2.word_nodes, &mut s2.ranks).unwrap();
        open.insert(&[2]).unwrap();
        let mut b = buffers(&config);
        assert!(matches!(BeamDecoder::new(config, 0, 1, &open, None, None, b.memory()), Err(Error::BadDecoder { .. })));
    }
}
