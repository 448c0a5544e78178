//! Verification: tract runs the ONNX on deterministic random inputs, linrt runs the
//! `.lrt` on the same inputs, and every output is compared relative to its scale.
//! A conversion that does not match is not a conversion.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use linrt::{InputKind, Inputs, Model, Session, SessionOptions, STATE_HEADER_BYTES};
use tract_onnx::prelude::*;

use super::graph::{OnnxGraph, ValueInfo, ONNX_FLOAT, ONNX_FLOAT16, ONNX_INT32, ONNX_INT64};
use super::guard;
use super::infer::Form;

/// How hard to check.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// Positions fed to both runtimes.
    pub steps: usize,
    /// Largest accepted `max |linrt − tract| / max |tract|` per output.
    pub tolerance: f32,
    /// Smallest accepted cosine similarity per step (quantized models).
    pub min_cosine: f32,
    /// Seed of the random inputs.
    pub seed: u64,
}

impl VerifyOptions {
    /// What each dtype must reach against tract's f32 (the accuracy targets):
    /// f32 1e-4 of the output scale; f16 2e-3; int8 a cosine similarity of 0.999 at
    /// every step, and within 10% of the output scale.
    pub fn for_dtype(dtype: linrt::DType) -> Self {
        let (tolerance, min_cosine) = match dtype {
            linrt::DType::F32 => (1e-4, 0.0),
            linrt::DType::F16 => (2e-3, 0.0),
            linrt::DType::I8 => (0.1, 0.999),
        };
        VerifyOptions { steps: 16, tolerance, min_cosine, seed: 0x5eed }
    }
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions::for_dtype(linrt::DType::F32)
    }
}

/// Error of one compared output.
#[derive(Debug, Clone)]
pub struct OutputError {
    pub name: String,
    pub max_abs: f32,
    /// `max_abs / max |reference|`.
    pub max_rel: f32,
    /// Smallest cosine similarity of one step's output (or of a whole state) with tract's.
    pub min_cosine: f32,
    pub passed: bool,
}

#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub form: Form,
    pub steps: usize,
    /// Why `steps` is not what was asked for (a length the graph fixes).
    pub steps_note: Option<String>,
    pub tolerance: f32,
    pub min_cosine: f32,
    pub outputs: Vec<OutputError>,
}

impl VerifyReport {
    pub fn passed(&self) -> bool {
        self.outputs.iter().all(|o| o.passed)
    }
    /// The worst relative error over all outputs.
    pub fn max_rel(&self) -> f32 {
        self.outputs.iter().map(|o| o.max_rel).fold(0.0, f32::max)
    }
}

/// Deterministic inputs from the runtime's generator: uniform token ids,
/// Box–Muller normals for vectors.
struct Rng(linrt::rng::Rng);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.0.next_f64().max(1e-12), self.0.next_f64());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }
}

enum TestInputs {
    Tokens(Vec<u32>),
    Vectors(Vec<f32>),
}

fn test_inputs(cfg: &linrt::ModelConfig, t: usize, seed: u64) -> TestInputs {
    let mut rng = Rng(linrt::rng::Rng::seeded(seed));
    match cfg.input_kind {
        InputKind::Tokens => TestInputs::Tokens((0..t).map(|_| (rng.next() % cfg.input_dim as u64) as u32).collect()),
        InputKind::Vectors => TestInputs::Vectors((0..t * cfg.input_dim as usize).map(|_| rng.normal()).collect()),
    }
}

/// Seconds per step of tract running a step-form ONNX of the model `cfg`
/// describes, one entry per step (the first `warmup` steps not included).
pub fn tract_step_times(onnx_path: &Path, cfg: &linrt::ModelConfig, steps: usize, warmup: usize) -> Result<Vec<f64>> {
    let graph = OnnxGraph::load(onnx_path)?;
    let inputs = graph.inputs();
    if inputs.len() < 2 {
        bail!("{} is a sequence-form ONNX; per-step timing needs the step form", onnx_path.display());
    }
    let test = test_inputs(cfg, warmup + steps, 1);
    let mut times = Vec::with_capacity(warmup + steps);
    run_tract_steps(&graph, &inputs[0], &inputs, cfg, &test, warmup + steps, Some(&mut times))?;
    Ok(times.split_off(warmup))
}

