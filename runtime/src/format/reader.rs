//! The zero-copy reader: `Model::from_bytes` validates every offset, length,
//! alignment, shape and enum of a `.lrt` image once, then hands out borrowed views.

use super::bytes::{slice, u16_at, u32_at};
use super::checksum::file_checksum;
use super::layout::{expected_tensor, index_of, tensor_count};
use super::record::{decode_config, Entry, Header};
use super::{
    DType, TensorRole, BUFFER_ALIGN, CONFIG_SIZE, DATA_ALIGN, ENTRY_SIZE, FLAG_POSITIONAL, HEADER_SIZE, KNOWN_FLAGS,
    LAYOUT_INT8_PACKED, LAYOUT_ROW_MAJOR, MAGIC, VERSION_MAJOR,
};
use crate::config::{ModelConfig, Positional};
use crate::error::Error;
use crate::kernels::{Matrix, Weights};
use crate::tensor::{INT8_PACK_COLS, INT8_PACK_ROWS};

/// Widest int8 matrix: 127 · 127 · 131072 < 2³¹, so i32 accumulation cannot overflow.
pub const MAX_INT8_COLS: u32 = 1 << 17;

#[cfg(target_endian = "big")]
compile_error!("linrt borrows little-endian tensors in place and needs a little-endian target");

/// A validated model borrowed from the bytes of a `.lrt` file.
#[derive(Debug, Clone, Copy)]
pub struct Model<'a> {
    bytes: &'a [u8],
    header: Header,
    config: ModelConfig,
    /// Some matrix is int8, so sessions need room for quantized activations.
    has_int8: bool,
}

/// Where one tensor lives and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorInfo {
    pub role: TensorRole,
    pub layer: u32,
    pub dtype: DType,
    pub rank: u8,
    pub dims: [u32; 2],
    pub offset: u64,
    pub size: u64,
}

/// The f32 parameters of one encoder layer, borrowed from the file.
#[derive(Debug, Clone, Copy)]
pub struct LayerWeights<'a> {
    pub q_w: Matrix<'a>,
    pub q_b: &'a [f32],
    pub k_w: Matrix<'a>,
    pub k_b: &'a [f32],
    pub v_w: Matrix<'a>,
    pub v_b: &'a [f32],
    pub o_w: Matrix<'a>,
    pub o_b: &'a [f32],
    pub l1_w: Matrix<'a>,
    pub l1_b: &'a [f32],
    pub l2_w: Matrix<'a>,
    pub l2_b: &'a [f32],
    pub n1_w: &'a [f32],
    pub n1_b: &'a [f32],
    pub n2_w: &'a [f32],
    pub n2_b: &'a [f32],
    /// Random-feature maps: Ωᵀ, `[M, d_query]` (None for elu+1 and relu).
    pub omega: Option<Matrix<'a>>,
}

impl<'a> Model<'a> {
    /// Validates a whole `.lrt` image and borrows it. The buffer must be aligned to
    /// [`BUFFER_ALIGN`] (mmap, `Vec<u8>` and aligned statics are).
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, Error> {
        let len = bytes.len() as u64;
        if bytes.len() < HEADER_SIZE {
            return Err(Error::Truncated { what: "header", needed: HEADER_SIZE as u64, available: len });
        }
        let header = Header::decode(bytes);
        if header.magic != MAGIC {
            return Err(Error::BadMagic);
        }
        if header.major != VERSION_MAJOR {
            return Err(Error::UnsupportedVersion { major: header.major, minor: header.minor });
        }
        if header.header_size as usize != HEADER_SIZE {
            return Err(Error::BadHeaderSize(header.header_size));
        }
        if header.flags & !KNOWN_FLAGS != 0 {
            return Err(Error::UnknownFlags(header.flags));
        }
        if header.file_size != len {
            return Err(Error::FileSizeMismatch { header: header.file_size, actual: len });
        }
        if !(bytes.as_ptr() as usize).is_multiple_of(BUFFER_ALIGN) {
            return Err(Error::Misaligned { what: "model buffer", align: BUFFER_ALIGN as u32 });
        }
        let computed = file_checksum(bytes);
        if computed != header.checksum {
            return Err(Error::ChecksumMismatch { stored: header.checksum, computed });
        }

        // Config: right after the header; later minor versions may make it longer.
        if header.config_offset < HEADER_SIZE as u64 {
            return Err(Error::Overlap { what: "config section", index: 0 });
        }
        if (header.config_size as usize) < CONFIG_SIZE {
            return Err(Error::BadConfig { field: "config_size", value: header.config_size as u64 });
        }
        let config_bytes = slice(bytes, header.config_offset, header.config_size as u64, "config section")?;
        let config = decode_config(config_bytes)?;
        // The flag announces the positional byte: both or neither.
        if (header.flags & FLAG_POSITIONAL != 0) != (config.positional != Positional::None) {
            return Err(Error::BadConfig {
                field: "positional (must match header flag 1)",
                value: header.flags as u64,
            });
        }
        let config_end = header.config_offset + header.config_size as u64;

        let expected = tensor_count(&config);
        if header.tensor_count as usize != expected {
            return Err(Error::BadConfig { field: "tensor_count", value: header.tensor_count as u64 });
        }
        if header.directory_offset < config_end {
            return Err(Error::Overlap { what: "tensor directory", index: 0 });
        }
        let dir_len = header.tensor_count as u64 * ENTRY_SIZE as u64;
        slice(bytes, header.directory_offset, dir_len, "tensor directory")?;
        let dir_end = header.directory_offset + dir_len;

        if header.metadata_offset < dir_end {
            return Err(Error::Overlap { what: "metadata section", index: 0 });
        }
        let meta = slice(bytes, header.metadata_offset, header.metadata_size as u64, "metadata section")?;
        validate_metadata(meta, header.metadata_offset)?;

        let mut model = Model { bytes, header, config, has_int8: false };
        let mut cursor = header.metadata_offset + header.metadata_size as u64;
        for index in 0..expected {
            cursor = model.validate_entry(index, cursor)?;
            model.has_int8 |= model.entry(index).dtype == DType::I8 as u8;
        }
        Ok(model)
    }

