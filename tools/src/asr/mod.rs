//! Streaming speech recognition with a CTC model: what the model carries in its
//! `app.*` metadata (runtime/FORMAT.md), the [`Recognizer`] that turns audio into
//! partial and final transcripts, and the `linrt asr` command around it.

pub mod command;
pub mod decoding;
pub mod recognizer;

use anyhow::{anyhow, bail, Context, Result};
use linrt::audio::{FbankOptions, Window};
use linrt::{InputKind, Model};
use serde_json::Value;

pub use decoding::{with_recognizer, BeamBuffers, DecodeOptions, Decoder, DecoderKind, Tables, Vocabulary};
pub use recognizer::{Event, Recognizer, Utterance, Word};

/// The front-end and output description of an `asr-ctc` model.
#[derive(Debug, Clone)]
pub struct AsrInfo {
    /// Output symbols; index 0 is the CTC blank.
    pub vocabulary: Vec<String>,
    pub sample_rate: u32,
    pub num_bins: usize,
    /// New frames per encoder step (the step's hop).
    pub stack: usize,
    /// Frames one step's input holds: its own `stack` and `context − stack` before
    /// them, concatenated oldest first. Never any frame after the step's last.
    pub context: usize,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// The log-mel front-end, from `app.frontend`.
    pub fbank: FbankOptions,
    /// The words the model was trained to say (`app.words`), for the beam decoder.
    pub words: Option<Vec<String>>,
}

impl AsrInfo {
    /// Reads and checks the metadata against the model's shapes.
    pub fn from_model(model: &Model) -> Result<AsrInfo> {
        let get = |key: &str| model.metadata_value(key).ok_or_else(|| anyhow!("the model has no {key} metadata"));
        let json = |key: &str| -> Result<Value> { serde_json::from_str(get(key)?).with_context(|| key.to_string()) };
        let task = get("app.task")?;
        if task != "asr-ctc" {
            bail!("the model's task is {task:?}, not a CTC speech recognizer (asr-ctc)");
        }
        let vocabulary: Vec<String> = serde_json::from_value(json("app.vocabulary")?).context("app.vocabulary")?;
        let floats = |key: &str| -> Result<Vec<f32>> { serde_json::from_value(json(key)?).context(key.to_string()) };
        let (mean, std) = (floats("app.feature_mean")?, floats("app.feature_std")?);
        let frontend = json("app.frontend")?;
        let uint = |k: &str| -> Result<u32> {
            let v =
                frontend.get(k).and_then(Value::as_u64).ok_or_else(|| anyhow!("app.frontend has no integer {k}"))?;
            u32::try_from(v).map_err(|_| anyhow!("app.frontend.{k} = {v} is out of range"))
        };
        let (sample_rate, num_bins, stack) =
            (uint("sample_rate")?, uint("num_bins")? as usize, uint("stack")? as usize);
        let context = if frontend.get("context").is_some() { uint("context")? as usize } else { stack };
        if stack == 0 || context < stack || num_bins == 0 {
            bail!("app.frontend: stack {stack}, context {context} and num_bins {num_bins} must be positive, context ≥ stack");
        }
        let cfg = model.config();
        if cfg.input_kind != InputKind::Vectors || Some(cfg.input_dim as usize) != num_bins.checked_mul(context) {
            bail!(
                "the model takes {} inputs per step, the front-end gives {num_bins} bins × {context} frames",
                cfg.input_dim
            );
        }
        if vocabulary.len() != cfg.output_dim() {
            bail!("app.vocabulary has {} symbols for {} outputs", vocabulary.len(), cfg.output_dim());
        }
        if mean.len() != num_bins || std.len() != num_bins || std.iter().any(|s| !(*s > 0.0 && s.is_finite())) {
            bail!("app.feature_mean/std must hold {num_bins} values each, std positive");
        }
        let fbank = fbank_options(&frontend, sample_rate, num_bins)?;
        let words: Option<Vec<String>> = match model.metadata_value("app.words") {
            None => None,
            Some(_) => Some(serde_json::from_value(json("app.words")?).context("app.words must be a list of words")?),
        };
        if words
            .as_ref()
            .is_some_and(|w| w.is_empty() || w.iter().any(|w| w.is_empty() || w.contains(char::is_whitespace)))
        {
            bail!("app.words must list at least one word, each without spaces");
        }
        Ok(AsrInfo { vocabulary, sample_rate, num_bins, stack, context, mean, std, fbank, words })
    }

