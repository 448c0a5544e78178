//! `--device`: where a model runs. The CPU always; an NVIDIA GPU (`cuda`, `cuda:N`)
//! when linrt was built with the `cuda` feature and the machine has a driver and a
//! device. Every way that can fail is one error line, never a panic.

use anyhow::{bail, Result};

/// A place to run a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Cpu,
    /// A CUDA device by ordinal.
    Cuda(usize),
}

impl Device {
    /// `cpu`, `cuda` or `cuda:N` (None: the CPU). A CUDA device is checked here, so a
    /// command fails before it reads anything else.
    pub fn parse(text: Option<&str>) -> Result<Device> {
        let Some(text) = text else { return Ok(Device::Cpu) };
        if text == "cpu" {
            return Ok(Device::Cpu);
        }
        let Some(ordinal) = parse_cuda(text) else {
            bail!("--device {text}: expected cpu, cuda or cuda:N");
        };
        check_cuda(ordinal)?;
        Ok(Device::Cuda(ordinal))
    }
}

fn parse_cuda(text: &str) -> Option<usize> {
    match text.strip_prefix("cuda") {
        Some("") => Some(0),
        Some(rest) => rest.strip_prefix(':')?.parse().ok(),
        None => None,
    }
}

#[cfg(not(feature = "cuda"))]
fn check_cuda(ordinal: usize) -> Result<()> {
    bail!("--device cuda:{ordinal}: this linrt was built without CUDA (build it with --features cuda)")
}

#[cfg(feature = "cuda")]
fn check_cuda(ordinal: usize) -> Result<()> {
    match linrt_cuda::probe::device(ordinal) {
        Ok(_) => Ok(()),
        Err(e) => bail!("--device cuda:{ordinal}: {e}"),
    }
}

/// What `linrt info` says about CUDA: one line per device, or why there is none,
/// and the same as JSON.
pub fn cuda_report() -> (Vec<String>, serde_json::Value) {
    #[cfg(not(feature = "cuda"))]
    {
        let why = "not built (build linrt with --features cuda)";
        (vec![why.to_string()], serde_json::json!({"built": false, "devices": [], "why": why}))
    }
    #[cfg(feature = "cuda")]
    {
        let nvrtc = match linrt_cuda::probe::nvrtc_version() {
            Ok((major, minor)) => format!("NVRTC {major}.{minor}"),
            Err(e) => e.to_string(),
        };
        match linrt_cuda::devices() {
            Ok(list) if !list.is_empty() => {
                let lines = list
                    .iter()
                    .map(|d| {
                        format!(
                            "cuda:{} {} (compute {}.{}, {:.1} GiB{}, {} SMs); {nvrtc}",
                            d.ordinal,
                            d.name,
                            d.compute_capability.0,
                            d.compute_capability.1,
                            d.memory_bytes as f64 / (1u64 << 30) as f64,
                            if d.integrated { ", integrated: shares the CPU's memory" } else { "" },
                            d.multiprocessors
                        )
                    })
                    .collect();
                let devices: Vec<_> = list
                    .iter()
                    .map(|d| {
                        serde_json::json!({"ordinal": d.ordinal, "name": d.name,
                            "compute_capability": format!("{}.{}", d.compute_capability.0, d.compute_capability.1),
                            "memory_bytes": d.memory_bytes, "integrated": d.integrated,
                            "multiprocessors": d.multiprocessors})
                    })
                    .collect();
                (lines, serde_json::json!({"built": true, "devices": devices, "nvrtc": nvrtc}))
            }
            Ok(_) => {
                let why = "the driver sees no device";
                (vec![why.to_string()], serde_json::json!({"built": true, "devices": [], "why": why}))
            }
            Err(e) => {
                let why = e.to_string();
                (vec![why.clone()], serde_json::json!({"built": true, "devices": [], "why": why}))
            }
        }
    }
}

