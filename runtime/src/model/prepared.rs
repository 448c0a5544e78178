//! A model made ready for the CPU kernels of one path. The file's layout is already
//! every kernel's but one: the AVX-512 int8 matrix-matrix kernel wants sixteen rows
//! side by side, and preparing rearranges each packed int8 matrix into those panels
//! once ([`crate::kernels::panels`]) instead of on every call. Every other path
//! prepares nothing and reads the file as it is.
//!
//! Prepared arena: one little-endian u64 per tensor of the file (the byte offset of
//! its panels in this arena, or u64::MAX for none), padded to 64 bytes, then the
//! panels of each packed int8 matrix in file order, each at a multiple of 64.

use crate::error::Error;
use crate::format::{DType, LayerWeights, Model, TensorRole};
use crate::kernels::panels::{panels_len, write_panels};
use crate::kernels::{Kernels, Matrix, Weights};

/// No panels for this tensor.
const NONE: u64 = u64::MAX;

/// A model and what the CPU backend prepared for it.
#[derive(Clone, Copy)]
pub struct CpuPrepared<'m> {
    model: Model<'m>,
    /// Empty: nothing prepared (the path reads the file's layout).
    arena: &'m [u8],
}

impl<'m> CpuPrepared<'m> {
    /// The model as stored, nothing rearranged: what [`super::Session::new`] runs.
    pub fn unprepared(model: &Model<'m>) -> CpuPrepared<'m> {
        CpuPrepared { model: *model, arena: &[] }
    }

    /// Bytes [`CpuPrepared::prepare`] needs for `model` on `kernels`' path.
    pub fn bytes(kernels: &Kernels, model: &Model) -> Result<usize, Error> {
        if !kernels.uses_panels() {
            return Ok(0);
        }
        let mut total = offsets_len(model);
        for index in 0..model.tensor_count() {
            if let Some(m) = packed_matrix(model, index)? {
                total = total.checked_add(panels_len(m.rows, m.cols)).ok_or(Error::SizeOverflow)?;
            }
        }
        Ok(total)
    }

    /// Rearranges `model`'s packed int8 matrices into `arena` (at least
    /// [`CpuPrepared::bytes`]) where `kernels`' path reads panels.
    pub fn prepare(kernels: &Kernels, model: &Model<'m>, arena: &'m mut [u8]) -> Result<CpuPrepared<'m>, Error> {
        let needed = Self::bytes(kernels, model)?;
        if needed == 0 {
            return Ok(Self::unprepared(model));
        }
        if arena.len() < needed {
            return Err(Error::ArenaTooSmall { needed, given: arena.len() });
        }
        let (arena, _) = <[u8]>::split_at_mut(arena, needed);
        let (offsets, panels) = arena.split_at_mut(offsets_len(model));
        let mut at = 0;
        for (index, slot) in offsets.chunks_exact_mut(8).enumerate() {
            let mut entry = NONE;
            if let Some(Matrix { weights: Weights::I8Packed { q, .. }, rows, cols, .. }) = packed_matrix(model, index)?
            {
                let len = panels_len(rows, cols);
                write_panels(q, rows, cols, &mut panels[at..at + len]);
                entry = (offsets_len(model) + at) as u64;
                at += len;
            }
            slot.copy_from_slice(&entry.to_le_bytes());
        }
        Ok(CpuPrepared { model: *model, arena })
    }

    #[inline]
    pub fn model(&self) -> &Model<'m> {
        &self.model
    }

    /// True when some matrix runs from panels.
    #[inline]
    pub fn has_panels(&self) -> bool {
        !self.arena.is_empty()
    }

    /// The weight matrix `(role, layer)`, with its panels where prepared.
    #[inline]
    pub fn matrix(&self, role: TensorRole, layer: u32) -> Result<Matrix<'m>, Error> {
        let mut m = self.model.matrix(role, layer)?;
        if self.has_panels() {
            m.panels = self.panels_of(self.model.tensor_index(role, layer)?, &m);
        }
        Ok(m)
    }

    /// All parameters of encoder layer `layer`, with panels where prepared.
    #[inline]
    pub fn layer(&self, layer: u32) -> Result<LayerWeights<'m>, Error> {
        use TensorRole::*;
        let mut w = self.model.layer(layer)?;
        if self.has_panels() {
            let matrices = [
                (&mut w.q_w, QueryWeight),
                (&mut w.k_w, KeyWeight),
                (&mut w.v_w, ValueWeight),
                (&mut w.o_w, OutWeight),
                (&mut w.l1_w, Linear1Weight),
                (&mut w.l2_w, Linear2Weight),
            ];
            for (m, role) in matrices {
                m.panels = self.panels_of(self.model.tensor_index(role, layer)?, m);
            }
        }
        Ok(w)
    }

    /// Tensor `index`'s panels (`m` is its matrix), if prepared.
    fn panels_of(&self, index: usize, m: &Matrix) -> Option<&'m [u8]> {
        let slot = self.arena.get(index * 8..index * 8 + 8)?;
        let at = u64::from_le_bytes(slot.try_into().ok()?);
        if at == NONE {
            return None;
        }
        self.arena.get(at as usize..)?.get(..panels_len(m.rows, m.cols))
    }
}

/// The offset table's bytes: 8 per tensor, padded to 64.
fn offsets_len(model: &Model) -> usize {
    (model.tensor_count() * 8).next_multiple_of(64)
}

/// Tensor `index` as a matrix when it is packed int8.
fn packed_matrix<'m>(model: &Model<'m>, index: usize) -> Result<Option<Matrix<'m>>, Error> {
    let Some(info) = model.tensor(index) else { return Ok(None) };
    if info.rank != 2 || info.dtype != DType::I8 {
        return Ok(None);
    }
    let m = model.matrix(info.role, info.layer)?;
    Ok(matches!(m.weights, Weights::I8Packed { .. }).then_some(m))
}
