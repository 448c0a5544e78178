//! Hyperparameters of a linear transformer found in an ONNX file. Each value can come
//! from three places: the exporter's `linrt.*` metadata, a command-line flag, and the
//! graph itself (weight shapes, state input shapes, reshape constants, ops, attributes).
//! Sources that are present must agree; a value with no source is an error naming the
//! flag and the metadata key that would supply it.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::str::FromStr;

use anyhow::{anyhow, bail, Result};
use linrt::{Activation, FeatureMap, FeatureParams, InputKind, ModelConfig, NormPlacement, OutputKind, Positional};

use super::graph::{OnnxGraph, ValueInfo, ONNX_FLOAT, ONNX_FLOAT16, ONNX_INT32, ONNX_INT64};

/// Values given on the command line; each overrides nothing, it must agree.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub n_heads: Option<u32>,
    pub activation: Option<Activation>,
    pub norm_placement: Option<NormPlacement>,
    pub attention_eps: Option<f32>,
    pub layernorm_eps: Option<f32>,
    /// Prefix of the encoder's parameter names, e.g. `encoder.`.
    pub prefix: Option<String>,
    /// Module names of the input and output blocks, when not the conventional ones.
    pub embedding: Option<String>,
    pub input_projection: Option<String>,
    pub output_head: Option<String>,
    pub positional: Option<Positional>,
    /// Infer everything from the graph and the flags, ignoring `linrt.*` metadata.
    pub ignore_metadata: bool,
}

/// The two export forms the converter accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// One recurrent step; per-layer state tensors as extra inputs and outputs.
    Step,
    /// The whole causal sequence `[N, T, …]` (cumsum form).
    Sequence,
}

impl Form {
    pub fn name(self) -> &'static str {
        match self {
            Form::Step => "step",
            Form::Sequence => "sequence",
        }
    }
}

/// Everything the converter needs to map the ONNX onto a `.lrt` model.
#[derive(Debug, Clone)]
pub struct Inferred {
    pub config: ModelConfig,
    pub form: Form,
    /// Prefix of the encoder parameters (`layers.0…`).
    pub prefix: String,
    /// Full parameter-name prefixes of the input and output blocks (`embedding.`).
    pub embedding: Option<String>,
    pub input_projection: Option<String>,
    pub output_head: Option<String>,
    pub data_input: ValueInfo,
}

const QUERY_SUFFIX: &str = "layers.0.attention.query_projection.weight";
const QUERY_BIAS_SUFFIX: &str = "layers.0.attention.query_projection.bias";
const EMBEDDING_NAMES: &[&str] = &["embedding", "embed", "token_embedding", "tok_embeddings"];
const INPUT_PROJECTION_NAMES: &[&str] = &["input_projection", "input_proj"];
const OUTPUT_HEAD_NAMES: &[&str] = &["output_projection", "head", "lm_head", "output"];

/// One hyperparameter gathered from its sources.
struct Field<'k, T> {
    key: &'k str,
    flag: &'k str,
    values: Vec<(&'static str, T)>,
}

impl<'k, T: PartialEq + Display + Copy> Field<'k, T> {
    fn new(key: &'k str, flag: &'k str) -> Self {
        Field { key, flag, values: Vec::new() }
    }
    fn add(mut self, source: &'static str, value: Option<T>) -> Self {
        if let Some(v) = value {
            self.values.push((source, v));
        }
        self
    }
    /// The agreed value, or an error naming the key.
    fn resolve(self) -> Result<T> {
        let Some(&(first_src, first)) = self.values.first() else {
            if self.flag.is_empty() {
                bail!(
                    "cannot determine {}: the graph does not show it; write ONNX metadata key linrt.{}",
                    self.key,
                    self.key
                );
            }
            bail!("cannot determine {}: pass {} or write ONNX metadata key linrt.{}", self.key, self.flag, self.key);
        };
        if let Some((src, v)) = self.values.iter().find(|(_, v)| *v != first) {
            bail!("contradictory {}: {first_src} says {first}, {src} says {v}", self.key);
        }
        Ok(first)
    }
}

/// A metadata value parsed, or an error naming the key.
fn meta<T: FromStr>(md: &BTreeMap<String, String>, key: &str) -> Result<Option<T>> {
    match md.get(&format!("linrt.{key}")) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| anyhow!("metadata key linrt.{key} has unusable value {v:?}")),
    }
}

