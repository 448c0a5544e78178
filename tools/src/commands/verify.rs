//! `linrt verify`: a .lrt file against the ONNX it came from, on random inputs;
//! the comparison is `crate::onnx::verify`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Result};

use super::CheckArgs;

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    pub model: PathBuf,
    pub onnx: PathBuf,
    #[command(flatten)]
    pub check: CheckArgs,
    #[arg(long)]
    pub json: bool,
}

#[cfg(not(feature = "onnx"))]
pub fn execute(_: VerifyArgs, _: &mut dyn Write) -> Result<()> {
    bail!("this linrt was built without ONNX import (cargo feature \"onnx\")")
}

#[cfg(feature = "onnx")]
pub fn execute(args: VerifyArgs, out: &mut dyn Write) -> Result<()> {
    use crate::onnx::verify::verify;
    use anyhow::Context;
    let bytes = std::fs::read(&args.model).with_context(|| format!("cannot read {}", args.model.display()))?;
    let dtype = linrt::AlignedBytes::from_slice(&bytes)
        .model()
        .map(|m| m.weight_dtype())
        .map_err(|e| super::model_error(&args.model, e))?;
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
pub(super) fn write_report(out: &mut dyn Write, r: &crate::onnx::verify::VerifyReport) -> Result<()> {
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
pub(super) fn report_json(r: &crate::onnx::verify::VerifyReport) -> serde_json::Value {
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
