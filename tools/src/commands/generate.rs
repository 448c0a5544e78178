//! `linrt generate`: autoregressive generation with a token model. The prompt is
//! fed through `step_chunk` (the causal parallel form, matrix-matrix kernels), then
//! each generated token is stepped back in. Models that say what they are in their
//! `app.*` metadata get more: an `image-gen` model draws a PNG grid of images, one
//! column per class; a `copy` model copies what is between its separators.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use linrt::decode::{Sampler, Sampling};
use linrt::{InputKind, Inputs, Model, ModelFile, OutputKind, Session, SessionOptions};
use serde_json::{json, Value};

use crate::cpu;
use crate::device::Device;

/// Most tokens one `linrt generate` call produces.
const MAX_STEPS: usize = 100_000_000;

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// The model (.lrt: tokens in, logits out).
    #[arg(long)]
    pub model: PathBuf,
    /// The prompt as text in the model's vocabulary (its app.vocabulary symbols).
    #[arg(long)]
    pub prompt: Option<String>,
    /// The prompt as token ids, comma-separated.
    #[arg(long, conflicts_with = "prompt")]
    pub tokens: Option<String>,
    /// Tokens to generate (default: a copy model the prompt's symbols, an image model
    /// one image, otherwise 32).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Always take the most likely token (default: sample).
    #[arg(long)]
    pub greedy: bool,
    /// Sampling temperature.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Sample among the k most likely tokens only (0: all).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Sample within the smallest set of tokens whose probability reaches p (1: all).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Seed of the sampler: the same seed gives the same output.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Prompt positions per prefill call (default: the whole prompt in one).
    #[arg(long)]
    pub prefill_chunk: Option<usize>,
    /// Image models: write a PNG grid of generated images here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Image models: images per class.
    #[arg(long, default_value_t = 4)]
    pub count: usize,
    /// Image models: only this class (default: every class).
    #[arg(long)]
    pub class: Option<u32>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Force a kernel path (default: LINRT_KERNELS, else the fastest).
    #[arg(long)]
    pub kernels: Option<String>,
    /// Where to run: cpu (default), cuda or cuda:N (a build with --features cuda).
    #[arg(long)]
    pub device: Option<String>,
}

/// A token stream to generate from: the CPU session, or a GPU's.
pub trait TokenStream {
    fn reset(&mut self) -> Result<()>;
    fn step(&mut self, token: u32, logits: &mut [f32]) -> Result<()>;
    fn step_chunk(&mut self, tokens: &[u32], logits: &mut [f32]) -> Result<()>;
}

impl TokenStream for Session<'_> {
    fn reset(&mut self) -> Result<()> {
        Session::reset(self);
        Ok(())
    }
    fn step(&mut self, token: u32, logits: &mut [f32]) -> Result<()> {
        Ok(Session::step(self, linrt::Input::Token(token), logits)?)
    }
    fn step_chunk(&mut self, tokens: &[u32], logits: &mut [f32]) -> Result<()> {
        Ok(Session::step_chunk(self, Inputs::Tokens(tokens), logits)?)
    }
}

#[cfg(feature = "cuda")]
impl TokenStream for linrt_cuda::CudaSession<'_, '_> {
    fn reset(&mut self) -> Result<()> {
        Ok(linrt_cuda::CudaSession::reset(self)?)
    }
    fn step(&mut self, token: u32, logits: &mut [f32]) -> Result<()> {
        Ok(linrt_cuda::CudaSession::step(self, linrt::Input::Token(token), logits)?)
    }
    fn step_chunk(&mut self, tokens: &[u32], logits: &mut [f32]) -> Result<()> {
        Ok(linrt_cuda::CudaSession::step_chunk(self, Inputs::Tokens(tokens), logits)?)
    }
}

/// Generates `steps` tokens after `prompt` (at least one token) with a fresh state.
pub fn generate(
    session: &mut dyn TokenStream,
    vocab: usize,
    prompt: &[u32],
    steps: usize,
    sampler: &mut Sampler,
    prefill_chunk: usize,
) -> Result<Vec<u32>> {
    let mut out = Vec::with_capacity(steps.min(1 << 16));
    generate_into(session, vocab, prompt, steps, sampler, prefill_chunk, &mut out).map(|_| out)
}

/// [`generate`] into `out`, which keeps the tokens generated before a failure.
fn generate_into(
    session: &mut dyn TokenStream,
    vocab: usize,
    prompt: &[u32],
    steps: usize,
    sampler: &mut Sampler,
    prefill_chunk: usize,
    out: &mut Vec<u32>,
) -> Result<()> {
    if prompt.is_empty() {
        bail!("an empty prompt: generation continues from the prompt's last position, so it needs one");
    }
    session.reset()?;
    let mut logits = vec![0f32; prefill_chunk * vocab];
    let mut last = 0;
    for chunk in prompt.chunks(prefill_chunk) {
        session.step_chunk(chunk, &mut logits[..chunk.len() * vocab])?;
        last = chunk.len() - 1;
    }
    let mut next: Vec<f32> = logits[last * vocab..(last + 1) * vocab].to_vec();
    let mut scratch = vec![(0f32, 0u32); vocab];
    for i in 0..steps {
        let token = sampler.sample(&next, &mut scratch)?;
        out.push(token);
        if i + 1 < steps {
            session.step(token, &mut next)?;
        }
    }
    Ok(())
}

