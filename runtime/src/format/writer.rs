//! The `.lrt` writer (std only): lays out header, config, directory, metadata and
//! 64-byte aligned tensor data exactly as the reader expects, then seals the checksum.

use std::string::String;
use std::vec::Vec;

use super::checksum::{file_checksum, CHECKSUM_OFFSET};
use super::layout::{expected_tensor, tensor_count};
use super::record::{encode_config, Entry, Header};
use super::{
    DType, TensorRole, CONFIG_SIZE, DATA_ALIGN, ENTRY_SIZE, FLAG_POSITIONAL, HEADER_SIZE, LAYOUT_INT8_PACKED,
    LAYOUT_ROW_MAJOR, MAGIC, VERSION_MAJOR, VERSION_MINOR, VERSION_MINOR_FEATURE_MAPS,
};
use crate::config::{FeatureMap, ModelConfig, Positional};
use crate::error::Error;
use crate::kernels::{pack_rows, packed_len};

/// Collects a config, f32 tensors and metadata, and writes a version 1 image.
#[derive(Debug, Clone)]
pub struct LrtWriter {
    config: ModelConfig,
    /// Element type of the weight matrices (vectors and embeddings stay f32).
    dtype: DType,
    /// int8 only: 0 = one scale per row, else one per this many columns.
    block_size: u32,
    tensors: Vec<(TensorRole, u32, Vec<f32>)>,
    metadata: Vec<(String, String)>,
}

impl LrtWriter {
    pub fn new(config: ModelConfig) -> Self {
        LrtWriter { config, dtype: DType::F32, block_size: 0, tensors: Vec::new(), metadata: Vec::new() }
    }

    /// Adds (or replaces) the f32 tensor `(role, layer)`, row-major `[rows, cols]`.
    pub fn tensor(&mut self, role: TensorRole, layer: u32, values: Vec<f32>) -> &mut Self {
        self.tensors.retain(|(r, l, _)| !(*r == role && *l == layer));
        self.tensors.push((role, layer, values));
        self
    }

    /// Stores the weight matrices as `dtype` (f16, or int8 with one scale per row when
    /// `block_size` is 0, else per `block_size` columns). Vectors and the embedding
    /// table stay f32.
    pub fn weight_dtype(&mut self, dtype: DType, block_size: u32) -> &mut Self {
        self.dtype = dtype;
        self.block_size = if dtype == DType::I8 { block_size } else { 0 };
        self
    }

    /// Adds a metadata entry (vocabulary, provenance, …).
    pub fn metadata(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.metadata.push((key.into(), value.into()));
        self
    }

    /// Serialises the model; fails if a tensor is missing, misshapen or not finite.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let cfg = &self.config;
        cfg.validate()?;
        let count = tensor_count(cfg);

        let mut meta = Vec::new();
        meta.extend_from_slice(&(self.metadata.len() as u32).to_le_bytes());
        for (k, v) in &self.metadata {
            let key_len = u16::try_from(k.len()).map_err(|_| Error::BadMetadata { offset: meta.len() as u64 })?;
            let val_len = u32::try_from(v.len()).map_err(|_| Error::BadMetadata { offset: meta.len() as u64 })?;
            meta.extend_from_slice(&key_len.to_le_bytes());
            meta.extend_from_slice(k.as_bytes());
            meta.extend_from_slice(&val_len.to_le_bytes());
            meta.extend_from_slice(v.as_bytes());
        }
        let metadata_size = u32::try_from(meta.len()).map_err(|_| Error::SizeOverflow)?;

        let config_offset = HEADER_SIZE as u64;
        let directory_offset = config_offset + CONFIG_SIZE as u64;
        let metadata_offset = directory_offset + (count * ENTRY_SIZE) as u64;
        let mut cursor = metadata_offset + meta.len() as u64;

