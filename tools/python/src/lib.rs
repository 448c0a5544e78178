//! The `linrt` Python package's native module (`linrt._linrt`): the converter, models
//! and sessions, the streaming recognizer and audio files, all the Rust code the
//! command line runs. `python/linrt/` holds the package around it and its stubs.

use std::path::PathBuf;

use numpy::{IntoPyArray, PyArray1};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

mod recognizer;
mod session;
mod worker;

create_exception!(linrt, LinrtError, PyException, "An error from linrt, with the message the command line prints.");

/// A JSON value (what `--json` prints) as Python objects.
fn json_to_py(py: Python<'_>, value: &serde_json::Value) -> PyResult<Py<PyAny>> {
    use serde_json::Value;
    Ok(match value {
        Value::Null => py.None(),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any().unbind(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any().unbind(),
            (None, Some(u)) => u.into_pyobject(py)?.into_any().unbind(),
            _ => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any().unbind(),
        },
        Value::String(s) => s.into_pyobject(py)?.into_any().unbind(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any().unbind()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (key, item) in map {
                dict.set_item(key, json_to_py(py, item)?)?;
            }
            dict.into_any().unbind()
        }
    })
}

fn error(e: anyhow::Error) -> PyErr {
    LinrtError::new_err(format!("{e:#}"))
}

/// Converts an ONNX model to a `.lrt` file, verified against tract first, as
/// `linrt convert` does; returns its report (`linrt convert --json`'s object).
#[pyfunction]
#[pyo3(signature = (onnx_path, out_path, dtype = "int8", *, int8_block = 0, verify = true, steps = 16,
                    tolerance = None, min_cosine = None, n_heads = None, activation = None, norm = None,
                    prefix = None, ignore_metadata = false))]
#[allow(clippy::too_many_arguments)]
fn convert(
    py: Python<'_>,
    onnx_path: PathBuf,
    out_path: PathBuf,
    dtype: &str,
    int8_block: u32,
    verify: bool,
    steps: usize,
    tolerance: Option<f32>,
    min_cosine: Option<f32>,
    n_heads: Option<u32>,
    activation: Option<String>,
    norm: Option<String>,
    prefix: Option<String>,
    ignore_metadata: bool,
) -> PyResult<Py<PyAny>> {
    use linrt_tools::commands::convert::{convert, report_json, ConvertArgs};
    use linrt_tools::commands::CheckArgs;

    let args = ConvertArgs {
        onnx: onnx_path,
        output: out_path,
        n_heads,
        activation,
        norm,
        attention_eps: None,
        layernorm_eps: None,
        prefix,
        embedding: None,
        input_projection: None,
        output_head: None,
        positional: None,
        ignore_metadata,
        dtype: dtype.to_string(),
        int8_block,
        no_verify: !verify,
        check: CheckArgs { steps, tolerance, min_cosine },
        json: true,
    };
    // tract may panic inside on a hostile file: the converter turns that into an
    // error (as the command line does), never an abort of the interpreter.
    let report = py.detach(|| convert(&args, &mut |_| {}).map(|done| report_json(&args, &done))).map_err(error)?;
    json_to_py(py, &report)
}

/// Reads a whole audio file (WAV, FLAC, Ogg Vorbis, MP3, AAC in MP4/M4A) as mono
/// float32 samples: `(sample_rate, samples)`.
#[pyfunction]
fn load_audio(py: Python<'_>, path: PathBuf) -> PyResult<(u32, Bound<'_, PyArray1<f32>>)> {
    let (rate, samples) = py
        .detach(|| -> anyhow::Result<(u32, Vec<f32>)> {
            let (mut source, _) = linrt_tools::audio::open_file(&path)?;
            let mut samples = Vec::new();
            loop {
                if source.read(&mut samples, 1 << 16)? == 0 {
                    return Ok((source.sample_rate(), samples));
                }
            }
        })
        .map_err(|e| error(e.context(path.display().to_string())))?;
    Ok((rate, samples.into_pyarray(py)))
}

#[pymodule]
fn _linrt(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("LinrtError", m.py().get_type::<LinrtError>())?;
    m.add_function(wrap_pyfunction!(convert, m)?)?;
    m.add_function(wrap_pyfunction!(load_audio, m)?)?;
    m.add_class::<session::Model>()?;
    m.add_class::<session::Session>()?;
    m.add_class::<recognizer::Recognizer>()?;
    Ok(())
}