/// Longest sequence a fixed-length graph may declare: tract's cumsum form holds
/// every prefix state at once (T·H·Dk·Dv floats), and the comparison runs it whole.
pub const MAX_FIXED_LENGTH: usize = 16_384;

/// The positions to verify with: `requested`, unless the graph's data input fixes
/// the sequence length (sequence form), which is then the only length it accepts;
/// with a note saying so. A batch dimension must be 1 or symbolic.
pub fn verification_steps(graph: &OnnxGraph, requested: usize) -> Result<(usize, Option<String>)> {
    if !(1..=4096).contains(&requested) {
        bail!("verification takes 1 to 4096 steps, not {requested}");
    }
    let inputs = graph.inputs();
    let data = inputs.first().ok_or_else(|| anyhow!("the ONNX graph has no inputs"))?;
    if let Some(Some(batch)) = data.dims.first() {
        if *batch != 1 {
            bail!(
                "the ONNX input {} fixes the batch at {batch} (shape {}); linrt runs one stream per session: export with a batch of 1, or make the batch axis dynamic",
                data.name,
                shape_text(&data.dims)
            );
        }
    }
    if inputs.len() > 1 || data.dims.len() < 2 {
        return Ok((requested, None)); // the step form takes one position per call
    }
    match data.dims[1] {
        Some(t) if t > 0 => {
            let t = t as usize;
            if t > MAX_FIXED_LENGTH {
                bail!(
                    "the ONNX input {} fixes the sequence length at {t} positions (shape {}), more than linrt verifies ({MAX_FIXED_LENGTH}): export with a dynamic sequence axis (dynamic_axes={{\"{}\": {{1: \"T\"}}}}), or the step form",
                    data.name,
                    shape_text(&data.dims),
                    data.name
                );
            }
            let note = format!("the ONNX input {} fixes the sequence length at {t}", data.name);
            Ok((t, (t != requested).then_some(note)))
        }
        _ => Ok((requested, None)),
    }
}

fn shape_text(dims: &[Option<i64>]) -> String {
    let d: Vec<String> = dims.iter().map(|d| d.map_or("?".to_string(), |v| v.to_string())).collect();
    format!("[{}]", d.join(", "))
}

/// Runs both runtimes on the same inputs and compares.
pub fn verify(lrt: &[u8], onnx_path: &Path, opts: VerifyOptions) -> Result<VerifyReport> {
    let bytes = linrt::AlignedBytes::from_slice(lrt);
    let model = bytes.model()?;
    let cfg = *model.config();
    let graph = OnnxGraph::load(onnx_path)?;
    let (t, steps_note) = verification_steps(&graph, opts.steps)?;
    let inputs = graph.inputs();
    let form = if inputs.len() > 1 { Form::Step } else { Form::Sequence };
    let data = inputs.first().ok_or_else(|| anyhow!("the ONNX graph has no inputs"))?;

    let test = test_inputs(&cfg, t, opts.seed);

    let d_out = cfg.output_dim();
    let (reference_y, reference_states) = match form {
        Form::Step => run_tract_steps(&graph, data, &inputs, &cfg, &test, t, None)?,
        Form::Sequence => (run_tract_sequence(&graph, data, &cfg, &test, t)?, Vec::new()),
    };
    if reference_y.len() != t * d_out {
        bail!(
            "the ONNX output has {} values for {t} steps, the model expects {t} × {d_out}: the graph is not the model the weights describe",
            reference_y.len()
        );
    }

    let (stepped, causal, state) = run_linrt(&model, &test, t)?;
    let mut outputs = vec![
        compare("y", &stepped, &reference_y, d_out, &opts),
        compare("y (causal form)", &causal, &reference_y, d_out, &opts),
    ];
    if form == Form::Step {
        let per_layer = cfg.state_floats()? / cfg.n_layers as usize;
        let s_len = cfg.feature_width() * cfg.d_value as usize;
        for (layer, chunk) in state.chunks_exact(per_layer).enumerate() {
            let (s, z) = chunk.split_at(s_len);
            let (rs, rz) = (&reference_states[2 * layer], &reference_states[2 * layer + 1]);
            outputs.push(compare(&format!("S_{layer}"), s, rs, s.len(), &opts));
            outputs.push(compare(&format!("z_{layer}"), z, rz, z.len(), &opts));
        }
    }
    Ok(VerifyReport { form, steps: t, steps_note, tolerance: opts.tolerance, min_cosine: opts.min_cosine, outputs })
}