fn meta_bool(md: &BTreeMap<String, String>, key: &str) -> Result<Option<bool>> {
    match md.get(&format!("linrt.{key}")).map(String::as_str) {
        None => Ok(None),
        Some("true" | "True" | "1") => Ok(Some(true)),
        Some("false" | "False" | "0") => Ok(Some(false)),
        Some(v) => bail!("metadata key linrt.{key} has unusable value {v:?} (true or false)"),
    }
}

pub fn parse_activation(s: &str) -> Result<Activation> {
    match s {
        "relu" => Ok(Activation::Relu),
        "gelu" => Ok(Activation::Gelu),
        _ => bail!("unknown activation {s:?} (relu or gelu)"),
    }
}

pub fn parse_norm(s: &str) -> Result<NormPlacement> {
    match s {
        "post" => Ok(NormPlacement::Post),
        "pre" => Ok(NormPlacement::Pre),
        _ => bail!("unknown norm placement {s:?} (post or pre)"),
    }
}

pub fn parse_positional(s: &str) -> Result<Positional> {
    match s {
        "none" => Ok(Positional::None),
        "sinusoidal" => Ok(Positional::Sinusoidal),
        _ => bail!("unknown positional encoding {s:?} (none or sinusoidal)"),
    }
}

/// Name of the exporter's position table, `[max_len, d_model]`, in sequence-form ONNX.
pub const POSITIONAL_TABLE: &str = "positional_encoding";

/// Wraps enums so `Field` can compare and print them.
#[derive(Clone, Copy, PartialEq)]
struct Named<T>(T, &'static str);
impl<T> Display for Named<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.1)
    }
}
fn named_act(a: Activation) -> Named<Activation> {
    Named(a, a.name())
}
fn named_norm(n: NormPlacement) -> Named<NormPlacement> {
    Named(n, n.name())
}

/// Everything the converter needs to know about an ONNX graph, from its metadata,
/// the flags and the graph itself; any two sources that disagree are an error.
pub fn infer(g: &OnnxGraph, o: &Overrides) -> Result<Inferred> {
    let empty = BTreeMap::new();
    let md = if o.ignore_metadata { &empty } else { &g.metadata };
    let s = Sources { g, md, o, prefix: encoder_prefix(g, md, o)? };
    let widths = s.widths()?;
    let inputs = g.inputs();
    let data_input = inputs.first().cloned().ok_or_else(|| anyhow!("the graph has no inputs"))?;
    let form = s.form(&inputs)?;
    let (n_heads, d_query, d_value) = s.heads(form, &inputs, &widths)?;
    let activation = s.activation()?;
    let norm_placement = s.norm_placement()?;
    let (feature_map, feature_dim, feature_params) = feature_map(g, md, &s.prefix)?;
    let (layernorm_eps, attention_eps) = s.eps()?;
    let final_norm = s.final_norm()?;
    let input = s.input_block(&data_input, widths.d_model)?;
    let (output_head, output_dim) = s.output_block(widths.d_model)?;
    let positional = s.positional(form)?;

    let narrow = |v: usize, what: &str| u32::try_from(v).map_err(|_| anyhow!("{what} {v} is too large"));
    let config = ModelConfig {
        d_model: narrow(widths.d_model, "d_model")?,
        n_layers: widths.n_layers,
        n_heads,
        d_query,
        d_value,
        d_ff: narrow(widths.ff, "d_ff")?,
        activation,
        norm_placement,
        final_norm,
        feature_map,
        feature_dim,
        feature_params,
        attention_eps,
        layernorm_eps,
        input_kind: input.kind,
        positional,
        input_dim: narrow(input.dim, "input_dim")?,
        input_projection: input.projection.is_some(),
        output_kind: if output_head.is_some() { OutputKind::Linear } else { OutputKind::Hidden },
        output_dim: narrow(output_dim, "output_dim")?,
    };
    config.validate()?;
    metadata_agrees(md, &config)?;
    let Sources { prefix, .. } = s;
    Ok(Inferred {
        config,
        form,
        prefix,
        embedding: input.embedding,
        input_projection: input.projection,
        output_head,
        data_input,
    })
}

