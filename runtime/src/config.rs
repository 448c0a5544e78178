//! The typed model configuration stored in every `.lrt` file.
//!
//! Field meanings follow fast-transformers (`TransformerEncoderBuilder`):
//! `d_query` and `d_value` are *per-head* widths and may differ.

use crate::error::Error;

/// Activation between `linear1` and `linear2` of the feed-forward block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Relu = 0,
    /// Exact gelu: `0.5·x·(1 + erf(x/√2))`, as `torch.nn.functional.gelu`.
    Gelu = 1,
}

/// Where the LayerNorms sit relative to the residual connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormPlacement {
    /// fast-transformers: `x = norm1(x + attn(x))`, `x = norm2(x + ffn(x))`.
    Post = 0,
    /// `x = x + attn(norm1(x))`, `x = x + ffn(norm2(x))`.
    Pre = 1,
}

/// The feature map φ of linear attention, as fast-transformers' feature maps compute
/// it. The random-feature maps (codes 2 to 5, format 1.2) project each head's
/// `x' = input_scale · x` by a fixed matrix Ω (`[d_query, M]` in PyTorch, the buffer
/// `omega`; stored transposed, `[M, d_query]`), `u = x'·Ω`, then:
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureMap {
    /// φ(x) = elu(x) + 1, the paper's choice and fast-transformers' default.
    EluPlusOne = 0,
    /// φ(x) = relu(x): `ActivationFunctionFeatureMap` with `torch.relu`.
    Relu = 1,
    /// `Favor` (Performer's positive random features):
    /// `φ = [exp(u − c), exp(−u − c)]`, `c = |x'|²/2 + log_offset` (½·ln n_dims); F = 2M.
    Favor = 2,
    /// `RandomFourierFeatures`: `φ = output_scale · [cos u, sin u]` (√(2/n_dims)); F = 2M.
    RandomFourier = 3,
    /// `SmoothedRandomFourierFeatures`: the random Fourier features and one constant
    /// `smoothing` feature; F = 2M + 1.
    SmoothedRandomFourier = 4,
    /// `GeneralizedRandomFeatures` with its default kernel, relu: `φ = relu(u)`; F = M.
    GeneralizedRandom = 5,
}

/// Constants of the random-feature maps; all zero for elu+1 and relu.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FeatureParams {
    /// √softmax_temp: multiplies x before the projection.
    pub input_scale: f32,
    /// Random Fourier features: the factor √(2/n_dims) of every feature.
    pub output_scale: f32,
    /// Favor: ½·ln(n_dims), subtracted in every exponent.
    pub log_offset: f32,
    /// Smoothed random Fourier features: the value of the last, constant feature.
    pub smoothing: f32,
}

/// What one position of input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// A token id looked up in an embedding table of `input_dim` rows.
    Tokens = 0,
    /// A continuous vector of `input_dim` values, optionally projected to `d_model`.
    Vectors = 1,
}

/// What follows the encoder stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// The (normalised) hidden state itself, `d_model` values.
    Hidden = 0,
    /// A linear head to `output_dim` values (logits).
    Linear = 1,
}

/// Position information added to the input block's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Positional {
    /// None: the model sees order only through causal attention (fast-transformers'
    /// encoders add none themselves).
    None = 0,
    /// The sinusoidal encoding of "Attention Is All You Need", added to the first
    /// hidden vector: for position p (counted from the session's start or last reset)
    /// and column i, `sin(p·ω)` for even i and `cos(p·ω)` for odd i, with
    /// `ω = 10000^(−2⌊i/2⌋ / d_model)`, computed in f64 and rounded to f32.
    Sinusoidal = 1,
}

macro_rules! enum_codec {
    ($ty:ident, $field:literal, { $($code:literal => $variant:ident),+ $(,)? }) => {
        impl $ty {
            /// Decodes the on-disk code, rejecting values outside the enum.
            pub fn from_code(code: u8) -> Result<Self, Error> {
                match code {
                    $($code => Ok($ty::$variant),)+
                    _ => Err(Error::UnknownEnum { field: $field, value: code as u32 }),
                }
            }
            /// The on-disk code.
            pub fn code(self) -> u8 {
                self as u8
            }
        }
    };
}

