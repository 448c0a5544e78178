//! The words a constrained decoder may output, as a trie over the model's output
//! symbols: every path from the root spells a prefix of some word, and the nodes
//! where a word ends carry its id. The nodes live in memory the caller provides.

use crate::error::Error;

use super::text::{self, Token};

/// A word's index in its [`Lexicon`] (in the order the words were added).
pub type WordId = u32;

const NONE: u32 = u32::MAX;

/// One trie node. `Default` (an unused node) lets callers fill arrays of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrieNode {
    parent: u32,
    first_child: u32,
    next_sibling: u32,
    symbol: u32,
    /// The word ending here, or NONE.
    word: u32,
    /// Words in this node's subtree have ranks `rank_lo..rank_hi` (see [`Lexicon::rank`]).
    rank_lo: u32,
    rank_hi: u32,
}

impl Default for TrieNode {
    fn default() -> Self {
        TrieNode {
            parent: NONE,
            first_child: NONE,
            next_sibling: NONE,
            symbol: NONE,
            word: NONE,
            rank_lo: 0,
            rank_hi: 0,
        }
    }
}

/// Longest word, in symbols, the lexicon accepts.
pub const MAX_WORD_SYMBOLS: usize = 64;

pub struct Lexicon<'m> {
    nodes: &'m mut [TrieNode],
    len: usize,
    /// `word_nodes[w]`: the node word `w` ends at.
    word_nodes: &'m mut [u32],
    /// `ranks[w]`: word w's position in depth-first order of the trie.
    ranks: &'m mut [u32],
    words: usize,
    ranked: bool,
}

/// The trie's root: the empty prefix.
pub const ROOT: u32 = 0;

impl<'m> Lexicon<'m> {
    /// An empty lexicon in `nodes` (at most `nodes.len() − 1` symbols in all words
    /// together) for at most `word_nodes.len()` words; `ranks` must be as long as
    /// `word_nodes`.
    pub fn new(nodes: &'m mut [TrieNode], word_nodes: &'m mut [u32], ranks: &'m mut [u32]) -> Result<Self, Error> {
        if nodes.is_empty() || ranks.len() != word_nodes.len() {
            return Err(Error::CapacityExceeded { what: "lexicon nodes", capacity: nodes.len() as u32 });
        }
        nodes[0] = TrieNode::default();
        Ok(Lexicon { nodes, len: 1, word_nodes, ranks, words: 0, ranked: true })
    }

    /// Adds a word spelled by `symbols` (or finds it); returns its id.
    pub fn insert(&mut self, symbols: &[u32]) -> Result<WordId, Error> {
        if symbols.is_empty() {
            return Err(Error::BadText { line: 0, column: 0, reason: "an empty word" });
        }
        let mut node = ROOT;
        for &s in symbols {
            node = match self.child(node, s) {
                Some(c) => c,
                None => {
                    if self.len == self.nodes.len() {
                        return Err(Error::CapacityExceeded {
                            what: "lexicon nodes",
                            capacity: self.nodes.len() as u32,
                        });
                    }
                    let c = self.len as u32;
                    let parent = &mut self.nodes[node as usize];
                    let sibling = parent.first_child;
                    parent.first_child = c;
                    self.nodes[c as usize] =
                        TrieNode { parent: node, next_sibling: sibling, symbol: s, ..TrieNode::default() };
                    self.len += 1;
                    c
                }
            };
        }
        let existing = self.nodes[node as usize].word;
        if existing != NONE {
            return Ok(existing);
        }
        if self.words == self.word_nodes.len() {
            return Err(Error::CapacityExceeded { what: "lexicon words", capacity: self.word_nodes.len() as u32 });
        }
        let id = self.words as u32;
        self.nodes[node as usize].word = id;
        self.word_nodes[self.words] = node;
        self.words += 1;
        self.ranked = false;
        Ok(id)
    }

    /// Spells `word` with `vocabulary` and adds it (see [`text::spell`]).
    pub fn insert_text(&mut self, word: Token, vocabulary: &[&str], skip: &[u32]) -> Result<WordId, Error> {
        self.insert_text_by(word, vocabulary.len(), |i| vocabulary[i], skip)
    }

