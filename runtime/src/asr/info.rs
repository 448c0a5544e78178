//! What an `asr-ctc` model carries in its `app.*` metadata (runtime/FORMAT.md):
//! the vocabulary, the audio front-end, the feature statistics and the optional
//! word list and word prior, read strictly ([`super::json`]) and checked against the model's
//! shapes, into fixed storage.

use super::json::{self, Str, Value};
use crate::audio::{FbankOptions, Window};
use crate::decode::WordPrior;
use crate::{Error, InputKind, Model};

/// Most output symbols (the vocabulary, blank included).
pub const MAX_SYMBOLS: usize = 1024;
/// Most bytes of UTF-8 in all symbols together.
pub const MAX_SYMBOL_BYTES: usize = 8192;
/// Most feature bins (the mel front-end's own limit too).
pub const MAX_BINS: usize = 256;
/// Longest word of `app.words`, in bytes of UTF-8.
pub const MAX_WORD_BYTES: usize = 256;

const VOCABULARY: &str = "app.vocabulary";
const WORDS: &str = "app.words";
const WORD_PRIOR: &str = "app.word_prior";
const FRONTEND: &str = "app.frontend";

/// Every field `app.frontend` may hold, in full so that errors can name them.
/// Only these: a parameter the runtime does not know would be silently ignored.
const FRONTEND_KEYS: [&str; 15] = [
    "app.frontend.sample_rate",
    "app.frontend.num_bins",
    "app.frontend.frame_length_ms",
    "app.frontend.frame_shift_ms",
    "app.frontend.dither",
    "app.frontend.snip_edges",
    "app.frontend.window",
    "app.frontend.low_freq",
    "app.frontend.high_freq",
    "app.frontend.preemph_coeff",
    "app.frontend.remove_dc_offset",
    "app.frontend.sample_scale",
    "app.frontend.noise_floor",
    "app.frontend.stack",
    "app.frontend.context",
];
/// [`FRONTEND_KEYS`]' field names, for the error about an unknown one.
const FRONTEND_NAMES: &str = "sample_rate, num_bins, frame_length_ms, frame_shift_ms, dither, snip_edges, window, \
                              low_freq, high_freq, preemph_coeff, remove_dc_offset, sample_scale, noise_floor, \
                              stack, context";

/// The front-end and output description of an `asr-ctc` model.
#[derive(Debug, Clone)]
pub struct AsrInfo<'m> {
    pub sample_rate: u32,
    pub num_bins: usize,
    /// New frames per encoder step (the step's hop).
    pub stack: usize,
    /// Frames one step's input holds: its own `stack` and `context − stack` before
    /// them, concatenated oldest first. Never any frame after the step's last.
    pub context: usize,
    /// The log-mel front-end, from `app.frontend`.
    pub fbank: FbankOptions,
    /// Every symbol's text back to back; symbol i ends at byte `symbol_ends[i]`.
    symbol_text: heapless::String<MAX_SYMBOL_BYTES>,
    symbol_ends: heapless::Vec<u16, MAX_SYMBOLS>,
    mean: heapless::Vec<f32, MAX_BINS>,
    std: heapless::Vec<f32, MAX_BINS>,
    /// `app.words` as the model holds it, already checked. It is decoded on each
    /// visit rather than kept: a word list can be far larger than the vocabulary.
    words: Option<&'m str>,
    word_count: usize,
    word_chars: usize,
    /// `app.word_prior` as the model holds it, already checked: `(word_count + 1)
    /// × word_count` numbers, read into caller memory by [`AsrInfo::read_word_prior`].
    word_prior: Option<&'m str>,
}