enum_codec!(Activation, "config.activation", { 0 => Relu, 1 => Gelu });
enum_codec!(NormPlacement, "config.norm_placement", { 0 => Post, 1 => Pre });
enum_codec!(FeatureMap, "config.feature_map", {
    0 => EluPlusOne, 1 => Relu, 2 => Favor, 3 => RandomFourier, 4 => SmoothedRandomFourier, 5 => GeneralizedRandom
});
enum_codec!(InputKind, "config.input_kind", { 0 => Tokens, 1 => Vectors });
enum_codec!(OutputKind, "config.output_kind", { 0 => Hidden, 1 => Linear });
enum_codec!(Positional, "config.positional", { 0 => None, 1 => Sinusoidal });

impl Activation {
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Gelu => "gelu",
        }
    }
}
impl NormPlacement {
    pub fn name(self) -> &'static str {
        match self {
            NormPlacement::Post => "post",
            NormPlacement::Pre => "pre",
        }
    }
}
impl FeatureMap {
    pub fn name(self) -> &'static str {
        match self {
            FeatureMap::EluPlusOne => "elu+1",
            FeatureMap::Relu => "relu",
            FeatureMap::Favor => "favor",
            FeatureMap::RandomFourier => "random-fourier",
            FeatureMap::SmoothedRandomFourier => "smoothed-random-fourier",
            FeatureMap::GeneralizedRandom => "generalized-random",
        }
    }

    /// The map called `name` (as [`FeatureMap::name`] writes it).
    pub fn from_name(name: &str) -> Option<Self> {
        [
            FeatureMap::EluPlusOne,
            FeatureMap::Relu,
            FeatureMap::Favor,
            FeatureMap::RandomFourier,
            FeatureMap::SmoothedRandomFourier,
            FeatureMap::GeneralizedRandom,
        ]
        .into_iter()
        .find(|m| m.name() == name)
    }

    /// True for the maps with a random projection Ω (an `omega` tensor per layer).
    pub fn has_omega(self) -> bool {
        !matches!(self, FeatureMap::EluPlusOne | FeatureMap::Relu)
    }

    /// Columns M of Ω for `feature_dim` features per head (0 without Ω).
    pub fn omega_cols(self, feature_dim: u32) -> u32 {
        match self {
            FeatureMap::EluPlusOne | FeatureMap::Relu => 0,
            FeatureMap::Favor | FeatureMap::RandomFourier => feature_dim / 2,
            FeatureMap::SmoothedRandomFourier => feature_dim.saturating_sub(1) / 2,
            FeatureMap::GeneralizedRandom => feature_dim,
        }
    }
}
impl Positional {
    pub fn name(self) -> &'static str {
        match self {
            Positional::None => "none",
            Positional::Sinusoidal => "sinusoidal",
        }
    }
}
impl InputKind {
    pub fn name(self) -> &'static str {
        match self {
            InputKind::Tokens => "token ids",
            InputKind::Vectors => "float vectors",
        }
    }
}

/// Hyperparameters of one model: everything needed to size and run it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelConfig {
    pub d_model: u32,
    pub n_layers: u32,
    pub n_heads: u32,
    /// Per-head query/key width.
    pub d_query: u32,
    /// Per-head value width.
    pub d_value: u32,
    pub d_ff: u32,
    pub activation: Activation,
    pub norm_placement: NormPlacement,
    pub final_norm: bool,
    pub feature_map: FeatureMap,
    /// Features per head of a random-feature map; 0 for elu+1 and relu, whose
    /// width is d_query (see [`ModelConfig::features_per_head`]).
    pub feature_dim: u32,
    /// Constants of the random-feature maps (format 1.2).
    pub feature_params: FeatureParams,
    /// Added to the normaliser before the division (fast-transformers: 1e-6).
    pub attention_eps: f32,
    /// LayerNorm epsilon (PyTorch default 1e-5).
    pub layernorm_eps: f32,
    pub input_kind: InputKind,
    /// Position encoding added after the input block (format 1.1).
    pub positional: Positional,
    /// Vocabulary size for tokens; vector width for vectors.
    pub input_dim: u32,
    /// Vectors only: a linear projection `input_dim → d_model` (else input_dim == d_model).
    pub input_projection: bool,
    pub output_kind: OutputKind,
    /// Width of the linear head (0 when there is none).
    pub output_dim: u32,
}

/// Upper bound on every single dimension; far beyond any edge model, small enough
/// that products of a few dims cannot overflow u64.
pub const MAX_DIM: u32 = 1 << 24;
/// Upper bound on the number of layers.
pub const MAX_LAYERS: u32 = 4096;
/// A layer's recurrent state may hold at most this many floats per weight of the
/// layer. Real models hold far fewer (a 256-wide layer with 4 heads of 64: 0.02); without
/// a bound, a small file could declare heads whose state takes hundreds of GB.
pub const MAX_STATE_PER_WEIGHT: u64 = 64;

