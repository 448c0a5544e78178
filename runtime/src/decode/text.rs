//! What the word-list, grammar and hotword parsers share: positions for error
//! messages, comments, whitespace-separated tokens, and spelling a word with the
//! model's output symbols.

use crate::error::Error;

/// A token of a text file with its position (1-based line, 1-based column in
/// characters), for error messages that point at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'t> {
    pub text: &'t str,
    pub line: u32,
    pub column: u32,
}

impl<'t> Token<'t> {
    /// An error about this token (or about the character `offset` bytes into it).
    pub fn error(&self, offset: usize, reason: &'static str) -> Error {
        let column = self.column + self.text.char_indices().take_while(|(i, _)| *i < offset).count() as u32;
        Error::BadText { line: self.line, column, reason }
    }

    /// A capacity that ran out at this token, with its position; other errors as they are.
    pub fn locate(&self, e: Error) -> Error {
        match e {
            Error::CapacityExceeded { what, capacity } => {
                Error::TooLarge { line: self.line, column: self.column, what, capacity }
            }
            other => other,
        }
    }
}

/// The lines of `text` with `#` comments removed, numbered from 1.
pub fn lines(text: &str) -> impl Iterator<Item = (u32, &str)> {
    text.lines().enumerate().map(|(i, line)| (i as u32 + 1, line.split('#').next().unwrap_or("")))
}

/// The whitespace-separated tokens of one line (comment already removed).
pub fn tokens(line_no: u32, line: &str) -> impl Iterator<Item = Token<'_>> {
    tokens_from(line_no, 1, line)
}

/// The tokens of `part`, a piece of a line that starts at column `first_column`.
pub fn tokens_from(line_no: u32, first_column: u32, part: &str) -> impl Iterator<Item = Token<'_>> {
    let mut column = first_column;
    let mut rest = part;
    core::iter::from_fn(move || {
        let skipped = rest.len() - rest.trim_start().len();
        column += rest[..skipped].chars().count() as u32;
        rest = &rest[skipped..];
        if rest.is_empty() {
            return None;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let token = Token { text: &rest[..end], line: line_no, column };
        column += rest[..end].chars().count() as u32;
        rest = &rest[end..];
        Some(token)
    })
}

/// Spells `word` with the output symbols (`vocabulary[i]` is symbol i's text),
/// longest symbol first at every position; an ASCII capital that is not a symbol
/// stands for its small letter. Returns the symbol count written to `out`.
/// `skip` symbols (the blank, the word separator) are never used.
pub fn spell(word: Token, vocabulary: &[&str], skip: &[u32], out: &mut [u32]) -> Result<usize, Error> {
    spell_by(word, vocabulary.len(), |i| vocabulary[i], skip, out)
}

/// [`spell`] with the `count` symbols given by `symbol(i)`, for a caller that has
/// no slice of them (the model's metadata, [`crate::asr::AsrInfo`]).
pub fn spell_by<'v>(
    word: Token,
    count: usize,
    symbol: impl Fn(usize) -> &'v str,
    skip: &[u32],
    out: &mut [u32],
) -> Result<usize, Error> {
    let has = |byte: u8| (0..count).any(|i| symbol(i).as_bytes() == [byte]);
    let mut len = 0;
    let mut at = 0;
    let text = word.text;
    while at < text.len() {
        let mut best: Option<(usize, u32)> = None;
        for id in 0..count {
            let symbol = symbol(id);
            let id = id as u32;
            if symbol.is_empty() || skip.contains(&id) || best.is_some_and(|(l, _)| l >= symbol.len()) {
                continue;
            }
            let rest = &text.as_bytes()[at..];
            let matches = rest.len() >= symbol.len()
                && rest[..symbol.len()]
                    .iter()
                    .zip(symbol.as_bytes())
                    .all(|(a, b)| a == b || (a.is_ascii_uppercase() && a.to_ascii_lowercase() == *b && !has(*a)));
            if matches {
                best = Some((symbol.len(), id));
            }
        }
        let Some((n, id)) = best else {
            return Err(word.error(at, "this character is not one of the model's output symbols"));
        };
        if len == out.len() {
            return Err(word.error(0, "this word is longer than the longest word the decoder was sized for"));
        }
        out[len] = id;
        len += 1;
        at += n;
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_know_their_columns() {
        let t: heapless::Vec<Token, 8> = tokens(3, "  set  timer\tfor").collect();
        let cols: heapless::Vec<(&str, u32), 8> = t.iter().map(|t| (t.text, t.column)).collect();
        assert_eq!(&cols[..], &[("set", 3), ("timer", 8), ("for", 14)]);
        let (_, line) = lines("a\nbé # comment\n").nth(1).unwrap();
        let t: heapless::Vec<Token, 8> = tokens(2, line).collect();
        assert_eq!(t[0].error(2, "x"), Error::BadText { line: 2, column: 3, reason: "x" });
    }

    #[test]
    fn spells_longest_symbol_first_and_folds_capitals() {
        let vocab = ["<blank>", " ", "a", "b", "ab", "'"];
        let mut out = [0u32; 8];
        let word = |text| Token { text, line: 1, column: 1 };
        let n = spell(word("abba"), &vocab, &[0, 1], &mut out).unwrap();
        assert_eq!(&out[..n], &[4, 3, 2]);
        let n = spell(word("B'A"), &vocab, &[0, 1], &mut out).unwrap();
        assert_eq!(&out[..n], &[3, 5, 2]);
        assert_eq!(
            spell(word("abc"), &vocab, &[0, 1], &mut out),
            Err(Error::BadText {
                line: 1,
                column: 3,
                reason: "this character is not one of the model's output symbols"
            })
        );
        assert!(spell(word("ababab"), &vocab, &[0, 1], &mut out[..2]).is_err());
    }
}
