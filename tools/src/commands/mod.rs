//! One module per `linrt` subcommand: its arguments and its body. The engines they
//! call live beside them: `onnx/` (convert, verify), `asr/`, `run.rs`, `bench.rs`,
//! `paper/`, `inspect.rs`.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use linrt::ModelFile;

pub mod asr;
pub mod bench;
pub mod convert;
pub mod generate;
pub mod info;
pub mod inspect;
pub mod run;
pub mod verify;

/// Opens a `.lrt` file (mapped, not read).
pub fn open_model(path: &Path) -> Result<ModelFile> {
    ModelFile::open(path).map_err(|e| anyhow!("cannot open {}: {e}", path.display()))
}

/// Why `path` is not a usable model, in one line; an ONNX file (which every
/// command but `convert` is handed by mistake) says how to convert it.
pub fn model_error(path: &Path, e: linrt::Error) -> anyhow::Error {
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
    pub fn options(&self, dtype: linrt::DType) -> crate::onnx::verify::VerifyOptions {
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
