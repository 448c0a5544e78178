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

/// Only when exactly one matmul's output gets that bias: an exporter that merged
/// equal biases (zeros, say) leaves no way to tell which weight is whose.
fn folded_linear_weight(g: &OnnxGraph, stem: &str) -> Option<usize> {
    let bias = g.initializer_behind(&format!("{stem}.bias"))?;
    let mut weights = Vec::new();
    for add in g.nodes().iter().filter(|n| n.op_type == "Add") {
        if !add.input.iter().any(|i| g.initializer_behind(i) == Some(bias)) {
            continue;
        }
        for value in &add.input {
            let Some(matmul) = g.producer(value).filter(|n| n.op_type == "MatMul") else {
                continue;
            };
            if let Some(weight) = matmul.input.get(1).and_then(|w| g.initializer_behind(w)) {
                weights.push(weight);
            }
        }
    }
    weights.dedup();
    match weights.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// Layers of the encoder under `prefix`, by the parameter names that survive
/// exporting (biases and norms keep theirs).
fn layer_count(g: &OnnxGraph, prefix: &str) -> usize {
    let layers = format!("{prefix}layers.");
    g.initializer_names()
        .filter_map(|n| n.strip_prefix(&layers)?.split_once('.')?.0.parse::<usize>().ok())
        .map(|i| i + 1)
        .max()
        .unwrap_or(0)
}

fn layer_norm_param(g: &OnnxGraph, name: &str) -> Option<usize> {
    let (stem, slot) = match name.rsplit_once('.')? {
        (stem, "weight") => (stem, 1),
        (stem, "bias") => (stem, 2),
        _ => return None,
    };
    let norms: Vec<_> = g.nodes().iter().filter(|n| n.op_type == "LayerNormalization").collect();
    // The order tells only when the graph has exactly the encoder's norms: two per
    // layer, and the final one or not (another LayerNorm, in an input block say,
    // would shift them all).
    let (prefix, index) = if let Some((prefix, layer_norm)) = stem.rsplit_once("layers.") {
        let (layer, which) = layer_norm.split_once(".norm")?;
        let layer: usize = layer.parse().ok()?;
        let which: usize = which.parse().ok().filter(|w| (1..=2).contains(w))?;
        (prefix, 2 * layer + which - 1)
    } else if let Some(prefix) = stem.strip_suffix("norm").filter(|p| p.is_empty() || p.ends_with('.')) {
        (prefix, 2 * layer_count(g, prefix))
    } else {
        return None;
    };
    let layers = layer_count(g, prefix);
    let with_final = stem.ends_with("norm") || norms.len() == 2 * layers + 1;
    if layers == 0 || norms.len() != 2 * layers + usize::from(with_final) {
        return None;
    }
    g.initializer_behind(norms.get(index)?.input.get(slot)?)
}
