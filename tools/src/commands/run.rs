//! `linrt run`: a model over an .npy of inputs, one step (or chunk) per row; the
//! engine is `crate::run`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Result};

use super::open_model;
use crate::device::Device;
use crate::{cpu, npy, run};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    pub model: PathBuf,
    #[arg(long)]
    pub input: PathBuf,
    #[arg(long)]
    pub output: PathBuf,
    /// Positions per call: 1 steps the recurrent form, more uses the causal parallel form.
    #[arg(long, default_value_t = 1)]
    pub chunk: usize,
    /// Reference outputs (.npy, [T, d_out]) to compare against; fails beyond --tolerance.
    #[arg(long)]
    pub expect: Option<PathBuf>,
    /// Largest accepted max|output − expected| / max|expected| with --expect.
    #[arg(long, default_value_t = 1e-5)]
    pub tolerance: f32,
    /// Force a kernel path: scalar, avx2, avx512, … (default: LINRT_KERNELS, else the fastest).
    #[arg(long)]
    pub kernels: Option<String>,
    /// Where to run: cpu (default), cuda or cuda:N (a build with --features cuda).
    #[arg(long)]
    pub device: Option<String>,
}

pub fn execute(args: RunArgs, out: &mut dyn Write) -> Result<()> {
    let RunArgs { model, input, output, chunk, expect, tolerance, kernels, device } = args;
    let kernels = cpu::requested(kernels.as_deref())?;
    let device = Device::parse(device.as_deref())?;
    let file = open_model(&model)?;
    let m = file.model().map_err(|e| super::model_error(&model, e))?;
    let inputs = run::read_inputs(&input, &m)?;
    let width = m.config().input_width();
    if inputs.is_empty() {
        bail!("{}: no positions to run", input.display());
    }
    if chunk == 0 {
        bail!("--chunk must be at least 1");
    }
    let y = match device {
        Device::Cpu => run::run_model(&m, &inputs, chunk, kernels)?,
        Device::Cuda(ordinal) => crate::device::run_model(&m, &inputs, chunk, ordinal)?,
    };
    let (t, d_out) = (inputs.len(width), m.config().output_dim());
    npy::write_f32(&output, &[t, d_out], &y)?;
    let form = if chunk == 1 { "recurrent steps".to_string() } else { format!("causal chunks of {chunk}") };
    let place = match device {
        Device::Cpu => String::new(),
        Device::Cuda(n) => format!(" on cuda:{n}"),
    };
    eprintln!(
        "ran {t} positions ({form}){place}, state {} floats; wrote {} [{t}, {d_out}]",
        m.config().state_floats().unwrap_or(0),
        output.display()
    );
    if let Some(path) = expect {
        let rel = run::compare_with(&path, &y, t, d_out)?;
        writeln!(out, "max |output - expected| = {rel:.2e} of the expected output scale (tolerance {tolerance:.0e})")?;
        if rel > tolerance {
            bail!("output differs from {} by {rel:.2e} of its scale, above tolerance {tolerance:.0e}", path.display());
        }
    }
    Ok(())
}
