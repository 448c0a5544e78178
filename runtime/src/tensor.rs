//! What a stored tensor is (its role) and holds (its element type): a leaf module
//! that both the format reader and the error type use, so neither depends on the
//! other for them.

/// Element type of a stored tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32 = 0,
    /// IEEE binary16, widened to f32 for compute.
    F16 = 1,
    /// Symmetric int8 with f32 scales per output row or per block of a row.
    I8 = 2,
}

impl DType {
    /// The element type with file code `code` (`format` turns None into an error).
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(DType::F32),
            1 => Some(DType::F16),
            2 => Some(DType::I8),
            _ => None,
        }
    }
    /// Bytes per element of the data section.
    pub fn size(self) -> u64 {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
            DType::I8 => 1,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::I8 => "int8",
        }
    }
}

/// The packed int8 layout of a stored matrix (layout code 1, runtime/FORMAT.md):
/// rows in groups of this many, each group stored as blocks of
/// [`INT8_PACK_COLS`] columns of its rows back to back, zero-padded.
pub const INT8_PACK_ROWS: usize = 4;
/// Columns per block in the packed int8 layout.
pub const INT8_PACK_COLS: usize = 64;

macro_rules! tensor_roles {
    ($($variant:ident = $code:literal, $name:literal;)+) => {
        /// What a tensor is for. Per-layer roles are combined with a layer index.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum TensorRole {
            $($variant = $code,)+
        }
        impl TensorRole {
            pub fn from_u16(code: u16) -> Option<Self> {
                match code {
                    $($code => Some(TensorRole::$variant),)+
                    _ => None,
                }
            }
            /// The fast-transformers style parameter name (without the layer prefix).
            pub fn name(self) -> &'static str {
                match self {
                    $(TensorRole::$variant => $name,)+
                }
            }
        }
    };
}

tensor_roles! {
    Embedding = 1, "embedding.weight";
    InputWeight = 2, "input_projection.weight";
    InputBias = 3, "input_projection.bias";
    FinalNormWeight = 4, "norm.weight";
    FinalNormBias = 5, "norm.bias";
    OutputWeight = 6, "output_projection.weight";
    OutputBias = 7, "output_projection.bias";
    QueryWeight = 16, "attention.query_projection.weight";
    QueryBias = 17, "attention.query_projection.bias";
    KeyWeight = 18, "attention.key_projection.weight";
    KeyBias = 19, "attention.key_projection.bias";
    ValueWeight = 20, "attention.value_projection.weight";
    ValueBias = 21, "attention.value_projection.bias";
    OutWeight = 22, "attention.out_projection.weight";
    OutBias = 23, "attention.out_projection.bias";
    Linear1Weight = 24, "linear1.weight";
    Linear1Bias = 25, "linear1.bias";
    Linear2Weight = 26, "linear2.weight";
    Linear2Bias = 27, "linear2.bias";
    Norm1Weight = 28, "norm1.weight";
    Norm1Bias = 29, "norm1.bias";
    Norm2Weight = 30, "norm2.weight";
    Norm2Bias = 31, "norm2.bias";
    // 1.2, random-feature maps only: Ω transposed, `[M, d_query]`, always f32.
    FeatureOmega = 32, "attention.inner_attention.feature_map.omega";
}

impl TensorRole {
    /// True for roles repeated in every layer.
    pub fn is_per_layer(self) -> bool {
        (self as u16) >= 16
    }
}