impl ModelConfig {
    /// A post-norm, elu+1, relu config with fast-transformers' defaults.
    pub fn new(d_model: u32, n_layers: u32, n_heads: u32, d_ff: u32) -> Self {
        let head = d_model.checked_div(n_heads).unwrap_or(0);
        ModelConfig {
            d_model,
            n_layers,
            n_heads,
            d_query: head,
            d_value: head,
            d_ff,
            activation: Activation::Relu,
            norm_placement: NormPlacement::Post,
            final_norm: true,
            feature_map: FeatureMap::EluPlusOne,
            feature_dim: 0,
            feature_params: FeatureParams::default(),
            attention_eps: 1e-6,
            layernorm_eps: 1e-5,
            input_kind: InputKind::Vectors,
            positional: Positional::None,
            input_dim: d_model,
            input_projection: false,
            output_kind: OutputKind::Hidden,
            output_dim: 0,
        }
    }

    /// Width of the query/key projections: heads × per-head query width.
    pub fn qk_width(&self) -> usize {
        self.n_heads as usize * self.d_query as usize
    }
    /// Features per head after φ (F): d_query for elu+1 and relu, `feature_dim` for
    /// the random maps.
    pub fn features_per_head(&self) -> u32 {
        if self.feature_map.has_omega() {
            self.feature_dim
        } else {
            self.d_query
        }
    }
    /// Width of the attention's feature vectors: heads × features per head.
    pub fn feature_width(&self) -> usize {
        self.n_heads as usize * self.features_per_head() as usize
    }
    /// Columns M of Ω (0 without one).
    pub fn omega_cols(&self) -> usize {
        self.feature_map.omega_cols(self.feature_dim) as usize
    }
    /// Width of the value projection: heads × per-head value width.
    pub fn v_width(&self) -> usize {
        self.n_heads as usize * self.d_value as usize
    }
    /// Values one position of output has.
    pub fn output_dim(&self) -> usize {
        match self.output_kind {
            OutputKind::Hidden => self.d_model as usize,
            OutputKind::Linear => self.output_dim as usize,
        }
    }
    /// Values one position of vector input has (1 for tokens).
    pub fn input_width(&self) -> usize {
        match self.input_kind {
            InputKind::Tokens => 1,
            InputKind::Vectors => self.input_dim as usize,
        }
    }
    /// f32 values in the recurrent state of one stream: per layer `H·F·Dv + H·F`
    /// (F = [`ModelConfig::features_per_head`]: Dk for elu+1 and relu).
    pub fn state_floats(&self) -> Result<usize, Error> {
        (self.n_heads as usize)
            .checked_mul(self.features_per_head() as usize)
            .and_then(|n| n.checked_mul(self.d_value as usize + 1))
            .and_then(|n| n.checked_mul(self.n_layers as usize))
            .ok_or(Error::SizeOverflow)
    }

