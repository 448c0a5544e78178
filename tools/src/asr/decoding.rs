//! Choosing and building the recognizer's decoder: greedy CTC, or the runtime's
//! beam search constrained by a lexicon (the model's `app.words`, or a word list),
//! with an optional grammar and hotwords read from files, and the model's word
//! prior when it carries one.
//!
//! The runtime's decoder borrows all its memory; [`Tables`] and [`BeamBuffers`]
//! own it here, sized once with capacities that no command recognizer comes near
//! (and that still end in a clear error when a file exceeds them).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use linrt::asr::{self, Decoder, RecognizerBuffers, RecognizerSizes};
use linrt::decode::EndpointConfig;
use linrt::decode::{
    BeamBuffers, BeamConfig, Grammar, GrammarArc, Hotword, Hotwords, Lexicon, SlotDef, TrieNode, WordId, WordPrior,
    GRAMMAR_STATES,
};
use linrt::{KernelPath, Model};

use super::{AsrInfo, Recognizer};

/// Which decoder, as `--decoder` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DecoderKind {
    /// The best symbol per step: fast, no vocabulary.
    Greedy,
    /// Prefix beam search over the words of a lexicon (and grammar).
    Beam,
}

/// How to decode; `kind` None: the beam when there are words to constrain it
/// (the model's `app.words`, `--words` or `--grammar`), greedy otherwise.
#[derive(Debug, Clone, Default)]
pub struct DecodeOptions {
    pub kind: Option<DecoderKind>,
    pub beam: Option<usize>,
    pub words: Option<PathBuf>,
    pub grammar: Option<PathBuf>,
    pub hotwords: Option<PathBuf>,
    /// Bonus of a hotword phrase without its own `:weight`.
    pub hotword_weight: f32,
    /// Cost of a word end without the separator (None: the decoder's default).
    pub boundary_penalty: Option<f32>,
    /// Leave out the model's word prior (`app.word_prior`), which the beam uses
    /// by default over the model's own words.
    pub no_word_prior: bool,
}

/// Hypotheses kept per step by default. Chosen on the speech model's dev set
/// (training voices, never a test set; int8, boundary penalty 2): WER 13.7 % with
/// a beam of 4, 10.6 % with 8, 9.7 % with 16, 9.3 % with 32; the decoder's cost
/// is lost in the noise of the model's at 16.
pub const DEFAULT_BEAM: usize = 16;
/// sherpa-onnx's default hotwords score.
pub const DEFAULT_HOTWORD_WEIGHT: f32 = 1.5;

/// Slot definitions a grammar may hold.
const GRAMMAR_SLOTS: usize = 1024;

impl DecodeOptions {
    /// The decoder these options ask for with this model and these word lists.
    pub fn resolve(&self, info: &AsrInfo, sources: &Sources) -> Result<DecoderKind> {
        let has_words = sources.words.is_some() || sources.grammar.is_some() || info.has_words();
        let kind = self.kind.unwrap_or(if has_words { DecoderKind::Beam } else { DecoderKind::Greedy });
        match kind {
            DecoderKind::Beam if !has_words => bail!(
                "the beam decoder needs words to spell: this model has no app.words metadata; pass --words FILE or --grammar FILE"
            ),
            DecoderKind::Greedy => {
                for (flag, given) in [
                    ("--words", sources.words.is_some()),
                    ("--grammar", sources.grammar.is_some()),
                    ("--hotwords", sources.hotwords.is_some()),
                    ("--beam", self.beam.is_some()),
                    ("--boundary-penalty", self.boundary_penalty.is_some()),
                    ("--no-word-prior", self.no_word_prior),
                ] {
                    if given {
                        bail!("{flag} is for the beam decoder (--decoder beam, which needs words: the model's app.words or --words FILE)");
                    }
                }
                Ok(kind)
            }
            DecoderKind::Beam => Ok(kind),
        }
    }

    pub fn beam_config(&self) -> Result<BeamConfig> {
        let beam = self.beam.unwrap_or(DEFAULT_BEAM);
        if !(1..=256).contains(&beam) {
            bail!("--beam must be between 1 and 256, not {beam}");
        }
        let defaults = BeamConfig::default();
        let boundary_penalty = self.boundary_penalty.unwrap_or(defaults.boundary_penalty);
        if boundary_penalty.is_nan() || boundary_penalty < 0.0 {
            bail!("--boundary-penalty must be a number ≥ 0 (or inf), not {boundary_penalty}");
        }
        Ok(BeamConfig { beam, boundary_penalty, ..defaults })
    }
}

/// The word list, grammar and hotword files the options name, read once.
pub struct Sources {
    words: Option<(String, String)>,
    grammar: Option<(String, String)>,
    hotwords: Option<(String, String)>,
}

