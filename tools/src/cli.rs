//! Argument parsing and dispatch. Every failure ends as one line on stderr,
//! `error: …`, and a non-zero exit code.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use clap::{Parser, Subcommand};
use linrt::ModelFile;

use crate::{bench, cpu, inspect, npy, run};

#[derive(Parser, Debug)]
#[command(name = "linrt", version, about = "Run linear-attention transformers as RNNs: convert, inspect, verify, run")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Convert an ONNX export to a .lrt file, verified against tract.
    #[command(
        after_help = "Examples:\n  linrt convert model.onnx -o model.lrt\n  linrt convert model.onnx -o model.lrt --n-heads 8 --activation gelu\n\nHyperparameters come from the exporter's linrt.* metadata (models/export_onnx.py writes them),\nthe flags below, and the graph itself; sources that disagree are an error."
    )]
    Convert(ConvertArgs),
    /// Compare a .lrt file with the ONNX it came from, on random inputs.
    #[command(after_help = "Example:\n  linrt verify model.lrt model.onnx --steps 64")]
    Verify(VerifyArgs),
    /// Show a .lrt file's config, tensors, sizes, arena bytes and provenance.
    #[command(after_help = "Example:\n  linrt inspect model.lrt --json")]
    Inspect {
        model: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run a model over an .npy of inputs ([T] token ids or [T, d_in] float32), one step per row.
    #[command(
        after_help = "Example:\n  linrt run model.lrt --input x.npy --output y.npy\n  linrt run model.lrt --input x.npy --output y.npy --chunk 64   # causal parallel form"
    )]
    Run {
        model: PathBuf,
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        output: PathBuf,
        /// Positions per call: 1 steps the recurrent form, more uses the causal parallel form.
        #[arg(long, default_value_t = 1)]
        chunk: usize,
        /// Reference outputs (.npy, [T, d_out]) to compare against; fails beyond --tolerance.
        #[arg(long)]
        expect: Option<PathBuf>,
        /// Largest accepted max|output − expected| / max|expected| with --expect.
        #[arg(long, default_value_t = 1e-5)]
        tolerance: f32,
        /// Force a kernel path: scalar, avx2, avx512, … (default: LINRT_KERNELS, else the fastest).
        #[arg(long)]
        kernels: Option<String>,
    },
    /// Measure per-step latency against tract (same ONNX, in process) and the memory roofline.
    #[command(
        after_help = "Examples:\n  linrt bench model.lrt --onnx model.onnx\n  linrt bench model.lrt --json --kernels avx2\n  linrt bench model.lrt --prefill 512 --batch 8\n  linrt bench --paper --out-dir plots"
    )]
    Bench {
        /// The model to time (not needed with --paper).
        model: Option<PathBuf>,
        /// The step-form ONNX the model came from, to time tract on it.
        #[arg(long)]
        onnx: Option<PathBuf>,
        /// Timed steps (after 20 warm-up steps).
        #[arg(long, default_value_t = 200)]
        steps: usize,
        /// Force a kernel path (default: LINRT_KERNELS, else the fastest).
        #[arg(long)]
        kernels: Option<String>,
        /// Also time taking N positions into a fresh state through step_chunk against N steps.
        #[arg(long)]
        prefill: Option<usize>,
        /// Also time B streams stepped together (step_batch) against B separate steps.
        #[arg(long)]
        batch: Option<usize>,
        /// The paper's claims: linear against softmax attention (with and without a KV
        /// cache), small and CIFAR-10 configurations, with PNG plots in --out-dir.
        #[arg(long, conflicts_with_all = ["onnx", "prefill", "batch"])]
        paper: bool,
        /// Where --paper writes its plots.
        #[arg(long, default_value = "paper-plots")]
        out_dir: PathBuf,
        /// Steps per sequence for --paper (the paper's CIFAR-10 images: 3072).
        #[arg(long, default_value_t = 3072)]
        paper_steps: usize,
        #[arg(long)]
        json: bool,
    },
    /// Transcribe speech, streaming: a WAV file, raw PCM on stdin, or the microphone.
    #[command(
        after_help = "Examples:\n  linrt asr                                   # the bundled sample with the bundled model\n  linrt asr speech.wav --json\n  arecord -f S16_LE -r 16000 -c 1 -t raw | linrt asr -\n  linrt asr --mic --device hw:1,0 --stats\n  linrt asr long.wav --realtime             # paced like live audio"
    )]
    Asr(crate::asr::command::AsrArgs),
    /// Generate tokens with a token model: text, a copy, or a PNG grid of images.
    #[command(
        after_help = "Examples:\n  linrt generate --model models/digits-gen/digits-gen.int8.lrt --out digits.png --seed 1\n  linrt generate --model models/copy/copy.f32.lrt --prompt '|3141592653|' --greedy\n  linrt generate --model model.lrt --tokens 1,5,9 --steps 64 --temperature 0.8 --top-p 0.9 --json"
    )]
    Generate(crate::generate::GenerateArgs),
    /// Show this build and CPU: version, format version, CPU features, kernel path.
    Info {
        #[arg(long)]
        json: bool,
        /// Kernel path to report as chosen (default: LINRT_KERNELS, else the fastest).
        #[arg(long)]
        kernels: Option<String>,
    },
}

