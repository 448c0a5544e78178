//! Which feature map φ an ONNX graph applies to its queries and keys, and with which
//! constants, read from the ops around layer 0's query projection and, for the
//! random-feature maps, around the matmul with the `omega` initializer (see
//! `linrt::FeatureMap` for what each map computes).
//!
//! What the graph does not show is left unset (None), for metadata or a flag to supply.

use anyhow::{bail, Result};
use linrt::FeatureMap;
use tract_onnx::pb::NodeProto;

use super::graph::OnnxGraph;

/// The Ω buffer of layer `layer`, as fast-transformers names it.
pub fn omega_name(prefix: &str, layer: u32) -> String {
    format!("{prefix}layers.{layer}.attention.inner_attention.feature_map.omega")
}

/// What the graph says about the feature map; each part None where it is silent.
#[derive(Debug, Default, Clone, Copy)]
pub struct FromGraph {
    pub map: Option<FeatureMap>,
    /// Columns of Ω (`[d_query, M]`), when there is one.
    pub omega_cols: Option<u32>,
    pub input_scale: Option<f32>,
    pub output_scale: Option<f32>,
    pub log_offset: Option<f32>,
    pub smoothing: Option<f32>,
}

/// Element-wise functions that would be a feature map if applied to the queries.
const ELEMENTWISE: &[&str] = &[
    "Softplus",
    "Sigmoid",
    "Tanh",
    "Exp",
    "Abs",
    "Softsign",
    "Selu",
    "Celu",
    "LeakyRelu",
    "HardSigmoid",
    "HardSwish",
    "Gelu",
    "Erf",
    "Sqrt",
    "Square",
    "Pow",
    "Cos",
    "Sin",
    "Mish",
    "PRelu",
    "ThresholdedRelu",
];

/// Ops that only move or relabel values between a projection and its feature map.
const PASS_THROUGH: &[&str] = &["Reshape", "Transpose", "Identity", "Unsqueeze", "Squeeze", "Cast", "Flatten"];

fn is_pass_through(n: &NodeProto) -> bool {
    PASS_THROUGH.contains(&n.op_type.as_str())
}

/// The first nodes downstream of `value` that are not pass-through ops (an Add of
/// a bias initializer counts as pass-through when `skip_bias`).
fn next_ops<'g>(g: &'g OnnxGraph, value: &str, skip_bias: bool) -> Vec<&'g NodeProto> {
    let mut frontier = vec![value.to_string()];
    let mut found = Vec::new();
    for _ in 0..16 {
        let mut next = Vec::new();
        for v in &frontier {
            for c in g.consumers(v) {
                let bias = skip_bias && c.op_type == "Add" && c.input.iter().any(|i| g.has_initializer(i));
                if is_pass_through(c) || bias {
                    next.extend(c.output.iter().cloned());
                } else if !found.iter().any(|f: &&NodeProto| f.name == c.name && f.output == c.output) {
                    found.push(c);
                }
            }
        }
        if next.is_empty() {
            break;
        }
        frontier = next;
    }
    found
}

/// The node producing `value`, looking back through pass-through ops.
fn producer_through<'g>(g: &'g OnnxGraph, value: &str) -> Option<&'g NodeProto> {
    let mut value = value.to_string();
    for _ in 0..16 {
        let node = g.producer(&value)?;
        if !is_pass_through(node) {
            return Some(node);
        }
        value = node.input.first()?.clone();
    }
    None
}

/// The scalar constant among `node`'s inputs (a Mul or Add by a number).
fn scalar_input(g: &OnnxGraph, node: &NodeProto) -> Option<f32> {
    node.input.iter().find_map(|i| g.constant_scalar(i))
}

fn describe(n: &NodeProto) -> String {
    if n.name.is_empty() {
        format!("a {} node", n.op_type)
    } else {
        format!("node {:?} ({})", n.name, n.op_type)
    }
}

/// Reads the feature map of layer 0 from the graph. `query_output` is the output of
/// layer 0's query projection matmul (None when it cannot be traced).
pub fn from_graph(g: &OnnxGraph, prefix: &str, query_output: Option<&str>) -> Result<FromGraph> {
    let omega = omega_name(prefix, 0);
    if g.has_initializer(&omega) {
        return random_map(g, &omega);
    }
    let Some(query) = query_output else {
        return Ok(FromGraph::default());
    };
    let ops = next_ops(g, query, true);
    let Some(first) = ops.first() else {
        return Ok(FromGraph::default());
    };
    let map = match first.op_type.as_str() {
        "Elu" => FeatureMap::EluPlusOne,
        "Relu" => FeatureMap::Relu,
        // Another element-wise function is another feature map, which linrt does not run.
        op if ELEMENTWISE.contains(&op) => bail!(
            "unsupported feature map: the query projection of layer 0 feeds {}; linrt runs elu+1, relu, favor, \
             random-fourier, smoothed-random-fourier and generalized-random",
            describe(first)
        ),
        // Anything else (a MatMul of q with k, a Mul): the graph does not show a map.
        _ => return Ok(FromGraph::default()),
    };
    Ok(FromGraph { map: Some(map), ..FromGraph::default() })
}