fn compare(name: &str, got: &[f32], want: &[f32], width: usize, opts: &VerifyOptions) -> OutputError {
    let d = crate::compare::distance(got, want);
    let min_cosine = crate::compare::min_cosine(got, want, width);
    OutputError {
        name: name.to_string(),
        max_abs: d.max_abs,
        max_rel: d.max_rel,
        min_cosine,
        passed: d.max_rel <= opts.tolerance && min_cosine >= opts.min_cosine,
    }
}

/// linrt stepping, linrt's causal form over the whole sequence, and the final state.
fn run_linrt(model: &Model, test: &TestInputs, t: usize) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    let cfg = model.config();
    let d_out = cfg.output_dim();
    let e = |e: linrt::Error| anyhow!("linrt: {e}");
    let opts = SessionOptions { max_chunk: t, ..SessionOptions::default() };
    let mut arena = crate::memory::zeroed(model.arena_bytes(opts).map_err(e)?, "the session's arena")?;
    let mut session = Session::new(model, &mut arena, opts).map_err(e)?;
    let mut stepped = vec![0f32; t * d_out];
    let width = cfg.input_width();
    for (p, out) in stepped.chunks_exact_mut(d_out).enumerate() {
        let input = match test {
            TestInputs::Tokens(ids) => linrt::Input::Token(ids[p]),
            TestInputs::Vectors(v) => linrt::Input::Vector(&v[p * width..(p + 1) * width]),
        };
        session.step(input, out).map_err(e)?;
    }
    let mut saved = vec![0u8; session.state_bytes()];
    session.save_state(&mut saved).map_err(e)?;
    let state =
        saved[STATE_HEADER_BYTES..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    session.reset();
    let mut causal = vec![0f32; t * d_out];
    let inputs = match test {
        TestInputs::Tokens(ids) => Inputs::Tokens(ids),
        TestInputs::Vectors(v) => Inputs::Vectors(v),
    };
    session.step_chunk(inputs, &mut causal).map_err(e)?;
    Ok((stepped, causal, state))
}

/// The data input as a tract tensor of `shape`, in the element type the graph declares.
fn data_tensor(
    info: &ValueInfo,
    shape: &[usize],
    test: &TestInputs,
    range: std::ops::Range<usize>,
    width: usize,
) -> Result<Tensor> {
    let tensor = match (test, info.elem_type) {
        (TestInputs::Tokens(ids), ONNX_INT64) => {
            Tensor::from_shape(shape, &ids[range].iter().map(|&i| i as i64).collect::<Vec<_>>())?
        }
        (TestInputs::Tokens(ids), ONNX_INT32) => {
            Tensor::from_shape(shape, &ids[range].iter().map(|&i| i as i32).collect::<Vec<_>>())?
        }
        // float16 graphs run in f32 (see `plan`), so they take f32 too.
        (TestInputs::Vectors(v), ONNX_FLOAT | ONNX_FLOAT16) => {
            Tensor::from_shape(shape, &v[range.start * width..range.end * width])?
        }
        _ => bail!(
            "the ONNX input {} has element type {}, which does not match the model's input kind",
            info.name,
            info.elem_type
        ),
    };
    Ok(tensor)
}