impl Sources {
    /// Texts given directly (named "words", "grammar" and "hotwords" in messages).
    pub fn from_texts(words: Option<String>, grammar: Option<String>, hotwords: Option<String>) -> Sources {
        let named = |name: &str, text: Option<String>| text.map(|t| (name.to_string(), t));
        Sources {
            words: named("words", words),
            grammar: named("grammar", grammar),
            hotwords: named("hotwords", hotwords),
        }
    }

    pub fn read(options: &DecodeOptions) -> Result<Sources> {
        let load = |p: &Option<PathBuf>| -> Result<Option<(String, String)>> {
            p.as_ref().map(|p| Ok((p.display().to_string(), read(p)?))).transpose()
        };
        Ok(Sources {
            words: load(&options.words)?,
            grammar: load(&options.grammar)?,
            hotwords: load(&options.hotwords)?,
        })
    }
}

/// The memory of a lexicon, a grammar and hotwords, sized for their sources.
pub struct Tables {
    nodes: Vec<TrieNode>,
    word_nodes: Vec<u32>,
    ranks: Vec<u32>,
    arcs: Vec<GrammarArc>,
    first_arc: Vec<u32>,
    hot_words: Vec<WordId>,
    hot_phrases: Vec<Hotword>,
    prior: Vec<f32>,
}

/// What the beam decoder may say.
pub struct Vocabulary<'t> {
    pub lexicon: Lexicon<'t>,
    pub grammar: Option<Grammar<'t>>,
    pub hotwords: Option<Hotwords<'t>>,
    /// The model's word prior, when it has one and its words are the lexicon's
    /// (no `--words` list in their place).
    pub prior: Option<WordPrior<'t>>,
}

/// A file's text, with its name for messages.
fn read(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| anyhow!("{}: not UTF-8 text", path.display()))
}

/// `file:line:column: reason: "token"`, quoting what the position points at.
fn located(name: &str, text: &str, e: linrt::Error) -> anyhow::Error {
    match e {
        linrt::Error::BadText { line, column, reason } => {
            let token: String = text
                .lines()
                .nth(line.saturating_sub(1) as usize)
                .map(|l| l.chars().skip(column.saturating_sub(1) as usize).take_while(|c| !c.is_whitespace()).collect())
                .unwrap_or_default();
            if token.is_empty() {
                anyhow!("{name}:{line}:{column}: {reason}")
            } else {
                anyhow!("{name}:{line}:{column}: {reason}: {token:?}")
            }
        }
        linrt::Error::TooLarge { line, column, what, capacity } => {
            anyhow!("{name}:{line}:{column}: more {what} than the {capacity} the decoder was sized for")
        }
        other => anyhow!("{name}: {other}"),
    }
}

/// Words (whitespace-separated tokens) and their characters in a text.
fn count(text: &str) -> (usize, usize) {
    text.split_whitespace().fold((0, 0), |(w, c), t| (w + 1, c + t.chars().count()))
}

impl Tables {
    /// Room for everything `sources` and the model's words can hold: a trie node
    /// per character (a symbol is at least one), a word per token, and grammar arcs
    /// for every phrase token times every slot word (an upper bound of Thompson's
    /// construction, which adds at most four arcs per element).
    pub fn new(info: &AsrInfo, sources: &Sources) -> Tables {
        let texts = [&sources.words, &sources.grammar, &sources.hotwords];
        let (mut words, mut chars) =
            texts.iter().filter_map(|t| t.as_ref()).map(|(_, t)| count(t)).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        if sources.words.is_none() {
            (words, chars) = (words + info.word_count(), chars + info.word_chars());
        }
        let arcs = sources.grammar.as_ref().map_or(0, |(_, g)| {
            let (definitions, phrases): (Vec<&str>, Vec<&str>) = g.lines().partition(|l| l.contains('='));
            let slot_words: usize = definitions.iter().map(|l| count(l).0).sum();
            let phrase_tokens: usize = phrases.iter().map(|l| count(l).0 + 1).sum();
            phrase_tokens * (4 + slot_words)
        });
        let hot = sources.hotwords.as_ref().map_or((0, 0), |(_, h)| (count(h).0, h.lines().count()));
        Tables {
            nodes: vec![TrieNode::default(); chars + 1],
            word_nodes: vec![0; words.max(1)],
            ranks: vec![0; words.max(1)],
            arcs: vec![GrammarArc::default(); arcs],
            first_arc: vec![0; if sources.grammar.is_some() { GRAMMAR_STATES + 1 } else { 0 }],
            hot_words: vec![0; hot.0],
            hot_phrases: vec![Hotword::default(); hot.1],
            prior: vec![0.0; if sources.words.is_none() { info.word_prior_len() } else { 0 }],
        }
    }

