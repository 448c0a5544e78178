//! The scratch one worker computes in: every intermediate of a layer for up to
//! `max_rows` rows (positions of one stream, or one position of several), carved
//! from caller memory by its own exact formula ([`Workspace::floats_for`]).

use super::arena::{ArenaLayout, SessionOptions};
use super::layer::{FeatureScratch, Scratch};
use crate::error::Error;
use crate::format::Model;

pub struct Workspace<'a> {
    pub(crate) scratch: Scratch<'a>,
    max_rows: usize,
}

impl<'a> Workspace<'a> {
    /// Floats a workspace for `max_rows` rows of `model` takes: the arena formula of
    /// [`Model::arena_bytes`] without the state.
    pub fn floats_for(model: &Model, max_rows: usize) -> Result<usize, Error> {
        let layout = ArenaLayout::new(model.config(), model.has_int8(), options(max_rows))?;
        Ok(layout.total_floats()? - layout.state)
    }

    /// A workspace in `floats` (at least [`Workspace::floats_for`]).
    pub fn new(model: &Model, floats: &'a mut [f32], max_rows: usize) -> Result<Self, Error> {
        let layout = ArenaLayout::new(model.config(), model.has_int8(), options(max_rows))?;
        let n = layout.total_floats()? - layout.state;
        let found = floats.len();
        let floats = floats.get_mut(..n).ok_or(Error::BadLength { what: "workspace", expected: n, found })?;
        let (hidden, rest) = floats.split_at_mut(layout.hidden);
        let (branch, rest) = rest.split_at_mut(layout.branch);
        let (query, rest) = rest.split_at_mut(layout.query);
        let (key, rest) = rest.split_at_mut(layout.key);
        let (value, rest) = rest.split_at_mut(layout.value);
        let (attended, rest) = rest.split_at_mut(layout.attended);
        let (ffn, rest) = rest.split_at_mut(layout.ffn);
        let (quant, rest) = rest.split_at_mut(layout.quant);
        let (q_features, rest) = rest.split_at_mut(layout.q_features);
        let (k_features, rest) = rest.split_at_mut(layout.k_features);
        let (projected, zeros) = rest.split_at_mut(layout.projected);
        zeros.fill(0.0); // the Ω projection's bias: nothing writes it again
        let features = FeatureScratch { q: q_features, k: k_features, projected, zeros };
        let scratch = Scratch { hidden, branch, query, key, value, attended, ffn, quant, features };
        Ok(Workspace { scratch, max_rows })
    }

    /// The hidden vectors of the first `rows` rows (`rows × d_model`): what a layer
    /// reads and overwrites.
    pub fn rows(&mut self, rows: usize, d_model: usize) -> Option<&mut [f32]> {
        self.scratch.hidden.get_mut(..rows.checked_mul(d_model)?)
    }

    /// Most rows one forward pass may take.
    pub fn max_rows(&self) -> usize {
        self.max_rows
    }
}

fn options(max_rows: usize) -> SessionOptions {
    SessionOptions { max_chunk: max_rows, kernels: None }
}
