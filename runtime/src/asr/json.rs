//! A strict JSON reader for the `app.*` metadata, without allocation. It reads the
//! three shapes the metadata uses: a list of strings, a list of numbers, and a flat
//! object of scalars. Every text is read whole: whitespace where JSON allows it,
//! nothing after the value, and anything else malformed is an error naming the
//! metadata key and the byte where reading stopped. Strings are checked when
//! scanned and decoded on demand ([`Str::chars`]), so nothing needs a buffer
//! unless the caller wants the decoded text kept.

use crate::Error;

/// One value of an object: the scalars the metadata uses, and `null`, which no
/// field accepts but which is still valid JSON. Nested lists and objects are a
/// read error: no `app.*` object holds one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Value<'a> {
    /// The number's exact JSON text, its grammar already checked.
    Number(&'a str),
    Bool(bool),
    Str(Str<'a>),
    Null,
}

/// A JSON string's text between its quotes, escapes still in it, already checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Str<'a>(&'a str);

impl<'a> Str<'a> {
    /// The decoded characters. Only checked text becomes a `Str`, so the items are
    /// all `Ok`; the `Result` keeps a wrong one from ever becoming a character.
    pub(super) fn chars(self) -> Chars<'a> {
        Chars { rest: self.0.chars() }
    }

    /// Whether the decoded string is `s` (so an escaped key still matches).
    pub(super) fn is(self, s: &str) -> bool {
        self.chars().eq(s.chars().map(Ok))
    }

    /// Appends the decoded string to `out`; `full` when it does not fit. (A bad
    /// escape cannot reach here; were it to, it is an error all the same.)
    pub(super) fn push_to<const N: usize>(
        self,
        key: &'static str,
        out: &mut heapless::String<N>,
        full: Error,
    ) -> Result<(), Error> {
        for c in self.chars() {
            let c = c.map_err(|reason| Error::BadJson { key, offset: 0, reason })?;
            out.push(c).map_err(|_| full)?;
        }
        Ok(())
    }
}

/// Decodes a string's escapes: `\" \\ \/ \b \f \n \r \t` and `\uXXXX`, a UTF-16
/// surrogate pair as one character.
pub(super) struct Chars<'a> {
    rest: core::str::Chars<'a>,
}

impl Iterator for Chars<'_> {
    type Item = Result<char, &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(match self.rest.next()? {
            '\\' => self.escape(),
            '"' => Err("an unescaped quote inside a string"),
            c if (c as u32) < 0x20 => Err("a control character inside a string (JSON needs it escaped)"),
            c => Ok(c),
        })
    }
}

impl Chars<'_> {
    fn escape(&mut self) -> Result<char, &'static str> {
        match self.rest.next() {
            Some('"') => Ok('"'),
            Some('\\') => Ok('\\'),
            Some('/') => Ok('/'),
            Some('b') => Ok('\u{8}'),
            Some('f') => Ok('\u{c}'),
            Some('n') => Ok('\n'),
            Some('r') => Ok('\r'),
            Some('t') => Ok('\t'),
            Some('u') => self.unicode(),
            _ => Err("an unknown escape in a string"),
        }
    }

    /// After `\u`: one code unit, or a high surrogate and the `\u` low one after it.
    fn unicode(&mut self) -> Result<char, &'static str> {
        const LONE: &str = "a \\u escape of half a surrogate pair";
        let unit = self.hex4()?;
        let code = match unit {
            0xD800..=0xDBFF => {
                if self.rest.next() != Some('\\') || self.rest.next() != Some('u') {
                    return Err(LONE);
                }
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(LONE);
                }
                0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(LONE),
            _ => unit,
        };
        char::from_u32(code).ok_or(LONE)
    }

    fn hex4(&mut self) -> Result<u32, &'static str> {
        let mut unit = 0;
        for _ in 0..4 {
            let digit = self.rest.next().and_then(|c| c.to_digit(16)).ok_or("a \\u escape needs four hex digits")?;
            unit = unit * 16 + digit;
        }
        Ok(unit)
    }
}

/// Calls `f` with each string of the JSON list `text`; returns how many there were.
pub(super) fn for_each_string<'a>(
    key: &'static str,
    text: &'a str,
    mut f: impl FnMut(Str<'a>) -> Result<(), Error>,
) -> Result<usize, Error> {
    let mut reader = Reader { text, at: 0, key };
    let count = reader.list(|r| f(r.string()?))?;
    reader.end()?;
    Ok(count)
}

