//! The streaming recognizer: audio samples in, partial and final transcripts out.
//!
//! samples → [`Fbank`] → log-mel frames → [`FrameStacker`] → one encoder step per
//! `stack` frames → [`Session::step`] → logits → [`Decoder`] (greedy CTC, or the
//! beam search over a lexicon) → text, with the endpoint rules closing an
//! utterance (and resetting the model's state) after enough trailing silence. Every stage carries its partial work between calls, so
//! audio can arrive in chunks of any size and the logits are bit-identical.

use anyhow::{anyhow, Result};
use linrt::audio::{Fbank, FrameStacker};
use linrt::decode::EndpointConfig;
use linrt::{Input, Inputs, KernelPath, Model, Session, SessionOptions};

use super::decoding::Decoder;
use super::AsrInfo;

#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    pub text: String,
    /// Seconds from the start of the stream.
    pub start: f64,
    pub end: f64,
    /// From the beam decoder: how sure it is of the word, in [0, 1].
    pub confidence: Option<f32>,
}

/// A transcript so far (partial) or of a whole utterance (final).
#[derive(Debug, Clone, PartialEq)]
pub struct Utterance {
    pub text: String,
    /// From the first symbol's step to the end of the last symbol's step, in seconds
    /// from the start of the stream; both 0 when nothing was decoded.
    pub start: f64,
    pub end: f64,
    pub words: Vec<Word>,
    /// Audio time at which the result was produced: the endpoint for a final.
    pub decided_at: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Partial(Utterance),
    Final(Utterance),
}

/// Everything downstream of the frame stacker: the model and the decoder.
struct Decoding<'m> {
    info: AsrInfo,
    session: Session<'m>,
    decoder: Decoder<'m>,
    endpoint: EndpointConfig,
    logits: Vec<f32>,
    events: Vec<Event>,
    /// Every step's logits, when the caller asked for them (tests).
    recorded: Option<Vec<f32>>,
    /// Steps since the start of the stream.
    steps: u64,
    /// The last step inputs, oldest first, and how many steps the model's state holds.
    recent: std::collections::VecDeque<Vec<f32>>,
    state_steps: usize,
    /// Steps of context the state keeps at endpoints and while nothing is decoded
    /// (see `rebuild_state`).
    idle_steps: usize,
    /// false: the state is only ever reset at endpoints, never rebuilt while idle
    /// nor at an utterance's first symbol.
    rebuilds_between_endpoints: bool,
    /// Steps of context the state is rebuilt from at an utterance's first symbol
    /// (see `anchor`), and whether this utterance was anchored already.
    anchor_steps: usize,
    anchored: bool,
    /// A rebuild's kept inputs, contiguous, and their logits: the replay is one
    /// `step_chunk` (matrix-matrix kernels: 1.3× the throughput of stepping for
    /// the shipped int8 model on an AVX2 core, `linrt bench --prefill 34`).
    replay_inputs: Vec<f32>,
    replay_logits: Vec<f32>,
    error: Option<linrt::Error>,
}

/// Seconds of context the model's state keeps while it waits for speech, and after
/// an endpoint. The shipped model was trained on utterances with 0.1-0.6 s of
/// silence before the speech; over an hour of commands (tests/asr_stream.rs, in an
/// earlier form with gaps of pure noise floor) 0.2 s gave the lowest WER of
/// 0.12-1.0 s: 27.0 %, against 28.8 % at 0.3 s and 44 % without idle rebuilds.
const IDLE_CONTEXT_SECONDS: f64 = 0.2;

/// Seconds of audio an utterance is decoded again from at its first symbol (see
/// `Decoding::anchor`). Over the hour of commands of tests/asr_stream.rs the WER
/// streamed was 29.4 / 29.0 / 28.3 / 28.5 / 28.4 % with 0.6 / 0.7 / 0.8 / 1.0 /
/// 1.2 s, against 27.9 % for each command decoded alone (30.9 % against 29.3 %
/// without anchoring; 0.2 s loses onsets). 1.0 s sits inside the flat stretch.
const ANCHOR_SECONDS: f64 = 1.0;