impl<'m> AsrInfo<'m> {
    /// Reads and checks the metadata against the model's shapes.
    pub fn from_model(model: &Model<'m>) -> Result<AsrInfo<'m>, Error> {
        let get = |key: &'static str| model.metadata_value(key).ok_or(Error::MissingMetadata { key });
        if get("app.task")? != "asr-ctc" {
            return Err(Error::NotAsrModel);
        }
        let (symbol_text, symbol_ends) = read_vocabulary(get(VOCABULARY)?)?;
        let mean = read_floats("app.feature_mean", get("app.feature_mean")?)?;
        let std = read_floats("app.feature_std", get("app.feature_std")?)?;
        let frontend = Frontend::read(get(FRONTEND)?)?;
        let sample_rate = frontend.uint("app.frontend.sample_rate", None)?;
        let num_bins = frontend.uint("app.frontend.num_bins", None)? as usize;
        let stack = frontend.uint("app.frontend.stack", None)?;
        let context = frontend.uint("app.frontend.context", Some(stack))? as usize;
        let stack = stack as usize;
        if stack == 0 || context < stack || num_bins == 0 {
            return Err(Error::BadAsrMetadata {
                key: FRONTEND,
                reason: "stack, context and num_bins must be positive, context ≥ stack",
            });
        }
        let cfg = model.config();
        if cfg.input_kind != InputKind::Vectors {
            return Err(Error::BadAsrMetadata {
                key: "app.task",
                reason: "asr-ctc, but the model takes token ids, not feature vectors",
            });
        }
        let step_width = num_bins as u64 * context as u64;
        if u64::from(cfg.input_dim) != step_width {
            return Err(Error::AsrShapeMismatch {
                what: "model inputs per step (app.frontend num_bins × context)",
                expected: step_width,
                found: cfg.input_dim.into(),
            });
        }
        if symbol_ends.len() != cfg.output_dim() {
            return Err(Error::AsrShapeMismatch {
                what: "app.vocabulary symbols (one per model output)",
                expected: cfg.output_dim() as u64,
                found: symbol_ends.len() as u64,
            });
        }
        check_bins("app.feature_mean values (one per bin)", &mean, num_bins)?;
        check_bins("app.feature_std values (one per bin)", &std, num_bins)?;
        if std.iter().any(|s| *s <= 0.0 || !s.is_finite()) {
            return Err(Error::BadAsrMetadata { key: "app.feature_std", reason: "every value must be positive" });
        }
        let fbank = fbank_options(&frontend, sample_rate, num_bins)?;
        let words = model.metadata_value(WORDS);
        let (mut word_count, mut word_chars) = (0, 0);
        if let Some(text) = words {
            visit_words(text, |_, word| {
                word_count += 1;
                word_chars += word.chars().count();
                Ok(())
            })?;
            if word_count == 0 {
                return Err(Error::BadAsrMetadata { key: WORDS, reason: "must list at least one word" });
            }
        }
        let word_prior = model.metadata_value(WORD_PRIOR);
        if let Some(text) = word_prior {
            check_word_prior(text, words, word_count)?;
        }
        Ok(AsrInfo {
            sample_rate,
            num_bins,
            stack,
            context,
            fbank,
            symbol_text,
            symbol_ends,
            mean,
            std,
            words,
            word_count,
            word_chars,
            word_prior,
        })
    }

    /// The vocabulary size; symbol 0 is the CTC blank.
    pub fn symbols(&self) -> usize {
        self.symbol_ends.len()
    }

    /// Symbol `i`'s text; empty for `i ≥ symbols()`.
    pub fn symbol(&self, i: usize) -> &str {
        let Some(&end) = self.symbol_ends.get(i) else { return "" };
        let start = match i.checked_sub(1) {
            None => 0,
            Some(before) => self.symbol_ends.get(before).copied().unwrap_or(0),
        };
        self.symbol_text.get(usize::from(start)..usize::from(end)).unwrap_or("")
    }

    /// Every symbol's text, in output order.
    pub fn symbol_texts(&self) -> impl Iterator<Item = &str> {
        (0..self.symbols()).map(move |i| self.symbol(i))
    }

    /// Per-bin feature means (`num_bins` values).
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// Per-bin feature standard deviations (`num_bins` values, all positive).
    pub fn std(&self) -> &[f32] {
        &self.std
    }

    /// Seconds of audio per encoder step: `stack` frame shifts, each the whole
    /// number of samples the front-end uses.
    pub fn step_seconds(&self) -> f64 {
        let shift = self.fbank.samples(self.fbank.frame_shift_ms);
        self.stack as f64 * shift as f64 / self.sample_rate as f64
    }

    /// The word separator symbol (a space), if the vocabulary has one.
    pub fn separator(&self) -> Option<u32> {
        self.symbol_texts().position(|s| s == " ").map(|i| i as u32)
    }

    /// Whether the model lists the words it was trained to say (`app.words`), for
    /// the beam decoder.
    pub fn has_words(&self) -> bool {
        self.words.is_some()
    }

    /// How many words `app.words` lists (0 without it).
    pub fn word_count(&self) -> usize {
        self.word_count
    }

    /// Characters in all words of `app.words` together.
    pub fn word_chars(&self) -> usize {
        self.word_chars
    }

    /// Floats [`AsrInfo::read_word_prior`] fills (0 without a prior).
    pub fn word_prior_len(&self) -> usize {
        if self.word_prior.is_some() {
            (self.word_count + 1) * self.word_count
        } else {
            0
        }
    }

    /// The model's word prior, read into `out` ([`AsrInfo::word_prior_len`]
    /// floats); None when the model has none.
    pub fn read_word_prior<'o>(&self, out: &'o mut [f32]) -> Result<Option<WordPrior<'o>>, Error> {
        let Some(text) = self.word_prior else { return Ok(None) };
        let expected = self.word_prior_len();
        if out.len() != expected {
            return Err(Error::BadLength { what: "word prior scores", expected, found: out.len() });
        }
        let mut n = 0;
        json::for_each_number(WORD_PRIOR, text, |x| {
            out[n] = x;
            n += 1;
            Ok(())
        })?;
        WordPrior::new(self.word_count, out).map(Some)
    }

    /// Calls `f` with the index and text of each word of `app.words`, in order
    /// (not at all without it); stops at `f`'s first error.
    pub fn for_each_word(&self, f: impl FnMut(usize, &str) -> Result<(), Error>) -> Result<(), Error> {
        match self.words {
            None => Ok(()),
            Some(text) => visit_words(text, f).map(|_| ()),
        }
    }
}

