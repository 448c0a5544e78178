//! `linrt inspect`: what is inside a `.lrt` file.

use linrt::{InputKind, Model, OutputKind, SessionOptions};
use serde_json::{json, Value};

/// A human-readable summary.
pub fn text(model: &Model) -> String {
    let c = model.config();
    let (major, minor) = model.version();
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line(format!("format       .lrt {major}.{minor}, {} bytes, crc32 {:08x}", model.file_size(), model.checksum()));
    line(format!("encoder      {c}"));
    line(format!(
        "attention    causal linear, feature map {}, eps {:e}; {}-norm, LayerNorm eps {:e}, final norm {}",
        c.feature_map.name(),
        c.attention_eps,
        c.norm_placement.name(),
        c.layernorm_eps,
        if c.final_norm { "on" } else { "off" }
    ));
    if c.feature_map.has_omega() {
        // Only the constants this map reads (see linrt::FeatureMap).
        let p = c.feature_params;
        let mut constants = vec![format!("input scale {}", p.input_scale)];
        match c.feature_map {
            linrt::FeatureMap::Favor => constants.push(format!("log offset {}", p.log_offset)),
            linrt::FeatureMap::RandomFourier => constants.push(format!("output scale {}", p.output_scale)),
            linrt::FeatureMap::SmoothedRandomFourier => {
                constants.push(format!("output scale {}", p.output_scale));
                constants.push(format!("smoothing {}", p.smoothing));
            }
            _ => {}
        }
        line(format!(
            "features     {} per head from Ω [{} x {}]; {}",
            c.features_per_head(),
            c.d_query,
            c.omega_cols(),
            constants.join(", ")
        ));
    }
    line(match c.input_kind {
        InputKind::Tokens => format!("input        token ids, vocabulary {}", c.input_dim),
        InputKind::Vectors if c.input_projection => {
            format!("input        vectors of {}, projected to {}", c.input_dim, c.d_model)
        }
        InputKind::Vectors => format!("input        vectors of {}", c.input_dim),
    });
    if c.positional != linrt::Positional::None {
        line(format!(
            "positions    {} encoding added to the input, counted from the stream's start",
            c.positional.name()
        ));
    }
    line(match c.output_kind {
        OutputKind::Linear => format!("output       linear head, {} values", c.output_dim),
        OutputKind::Hidden => format!("output       hidden state, {} values", c.d_model),
    });
    let state = c.state_floats().unwrap_or(0);
    line(format!("state        {} floats ({} bytes) per stream, whatever its length", state, state * 4));
    for t in [1usize, 64] {
        if let Ok(n) = model.arena_bytes(SessionOptions { max_chunk: t, ..SessionOptions::default() }) {
            let warning = match crate::memory::available() {
                Some(free) if n as u64 > free => {
                    format!(" (warning: more than the {} this machine has available)", crate::memory::human(free))
                }
                _ => String::new(),
            };
            line(format!("arena        {n} bytes for chunks of up to {t}{warning}"));
        }
    }
    let params: u64 =
        (0..model.tensor_count()).filter_map(|i| model.tensor(i)).map(|t| t.dims[0] as u64 * t.dims[1] as u64).sum();
    line(format!("parameters   {params}"));
    line("tensors".into());
    for t in (0..model.tensor_count()).filter_map(|i| model.tensor(i)) {
        let name = if t.role.is_per_layer() {
            format!("layers.{}.{}", t.layer, t.role.name())
        } else {
            t.role.name().to_string()
        };
        let shape = if t.rank == 1 { format!("[{}]", t.dims[0]) } else { format!("[{}, {}]", t.dims[0], t.dims[1]) };
        line(format!("  {name:<44} {shape:<12} {:<5} {:>10} bytes @ {}", t.dtype.name(), t.size, t.offset));
    }
    line("metadata".into());
    for (k, v) in model.metadata() {
        let shown: String =
            if v.chars().count() > 80 { v.chars().take(77).chain("...".chars()).collect() } else { v.to_string() };
        line(format!("  {k:<28} {shown}"));
    }
    s
}

/// The same as one JSON object.
pub fn json(model: &Model) -> Value {
    let c = model.config();
    let tensors: Vec<Value> = (0..model.tensor_count())
        .filter_map(|i| model.tensor(i))
        .map(|t| {
            json!({"role": t.role.name(), "layer": t.layer, "dtype": t.dtype.name(),
                   "shape": if t.rank == 1 { vec![t.dims[0]] } else { t.dims.to_vec() }, "offset": t.offset, "bytes": t.size})
        })
        .collect();
    let metadata: serde_json::Map<String, Value> = model.metadata().map(|(k, v)| (k.to_string(), json!(v))).collect();
    let (major, minor) = model.version();
    json!({
        "format_version": format!("{major}.{minor}"),
        "file_size": model.file_size(),
        "checksum": format!("{:08x}", model.checksum()),
        "config": {
            "d_model": c.d_model, "n_layers": c.n_layers, "n_heads": c.n_heads,
            "d_query": c.d_query, "d_value": c.d_value, "d_ff": c.d_ff,
            "activation": c.activation.name(), "norm_placement": c.norm_placement.name(),
            "final_norm": c.final_norm, "feature_map": c.feature_map.name(),
            "features_per_head": c.features_per_head(),
            "feature_params": {
                "input_scale": c.feature_params.input_scale, "output_scale": c.feature_params.output_scale,
                "log_offset": c.feature_params.log_offset, "smoothing": c.feature_params.smoothing,
            },
            "attention_eps": c.attention_eps, "layernorm_eps": c.layernorm_eps,
            "input": match c.input_kind { InputKind::Tokens => "tokens", InputKind::Vectors => "vectors" },
            "input_dim": c.input_dim, "input_projection": c.input_projection,
            "positional": c.positional.name(),
            "output_dim": c.output_dim(),
        },
        "state_floats": c.state_floats().unwrap_or(0),
        "arena_bytes": model.arena_bytes(SessionOptions::default()).unwrap_or(0),
        "tensors": tensors,
        "metadata": metadata,
    })
}