/// Steps of idle context and of anchor context at `info`'s step length.
fn context_steps(info: &AsrInfo) -> (usize, usize) {
    let steps = |seconds: f64| (seconds / info.step_seconds()).ceil() as usize;
    (steps(IDLE_CONTEXT_SECONDS), steps(ANCHOR_SECONDS))
}

/// Most steps a state rebuild replays (the inputs `remember` keeps): the
/// session's `max_chunk`.
fn replay_steps(info: &AsrInfo) -> usize {
    let (idle, anchor) = context_steps(info);
    idle.max(anchor).max(1)
}

pub struct Recognizer<'m> {
    fbank: Box<Fbank>,
    stacker: Box<FrameStacker>,
    decoding: Decoding<'m>,
}

impl<'m> Recognizer<'m> {
    /// A recognizer for an `asr-ctc` model; `arena` must hold
    /// [`Recognizer::arena_bytes`].
    pub fn new(
        model: &Model<'m>,
        arena: &'m mut [u8],
        info: AsrInfo,
        endpoint: EndpointConfig,
        kernels: Option<KernelPath>,
        decoder: Decoder<'m>,
    ) -> Result<Self> {
        let opts = SessionOptions { kernels, max_chunk: replay_steps(&info) };
        let session = Session::new(model, arena, opts).map_err(|e| anyhow!("{e}"))?;
        let fbank = Box::new(Fbank::new(info.fbank).map_err(|e| anyhow!("the model's front-end: {e}"))?);
        let stacker = Box::new(
            FrameStacker::new(info.num_bins, info.stack, info.context, &info.mean, &info.std)
                .map_err(|e| anyhow!("the model's front-end: {e}"))?,
        );
        let logits = vec![0f32; info.vocabulary.len()];
        let replay_inputs = Vec::with_capacity(replay_steps(&info) * info.num_bins * info.context);
        let replay_logits = vec![0f32; replay_steps(&info) * info.vocabulary.len()];
        let (idle_steps, anchor_steps) = context_steps(&info);
        let decoding = Decoding {
            info,
            session,
            decoder,
            endpoint,
            logits,
            events: Vec::new(),
            recorded: None,
            steps: 0,
            recent: std::collections::VecDeque::with_capacity(idle_steps.max(anchor_steps) + 1),
            state_steps: 0,
            idle_steps,
            rebuilds_between_endpoints: true,
            anchor_steps,
            anchored: false,
            replay_inputs,
            replay_logits,
            error: None,
        };
        Ok(Recognizer { fbank, stacker, decoding })
    }

    /// Bytes of arena a recognizer for `model` (described by `info`) needs.
    pub fn arena_bytes(model: &Model, info: &AsrInfo, kernels: Option<KernelPath>) -> Result<usize> {
        model.arena_bytes(SessionOptions { kernels, max_chunk: replay_steps(info) }).map_err(|e| anyhow!("{e}"))
    }

    pub fn info(&self) -> &AsrInfo {
        &self.decoding.info
    }

    /// Rebuild the state only at endpoints, never while nothing is decoded nor at an
    /// utterance's first symbol: the logits are then exactly the model's on the
    /// whole utterance, as a reference computes them (tests).
    pub fn rebuild_only_at_endpoints(&mut self) {
        self.decoding.rebuilds_between_endpoints = false;
    }

    /// Keep every step's logits (see [`Recognizer::recorded_logits`]).
    pub fn record_logits(&mut self) {
        self.decoding.recorded = Some(Vec::new());
    }

    pub fn recorded_logits(&self) -> &[f32] {
        self.decoding.recorded.as_deref().unwrap_or(&[])
    }

    /// Seconds of audio accepted since the start of the stream.
    pub fn seconds(&self) -> f64 {
        self.fbank.samples() as f64 / self.decoding.info.sample_rate as f64
    }