#[derive(clap::Args, Debug)]
pub struct ConvertArgs {
    /// The ONNX file (step or sequence form).
    pub onnx: PathBuf,
    /// Where to write the .lrt file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Number of attention heads.
    #[arg(long)]
    pub n_heads: Option<u32>,
    /// Feed-forward activation: relu or gelu.
    #[arg(long)]
    pub activation: Option<String>,
    /// LayerNorm placement: post (fast-transformers) or pre.
    #[arg(long)]
    pub norm: Option<String>,
    /// eps added to the attention normaliser.
    #[arg(long)]
    pub attention_eps: Option<f32>,
    /// LayerNorm eps.
    #[arg(long)]
    pub layernorm_eps: Option<f32>,
    /// Prefix of the encoder's parameter names, e.g. "encoder.".
    #[arg(long)]
    pub prefix: Option<String>,
    /// Module name of the token embedding (default: embedding).
    #[arg(long)]
    pub embedding: Option<String>,
    /// Module name of the input projection (default: input_projection).
    #[arg(long)]
    pub input_projection: Option<String>,
    /// Module name of the output head (default: output_projection, head, lm_head).
    #[arg(long)]
    pub output_head: Option<String>,
    /// Position encoding added after the input block: none or sinusoidal.
    #[arg(long)]
    pub positional: Option<String>,
    /// Ignore the exporter's linrt.* metadata and infer everything from the graph and flags.
    #[arg(long)]
    pub ignore_metadata: bool,
    /// Element type of the weight matrices: f32, f16 or int8 (embeddings, norms and biases stay f32).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// int8: one scale per output row (0) or per block of this many columns.
    #[arg(long, default_value_t = 0)]
    pub int8_block: u32,
    /// Skip verification against tract.
    #[arg(long)]
    pub no_verify: bool,
    #[command(flatten)]
    pub check: CheckArgs,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Positions fed to both runtimes during verification.
    #[arg(long, default_value_t = 16)]
    pub steps: usize,
    /// Largest accepted max|linrt − tract| / max|tract| per output
    /// (default by dtype: f32 1e-4, f16 2e-3, int8 0.1).
    #[arg(long)]
    pub tolerance: Option<f32>,
    /// Smallest accepted cosine similarity per step (default: int8 0.999, else none).
    #[arg(long)]
    pub min_cosine: Option<f32>,
}

#[cfg(feature = "onnx")]
impl CheckArgs {
    fn options(&self, dtype: linrt::DType) -> crate::onnx::verify::VerifyOptions {
        let base = crate::onnx::verify::VerifyOptions::for_dtype(dtype);
        crate::onnx::verify::VerifyOptions {
            steps: self.steps,
            tolerance: self.tolerance.unwrap_or(base.tolerance),
            min_cosine: self.min_cosine.unwrap_or(base.min_cosine),
            ..base
        }
    }
}

/// Parses a `--dtype` value.
pub fn parse_dtype(s: &str) -> Result<linrt::DType> {
    match s {
        "f32" => Ok(linrt::DType::F32),
        "f16" => Ok(linrt::DType::F16),
        "int8" | "i8" => Ok(linrt::DType::I8),
        _ => bail!("unknown dtype {s:?} (f32, f16 or int8)"),
    }
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    pub model: PathBuf,
    pub onnx: PathBuf,
    #[command(flatten)]
    pub check: CheckArgs,
    #[arg(long)]
    pub json: bool,
}

/// Entry point of the binary: parses, runs, prints errors; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    // A panic is a bug; it still ends as one line and a non-zero code.
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(|| execute(cli.command));
    match outcome {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!("error: {}", one_line(&e));
            1
        }
        Err(p) => {
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            eprintln!("error: internal error (please report): {}", msg.unwrap_or_default());
            101
        }
    }
}

/// An error chain on one line.
fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

fn open(path: &PathBuf) -> Result<ModelFile> {
    ModelFile::open(path).map_err(|e| anyhow!("cannot open {}: {e}", path.display()))
}

