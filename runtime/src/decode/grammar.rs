//! A command grammar: the phrases a recognizer may say, with slots.
//!
//! ```text
//! # one phrase per line; a slot is defined once, anywhere, as <name> = a | b | …
//! <digit> = zero | one | two | three | four | five | six | seven | eight | nine | oh
//! <unit> = minutes | seconds | hours
//! set a timer for <digit>+ <unit>
//! turn on the lights please?
//! ```
//!
//! A phrase is a sequence of words and slot references; either may carry `?`
//! (optional), `+` (one or more) or `*` (any number). A slot's alternatives are word
//! sequences. An utterance is accepted when it is one whole phrase.
//!
//! The phrases compile to a nondeterministic automaton over word ids (Thompson's
//! construction) whose arcs live in memory the caller provides. A decoder tracks the
//! *set* of automaton states a hypothesis may be in ([`GrammarSet`], a fixed bitset),
//! so no determinisation is needed and every set fits the same few bytes.

use crate::error::Error;

use super::lexicon::{Lexicon, WordId};
use super::text::{self, Token};

/// Automaton states a grammar may have (bits of a [`GrammarSet`]).
pub const GRAMMAR_STATES: usize = 1024;
const SET_WORDS: usize = GRAMMAR_STATES / 64;
const EPSILON: u32 = u32::MAX;

/// A set of automaton states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrammarSet([u64; SET_WORDS]);

impl GrammarSet {
    pub const EMPTY: GrammarSet = GrammarSet([0; SET_WORDS]);

    fn insert(&mut self, state: u32) -> bool {
        let (w, b) = (state as usize / 64, 1u64 << (state % 64));
        let new = self.0[w] & b == 0;
        self.0[w] |= b;
        new
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    fn states(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().enumerate().flat_map(|(i, &w)| {
            let mut bits = w;
            core::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let b = bits.trailing_zeros();
                bits &= bits - 1;
                Some(i as u32 * 64 + b)
            })
        })
    }

    fn intersects(&self, other: &GrammarSet) -> bool {
        self.0.iter().zip(&other.0).any(|(a, b)| a & b != 0)
    }
}

/// One automaton arc: `from` to `to` on a word, or on nothing (epsilon).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GrammarArc {
    from: u32,
    to: u32,
    word: u32,
}

/// One slot definition while parsing: its name and the text of its alternatives.
#[derive(Debug, Clone, Copy, Default)]
pub struct SlotDef<'t> {
    name: &'t str,
    alternatives: &'t str,
    line: u32,
    column: u32,
}

pub struct Grammar<'m> {
    /// Arcs sorted by `from`; state s's arcs are `arcs[first_arc[s]..first_arc[s + 1]]`.
    arcs: &'m [GrammarArc],
    first_arc: &'m [u32],
    accepting: GrammarSet,
    start: GrammarSet,
    states: usize,
}

/// Where the automaton is built: arcs and a state counter with fixed capacities.
struct Builder<'a> {
    arcs: &'a mut [GrammarArc],
    len: usize,
    states: u32,
}

impl Builder<'_> {
    fn state(&mut self) -> Result<u32, Error> {
        if self.states as usize == GRAMMAR_STATES {
            return Err(Error::CapacityExceeded { what: "grammar states", capacity: GRAMMAR_STATES as u32 });
        }
        self.states += 1;
        Ok(self.states - 1)
    }

    fn arc(&mut self, from: u32, to: u32, word: u32) -> Result<(), Error> {
        if self.len == self.arcs.len() {
            return Err(Error::CapacityExceeded { what: "grammar arcs", capacity: self.arcs.len() as u32 });
        }
        self.arcs[self.len] = GrammarArc { from, to, word };
        self.len += 1;
        Ok(())
    }
}

/// What one phrase element matches, before its quantifier.
enum Atom<'a> {
    Word(WordId),
    Slot(&'a SlotDef<'a>),
}