/// Where the encoder's parameters live: by the query weight's name, or its bias's
/// where constant folding renamed the weight; a flag or metadata may choose.
fn encoder_prefix(g: &OnnxGraph, md: &BTreeMap<String, String>, o: &Overrides) -> Result<String> {
    let mut found: Vec<String> = g
        .initializer_names()
        .filter_map(|n| n.strip_suffix(QUERY_SUFFIX).or_else(|| n.strip_suffix(QUERY_BIAS_SUFFIX)).map(str::to_string))
        .filter(|p| p.is_empty() || p.ends_with('.'))
        .collect();
    found.sort();
    found.dedup();
    let meta_prefix: Option<String> = md.get("linrt.prefix").cloned();
    Ok(match (o.prefix.clone().or(meta_prefix), found.as_slice()) {
        (Some(p), _) if found.contains(&p) => p,
        (Some(p), _) => bail!("missing tensor {p}{QUERY_SUFFIX} (prefix {p:?} from flag or metadata)"),
        (None, [one]) => one.clone(),
        (None, []) => bail!(
            "missing tensor {QUERY_SUFFIX}: no initializer with fast-transformers parameter names; \
             not a linear transformer, or the exporter renamed the weights (export with do_constant_folding=False)"
        ),
        (None, many) => bail!("several encoders in one file (prefixes {many:?}); choose one with --prefix"),
    })
}

/// Widths read off layer 0's weights, and the layer count.
struct Widths {
    d_model: usize,
    n_layers: u32,
    /// Rows of the query and value projections: heads × their widths.
    query_rows: usize,
    value_rows: usize,
    ff: usize,
}

/// The input block the graph has: its kind, its width, and which tensor carries it.
struct InputBlock {
    kind: InputKind,
    dim: usize,
    embedding: Option<String>,
    projection: Option<String>,
}

/// The three sources of every value: the graph, its metadata, the flags.
struct Sources<'g> {
    g: &'g OnnxGraph,
    md: &'g BTreeMap<String, String>,
    o: &'g Overrides,
    prefix: String,
}