/// Calls `f` with each number of the JSON list `text` as f32 ([`to_f32`]); returns
/// how many there were.
pub(super) fn for_each_number(
    key: &'static str,
    text: &str,
    mut f: impl FnMut(f32) -> Result<(), Error>,
) -> Result<usize, Error> {
    let mut reader = Reader { text, at: 0, key };
    let count = reader.list(|r| {
        let at = r.at;
        let number = r.number()?;
        let value = to_f32(number).ok_or_else(|| r.error_at(at, "a number beyond the range of f32"))?;
        f(value)
    })?;
    reader.end()?;
    Ok(count)
}

/// Calls `f` with the index, key and value of each field of the JSON object
/// `text`, in text order; returns how many there were.
pub(super) fn for_each_field<'a>(
    key: &'static str,
    text: &'a str,
    mut f: impl FnMut(usize, Str<'a>, Value<'a>) -> Result<(), Error>,
) -> Result<usize, Error> {
    let mut reader = Reader { text, at: 0, key };
    let count = reader.object(&mut f)?;
    reader.end()?;
    Ok(count)
}

/// A JSON number's text as f32 the way serde_json's `Vec<f32>` reads it, so both
/// readers give the same bits: parsed to the nearest f64, then rounded to f32
/// (`as`), which is not always the f32 nearest the decimal. None where either
/// rounding leaves the finite range.
pub(super) fn to_f32(number: &str) -> Option<f32> {
    let wide = number.parse::<f64>().ok().filter(|x| x.is_finite())?;
    Some(wide as f32).filter(|x| x.is_finite())
}

/// A JSON number's text as u64 if it is written as a whole number ≥ 0 that fits,
/// as serde_json's `as_u64` accepts it: `16000`, not `16000.0`, `1.6e4` or `-0`.
pub(super) fn to_u64(number: &str) -> Option<u64> {
    if !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    number.parse().ok()
}

/// A cursor over one metadata value's text. It only ever steps over ASCII bytes
/// or whole strings, so `at` is always a character boundary.
struct Reader<'a> {
    text: &'a str,
    at: usize,
    key: &'static str,
}

impl<'a> Reader<'a> {
    fn error(&self, reason: &'static str) -> Error {
        self.error_at(self.at, reason)
    }

