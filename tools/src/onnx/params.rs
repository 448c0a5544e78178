//! Where exporters put parameters that lost their PyTorch names.
//!
//! torch.onnx's exporters fold constants by default: a `Linear` weight that a MatMul
//! reads transposed becomes an anonymous `[in, out]` initializer (`onnx::MatMul_213`,
//! `val_0`), while its bias keeps its name. The dynamo exporter also merges equal
//! tensors into one initializer, so untrained LayerNorm gains all go by the first
//! one's name. Both are found from the graph's structure instead:
//! - `<stem>.weight` of a `Linear`: the matmul whose output gets `<stem>.bias` added;
//! - a LayerNorm's gain or bias: the LayerNormalization nodes in execution order are
//!   layer 0's norm1 and norm2, layer 1's, …, then the final norm (when their count is
//!   odd), whatever the norm placement.
//!
//! Anything found this way is still checked: shapes against the config, and the whole
//! model against tract by verification.

use super::graph::OnnxGraph;

/// The initializer holding `name`, and whether it is stored transposed.
pub(super) fn locate(g: &OnnxGraph, name: &str) -> Option<(usize, bool)> {
    if let Some(stem) = name.strip_suffix(".weight") {
        if let Some(found) = folded_linear_weight(g, stem) {
            return Some((found, true));
        }
    }
    layer_norm_param(g, name).map(|i| (i, false))
}

fn folded_linear_weight(g: &OnnxGraph, stem: &str) -> Option<usize> {
    let bias = g.initializer_behind(&format!("{stem}.bias"))?;
    for add in g.nodes().iter().filter(|n| n.op_type == "Add") {
        if !add.input.iter().any(|i| g.initializer_behind(i) == Some(bias)) {
            continue;
        }
        for value in &add.input {
            let Some(matmul) = g.producer(value).filter(|n| n.op_type == "MatMul") else {
                continue;
            };
            if let Some(weight) = matmul.input.get(1).and_then(|w| g.initializer_behind(w)) {
                return Some(weight);
            }
        }
    }
    None
}

fn layer_norm_param(g: &OnnxGraph, name: &str) -> Option<usize> {
    let (stem, slot) = match name.rsplit_once('.')? {
        (stem, "weight") => (stem, 1),
        (stem, "bias") => (stem, 2),
        _ => return None,
    };
    let norms: Vec<_> = g.nodes().iter().filter(|n| n.op_type == "LayerNormalization").collect();
    let index = if let Some((_, layer_norm)) = stem.rsplit_once("layers.") {
        let (layer, which) = layer_norm.split_once(".norm")?;
        let layer: usize = layer.parse().ok()?;
        let which: usize = which.parse().ok().filter(|w| (1..=2).contains(w))?;
        2 * layer + which - 1
    } else if stem == "norm" || stem.ends_with(".norm") {
        (norms.len() % 2 == 1).then(|| norms.len() - 1)?
    } else {
        return None;
    };
    g.initializer_behind(norms.get(index)?.input.get(slot)?)
}
