//! ONNX → `.lrt`: map the initializers onto the tensors the config requires, verify
//! the result against tract, and only then write the file (atomically).

use std::fs;
use std::io::Read;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use linrt::format::expected_tensor;
use linrt::{DType, LrtWriter, TensorRole};

use super::graph::OnnxGraph;
use super::infer::{infer, Inferred, Overrides};
use super::verify::{verification_steps, verify, VerifyOptions, VerifyReport};

#[derive(Debug, Clone)]
pub struct ConvertOptions {
    pub overrides: Overrides,
    /// Skip the tract comparison (not recommended: nothing then checks the mapping).
    pub skip_verify: bool,
    /// Tolerances of the check; `VerifyOptions::for_dtype(dtype)` fits the dtype.
    pub verify: VerifyOptions,
    /// Element type of the weight matrices.
    pub dtype: DType,
    /// int8 only: 0 = one scale per output row, else one per this many columns.
    pub int8_block: u32,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            overrides: Overrides::default(),
            skip_verify: false,
            verify: VerifyOptions::default(),
            dtype: DType::F32,
            int8_block: 0,
        }
    }
}

impl ConvertOptions {
    /// Options for `dtype`, with the verification tolerances that dtype must meet.
    pub fn for_dtype(dtype: DType) -> Self {
        ConvertOptions { dtype, verify: VerifyOptions::for_dtype(dtype), ..ConvertOptions::default() }
    }
}

/// The `quantization` metadata value for a dtype and int8 block size.
pub fn quantization_name(dtype: DType, block: u32) -> String {
    match (dtype, block) {
        (DType::I8, 0) => "int8 (per output row)".to_string(),
        (DType::I8, b) => format!("int8 (blocks of {b})"),
        (d, _) => d.name().to_string(),
    }
}

/// What a conversion produced.
pub struct Converted {
    pub inferred: Inferred,
    pub report: Option<VerifyReport>,
    pub file_size: usize,
}

