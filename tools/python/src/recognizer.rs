//! `linrt.Recognizer`: the runtime's streaming recognizer (the one `linrt asr`, the
//! C API and the firmware run), fed numpy arrays at any sample rate, with partial
//! results, finals and endpoint events as sherpa-onnx's users know them.

use std::sync::mpsc::{Receiver, Sender};

use linrt::asr::AsrInfo;
use linrt_tools::asr::decoding::{endpoint_config, with_recognizer_for, Sources, DEFAULT_HOTWORD_WEIGHT};
use linrt_tools::asr::{DecodeOptions, DecoderKind, Event, Utterance};
use linrt_tools::audio::pcm::check_sample_rate;
use linrt_tools::audio::resample::Resampler;
use numpy::PyReadonlyArray1;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::session::{Model, ModelBytes};
use crate::worker::Worker;
use crate::LinrtError;

enum Request {
    /// Samples at the model's rate.
    Accept(Vec<f32>),
    /// The end of the stream: the last final, then a fresh stream.
    Finish,
    /// Drop the stream's audio without a final.
    Abandon,
}

/// The events a request produced (the first reply: none, once started).
type Reply = Result<Vec<Event>, String>;

/// The recognizer's thread: the decoder and recognizer built once, as `linrt asr`
/// builds them, then one reply per request.
fn serve(
    bytes: &ModelBytes,
    options: &DecodeOptions,
    sources: &Sources,
    endpoint: linrt::decode::EndpointConfig,
    requests: Receiver<Request>,
    replies: Sender<Reply>,
) {
    let run = || -> anyhow::Result<()> {
        let model = bytes.model()?;
        let info = AsrInfo::from_model(&model)?;
        with_recognizer_for(&model, info, options, sources, endpoint, None, |recognizer| {
            let _ = replies.send(Ok(Vec::new()));
            for request in requests {
                let done = match request {
                    Request::Accept(samples) => recognizer.accept(&samples),
                    Request::Finish => recognizer.finish(),
                    Request::Abandon => {
                        recognizer.abandon();
                        Ok(())
                    }
                };
                let reply = done.map(|()| recognizer.events()).map_err(|e| format!("{e:#}"));
                if replies.send(reply).is_err() {
                    break;
                }
            }
            Ok(())
        })
    };
    if let Err(e) = run() {
        let _ = replies.send(Err(format!("{e:#}")));
    }
}

/// A streaming speech recognizer: audio in (`accept_waveform`), text out
/// (`partial`, `finals`, `events`).
#[pyclass(module = "linrt")]
pub struct Recognizer {
    worker: Worker<Request, Reply>,
    model_rate: u32,
    /// The stream's rate (set by its first audio) and the resampler to the model's.
    stream_rate: Option<u32>,
    resampler: Option<Resampler>,
    partial: Option<Utterance>,
    finals: Vec<Utterance>,
    events: Vec<Event>,
}

impl Recognizer {
    /// Sends a request and keeps the events it produced.
    fn call(&mut self, py: Python<'_>, request: Request) -> PyResult<()> {
        let events = self.worker.call(py, request)?.map_err(LinrtError::new_err)?;
        for event in events {
            match &event {
                Event::Partial(u) => self.partial = Some(u.clone()),
                Event::Final(u) => {
                    self.partial = None;
                    self.finals.push(u.clone());
                }
            }
            self.events.push(event);
        }
        Ok(())
    }
}

/// Mono samples of a numpy array: float32 or float64 in [-1, 1], or int16 (scaled
/// by 1/32768, as a 16-bit WAV is read).
fn samples(x: &Bound<'_, PyAny>) -> PyResult<Vec<f32>> {
    if let Ok(a) = x.extract::<PyReadonlyArray1<'_, f32>>() {
        return normalised(a.as_array().iter().copied(), |v| v);
    }
    if let Ok(a) = x.extract::<PyReadonlyArray1<'_, f64>>() {
        return normalised(a.as_array().iter().copied(), |v| v as f32);
    }
    if let Ok(a) = x.extract::<PyReadonlyArray1<'_, i16>>() {
        return Ok(a.as_array().iter().map(|&v| f32::from(v) / 32768.0).collect());
    }
    Err(PyTypeError::new_err("samples: a 1-D numpy array of mono audio, float32 or float64 in [-1, 1], or int16"))
}