/// Why `path` is not a usable model, in one line; an ONNX file (which every
/// command but `convert` is handed by mistake) says how to convert it.
pub fn model_error(path: &std::path::Path, e: linrt::Error) -> anyhow::Error {
    let onnx = path.extension().is_some_and(|x| x.eq_ignore_ascii_case("onnx"));
    if e == linrt::Error::BadMagic && onnx {
        return anyhow!(
            "{} is an ONNX file, not a .lrt model: convert it first (linrt convert {} -o model.lrt)",
            path.display(),
            path.display()
        );
    }
    anyhow!("{}: {e}", path.display())
}

pub fn execute(command: Command) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match command {
        Command::Inspect { model, json } => {
            let file = open(&model)?;
            let m = file.model().map_err(|e| model_error(&model, e))?;
            if json {
                writeln!(out, "{}", inspect::json(&m))?;
            } else {
                write!(out, "{}", inspect::text(&m))?;
            }
        }
        Command::Asr(args) => crate::asr::command::run(args, &mut out)?,
        Command::Generate(args) => crate::generate::run(args, &mut out)?,
        Command::Run { model, input, output, chunk, expect, tolerance, kernels } => {
            let kernels = cpu::requested(kernels.as_deref())?;
            let file = open(&model)?;
            let m = file.model().map_err(|e| model_error(&model, e))?;
            let inputs = run::read_inputs(&input, &m)?;
            let width = m.config().input_width();
            if inputs.is_empty() {
                bail!("{}: no positions to run", input.display());
            }
            let y = run::run_model(&m, &inputs, chunk, kernels)?;
            let (t, d_out) = (inputs.len(width), m.config().output_dim());
            npy::write_f32(&output, &[t, d_out], &y)?;
            let form = if chunk == 1 { "recurrent steps".to_string() } else { format!("causal chunks of {chunk}") };
            eprintln!(
                "ran {t} positions ({form}), state {} floats; wrote {} [{t}, {d_out}]",
                m.config().state_floats().unwrap_or(0),
                output.display()
            );
            if let Some(path) = expect {
                let rel = run::compare_with(&path, &y, t, d_out)?;
                writeln!(
                    out,
                    "max |output - expected| = {rel:.2e} of the expected output scale (tolerance {tolerance:.0e})"
                )?;
                if rel > tolerance {
                    bail!(
                        "output differs from {} by {rel:.2e} of its scale, above tolerance {tolerance:.0e}",
                        path.display()
                    );
                }
            }
        }
        Command::Info { json, kernels } => {
            // The newest format this build reads and writes (1.2: the feature maps).
            let (major, minor) = (linrt::format::VERSION_MAJOR, linrt::format::VERSION_MINOR_FEATURE_MAPS);
            let onnx = cfg!(feature = "onnx");
            let chosen = cpu::chosen(cpu::requested(kernels.as_deref())?)?.path().name();
            let available: Vec<&str> =
                linrt::kernels::ALL_PATHS.iter().filter(|p| p.is_supported()).map(|p| p.name()).collect();
            let features = cpu::features();
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"version": env!("CARGO_PKG_VERSION"), "format_version": format!("{major}.{minor}"),
                                       "arch": std::env::consts::ARCH, "cpu_features": features,
                                       "kernel_paths": available, "kernels": chosen, "onnx_import": onnx})
                )?;
            } else {
                writeln!(out, "linrt {}", env!("CARGO_PKG_VERSION"))?;
                writeln!(out, "format       .lrt {major}.{minor}")?;
                writeln!(out, "cpu          {} with {}", std::env::consts::ARCH, features.join(" "))?;
                writeln!(out, "kernels      {chosen} (this CPU runs: {})", available.join(", "))?;
                writeln!(
                    out,
                    "onnx import  {}",
                    if onnx { "yes (tract-onnx)" } else { "no (built without the onnx feature)" }
                )?;
            }
        }
        Command::Bench { paper: true, out_dir, paper_steps, json, .. } => {
            if !(64..=100_000).contains(&paper_steps) {
                bail!("--paper-steps must be between 64 and 100000");
            }
            crate::paper::run(&out_dir, paper_steps, json, &mut out)?;
        }
        Command::Bench { model, onnx, steps, kernels, prefill, batch, json, .. } => {
            let model = model.ok_or_else(|| anyhow!("bench needs a model file (or --paper)"))?;
            let request = cpu::requested(kernels.as_deref())?;
            let path = cpu::chosen(request)?.path();
            let file = open(&model)?;
            let m = file.model().map_err(|e| model_error(&model, e))?;
            if !(1..=1_000_000).contains(&steps) {
                bail!("--steps must be between 1 and 1000000");
            }
            let weights = bench::step_bytes(&m, file.bytes());
            // The three measurements take turns in rounds, so a burst of noise from
            // the machine lands on all of them rather than skewing one ratio.
            let (mut step, mut roofline, mut tract) = (Vec::new(), Vec::new(), Vec::new());
            for round in 0..bench::ROUNDS {
                let n = steps / bench::ROUNDS + usize::from(round < steps % bench::ROUNDS);
                step.extend(bench::linrt_step_times(&m, n, 20, request)?);
                roofline.push(bench::stream_time(weights, 10));
                if let Some(path) = &onnx {
                    tract.extend(tract_step_times(path, m.config(), n, 100)?);
                }
            }
            let (step, roofline) = (bench::median(step), bench::median(roofline));
            let prefill = match prefill {
                Some(t) if !(1..=65_536).contains(&t) => bail!("--prefill must be between 1 and 65536 positions"),
                Some(t) => Some((t, bench::prefill_times(&m, t, bench::ROUNDS, request)?)),
                None => None,
            };
            let batch = match batch {
                Some(b) if !(1..=1024).contains(&b) => bail!("--batch must be between 1 and 1024 streams"),
                Some(b) => Some((b, bench::batch_times(&m, b, steps, request)?)),
                None => None,
            };
            let tract = onnx.as_ref().map(|_| bench::median(tract));
            let dtype = m.weight_dtype().name();
            let us = |s: f64| s * 1e6;
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"dtype": dtype, "kernels": path.name(), "steps": steps,
                        "step_us": us(step), "tract_step_us": tract.map(us), "roofline_us": us(roofline),
                        "weight_bytes": weights.len(), "file_bytes": m.file_size(),
                        "speedup_vs_tract": tract.map(|t| t / step), "step_over_roofline": step / roofline,
                        "prefill": prefill.map(|(t, (chunk, stepped))| serde_json::json!({"positions": t,
                            "chunk_ms": chunk * 1e3, "stepped_ms": stepped * 1e3, "speedup": stepped / chunk})),
                        "batch": batch.map(|(b, (together, apart))| serde_json::json!({"streams": b,
                            "batched_us": together * 1e6, "separate_us": apart * 1e6, "speedup": apart / together}))})
                )?;
            } else {
                writeln!(out, "model        {} ({dtype}, {} bytes read per step)", model.display(), weights.len())?;
                writeln!(
                    out,
                    "linrt        {:>10.2} µs per step (median of {steps}, {} kernels, 1 thread)",
                    us(step),
                    path.name()
                )?;
                if let Some(t) = tract {
                    writeln!(
                        out,
                        "tract        {:>10.2} µs per step (same ONNX, in process): linrt is {:.1}× faster",
                        us(t),
                        t / step
                    )?;
                }
                writeln!(
                    out,
                    "roofline     {:>10.2} µs to stream the weights once: linrt takes {:.2}× that",
                    us(roofline),
                    step / roofline
                )?;
                if let Some((b, (together, apart))) = batch {
                    writeln!(
                        out,
                        "batch        {b} streams: {:.1} µs in one step_batch, {:.1} µs stepped apart: {:.1}× the throughput",
                        together * 1e6,
                        apart * 1e6,
                        apart / together
                    )?;
                }
                if let Some((t, (chunk, stepped))) = prefill {
                    writeln!(
                        out,
                        "prefill      {t} positions: {:.2} ms through step_chunk, {:.2} ms stepped: {:.1}× the throughput",
                        chunk * 1e3,
                        stepped * 1e3,
                        stepped / chunk
                    )?;
                }
            }
        }
        Command::Convert(args) => convert(args, &mut out)?,
        Command::Verify(args) => verify(args, &mut out)?,
    }
    Ok(())
}