/// Shape of the data input for `t` positions: the graph's rank, batch 1.
fn data_shape(info: &ValueInfo, cfg: &linrt::ModelConfig, t: usize, form: Form) -> Vec<usize> {
    let width = cfg.input_width();
    let tokens = cfg.input_kind == InputKind::Tokens;
    match (form, info.dims.len(), tokens) {
        (Form::Step, 1, true) => vec![1],
        (Form::Step, _, true) => vec![1, 1],
        (Form::Step, 3, false) => vec![1, 1, width],
        (Form::Step, _, false) => vec![1, width],
        (Form::Sequence, _, true) => vec![1, t],
        (Form::Sequence, _, false) => vec![1, t, width],
    }
}

fn plan(graph: &OnnxGraph, facts: Vec<(DatumType, Vec<usize>)>) -> Result<std::sync::Arc<TypedRunnableModel>> {
    // A float16 export runs widened to f32 (see `OnnxGraph::widened_to_f32`).
    let widened = if graph.has_float16() { Some(graph.widened_to_f32()?) } else { None };
    let onnx_path = graph.path.as_path();
    // The inputs get concrete shapes below; shapes the exporter wrote for other values
    // in terms of its own symbols (dynamo's `T`) would only conflict with them.
    let onnx = tract_onnx::onnx().with_ignore_value_info(true).with_ignore_output_shapes(true);
    let planned = guard("tract could not load the ONNX", || {
        let mut model = match &widened {
            Some(proto) => {
                let dir = onnx_path.parent().and_then(|p| p.to_str());
                let parsed = onnx.parse(proto, dir)?;
                if !parsed.unresolved_inputs.is_empty() {
                    anyhow::bail!("unresolved inputs {:?}", parsed.unresolved_inputs);
                }
                parsed.model
            }
            None => onnx.model_for_path(onnx_path)?,
        };
        for (i, (dt, shape)) in facts.into_iter().enumerate() {
            model.set_input_fact(i, InferenceFact::dt_shape(dt, shape))?;
        }
        model.into_optimized()?.into_runnable()
    });
    planned.map_err(|e| anyhow!("{}", explain_tract_failure(&format!("{e:#}"))))
}

/// One run of a planned graph, a failure explained as `explain_tract_failure` does.
fn run_plan(runnable: &std::sync::Arc<TypedRunnableModel>, args: TVec<TValue>) -> Result<TVec<TValue>> {
    guard("tract failed running the ONNX", || runnable.run(args))
        .map_err(|e| anyhow!("{}", explain_tract_failure(&format!("{e:#}"))))
}

/// tract's failure as one line in terms of the user's model: the node, what is wrong
/// with it (an op tract does not implement, shapes that do not fit), what to try,
/// then tract's own words.
pub fn explain_tract_failure(message: &str) -> String {
    let message = message.replace('\n', " ");
    // tract names nodes as `node #74 "/layers.0/Relu" Relu`.
    let node = message.split_once("node #").and_then(|(_, rest)| {
        let (_, after) = rest.split_once('"')?;
        let (name, after) = after.split_once('"')?;
        let op = after.split_whitespace().next().unwrap_or("").trim_end_matches(':');
        Some((name.to_string(), op.to_string()))
    });
    let Some((name, op)) = node else {
        return format!("{message}; if the export fixed a length or a batch, export with dynamic axes");
    };
    if let Some(unknown) = op.strip_prefix("Unimplemented(").and_then(|o| o.strip_suffix(')')) {
        return format!(
            "tract cannot run node \"{name}\": it does not implement the op {unknown}; export with standard ONNX ops \
             (another opset, or without custom ops) ({message})"
        );
    }
    let shapes = ["volume mismatch", "unify", "Unifying", "shape", "Shape"].iter().any(|s| message.contains(s));
    if shapes {
        return format!(
            "tract cannot type node \"{name}\" ({op}): the shapes it is given do not fit it, often because the \
             export fixed a length or a batch: export with dynamic axes (dynamic_axes={{\"x\": {{1: \"T\"}}}}), \
             or verify at the declared length ({message})"
        );
    }
    format!("tract cannot run node \"{name}\" ({op}) ({message})")
}

