//! `linrt convert`: ONNX to .lrt, verified against tract before anything is
//! written; the converter is `crate::onnx`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;

use super::CheckArgs;

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

#[cfg(not(feature = "onnx"))]
pub fn execute(_: ConvertArgs, _: &mut dyn Write) -> Result<()> {
    anyhow::bail!("this linrt was built without ONNX import (cargo feature \"onnx\")")
}

#[cfg(feature = "onnx")]
pub fn execute(args: ConvertArgs, out: &mut dyn Write) -> Result<()> {
    let quiet = args.json;
    let done = convert(&args, &mut |msg| {
        if !quiet {
            eprintln!("{msg}");
        }
    })?;
    if args.json {
        writeln!(out, "{}", report_json(&args, &done))?;
    } else {
        if let Some(r) = &done.report {
            super::verify::write_report(out, r)?;
        } else {
            writeln!(out, "verification skipped (--no-verify)")?;
        }
        writeln!(out, "wrote {} ({} bytes)", args.output.display(), done.file_size)?;
    }
    Ok(())
}

/// The conversion `args` ask for, with its progress messages; the Python package's
/// `linrt.convert` calls it too.
#[cfg(feature = "onnx")]
pub fn convert(args: &ConvertArgs, progress: &mut dyn FnMut(&str)) -> Result<crate::onnx::convert::Converted> {
    use crate::onnx::convert::{convert_file, ConvertOptions};
    use crate::onnx::infer::{parse_activation, parse_norm, parse_positional, Overrides};

    let dtype = super::parse_dtype(&args.dtype)?;
    let overrides = Overrides {
        n_heads: args.n_heads,
        activation: args.activation.as_deref().map(parse_activation).transpose()?,
        norm_placement: args.norm.as_deref().map(parse_norm).transpose()?,
        attention_eps: args.attention_eps,
        layernorm_eps: args.layernorm_eps,
        prefix: args.prefix.clone(),
        embedding: args.embedding.clone(),
        input_projection: args.input_projection.clone(),
        output_head: args.output_head.clone(),
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
    convert_file(&args.onnx, &args.output, &opts, progress)
}

/// `linrt convert --json`'s object: the file written and the verification report.
#[cfg(feature = "onnx")]
pub fn report_json(args: &ConvertArgs, done: &crate::onnx::convert::Converted) -> serde_json::Value {
    let report = done.report.as_ref().map(super::verify::report_json);
    serde_json::json!({"output": args.output.display().to_string(), "bytes": done.file_size,
                       "form": done.inferred.form.name(), "verification": report})
}