/// Runs all positions on CUDA device `ordinal`, as `run::run_model` does on the CPU.
#[cfg(feature = "cuda")]
pub fn run_model(
    model: &linrt::Model,
    inputs: &crate::run::RunInputs,
    chunk: usize,
    ordinal: usize,
) -> Result<Vec<f32>> {
    use crate::run::RunInputs;
    use linrt::Inputs;
    let cfg = model.config();
    let width = cfg.input_width();
    let t = inputs.len(width);
    let d_out = cfg.output_dim();
    let chunk = chunk.clamp(1, t.max(1));
    let on_device = |e: linrt_cuda::CudaError| anyhow::anyhow!("cuda:{ordinal}: {e}");
    let gpu = linrt_cuda::CudaModel::load(model, ordinal).map_err(on_device)?;
    let mut session = linrt_cuda::CudaSession::new(&gpu, chunk).map_err(on_device)?;
    let mut out = vec![0f32; t * d_out];
    for (c, out_chunk) in out.chunks_mut(chunk * d_out).enumerate() {
        let start = c * chunk;
        let n = out_chunk.len() / d_out.max(1);
        let input = match inputs {
            RunInputs::Tokens(ids) => Inputs::Tokens(&ids[start..start + n]),
            RunInputs::Vectors(v) => Inputs::Vectors(&v[start * width..(start + n) * width]),
        };
        session.step_chunk(input, out_chunk).map_err(on_device)?;
    }
    Ok(out)
}

#[cfg(not(feature = "cuda"))]
pub fn run_model(_: &linrt::Model, _: &crate::run::RunInputs, _: usize, ordinal: usize) -> Result<Vec<f32>> {
    check_cuda(ordinal).map(|_| Vec::new())
}

/// Median seconds per forward pass of each batch size in `batches` (streams × 1
/// position) on CUDA device `ordinal` (after 20 warm-up passes), with zero inputs of
/// the model's kind; the model is uploaded once for all of them.
#[cfg(feature = "cuda")]
pub fn step_times(model: &linrt::Model, batches: &[usize], steps: usize, ordinal: usize) -> Result<Vec<f64>> {
    use linrt::{InputKind, Inputs};
    let cfg = model.config();
    let on_device = |e: linrt_cuda::CudaError| anyhow::anyhow!("cuda:{ordinal}: {e}");
    let gpu = linrt_cuda::CudaModel::load(model, ordinal).map_err(on_device)?;
    let mut medians = Vec::with_capacity(batches.len());
    for &streams in batches {
        let mut batch = linrt_cuda::CudaStreams::new(&gpu, streams, 1).map_err(on_device)?;
        let tokens = vec![0u32; streams];
        let vectors = vec![0f32; streams * cfg.input_width()];
        let inputs = match cfg.input_kind {
            InputKind::Tokens => Inputs::Tokens(&tokens),
            InputKind::Vectors => Inputs::Vectors(&vectors),
        };
        let mut out = vec![0f32; streams * cfg.output_dim()];
        let mut times = Vec::with_capacity(steps);
        for i in 0..steps + 20 {
            let start = std::time::Instant::now();
            batch.forward(inputs, &mut out).map_err(on_device)?;
            if i >= 20 {
                times.push(start.elapsed().as_secs_f64());
            }
        }
        medians.push(crate::bench::median(times));
    }
    Ok(medians)
}

#[cfg(not(feature = "cuda"))]
pub fn step_times(_: &linrt::Model, _: &[usize], _: usize, ordinal: usize) -> Result<Vec<f64>> {
    check_cuda(ordinal).map(|_| Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse_or_say_what_is_expected() {
        assert_eq!(Device::parse(None).unwrap(), Device::Cpu);
        assert_eq!(Device::parse(Some("cpu")).unwrap(), Device::Cpu);
        assert_eq!(parse_cuda("cuda"), Some(0));
        assert_eq!(parse_cuda("cuda:2"), Some(2));
        assert_eq!(parse_cuda("cuda2"), None);
        let e = Device::parse(Some("gpu")).unwrap_err().to_string();
        assert_eq!(e, "--device gpu: expected cpu, cuda or cuda:N");
    }

    /// Here (no GPU, and in CI) asking for CUDA is one clear line, whichever way linrt
    /// was built.
    #[test]
    fn cuda_without_a_gpu_is_one_line() {
        let Err(e) = Device::parse(Some("cuda")) else {
            eprintln!("a CUDA device is present: nothing to check here");
            return;
        };
        let e = e.to_string();
        assert!(e.starts_with("--device cuda:0: "), "{e}");
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("without CUDA") || e.contains("no CUDA driver") || e.contains("no CUDA device"), "{e}");
    }
}
