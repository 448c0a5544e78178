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

/// Ops that read a value's shape, not its values.
const SHAPE_OPS: &[&str] = &["Shape", "Size"];

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
    // The first op that computes on the projection (not Shape and its kin, which
    // exporters hang off any value).
    let ops = next_ops(g, query, true);
    let Some(first) = ops.iter().find(|n| !SHAPE_OPS.contains(&n.op_type.as_str())) else {
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
    // Bounded like every dimension (the widths computed from it cannot overflow).
    let omega_cols = u32::try_from(*cols).ok().filter(|&m| (1..=linrt::config::MAX_DIM).contains(&m));
    let Some(omega_cols) = omega_cols else {
        bail!("tensor {omega} has shape {dims:?}: its {cols} columns are out of range");
    };
    let mut out = FromGraph { omega_cols: Some(omega_cols), ..FromGraph::default() };
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
    // The first node of `op` reading `value` (through pass-through ops) and its output.
    let output_of = |value: &str, op: &str| {
        next_ops(g, value, false)
            .into_iter()
            .find(|n| n.op_type == op)
            .and_then(|n| Some((n, n.output.first()?.clone())))
    };
    // Favor's `u − offset` feeds an Exp: a Sub with the projection first.
    let favor_sub = after.iter().find(|n| {
        n.op_type == "Sub"
            && n.input.first() == Some(&u_through(g, &u, n))
            && n.output.first().is_some_and(|o| next_ops(g, o, false).iter().any(|e| e.op_type == "Exp"))
    });
    if has("Cos") || has("Sin") {
        // φ = output_scale · [cos u, sin u] (then, smoothed, a constant column).
        let trig = after.iter().find(|n| n.op_type == "Cos" || n.op_type == "Sin").and_then(|n| n.output.first());
        let concat = trig.and_then(|t| output_of(t, "Concat"));
        let scale = concat.and_then(|(_, c)| output_of(&c, "Mul"));
        out.output_scale = scale.as_ref().and_then(|(m, _)| scalar_input(g, m));
        match scale.as_ref().and_then(|(_, scaled)| output_of(scaled, "Concat").map(|c| (c.0, scaled.clone()))) {
            Some((c, scaled)) => {
                out.map = Some(FeatureMap::SmoothedRandomFourier);
                out.smoothing = c.input.iter().filter(|i| **i != scaled).find_map(|i| constant_fill(g, i));
            }
            None => out.map = Some(FeatureMap::RandomFourier),
        }
    } else if let Some(sub) = favor_sub {
        // exp(±u − offset), offset = |x'|²/2 + log_offset: an Add of a constant.
        let offset = sub.input.get(1).and_then(|o| producer_through(g, o));
        if let Some(n) = offset.and_then(|o| reduce_max_behind(g, o)) {
            bail!(
                "unsupported feature map Favor with stabilize=True ({}): its offset is a maximum over the sequence, \
                 which a causal stream cannot know",
                describe(n)
            );
        }
        out.map = Some(FeatureMap::Favor);
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

/// The input of `node` that comes from `u` (itself or through pass-through ops), or
/// an empty name.
fn u_through(g: &OnnxGraph, u: &str, node: &NodeProto) -> String {
    node.input
        .iter()
        .find(|i| {
            let mut v = i.to_string();
            for _ in 0..8 {
                if v == u {
                    return true;
                }
                match g.producer(&v).filter(|p| is_pass_through(p)).and_then(|p| p.input.first()) {
                    Some(next) => v = next.clone(),
                    None => return false,
                }
            }
            false
        })
        .cloned()
        .unwrap_or_default()
}

/// A ReduceMax among the few nodes that compute `node`'s inputs (Favor's stabilize
/// adds a maximum of |x'|² to the offset).
fn reduce_max_behind<'g>(g: &'g OnnxGraph, node: &'g NodeProto) -> Option<&'g NodeProto> {
    let mut frontier = vec![node];
    for _ in 0..6 {
        let mut next = Vec::new();
        for n in frontier {
            if n.op_type.starts_with("ReduceMax") {
                return Some(n);
            }
            next.extend(n.input.iter().filter_map(|i| g.producer(i)));
        }
        frontier = next;
    }
    None
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
