//! Byte layout of the fixed records: header, config and directory entry. Encoders
//! and decoders sit side by side so the offsets are written down exactly once.

use super::bytes::{f32_at, u16_at, u32_at, u64_at, u8_at};
use super::{CONFIG_SIZE, ENTRY_SIZE, HEADER_SIZE};
use crate::config::{
    Activation, FeatureMap, FeatureParams, InputKind, ModelConfig, NormPlacement, OutputKind, Positional,
};
use crate::error::Error;

/// The fixed 64-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub magic: [u8; 4],
    pub major: u16,
    pub minor: u16,
    pub header_size: u32,
    pub flags: u32,
    pub file_size: u64,
    pub config_offset: u64,
    pub config_size: u32,
    pub tensor_count: u32,
    pub directory_offset: u64,
    pub metadata_offset: u64,
    pub metadata_size: u32,
    pub checksum: u32,
}

impl Header {
    pub fn decode(b: &[u8]) -> Header {
        Header {
            magic: [u8_at(b, 0), u8_at(b, 1), u8_at(b, 2), u8_at(b, 3)],
            major: u16_at(b, 4),
            minor: u16_at(b, 6),
            header_size: u32_at(b, 8),
            flags: u32_at(b, 12),
            file_size: u64_at(b, 16),
            config_offset: u64_at(b, 24),
            config_size: u32_at(b, 32),
            tensor_count: u32_at(b, 36),
            directory_offset: u64_at(b, 40),
            metadata_offset: u64_at(b, 48),
            metadata_size: u32_at(b, 56),
            checksum: u32_at(b, 60),
        }
    }

    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..4].copy_from_slice(&self.magic);
        b[4..6].copy_from_slice(&self.major.to_le_bytes());
        b[6..8].copy_from_slice(&self.minor.to_le_bytes());
        b[8..12].copy_from_slice(&self.header_size.to_le_bytes());
        b[12..16].copy_from_slice(&self.flags.to_le_bytes());
        b[16..24].copy_from_slice(&self.file_size.to_le_bytes());
        b[24..32].copy_from_slice(&self.config_offset.to_le_bytes());
        b[32..36].copy_from_slice(&self.config_size.to_le_bytes());
        b[36..40].copy_from_slice(&self.tensor_count.to_le_bytes());
        b[40..48].copy_from_slice(&self.directory_offset.to_le_bytes());
        b[48..56].copy_from_slice(&self.metadata_offset.to_le_bytes());
        b[56..60].copy_from_slice(&self.metadata_size.to_le_bytes());
        b[60..64].copy_from_slice(&self.checksum.to_le_bytes());
        b
    }
}

/// Config record offsets (see FORMAT.md, "Config").
pub fn decode_config(b: &[u8]) -> Result<ModelConfig, Error> {
    let mut cfg = ModelConfig {
        d_model: u32_at(b, 0),
        n_layers: u32_at(b, 4),
        n_heads: u32_at(b, 8),
        d_query: u32_at(b, 12),
        d_value: u32_at(b, 16),
        d_ff: u32_at(b, 20),
        activation: Activation::from_code(u8_at(b, 24))?,
        norm_placement: NormPlacement::from_code(u8_at(b, 25))?,
        final_norm: match u8_at(b, 26) {
            0 => false,
            1 => true,
            v => return Err(Error::UnknownEnum { field: "config.final_norm", value: v as u32 }),
        },
        feature_map: FeatureMap::from_code(u8_at(b, 27))?,
        feature_dim: 0, // below
        // 1.2: the random-feature maps' constants, zero for elu+1 and relu.
        feature_params: FeatureParams {
            input_scale: f32_at(b, 56),
            output_scale: f32_at(b, 60),
            log_offset: f32_at(b, 64),
            smoothing: f32_at(b, 68),
        },
        attention_eps: f32_at(b, 32),
        layernorm_eps: f32_at(b, 36),
        input_kind: InputKind::from_code(u8_at(b, 40))?,
        input_projection: match u8_at(b, 41) {
            0 => false,
            1 => true,
            v => return Err(Error::UnknownEnum { field: "config.input_projection", value: v as u32 }),
        },
        positional: Positional::from_code(u8_at(b, 42))?,
        input_dim: u32_at(b, 44),
        output_kind: OutputKind::from_code(u8_at(b, 48))?,
        output_dim: u32_at(b, 52),
    };
    // Bytes 28..32: features per head, which must be d_query for elu+1 and relu
    // (the config then keeps 0); validate() checks the rest against the map.
    let feature_dim = u32_at(b, 28);
    if cfg.feature_map.has_omega() {
        cfg.feature_dim = feature_dim;
    } else if feature_dim != cfg.d_query {
        return Err(Error::BadConfig {
            field: "feature_dim (must equal d_query for elu+1 and relu)",
            value: feature_dim as u64,
        });
    }
    cfg.validate()?;
    Ok(cfg)
}