    /// Checks ranges and internal consistency; every reader calls this before use.
    pub fn validate(&self) -> Result<(), Error> {
        let dims: [(&'static str, u32); 6] = [
            ("d_model", self.d_model),
            ("n_heads", self.n_heads),
            ("d_query", self.d_query),
            ("d_value", self.d_value),
            ("d_ff", self.d_ff),
            ("input_dim", self.input_dim),
        ];
        for (field, v) in dims {
            if v == 0 || v > MAX_DIM {
                return Err(Error::BadConfig { field, value: v as u64 });
            }
        }
        if self.n_layers == 0 || self.n_layers > MAX_LAYERS {
            return Err(Error::BadConfig { field: "n_layers", value: self.n_layers as u64 });
        }
        let qk = self.n_heads as u64 * self.d_query as u64;
        let v = self.n_heads as u64 * self.d_value as u64;
        if qk > MAX_DIM as u64 {
            return Err(Error::BadConfig { field: "n_heads*d_query", value: qk });
        }
        if v > MAX_DIM as u64 {
            return Err(Error::BadConfig { field: "n_heads*d_value", value: v });
        }
        self.validate_feature_map()?;
        let state = self.n_heads as u64 * self.features_per_head() as u64 * (self.d_value as u64 + 1);
        if state > MAX_STATE_PER_WEIGHT * self.layer_weights() {
            return Err(Error::BadConfig {
                field: "state floats per layer (over 64 per weight of the layer)",
                value: state,
            });
        }
        let eps_ok = |e: f32| e.is_finite() && e >= 0.0;
        if !eps_ok(self.attention_eps) {
            return Err(Error::BadConfig { field: "attention_eps", value: self.attention_eps.to_bits() as u64 });
        }
        if !eps_ok(self.layernorm_eps) {
            return Err(Error::BadConfig { field: "layernorm_eps", value: self.layernorm_eps.to_bits() as u64 });
        }
        match self.input_kind {
            InputKind::Tokens if self.input_projection => {
                return Err(Error::BadConfig { field: "input_projection (token model)", value: 1 })
            }
            InputKind::Vectors if !self.input_projection && self.input_dim != self.d_model => {
                return Err(Error::BadConfig {
                    field: "input_dim (no projection, must equal d_model)",
                    value: self.input_dim as u64,
                })
            }
            _ => {}
        }
        match self.output_kind {
            OutputKind::Hidden if self.output_dim != 0 => {
                return Err(Error::BadConfig { field: "output_dim (no head)", value: self.output_dim as u64 })
            }
            OutputKind::Linear if self.output_dim == 0 || self.output_dim > MAX_DIM => {
                return Err(Error::BadConfig { field: "output_dim", value: self.output_dim as u64 })
            }
            _ => {}
        }
        Ok(())
    }

    /// Weights one layer's matrices hold (the projections, the feed-forward block, Ω):
    /// what the file pays for the state it asks for. Dims are validated first, so
    /// the products fit u64.
    fn layer_weights(&self) -> u64 {
        let (d, qk, v, ff) = (self.d_model as u64, self.qk_width() as u64, self.v_width() as u64, self.d_ff as u64);
        let omega = if self.feature_map.has_omega() { self.d_query as u64 * self.omega_cols() as u64 } else { 0 };
        d * (2 * qk + 2 * v + 2 * ff) + omega
    }

    /// The feature width and constants each map needs, and zeros where it has none.
    fn validate_feature_map(&self) -> Result<(), Error> {
        let (f, p) = (self.feature_dim, self.feature_params);
        let bad = |field: &'static str, value: f32| Err(Error::BadConfig { field, value: value.to_bits() as u64 });
        let positive = |v: f32| v.is_finite() && v > 0.0;
        let width_ok = match self.feature_map {
            FeatureMap::EluPlusOne | FeatureMap::Relu => f == 0,
            FeatureMap::Favor | FeatureMap::RandomFourier => f >= 2 && f % 2 == 0,
            FeatureMap::SmoothedRandomFourier => f >= 3 && f % 2 == 1,
            FeatureMap::GeneralizedRandom => f >= 1,
        };
        if !width_ok || f > MAX_DIM || self.n_heads as u64 * f as u64 > MAX_DIM as u64 {
            return Err(Error::BadConfig { field: "feature_dim (for this feature map)", value: f as u64 });
        }
        // Which constants the map reads: (input_scale, output_scale, log_offset, smoothing).
        use FeatureMap::*;
        let (input, output, log, smooth) = match self.feature_map {
            EluPlusOne | Relu => (false, false, false, false),
            Favor => (true, false, true, false),
            RandomFourier => (true, true, false, false),
            SmoothedRandomFourier => (true, true, false, true),
            GeneralizedRandom => (true, false, false, false),
        };
        // A constant the map does not read is reserved (written as zero); scales are
        // positive, offsets and the smoothing value finite.
        for (field, value, used, scale) in [
            ("feature_params.input_scale", p.input_scale, input, true),
            ("feature_params.output_scale", p.output_scale, output, true),
            ("feature_params.log_offset", p.log_offset, log, false),
            ("feature_params.smoothing", p.smoothing, smooth, false),
        ] {
            let ok = match (used, scale) {
                (false, _) => value.to_bits() == 0,
                (true, true) => positive(value),
                (true, false) => value.is_finite(),
            };
            if !ok {
                return bad(field, value);
            }
        }
        Ok(())
    }
}

/// One line: `d_model 64, 2 layers, 4 heads (query/key 16 + value 16 per head), ffn 256 (relu)`.
impl core::fmt::Display for ModelConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "d_model {}, {} layers, {} heads (query/key {} + value {} per head), ffn {} ({})",
            self.d_model,
            self.n_layers,
            self.n_heads,
            self.d_query,
            self.d_value,
            self.d_ff,
            self.activation.name()
        )?;
        if self.feature_map != FeatureMap::EluPlusOne {
            write!(f, ", feature map {} ({} per head)", self.feature_map.name(), self.features_per_head())?;
        }
        Ok(())
    }
}
