//! Which tensors a config requires, in which order, with which shapes. The
//! directory must list exactly these, so lookups are index arithmetic, not search.

use super::{layer_roles, TensorRole};
use crate::config::{InputKind, ModelConfig, OutputKind};

/// One required tensor: its role, layer, and shape `[rows, cols]` (vectors have
/// `cols == 1` and rank 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorSpec {
    pub role: TensorRole,
    pub layer: u32,
    pub rank: u8,
    pub dims: [u32; 2],
}

fn input_tensors(cfg: &ModelConfig) -> usize {
    match cfg.input_kind {
        InputKind::Tokens => 1,
        InputKind::Vectors if cfg.input_projection => 2,
        InputKind::Vectors => 0,
    }
}

/// Number of tensors the directory must hold for `cfg`.
pub fn tensor_count(cfg: &ModelConfig) -> usize {
    let head = if cfg.output_kind == OutputKind::Linear { 2 } else { 0 };
    let norm = if cfg.final_norm { 2 } else { 0 };
    input_tensors(cfg) + layer_roles(cfg).len() * cfg.n_layers as usize + norm + head
}

/// Directory index of `(role, layer)` for `cfg`, or None if the config has no such tensor.
pub(crate) fn index_of(cfg: &ModelConfig, role: TensorRole, layer: u32) -> Option<usize> {
    let n_in = input_tensors(cfg);
    let roles = layer_roles(cfg);
    let after_layers = n_in + roles.len() * cfg.n_layers as usize;
    let norm = if cfg.final_norm { 2 } else { 0 };
    let index = match role {
        TensorRole::Embedding if cfg.input_kind == InputKind::Tokens => 0,
        TensorRole::InputWeight if n_in == 2 => 0,
        TensorRole::InputBias if n_in == 2 => 1,
        TensorRole::FinalNormWeight if cfg.final_norm => after_layers,
        TensorRole::FinalNormBias if cfg.final_norm => after_layers + 1,
        TensorRole::OutputWeight if cfg.output_kind == OutputKind::Linear => after_layers + norm,
        TensorRole::OutputBias if cfg.output_kind == OutputKind::Linear => after_layers + norm + 1,
        r if r.is_per_layer() && layer < cfg.n_layers => {
            let k = roles.iter().position(|&x| x == r)?;
            n_in + layer as usize * roles.len() + k
        }
        _ => return None,
    };
    Some(index)
}

/// The tensor the directory must hold at `index`, or None past the end.
pub fn expected_tensor(cfg: &ModelConfig, index: usize) -> Option<TensorSpec> {
    let d = cfg.d_model;
    let qk = cfg.n_heads * cfg.d_query;
    let v = cfg.n_heads * cfg.d_value;
    let ff = cfg.d_ff;
    let mat = |role, layer, rows, cols| TensorSpec { role, layer, rank: 2, dims: [rows, cols] };
    let vec = |role, layer, n| TensorSpec { role, layer, rank: 1, dims: [n, 1] };

    let n_in = input_tensors(cfg);
    if index < n_in {
        return Some(match (cfg.input_kind, index) {
            (InputKind::Tokens, _) => mat(TensorRole::Embedding, 0, cfg.input_dim, d),
            (_, 0) => mat(TensorRole::InputWeight, 0, d, cfg.input_dim),
            _ => vec(TensorRole::InputBias, 0, d),
        });
    }
    let i = index - n_in;
    let roles = layer_roles(cfg);
    let per_layer = roles.len();
    let layers = per_layer * cfg.n_layers as usize;
    if i < layers {
        let layer = (i / per_layer) as u32;
        let role = roles[i % per_layer];
        use TensorRole::*;
        return Some(match role {
            QueryWeight | KeyWeight => mat(role, layer, qk, d),
            QueryBias | KeyBias => vec(role, layer, qk),
            ValueWeight => mat(role, layer, v, d),
            ValueBias => vec(role, layer, v),
            OutWeight => mat(role, layer, d, v),
            Linear1Weight => mat(role, layer, ff, d),
            Linear1Bias => vec(role, layer, ff),
            Linear2Weight => mat(role, layer, d, ff),
            FeatureOmega => mat(role, layer, cfg.omega_cols() as u32, cfg.d_query),
            // out bias, linear2 bias and the four norm vectors are all d_model wide
            _ => vec(role, layer, d),
        });
    }
    let mut j = i - layers;
    if cfg.final_norm {
        match j {
            0 => return Some(vec(TensorRole::FinalNormWeight, 0, d)),
            1 => return Some(vec(TensorRole::FinalNormBias, 0, d)),
            _ => j -= 2,
        }
    }
    if cfg.output_kind == OutputKind::Linear {
        match j {
            0 => return Some(mat(TensorRole::OutputWeight, 0, cfg.output_dim, d)),
            1 => return Some(vec(TensorRole::OutputBias, 0, cfg.output_dim)),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_of_inverts_expected_tensor() {
        let mut cfg = ModelConfig::new(8, 3, 2, 16);
        for (kind, proj, norm, out) in [
            (InputKind::Tokens, false, true, OutputKind::Linear),
            (InputKind::Vectors, true, false, OutputKind::Hidden),
            (InputKind::Vectors, false, true, OutputKind::Hidden),
        ] {
            cfg.input_kind = kind;
            cfg.input_projection = proj;
            cfg.final_norm = norm;
            cfg.output_kind = out;
            cfg.output_dim = if out == OutputKind::Linear { 5 } else { 0 };
            let n = tensor_count(&cfg);
            for i in 0..n {
                let spec = expected_tensor(&cfg, i).expect("spec inside count");
                assert_eq!(index_of(&cfg, spec.role, spec.layer), Some(i));
            }
            assert!(expected_tensor(&cfg, n).is_none());
        }
    }
}