/// Float samples as f32, or an error naming the first outside [-1, 1]: as the WAV
/// reader says, such values are not audio.
fn normalised<T: Copy + PartialOrd + From<f32> + std::fmt::LowerExp>(
    values: impl Iterator<Item = T>,
    narrow: impl Fn(T) -> f32,
) -> PyResult<Vec<f32>> {
    let range = T::from(-1.0)..=T::from(1.0);
    let mut out = Vec::with_capacity(values.size_hint().0);
    for (i, v) in values.enumerate() {
        if !range.contains(&v) {
            return Err(PyValueError::new_err(format!(
                "samples[{i}] is {v:e}, outside [-1, 1] (float samples must be normalised)"
            )));
        }
        out.push(narrow(v));
    }
    Ok(out)
}

fn utterance_dict<'py>(py: Python<'py>, u: &Utterance, kind: Option<&str>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    if let Some(kind) = kind {
        d.set_item("type", kind)?;
    }
    d.set_item("text", &u.text)?;
    d.set_item("start", u.start)?;
    d.set_item("end", u.end)?;
    d.set_item("decided_at", u.decided_at)?;
    let words = PyList::empty(py);
    for w in &u.words {
        let wd = PyDict::new(py);
        wd.set_item("word", &w.text)?;
        wd.set_item("start", w.start)?;
        wd.set_item("end", w.end)?;
        wd.set_item("confidence", w.confidence)?;
        words.append(wd)?;
    }
    d.set_item("words", words)?;
    Ok(d)
}