    fn entry(&self, index: usize) -> Entry {
        let at = self.header.directory_offset as usize + index * ENTRY_SIZE;
        Entry::decode(self.bytes.get(at..at + ENTRY_SIZE).unwrap_or(&[]))
    }

    /// Checks entry `index` against the config and returns where the next tensor may start.
    fn validate_entry(&self, index: usize, cursor: u64) -> Result<u64, Error> {
        let idx = index as u32;
        let e = self.entry(index);
        let spec = expected_tensor(&self.config, index)
            .ok_or(Error::BadConfig { field: "tensor_count", value: index as u64 })?;
        if e.role != spec.role as u16 || e.layer as u32 != spec.layer {
            return Err(Error::UnexpectedTensor {
                index: idx,
                expected: spec.role,
                expected_layer: spec.layer,
                found_role: e.role as u32,
                found_layer: e.layer as u32,
            });
        }
        let dtype = DType::from_u8(e.dtype)?;
        // 127 · 127 · cols must fit the i32 accumulators of the int8 kernels.
        if dtype == DType::I8 && spec.dims[1] > MAX_INT8_COLS {
            return Err(Error::BadTensor { index: idx, reason: "int8 matrix wider than 131072 columns" });
        }
        let packed = match e.layout {
            LAYOUT_ROW_MAJOR => false,
            LAYOUT_INT8_PACKED if dtype == DType::I8 && e.block_size == 0 => true,
            LAYOUT_INT8_PACKED => {
                return Err(Error::BadTensor {
                    index: idx,
                    reason: "layout 1 (packed) is for int8 with per-row scales",
                })
            }
            other => return Err(Error::UnknownEnum { field: "tensor.layout", value: other as u32 }),
        };
        if e.rank != spec.rank || e.dims != spec.dims {
            let found = if e.rank == spec.rank { e.dims } else { [e.rank as u32, 0] };
            return Err(Error::ShapeMismatch { role: spec.role, layer: spec.layer, expected: spec.dims, found });
        }
        // Vectors (biases, norms), the embedding table and Ω stay f32 in every model.
        let f32_only = spec.rank == 1 || matches!(spec.role, TensorRole::Embedding | TensorRole::FeatureOmega);
        if f32_only && dtype != DType::F32 {
            return Err(Error::UnsupportedDType { role: spec.role, dtype: e.dtype });
        }
        let elements = spec.dims[0] as u64 * spec.dims[1] as u64;
        let data_size = if packed {
            // In u64: on 32-bit targets the padded size of hostile dims overflows usize.
            (spec.dims[0] as u64).next_multiple_of(INT8_PACK_ROWS as u64)
                * (spec.dims[1] as u64).next_multiple_of(INT8_PACK_COLS as u64)
        } else {
            elements * dtype.size()
        };
        if e.data_size != data_size {
            return Err(Error::SizeMismatch {
                role: spec.role,
                layer: spec.layer,
                expected: data_size,
                found: e.data_size,
            });
        }
        let mut end = place(self.bytes, e.data_offset, e.data_size, cursor, idx, "tensor data")?;

        if dtype == DType::I8 {
            let rows = spec.dims[0] as u64;
            let cols = spec.dims[1] as u64;
            let per_row = if e.block_size == 0 { 1 } else { cols.div_ceil(e.block_size as u64) };
            let scales = rows * per_row * 4;
            if e.scales_size != scales {
                return Err(Error::SizeMismatch {
                    role: spec.role,
                    layer: spec.layer,
                    expected: scales,
                    found: e.scales_size,
                });
            }
            end = place(self.bytes, e.scales_offset, e.scales_size, end, idx, "tensor scales")?;
        } else if e.scales_offset != 0 || e.scales_size != 0 || e.block_size != 0 {
            return Err(Error::BadTensor { index: idx, reason: "only int8 tensors have scales" });
        }

        let finite = match dtype {
            DType::F32 => self.f32_at(index)?.iter().all(|v| v.is_finite()),
            // An f16 with all exponent bits set is an infinity or a NaN.
            DType::F16 => self.f16_at(index)?.iter().all(|h| h & 0x7C00 != 0x7C00),
            DType::I8 => {
                if self.i8_at(index)?.contains(&i8::MIN) {
                    return Err(Error::BadTensor {
                        index: idx,
                        reason: "int8 value -128 (the format uses -127..=127)",
                    });
                }
                self.scales_at(index)?.iter().all(|s| s.is_finite() && *s >= 0.0)
            }
        };
        if !finite {
            return Err(Error::NonFiniteWeight { role: spec.role, layer: spec.layer });
        }
        Ok(end)
    }