/// `app.vocabulary`'s symbols, decoded back to back, and where each ends.
fn read_vocabulary(text: &str) -> Result<(heapless::String<MAX_SYMBOL_BYTES>, heapless::Vec<u16, MAX_SYMBOLS>), Error> {
    let text_full = Error::AsrCapacityExceeded {
        key: VOCABULARY,
        what: "bytes of symbol text (MAX_SYMBOL_BYTES)",
        capacity: MAX_SYMBOL_BYTES as u32,
    };
    let symbols_full =
        Error::AsrCapacityExceeded { key: VOCABULARY, what: "symbols (MAX_SYMBOLS)", capacity: MAX_SYMBOLS as u32 };
    let mut all = heapless::String::new();
    let mut ends = heapless::Vec::new();
    json::for_each_string(VOCABULARY, text, |symbol| {
        symbol.push_to(VOCABULARY, &mut all, text_full)?;
        let end = u16::try_from(all.len()).map_err(|_| text_full)?;
        ends.push(end).map_err(|_| symbols_full)
    })?;
    Ok((all, ends))
}

/// A JSON list of at most [`MAX_BINS`] numbers.
fn read_floats(key: &'static str, text: &str) -> Result<heapless::Vec<f32, MAX_BINS>, Error> {
    let full = Error::AsrCapacityExceeded { key, what: "values (MAX_BINS)", capacity: MAX_BINS as u32 };
    let mut values = heapless::Vec::new();
    json::for_each_number(key, text, |x| values.push(x).map_err(|_| full))?;
    Ok(values)
}

/// `app.word_prior`: a list of `(words + 1) × words` numbers over `app.words`,
/// which must name each word once: the prior numbers words as the list does, and
/// the lexicon gives a repeated word its first number.
fn check_word_prior(text: &str, words: Option<&str>, count: usize) -> Result<(), Error> {
    let Some(list) = words else {
        return Err(Error::BadAsrMetadata {
            key: WORD_PRIOR,
            reason: "scores words, but the model lists none (app.words)",
        });
    };
    let repeated = Error::BadAsrMetadata { key: WORD_PRIOR, reason: "needs app.words without a word listed twice" };
    visit_words(list, |i, word| {
        visit_words(list, |j, other| if j < i && other == word { Err(repeated) } else { Ok(()) }).map(|_| ())
    })?;
    let scores = json::for_each_number(WORD_PRIOR, text, |_| Ok(()))?;
    let expected = (count as u64 + 1) * count as u64;
    if scores as u64 != expected {
        return Err(Error::AsrShapeMismatch {
            what: "app.word_prior scores ((app.words + 1) × app.words)",
            expected,
            found: scores as u64,
        });
    }
    Ok(())
}

fn check_bins(what: &'static str, values: &[f32], num_bins: usize) -> Result<(), Error> {
    if values.len() == num_bins {
        Ok(())
    } else {
        Err(Error::AsrShapeMismatch { what, expected: num_bins as u64, found: values.len() as u64 })
    }
}

/// Calls `f` with each word of `app.words`, decoded, after checking it: not
/// empty, no whitespace (words are split at spaces), at most [`MAX_WORD_BYTES`].
/// Returns how many words there were.
fn visit_words(text: &str, mut f: impl FnMut(usize, &str) -> Result<(), Error>) -> Result<usize, Error> {
    let too_long = Error::AsrCapacityExceeded {
        key: WORDS,
        what: "bytes in one word (MAX_WORD_BYTES)",
        capacity: MAX_WORD_BYTES as u32,
    };
    let mut index = 0;
    json::for_each_string(WORDS, text, |s| {
        let mut word = heapless::String::<MAX_WORD_BYTES>::new();
        s.push_to(WORDS, &mut word, too_long)?;
        if word.is_empty() {
            return Err(Error::BadAsrMetadata { key: WORDS, reason: "a word is empty" });
        }
        if word.contains(char::is_whitespace) {
            return Err(Error::BadAsrMetadata { key: WORDS, reason: "a word contains whitespace" });
        }
        f(index, &word)?;
        index += 1;
        Ok(())
    })
}

/// `app.frontend`'s fields, each in the slot of its key in [`FRONTEND_KEYS`].
struct Frontend<'m> {
    values: [Option<Value<'m>>; FRONTEND_KEYS.len()],
}

