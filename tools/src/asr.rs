//! What a CTC speech model carries in its `app.*` metadata (runtime/FORMAT.md), and
//! the two steps around the encoder: log-mel frames → normalised, stacked step
//! inputs, and per-step logits → greedy CTC transcript.

use anyhow::{anyhow, bail, Context, Result};
use linrt::{InputKind, Model};
use serde_json::Value;

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
    /// The whole `app.frontend` object (window, frequencies, …) for the front-end.
    pub frontend: Value,
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
        let uint =
            |k: &str| frontend.get(k).and_then(Value::as_u64).ok_or_else(|| anyhow!("app.frontend has no integer {k}"));
        let (sample_rate, num_bins, stack) =
            (uint("sample_rate")? as u32, uint("num_bins")? as usize, uint("stack")? as usize);
        let context = if frontend.get("context").is_some() { uint("context")? as usize } else { stack };
        if stack == 0 || context < stack || num_bins == 0 {
            bail!("app.frontend: stack {stack}, context {context} and num_bins {num_bins} must be positive, context ≥ stack");
        }
        let cfg = model.config();
        if cfg.input_kind != InputKind::Vectors || cfg.input_dim as usize != num_bins * context {
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
        Ok(AsrInfo { vocabulary, sample_rate, num_bins, stack, context, mean, std, frontend })
    }

    /// `[T, num_bins]` log-mel frames → `[ceil(T / stack), num_bins · context]` step
    /// inputs: step j holds normalised frames `stack·(j+1) − context .. stack·(j+1)`,
    /// oldest first. Frames before the start, and past the end in a last partial
    /// step, are zeros (the mean, once normalised).
    pub fn steps(&self, frames: &[f32]) -> Vec<f32> {
        let bins = self.num_bins;
        let t = frames.len() / bins;
        let normalised: Vec<f32> = frames[..t * bins]
            .chunks_exact(bins)
            .flat_map(|f| f.iter().zip(self.mean.iter().zip(&self.std)).map(|(x, (m, s))| (x - m) / s))
            .collect();
        let steps = t.div_ceil(self.stack);
        let mut out = vec![0f32; steps * bins * self.context];
        for (j, step) in out.chunks_exact_mut(bins * self.context).enumerate() {
            let end = (j + 1) * self.stack; // one past the step's last frame
            for (k, slot) in step.chunks_exact_mut(bins).enumerate() {
                let frame = (end + k).checked_sub(self.context);
                if let Some(f) = frame.filter(|&f| f < t) {
                    slot.copy_from_slice(&normalised[f * bins..(f + 1) * bins]);
                }
            }
        }
        out
    }

    /// Greedy CTC over `[steps, vocabulary]` logits: the best symbol per step,
    /// repeats merged, blanks dropped, spaces collapsed.
    pub fn greedy(&self, logits: &[f32]) -> String {
        let mut text = String::new();
        let mut previous = 0;
        for row in logits.chunks_exact(self.vocabulary.len()) {
            let best = row.iter().enumerate().fold(0, |b, (i, v)| if *v > row[b] { i } else { b });
            if best != previous && best != 0 {
                text.push_str(&self.vocabulary[best]);
            }
            previous = best;
        }
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(stack: usize, context: usize) -> AsrInfo {
        AsrInfo {
            vocabulary: vec!["<blank>".into(), " ".into(), "a".into(), "b".into()],
            sample_rate: 16000,
            num_bins: 2,
            stack,
            context,
            mean: vec![1.0, 0.0],
            std: vec![1.0, 2.0],
            frontend: Value::Null,
        }
    }

    #[test]
    fn steps_hold_past_frames_only() {
        // 7 frames of 2 bins, hop 3, window 5: steps end after frames 2, 5 and 8.
        let frames: Vec<f32> = (0..14).map(|v| v as f32).collect();
        let s = info(3, 5).steps(&frames);
        assert_eq!(s.len(), 3 * 10);
        let norm = |f: usize| [frames[2 * f] - 1.0, frames[2 * f + 1] / 2.0];
        // Step 0: two zero frames, then frames 0, 1, 2.
        assert_eq!(&s[..4], &[0.0; 4]);
        assert_eq!(&s[4..6], &norm(0));
        assert_eq!(&s[8..10], &norm(2));
        // Step 2: frames 4, 5, 6, then two zero frames past the end.
        assert_eq!(&s[20..22], &norm(4));
        assert_eq!(&s[24..26], &norm(6));
        assert_eq!(&s[26..30], &[0.0; 4]);
    }

    #[test]
    fn greedy_merges_repeats_and_drops_blanks() {
        // a a blank a b " " " " b → "aa b b" with spaces collapsed
        let best = [2, 2, 0, 2, 3, 1, 1, 3];
        let logits: Vec<f32> = best.iter().flat_map(|&b| (0..4).map(move |i| if i == b { 1.0 } else { 0.0 })).collect();
        assert_eq!(info(1, 1).greedy(&logits), "aab b");
    }
}