    /// Feeds samples in [-1, 1] at the model's rate; events pile up for [`Self::events`].
    pub fn accept(&mut self, samples: &[f32]) -> Result<()> {
        let Recognizer { fbank, stacker, decoding } = self;
        fbank.accept(samples, |frame| stacker.push(frame, |step| decoding.step(step)));
        decoding.check()
    }

    /// Ends the stream: the last frames and the last partial step are decoded, and
    /// what was decoded since the last endpoint becomes a final. The recognizer is
    /// then ready for a new stream, its clock back at zero.
    pub fn finish(&mut self) -> Result<()> {
        let Recognizer { fbank, stacker, decoding } = self;
        fbank.finish(|frame| stacker.push(frame, |step| decoding.step(step)));
        stacker.finish(|step| decoding.step(step));
        decoding.check()?;
        decoding.end_stream();
        Ok(())
    }

    /// Ends the stream after a failure (of the input or the model): what was
    /// decoded becomes a final, and the recognizer is ready for a new stream. The
    /// audio still buffered in the front-end is dropped.
    pub fn abandon(&mut self) {
        let Recognizer { fbank, stacker, decoding } = self;
        fbank.reset();
        stacker.reset();
        decoding.error = None;
        decoding.end_stream();
    }

    /// The events produced since the last call, oldest first.
    pub fn events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.decoding.events)
    }
}