impl<'m> Frontend<'m> {
    /// Reads the object; a field it does not know, or one given twice, is an error.
    fn read(text: &'m str) -> Result<Self, Error> {
        let mut values = [None; FRONTEND_KEYS.len()];
        json::for_each_field(FRONTEND, text, |index, name, value| {
            let slot = FRONTEND_KEYS.iter().zip(values.iter_mut()).find(|(key, _)| is_field(key, name));
            let Some((key, slot)) = slot else {
                let field = u32::try_from(index + 1).unwrap_or(u32::MAX);
                return Err(Error::UnknownAsrField { key: FRONTEND, field, known: FRONTEND_NAMES });
            };
            match slot.replace(value) {
                None => Ok(()),
                Some(_) => Err(Error::BadAsrMetadata { key, reason: "given twice" }),
            }
        })?;
        Ok(Frontend { values })
    }

    fn get(&self, key: &str) -> Option<Value<'m>> {
        FRONTEND_KEYS.iter().zip(&self.values).find(|(k, _)| **k == key).and_then(|(_, v)| *v)
    }

    /// A whole number that fits u32 (as serde_json's `as_u64` reads one); without
    /// the field, `default`, or an error if there is none.
    fn uint(&self, key: &'static str, default: Option<u32>) -> Result<u32, Error> {
        let Some(value) = self.get(key) else { return default.ok_or(Error::MissingMetadata { key }) };
        let whole = match value {
            Value::Number(text) => json::to_u64(text),
            _ => None,
        };
        whole
            .and_then(|v| u32::try_from(v).ok())
            .ok_or(Error::BadAsrMetadata { key, reason: "must be a whole number from 0 to 4294967295" })
    }

    fn number(&self, key: &'static str, default: f32) -> Result<f32, Error> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Number(text)) => {
                json::to_f32(text).ok_or(Error::BadAsrMetadata { key, reason: "a number beyond the range of f32" })
            }
            Some(_) => Err(Error::BadAsrMetadata { key, reason: "must be a number" }),
        }
    }

    fn flag(&self, key: &'static str, default: bool) -> Result<bool, Error> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(b),
            Some(_) => Err(Error::BadAsrMetadata { key, reason: "must be true or false" }),
        }
    }
}

/// Whether the object key `name` is the field `key` names.
fn is_field(key: &str, name: Str<'_>) -> bool {
    key.strip_prefix("app.frontend.").is_some_and(|field| name.is(field))
}

/// `app.frontend` → runtime front-end options. Fields it leaves out take
/// kaldi-native-fbank's defaults as sherpa-onnx sets them; the ones the runtime
/// cannot honour (dither, an unknown window) are refused rather than ignored.
fn fbank_options(frontend: &Frontend<'_>, sample_rate: u32, num_bins: usize) -> Result<FbankOptions, Error> {
    let d = FbankOptions::default();
    if frontend.number("app.frontend.dither", 0.0)? != 0.0 {
        return Err(Error::BadAsrMetadata {
            key: "app.frontend.dither",
            reason: "must be 0, as streaming results must not depend on a random generator",
        });
    }
    let window = match frontend.get("app.frontend.window") {
        None => Window::Povey,
        Some(Value::Str(name)) => window_named(name).ok_or(Error::BadAsrMetadata {
            key: "app.frontend.window",
            reason: "not one linrt knows (povey, hann, hamming, rectangular)",
        })?,
        Some(_) => return Err(Error::BadAsrMetadata { key: "app.frontend.window", reason: "must be a string" }),
    };
    Ok(FbankOptions {
        sample_rate,
        num_bins,
        frame_length_ms: frontend.number("app.frontend.frame_length_ms", d.frame_length_ms)?,
        frame_shift_ms: frontend.number("app.frontend.frame_shift_ms", d.frame_shift_ms)?,
        low_freq: frontend.number("app.frontend.low_freq", d.low_freq)?,
        high_freq: frontend.number("app.frontend.high_freq", d.high_freq)?,
        preemph_coeff: frontend.number("app.frontend.preemph_coeff", d.preemph_coeff)?,
        remove_dc_offset: frontend.flag("app.frontend.remove_dc_offset", d.remove_dc_offset)?,
        window,
        snip_edges: frontend.flag("app.frontend.snip_edges", d.snip_edges)?,
        sample_scale: frontend.number("app.frontend.sample_scale", d.sample_scale)?,
        noise_floor: frontend.number("app.frontend.noise_floor", d.noise_floor)?,
    })
}