    fn error_at(&self, at: usize, reason: &'static str) -> Error {
        Error::BadJson { key: self.key, offset: u32::try_from(at).unwrap_or(u32::MAX), reason }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// Steps over the next byte if `accept` takes it (no whitespace skipping).
    fn bump_if(&mut self, accept: impl Fn(u8) -> bool) -> bool {
        let taken = self.peek().is_some_and(accept);
        if taken {
            self.at += 1;
        }
        taken
    }

    fn skip_whitespace(&mut self) {
        while self.bump_if(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {}
    }

    /// Skips whitespace, then steps over `byte` if it is next.
    fn eat(&mut self, byte: u8) -> bool {
        self.skip_whitespace();
        self.bump_if(|b| b == byte)
    }

    fn expect(&mut self, byte: u8, reason: &'static str) -> Result<(), Error> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(self.error(reason))
        }
    }

    /// Only whitespace may follow the value.
    fn end(&mut self) -> Result<(), Error> {
        self.skip_whitespace();
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error("more text after the value")),
        }
    }

    /// `[ item, … ]`, calling `item` with the cursor at each element; returns how many.
    fn list(&mut self, mut item: impl FnMut(&mut Self) -> Result<(), Error>) -> Result<usize, Error> {
        self.expect(b'[', "expected a list, [ … ]")?;
        if self.eat(b']') {
            return Ok(0);
        }
        let mut count = 0;
        loop {
            self.skip_whitespace();
            item(self)?;
            count += 1;
            if self.eat(b']') {
                return Ok(count);
            }
            self.expect(b',', "expected , or ] after a list item")?;
        }
    }

    /// `{ "key": value, … }` with scalar values; returns how many fields.
    fn object(&mut self, f: &mut impl FnMut(usize, Str<'a>, Value<'a>) -> Result<(), Error>) -> Result<usize, Error> {
        self.expect(b'{', "expected an object, { … }")?;
        if self.eat(b'}') {
            return Ok(0);
        }
        let mut count = 0;
        loop {
            self.skip_whitespace();
            let key = self.string()?;
            self.expect(b':', "expected : after an object key")?;
            self.skip_whitespace();
            let value = self.scalar()?;
            f(count, key, value)?;
            count += 1;
            if self.eat(b'}') {
                return Ok(count);
            }
            self.expect(b',', "expected , or } after an object field")?;
        }
    }

    fn scalar(&mut self) -> Result<Value<'a>, Error> {
        match self.peek() {
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b'-' | b'0'..=b'9') => Ok(Value::Number(self.number()?)),
            Some(b't') if self.literal("true") => Ok(Value::Bool(true)),
            Some(b'f') if self.literal("false") => Ok(Value::Bool(false)),
            Some(b'n') if self.literal("null") => Ok(Value::Null),
            Some(b'[' | b'{') => Err(self.error("a nested list or object, which no app.* field holds")),
            None => Err(self.error("the text ends where a value should be")),
            Some(_) => Err(self.error("expected a value: a number, true, false, null or a string")),
        }
    }

    fn literal(&mut self, word: &str) -> bool {
        let found = self.text.as_bytes().get(self.at..).is_some_and(|rest| rest.starts_with(word.as_bytes()));
        if found {
            self.at += word.len();
        }
        found
    }

    /// A string at the cursor: finds its closing quote, then checks every
    /// character and escape in it.
    fn string(&mut self) -> Result<Str<'a>, Error> {
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a string"));
        }
        let start = self.at + 1;
        let bytes = self.text.as_bytes();
        let mut end = start;
        loop {
            match bytes.get(end) {
                None => return Err(self.error("a string without its closing quote")),
                Some(b'"') => break,
                // The escaped byte cannot close the string; the decoder checks it.
                Some(b'\\') => end += 2,
                Some(_) => end += 1,
            }
        }
        let raw = self.text.get(start..end).ok_or_else(|| self.error("a string without its closing quote"))?;
        for c in Str(raw).chars() {
            c.map_err(|reason| self.error(reason))?;
        }
        self.at = end + 1;
        Ok(Str(raw))
    }

    /// A number at the cursor, by JSON's grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)?
    /// ([eE] [+-]? [0-9]+)?`. Returns its text.
    fn number(&mut self) -> Result<&'a str, Error> {
        let start = self.at;
        self.bump_if(|b| b == b'-');
        if !self.bump_if(|b| b == b'0') && self.digits() == 0 {
            return Err(self.error("expected a number"));
        }
        if self.bump_if(|b| b == b'.') && self.digits() == 0 {
            return Err(self.error("a number without digits after its decimal point"));
        }
        if self.bump_if(|b| b == b'e' || b == b'E') {
            self.bump_if(|b| b == b'+' || b == b'-');
            if self.digits() == 0 {
                return Err(self.error("a number without digits in its exponent"));
            }
        }
        self.text.get(start..self.at).ok_or_else(|| self.error("expected a number"))
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while self.bump_if(|b| b.is_ascii_digit()) {}
        self.at - start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "app.test";

    fn strings(text: &str) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        for_each_string(KEY, text, |s| {
            out.push(s.chars().collect::<Result<String, _>>().expect("checked"));
            Ok(())
        })?;
        Ok(out)
    }

    fn numbers(text: &str) -> Result<Vec<f32>, Error> {
        let mut out = Vec::new();
        for_each_number(KEY, text, |x| {
            out.push(x);
            Ok(())
        })?;
        Ok(out)
    }

    fn fields(text: &str) -> Result<Vec<(usize, String, Value<'_>)>, Error> {
        let mut out = Vec::new();
        for_each_field(KEY, text, |i, k, v| {
            out.push((i, k.chars().collect::<Result<String, _>>().expect("checked"), v));
            Ok(())
        })?;
        Ok(out)
    }

    /// The reason of a read error, checking that it is one.
    fn reason(result: Result<impl core::fmt::Debug, Error>) -> &'static str {
        match result {
            Err(Error::BadJson { key: KEY, reason, .. }) => reason,
            other => panic!("expected a JSON error, got {other:?}"),
        }
    }

    #[test]
    fn string_lists_decode_every_escape() {
        assert_eq!(strings(r#"["a", "b", "\u2581x", "\""]"#).unwrap(), ["a", "b", "\u{2581}x", "\""]);
        assert_eq!(
            strings(r#" [ "\"\\\/\b\f\n\r\t", "\u00e9\u00E9", "\ud83d\ude00", "\u0000", "é▁" ] "#).unwrap(),
            ["\"\\/\u{8}\u{c}\n\r\t", "éé", "😀", "\0", "é▁"]
        );
        assert_eq!(strings("[]").unwrap(), Vec::<String>::new());
        assert_eq!(strings("\n[\t]\r\n").unwrap(), Vec::<String>::new());
        assert_eq!(strings(r#"[""]"#).unwrap(), [""]);
    }

    #[test]
    fn malformed_string_lists_are_errors() {
        for (text, expected) in [
            ("", "expected a list, [ … ]"),
            ("  ", "expected a list, [ … ]"),
            (r#""a""#, "expected a list, [ … ]"),
            (r#"["a""#, "expected , or ] after a list item"),
            (r#"["a"#, "a string without its closing quote"),
            (r#"["a\"#, "a string without its closing quote"),
            (r#"["a\"]"#, "a string without its closing quote"),
            (r#"["a"] x"#, "more text after the value"),
            (r#"["a"],"#, "more text after the value"),
            (r#"["a"]]"#, "more text after the value"),
            (r#"["a",]"#, "expected a string"),
            (r#"[,"a"]"#, "expected a string"),
            (r#"["a" "b"]"#, "expected , or ] after a list item"),
            (r#"[1]"#, "expected a string"),
            (r#"[null]"#, "expected a string"),
            (r#"['a']"#, "expected a string"),
            (r#"["\x"]"#, "an unknown escape in a string"),
            (r#"["\u12"]"#, "a \\u escape needs four hex digits"),
            (r#"["\u12g4"]"#, "a \\u escape needs four hex digits"),
            (r#"["\ud800"]"#, "a \\u escape of half a surrogate pair"),
            (r#"["\udc00"]"#, "a \\u escape of half a surrogate pair"),
            (r#"["\ud800\u0041"]"#, "a \\u escape of half a surrogate pair"),
            (r#"["\ud800x"]"#, "a \\u escape of half a surrogate pair"),
            ("[\"a\nb\"]", "a control character inside a string (JSON needs it escaped)"),
        ] {
            assert_eq!(reason(strings(text)), expected, "{text:?}");
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let list = r#" ["a\u00e9\ud83d\ude00", "\"é▁\\"] "#;
        let object = r#"{"a": -1.5e-3, "b": true, "c": false, "d": null, "e": "x\ny"}"#;
        let cut =
            |text: &'static str| (0..text.trim_end().len()).filter(|&i| text.is_char_boundary(i)).map(|i| &text[..i]);
        for text in cut(list) {
            assert!(strings(text).is_err(), "{text:?}");
        }
        for text in cut("[-1.234567, 0.5, 12, 1e-05]") {
            assert!(numbers(text).is_err(), "{text:?}");
        }
        for text in cut(object) {
            assert!(fields(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn errors_say_where_reading_stopped() {
        assert_eq!(
            strings(r#"["a"] x"#),
            Err(Error::BadJson { key: KEY, offset: 6, reason: "more text after the value" })
        );
    }

    #[test]
    fn number_lists_parse_to_f64_then_round_to_f32() {
        let text = "[-1.234567, 0.5, 12, 1e-05, -0, 1E+2, 0.1, 3.4028234663852886e38]";
        let wanted = [-1.234567f32, 0.5, 12.0, 1e-5, -0.0, 100.0, 0.1, f32::MAX];
        let got = numbers(text).unwrap();
        assert_eq!(got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), wanted.map(f32::to_bits));
        // Halfway between two f32s once rounded to f64, though just above it as a
        // decimal: the f64-first rule (serde_json's) rounds to even, 1.0; the
        // direct f32 parse gives the next f32 up.
        let tricky = "1.00000005960464477550";
        assert_eq!(numbers(&format!("[{tricky}]")).unwrap()[0].to_bits(), 1.0f32.to_bits());
        assert_eq!(tricky.parse::<f32>().unwrap(), 1.000_000_1);
        assert_eq!(to_f32("1e-5"), Some(1e-5));
    }

    #[test]
    fn malformed_number_lists_are_errors() {
        for (text, expected) in [
            ("[01]", "expected , or ] after a list item"),
            ("[1.]", "a number without digits after its decimal point"),
            ("[.5]", "expected a number"),
            ("[+1]", "expected a number"),
            ("[-]", "expected a number"),
            ("[- 1]", "expected a number"),
            ("[1e]", "a number without digits in its exponent"),
            ("[1e+]", "a number without digits in its exponent"),
            ("[0x10]", "expected , or ] after a list item"),
            ("[NaN]", "expected a number"),
            ("[Infinity]", "expected a number"),
            ("[1,,2]", "expected a number"),
            ("[1 2]", "expected , or ] after a list item"),
            ("[\"1\"]", "expected a number"),
            ("[1e400]", "a number beyond the range of f32"),
            ("[-1e39]", "a number beyond the range of f32"),
            ("[1, 2", "expected , or ] after a list item"),
            ("[1] 2", "more text after the value"),
        ] {
            assert_eq!(reason(numbers(text)), expected, "{text:?}");
        }
    }

    #[test]
    fn objects_give_fields_in_order() {
        let got = fields(r#" { "a" : 1.5 , "b": true, "c\u0064": "x\ty", "e": null, "f": false, "g": -2 } "#).unwrap();
        let s = |t| Value::Str(Str(t));
        assert_eq!(
            got,
            [
                (0, "a".into(), Value::Number("1.5")),
                (1, "b".into(), Value::Bool(true)),
                (2, "cd".into(), s(r"x\ty")),
                (3, "e".into(), Value::Null),
                (4, "f".into(), Value::Bool(false)),
                (5, "g".into(), Value::Number("-2")),
            ]
        );
        assert!(Str(r"\u0073tack").is("stack"));
        assert!(!Str("stack").is("stac"));
        assert!(!Str("stac").is("stack"));
        assert_eq!(fields("{}").unwrap(), []);
    }

    #[test]
    fn malformed_objects_are_errors() {
        for (text, expected) in [
            ("[]", "expected an object, { … }"),
            (r#"{"a" 1}"#, "expected : after an object key"),
            (r#"{"a":1,}"#, "expected a string"),
            (r#"{a:1}"#, "expected a string"),
            (r#"{"a":1 "b":2}"#, "expected , or } after an object field"),
            (r#"{"a":[1]}"#, "a nested list or object, which no app.* field holds"),
            (r#"{"a":{}}"#, "a nested list or object, which no app.* field holds"),
            (r#"{"a":tru}"#, "expected a value: a number, true, false, null or a string"),
            (r#"{"a":truex}"#, "expected , or } after an object field"),
            (r#"{"a":}"#, "expected a value: a number, true, false, null or a string"),
            (r#"{"a":"#, "the text ends where a value should be"),
            (r#"{"a":1"#, "expected , or } after an object field"),
            (r#"{"a":1} {}"#, "more text after the value"),
        ] {
            assert_eq!(reason(fields(text)), expected, "{text:?}");
        }
    }

    #[test]
    fn callback_errors_stop_the_reading() {
        let stop = Error::BadDecoder { reason: "stop" };
        let mut seen = 0;
        let result = for_each_string(KEY, r#"["a", "b"]"#, |_| {
            seen += 1;
            Err(stop)
        });
        assert_eq!((result, seen), (Err(stop), 1));
    }

    #[test]
    fn decoding_into_a_buffer_reports_overflow() {
        let full = Error::BadDecoder { reason: "full" };
        let mut out = heapless::String::<4>::new();
        assert_eq!(Str(r"\u00e9a").push_to(KEY, &mut out, full), Ok(()));
        assert_eq!(out, "éa");
        assert_eq!(Str("bc").push_to(KEY, &mut out, full), Err(full));
    }

    #[test]
    fn whole_numbers_only_as_u64() {
        assert_eq!(to_u64("16000"), Some(16000));
        assert_eq!(to_u64("0"), Some(0));
        for text in ["16000.0", "1.6e4", "-1", "-0", "18446744073709551616"] {
            assert_eq!(to_u64(text), None, "{text}");
        }
    }
}