impl<'m> Grammar<'m> {
    /// Compiles `text` (see the module documentation). Every word of it is added to
    /// `lexicon` (spelled with `vocabulary`, never with the `skip` symbols); the
    /// caller calls [`Lexicon::finish`] afterwards. `slots` holds the slot
    /// definitions while parsing, `arcs` the automaton, `first_arc` one index per
    /// state plus one (`GRAMMAR_STATES + 1` always suffices).
    pub fn parse<'t>(
        text: &'t str,
        lexicon: &mut Lexicon,
        vocabulary: &[&str],
        skip: &[u32],
        slots: &mut [SlotDef<'t>],
        arcs: &'m mut [GrammarArc],
        first_arc: &'m mut [u32],
    ) -> Result<Grammar<'m>, Error> {
        let n_slots = collect_slots(text, slots)?;
        let slots = &slots[..n_slots];
        let mut b = Builder { arcs, len: 0, states: 0 };
        let root = b.state()?;
        let mut accepting = GrammarSet::EMPTY;
        let mut phrases = 0;
        for (line_no, line) in text::lines(text) {
            if is_slot_definition(line) {
                continue;
            }
            let mut tokens = text::tokens(line_no, line).peekable();
            let Some(first) = tokens.peek().copied() else { continue };
            let mut s = b.state().map_err(|e| first.locate(e))?;
            b.arc(root, s, EPSILON).map_err(|e| first.locate(e))?;
            let mut required = false;
            for token in tokens {
                let (body, quantifier) = match token.text.as_bytes().last() {
                    Some(b'?' | b'+' | b'*') if token.text.len() > 1 => {
                        (&token.text[..token.text.len() - 1], token.text.as_bytes()[token.text.len() - 1])
                    }
                    Some(b'?' | b'+' | b'*') => {
                        return Err(token.error(0, "a quantifier (? + *) must follow a word or a slot"))
                    }
                    _ => (token.text, 0),
                };
                let body_token = Token { text: body, ..token };
                if body.contains('|') {
                    return Err(
                        token.error(body.find('|').unwrap_or(0), "alternatives belong in a slot: <name> = a | b")
                    );
                }
                let atom = if body.starts_with('<') {
                    let Some(name) = body.strip_prefix('<').and_then(|n| n.strip_suffix('>')).filter(|n| valid_name(n))
                    else {
                        return Err(token.error(0, "a slot is written <name>, with letters, digits, - and _"));
                    };
                    match slots.iter().find(|d| d.name == name) {
                        Some(def) => Atom::Slot(def),
                        None => {
                            return Err(token.error(0, "this slot is not defined (<name> = a | b on a line of its own)"))
                        }
                    }
                } else if body.contains(['<', '>']) {
                    return Err(token.error(0, "a slot is written <name>, with letters, digits, - and _"));
                } else {
                    Atom::Word(lexicon.insert_text(body_token, vocabulary, skip)?)
                };
                required |= quantifier == 0 || quantifier == b'+';
                s = element(&mut b, s, &atom, quantifier, lexicon, vocabulary, skip).map_err(|e| token.locate(e))?;
            }
            if !required {
                return Err(first.error(0, "every part of this phrase is optional: it would accept silence"));
            }
            accepting.insert(s);
            phrases += 1;
        }
        if phrases == 0 {
            return Err(Error::BadText { line: 1, column: 1, reason: "the grammar holds no phrase" });
        }
        let Builder { arcs, len: n_arcs, states } = b;
        let states = states as usize;
        let arcs = &mut arcs[..n_arcs];
        arcs.sort_unstable_by_key(|a| (a.from, a.word, a.to));
        if first_arc.len() < states + 1 {
            return Err(Error::CapacityExceeded { what: "grammar state index", capacity: first_arc.len() as u32 });
        }
        let mut at = 0;
        for (s, slot) in first_arc[..=states].iter_mut().enumerate() {
            while at < n_arcs && (arcs[at].from as usize) < s {
                at += 1;
            }
            *slot = at as u32;
        }
        let arcs: &'m [GrammarArc] = arcs;
        let first_arc: &'m [u32] = &first_arc[..=states];
        let mut g = Grammar { arcs, first_arc, accepting, start: GrammarSet::EMPTY, states };
        let mut start = GrammarSet::EMPTY;
        start.insert(root);
        g.close(&mut start);
        g.start = start;
        Ok(g)
    }

    /// The states before any word.
    pub fn start(&self) -> GrammarSet {
        self.start
    }

    pub fn states(&self) -> usize {
        self.states
    }

    fn arcs_from(&self, state: u32) -> &[GrammarArc] {
        let s = state as usize;
        &self.arcs[self.first_arc[s] as usize..self.first_arc[s + 1] as usize]
    }

    /// Adds every state reachable through epsilon arcs.
    fn close(&self, set: &mut GrammarSet) {
        loop {
            let mut changed = false;
            let current = *set;
            for s in current.states() {
                for a in self.arcs_from(s).iter().filter(|a| a.word == EPSILON) {
                    changed |= set.insert(a.to);
                }
            }
            if !changed {
                return;
            }
        }
    }

    /// The states after `word`; empty when the grammar does not allow it here.
    pub fn advance(&self, set: &GrammarSet, word: WordId) -> GrammarSet {
        let mut next = GrammarSet::EMPTY;
        for s in set.states() {
            for a in self.arcs_from(s).iter().filter(|a| a.word == word) {
                next.insert(a.to);
            }
        }
        self.close(&mut next);
        next
    }

    /// Whether some word allowed next is spelled through lexicon node `node`.
    pub fn allows_prefix(&self, set: &GrammarSet, lexicon: &Lexicon, node: u32) -> bool {
        set.states().any(|s| {
            self.arcs_from(s).iter().any(|a| a.word != EPSILON && lexicon.subtree_has(node, lexicon.rank(a.word)))
        })
    }

    /// Whether a whole phrase has been said.
    pub fn accepts(&self, set: &GrammarSet) -> bool {
        set.intersects(&self.accepting)
    }
}