fn window_named(name: Str<'_>) -> Option<Window> {
    let names = [
        ("povey", Window::Povey),
        ("hann", Window::Hann),
        ("hanning", Window::Hann),
        ("hamming", Window::Hamming),
        ("rectangular", Window::Rectangular),
    ];
    names.into_iter().find(|(known, _)| name.is(known)).map(|(_, window)| window)
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::format::{expected_tensor, tensor_count};
    use crate::{AlignedBytes, LrtWriter, ModelConfig, OutputKind};

    /// A model every check accepts: 5 outputs, 4 bins × 3 frames of input, every
    /// front-end field away from its default.
    const GOOD: [(&str, &str); 6] = [
        ("app.task", "asr-ctc"),
        ("app.vocabulary", r#"["<blk>", " ", "\"", "b\u00e9", "\u2581c\ud83d\ude00"]"#),
        (
            "app.frontend",
            r#"{"sample_rate": 8000, "num_bins": 4, "stack": 2, "context": 3, "frame_length_ms": 32,
                "frame_shift_ms": 20, "dither": 0, "snip_edges": true, "window": "hamming", "low_freq": 40,
                "high_freq": -200, "preemph_coeff": 0.9, "remove_dc_offset": false, "sample_scale": 1,
                "noise_floor": 0.5}"#,
        ),
        ("app.feature_mean", "[-1.234567, 0.5, 12, 1e-05]"),
        ("app.feature_std", "[1, 2, 0.25, 4]"),
        ("app.words", r#"["ab", "b\u00e9", "\u2581c"]"#),
    ];

    fn config(input_dim: u32, outputs: u32) -> ModelConfig {
        let mut cfg = ModelConfig::new(4, 1, 1, 4);
        cfg.input_projection = true;
        cfg.input_dim = input_dim;
        cfg.output_kind = OutputKind::Linear;
        cfg.output_dim = outputs;
        cfg
    }

    fn model_bytes(meta: &[(String, String)], cfg: ModelConfig) -> AlignedBytes {
        let mut w = LrtWriter::new(cfg);
        for i in 0..tensor_count(&cfg) {
            let spec = expected_tensor(&cfg, i).expect("index inside count");
            w.tensor(spec.role, spec.layer, vec![0.5; spec.dims[0] as usize * spec.dims[1] as usize]);
        }
        for (k, v) in meta {
            w.metadata(k.as_str(), v.as_str());
        }
        AlignedBytes::from_slice(&w.to_bytes().expect("valid model"))
    }

    /// GOOD with `key` set to `value`, or left out for None.
    fn meta_with(key: &str, value: Option<&str>) -> Vec<(String, String)> {
        let mut meta: Vec<(String, String)> =
            GOOD.iter().filter(|(k, _)| *k != key).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        meta.extend(value.map(|v| (key.to_string(), v.to_string())));
        meta
    }

    fn error_with_config(meta: &[(String, String)], cfg: ModelConfig) -> Error {
        let bytes = model_bytes(meta, cfg);
        let model = bytes.model().expect("valid model");
        AsrInfo::from_model(&model).expect_err("the metadata should be refused")
    }

    /// The error for GOOD with `key` changed (None: removed), on the 12-in, 5-out model.
    fn refused(key: &str, value: Option<&str>) -> Error {
        error_with_config(&meta_with(key, value), config(12, 5))
    }

    fn frontend_refused(json: &str) -> Error {
        refused("app.frontend", Some(json))
    }

    fn bad_key(err: Error) -> &'static str {
        match err {
            Error::BadAsrMetadata { key, .. } | Error::BadJson { key, .. } => key,
            other => panic!("expected a metadata error, got {other:?}"),
        }
    }

    #[test]
    fn good_metadata_reads_with_every_value() {
        let bytes = model_bytes(&meta_with("", None), config(12, 5));
        let model = bytes.model().unwrap();
        let info = AsrInfo::from_model(&model).unwrap();
        assert_eq!((info.sample_rate, info.num_bins, info.stack, info.context), (8000, 4, 2, 3));
        assert_eq!(info.symbols(), 5);
        assert_eq!(info.symbol_texts().collect::<Vec<_>>(), ["<blk>", " ", "\"", "bé", "▁c😀"]);
        assert_eq!(
            (info.symbol(0), info.symbol(4), info.symbol(5), info.symbol(usize::MAX)),
            ("<blk>", "▁c😀", "", "")
        );
        assert_eq!(info.separator(), Some(1));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(info.mean()), bits(&[-1.234567, 0.5, 12.0, 1e-5]));
        assert_eq!(info.std(), [1.0, 2.0, 0.25, 4.0]);
        let expected = FbankOptions {
            sample_rate: 8000,
            num_bins: 4,
            frame_length_ms: 32.0,
            frame_shift_ms: 20.0,
            low_freq: 40.0,
            high_freq: -200.0,
            preemph_coeff: 0.9,
            remove_dc_offset: false,
            window: Window::Hamming,
            snip_edges: true,
            sample_scale: 1.0,
            noise_floor: 0.5,
        };
        assert_eq!(info.fbank, expected);
        // 2 shifts of 160 samples at 8 kHz.
        assert_eq!(info.step_seconds(), 0.04);
        assert!(info.has_words());
        assert_eq!((info.word_count(), info.word_chars()), (3, 6));
        let mut words = Vec::new();
        info.for_each_word(|i, w| {
            words.push((i, w.to_string()));
            Ok(())
        })
        .unwrap();
        assert_eq!(words, [(0, "ab".to_string()), (1, "bé".to_string()), (2, "▁c".to_string())]);
        let stop = Error::BadDecoder { reason: "stop" };
        assert_eq!(info.for_each_word(|_, _| Err(stop)), Err(stop));
    }

    #[test]
    fn left_out_fields_take_the_defaults() {
        let mut meta = meta_with("app.frontend", Some(r#"{"sample_rate": 16000, "num_bins": 4, "stack": 3}"#));
        meta.retain(|(k, _)| k != "app.words" && k != "app.vocabulary");
        meta.push(("app.vocabulary".into(), r#"["<blk>", "a", "b", "c", "d"]"#.into()));
        let bytes = model_bytes(&meta, config(12, 5));
        let model = bytes.model().unwrap();
        let info = AsrInfo::from_model(&model).unwrap();
        assert_eq!((info.stack, info.context), (3, 3));
        assert_eq!(info.fbank, FbankOptions { sample_rate: 16000, num_bins: 4, ..FbankOptions::default() });
        assert_eq!(info.step_seconds(), 0.03);
        assert_eq!(info.separator(), None);
        assert!(!info.has_words());
        assert_eq!((info.word_count(), info.word_chars()), (0, 0));
        info.for_each_word(|_, _| panic!("no words to visit")).unwrap();
    }

    #[test]
    fn the_task_must_be_ctc_speech_recognition() {
        assert_eq!(refused("app.task", None), Error::MissingMetadata { key: "app.task" });
        assert_eq!(refused("app.task", None).to_string(), "the model has no app.task metadata");
        assert_eq!(refused("app.task", Some("lm")), Error::NotAsrModel);
        let mut tokens = config(12, 5);
        tokens.input_kind = InputKind::Tokens;
        tokens.input_projection = false;
        assert_eq!(bad_key(error_with_config(&meta_with("", None), tokens)), "app.task");
    }

    #[test]
    fn every_required_entry_must_be_there() {
        for key in ["app.vocabulary", "app.feature_mean", "app.feature_std", "app.frontend"] {
            assert_eq!(refused(key, None), Error::MissingMetadata { key }, "{key}");
        }
        for (json, key) in [
            (r#"{"num_bins": 4, "stack": 3}"#, "app.frontend.sample_rate"),
            (r#"{"sample_rate": 16000, "stack": 3}"#, "app.frontend.num_bins"),
            (r#"{"sample_rate": 16000, "num_bins": 4}"#, "app.frontend.stack"),
        ] {
            assert_eq!(frontend_refused(json), Error::MissingMetadata { key }, "{json}");
        }
    }

    #[test]
    fn shapes_must_match_the_model() {
        let vocabulary = refused("app.vocabulary", Some(r#"["<blk>", " ", "a", "b"]"#));
        assert!(matches!(vocabulary, Error::AsrShapeMismatch { expected: 5, found: 4, .. }), "{vocabulary:?}");
        let inputs = error_with_config(&meta_with("", None), config(8, 5));
        assert!(matches!(inputs, Error::AsrShapeMismatch { expected: 12, found: 8, .. }), "{inputs:?}");
        assert_eq!(inputs.to_string(), "model inputs per step (app.frontend num_bins × context): expected 12, found 8");
        let mean = refused("app.feature_mean", Some("[1, 2, 3]"));
        assert!(matches!(mean, Error::AsrShapeMismatch { expected: 4, found: 3, .. }), "{mean:?}");
        let std = refused("app.feature_std", Some("[1, 2, 3, 4, 5]"));
        assert!(matches!(std, Error::AsrShapeMismatch { expected: 4, found: 5, .. }), "{std:?}");
    }

    #[test]
    fn std_must_be_positive() {
        for std in ["[1, 0, 1, 1]", "[1, 1, -0.5, 1]", "[1, 1, 1, -0]"] {
            assert_eq!(bad_key(refused("app.feature_std", Some(std))), "app.feature_std", "{std}");
        }
    }

    #[test]
    fn frontend_sizes_must_be_positive_whole_numbers() {
        for json in [
            r#"{"sample_rate": 16000, "num_bins": 0, "stack": 3}"#,
            r#"{"sample_rate": 16000, "num_bins": 4, "stack": 0}"#,
            r#"{"sample_rate": 16000, "num_bins": 4, "stack": 3, "context": 2}"#,
        ] {
            assert_eq!(bad_key(frontend_refused(json)), "app.frontend", "{json}");
        }
        for (json, key) in [
            (r#"{"sample_rate": 16000.0, "num_bins": 4, "stack": 3}"#, "app.frontend.sample_rate"),
            (r#"{"sample_rate": "16000", "num_bins": 4, "stack": 3}"#, "app.frontend.sample_rate"),
            (r#"{"sample_rate": 4294967296, "num_bins": 4, "stack": 3}"#, "app.frontend.sample_rate"),
            (r#"{"sample_rate": 16000, "num_bins": -4, "stack": 3}"#, "app.frontend.num_bins"),
            (r#"{"sample_rate": 16000, "num_bins": 4, "stack": 3e0}"#, "app.frontend.stack"),
            (r#"{"sample_rate": 16000, "num_bins": 4, "stack": 3, "context": null}"#, "app.frontend.context"),
        ] {
            assert_eq!(bad_key(frontend_refused(json)), key, "{json}");
        }
    }

    #[test]
    fn frontend_parameters_linrt_cannot_honour_are_refused() {
        let base = r#""sample_rate": 16000, "num_bins": 4, "stack": 3"#;
        for (field, key) in [
            (r#""dither": 0.1"#, "app.frontend.dither"),
            (r#""dither": "none""#, "app.frontend.dither"),
            (r#""window": "blackman""#, "app.frontend.window"),
            (r#""window": 3"#, "app.frontend.window"),
            (r#""snip_edges": "yes""#, "app.frontend.snip_edges"),
            (r#""remove_dc_offset": 1"#, "app.frontend.remove_dc_offset"),
            (r#""frame_shift_ms": "10""#, "app.frontend.frame_shift_ms"),
            (r#""low_freq": null"#, "app.frontend.low_freq"),
            (r#""high_freq": 1e39"#, "app.frontend.high_freq"),
            (r#""stack": 3"#, "app.frontend.stack"),
        ] {
            assert_eq!(bad_key(frontend_refused(&format!("{{{base}, {field}}}"))), key, "{field}");
        }
        let unknown = frontend_refused(&format!(r#"{{{base}, "bogus": 1}}"#));
        assert_eq!(unknown, Error::UnknownAsrField { key: "app.frontend", field: 4, known: FRONTEND_NAMES });
        assert!(unknown.to_string().starts_with(
            "the model's app.frontend metadata: field 4 (counting from 1) is not one linrt knows (sample_rate, "
        ));
        assert_eq!(bad_key(frontend_refused(&format!("[{base}]"))), "app.frontend");
        assert_eq!(bad_key(frontend_refused(&format!(r#"{{{base}, "window": ["hann"]}}"#))), "app.frontend");
    }

    #[test]
    fn window_names_decode_escapes_and_accept_the_aliases() {
        for (name, window) in [
            ("povey", Window::Povey),
            ("han\\u006e", Window::Hann),
            ("hanning", Window::Hann),
            ("rectangular", Window::Rectangular),
        ] {
            let json = format!(r#"{{"sample_rate": 16000, "num_bins": 4, "stack": 3, "window": "{name}"}}"#);
            let bytes = model_bytes(&meta_with("app.frontend", Some(&json)), config(12, 5));
            let model = bytes.model().unwrap();
            assert_eq!(AsrInfo::from_model(&model).unwrap().fbank.window, window, "{name}");
        }
    }

    #[test]
    fn frontend_names_match_the_keys() {
        let names: Vec<&str> = FRONTEND_KEYS.iter().map(|k| k.strip_prefix("app.frontend.").unwrap()).collect();
        assert_eq!(names.join(", "), FRONTEND_NAMES);
    }

    #[test]
    fn a_word_prior_scores_every_word_after_each_and_first() {
        // Three words: a start row and a row after each, three scores in each.
        let scores = "[-1,-2,-3, -0.5,-1,-2, -4,-5,-6, 0,0.25,1e-3]";
        let bytes = model_bytes(&meta_with("app.word_prior", Some(scores)), config(12, 5));
        let model = bytes.model().unwrap();
        let info = AsrInfo::from_model(&model).unwrap();
        assert_eq!(info.word_prior_len(), 12);
        let mut out = [0.0; 12];
        let prior = info.read_word_prior(&mut out).unwrap().unwrap();
        assert_eq!((prior.score(None, 2), prior.score(Some(0), 0), prior.score(Some(2), 1)), (-3.0, -0.5, 0.25));
        assert!(matches!(info.read_word_prior(&mut [0.0; 11]), Err(Error::BadLength { expected: 12, found: 11, .. })));
        // Without one, nothing to read.
        let bytes = model_bytes(&meta_with("", None), config(12, 5));
        let model = bytes.model().unwrap();
        let info = AsrInfo::from_model(&model).unwrap();
        assert_eq!(info.word_prior_len(), 0);
        assert!(info.read_word_prior(&mut []).unwrap().is_none());
    }

    #[test]
    fn a_word_prior_must_fit_the_words() {
        let short = refused("app.word_prior", Some("[-1,-2,-3]"));
        assert!(matches!(short, Error::AsrShapeMismatch { expected: 12, found: 3, .. }), "{short:?}");
        assert_eq!(short.to_string(), "app.word_prior scores ((app.words + 1) × app.words): expected 12, found 3");
        assert_eq!(bad_key(refused("app.word_prior", Some(r#"["a"]"#))), "app.word_prior");
        assert_eq!(bad_key(refused("app.word_prior", Some("[1e39]"))), "app.word_prior");
        let mut no_words = meta_with("app.word_prior", Some("[0]"));
        no_words.retain(|(k, _)| k != "app.words");
        let err = error_with_config(&no_words, config(12, 5));
        assert_eq!(
            err.to_string(),
            "the model's app.word_prior metadata: scores words, but the model lists none (app.words)"
        );
        // A word listed twice would shift the prior's numbering against the lexicon's.
        let mut twice = meta_with("app.word_prior", Some("[0,0,0, 0,0,0, 0,0,0, 0,0,0]"));
        twice.retain(|(k, _)| k != "app.words");
        twice.push(("app.words".into(), r#"["ab", "b\u00e9", "ab"]"#.into()));
        let err = error_with_config(&twice, config(12, 5));
        assert_eq!(err.to_string(), "the model's app.word_prior metadata: needs app.words without a word listed twice");
    }

    #[test]
    fn words_must_be_non_empty_and_without_whitespace() {
        for words in ["[]", r#"["a b"]"#, r#"["ab", ""]"#, r#"["a\tb"]"#, r#"["a\u2003b"]"#] {
            assert_eq!(bad_key(refused("app.words", Some(words))), "app.words", "{words}");
        }
        assert_eq!(
            refused("app.words", Some("[]")).to_string(),
            "the model's app.words metadata: must list at least one word"
        );
        let longest = format!(r#"["{}"]"#, "é".repeat(MAX_WORD_BYTES / 2));
        let bytes = model_bytes(&meta_with("app.words", Some(&longest)), config(12, 5));
        let model = bytes.model().unwrap();
        assert_eq!(AsrInfo::from_model(&model).unwrap().word_chars(), MAX_WORD_BYTES / 2);
        let too_long = format!(r#"["ab", "{}"]"#, "a".repeat(MAX_WORD_BYTES + 1));
        assert!(matches!(
            refused("app.words", Some(&too_long)),
            Error::AsrCapacityExceeded { key: "app.words", capacity: 256, .. }
        ));
    }

    #[test]
    fn malformed_json_is_an_error() {
        for (key, json) in [
            ("app.vocabulary", r#"["<blk>", " ", "a", "b", "c""#),
            ("app.vocabulary", r#"["<blk>", " ", "a", "b", "c"] x"#),
            ("app.vocabulary", "[0, 1, 2, 3, 4]"),
            ("app.vocabulary", r#"["<blk>", " ", "a", "b", "\ud800"]"#),
            ("app.feature_mean", "[1, 2, 3, 4] x"),
            ("app.feature_mean", "[1, 2, 3, 4,]"),
            ("app.feature_std", r#"["1", "2", "3", "4"]"#),
            ("app.feature_std", "[1, 2, 3, 1e400]"),
            ("app.frontend", r#"{"sample_rate": 8000, "num_bins": 4, "stack": 2"#),
            ("app.words", r#""ab""#),
            ("app.words", r#"["ab", 3]"#),
        ] {
            let err = refused(key, Some(json));
            assert!(matches!(err, Error::BadJson { key: k, .. } if k == key), "{key} = {json}: {err:?}");
        }
    }

    #[test]
    fn more_than_the_storage_holds_is_an_error() {
        let symbols = |n: usize| format!("[{}]", vec![r#""x""#; n].join(","));
        assert!(matches!(
            refused("app.vocabulary", Some(&symbols(MAX_SYMBOLS + 1))),
            Error::AsrCapacityExceeded { key: "app.vocabulary", capacity: 1024, .. }
        ));
        // What fits is read, and then refused only for not matching the model.
        assert!(matches!(
            refused("app.vocabulary", Some(&symbols(MAX_SYMBOLS))),
            Error::AsrShapeMismatch { found: 1024, .. }
        ));
        let text = |bytes: usize| format!(r#"["{}"]"#, "x".repeat(bytes));
        assert!(matches!(
            refused("app.vocabulary", Some(&text(MAX_SYMBOL_BYTES + 1))),
            Error::AsrCapacityExceeded { key: "app.vocabulary", capacity: 8192, .. }
        ));
        assert!(matches!(
            refused("app.vocabulary", Some(&text(MAX_SYMBOL_BYTES))),
            Error::AsrShapeMismatch { found: 1, .. }
        ));
        let mean = format!("[{}]", vec!["0"; MAX_BINS + 1].join(","));
        let err = refused("app.feature_mean", Some(&mean));
        assert_eq!(
            err,
            Error::AsrCapacityExceeded { key: "app.feature_mean", what: "values (MAX_BINS)", capacity: 256 }
        );
        assert_eq!(err.to_string(), "the model's app.feature_mean metadata exceeds linrt's 256 values (MAX_BINS)");
    }
}