    /// The lexicon (`--words`, else the model's `app.words`), grammar and hotwords.
    pub fn build(&mut self, info: &AsrInfo, sources: &Sources, hotword_weight: f32) -> Result<Vocabulary<'_>> {
        let vocabulary: Vec<&str> = info.symbol_texts().collect();
        let separator = info.separator().ok_or_else(|| {
            anyhow!("the beam decoder needs a word separator (a \" \" symbol) in the model's app.vocabulary")
        })?;
        let skip = [0, separator];
        let Tables { nodes, word_nodes, ranks, arcs, first_arc, hot_words, hot_phrases, prior } = self;
        let mut lexicon = Lexicon::new(nodes, word_nodes, ranks)?;
        let mut word_prior = None;
        match &sources.words {
            Some((name, text)) => {
                lexicon.insert_list(text, &vocabulary, &skip).map_err(|e| located(name, text, e))?;
            }
            // Line n of the error is the model's n-th word.
            None => {
                info.insert_words(&mut lexicon).map_err(|e| anyhow!("the model's app.words: {e}"))?;
                word_prior = info.read_word_prior(prior).map_err(|e| anyhow!("the model's app.word_prior: {e}"))?;
            }
        }
        let grammar = match &sources.grammar {
            Some((name, text)) => {
                let mut slots = vec![SlotDef::default(); GRAMMAR_SLOTS];
                Some(
                    Grammar::parse(text, &mut lexicon, &vocabulary, &skip, &mut slots, arcs, first_arc)
                        .map_err(|e| located(name, text, e))?,
                )
            }
            None => None,
        };
        let hotwords = match &sources.hotwords {
            Some((name, text)) => Some(
                Hotwords::parse(text, hotword_weight, &mut lexicon, &vocabulary, &skip, hot_words, hot_phrases)
                    .map_err(|e| located(name, text, e))?,
            ),
            None => None,
        };
        if lexicon.words() == 0 {
            bail!("the beam decoder has no words to spell");
        }
        lexicon.finish();
        Ok(Vocabulary { lexicon, grammar, hotwords, prior: word_prior })
    }
}

/// Builds the decoder `options` ask for and a recognizer for `model` around it,
/// and runs `f` with it. Word lists and grammars are read and checked first, so a
/// bad one is reported before any audio is read.
pub fn with_recognizer<R>(
    model: &Model,
    info: AsrInfo,
    options: &DecodeOptions,
    endpoint: EndpointConfig,
    kernels: Option<KernelPath>,
    f: impl FnOnce(&mut Recognizer) -> Result<R>,
) -> Result<R> {
    let sources = Sources::read(options)?;
    with_recognizer_for(model, info, options, &sources, endpoint, kernels, f)
}

/// [`with_recognizer`] with the word list, grammar and hotwords given (`sources`)
/// rather than read from the files `options` names.
pub fn with_recognizer_for<R>(
    model: &Model,
    info: AsrInfo,
    options: &DecodeOptions,
    sources: &Sources,
    endpoint: EndpointConfig,
    kernels: Option<KernelPath>,
    f: impl FnOnce(&mut Recognizer) -> Result<R>,
) -> Result<R> {
    let kind = options.resolve(&info, sources)?;
    let config = options.beam_config()?;
    let mut tables = Tables::new(&info, sources);
    let vocabulary = match kind {
        DecoderKind::Beam => Some(tables.build(&info, sources, options.hotword_weight)?),
        DecoderKind::Greedy => None,
    };
    let mut beam_buffers = BeamBuffers::new(&config, info.symbols())?;
    let decoder = match &vocabulary {
        Some(v) => {
            let mut decoder = Decoder::beam(
                &info,
                config,
                &v.lexicon,
                v.grammar.as_ref(),
                v.hotwords.as_ref(),
                beam_buffers.memory(),
            )?;
            decoder.set_word_prior(if options.no_word_prior { None } else { v.prior.as_ref() });
            decoder
        }
        None => Decoder::greedy(&info),
    };
    let sizes = RecognizerSizes::new(model, &info, kernels, decoder.beam_config())?;
    let bytes = sizes.arena_bytes.saturating_add(sizes.floats.saturating_mul(4));
    crate::memory::check(bytes, "the recognizer's arena and buffers")?;
    let mut recognizer_buffers = RecognizerBuffers::new(&sizes);
    let inner = asr::Recognizer::new(model, info, endpoint, kernels, decoder, recognizer_buffers.memory())
        .map_err(|e| anyhow!("cannot start the recognizer: {e}"))?;
    f(&mut Recognizer::new(inner))
}

/// The endpoint rules: seconds of trailing silence that end an utterance in which
/// nothing was decoded, and one after something was; the longest utterance.
/// `names` name the three in messages (`linrt asr`'s flags, the Python keywords).
pub fn endpoint_config(seconds: [f32; 3], names: [&str; 3]) -> Result<EndpointConfig> {
    for (name, v) in names.iter().zip(seconds) {
        if !(v.is_finite() && v > 0.0) {
            bail!("{name} must be a positive number of seconds, not {v}");
        }
    }
    let mut e = EndpointConfig::default();
    e.rules[0].min_trailing_silence = seconds[0];
    e.rules[1].min_trailing_silence = seconds[1];
    e.rules[2].min_utterance_length = seconds[2];
    Ok(e)
}