impl Sources<'_> {
    fn name(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    fn matrix(&self, n: &str) -> Result<[usize; 2]> {
        let dims = self.g.initializer_dims(n).ok_or_else(|| anyhow!("missing tensor {n}"))?;
        match dims.as_slice() {
            [r, c] => Ok([*r, *c]),
            other => bail!("tensor {n} has shape {other:?}, expected a matrix"),
        }
    }

    fn widths(&self) -> Result<Widths> {
        let q = self.matrix(&self.name("layers.0.attention.query_projection.weight"))?;
        let vw = self.matrix(&self.name("layers.0.attention.value_projection.weight"))?;
        let ff = self.matrix(&self.name("layers.0.linear1.weight"))?;
        let mut n_layers = 0u32;
        while self.g.has_initializer(&self.name(&format!("layers.{n_layers}.attention.query_projection.weight"))) {
            n_layers += 1;
        }
        Ok(Widths { d_model: q[1], n_layers, query_rows: q[0], value_rows: vw[0], ff: ff[0] })
    }

    /// Step form (state inputs) or sequence form; the metadata must agree.
    fn form(&self, inputs: &[ValueInfo]) -> Result<Form> {
        let from_graph = if inputs.len() > 1 { Form::Step } else { Form::Sequence };
        match self.md.get("linrt.form").map(String::as_str) {
            None => Ok(from_graph),
            Some(f) if f == from_graph.name() => Ok(from_graph),
            Some(f) => {
                bail!("contradictory form: metadata linrt.form says {f}, the graph's inputs say {}", from_graph.name())
            }
        }
    }

    /// Heads, and the per-head query and value widths they imply.
    fn heads(&self, form: Form, inputs: &[ValueInfo], w: &Widths) -> Result<(u32, u32, u32)> {
        let n_heads = Field::new("n_heads", "--n-heads")
            .add("metadata", meta::<u32>(self.md, "n_heads")?)
            .add("--n-heads", self.o.n_heads)
            .add("the graph", heads_from_graph(self.g, form, inputs, &self.prefix, w.query_rows)?)
            .resolve()?;
        let h = n_heads as usize;
        if h == 0 || !w.query_rows.is_multiple_of(h) || !w.value_rows.is_multiple_of(h) {
            bail!(
                "n_heads {n_heads} does not divide the query width {} and value width {}",
                w.query_rows,
                w.value_rows
            );
        }
        Ok((n_heads, (w.query_rows / n_heads as usize) as u32, (w.value_rows / n_heads as usize) as u32))
    }

    fn activation(&self) -> Result<Activation> {
        let ops = |op: &str| self.g.nodes().iter().any(|n| n.op_type == op);
        let from_graph = if ops("Erf") || ops("Gelu") {
            Some(Activation::Gelu)
        } else if ops("Relu") {
            Some(Activation::Relu)
        } else {
            None
        };
        let from_meta = match self.md.get("linrt.activation") {
            Some(s) => Some(parse_activation(s).map_err(|e| anyhow!("metadata key linrt.activation: {e}"))?),
            None => None,
        };
        Ok(Field::new("activation", "--activation")
            .add("metadata", from_meta.map(named_act))
            .add("--activation", self.o.activation.map(named_act))
            .add("the graph", from_graph.map(named_act))
            .resolve()?
            .0)
    }

    fn norm_placement(&self) -> Result<NormPlacement> {
        let from_meta = match self.md.get("linrt.norm_placement") {
            Some(s) => Some(parse_norm(s).map_err(|e| anyhow!("metadata key linrt.norm_placement: {e}"))?),
            None => None,
        };
        Ok(Field::new("norm_placement", "--norm")
            .add("metadata", from_meta.map(named_norm))
            .add("--norm", self.o.norm_placement.map(named_norm))
            .add("the graph", norm_from_graph(self.g, &self.prefix).map(named_norm))
            .resolve()?
            .0)
    }

    /// The LayerNorm eps and the attention normaliser's eps.
    fn eps(&self) -> Result<(f32, f32)> {
        let layernorm_eps = Field::new("layernorm_eps", "--layernorm-eps")
            .add("metadata", meta::<f32>(self.md, "layernorm_eps")?)
            .add("--layernorm-eps", self.o.layernorm_eps)
            .add("the graph", single("LayerNormalization epsilon", layer_norm_eps(self.g))?)
            .resolve()?;
        let attention_eps = Field::new("attention_eps", "--attention-eps")
            .add("metadata", meta::<f32>(self.md, "attention_eps")?)
            .add("--attention-eps", self.o.attention_eps)
            .add("the graph", single("attention normaliser eps", normaliser_eps(self.g))?)
            .resolve()?;
        Ok((layernorm_eps, attention_eps))
    }

    /// Whether the encoder ends in a norm: its weights say; the metadata must agree.
    fn final_norm(&self) -> Result<bool> {
        let in_graph = self.g.has_initializer(&self.name("norm.weight"));
        Field::new("final_norm", "(weights)")
            .add("metadata", meta_bool(self.md, "final_norm")?)
            .add("the graph", Some(in_graph))
            .resolve()?;
        Ok(in_graph)
    }

    /// The module (`name.`) whose weight exists: the flag's, else a conventional name.
    fn block(&self, flag: &Option<String>, conventional: &[&str]) -> Option<String> {
        let candidates: Vec<String> = match flag {
            Some(n) => vec![format!("{}.", n.trim_end_matches('.'))],
            None => conventional.iter().flat_map(|c| [format!("{c}."), format!("{}{c}.", self.prefix)]).collect(),
        };
        candidates.into_iter().find(|c| self.g.has_initializer(&format!("{c}weight")))
    }

    fn input_block(&self, data_input: &ValueInfo, d_model: usize) -> Result<InputBlock> {
        let tokens_in = matches!(data_input.elem_type, ONNX_INT64 | ONNX_INT32);
        if !tokens_in && !matches!(data_input.elem_type, ONNX_FLOAT | ONNX_FLOAT16) {
            bail!(
                "input {} has ONNX element type {}; expected float32 or float16 vectors, or int64 token ids",
                data_input.name,
                data_input.elem_type
            );
        }
        let embedding = if tokens_in { self.block(&self.o.embedding, EMBEDDING_NAMES) } else { None };
        let projection = if tokens_in { None } else { self.block(&self.o.input_projection, INPUT_PROJECTION_NAMES) };
        let (kind, dim) = if tokens_in {
            let e = embedding.clone().ok_or_else(|| {
                anyhow!("input {} takes token ids but there is no embedding tensor (embedding.weight); name it with --embedding", data_input.name)
            })?;
            let [vocab, width] = self.matrix(&format!("{e}weight"))?;
            if width != d_model {
                bail!("tensor {e}weight has shape [{vocab}, {width}], expected [vocab, {d_model}]");
            }
            (InputKind::Tokens, vocab)
        } else if let Some(p) = &projection {
            let [rows, cols] = self.matrix(&format!("{p}weight"))?;
            if rows != d_model {
                bail!("tensor {p}weight has shape [{rows}, {cols}], expected [{d_model}, d_in]");
            }
            (InputKind::Vectors, cols)
        } else {
            (InputKind::Vectors, d_model)
        };
        Ok(InputBlock { kind, dim, embedding, projection })
    }

    /// The output head's module and its width (None, 0: the hidden state is the output).
    fn output_block(&self, d_model: usize) -> Result<(Option<String>, usize)> {
        let head = self.block(&self.o.output_head, OUTPUT_HEAD_NAMES);
        let dim = match &head {
            Some(h) => {
                let [rows, cols] = self.matrix(&format!("{h}weight"))?;
                if cols != d_model {
                    bail!("tensor {h}weight has shape [{rows}, {cols}], expected [d_out, {d_model}]");
                }
                rows
            }
            None => 0,
        };
        Ok((head, dim))
    }

    fn positional(&self, form: Form) -> Result<Positional> {
        let from_meta = match self.md.get("linrt.positional") {
            Some(s) => Some(parse_positional(s).map_err(|e| anyhow!("metadata key linrt.positional: {e}"))?),
            None => None,
        };
        let table_in_graph = self.g.has_initializer(POSITIONAL_TABLE).then_some(Positional::Sinusoidal);
        let field = Field::new("positional", "--positional")
            .add("metadata", from_meta.map(|p| Named(p, p.name())))
            .add("--positional", self.o.positional.map(|p| Named(p, p.name())))
            .add("the graph", table_in_graph.map(|p| Named(p, p.name())));
        let positional = if field.values.is_empty() {
            // No source at all: fast-transformers' encoders add no position encoding.
            Positional::None
        } else {
            field.resolve()?.0
        };
        if positional != Positional::None && form == Form::Step {
            bail!(
                "a step-form ONNX has no position input; export the sequence form for a model with a {} position encoding",
                positional.name()
            );
        }
        Ok(positional)
    }
}