fn random_map(g: &OnnxGraph, omega: &str) -> Result<FromGraph> {
    let dims = g.initializer_dims(omega).unwrap_or_default();
    let [_, cols] = dims.as_slice() else {
        bail!("tensor {omega} has shape {dims:?}, expected [d_query, M]");
    };
    let mut out = FromGraph { omega_cols: u32::try_from(*cols).ok(), ..FromGraph::default() };
    // The omega matmul (Ω may reach it through an Identity or Cast).
    let mut names = vec![omega.to_string()];
    names.extend(
        g.consumers(omega).into_iter().filter(|c| is_pass_through(c)).filter_map(|c| c.output.first().cloned()),
    );
    let Some(matmul) = names.iter().flat_map(|n| g.consumers(n)).find(|c| c.op_type == "MatMul") else {
        bail!("unsupported feature map: {omega} does not feed a MatMul");
    };
    // x' = input_scale · x: a Mul by a constant just before the matmul, or nothing.
    let data = matmul.input.iter().find(|i| !names.contains(i)).cloned().unwrap_or_default();
    out.input_scale = match producer_through(g, &data) {
        Some(n) if n.op_type == "Mul" => scalar_input(g, n),
        _ => Some(1.0),
    };
    let u = matmul.output.first().cloned().unwrap_or_default();
    let after = next_ops(g, &u, false);
    let has = |op: &str| after.iter().any(|n| n.op_type == op);
    if has("Cos") || has("Sin") {
        // φ = output_scale · [cos u, sin u] (then, smoothed, a constant column).
        let trig = after.iter().find(|n| n.op_type == "Cos" || n.op_type == "Sin").expect("found above");
        let concat = next_ops(g, &trig.output[0], false).into_iter().find(|n| n.op_type == "Concat");
        let scale = concat.and_then(|c| next_ops(g, &c.output[0], false).into_iter().find(|n| n.op_type == "Mul"));
        out.output_scale = scale.and_then(|m| scalar_input(g, m));
        let smoothed = scale.and_then(|m| next_ops(g, &m.output[0], false).into_iter().find(|n| n.op_type == "Concat"));
        match smoothed {
            Some(c) => {
                out.map = Some(FeatureMap::SmoothedRandomFourier);
                let scaled = &scale.expect("smoothed implies scaled").output[0];
                out.smoothing = c.input.iter().filter(|i| *i != scaled).find_map(|i| constant_fill(g, i));
            }
            None => out.map = Some(FeatureMap::RandomFourier),
        }
    } else if has("Exp") || has("Sub") || has("Neg") {
        // exp(±u − offset), offset = |x'|²/2 + log_offset: an Add of a constant.
        if let Some(n) = g.nodes().iter().find(|n| n.op_type.starts_with("ReduceMax")) {
            bail!(
                "unsupported feature map Favor with stabilize=True ({}): its offset is a maximum over the sequence, \
                 which a causal stream cannot know",
                describe(n)
            );
        }
        out.map = Some(FeatureMap::Favor);
        let sub = after.iter().find(|n| n.op_type == "Sub");
        let offset = sub.and_then(|s| s.input.get(1)).and_then(|o| producer_through(g, o));
        out.log_offset = offset.filter(|n| n.op_type == "Add").and_then(|n| scalar_input(g, n));
    } else if has("Relu") {
        out.map = Some(FeatureMap::GeneralizedRandom);
    } else {
        let what = after.first().map(|n| describe(n)).unwrap_or_else(|| "nothing".to_string());
        bail!(
            "unsupported feature map: the projection by {omega} feeds {what}; linrt runs favor, random-fourier, \
             smoothed-random-fourier and generalized-random (relu) random features"
        );
    }
    Ok(out)
}

/// The value a constant-filled tensor holds: a Constant or initializer whose values
/// are all equal, the `value` of a ConstantOfShape, or what an Expand broadcasts.
fn constant_fill(g: &OnnxGraph, value: &str) -> Option<f32> {
    if let Some(values) = g.constant_floats(value) {
        return values.first().copied().filter(|v| values.iter().all(|x| x == v));
    }
    let node = producer_through(g, value)?;
    match node.op_type.as_str() {
        "ConstantOfShape" => {
            let t = node.attribute.iter().find(|a| a.name == "value").and_then(|a| a.t.as_ref())?;
            let tensor = tract_onnx::tensor::load_tensor(&tract_onnx::data_resolver::MmapDataResolver, t, None).ok()?;
            super::graph::tensor_to_f32(&tensor).ok()?.first().copied()
        }
        "Expand" => node.input.first().and_then(|i| constant_fill(g, i)),
        _ => None,
    }
}