/// `app.*` metadata parsed as JSON, if present.
fn app_json(model: &Model, key: &str) -> Result<Option<Value>> {
    model.metadata_value(key).map(|v| serde_json::from_str(v).with_context(|| key.to_string())).transpose()
}

/// Splits text into vocabulary symbols, longest match first.
pub fn tokenize(text: &str, vocabulary: &[String]) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let best = vocabulary
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.is_empty() && rest.starts_with(s.as_str()))
            .max_by_key(|(_, s)| s.len());
        match best {
            Some((id, s)) => {
                out.push(id as u32);
                rest = &rest[s.len()..];
            }
            None => {
                let at = text.len() - rest.len();
                let symbol = rest.chars().next().unwrap_or_default();
                bail!(
                    "{symbol:?} at byte {at} of the prompt is not in the model's vocabulary ({})",
                    vocabulary.join(" ")
                )
            }
        }
    }
    Ok(out)
}

fn parse_tokens(list: &str, input_dim: u32) -> Result<Vec<u32>> {
    list.split(',')
        .map(|t| {
            let id: u32 = t.trim().parse().map_err(|_| anyhow!("--tokens: {t:?} is not a token id"))?;
            if id >= input_dim {
                bail!("--tokens: token id {id} out of range (the model takes 0 to {})", input_dim - 1);
            }
            Ok(id)
        })
        .collect()
}

pub fn run(args: GenerateArgs, out: &mut dyn Write) -> Result<()> {
    let file = ModelFile::open(&args.model).map_err(|e| anyhow!("cannot open {}: {e}", args.model.display()))?;
    let model = file.model().map_err(|e| super::model_error(&args.model, e))?;
    let cfg = *model.config();
    if cfg.input_kind != InputKind::Tokens {
        bail!("{} takes vectors, not tokens: generation feeds its own outputs back", args.model.display());
    }
    if cfg.output_kind != OutputKind::Linear {
        bail!("{} has no output head: it gives hidden states, not logits to sample from", args.model.display());
    }
    if cfg.output_dim() as u32 > cfg.input_dim {
        bail!(
            "the model outputs {} symbols but takes {}: its outputs cannot be fed back",
            cfg.output_dim(),
            cfg.input_dim
        );
    }
    let sampling = if args.greedy {
        Sampling::Greedy
    } else {
        Sampling::Random { temperature: args.temperature, top_k: args.top_k, top_p: args.top_p }
    };
    let mut sampler = Sampler::new(sampling, args.seed)?;
    let vocabulary: Option<Vec<String>> =
        app_json(&model, "app.vocabulary")?.map(|v| serde_json::from_value(v).context("app.vocabulary")).transpose()?;
    if let Some(v) = &vocabulary {
        if v.len() != cfg.input_dim as usize {
            bail!("app.vocabulary has {} symbols but the model takes {} token ids", v.len(), cfg.input_dim);
        }
    }
    let task = model.metadata_value("app.task").unwrap_or("");
    if let Some(steps) = args.steps {
        if steps == 0 || steps > MAX_STEPS {
            bail!("--steps must be between 1 and {MAX_STEPS}");
        }
    }

    let prompt: Vec<u32> = match (&args.prompt, &args.tokens) {
        (Some(text), _) => match &vocabulary {
            Some(v) => tokenize(text, v)?,
            None => bail!("the model has no vocabulary (app.vocabulary): give the prompt as --tokens"),
        },
        (None, Some(list)) => parse_tokens(list, cfg.input_dim)?,
        (None, None) => Vec::new(),
    };
    // The session's arena holds one chunk: never more positions than the prompt has.
    let prefill_chunk = match args.prefill_chunk {
        Some(0) => bail!("--prefill-chunk must be at least 1"),
        Some(n) => n.min(prompt.len().max(1)),
        None => prompt.len().max(1),
    };
    let device = Device::parse(args.device.as_deref())?;
    let opts = SessionOptions { max_chunk: prefill_chunk, kernels: cpu::requested(args.kernels.as_deref())? };
    let mut arena;
    let mut cpu_session;
    #[cfg(feature = "cuda")]
    let gpu;
    #[cfg(feature = "cuda")]
    let mut gpu_session;
    let session: &mut dyn TokenStream = match device {
        Device::Cpu => {
            arena = crate::memory::zeroed(model.arena_bytes(opts)?, "the session's arena")?;
            cpu_session = Session::new(&model, &mut arena, opts)?;
            &mut cpu_session
        }
        #[cfg(feature = "cuda")]
        Device::Cuda(ordinal) => {
            let on_device = |e: linrt_cuda::CudaError| anyhow!("cuda:{ordinal}: {e}");
            gpu = linrt_cuda::CudaModel::load(&model, ordinal).map_err(on_device)?;
            gpu_session = linrt_cuda::CudaSession::new(&gpu, prefill_chunk).map_err(on_device)?;
            &mut gpu_session
        }
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => unreachable!("Device::parse refuses cuda in a build without it"),
    };
    let vocab = cfg.output_dim();

    if task == "image-gen" {
        if !prompt.is_empty() {
            bail!("an image model's prompt is its class: use --class");
        }
        return images(&model, session, vocab, &mut sampler, &args, out);
    }
    if args.out.is_some() {
        bail!("--out writes images; this model's task is {task:?}, not image-gen");
    }
    let steps = match (args.steps, task) {
        (Some(s), _) => s,
        // A copy prompt is | symbols |: the copy is as long as the symbols.
        (None, "copy") => prompt.len().saturating_sub(2).max(1),
        (None, _) => 32,
    };
    // Whatever was generated before a failure is printed before the error.
    let mut tokens = Vec::with_capacity(steps.min(1 << 16));
    let outcome = generate_into(session, vocab, &prompt, steps, &mut sampler, prefill_chunk, &mut tokens);
    let text = vocabulary.as_ref().map(|v| tokens.iter().map(|t| v[*t as usize].as_str()).collect::<String>());
    if args.json {
        writeln!(out, "{}", json!({"prompt": prompt, "tokens": tokens, "text": text}))?;
    } else {
        match text {
            Some(t) => writeln!(out, "{t}")?,
            None => writeln!(out, "{}", tokens.iter().map(u32::to_string).collect::<Vec<_>>().join(","))?,
        }
    }
    outcome.with_context(|| format!("after {} of {steps} tokens", tokens.len()))
}