/// Thompson's construction for one element from state `s`; returns its end state.
fn element(
    b: &mut Builder,
    s: u32,
    atom: &Atom,
    quantifier: u8,
    lexicon: &mut Lexicon,
    vocabulary: &[&str],
    skip: &[u32],
) -> Result<u32, Error> {
    let t = b.state()?;
    // Loops get states of their own, so that an epsilon arc back never re-enters
    // an earlier element.
    let (from, to) = if matches!(quantifier, b'+' | b'*') { (b.state()?, b.state()?) } else { (s, t) };
    match atom {
        Atom::Word(w) => b.arc(from, to, *w)?,
        Atom::Slot(def) => alternatives(b, def, from, to, lexicon, vocabulary, skip)?,
    }
    match quantifier {
        b'?' => b.arc(s, t, EPSILON)?,
        b'+' | b'*' => {
            b.arc(s, from, EPSILON)?;
            b.arc(to, from, EPSILON)?;
            b.arc(to, t, EPSILON)?;
            if quantifier == b'*' {
                b.arc(s, t, EPSILON)?;
            }
        }
        _ => {}
    }
    Ok(t)
}

/// Arcs from `from` to `to` for each of a slot's alternatives (word sequences).
fn alternatives(
    b: &mut Builder,
    def: &SlotDef,
    from: u32,
    to: u32,
    lexicon: &mut Lexicon,
    vocabulary: &[&str],
    skip: &[u32],
) -> Result<(), Error> {
    let mut column = def.column;
    for alternative in def.alternatives.split('|') {
        let mut words = text::tokens_from(def.line, column, alternative).peekable();
        if words.peek().is_none() {
            return Err(Error::BadText { line: def.line, column, reason: "an empty alternative" });
        }
        let mut s = from;
        while let Some(word) = words.next() {
            if word.text.contains(['<', '>', '?', '+', '*', '=']) {
                return Err(word.error(0, "a slot's alternatives are plain words (no slots, no quantifiers)"));
            }
            let w = lexicon.insert_text(word, vocabulary, skip)?;
            let next = if words.peek().is_some() { b.state().map_err(|e| word.locate(e))? } else { to };
            b.arc(s, next, w).map_err(|e| word.locate(e))?;
            s = next;
        }
        column += alternative.chars().count() as u32 + 1;
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_')
}

fn is_slot_definition(line: &str) -> bool {
    line.contains('=')
}

/// Finds the `<name> = …` lines; returns how many.
fn collect_slots<'t>(text: &'t str, slots: &mut [SlotDef<'t>]) -> Result<usize, Error> {
    let mut n = 0;
    for (line_no, line) in text::lines(text) {
        if !is_slot_definition(line) {
            continue;
        }
        let eq = line.find('=').unwrap_or(0);
        let mut left = text::tokens_from(line_no, 1, &line[..eq]);
        let name_token = left.next();
        let name = name_token
            .and_then(|t| t.text.strip_prefix('<'))
            .and_then(|t| t.strip_suffix('>'))
            .filter(|t| valid_name(t));
        let (Some(token), Some(name), None) = (name_token, name, left.next()) else {
            let column = name_token.map_or(1, |t| t.column);
            return Err(Error::BadText { line: line_no, column, reason: "a slot definition is <name> = a | b | c" });
        };
        if slots[..n].iter().any(|d| d.name == name) {
            return Err(token.error(0, "this slot is defined twice"));
        }
        if n == slots.len() {
            return Err(token.locate(Error::CapacityExceeded { what: "grammar slots", capacity: slots.len() as u32 }));
        }
        let column = line[..eq + 1].chars().count() as u32 + 1;
        slots[n] = SlotDef { name, alternatives: &line[eq + 1..], line: line_no, column };
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::lexicon::TrieNode;

    const VOCAB: [&str; 28] = [
        "<blank>", " ", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "s",
        "t", "u", "v", "w", "x", "y", "z",
    ];

    struct Fixture {
        nodes: [TrieNode; 256],
        word_nodes: [u32; 64],
        ranks: [u32; 64],
        arcs: [GrammarArc; 256],
        first: [u32; GRAMMAR_STATES + 1],
    }

    fn fixture() -> Fixture {
        Fixture {
            nodes: [TrieNode::default(); 256],
            word_nodes: [0; 64],
            ranks: [0; 64],
            arcs: [GrammarArc::default(); 256],
            first: [0; GRAMMAR_STATES + 1],
        }
    }

    /// Whether the grammar accepts the whole word sequence.
    fn accepts(text: &str, phrase: &str) -> bool {
        let mut f = fixture();
        let mut lex = Lexicon::new(&mut f.nodes, &mut f.word_nodes, &mut f.ranks).unwrap();
        let mut slots = [SlotDef::default(); 8];
        let g = Grammar::parse(text, &mut lex, &VOCAB, &[0, 1], &mut slots, &mut f.arcs, &mut f.first).unwrap();
        lex.finish();
        let mut set = g.start();
        for w in phrase.split_whitespace() {
            let mut spelled = [0u32; 16];
            let n = text::spell(Token { text: w, line: 1, column: 1 }, &VOCAB, &[0, 1], &mut spelled).unwrap();
            let Some(id) = lex.find(&spelled[..n]) else { return false };
            set = g.advance(&set, id);
            if set.is_empty() {
                return false;
            }
        }
        g.accepts(&set)
    }

    fn error(text: &str) -> Error {
        let mut f = fixture();
        let mut lex = Lexicon::new(&mut f.nodes, &mut f.word_nodes, &mut f.ranks).unwrap();
        let mut slots = [SlotDef::default(); 2];
        match Grammar::parse(text, &mut lex, &VOCAB, &[0, 1], &mut slots, &mut f.arcs, &mut f.first) {
            Ok(_) => panic!("{text:?} parsed"),
            Err(e) => e,
        }
    }

    #[test]
    fn plain_phrases_must_match_whole() {
        let g = "turn on the lights\nstop";
        assert!(accepts(g, "turn on the lights"));
        assert!(accepts(g, "stop"));
        assert!(!accepts(g, "turn on the"));
        assert!(!accepts(g, "turn on the lights stop"));
        assert!(!accepts(g, "lights"));
    }

    #[test]
    fn slots_with_alternatives_of_several_words() {
        let g = "<what> = lights | the fan\nturn <what> off";
        assert!(accepts(g, "turn lights off"));
        assert!(accepts(g, "turn the fan off"));
        assert!(!accepts(g, "turn the lights off"));
        assert!(!accepts(g, "turn fan off"));
    }

    #[test]
    fn quantifiers() {
        let g = "<d> = one | two\nset timer for <d>+ minutes please?\ncall <d>*\nhey go*";
        assert!(accepts(g, "set timer for one minutes"));
        assert!(accepts(g, "set timer for two one two minutes please"));
        assert!(!accepts(g, "set timer for minutes"));
        assert!(accepts(g, "call"));
        assert!(accepts(g, "call one two two"));
        assert!(accepts(g, "hey go go"));
        assert!(accepts(g, "hey"));
        // A loop never leads back into the element before it.
        let g = "<d> = one | two\na* <d>+";
        assert!(accepts(g, "a a one two"));
        assert!(!accepts(g, "one a two"));
    }

    #[test]
    fn prefixes_of_allowed_words_only() {
        let mut f = fixture();
        let mut lex = Lexicon::new(&mut f.nodes, &mut f.word_nodes, &mut f.ranks).unwrap();
        lex.insert_list("stop start set", &VOCAB, &[0, 1]).unwrap();
        let mut slots = [SlotDef::default(); 2];
        let g = Grammar::parse("set timer\nstop", &mut lex, &VOCAB, &[0, 1], &mut slots, &mut f.arcs, &mut f.first)
            .unwrap();
        lex.finish();
        let s = lex.child(0, 20).unwrap();
        let st = lex.child(s, 21).unwrap();
        let sta = lex.child(st, 2).unwrap();
        let start = g.start();
        assert!(g.allows_prefix(&start, &lex, s) && g.allows_prefix(&start, &lex, st));
        assert!(!g.allows_prefix(&start, &lex, sta), "start is a word, but no phrase begins with it");
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = |line, column, reason| Error::BadText { line, column, reason };
        assert_eq!(error("set <unit>"), e(1, 5, "this slot is not defined (<name> = a | b on a line of its own)"));
        assert_eq!(error("# nothing\n\n"), e(1, 1, "the grammar holds no phrase"));
        assert_eq!(error("go\nturn <on"), e(2, 6, "a slot is written <name>, with letters, digits, - and _"));
        assert_eq!(error("<a> = x | | y\ngo <a>"), e(1, 10, "an empty alternative"));
        assert_eq!(error("<a> = x\n<a> = y\ngo"), e(2, 1, "this slot is defined twice"));
        assert_eq!(error("lights ?"), e(1, 8, "a quantifier (? + *) must follow a word or a slot"));
        assert_eq!(error("lights? please*"), e(1, 1, "every part of this phrase is optional: it would accept silence"));
        assert_eq!(error("turn on|off"), e(1, 8, "alternatives belong in a slot: <name> = a | b"));
        assert_eq!(error("say héllo"), e(1, 6, "this character is not one of the model's output symbols"));
        assert_eq!(error("a b = c"), e(1, 1, "a slot definition is <name> = a | b | c"));
        assert_eq!(
            error("<a> = x <b>\ngo <a>"),
            e(1, 9, "a slot's alternatives are plain words (no slots, no quantifiers)")
        );
        assert_eq!(
            error("<a> = x\n<b> = y\n<c> = z\ngo"),
            Error::TooLarge { line: 3, column: 1, what: "grammar slots", capacity: 2 }
        );
    }

    #[test]
    fn too_many_arcs_is_an_error() {
        let mut f = fixture();
        let mut lex = Lexicon::new(&mut f.nodes, &mut f.word_nodes, &mut f.ranks).unwrap();
        let mut slots = [SlotDef::default(); 2];
        let r = Grammar::parse("a b c d e", &mut lex, &VOCAB, &[0, 1], &mut slots, &mut f.arcs[..3], &mut f.first);
        assert_eq!(r.err(), Some(Error::TooLarge { line: 1, column: 5, what: "grammar arcs", capacity: 3 }));
    }
}
