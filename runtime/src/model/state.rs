//! One stream's recurrent state — the only place its layout is known — and the
//! byte format it is saved in (specified in runtime/FORMAT.md, "Saved state").
//!
//! Layers back to back, each `[S: H×F×Dv][z: H×F]` (F features per head), stored
//! multiplied by 2^-exponent (see [`StreamState::rescale_if_grown`]); the position
//! counts the positions consumed, for the position encoding.

use super::attention::{rescale_if_grown, state_factor, MAX_STATE_EXPONENT};
use crate::config::ModelConfig;
use crate::error::Error;
use crate::format::Model;
use crate::kernels::Kernels;

/// Saved state starts with this many bytes: magic `LRTS`, version, model checksum,
/// float count, position (u64), state exponent (u32), 4 reserved zero bytes.
pub const STATE_HEADER_BYTES: usize = 32;
const STATE_MAGIC: [u8; 4] = *b"LRTS";
/// Version 2 added the position, version 3 the state exponent (version 2 files,
/// with a 24-byte header, are still read: their exponent is 0).
const STATE_VERSION: u32 = 3;
const STATE_V2_HEADER_BYTES: usize = 24;

/// A stream's state in caller memory ([`StreamState::floats_for`] floats).
pub struct StreamState<'a> {
    floats: &'a mut [f32],
    layer_floats: usize,
    /// Offset of z inside a layer: the S matrices come first.
    z_offset: usize,
    /// The model's checksum, to tag saved states.
    checksum: u32,
    position: u64,
    exponent: u32,
    /// Where a forward pass produced NaN or infinite values: the state may hold them,
    /// so the stream refuses to step or be saved until it is reset or restored.
    broken_at: Option<u64>,
}

impl<'a> StreamState<'a> {
    /// Floats a state of this model takes: `L · (H·F·Dv + H·F)`.
    pub fn floats_for(cfg: &ModelConfig) -> Result<usize, Error> {
        cfg.state_floats()
    }

    /// A zero state of `model` in `floats` (at least [`StreamState::floats_for`]).
    pub fn new(model: &Model, floats: &'a mut [f32]) -> Result<Self, Error> {
        let cfg = model.config();
        let n = Self::floats_for(cfg)?;
        let found = floats.len();
        let floats = floats.get_mut(..n).ok_or(Error::BadLength { what: "state", expected: n, found })?;
        let layer_floats = n / cfg.n_layers.max(1) as usize;
        let z_offset = cfg.n_heads as usize * cfg.features_per_head() as usize * cfg.d_value as usize;
        let mut state = StreamState {
            floats,
            layer_floats,
            z_offset,
            checksum: model.checksum(),
            position: 0,
            exponent: 0,
            broken_at: None,
        };
        state.reset();
        Ok(state)
    }

    /// Forgets the stream: zero state and position 0.
    pub fn reset(&mut self) {
        self.floats.fill(0.0);
        self.position = 0;
        self.exponent = 0;
        self.broken_at = None;
    }

    /// Ok while every pass so far kept the stream finite; otherwise the error that
    /// names the position where it broke.
    pub fn check_finite(&self) -> Result<(), Error> {
        match self.broken_at {
            None => Ok(()),
            Some(position) => Err(Error::NonFiniteStep { position }),
        }
    }

    /// Marks the stream broken at `position` (the first position of the failed pass
    /// that a later error reports); the first break is the one kept.
    pub(crate) fn mark_broken(&mut self, position: u64) -> Error {
        let position = *self.broken_at.get_or_insert(position);
        Error::NonFiniteStep { position }
    }

    /// Positions consumed since creation or the last reset.
    #[inline]
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The state is stored multiplied by 2^-this; outputs do not depend on it.
    pub fn exponent(&self) -> u32 {
        self.exponent
    }

    /// The state's values: layers back to back, each `[S: H×F×Dv][z: H×F]`, stored
    /// multiplied by 2^-[`StreamState::exponent`].
    pub fn floats(&self) -> &[f32] {
        self.floats
    }

    /// Takes values a backend kept elsewhere (a GPU's copy of this stream): the same
    /// checks as [`StreamState::restore`] on its values. Nothing changes unless all
    /// of them hold.
    pub fn load(&mut self, floats: &[f32], position: u64, exponent: u32) -> Result<(), Error> {
        if floats.len() != self.floats.len() {
            return Err(Error::BadState { reason: "wrong length for this model" });
        }
        if exponent > MAX_STATE_EXPONENT {
            return Err(Error::BadState { reason: "state exponent out of range" });
        }
        if floats.iter().any(|v| !v.is_finite()) {
            return Err(Error::BadState { reason: "contains NaN or infinite values" });
        }
        self.floats.copy_from_slice(floats);
        self.position = position;
        self.exponent = exponent;
        self.broken_at = None;
        Ok(())
    }