#[pymethods]
impl Recognizer {
    /// A recognizer for `model` (a `Model`, a path, or None for the bundled speech
    /// model). `decoder`: "beam" (the default when the model lists its words, or
    /// `words`/`grammar` are given) or "greedy". `words`: the words the beam may
    /// say; `grammar`: the phrases it may say (the grammar language of `linrt asr
    /// --grammar`); `hotwords`: phrases to favour, one per line, each optionally
    /// ending in ` :weight`. The endpoint rules are `linrt asr`'s.
    #[new]
    #[pyo3(signature = (model = None, *, decoder = None, beam = None, words = None, grammar = None,
                        hotwords = None, hotword_weight = DEFAULT_HOTWORD_WEIGHT, boundary_penalty = None,
                        silence_empty = 2.4, silence_after_speech = 1.2, max_utterance = 20.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: Option<&Bound<'_, PyAny>>,
        decoder: Option<&str>,
        beam: Option<usize>,
        words: Option<Vec<String>>,
        grammar: Option<String>,
        hotwords: Option<String>,
        hotword_weight: f32,
        boundary_penalty: Option<f32>,
        silence_empty: f32,
        silence_after_speech: f32,
        max_utterance: f32,
    ) -> PyResult<Recognizer> {
        let (bytes, name) = match model {
            Some(m) => match m.cast::<Model>() {
                Ok(m) => (m.get().bytes.clone(), m.get().name.clone()),
                Err(_) => {
                    let m = Model::open(m.extract()?)?;
                    (m.bytes, m.name)
                }
            },
            None => {
                let m = Model::bundled()?;
                (m.bytes, m.name)
            }
        };
        let kind = match decoder {
            None => None,
            Some("beam") => Some(DecoderKind::Beam),
            Some("greedy") => Some(DecoderKind::Greedy),
            Some(other) => return Err(LinrtError::new_err(format!("decoder {other:?}: \"beam\" or \"greedy\""))),
        };
        if !hotword_weight.is_finite() {
            return Err(LinrtError::new_err(format!("hotword_weight must be a finite number, not {hotword_weight}")));
        }
        let options = DecodeOptions { kind, beam, hotword_weight, boundary_penalty, ..DecodeOptions::default() };
        let sources = Sources::from_texts(words.map(|w| w.join("\n")), grammar, hotwords);
        let endpoint = endpoint_config(
            [silence_empty, silence_after_speech, max_utterance],
            ["silence_empty", "silence_after_speech", "max_utterance"],
        )
        .map_err(|e| LinrtError::new_err(format!("{e:#}")))?;
        let rate = {
            let m = bytes.model().map_err(|e| LinrtError::new_err(format!("{name}: {e}")))?;
            AsrInfo::from_model(&m).map_err(|e| LinrtError::new_err(format!("{name}: {e}")))?.sample_rate
        };
        let (worker, first) = Worker::start(py, "linrt-recognizer", move |requests, replies| {
            serve(&bytes, &options, &sources, endpoint, requests, replies)
        })?;
        first.map_err(LinrtError::new_err)?;
        Ok(Recognizer {
            worker,
            model_rate: rate,
            stream_rate: None,
            resampler: None,
            partial: None,
            finals: Vec::new(),
            events: Vec::new(),
        })
    }

    /// Feeds audio: `samples` (a 1-D numpy array, float32/float64 in [-1, 1] or
    /// int16) at `sample_rate` Hz, any rate (resampled to the model's). Chunks may
    /// be of any size; the results are the same whatever the chunking.
    fn accept_waveform(&mut self, py: Python<'_>, sample_rate: u32, samples: &Bound<'_, PyAny>) -> PyResult<()> {
        let samples = self::samples(samples)?;
        match self.stream_rate {
            None => {
                check_sample_rate(sample_rate).map_err(|e| LinrtError::new_err(format!("{e:#}")))?;
                self.stream_rate = Some(sample_rate);
                self.resampler = (sample_rate != self.model_rate).then(|| Resampler::new(sample_rate, self.model_rate));
            }
            Some(rate) if rate != sample_rate => {
                return Err(LinrtError::new_err(format!(
                    "the stream's audio is at {rate} Hz, not {sample_rate} Hz (call input_finished() to start a new stream)"
                )))
            }
            Some(_) => {}
        }
        let samples = match &mut self.resampler {
            Some(r) => {
                let mut out = Vec::new();
                r.process(&samples, &mut out);
                out
            }
            None => samples,
        };
        self.call(py, Request::Accept(samples))
    }

    /// The end of the stream: the last utterance's final, then a fresh stream (which
    /// may come at another sample rate).
    fn input_finished(&mut self, py: Python<'_>) -> PyResult<()> {
        if let Some(mut r) = self.resampler.take() {
            let mut rest = Vec::new();
            r.finish(&mut rest);
            self.call(py, Request::Accept(rest))?;
        }
        self.stream_rate = None;
        self.call(py, Request::Finish)
    }

    /// Drops the stream's audio so far without a final (the finals already made stay).
    fn reset(&mut self, py: Python<'_>) -> PyResult<()> {
        self.resampler = None;
        self.stream_rate = None;
        self.partial = None;
        self.call(py, Request::Abandon)
    }

    /// The text of the utterance being heard ("" between utterances).
    fn partial(&self) -> String {
        self.partial.as_ref().map(|u| u.text.clone()).unwrap_or_default()
    }

    /// Every final so far: dicts of text, start and end (seconds from the start of
    /// the stream), decided_at (the endpoint) and words (word, start, end, and the
    /// beam decoder's confidence), as `linrt asr --json` prints them.
    fn finals<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for u in &self.finals {
            list.append(utterance_dict(py, u, None)?)?;
        }
        Ok(list)
    }

    /// The events since the last call, oldest first: partial results as they change
    /// and finals at endpoints, each a dict as `finals()` gives with a "type"
    /// ("partial" or "final").
    fn events<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for event in std::mem::take(&mut self.events) {
            let (kind, u) = match &event {
                Event::Partial(u) => ("partial", u),
                Event::Final(u) => ("final", u),
            };
            list.append(utterance_dict(py, u, Some(kind))?)?;
        }
        Ok(list)
    }

    /// The sample rate of the model's input (audio at other rates is resampled).
    #[getter]
    fn sample_rate(&self) -> u32 {
        self.model_rate
    }
}