/// The widths the metadata states must be the weights'.
fn metadata_agrees(md: &BTreeMap<String, String>, config: &ModelConfig) -> Result<()> {
    for (key, value) in [
        ("d_model", config.d_model),
        ("n_layers", config.n_layers),
        ("d_query", config.d_query),
        ("d_value", config.d_value),
        ("d_ff", config.d_ff),
        ("input_dim", config.input_dim),
        ("output_dim", config.output_dim),
    ] {
        if let Some(m) = meta::<u32>(md, key)? {
            if m != value {
                bail!("contradictory {key}: metadata says {m}, the weights say {value}");
            }
        }
    }
    Ok(())
}

/// One value if every occurrence agrees, None if there is none.
fn single(what: &str, values: Vec<f32>) -> Result<Option<f32>> {
    match values.first() {
        None => Ok(None),
        Some(&v) if values.iter().all(|&x| x == v) => Ok(Some(v)),
        Some(_) => bail!("contradictory {what}: the graph uses several values {values:?}"),
    }
}

/// Head count from the state inputs (`S: [N, H, Dk, Dv]`, `z: [N, H, Dk]`) in step
/// form, or in sequence form from the reshape of layer 0's query projection to
/// `[N, T, H, Dk]` (`Dk` written -1 by TorchScript, `T` -1 by dynamo), else from every
/// `[N, T, H, -1]` reshape.
fn heads_from_graph(
    g: &OnnxGraph,
    form: Form,
    inputs: &[ValueInfo],
    prefix: &str,
    query_width: usize,
) -> Result<Option<u32>> {
    let mut found: Vec<u32> = Vec::new();
    match form {
        Form::Step => {
            for s in inputs.iter().skip(1) {
                if let Some(Some(h)) = s.dims.get(1) {
                    found.push(*h as u32);
                }
            }
        }
        Form::Sequence => {
            let heads_of = |n: &tract_onnx::pb::NodeProto| -> Option<u32> {
                let shape = shape_constant(g, n.input.get(1)?)?;
                match shape.as_slice() {
                    [_, _, Some(h), Some(d)]
                        if *h > 0 && (*d == -1 || h.checked_mul(*d).is_some_and(|w| w as usize == query_width)) =>
                    {
                        Some(*h as u32)
                    }
                    _ => None,
                }
            };
            let query = query_projection(g, prefix).and_then(|(n, _)| n.output.first().cloned());
            // The projection's output, past its bias Add, goes into the head reshape.
            let reshape = query.and_then(|q| {
                let mut value = q;
                for _ in 0..4 {
                    let next = g.consumers(&value);
                    if let Some(r) = next.iter().find(|n| n.op_type == "Reshape") {
                        return Some((*r).clone());
                    }
                    let add =
                        next.iter().find(|n| n.op_type == "Add" && n.input.iter().any(|i| g.has_initializer(i)))?;
                    value = add.output.first()?.clone();
                }
                None
            });
            if let Some(h) = reshape.as_ref().and_then(heads_of) {
                found.push(h);
            } else {
                for n in g.nodes().iter().filter(|n| n.op_type == "Reshape") {
                    if let Some([_, _, Some(h), Some(-1)]) =
                        n.input.get(1).and_then(|s| shape_constant(g, s)).as_deref()
                    {
                        if *h > 0 {
                            found.push(*h as u32);
                        }
                    }
                }
            }
        }
    }
    found.sort_unstable();
    found.dedup();
    match found.as_slice() {
        [] => Ok(None),
        [h] => Ok(Some(*h)),
        many => bail!("contradictory n_heads: the graph suggests {many:?}; pass --n-heads"),
    }
}

