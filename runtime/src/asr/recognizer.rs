//! The streaming recognizer: audio samples in, partial and final transcripts out.
//!
//! samples → [`Fbank`] → log-mel frames → [`FrameStacker`] → one encoder step per
//! `stack` frames → [`Session::step`] → logits → [`Decoder`] (greedy CTC, or the
//! beam search over a lexicon) → text, with the endpoint rules closing an
//! utterance (and resetting the model's state) after enough trailing silence.
//! Every stage carries its partial work between calls, so audio can arrive in
//! chunks of any size and the logits and transcripts are bit-identical.
//!
//! All memory is the caller's ([`RecognizerSizes`] says how much); results come
//! out through a callback as [`Event`]s that borrow the recognizer's buffers.

use crate::audio::{Fbank, FrameStacker};
use crate::decode::{BeamConfig, DecodedWord, EndpointConfig};
use crate::{Error, Input, Inputs, KernelPath, Model, Session, SessionOptions};

use super::decoder::{max_text_bytes, max_words, Transcript};
use super::{AsrInfo, Decoder, WordSpan};

/// A word of a transcript.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Word<'a> {
    pub text: &'a str,
    /// Seconds from the start of the stream.
    pub start: f64,
    pub end: f64,
    /// From the beam decoder: how sure it is of the word, in [0, 1].
    pub confidence: Option<f32>,
}

/// A transcript so far (partial) or of a whole utterance (final).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Utterance<'a> {
    /// The words, joined by single spaces.
    pub text: &'a str,
    /// From the first symbol's step to the end of the last symbol's step, in seconds
    /// from the start of the stream; both 0 when nothing was decoded.
    pub start: f64,
    pub end: f64,
    /// Audio time at which the result was produced: the endpoint for a final.
    pub decided_at: f64,
    spans: &'a [WordSpan],
    step_seconds: f64,
    origin: u64,
}

