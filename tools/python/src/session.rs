//! `linrt.Model` (a memory-mapped `.lrt` file, or the speech model the package
//! carries) and `linrt.Session` (one stream stepping it, on its own thread).

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

use anyhow::{bail, Context};
use linrt::{AlignedBytes, Input, InputKind, Inputs, ModelFile, SessionOptions};
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::worker::Worker;
use crate::{json_to_py, LinrtError};

/// A model's bytes: the file, mapped, or a copy of the bundled model.
pub enum ModelBytes {
    File(ModelFile),
    Bundled(AlignedBytes),
}

impl ModelBytes {
    /// The validated model view (cheap to make again: the thread that runs it does).
    pub fn model(&self) -> Result<linrt::Model<'_>, linrt::Error> {
        match self {
            ModelBytes::File(file) => file.model(),
            ModelBytes::Bundled(bytes) => bytes.model(),
        }
    }
}

/// A linear-attention model read from a `.lrt` file (memory-mapped, validated once).
#[pyclass(module = "linrt", frozen)]
pub struct Model {
    pub(crate) bytes: Arc<ModelBytes>,
    pub(crate) name: String,
    /// `linrt inspect --json`'s object.
    inspected: serde_json::Value,
    tokens: bool,
    input_width: usize,
    output_dim: usize,
}

impl Model {
    fn from_bytes(bytes: ModelBytes, name: String) -> PyResult<Model> {
        let model = bytes.model().map_err(|e| LinrtError::new_err(format!("{name}: {e}")))?;
        let config = *model.config();
        let inspected = linrt_tools::inspect::json(&model);
        Ok(Model {
            tokens: config.input_kind == InputKind::Tokens,
            input_width: config.input_width(),
            output_dim: config.output_dim(),
            inspected,
            name,
            bytes: Arc::new(bytes),
        })
    }

    /// The bundled speech model (the one `linrt asr` uses without `--model`).
    pub fn bundled() -> PyResult<Model> {
        let bytes = ModelBytes::Bundled(AlignedBytes::from_slice(linrt_tools::bundled::MODEL));
        Model::from_bytes(bytes, linrt_tools::bundled::MODEL_NAME.to_string())
    }
}

#[pymethods]
impl Model {
    /// Maps and validates the `.lrt` file at `path`.
    #[new]
    pub fn open(path: PathBuf) -> PyResult<Model> {
        let name = path.display().to_string();
        let file = ModelFile::open(&path).map_err(|e| LinrtError::new_err(format!("cannot open {name}: {e}")))?;
        Model::from_bytes(ModelBytes::File(file), name)
    }

    /// The speech model the package carries (int8, 67 command words).
    #[staticmethod]
    #[pyo3(name = "bundled")]
    fn py_bundled() -> PyResult<Model> {
        Model::bundled()
    }

    /// The hyperparameters, as `linrt inspect --json` gives them.
    #[getter]
    fn config(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        json_to_py(py, &self.inspected["config"])
    }

    /// The file's metadata (`app.*`, provenance), as strings.
    #[getter]
    fn metadata(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        json_to_py(py, &self.inspected["metadata"])
    }

    /// Bytes a session's arena takes (state and workspace) for chunks of up to `max_chunk`.
    #[pyo3(signature = (max_chunk = 1))]
    fn arena_bytes(&self, max_chunk: usize) -> PyResult<usize> {
        let model = self.bytes.model().map_err(|e| LinrtError::new_err(e.to_string()))?;
        model.arena_bytes(SessionOptions { max_chunk, kernels: None }).map_err(|e| LinrtError::new_err(e.to_string()))
    }

    /// A new stream of this model (see `Session`).
    #[pyo3(signature = (max_chunk = 1))]
    fn session(slf: &Bound<'_, Self>, max_chunk: usize) -> PyResult<Session> {
        Session::new(slf.py(), slf.get(), max_chunk)
    }

    fn __repr__(&self) -> String {
        format!("linrt.Model({:?})", self.name)
    }
}

/// What a session's thread is asked to do.
enum Request {
    Step(Owned),
    Chunk(Owned),
    Reset,
    Position,
    Save,
    Restore(Vec<u8>),
}