/// Generates images class by class and writes them as a PNG grid.
fn images(
    model: &Model,
    session: &mut dyn TokenStream,
    vocab: usize,
    sampler: &mut Sampler,
    args: &GenerateArgs,
    out: &mut dyn Write,
) -> Result<()> {
    let image =
        app_json(model, "app.image")?.ok_or_else(|| anyhow!("an image-gen model without app.image metadata"))?;
    let field = |k: &str| image.get(k).and_then(Value::as_u64).ok_or_else(|| anyhow!("app.image has no integer {k}"));
    let (h, w, levels, class_base) = (
        field("height")? as usize,
        field("width")? as usize,
        field("levels")? as u32,
        field("class_token_base")? as u32,
    );
    let classes = model.config().input_dim.saturating_sub(class_base);
    if levels < 2 || h * w == 0 || h * w > 1 << 20 || classes == 0 || levels > class_base {
        bail!("app.image: {h}×{w} pixels, {levels} levels, classes from token {class_base}: not usable");
    }
    let path = args.out.as_ref().ok_or_else(|| anyhow!("an image model writes a PNG: give --out FILE.png"))?;
    if args.count == 0 || args.count > 1000 {
        bail!("--count must be between 1 and 1000");
    }
    let which: Vec<u32> = match args.class {
        Some(c) if c < classes => vec![c],
        Some(c) => bail!("--class {c}: the model has classes 0 to {}", classes - 1),
        None => (0..classes).collect(),
    };
    let mut grid = Vec::new(); // (column, row, pixels)
    for (col, class) in which.iter().enumerate() {
        for row in 0..args.count {
            let pixels = generate(session, vocab, &[class_base + class], h * w, sampler, 1)?;
            grid.push((col, row, pixels));
        }
    }
    write_png(path, &grid, which.len(), args.count, (h, w), levels)?;
    if args.json {
        writeln!(out, "{}", json!({"out": path.display().to_string(), "classes": which, "per_class": args.count}))?;
    } else {
        writeln!(
            out,
            "wrote {}: {} class(es) × {} image(s) of {h}×{w} pixels (columns: classes {}; seed {})",
            path.display(),
            which.len(),
            args.count,
            which.iter().map(u32::to_string).collect::<Vec<_>>().join(", "),
            args.seed
        )?;
    }
    Ok(())
}

/// Pixels scaled up 4×, 2-pixel white gaps, dark ink on white (level 0 is white).
fn write_png(
    path: &Path,
    grid: &[(usize, usize, Vec<u32>)],
    cols: usize,
    rows: usize,
    (h, w): (usize, usize),
    levels: u32,
) -> Result<()> {
    const SCALE: usize = 4;
    const GAP: usize = 2;
    let (cell_w, cell_h) = (w * SCALE + GAP, h * SCALE + GAP);
    let (width, height) = (cols * cell_w + GAP, rows * cell_h + GAP);
    let mut data = vec![255u8; width * height];
    for (col, row, pixels) in grid {
        for (i, level) in pixels.iter().enumerate() {
            let shade = 255 - (level.min(&(levels - 1)) * 255 / (levels - 1)) as u8;
            let (py, px) = (i / w, i % w);
            for dy in 0..SCALE {
                let y = GAP + row * cell_h + py * SCALE + dy;
                let x = GAP + col * cell_w + px * SCALE;
                data[y * width + x..y * width + x + SCALE].fill(shade);
            }
        }
    }
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), width as u32, height as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().with_context(|| path.display().to_string())?;
    writer.write_image_data(&data).with_context(|| path.display().to_string())?;
    writer.finish().with_context(|| path.display().to_string())?;
    Ok(())
}