    fn data(&self, index: usize) -> Result<&'a [u8], Error> {
        let e = self.entry(index);
        slice(self.bytes, e.data_offset, e.data_size, "tensor data")
    }

    fn f16_at(&self, index: usize) -> Result<&'a [u16], Error> {
        bytemuck::try_cast_slice(self.data(index)?).map_err(|_| Error::Misaligned { what: "tensor data", align: 2 })
    }

    fn i8_at(&self, index: usize) -> Result<&'a [i8], Error> {
        Ok(bytemuck::cast_slice(self.data(index)?))
    }

    fn scales_at(&self, index: usize) -> Result<&'a [f32], Error> {
        let e = self.entry(index);
        let data = slice(self.bytes, e.scales_offset, e.scales_size, "tensor scales")?;
        bytemuck::try_cast_slice(data).map_err(|_| Error::Misaligned { what: "tensor scales", align: 4 })
    }

    fn f32_at(&self, index: usize) -> Result<&'a [f32], Error> {
        bytemuck::try_cast_slice(self.data(index)?).map_err(|_| Error::Misaligned { what: "tensor data", align: 4 })
    }

    /// The model's hyperparameters.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Format version of the file, (major, minor).
    pub fn version(&self) -> (u16, u16) {
        (self.header.major, self.header.minor)
    }

    /// CRC-32 of the file; also identifies the model in saved state.
    pub fn checksum(&self) -> u32 {
        self.header.checksum
    }

    /// Size of the whole file in bytes.
    pub fn file_size(&self) -> u64 {
        self.header.file_size
    }

    pub fn tensor_count(&self) -> usize {
        self.header.tensor_count as usize
    }

    /// Directory entry `index`, or None past the end.
    pub fn tensor(&self, index: usize) -> Option<TensorInfo> {
        if index >= self.tensor_count() {
            return None;
        }
        let spec = expected_tensor(&self.config, index)?;
        let e = self.entry(index);
        Some(TensorInfo {
            role: spec.role,
            layer: spec.layer,
            dtype: DType::from_u8(e.dtype).ok()?,
            rank: spec.rank,
            dims: spec.dims,
            offset: e.data_offset,
            size: e.data_size + e.scales_size,
        })
    }

    /// The directory index of `(role, layer)`.
    pub(crate) fn tensor_index(&self, role: TensorRole, layer: u32) -> Result<usize, Error> {
        self.index(role, layer)
    }

    fn index(&self, role: TensorRole, layer: u32) -> Result<usize, Error> {
        index_of(&self.config, role, layer).ok_or(Error::BadConfig { field: role.name(), value: layer as u64 })
    }

    /// The f32 values of `(role, layer)`: vectors and the embedding table.
    pub fn f32_tensor(&self, role: TensorRole, layer: u32) -> Result<&'a [f32], Error> {
        let index = self.index(role, layer)?;
        match self.entry(index).dtype {
            0 => self.f32_at(index),
            dtype => Err(Error::UnsupportedDType { role, dtype }),
        }
    }

    /// The weight matrix `(role, layer)` in whatever dtype it is stored.
    pub fn matrix(&self, role: TensorRole, layer: u32) -> Result<Matrix<'a>, Error> {
        let index = self.index(role, layer)?;
        let e = self.entry(index);
        let weights = match DType::from_u8(e.dtype)? {
            DType::F32 => Weights::F32(self.f32_at(index)?),
            DType::F16 => Weights::F16(self.f16_at(index)?),
            DType::I8 if e.layout == LAYOUT_INT8_PACKED => {
                Weights::I8Packed { q: self.i8_at(index)?, scales: self.scales_at(index)? }
            }
            DType::I8 => {
                Weights::I8 { q: self.i8_at(index)?, scales: self.scales_at(index)?, block: e.block_size as usize }
            }
        };
        Ok(Matrix::new(weights, e.dims[0] as usize, e.dims[1] as usize))
    }

    /// True when some matrix is int8 (sessions then reserve room for quantized activations).
    pub fn has_int8(&self) -> bool {
        self.has_int8
    }

    /// The element type of the model's encoder matrices (layer 0's query projection).
    pub fn weight_dtype(&self) -> DType {
        self.index(TensorRole::QueryWeight, 0)
            .ok()
            .and_then(|i| DType::from_u8(self.entry(i).dtype).ok())
            .unwrap_or(DType::F32)
    }

    /// All parameters of encoder layer `layer`.
    pub fn layer(&self, layer: u32) -> Result<LayerWeights<'a>, Error> {
        use TensorRole::*;
        let t = |role| self.f32_tensor(role, layer);
        let m = |role| self.matrix(role, layer);
        Ok(LayerWeights {
            q_w: m(QueryWeight)?,
            q_b: t(QueryBias)?,
            k_w: m(KeyWeight)?,
            k_b: t(KeyBias)?,
            v_w: m(ValueWeight)?,
            v_b: t(ValueBias)?,
            o_w: m(OutWeight)?,
            o_b: t(OutBias)?,
            l1_w: m(Linear1Weight)?,
            l1_b: t(Linear1Bias)?,
            l2_w: m(Linear2Weight)?,
            l2_b: t(Linear2Bias)?,
            n1_w: t(Norm1Weight)?,
            n1_b: t(Norm1Bias)?,
            n2_w: t(Norm2Weight)?,
            n2_b: t(Norm2Bias)?,
            omega: if self.config.feature_map.has_omega() { Some(m(FeatureOmega)?) } else { None },
        })
    }

    /// Metadata key/value pairs (vocabulary, provenance, …) in file order.
    pub fn metadata(&self) -> MetadataIter<'a> {
        let off = self.header.metadata_offset as usize;
        let meta = self.bytes.get(off..off + self.header.metadata_size as usize).unwrap_or(&[]);
        MetadataIter { meta, at: 4, left: u32_at(meta, 0) }
    }

    /// The value of metadata `key`, if present.
    pub fn metadata_value(&self, key: &str) -> Option<&'a str> {
        self.metadata().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

