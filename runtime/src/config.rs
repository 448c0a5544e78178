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

/// The feature map φ of linear attention. Codes 1 (relu) and 2 (FAVOR+ random
/// features, with an `omega` tensor) are reserved in format version 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureMap {
    /// φ(x) = elu(x) + 1, the paper's choice and fast-transformers' default.
    EluPlusOne = 0,
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
enum_codec!(FeatureMap, "config.feature_map", { 0 => EluPlusOne });
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
    /// f32 values in the recurrent state of one stream: per layer `H·Dk·Dv + H·Dk`.
    pub fn state_floats(&self) -> Result<usize, Error> {
        (self.n_heads as usize)
            .checked_mul(self.d_query as usize)
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
        )
    }
}
