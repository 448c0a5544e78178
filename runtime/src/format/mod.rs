//! The `.lrt` file format, version 1: layout constants, the reader that turns bytes
//! into a validated [`Model`], and (with `std`) the writer and the mmap loader.
//! The specification is `runtime/FORMAT.md`; this module is its implementation.

mod bytes;
pub mod checksum;
#[cfg(feature = "std")]
mod file;
mod layout;
mod reader;
pub mod record;
#[cfg(feature = "std")]
pub mod writer;

#[cfg(feature = "std")]
pub use file::{AlignedBytes, ModelFile};
pub use layout::{expected_tensor, tensor_count, TensorSpec};
pub use reader::{LayerWeights, MetadataIter, Model, TensorInfo};

use crate::error::Error;
pub use crate::tensor::{DType, TensorRole};

/// First four bytes of every `.lrt` file.
pub const MAGIC: [u8; 4] = *b"LNRT";
/// Readers reject files whose major version differs from theirs.
pub const VERSION_MAJOR: u16 = 1;
/// Minor versions only add optional fields in reserved space; readers accept any.
/// 1.1 adds the positional encoding (config byte 42, header flag [`FLAG_POSITIONAL`]).
pub const VERSION_MINOR: u16 = 1;
/// The minor version of files that use a 1.2 field (a feature map other than elu+1).
pub const VERSION_MINOR_FEATURE_MAPS: u16 = 2;
/// Header flag: the config's `positional` byte is in use. Readers reject flags they do
/// not know, so a 1.0 reader refuses such a file instead of silently ignoring the
/// encoding.
pub const FLAG_POSITIONAL: u32 = 1;
/// Every header flag this reader understands.
pub const KNOWN_FLAGS: u32 = FLAG_POSITIONAL;
/// Size of the fixed header.
pub const HEADER_SIZE: usize = 64;
/// Size of the typed model config record (version 1.0).
pub const CONFIG_SIZE: usize = 128;
/// Size of one tensor directory entry.
pub const ENTRY_SIZE: usize = 64;
/// Every tensor's data (and scales) starts on this boundary, so it can be used in
/// place from an mmap or from flash by SIMD loads.
pub const DATA_ALIGN: u64 = 64;
/// The buffer handed to [`Model::from_bytes`] must be aligned to at least this,
/// so f32 tensors can be borrowed in place.
pub const BUFFER_ALIGN: usize = 4;

/// Tensor layout codes: plain row-major, and int8 packed for the 4-row kernels.
pub const LAYOUT_ROW_MAJOR: u8 = 0;
pub const LAYOUT_INT8_PACKED: u8 = 1;

impl DType {
    /// The element type with file code `code`.
    pub fn from_u8(code: u8) -> Result<Self, Error> {
        DType::from_code(code).ok_or(Error::UnknownEnum { field: "tensor.dtype", value: code as u32 })
    }
}

/// The per-layer roles in the order the directory lists them: the first 16 in every
/// model, `FeatureOmega` only with a random-feature map (see [`layer_roles`]).
pub const LAYER_ROLES: [TensorRole; 17] = [
    TensorRole::QueryWeight,
    TensorRole::QueryBias,
    TensorRole::KeyWeight,
    TensorRole::KeyBias,
    TensorRole::ValueWeight,
    TensorRole::ValueBias,
    TensorRole::OutWeight,
    TensorRole::OutBias,
    TensorRole::Linear1Weight,
    TensorRole::Linear1Bias,
    TensorRole::Linear2Weight,
    TensorRole::Linear2Bias,
    TensorRole::Norm1Weight,
    TensorRole::Norm1Bias,
    TensorRole::Norm2Weight,
    TensorRole::Norm2Bias,
    TensorRole::FeatureOmega,
];

/// The per-layer roles a model with `cfg` has.
pub fn layer_roles(cfg: &crate::config::ModelConfig) -> &'static [TensorRole] {
    if cfg.feature_map.has_omega() {
        &LAYER_ROLES
    } else {
        &LAYER_ROLES[..16]
    }
}