    /// [`Lexicon::insert_text`] with the `count` symbols given by `symbol(i)`.
    pub fn insert_text_by<'v>(
        &mut self,
        word: Token,
        count: usize,
        symbol: impl Fn(usize) -> &'v str,
        skip: &[u32],
    ) -> Result<WordId, Error> {
        let mut symbols = [0u32; MAX_WORD_SYMBOLS];
        let n = text::spell_by(word, count, symbol, skip, &mut symbols)?;
        self.insert(&symbols[..n]).map_err(|e| match e {
            Error::BadText { reason, .. } => word.error(0, reason),
            other => word.locate(other),
        })
    }

    /// Adds every whitespace-separated word of a word list (`#` starts a comment).
    pub fn insert_list(&mut self, list: &str, vocabulary: &[&str], skip: &[u32]) -> Result<usize, Error> {
        let mut count = 0;
        for (line_no, line) in text::lines(list) {
            for word in text::tokens(line_no, line) {
                self.insert_text(word, vocabulary, skip)?;
                count += 1;
            }
        }
        if count == 0 {
            return Err(Error::BadText { line: 1, column: 1, reason: "the word list holds no word" });
        }
        Ok(count)
    }

    /// Numbers the words in depth-first order so that every node knows the ranks
    /// of the words below it ([`Lexicon::subtree_has`]). Call after the last insert.
    pub fn finish(&mut self) {
        let mut rank = 0u32;
        let mut node = ROOT;
        // Iterative depth-first walk: down to the first child, else to the next
        // sibling, else up until a node has a next sibling.
        loop {
            let n = &mut self.nodes[node as usize];
            n.rank_lo = rank;
            if n.word != NONE {
                self.ranks[n.word as usize] = rank;
                rank += 1;
            }
            if n.first_child != NONE {
                node = n.first_child;
                continue;
            }
            loop {
                self.nodes[node as usize].rank_hi = rank;
                if node == ROOT {
                    self.ranked = true;
                    return;
                }
                let n = self.nodes[node as usize];
                if n.next_sibling != NONE {
                    node = n.next_sibling;
                    break;
                }
                node = n.parent;
            }
        }
    }

    /// The word spelled by `symbols`, if it is in the lexicon.
    pub fn find(&self, symbols: &[u32]) -> Option<WordId> {
        let mut node = ROOT;
        for &s in symbols {
            node = self.child(node, s)?;
        }
        self.word_at(node)
    }

    pub fn words(&self) -> usize {
        self.words
    }

    /// True once [`Lexicon::finish`] ran after the last insert.
    pub fn is_finished(&self) -> bool {
        self.ranked
    }

    pub fn child(&self, node: u32, symbol: u32) -> Option<u32> {
        let mut c = self.nodes[node as usize].first_child;
        while c != NONE {
            let n = &self.nodes[c as usize];
            if n.symbol == symbol {
                return Some(c);
            }
            c = n.next_sibling;
        }
        None
    }

    /// The word that ends at `node`, if any.
    pub fn word_at(&self, node: u32) -> Option<WordId> {
        let w = self.nodes[node as usize].word;
        (w != NONE).then_some(w)
    }

    /// Whether a word ranked `rank` lies in `node`'s subtree (is spelled by a path
    /// through it).
    pub fn subtree_has(&self, node: u32, rank: u32) -> bool {
        let n = &self.nodes[node as usize];
        (n.rank_lo..n.rank_hi).contains(&rank)
    }

    pub fn rank(&self, word: WordId) -> u32 {
        self.ranks[word as usize]
    }

    /// The symbols from the root to `node`, written into `out` (oldest first);
    /// returns how many.
    pub fn spelling(&self, node: u32, out: &mut [u32]) -> usize {
        let mut len = 0;
        let mut n = node;
        while n != ROOT && n != NONE {
            len += 1;
            n = self.nodes[n as usize].parent;
        }
        let len = len.min(out.len());
        let mut n = node;
        for i in (0..len).rev() {
            out[i] = self.nodes[n as usize].symbol;
            n = self.nodes[n as usize].parent;
        }
        len
    }

    /// The node at which word `word` ends.
    pub fn word_node(&self, word: WordId) -> u32 {
        self.word_nodes[word as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trie_shares_prefixes_and_ranks_subtrees() {
        let mut nodes = [TrieNode::default(); 16];
        let (mut wn, mut ranks) = ([0u32; 4], [0u32; 4]);
        let mut lex = Lexicon::new(&mut nodes, &mut wn, &mut ranks).unwrap();
        let vocab = ["<blank>", " ", "a", "b", "c"];
        let a = lex.insert_list("ab abc # comment\nb\nab", &vocab, &[0, 1]).unwrap();
        assert_eq!(a, 4);
        assert_eq!(lex.words(), 3);
        lex.finish();
        let n_a = lex.child(ROOT, 2).unwrap();
        let n_ab = lex.child(n_a, 3).unwrap();
        assert_eq!(lex.word_at(n_a), None);
        assert_eq!(lex.word_at(n_ab), Some(0));
        assert!(lex.subtree_has(n_a, lex.rank(0)) && lex.subtree_has(n_a, lex.rank(1)));
        assert!(!lex.subtree_has(n_a, lex.rank(2)));
        assert!(lex.subtree_has(ROOT, lex.rank(2)));
        let mut out = [0u32; 4];
        let n = lex.spelling(lex.word_node(1), &mut out);
        assert_eq!(&out[..n], &[2, 3, 4]);
    }

    #[test]
    fn capacities_are_errors() {
        let mut nodes = [TrieNode::default(); 3];
        let (mut wn, mut ranks) = ([0u32; 4], [0u32; 4]);
        let mut lex = Lexicon::new(&mut nodes, &mut wn, &mut ranks).unwrap();
        assert_eq!(lex.insert(&[2, 3, 4]), Err(Error::CapacityExceeded { what: "lexicon nodes", capacity: 3 }));
        let mut nodes = [TrieNode::default(); 8];
        let (mut wn, mut ranks) = ([0u32; 1], [0u32; 1]);
        let mut lex = Lexicon::new(&mut nodes, &mut wn, &mut ranks).unwrap();
        lex.insert(&[2]).unwrap();
        assert_eq!(lex.insert(&[3]), Err(Error::CapacityExceeded { what: "lexicon words", capacity: 1 }));
        assert!(matches!(
            lex.insert_list("  # nothing\n", &["<blank>", " ", "a"], &[0, 1]),
            Err(Error::BadText { .. })
        ));
        assert_eq!(
            lex.insert_list("a\n  b", &["<blank>", " ", "a", "b"], &[0, 1]),
            Err(Error::TooLarge { line: 2, column: 3, what: "lexicon words", capacity: 1 })
        );
    }
}