/// Inputs copied out of Python's arrays for the session's thread.
enum Owned {
    Token(u32),
    Vector(Vec<f32>),
    Tokens(Vec<u32>),
    /// Rows of `input_dim` values, laid end to end.
    Vectors(Vec<f32>),
}

enum Answer {
    Ready,
    Outputs(Vec<f32>),
    Position(u64),
    State(Vec<u8>),
    Done,
}

type Reply = Result<Answer, String>;

/// One stream of a model: its state, stepped one position at a time or a chunk of
/// positions at once (the causal parallel form), saved and restored as bytes.
#[pyclass(module = "linrt", frozen)]
pub struct Session {
    worker: Worker<Request, Reply>,
    tokens: bool,
    input_width: usize,
    output_dim: usize,
}

impl Session {
    fn new(py: Python<'_>, model: &Model, max_chunk: usize) -> PyResult<Session> {
        if max_chunk == 0 {
            return Err(LinrtError::new_err("max_chunk must be at least 1"));
        }
        let bytes = model.bytes.clone();
        let opts = SessionOptions { max_chunk, kernels: None };
        let (worker, first) =
            Worker::start(py, "linrt-session", move |requests, replies| serve(&bytes, opts, requests, replies))?;
        answer(first)?;
        Ok(Session { worker, tokens: model.tokens, input_width: model.input_width, output_dim: model.output_dim })
    }

    fn call(&self, py: Python<'_>, request: Request) -> PyResult<Answer> {
        answer(self.worker.call(py, request)?)
    }
}

fn answer(reply: Reply) -> PyResult<Answer> {
    reply.map_err(LinrtError::new_err)
}

/// The session's thread: the model, its arena and weights prepared once (as
/// `linrt run` does), then one reply per request.
fn serve(bytes: &ModelBytes, opts: SessionOptions, requests: Receiver<Request>, replies: Sender<Reply>) {
    let run = || -> anyhow::Result<()> {
        let model = bytes.model()?;
        let mut arena = linrt_tools::memory::zeroed(model.arena_bytes(opts)?, "the session's arena")?;
        let mut prepared = Vec::new();
        let weights = linrt_tools::cpu::prepare(&model, opts.kernels, &mut prepared)?;
        let mut session = linrt::Session::with_prepared(&weights, &mut arena, opts)?;
        let _ = replies.send(Ok(Answer::Ready));
        let d_out = model.config().output_dim();
        for request in requests {
            let reply = handle(&mut session, d_out, request).map_err(|e| format!("{e:#}"));
            if replies.send(reply).is_err() {
                break;
            }
        }
        Ok(())
    };
    if let Err(e) = run() {
        let _ = replies.send(Err(format!("{e:#}")));
    }
}

fn handle(session: &mut linrt::Session, d_out: usize, request: Request) -> anyhow::Result<Answer> {
    Ok(match request {
        Request::Step(input) => {
            let mut out = vec![0f32; d_out];
            let input = match &input {
                Owned::Token(id) => Input::Token(*id),
                Owned::Vector(v) => Input::Vector(v),
                _ => bail!("step takes one position"),
            };
            session.step(input, &mut out)?;
            Answer::Outputs(out)
        }
        Request::Chunk(inputs) => {
            let width = session.config().input_width().max(1);
            let (inputs, rows) = match &inputs {
                Owned::Tokens(ids) => (Inputs::Tokens(ids), ids.len()),
                Owned::Vectors(v) => (Inputs::Vectors(v), v.len() / width),
                _ => bail!("step_chunk takes a chunk of positions"),
            };
            let mut out = vec![0f32; rows * d_out];
            session.step_chunk(inputs, &mut out)?;
            Answer::Outputs(out)
        }
        Request::Reset => {
            session.reset();
            Answer::Done
        }
        Request::Position => Answer::Position(session.position()),
        Request::Save => {
            let mut state = vec![0u8; session.state_bytes()];
            let n = session.save_state(&mut state).context("cannot save the state")?;
            state.truncate(n);
            Answer::State(state)
        }
        Request::Restore(bytes) => {
            session.restore_state(&bytes).context("cannot restore the state")?;
            Answer::Done
        }
    })
}