/// A reshape target assembled from constants; entries computed at run time are None.
fn shape_constant(g: &OnnxGraph, value: &str) -> Option<Vec<Option<i64>>> {
    if let Some(c) = g.constant_ints(value) {
        return Some(c.into_iter().map(Some).collect());
    }
    let node = g.producer(value)?;
    if node.op_type != "Concat" {
        return None;
    }
    let mut out = Vec::new();
    for part in &node.input {
        match constant_through_unsqueeze(g, part) {
            Some(c) => out.extend(c.into_iter().map(Some)),
            None => out.push(None),
        }
    }
    Some(out)
}

fn constant_through_unsqueeze(g: &OnnxGraph, value: &str) -> Option<Vec<i64>> {
    if let Some(c) = g.constant_ints(value) {
        return Some(c);
    }
    let node = g.producer(value)?;
    if node.op_type == "Unsqueeze" {
        return g.constant_ints(node.input.first()?);
    }
    None
}

/// Epsilon attributes of all LayerNormalization nodes (ONNX default 1e-5). Before
/// opset 17 exporters write LayerNorm out, `(x − mean) / sqrt(mean((x − mean)²) + eps)`:
/// then the constant added before each `Sqrt` of a `ReduceMean`.
fn layer_norm_eps(g: &OnnxGraph) -> Vec<f32> {
    let fused: Vec<f32> = g
        .nodes()
        .iter()
        .filter(|n| n.op_type == "LayerNormalization")
        .map(|n| n.attribute.iter().find(|a| a.name == "epsilon").map(|a| a.f).unwrap_or(1e-5))
        .collect();
    if !fused.is_empty() {
        return fused;
    }
    let mut written_out = Vec::new();
    for sqrt in g.nodes().iter().filter(|n| n.op_type == "Sqrt") {
        let Some(add) = sqrt.input.first().and_then(|i| g.producer(i)).filter(|n| n.op_type == "Add") else {
            continue;
        };
        let of_mean = add.input.iter().any(|i| g.producer(i).is_some_and(|p| p.op_type == "ReduceMean"));
        if let Some(eps) = add.input.iter().find_map(|i| g.constant_scalar(i)).filter(|_| of_mean) {
            written_out.push(eps);
        }
    }
    written_out
}

/// The constant c in `1 / (φ(q)·z + c)`: an Add of a scalar constant whose result is
/// the divisor of a Div or the input of a Reciprocal.
fn normaliser_eps(g: &OnnxGraph) -> Vec<f32> {
    let mut found = Vec::new();
    for add in g.nodes().iter().filter(|n| n.op_type == "Add") {
        let Some(out) = add.output.first() else {
            continue;
        };
        let divides = g
            .consumers(out)
            .iter()
            .any(|c| (c.op_type == "Div" && c.input.get(1) == Some(out)) || c.op_type == "Reciprocal");
        if !divides {
            continue;
        }
        if let Some(c) = add.input.iter().find_map(|i| g.constant_scalar(i)) {
            found.push(c);
        }
    }
    found
}