    /// Seconds of audio per encoder step: `stack` frame shifts, each the whole
    /// number of samples the front-end uses.
    pub fn step_seconds(&self) -> f64 {
        let shift = self.fbank.samples(self.fbank.frame_shift_ms);
        self.stack as f64 * shift as f64 / self.sample_rate as f64
    }

    /// The word separator symbol (a space), if the vocabulary has one.
    pub fn separator(&self) -> Option<u32> {
        self.vocabulary.iter().position(|s| s == " ").map(|i| i as u32)
    }
}

/// `app.frontend` → runtime front-end options. Fields it leaves out take
/// kaldi-native-fbank's defaults as sherpa-onnx sets them; the ones the runtime
/// cannot honour (dither, an unknown window) are refused rather than ignored.
fn fbank_options(frontend: &Value, sample_rate: u32, num_bins: usize) -> Result<FbankOptions> {
    const KNOWN: [&str; 15] = [
        "sample_rate",
        "num_bins",
        "frame_length_ms",
        "frame_shift_ms",
        "dither",
        "snip_edges",
        "window",
        "low_freq",
        "high_freq",
        "preemph_coeff",
        "remove_dc_offset",
        "sample_scale",
        "noise_floor",
        "stack",
        "context",
    ];
    let fields = frontend.as_object().ok_or_else(|| anyhow!("app.frontend must be a JSON object"))?;
    if let Some(unknown) = fields.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        bail!("app.frontend.{unknown} is not a front-end parameter linrt knows ({})", KNOWN.join(", "));
    }
    let d = FbankOptions::default();
    let num = |k: &str, default: f32| -> Result<f32> {
        match frontend.get(k) {
            None => Ok(default),
            Some(v) => v.as_f64().map(|x| x as f32).ok_or_else(|| anyhow!("app.frontend.{k} must be a number")),
        }
    };
    let flag = |k: &str, default: bool| -> Result<bool> {
        match frontend.get(k) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| anyhow!("app.frontend.{k} must be true or false")),
        }
    };
    if num("dither", 0.0)? != 0.0 {
        bail!("app.frontend.dither must be 0: streaming results must not depend on a random generator");
    }
    let window_name = match frontend.get("window") {
        None => "povey",
        Some(v) => v.as_str().ok_or_else(|| anyhow!("app.frontend.window must be a string"))?,
    };
    let window = match window_name {
        "povey" => Window::Povey,
        "hann" | "hanning" => Window::Hann,
        "hamming" => Window::Hamming,
        "rectangular" => Window::Rectangular,
        other => bail!("app.frontend.window {other:?} is not one linrt knows (povey, hann, hamming, rectangular)"),
    };
    Ok(FbankOptions {
        sample_rate,
        num_bins,
        frame_length_ms: num("frame_length_ms", d.frame_length_ms)?,
        frame_shift_ms: num("frame_shift_ms", d.frame_shift_ms)?,
        low_freq: num("low_freq", d.low_freq)?,
        high_freq: num("high_freq", d.high_freq)?,
        preemph_coeff: num("preemph_coeff", d.preemph_coeff)?,
        remove_dc_offset: flag("remove_dc_offset", d.remove_dc_offset)?,
        window,
        snip_edges: flag("snip_edges", d.snip_edges)?,
        sample_scale: num("sample_scale", d.sample_scale)?,
        noise_floor: num("noise_floor", d.noise_floor)?,
    })
}