/// Values of a float array (float32, or float64 narrowed), row-major.
fn floats_1d(x: &Bound<'_, PyAny>) -> PyResult<Vec<f32>> {
    if let Ok(a) = x.extract::<PyReadonlyArray1<'_, f32>>() {
        return Ok(a.as_array().iter().copied().collect());
    }
    if let Ok(a) = x.extract::<PyReadonlyArray1<'_, f64>>() {
        return Ok(a.as_array().iter().map(|&v| v as f32).collect());
    }
    Err(PyTypeError::new_err("expected a 1-D numpy array of float32 (or float64)"))
}

fn floats_2d(x: &Bound<'_, PyAny>) -> PyResult<(Vec<f32>, usize)> {
    if let Ok(a) = x.extract::<PyReadonlyArray2<'_, f32>>() {
        let a = a.as_array();
        return Ok((a.iter().copied().collect(), a.ncols()));
    }
    if let Ok(a) = x.extract::<PyReadonlyArray2<'_, f64>>() {
        let a = a.as_array();
        return Ok((a.iter().map(|&v| v as f32).collect(), a.ncols()));
    }
    Err(PyTypeError::new_err("expected a 2-D numpy array [positions, input_dim] of float32 (or float64)"))
}

#[pymethods]
impl Session {
    /// A new stream of `model`; `max_chunk` is the most positions one `step_chunk`
    /// call takes (it sizes the arena).
    #[new]
    #[pyo3(signature = (model, max_chunk = 1))]
    fn py_new(py: Python<'_>, model: &Model, max_chunk: usize) -> PyResult<Session> {
        Session::new(py, model, max_chunk)
    }

    /// One position: a token id (int) for a token model, else a 1-D array of
    /// `input_dim` floats. Returns the outputs, shape `(output_dim,)`.
    fn step<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let input = if self.tokens { Owned::Token(x.extract()?) } else { Owned::Vector(floats_1d(x)?) };
        match self.call(py, Request::Step(input))? {
            Answer::Outputs(out) => Ok(out.into_pyarray(py)),
            _ => Err(LinrtError::new_err("unexpected reply")),
        }
    }

    /// Several positions in one causal pass: token ids (a sequence of ints) for a
    /// token model, else a 2-D array `(positions, input_dim)`. Returns the outputs,
    /// shape `(positions, output_dim)`.
    fn step_chunk<'py>(&self, py: Python<'py>, xs: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let input = if self.tokens {
            Owned::Tokens(xs.extract()?)
        } else {
            let (values, cols) = floats_2d(xs)?;
            if cols != self.input_width {
                return Err(LinrtError::new_err(format!(
                    "step_chunk: rows of {cols} values, the model takes {}",
                    self.input_width
                )));
            }
            Owned::Vectors(values)
        };
        match self.call(py, Request::Chunk(input))? {
            Answer::Outputs(out) => {
                let rows = out.len() / self.output_dim.max(1);
                let out = Array2::from_shape_vec((rows, self.output_dim), out)
                    .map_err(|e| LinrtError::new_err(e.to_string()))?;
                Ok(out.into_pyarray(py))
            }
            _ => Err(LinrtError::new_err("unexpected reply")),
        }
    }

    /// Back to the state of a fresh stream.
    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        self.call(py, Request::Reset).map(|_| ())
    }

    /// Positions stepped since the start (or the last reset).
    #[getter]
    fn position(&self, py: Python<'_>) -> PyResult<u64> {
        match self.call(py, Request::Position)? {
            Answer::Position(p) => Ok(p),
            _ => Err(LinrtError::new_err("unexpected reply")),
        }
    }

    /// The stream's state as bytes (the layout runtime/FORMAT.md specifies, the same
    /// as the Rust and C sessions'), for `restore_state`.
    fn save_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        match self.call(py, Request::Save)? {
            Answer::State(state) => Ok(PyBytes::new(py, &state)),
            _ => Err(LinrtError::new_err("unexpected reply")),
        }
    }

    /// Continues from a state `save_state` wrote (this model's, any session's).
    fn restore_state(&self, py: Python<'_>, state: &[u8]) -> PyResult<()> {
        self.call(py, Request::Restore(state.to_vec())).map(|_| ())
    }
}