/// The feature map, its width per head (0 for elu+1 and relu) and its constants:
/// from the graph (see `feature_map.rs`) and the `linrt.feature_*` metadata, which
/// must agree.
fn feature_map(g: &OnnxGraph, md: &BTreeMap<String, String>, prefix: &str) -> Result<(FeatureMap, u32, FeatureParams)> {
    let query = query_projection(g, prefix).and_then(|(n, _)| n.output.first().cloned());
    let graph = super::feature_map::from_graph(g, prefix, query.as_deref())?;
    let meta_map = match md.get("linrt.feature_map") {
        Some(s) => Some(FeatureMap::from_name(s).ok_or_else(|| {
            anyhow!(
                "unsupported feature map {s:?} (metadata linrt.feature_map): linrt runs elu+1, relu, favor, \
                 random-fourier, smoothed-random-fourier and generalized-random"
            )
        })?),
        None => None,
    };
    let named = |m: FeatureMap| Named(m, m.name());
    let map = Field::new("feature_map", "")
        .add("metadata", meta_map.map(named))
        .add("the graph", graph.map.map(named))
        .resolve()?
        .0;
    if !map.has_omega() {
        return Ok((map, 0, FeatureParams::default()));
    }
    let from_cols = graph.omega_cols.map(|m| match map {
        FeatureMap::SmoothedRandomFourier => 2 * m + 1,
        FeatureMap::GeneralizedRandom => m,
        _ => 2 * m,
    });
    let feature_dim = Field::new("feature_dim", "")
        .add("metadata", meta::<u32>(md, "feature_dim")?)
        .add("the omega tensor", from_cols)
        .resolve()?;
    let constant = |key: &'static str, from_graph: Option<f32>, used: bool| -> Result<f32> {
        if !used {
            return Ok(0.0);
        }
        Field::new(key, "").add("metadata", meta::<f32>(md, key)?).add("the graph", from_graph).resolve()
    };
    let rff = matches!(map, FeatureMap::RandomFourier | FeatureMap::SmoothedRandomFourier);
    let params = FeatureParams {
        input_scale: constant("feature_input_scale", graph.input_scale, true)?,
        output_scale: constant("feature_output_scale", graph.output_scale, rff)?,
        log_offset: constant("feature_log_offset", graph.log_offset, map == FeatureMap::Favor)?,
        smoothing: constant("feature_smoothing", graph.smoothing, map == FeatureMap::SmoothedRandomFourier)?,
    };
    Ok((map, feature_dim, params))
}

/// Layer 0's query projection node (MatMul or Gemm), found from its weight, which
/// reaches it directly, through Identity, or through a Transpose; with the names
/// the weight goes by on the way.
fn query_projection<'g>(g: &'g OnnxGraph, prefix: &str) -> Option<(&'g tract_onnx::pb::NodeProto, Vec<String>)> {
    let weight = format!("{prefix}layers.0.attention.query_projection.weight");
    let mut names = vec![weight.clone()];
    names.extend(g.stored_name(&weight).map(str::to_string));
    for _ in 0..3 {
        let next: Vec<String> = names
            .iter()
            .flat_map(|n| g.consumers(n))
            .filter(|c| matches!(c.op_type.as_str(), "Transpose" | "Identity"))
            .filter_map(|c| c.output.first().cloned())
            .collect();
        names.extend(next);
    }
    let node = names.iter().flat_map(|n| g.consumers(n)).find(|c| matches!(c.op_type.as_str(), "MatMul" | "Gemm"))?;
    Some((node, names))
}

/// Pre-norm feeds the query projection of layer 0 from `norm1`; post-norm feeds it the
/// layer input itself. None when the projection cannot be traced.
fn norm_from_graph(g: &OnnxGraph, prefix: &str) -> Option<NormPlacement> {
    let norm1 = format!("{prefix}layers.0.norm1.weight");
    let (projection, weight_values) = query_projection(g, prefix)?;
    let data = projection.input.iter().find(|i| !weight_values.contains(i))?;
    // A LayerNormalization with norm1's gain, or (written out before opset 17) the
    // Add of norm1's bias.
    let norm1_bias = format!("{prefix}layers.0.norm1.bias");
    let from_norm1 = match g.producer(data) {
        Some(p) if p.op_type == "LayerNormalization" => p.input.get(1).is_some_and(|s| g.same_initializer(s, &norm1)),
        Some(p) if p.op_type == "Add" => p.input.iter().any(|b| g.same_initializer(b, &norm1_bias)),
        _ => false,
    };
    Some(if from_norm1 { NormPlacement::Pre } else { NormPlacement::Post })
}