impl<'a> Utterance<'a> {
    pub fn words(&self) -> impl ExactSizeIterator<Item = Word<'a>> + 'a {
        let (text, secs, origin) = (self.text, self.step_seconds, self.origin);
        let time = move |step: u64| (origin + step) as f64 * secs;
        self.spans.iter().map(move |w| Word {
            text: text.get(w.text_start as usize..w.text_end as usize).unwrap_or(""),
            start: time(w.start),
            end: time(w.end),
            confidence: w.confidence,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event<'a> {
    Partial(Utterance<'a>),
    Final(Utterance<'a>),
    /// One step's logits, when asked for ([`Recognizer::observe_logits`]): the
    /// steps as they stream, not the replays of a state rebuild.
    Logits(&'a [f32]),
}

/// The lengths of a [`RecognizerMemory`]'s slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecognizerSizes {
    /// The session's arena ([`Model::arena_bytes`] for the longest replay).
    pub arena_bytes: usize,
    /// One step's logits, the ring of recent step inputs a rebuild replays, the
    /// replay's inputs laid end to end, and its logits.
    pub floats: usize,
    /// Words of one transcript: every greedy symbol may be one; the beam's words
    /// and the one being spelled.
    pub words: usize,
    /// The beam's final words (0 for greedy).
    pub finals: usize,
    /// Bytes of one transcript's text.
    pub text_bytes: usize,
}

/// Everything a [`Recognizer`] works in besides its own fixed-size fields.
pub struct RecognizerMemory<'m> {
    pub arena: &'m mut [u8],
    pub floats: &'m mut [f32],
    pub words: &'m mut [WordSpan],
    pub finals: &'m mut [DecodedWord],
    pub text: &'m mut [u8],
}

/// A recognizer's memory owned on the heap, for callers with `std`
/// ([`RecognizerMemory`] borrows from it). The arena is held as 32-bit words, so it
/// has the alignment the session needs whatever the allocator gives bytes.
#[cfg(feature = "std")]
pub struct RecognizerBuffers {
    arena: std::vec::Vec<u32>,
    floats: std::vec::Vec<f32>,
    words: std::vec::Vec<WordSpan>,
    finals: std::vec::Vec<DecodedWord>,
    text: std::vec::Vec<u8>,
}

#[cfg(feature = "std")]
impl RecognizerBuffers {
    pub fn new(sizes: &RecognizerSizes) -> Self {
        RecognizerBuffers {
            arena: std::vec![0; sizes.arena_bytes.div_ceil(4)],
            floats: std::vec![0.0; sizes.floats],
            words: std::vec![WordSpan::default(); sizes.words],
            finals: std::vec![DecodedWord::default(); sizes.finals],
            text: std::vec![0; sizes.text_bytes],
        }
    }

    pub fn memory(&mut self) -> RecognizerMemory<'_> {
        RecognizerMemory {
            arena: bytemuck::cast_slice_mut(&mut self.arena),
            floats: &mut self.floats,
            words: &mut self.words,
            finals: &mut self.finals,
            text: &mut self.text,
        }
    }
}

/// Seconds of context the model's state keeps while it waits for speech, and after
/// an endpoint. The shipped model's training utterances start after 0.1-0.6 s of
/// quiet or, in its last cycle's data, 0.7-2.2 s. 1.0 s against 0.2 s (the value
/// before that cycle), int8 beam, same binary: held-out espeak-ng noisy 12.2 %
/// against 13.4 %, dev 7.2 against 8.2, the other sets within half a point; the
/// hour of tests/asr_stream.rs 0.11 % streamed. A rebuild replays this many steps
/// once every this many idle steps, so the cost per step does not depend on it, and
/// the anchor (1.2 s) sizes the replay buffers.
const IDLE_CONTEXT_SECONDS: f64 = 1.0;

/// Seconds of audio an utterance is decoded again from at its first symbol (see
/// `Pipeline::anchor`). Over the hour of commands of tests/asr_stream.rs an earlier
/// model's WER streamed was 29.4 / 29.0 / 28.3 / 28.5 / 28.4 % with 0.6 / 0.7 / 0.8 /
/// 1.0 / 1.2 s (0.2 s loses onsets). With cycle 7's model, on the dev set (training
/// voices, where decoder settings are chosen): 7.21 % at 1.0 s, 6.88 % at 1.2 and
/// 1.5 s. It sizes the replay buffers: 40 steps.
const ANCHOR_SECONDS: f64 = 1.2;

/// Steps of idle context and of anchor context at `info`'s step length.
fn context_steps(info: &AsrInfo) -> (usize, usize) {
    let steps = |seconds: f64| libm::ceil(seconds / info.step_seconds()) as usize;
    (steps(IDLE_CONTEXT_SECONDS), steps(ANCHOR_SECONDS))
}

/// Most steps a state rebuild replays (the inputs the ring keeps): the session's
/// `max_chunk`.
fn replay_steps(info: &AsrInfo) -> usize {
    let (idle, anchor) = context_steps(info);
    idle.max(anchor).max(1)
}

impl RecognizerSizes {
    /// What a recognizer for `model` (described by `info`) needs, with the beam
    /// decoder configured as `beam` (None: greedy).
    pub fn new(
        model: &Model,
        info: &AsrInfo,
        kernels: Option<KernelPath>,
        beam: Option<&BeamConfig>,
    ) -> Result<RecognizerSizes, Error> {
        let replay = replay_steps(info);
        let arena_bytes = model.arena_bytes(SessionOptions { kernels, max_chunk: replay })?;
        let (input, vocab) = (info.num_bins * info.context, info.symbols());
        let per_step = input.checked_mul(2).and_then(|n| n.checked_add(vocab)).ok_or(Error::SizeOverflow)?;
        let floats = replay.checked_mul(per_step).and_then(|n| n.checked_add(vocab)).ok_or(Error::SizeOverflow)?;
        Ok(RecognizerSizes {
            arena_bytes,
            floats,
            words: max_words(beam),
            finals: beam.map_or(0, |c| c.max_words.saturating_add(1)),
            text_bytes: max_text_bytes(info, beam)?,
        })
    }
}

pub struct Recognizer<'m> {
    fbank: Fbank,
    stacker: FrameStacker,
    pipeline: Pipeline<'m>,
}

/// Everything downstream of the frame stacker: the model, the decoder, the state
/// rebuilds and the endpoints.
struct Pipeline<'m> {
    info: AsrInfo<'m>,
    session: Session<'m>,
    decoder: Decoder<'m>,
    endpoint: EndpointConfig,
    logits: &'m mut [f32],
    /// The last step inputs, a ring: `ring_len` of them from `ring_head` on, oldest
    /// first.
    ring: &'m mut [f32],
    ring_head: usize,
    ring_len: usize,
    /// A rebuild's kept inputs, contiguous, and their logits: the replay is one
    /// `step_chunk` (matrix-matrix kernels: 1.3× the throughput of stepping for
    /// the shipped int8 model on an AVX2 core, `linrt bench --prefill 34`).
    replay_inputs: &'m mut [f32],
    replay_logits: &'m mut [f32],
    words: &'m mut [WordSpan],
    finals: &'m mut [DecodedWord],
    text: &'m mut [u8],
    observe_logits: bool,
    /// Steps since the start of the stream.
    steps: u64,
    /// How many steps the model's state holds.
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
    error: Option<Error>,
}

/// Where events go.
type Sink<'s> = &'s mut dyn FnMut(Event<'_>);

impl<'m> Recognizer<'m> {
    /// A recognizer for an `asr-ctc` model, in `memory` of at least
    /// [`RecognizerSizes::new`] for this decoder.
    pub fn new(
        model: &Model<'m>,
        info: AsrInfo<'m>,
        endpoint: EndpointConfig,
        kernels: Option<KernelPath>,
        decoder: Decoder<'m>,
        memory: RecognizerMemory<'m>,
    ) -> Result<Self, Error> {
        let sizes = RecognizerSizes::new(model, &info, kernels, decoder.beam_config())?;
        let short = |what, expected, found: usize| Error::BadLength { what, expected, found };
        let RecognizerMemory { arena, floats, words, finals, text } = memory;
        if floats.len() < sizes.floats {
            return Err(short("recognizer floats", sizes.floats, floats.len()));
        }
        if words.len() < sizes.words {
            return Err(short("recognizer words", sizes.words, words.len()));
        }
        if finals.len() < sizes.finals {
            return Err(short("recognizer final words", sizes.finals, finals.len()));
        }
        if text.len() < sizes.text_bytes {
            return Err(short("recognizer text", sizes.text_bytes, text.len()));
        }
        let replay = replay_steps(&info);
        let session = Session::new(model, arena, SessionOptions { kernels, max_chunk: replay })?;
        let fbank = Fbank::new(info.fbank)?;
        let stacker = FrameStacker::new(info.num_bins, info.stack, info.context, info.mean(), info.std())?;
        let (input, vocab) = (info.num_bins * info.context, info.symbols());
        let (logits, rest) = floats.split_at_mut(vocab);
        let (ring, rest) = rest.split_at_mut(replay * input);
        let (replay_inputs, rest) = rest.split_at_mut(replay * input);
        let replay_logits = &mut rest[..replay * vocab];
        let (idle_steps, anchor_steps) = context_steps(&info);
        let pipeline = Pipeline {
            info,
            session,
            decoder,
            endpoint,
            logits,
            ring,
            ring_head: 0,
            ring_len: 0,
            replay_inputs,
            replay_logits,
            words,
            finals,
            text,
            observe_logits: false,
            steps: 0,
            state_steps: 0,
            idle_steps,
            rebuilds_between_endpoints: true,
            anchor_steps,
            anchored: false,
            error: None,
        };
        Ok(Recognizer { fbank, stacker, pipeline })
    }

    pub fn info(&self) -> &AsrInfo<'m> {
        &self.pipeline.info
    }

    /// Rebuild the state only at endpoints, never while nothing is decoded nor at an
    /// utterance's first symbol: the logits are then exactly the model's on the
    /// whole utterance, as a reference computes them (tests).
    pub fn rebuild_only_at_endpoints(&mut self) {
        self.pipeline.rebuilds_between_endpoints = false;
    }

    /// Also send every step's logits as [`Event::Logits`].
    pub fn observe_logits(&mut self, on: bool) {
        self.pipeline.observe_logits = on;
    }

    /// Seconds of audio accepted since the start of the stream.
    pub fn seconds(&self) -> f64 {
        self.fbank.samples() as f64 / self.pipeline.info.sample_rate as f64
    }

    /// Feeds samples in [-1, 1] at the model's rate; what they complete goes to
    /// `on_event` as it is decoded.
    pub fn accept(&mut self, samples: &[f32], on_event: &mut dyn FnMut(Event<'_>)) -> Result<(), Error> {
        let Recognizer { fbank, stacker, pipeline } = self;
        fbank.accept(samples, |frame| stacker.push(frame, |step| pipeline.step(step, &mut *on_event)));
        pipeline.check()
    }

    /// Ends the stream: the last frames and the last partial step are decoded, and
    /// what was decoded since the last endpoint becomes a final. The recognizer is
    /// then ready for a new stream, its clock back at zero.
    pub fn finish(&mut self, on_event: &mut dyn FnMut(Event<'_>)) -> Result<(), Error> {
        let Recognizer { fbank, stacker, pipeline } = self;
        fbank.finish(|frame| stacker.push(frame, |step| pipeline.step(step, &mut *on_event)));
        stacker.finish(|step| pipeline.step(step, &mut *on_event));
        pipeline.check()?;
        pipeline.end_stream(on_event);
        Ok(())
    }

    /// Ends the stream after a failure (of the input or the model): what was
    /// decoded becomes a final, and the recognizer is ready for a new stream. The
    /// audio still buffered in the front-end is dropped.
    pub fn abandon(&mut self, on_event: &mut dyn FnMut(Event<'_>)) {
        let Recognizer { fbank, stacker, pipeline } = self;
        fbank.reset();
        stacker.reset();
        pipeline.error = None;
        pipeline.end_stream(on_event);
    }
}

impl Pipeline<'_> {
    fn step(&mut self, input: &[f32], on_event: Sink) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.session.step(Input::Vector(input), self.logits) {
            self.error = Some(e);
            return;
        }
        self.steps += 1;
        self.state_steps += 1;
        self.remember(input);
        if self.observe_logits {
            on_event(Event::Logits(self.logits));
        }
        match self.decoder.push(self.logits) {
            Ok(true) => self.symbol_added(on_event),
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
                self.end_utterance(on_event);
                self.rebuild_state(self.idle_steps, silent, on_event);
            }
            None if self.decoder.is_full() => {
                self.end_utterance(on_event);
                self.rebuild_state(self.idle_steps, 0, on_event);
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
                self.rebuild_state(self.idle_steps, silent, on_event)
            }
            None => {}
        }
    }

    fn input_len(&self) -> usize {
        self.info.num_bins * self.info.context
    }

    /// Inputs the ring holds at most.
    fn capacity(&self) -> usize {
        self.ring.len() / self.input_len().max(1)
    }

    fn remember(&mut self, input: &[f32]) {
        let (len, capacity) = (input.len(), self.capacity());
        let slot = if self.ring_len == capacity {
            let oldest = self.ring_head;
            self.ring_head = (self.ring_head + 1) % capacity;
            oldest
        } else {
            self.ring_len += 1;
            (self.ring_head + self.ring_len - 1) % capacity
        };
        self.ring[slot * len..(slot + 1) * len].copy_from_slice(input);
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
    fn rebuild_state(&mut self, keep: usize, redo: usize, on_event: Sink) {
        self.session.reset();
        let keep = self.ring_len.min(keep);
        let start = self.ring_len - keep;
        let redo = redo.min(keep);
        let redo = if self.decoder.rewind(redo as u64) { redo } else { 0 };
        self.state_steps = keep;
        if keep == 0 {
            return;
        }
        let len = self.input_len();
        for i in 0..keep {
            let (from, to) = (start + i, i * len);
            let slot = (self.ring_head + from) % self.capacity();
            self.replay_inputs[to..to + len].copy_from_slice(&self.ring[slot * len..(slot + 1) * len]);
        }
        let vocab = self.logits.len();
        let logits = &mut self.replay_logits[..keep * vocab];
        if let Err(e) = self.session.step_chunk(Inputs::Vectors(&self.replay_inputs[..keep * len]), logits) {
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
            self.symbol_added(on_event);
        }
    }

    /// After a new symbol: the utterance's first anchors it, the others are partials.
    fn symbol_added(&mut self, on_event: Sink) {
        if self.rebuilds_between_endpoints && !self.anchored {
            self.anchor(on_event);
        } else {
            self.emit(false, on_event);
        }
    }

    /// At an utterance's first symbol, the state is rebuilt from the last
    /// `anchor_steps` (the speech's onset and the quiet before it) and those steps
    /// of the utterance are decoded again. However long the quiet before it and
    /// whatever idle rebuilds happened in it, every utterance is then decoded from
    /// the state it would have had alone, from a short lead-in: as the model was
    /// trained, and as a file holding just that command is decoded.
    fn anchor(&mut self, on_event: Sink) {
        self.anchored = true;
        let redo = self.anchor_steps.min(self.decoder.steps() as usize);
        // Reports the partial when the symbols come back (they were not shown yet).
        self.rebuild_state(self.anchor_steps, redo, on_event);
    }

    fn check(&mut self) -> Result<(), Error> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The last final, then everything back to the start of a stream.
    fn end_stream(&mut self, on_event: Sink) {
        self.end_utterance(on_event);
        self.session.reset();
        self.ring_head = 0;
        self.ring_len = 0;
        self.state_steps = 0;
        self.steps = 0;
        self.decoder.clear();
    }

    /// A final for what was decoded (if anything), and a fresh decoder. The caller
    /// rebuilds the state: the model's state never holds more than one utterance
    /// and the idle context before it.
    fn end_utterance(&mut self, on_event: Sink) {
        if !self.decoder.is_empty() {
            self.emit(true, on_event);
        }
        self.decoder.reset();
        self.anchored = false;
    }

    /// Sends the current utterance's text, span and words: the best hypothesis so
    /// far as a partial, or (`last`) the utterance's result as a final, unless it
    /// is empty. A decoder failure is kept for [`Pipeline::check`].
    fn emit(&mut self, last: bool, on_event: Sink) {
        let mut out = Transcript { text: &mut *self.text, len: 0, words: &mut *self.words, count: 0 };
        if let Err(e) = self.decoder.write_words(&self.info, last, &mut *self.finals, &mut out) {
            self.error = Some(e);
            return;
        }
        let (len, count) = (out.len, out.count);
        let secs = self.info.step_seconds();
        let origin = self.decoder.utterance_start();
        let spans = &self.words[..count];
        let time = |step: u64| (origin + step) as f64 * secs;
        let (start, end) = match (spans.first(), spans.last()) {
            (Some(f), Some(l)) => (time(f.start), time(l.end)),
            _ => (0.0, 0.0),
        };
        // Whole symbols were appended, so the bytes are UTF-8.
        let text = core::str::from_utf8(&self.text[..len]).unwrap_or("");
        let utterance =
            Utterance { text, start, end, decided_at: self.steps as f64 * secs, spans, step_seconds: secs, origin };
        if !last {
            on_event(Event::Partial(utterance));
        } else if !text.is_empty() {
            on_event(Event::Final(utterance));
        }
    }
}
