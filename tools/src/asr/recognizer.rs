//! The runtime's streaming recognizer ([`linrt::asr::Recognizer`]) for callers
//! with a heap: its events, which borrow the recognizer's buffers, kept as owned
//! values until [`Recognizer::events`] hands them over. All the recognition —
//! front-end, state rebuilds, anchoring, endpoints, decoding — is the runtime's.

use anyhow::{anyhow, Result};
use linrt::asr::{self, AsrInfo};

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

impl From<&asr::Utterance<'_>> for Utterance {
    fn from(u: &asr::Utterance<'_>) -> Utterance {
        let words = u
            .words()
            .map(|w| Word { text: w.text.to_string(), start: w.start, end: w.end, confidence: w.confidence })
            .collect();
        Utterance { text: u.text.to_string(), start: u.start, end: u.end, words, decided_at: u.decided_at }
    }
}

pub struct Recognizer<'m> {
    /// Boxed: the front-end's buffers and the greedy decoder's symbols are inline.
    inner: Box<asr::Recognizer<'m>>,
    events: Vec<Event>,
    /// Every step's logits, when the caller asked for them (tests).
    recorded: Option<Vec<f32>>,
}

impl<'m> Recognizer<'m> {
    pub fn new(inner: asr::Recognizer<'m>) -> Self {
        Recognizer { inner: Box::new(inner), events: Vec::new(), recorded: None }
    }

    pub fn info(&self) -> &AsrInfo<'m> {
        self.inner.info()
    }

    /// See [`asr::Recognizer::rebuild_only_at_endpoints`].
    pub fn rebuild_only_at_endpoints(&mut self) {
        self.inner.rebuild_only_at_endpoints();
    }

    /// Keep every step's logits (see [`Recognizer::recorded_logits`]).
    pub fn record_logits(&mut self) {
        self.inner.observe_logits(true);
        self.recorded = Some(Vec::new());
    }

    pub fn recorded_logits(&self) -> &[f32] {
        self.recorded.as_deref().unwrap_or(&[])
    }

    /// Seconds of audio accepted since the start of the stream.
    pub fn seconds(&self) -> f64 {
        self.inner.seconds()
    }

    /// Feeds samples in [-1, 1] at the model's rate; events pile up for [`Self::events`].
    pub fn accept(&mut self, samples: &[f32]) -> Result<()> {
        let Recognizer { inner, events, recorded } = self;
        inner.accept(samples, &mut |e| keep(events, recorded, e)).map_err(model_failed)
    }

    /// See [`asr::Recognizer::finish`].
    pub fn finish(&mut self) -> Result<()> {
        let Recognizer { inner, events, recorded } = self;
        inner.finish(&mut |e| keep(events, recorded, e)).map_err(model_failed)
    }

    /// See [`asr::Recognizer::abandon`].
    pub fn abandon(&mut self) {
        let Recognizer { inner, events, recorded } = self;
        inner.abandon(&mut |e| keep(events, recorded, e));
    }

    /// The events produced since the last call, oldest first.
    pub fn events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

fn keep(events: &mut Vec<Event>, recorded: &mut Option<Vec<f32>>, e: asr::Event<'_>) {
    match e {
        asr::Event::Partial(u) => events.push(Event::Partial((&u).into())),
        asr::Event::Final(u) => events.push(Event::Final((&u).into())),
        asr::Event::Logits(l) => {
            if let Some(r) = recorded {
                r.extend_from_slice(l);
            }
        }
    }
}

fn model_failed(e: linrt::Error) -> anyhow::Error {
    anyhow!("the model failed: {e}")
}