/// Converts `onnx` to `out`. On any failure, including verification, no file is left at `out`.
pub fn convert_file(
    onnx: &Path,
    out: &Path,
    opts: &ConvertOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Converted> {
    progress(&format!("reading {}", onnx.display()));
    let graph = OnnxGraph::load(onnx)?;
    let inferred = infer(&graph, &opts.overrides)?;
    let c = &inferred.config;
    progress(&format!(
        "{} form: {c}; {}-norm, eps {:e} (attention) / {:e} (LayerNorm)",
        inferred.form.name(),
        c.norm_placement.name(),
        c.attention_eps,
        c.layernorm_eps
    ));
    let mut writer = build_writer(&graph, &inferred)?;
    writer.weight_dtype(opts.dtype, opts.int8_block);
    let report = if opts.skip_verify {
        None
    } else {
        let (steps, note) = verification_steps(&graph, opts.verify.steps)?;
        match note {
            Some(why) => progress(&format!("verifying against tract ({steps} steps: {why})")),
            None => progress(&format!("verifying against tract ({steps} steps)")),
        }
        let bytes = writer.to_bytes()?;
        let report = verify(&bytes, onnx, opts.verify)?;
        if !report.passed() {
            bail!("{}", verification_failure(&report, opts.dtype));
        }
        Some(report)
    };
    writer
        .metadata("source.file", onnx.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
        .metadata("source.sha256", sha256_file(onnx)?)
        .metadata("source.form", inferred.form.name())
        .metadata("source.producer", graph.producer_tag())
        .metadata("converter", format!("linrt {}", env!("CARGO_PKG_VERSION")))
        .metadata("quantization", quantization_name(opts.dtype, opts.int8_block));
    if let Some(r) = &report {
        writer.metadata("verification.max_rel_error", format!("{:.3e}", r.max_rel()));
        writer.metadata("verification.steps", r.steps.to_string());
    }
    // Application metadata (a vocabulary, front-end parameters, feature statistics)
    // travels with the weights, unchanged and in key order.
    for (key, value) in graph.metadata.iter().filter(|(k, _)| k.starts_with(APP_METADATA_PREFIX)) {
        writer.metadata(key.as_str(), value.as_str());
    }
    let bytes = writer.to_bytes()?;
    write_atomically(out, &bytes)?;
    Ok(Converted { inferred, report, file_size: bytes.len() })
}

/// ONNX metadata keys with this prefix are copied into the `.lrt` file as they are.
pub const APP_METADATA_PREFIX: &str = "app.";

/// The ONNX initializer name of each `.lrt` tensor.
fn source_name(inf: &Inferred, role: TensorRole, layer: u32) -> Result<String> {
    let block = |b: &Option<String>| b.clone().ok_or_else(|| anyhow!("no tensor for {}", role.name()));
    Ok(match role {
        TensorRole::Embedding => format!("{}weight", block(&inf.embedding)?),
        TensorRole::InputWeight => format!("{}weight", block(&inf.input_projection)?),
        TensorRole::InputBias => format!("{}bias", block(&inf.input_projection)?),
        TensorRole::OutputWeight => format!("{}weight", block(&inf.output_head)?),
        TensorRole::OutputBias => format!("{}bias", block(&inf.output_head)?),
        TensorRole::FinalNormWeight | TensorRole::FinalNormBias => {
            format!("{}{}", inf.prefix, role.name())
        }
        TensorRole::FeatureOmega => super::feature_map::omega_name(&inf.prefix, layer),
        per_layer => format!("{}layers.{layer}.{}", inf.prefix, per_layer.name()),
    })
}

/// The writer of an inferred graph: its weights in linrt's layout (nothing verified
/// against tract, no source metadata yet).
pub fn build_writer(graph: &OnnxGraph, inf: &Inferred) -> Result<LrtWriter> {
    let mut writer = LrtWriter::new(inf.config);
    for index in 0.. {
        let Some(spec) = expected_tensor(&inf.config, index) else {
            break;
        };
        let name = source_name(inf, spec.role, spec.layer)?;
        if !graph.has_initializer(&name) {
            bail!("missing tensor {name}");
        }
        let (mut shape, mut values) = graph.f32_initializer(&name)?;
        if spec.role == TensorRole::FeatureOmega {
            // PyTorch's Ω is [d_query, M]; the file keeps Ωᵀ, rows of the features.
            (shape, values) =
                super::graph::transpose(&shape, &values).ok_or_else(|| anyhow!("tensor {name} is not a matrix"))?;
        }
        let want: Vec<usize> =
            if spec.rank == 1 { vec![spec.dims[0] as usize] } else { spec.dims.iter().map(|&d| d as usize).collect() };
        if shape != want {
            bail!("tensor {name} has shape {shape:?}, expected {want:?}");
        }
        if values.iter().any(|v| !v.is_finite()) {
            bail!("tensor {name} contains NaN or infinite values");
        }
        writer.tensor(spec.role, spec.layer, values);
    }
    Ok(writer)
}

fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut file = fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes next to the target and renames, so a failure never leaves a partial file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| anyhow!("output path {} has no file name", path.display()))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        anyhow!("cannot write {}: {e}", path.display())
    })
}

/// One line on what disagreed, by the criterion it missed. An int8 file that misses
/// only the cosine is quantization error, not a wrong graph: say what to try.
fn verification_failure(report: &VerifyReport, dtype: DType) -> String {
    let failed: Vec<_> = report.outputs.iter().filter(|o| !o.passed).collect();
    let off_scale = failed.iter().any(|o| o.max_rel > report.tolerance);
    let worst = failed
        .iter()
        .map(|o| {
            if o.max_rel > report.tolerance {
                format!("{} max rel {:.3e}", o.name, o.max_rel)
            } else {
                format!("{} min cosine {:.6}", o.name, o.min_cosine)
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let limits = if report.min_cosine > 0.0 {
        format!("tolerance {:.0e}, min cosine {}", report.tolerance, report.min_cosine)
    } else {
        format!("tolerance {:.0e}", report.tolerance)
    };
    let why = if !off_scale && dtype == DType::I8 {
        "int8 rounding moves these further than allowed: a smaller --int8-block, or --min-cosine if the model's own accuracy says the file is good enough"
    } else {
        "the ONNX graph is not the linear transformer its weights describe"
    };
    format!("verification failed: linrt and tract disagree ({worst}; {limits}); {why}; no file written")
}