pub fn encode_config(cfg: &ModelConfig) -> [u8; CONFIG_SIZE] {
    let mut b = [0u8; CONFIG_SIZE];
    b[0..4].copy_from_slice(&cfg.d_model.to_le_bytes());
    b[4..8].copy_from_slice(&cfg.n_layers.to_le_bytes());
    b[8..12].copy_from_slice(&cfg.n_heads.to_le_bytes());
    b[12..16].copy_from_slice(&cfg.d_query.to_le_bytes());
    b[16..20].copy_from_slice(&cfg.d_value.to_le_bytes());
    b[20..24].copy_from_slice(&cfg.d_ff.to_le_bytes());
    b[24] = cfg.activation.code();
    b[25] = cfg.norm_placement.code();
    b[26] = cfg.final_norm as u8;
    b[27] = cfg.feature_map.code();
    b[28..32].copy_from_slice(&cfg.features_per_head().to_le_bytes());
    b[32..36].copy_from_slice(&cfg.attention_eps.to_le_bytes());
    b[36..40].copy_from_slice(&cfg.layernorm_eps.to_le_bytes());
    b[40] = cfg.input_kind.code();
    b[41] = cfg.input_projection as u8;
    b[42] = cfg.positional.code();
    b[44..48].copy_from_slice(&cfg.input_dim.to_le_bytes());
    b[48] = cfg.output_kind.code();
    b[52..56].copy_from_slice(&cfg.output_dim.to_le_bytes());
    let p = cfg.feature_params;
    b[56..60].copy_from_slice(&p.input_scale.to_le_bytes());
    b[60..64].copy_from_slice(&p.output_scale.to_le_bytes());
    b[64..68].copy_from_slice(&p.log_offset.to_le_bytes());
    b[68..72].copy_from_slice(&p.smoothing.to_le_bytes());
    b
}

/// One 64-byte tensor directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub role: u16,
    pub layer: u16,
    pub dtype: u8,
    pub layout: u8,
    pub rank: u8,
    pub dims: [u32; 2],
    pub data_offset: u64,
    pub data_size: u64,
    pub scales_offset: u64,
    pub scales_size: u64,
    pub block_size: u32,
}

impl Entry {
    // Inline: sessions look tensors up by role every step (reader.rs); a call per
    // field read measured 2 % of a small model's int8 step.
    #[inline]
    pub fn decode(b: &[u8]) -> Entry {
        Entry {
            role: u16_at(b, 0),
            layer: u16_at(b, 2),
            dtype: u8_at(b, 4),
            layout: u8_at(b, 5),
            rank: u8_at(b, 6),
            dims: [u32_at(b, 8), u32_at(b, 12)],
            data_offset: u64_at(b, 16),
            data_size: u64_at(b, 24),
            scales_offset: u64_at(b, 32),
            scales_size: u64_at(b, 40),
            block_size: u32_at(b, 48),
        }
    }

    pub fn encode(&self) -> [u8; ENTRY_SIZE] {
        let mut b = [0u8; ENTRY_SIZE];
        b[0..2].copy_from_slice(&self.role.to_le_bytes());
        b[2..4].copy_from_slice(&self.layer.to_le_bytes());
        b[4] = self.dtype;
        b[5] = self.layout;
        b[6] = self.rank;
        b[8..12].copy_from_slice(&self.dims[0].to_le_bytes());
        b[12..16].copy_from_slice(&self.dims[1].to_le_bytes());
        b[16..24].copy_from_slice(&self.data_offset.to_le_bytes());
        b[24..32].copy_from_slice(&self.data_size.to_le_bytes());
        b[32..40].copy_from_slice(&self.scales_offset.to_le_bytes());
        b[40..48].copy_from_slice(&self.scales_size.to_le_bytes());
        b[48..52].copy_from_slice(&self.block_size.to_le_bytes());
        b
    }
}