#[cfg(feature = "onnx")]
use crate::onnx::verify::tract_step_times;

#[cfg(not(feature = "onnx"))]
fn tract_step_times(_: &std::path::Path, _: &linrt::ModelConfig, _: usize, _: usize) -> Result<Vec<f64>> {
    bail!("this linrt was built without ONNX import (cargo feature \"onnx\"); --onnx needs it")
}

#[cfg(not(feature = "onnx"))]
fn convert(_: ConvertArgs, _: &mut dyn Write) -> Result<()> {
    bail!("this linrt was built without ONNX import (cargo feature \"onnx\")")
}

#[cfg(not(feature = "onnx"))]
fn verify(_: VerifyArgs, _: &mut dyn Write) -> Result<()> {
    bail!("this linrt was built without ONNX import (cargo feature \"onnx\")")
}

#[cfg(feature = "onnx")]
fn convert(args: ConvertArgs, out: &mut dyn Write) -> Result<()> {
    use crate::onnx::convert::{convert_file, ConvertOptions};
    use crate::onnx::infer::{parse_activation, parse_norm, parse_positional, Overrides};

    let dtype = parse_dtype(&args.dtype)?;
    let overrides = Overrides {
        n_heads: args.n_heads,
        activation: args.activation.as_deref().map(parse_activation).transpose()?,
        norm_placement: args.norm.as_deref().map(parse_norm).transpose()?,
        attention_eps: args.attention_eps,
        layernorm_eps: args.layernorm_eps,
        prefix: args.prefix,
        embedding: args.embedding,
        input_projection: args.input_projection,
        output_head: args.output_head,
        positional: args.positional.as_deref().map(parse_positional).transpose()?,
        ignore_metadata: args.ignore_metadata,
    };
    let opts = ConvertOptions {
        overrides,
        skip_verify: args.no_verify,
        verify: args.check.options(dtype),
        dtype,
        int8_block: args.int8_block,
    };
    let quiet = args.json;
    let done = convert_file(&args.onnx, &args.output, &opts, &mut |msg| {
        if !quiet {
            eprintln!("{msg}");
        }
    })?;
    if args.json {
        let report = done.report.as_ref().map(report_json);
        writeln!(
            out,
            "{}",
            serde_json::json!({"output": args.output.display().to_string(), "bytes": done.file_size,
                               "form": done.inferred.form.name(), "verification": report})
        )?;
    } else {
        if let Some(r) = &done.report {
            write_report(out, r)?;
        } else {
            writeln!(out, "verification skipped (--no-verify)")?;
        }
        writeln!(out, "wrote {} ({} bytes)", args.output.display(), done.file_size)?;
    }
    Ok(())
}