fn datum(elem_type: i32) -> DatumType {
    match elem_type {
        ONNX_INT64 => DatumType::I64,
        ONNX_INT32 => DatumType::I32,
        _ => DatumType::F32,
    }
}

fn flat(v: &TValue) -> Result<Vec<f32>> {
    super::graph::tensor_to_f32(v).context("tract output is not numeric")
}

fn run_tract_sequence(
    graph: &OnnxGraph,
    data: &ValueInfo,
    cfg: &linrt::ModelConfig,
    test: &TestInputs,
    t: usize,
) -> Result<Vec<f32>> {
    let shape = data_shape(data, cfg, t, Form::Sequence);
    let runnable = plan(graph, vec![(datum(data.elem_type), shape.clone())])?;
    let x = data_tensor(data, &shape, test, 0..t, cfg.input_width())?;
    let out = run_plan(&runnable, tvec![x.into_tvalue()])?;
    flat(out.first().ok_or_else(|| anyhow!("the ONNX graph has no outputs"))?)
}

/// Steps tract `t` times, feeding each step's state outputs back as inputs.
/// Returns all `y` and the final states.
fn run_tract_steps(
    graph: &OnnxGraph,
    data: &ValueInfo,
    inputs: &[ValueInfo],
    cfg: &linrt::ModelConfig,
    test: &TestInputs,
    t: usize,
    mut times: Option<&mut Vec<f64>>,
) -> Result<(Vec<f32>, Vec<Vec<f32>>)> {
    // S: [N, H, F, Dv], z: [N, H, F], F = features per head (d_query for elu+1).
    let (h, dk, dv) = (cfg.n_heads as usize, cfg.features_per_head() as usize, cfg.d_value as usize);
    let layers = cfg.n_layers as usize;
    if inputs.len() != 1 + 2 * layers {
        bail!(
            "the step-form ONNX has {} inputs; a {layers}-layer model needs 1 + 2×{layers} (x, then S and z per layer)",
            inputs.len()
        );
    }
    let shape = data_shape(data, cfg, 1, Form::Step);
    let mut facts = vec![(datum(data.elem_type), shape.clone())];
    let mut states: Vec<Tensor> = Vec::new();
    for layer in 0..layers {
        for (dims, name) in [(vec![1, h, dk, dv], "S"), (vec![1, h, dk], "z")] {
            let info = &inputs[1 + 2 * layer + states.len() % 2];
            let declared: Vec<Option<i64>> = info.dims.iter().skip(1).copied().collect();
            let want: Vec<Option<i64>> = dims.iter().skip(1).map(|&d| Some(d as i64)).collect();
            if declared.iter().zip(&want).any(|(a, b)| a.is_some() && a != b) || declared.len() != want.len() {
                bail!(
                    "state input {} has shape {:?}, expected {name} of layer {layer} as [N, {:?}]",
                    info.name,
                    info.dims,
                    &dims[1..]
                );
            }
            facts.push((datum(info.elem_type), dims.clone()));
            states.push(Tensor::zero::<f32>(&dims)?);
        }
    }
    let runnable = plan(graph, facts)?;
    let mut ys = Vec::new();
    for p in 0..t {
        let mut args: TVec<TValue> = tvec![data_tensor(data, &shape, test, p..p + 1, cfg.input_width())?.into_tvalue()];
        args.extend(states.iter().map(|s| s.clone().into_tvalue()));
        let start = std::time::Instant::now();
        let out = run_plan(&runnable, args)?;
        if let Some(times) = times.as_mut() {
            times.push(start.elapsed().as_secs_f64());
        }
        if out.len() != 1 + 2 * layers {
            bail!("the step-form ONNX has {} outputs; expected y and S, z per layer ({})", out.len(), 1 + 2 * layers);
        }
        ys.extend(flat(&out[0])?);
        states = out[1..].iter().map(|v| v.clone().into_tensor()).collect();
    }
    let finals = states.iter().map(super::graph::tensor_to_f32).collect::<Result<_>>()?;
    Ok((ys, finals))
}