        let mut entries = Vec::with_capacity(count);
        let mut blobs: Vec<Encoded> = Vec::with_capacity(count);
        for index in 0..count {
            let spec = expected_tensor(cfg, index).ok_or(Error::SizeOverflow)?;
            let values = self
                .tensors
                .iter()
                .find(|(r, l, _)| *r == spec.role && *l == spec.layer)
                .map(|(_, _, v)| v.as_slice())
                .ok_or(Error::MissingTensor { role: spec.role, layer: spec.layer })?;
            let elements = spec.dims[0] as u64 * spec.dims[1] as u64;
            if values.len() as u64 != elements {
                return Err(Error::SizeMismatch {
                    role: spec.role,
                    layer: spec.layer,
                    expected: elements * 4,
                    found: values.len() as u64 * 4,
                });
            }
            if values.iter().any(|v| !v.is_finite()) {
                return Err(Error::NonFiniteWeight { role: spec.role, layer: spec.layer });
            }
            // Vectors, the embedding table and Ω stay f32; matrices take the chosen dtype.
            let keeps_f32 = matches!(spec.role, TensorRole::Embedding | TensorRole::FeatureOmega);
            let dtype = if spec.rank == 2 && !keeps_f32 { self.dtype } else { DType::F32 };
            if dtype == DType::I8 && spec.dims[1] > super::reader::MAX_INT8_COLS {
                return Err(Error::BadTensor { index: index as u32, reason: "int8 matrix wider than 131072 columns" });
            }
            let blob = encode(values, dtype, spec.dims[1] as usize, self.block_size as usize)
                .ok_or(Error::NonFiniteWeight { role: spec.role, layer: spec.layer })?;
            let offset = cursor.next_multiple_of(DATA_ALIGN);
            let size = blob.data.len() as u64;
            let scales_offset = if blob.scales.is_empty() { 0 } else { (offset + size).next_multiple_of(DATA_ALIGN) };
            let scales_size = blob.scales.len() as u64;
            entries.push(Entry {
                role: spec.role as u16,
                layer: spec.layer as u16,
                dtype: dtype as u8,
                layout: blob.layout,
                rank: spec.rank,
                dims: spec.dims,
                data_offset: offset,
                data_size: size,
                scales_offset,
                scales_size,
                block_size: if dtype == DType::I8 { self.block_size } else { 0 },
            });
            cursor = if scales_size > 0 { scales_offset + scales_size } else { offset + size };
            blobs.push(blob);
        }
        let file_size = cursor;

        let header = Header {
            magic: MAGIC,
            major: VERSION_MAJOR,
            minor: if cfg.feature_map == FeatureMap::EluPlusOne { VERSION_MINOR } else { VERSION_MINOR_FEATURE_MAPS },
            header_size: HEADER_SIZE as u32,
            flags: if cfg.positional == Positional::None { 0 } else { FLAG_POSITIONAL },
            file_size,
            config_offset,
            config_size: CONFIG_SIZE as u32,
            tensor_count: count as u32,
            directory_offset,
            metadata_offset,
            metadata_size,
            checksum: 0,
        };
        let mut out = Vec::with_capacity(usize::try_from(file_size).map_err(|_| Error::SizeOverflow)?);
        out.extend_from_slice(&header.encode());
        out.extend_from_slice(&encode_config(cfg));
        for e in &entries {
            out.extend_from_slice(&e.encode());
        }
        out.extend_from_slice(&meta);
        for (e, blob) in entries.iter().zip(&blobs) {
            out.resize(e.data_offset as usize, 0);
            out.extend_from_slice(&blob.data);
            if !blob.scales.is_empty() {
                out.resize(e.scales_offset as usize, 0);
                out.extend_from_slice(&blob.scales);
            }
        }
        seal(&mut out);
        Ok(out)
    }
}

/// A tensor's bytes as stored: the data and, for int8, its scales.
struct Encoded {
    data: Vec<u8>,
    scales: Vec<u8>,
    layout: u8,
}

/// Encodes row-major values with rows of `cols`; None if a value does not fit (f16).
fn encode(values: &[f32], dtype: DType, cols: usize, block: usize) -> Option<Encoded> {
    let mut data = Vec::with_capacity(values.len() * dtype.size() as usize);
    let mut scales = Vec::new();
    match dtype {
        DType::F32 => values.iter().for_each(|v| data.extend_from_slice(&v.to_le_bytes())),
        DType::F16 => {
            for &v in values {
                let h = half::f16::from_f32(v);
                if !h.is_finite() {
                    return None;
                }
                data.extend_from_slice(&h.to_bits().to_le_bytes());
            }
        }
        DType::I8 => {
            let span = if block == 0 { cols } else { block };
            for row in values.chunks(cols) {
                for group in row.chunks(span) {
                    let mut q = std::vec![0i8; group.len()];
                    let scale = crate::kernels::quant::quantize(group, &mut q);
                    data.extend(q.iter().map(|&b| b as u8));
                    scales.extend_from_slice(&scale.to_le_bytes());
                }
            }
        }
    }
    // Per-row int8 is stored packed for the 4-row kernels (layout 1).
    if dtype == DType::I8 && block == 0 {
        let rows = values.len() / cols.max(1);
        let q: Vec<i8> = data.iter().map(|&b| b as i8).collect();
        let mut packed = std::vec![0i8; packed_len(rows, cols)];
        pack_rows(&q, rows, cols, &mut packed);
        let data = packed.iter().map(|&b| b as u8).collect();
        return Some(Encoded { data, scales, layout: LAYOUT_INT8_PACKED });
    }
    Some(Encoded { data, scales, layout: LAYOUT_ROW_MAJOR })
}

/// Recomputes and stores the checksum of an image (used by the writer, and by tests
/// that build hostile files which must fail for a reason other than the checksum).
pub fn seal(bytes: &mut [u8]) {
    if bytes.len() >= HEADER_SIZE {
        let crc = file_checksum(bytes);
        bytes[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    }
}
