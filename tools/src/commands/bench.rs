//! `linrt bench`: step latency against tract and the memory roofline, prefill,
//! batches, and `--paper`; the timing loops are `crate::bench` and `crate::paper`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};

use super::open_model;
use crate::device::Device;
use crate::{bench, cpu};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// The model to time (not needed with --paper).
    pub model: Option<PathBuf>,
    /// The step-form ONNX the model came from, to time tract on it.
    #[arg(long)]
    pub onnx: Option<PathBuf>,
    /// Timed steps (after 20 warm-up steps).
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// Force a kernel path (default: LINRT_KERNELS, else the fastest).
    #[arg(long)]
    pub kernels: Option<String>,
    /// Also time taking N positions into a fresh state through step_chunk against N steps.
    #[arg(long)]
    pub prefill: Option<usize>,
    /// Also time B streams stepped together (step_batch) against B separate steps.
    #[arg(long)]
    pub batch: Option<usize>,
    /// The paper's claims: linear against softmax attention (with and without a KV
    /// cache), small and CIFAR-10 configurations, with PNG plots in --out-dir.
    #[arg(long, conflicts_with_all = ["onnx", "prefill", "batch"])]
    pub paper: bool,
    /// Where --paper writes its plots.
    #[arg(long, default_value = "paper-plots")]
    pub out_dir: PathBuf,
    /// Steps per sequence for --paper (the paper's CIFAR-10 images: 3072).
    #[arg(long, default_value_t = 3072)]
    pub paper_steps: usize,
    /// Also time the model on a GPU: cuda or cuda:N (a build with --features cuda),
    /// one stream and, with --batch, B streams in one pass, beside the CPU.
    #[arg(long, conflicts_with_all = ["onnx", "prefill", "paper"])]
    pub device: Option<String>,
    #[arg(long)]
    pub json: bool,
}

pub fn execute(args: BenchArgs, out: &mut dyn Write) -> Result<()> {
    if args.paper {
        let BenchArgs { out_dir, paper_steps, json, .. } = args;
        if !(64..=100_000).contains(&paper_steps) {
            bail!("--paper-steps must be between 64 and 100000");
        }
        crate::paper::run(&out_dir, paper_steps, json, out)?;
        return Ok(());
    }
    let BenchArgs { model, onnx, steps, kernels, prefill, batch, json, device, .. } = args;
    let device = Device::parse(device.as_deref())?;
    let model = model.ok_or_else(|| anyhow!("bench needs a model file (or --paper)"))?;
    let request = cpu::requested(kernels.as_deref())?;
    let path = cpu::chosen(request)?.path();
    let file = open_model(&model)?;
    let m = file.model().map_err(|e| super::model_error(&model, e))?;
    if !(1..=1_000_000).contains(&steps) {
        bail!("--steps must be between 1 and 1000000");
    }
    if let Device::Cuda(ordinal) = device {
        return bench_cuda(&m, &model, ordinal, steps, batch, request, json, out);
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
    Ok(())
}

/// `--device cuda`: one stream (and B with --batch) on the GPU against the CPU's step.
#[allow(clippy::too_many_arguments)]
fn bench_cuda(
    m: &linrt::Model,
    model: &std::path::Path,
    ordinal: usize,
    steps: usize,
    batch: Option<usize>,
    request: Option<linrt::KernelPath>,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    if let Some(b) = batch {
        if !(1..=4096).contains(&b) {
            bail!("--batch must be between 1 and 4096 streams");
        }
    }
    let batches: Vec<usize> = std::iter::once(1).chain(batch).collect();
    let times = crate::device::step_times(m, &batches, steps, ordinal)?;
    let gpu_step = times[0];
    let gpu_batch = batch.zip(times.get(1).copied());
    let cpu_step = bench::median(bench::linrt_step_times(m, steps, 20, request)?);
    let us = |s: f64| s * 1e6;
    if json {
        writeln!(
            out,
            "{}",
            serde_json::json!({"device": format!("cuda:{ordinal}"), "dtype": m.weight_dtype().name(), "steps": steps,
                "gpu_step_us": us(gpu_step), "cpu_step_us": us(cpu_step),
                "batch": gpu_batch.map(|(b, t)| serde_json::json!({"streams": b, "pass_us": us(t),
                    "per_stream_us": us(t) / b as f64}))})
        )?;
        return Ok(());
    }
    writeln!(out, "model        {} ({})", model.display(), m.weight_dtype().name())?;
    writeln!(
        out,
        "cuda:{ordinal}       {:>10.2} µs per step (median of {steps}, 1 stream, with copies)",
        us(gpu_step)
    )?;
    writeln!(
        out,
        "cpu          {:>10.2} µs per step: at one stream the {} is {:.1}× faster",
        us(cpu_step),
        if cpu_step < gpu_step { "CPU" } else { "GPU" },
        (gpu_step / cpu_step).max(cpu_step / gpu_step)
    )?;
    if let Some((b, t)) = gpu_batch {
        writeln!(
            out,
            "batch        {b} streams in one pass: {:.1} µs ({:.2} µs per stream, {:.1}× the CPU's throughput)",
            us(t),
            us(t) / b as f64,
            cpu_step * b as f64 / t
        )?;
    }
    Ok(())
}

#[cfg(feature = "onnx")]
use crate::onnx::verify::tract_step_times;

#[cfg(not(feature = "onnx"))]
fn tract_step_times(_: &std::path::Path, _: &linrt::ModelConfig, _: usize, _: usize) -> Result<Vec<f64>> {
    bail!("this linrt was built without ONNX import (cargo feature \"onnx\"); --onnx needs it")
}