#[cfg(feature = "onnx")]
fn verify(args: VerifyArgs, out: &mut dyn Write) -> Result<()> {
    use crate::onnx::verify::verify;
    use anyhow::Context;
    let bytes = std::fs::read(&args.model).with_context(|| format!("cannot read {}", args.model.display()))?;
    let dtype = linrt::AlignedBytes::from_slice(&bytes)
        .model()
        .map(|m| m.weight_dtype())
        .map_err(|e| model_error(&args.model, e))?;
    let opts = args.check.options(dtype);
    let report = verify(&bytes, &args.onnx, opts)?;
    if args.json {
        writeln!(out, "{}", report_json(&report))?;
    } else {
        write_report(out, &report)?;
    }
    if !report.passed() {
        bail!(
            "verification failed: {} and {} disagree beyond tolerance {:.0e}",
            args.model.display(),
            args.onnx.display(),
            report.tolerance
        );
    }
    Ok(())
}

#[cfg(feature = "onnx")]
fn write_report(out: &mut dyn Write, r: &crate::onnx::verify::VerifyReport) -> Result<()> {
    let cosine = if r.min_cosine > 0.0 { format!(", cosine ≥ {}", r.min_cosine) } else { String::new() };
    let why = r.steps_note.as_ref().map(|n| format!(" ({n})")).unwrap_or_default();
    writeln!(
        out,
        "verification: linrt vs tract, {} form, {} steps{why}, tolerance {:.0e} relative to output scale{cosine}",
        r.form.name(),
        r.steps,
        r.tolerance
    )?;
    for o in &r.outputs {
        writeln!(
            out,
            "  {:<18} max abs {:>10.3e}  max rel {:>10.3e}  min cosine {:.6}  {}",
            o.name,
            o.max_abs,
            o.max_rel,
            o.min_cosine,
            if o.passed { "ok" } else { "FAIL" }
        )?;
    }
    Ok(())
}

#[cfg(feature = "onnx")]
fn report_json(r: &crate::onnx::verify::VerifyReport) -> serde_json::Value {
    let finite = |x: f32| {
        if x.is_finite() {
            serde_json::json!(x)
        } else {
            serde_json::json!(null)
        }
    };
    serde_json::json!({
        "form": r.form.name(), "steps": r.steps, "steps_note": r.steps_note, "tolerance": r.tolerance, "passed": r.passed(),
        "outputs": r.outputs.iter().map(|o| serde_json::json!({"name": o.name, "max_abs": finite(o.max_abs),
                                                               "max_rel": finite(o.max_rel), "min_cosine": finite(o.min_cosine),
                                                               "passed": o.passed})).collect::<Vec<_>>(),
    })
}