    /// The checksum of the model this state belongs to.
    pub(crate) fn checksum(&self) -> u32 {
        self.checksum
    }

    /// The floats of layer `l`: its S matrices, then its z vectors.
    #[inline]
    pub(crate) fn layer(&mut self, l: usize) -> &mut [f32] {
        &mut self.floats[l * self.layer_floats..(l + 1) * self.layer_floats]
    }

    /// A layer's state split into the S matrices of all heads and their z vectors.
    #[inline]
    pub(crate) fn split_layer(layer: &mut [f32], s_floats: usize) -> (&mut [f32], &mut [f32]) {
        layer.split_at_mut(s_floats)
    }

    /// The factor new terms get: 2^-exponent.
    #[inline]
    pub(crate) fn factor(&self) -> f32 {
        state_factor(self.exponent)
    }

    #[inline]
    pub(crate) fn advance(&mut self, positions: usize) {
        self.position = self.position.saturating_add(positions as u64);
    }

    /// Keeps long streams in range (see `attention::rescale_if_grown`); false when a
    /// normaliser z is NaN or infinite.
    pub(crate) fn rescale_if_grown(&mut self, kern: &Kernels) -> bool {
        match rescale_if_grown(kern, self.floats, self.layer_floats, self.z_offset, self.exponent) {
            Some(exponent) => {
                self.exponent = exponent;
                true
            }
            None => false,
        }
    }

    /// Bytes [`StreamState::save`] writes.
    pub fn saved_bytes(&self) -> usize {
        STATE_HEADER_BYTES + 4 * self.floats.len()
    }

    /// Writes the state (tagged with the model's checksum) to `out`; returns the
    /// number of bytes written. A broken stream (see [`StreamState::check_finite`])
    /// is not saved: [`StreamState::restore`] takes whatever this writes.
    pub fn save(&self, out: &mut [u8]) -> Result<usize, Error> {
        self.check_finite()?;
        if self.floats.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFiniteStep { position: self.position });
        }
        let n = self.saved_bytes();
        if out.len() < n {
            return Err(Error::BadLength { what: "state buffer", expected: n, found: out.len() });
        }
        out[0..4].copy_from_slice(&STATE_MAGIC);
        out[4..8].copy_from_slice(&STATE_VERSION.to_le_bytes());
        out[8..12].copy_from_slice(&self.checksum.to_le_bytes());
        out[12..16].copy_from_slice(&(self.floats.len() as u32).to_le_bytes());
        out[16..24].copy_from_slice(&self.position.to_le_bytes());
        out[24..28].copy_from_slice(&self.exponent.to_le_bytes());
        out[28..32].fill(0);
        for (dst, v) in out[STATE_HEADER_BYTES..n].chunks_exact_mut(4).zip(self.floats.iter()) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
        Ok(n)
    }

    /// Restores a state written by [`StreamState::save`] for the same model.
    /// Nothing changes unless the whole state is valid.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if bytes.len() < 8 {
            return Err(Error::BadState { reason: "wrong length for this model" });
        }
        let word = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        if bytes[0..4] != STATE_MAGIC || !(2..=STATE_VERSION).contains(&word(4)) {
            return Err(Error::BadState { reason: "not a linrt state" });
        }
        let header = if word(4) == 2 { STATE_V2_HEADER_BYTES } else { STATE_HEADER_BYTES };
        if bytes.len() != header + 4 * self.floats.len() {
            return Err(Error::BadState { reason: "wrong length for this model" });
        }
        // Reserved bytes are zero, as save writes them: a state that restores is one
        // that saving writes back byte for byte.
        if header == STATE_HEADER_BYTES && word(28) != 0 {
            return Err(Error::BadState { reason: "reserved header bytes are not zero" });
        }
        let exponent = if header == STATE_HEADER_BYTES { word(24) } else { 0 };
        if exponent > MAX_STATE_EXPONENT {
            return Err(Error::BadState { reason: "state exponent out of range" });
        }
        if word(8) != self.checksum || word(12) as usize != self.floats.len() {
            return Err(Error::BadState { reason: "saved from a different model" });
        }
        let values = bytes[header..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        if values.clone().any(|v| !v.is_finite()) {
            return Err(Error::BadState { reason: "contains NaN or infinite values" });
        }
        for (dst, v) in self.floats.iter_mut().zip(values) {
            *dst = v;
        }
        self.position = u64::from_le_bytes(core::array::from_fn(|i| bytes[16 + i]));
        self.exponent = exponent;
        self.broken_at = None;
        Ok(())
    }
}