impl Decoding<'_> {
    fn step(&mut self, input: &[f32]) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.session.step(Input::Vector(input), &mut self.logits) {
            self.error = Some(e);
            return;
        }
        self.steps += 1;
        self.state_steps += 1;
        self.remember(input);
        if let Some(r) = &mut self.recorded {
            r.extend_from_slice(&self.logits);
        }
        match self.decoder.push(&self.logits) {
            Ok(true) => self.symbol_added(),
            Ok(false) => {}
            Err(e) => {
                self.error = Some(e);
                return;
            }
        }
        let secs = self.info.step_seconds() as f32;
        let length = self.decoder.steps() as f32 * secs;
        let silence = self.decoder.trailing_silence() as f32 * secs;
        match self.endpoint.detect(length, silence) {
            Some(_) => {
                // Only the utterance's trailing silence may be decoded again: the
                // steps before it hold symbols that its final already has.
                let silent = self.decoder.trailing_silence() as usize;
                self.end_utterance();
                self.rebuild_state(self.idle_steps, silent);
            }
            None if self.decoder.is_full() => {
                self.end_utterance();
                self.rebuild_state(self.idle_steps, 0);
            }
            // Not once the utterance is anchored: the beam's best hypothesis may
            // fall back to nothing for a few steps of a word's onset while others
            // hold its first letters, and a rebuild then would cut the onset.
            None if self.rebuilds_between_endpoints
                && !self.anchored
                && self.decoder.is_empty()
                && self.state_steps >= 2 * self.idle_steps =>
            {
                let silent = self.decoder.trailing_silence() as usize;
                self.rebuild_state(self.idle_steps, silent)
            }
            None => {}
        }
    }

    fn remember(&mut self, input: &[f32]) {
        let kept = self.idle_steps.max(self.anchor_steps);
        let mut slot = if self.recent.len() >= kept { self.recent.pop_front() } else { None }
            .unwrap_or_else(|| vec![0.0; input.len()]);
        slot.copy_from_slice(input);
        self.recent.push_back(slot);
    }

    /// A fresh state that has heard only the last `keep` steps: reset, then those
    /// steps again.
    ///
    /// Used at every endpoint, so that the next utterance's onset, which may have
    /// begun before its first symbol is decoded, is not cut; and while nothing is
    /// decoded, once the state holds two idle contexts of silence: a
    /// linear-attention state sums everything it heard, and after seconds of
    /// silence the speech that follows would weigh less than in training; and at
    /// an utterance's first symbol (`anchor`).
    ///
    /// The last `redo` of the kept steps, which hold no symbol of an ended
    /// utterance, are decoded again from the new state: an onset the old state had
    /// not yet turned into a symbol may show earlier in the new one, and must not
    /// fall between the two.
    fn rebuild_state(&mut self, keep: usize, redo: usize) {
        self.session.reset();
        let keep = self.recent.len().min(keep);
        let start = self.recent.len() - keep;
        let redo = redo.min(keep);
        let redo = if self.decoder.rewind(redo as u64) { redo } else { 0 };
        self.state_steps = keep;
        if keep == 0 {
            return;
        }
        self.replay_inputs.clear();
        for input in self.recent.range(start..) {
            self.replay_inputs.extend_from_slice(input);
        }
        let vocab = self.logits.len();
        let logits = &mut self.replay_logits[..keep * vocab];
        if let Err(e) = self.session.step_chunk(Inputs::Vectors(&self.replay_inputs), logits) {
            self.error = Some(e);
            return;
        }
        let mut changed = false;
        for step_logits in logits.chunks_exact(vocab).skip(keep - redo) {
            match self.decoder.push(step_logits) {
                Ok(c) => changed |= c,
                Err(e) => {
                    self.error = Some(e);
                    return;
                }
            }
        }
        if changed {
            self.symbol_added();
        }
    }

    /// After a new symbol: the utterance's first anchors it, the others are partials.
    fn symbol_added(&mut self) {
        if self.rebuilds_between_endpoints && !self.anchored {
            self.anchor();
        } else if let Some(partial) = self.utterance(false) {
            self.events.push(Event::Partial(partial));
        }
    }

    /// At an utterance's first symbol, the state is rebuilt from the last
    /// `anchor_steps` (the speech's onset and the quiet before it) and those steps
    /// of the utterance are decoded again. However long the quiet before it and
    /// whatever idle rebuilds happened in it, every utterance is then decoded from
    /// the state it would have had alone, from a short lead-in: as the model was
    /// trained, and as a file holding just that command is decoded.
    fn anchor(&mut self) {
        self.anchored = true;
        let redo = self.anchor_steps.min(self.decoder.steps() as usize);
        // Reports the partial when the symbols come back (they were not shown yet).
        self.rebuild_state(self.anchor_steps, redo);
    }

    fn check(&mut self) -> Result<()> {
        match self.error.take() {
            Some(e) => Err(anyhow!("the model failed: {e}")),
            None => Ok(()),
        }
    }

    /// The last final, then everything back to the start of a stream.
    fn end_stream(&mut self) {
        self.end_utterance();
        self.session.reset();
        self.recent.clear();
        self.state_steps = 0;
        self.steps = 0;
        self.decoder.clear();
    }

    /// A final for what was decoded (if anything), and a fresh decoder. The caller
    /// rebuilds the state: the model's state never holds more than one utterance
    /// and the idle context before it.
    fn end_utterance(&mut self) {
        if !self.decoder.is_empty() {
            if let Some(utterance) = self.utterance(true).filter(|u| !u.text.is_empty()) {
                self.events.push(Event::Final(utterance));
            }
        }
        self.decoder.reset();
        self.anchored = false;
    }

    /// The current utterance's text, span and words: the best hypothesis so far,
    /// or (`last`) the utterance's result. None after a decoder failure (kept for
    /// [`Decoding::check`]).
    fn utterance(&mut self, last: bool) -> Option<Utterance> {
        let secs = self.info.step_seconds();
        let origin = self.decoder.utterance_start();
        let time = |step: u64| (origin + step) as f64 * secs;
        let words = match self.decoder.words(&self.info.vocabulary, last) {
            Ok(w) => w,
            Err(e) => {
                self.error = Some(e);
                return None;
            }
        };
        let words: Vec<Word> = words
            .into_iter()
            .map(|w| Word { text: w.text, start: time(w.start), end: time(w.end), confidence: w.confidence })
            .collect();
        let text = words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" ");
        let (start, end) = match (words.first(), words.last()) {
            (Some(f), Some(l)) => (f.start, l.end),
            _ => (0.0, 0.0),
        };
        Some(Utterance { text, start, end, words, decided_at: self.steps as f64 * secs })
    }
}