/// Checks that `[offset, offset+size)` is 64-aligned, starts at or after `cursor`
/// (so sections never overlap) and lies inside the file; returns its end.
fn place(bytes: &[u8], offset: u64, size: u64, cursor: u64, index: u32, what: &'static str) -> Result<u64, Error> {
    if !offset.is_multiple_of(DATA_ALIGN) {
        return Err(Error::Misaligned { what, align: DATA_ALIGN as u32 });
    }
    if offset < cursor {
        return Err(Error::Overlap { what, index });
    }
    slice(bytes, offset, size, what)?;
    Ok(offset + size)
}

/// Metadata: `u32 count`, then per entry `u16 key_len, key, u32 value_len, value`,
/// all UTF-8, exactly filling the section.
fn validate_metadata(meta: &[u8], base: u64) -> Result<(), Error> {
    let bad = |at: usize| Error::BadMetadata { offset: base + at as u64 };
    if meta.len() < 4 {
        return Err(bad(0));
    }
    let mut it = MetadataIter { meta, at: 4, left: u32_at(meta, 0) };
    while it.left > 0 {
        let at = it.at;
        if it.next_checked().is_none() {
            return Err(bad(at));
        }
    }
    if it.at != meta.len() {
        return Err(bad(it.at));
    }
    Ok(())
}

/// Iterates metadata entries as `(key, value)` string pairs.
pub struct MetadataIter<'a> {
    meta: &'a [u8],
    at: usize,
    left: u32,
}

impl<'a> MetadataIter<'a> {
    fn next_checked(&mut self) -> Option<(&'a str, &'a str)> {
        let key_len = self.meta.get(self.at..self.at + 2).map(|b| u16_at(b, 0))? as usize;
        let key_start = self.at + 2;
        let key = self.meta.get(key_start..key_start.checked_add(key_len)?)?;
        let val_at = key_start + key_len;
        let val_len = self.meta.get(val_at..val_at + 4).map(|b| u32_at(b, 0))? as usize;
        let val_start = val_at + 4;
        let value = self.meta.get(val_start..val_start.checked_add(val_len)?)?;
        self.at = val_start + val_len;
        self.left -= 1;
        Some((core::str::from_utf8(key).ok()?, core::str::from_utf8(value).ok()?))
    }
}

impl<'a> Iterator for MetadataIter<'a> {
    type Item = (&'a str, &'a str);
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.next_checked()
    }
}
