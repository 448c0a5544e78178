//! How a session's arena is carved up. Like TFLite Micro's tensor arena, the caller
//! owns one byte slice; the model says exactly how many bytes it needs.

use crate::config::ModelConfig;
use crate::error::Error;
use crate::format::Model;
use crate::kernels::KernelPath;

/// Sizing choices a session is created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    /// Most positions one `step_chunk` call may take (1 = stepping only).
    pub max_chunk: usize,
    /// Force a kernel path (None: the fastest this CPU supports).
    pub kernels: Option<KernelPath>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions { max_chunk: 1, kernels: None }
    }
}

/// Regions are rounded up to 16 floats (64 bytes) so each starts cache-line aligned
/// relative to the arena.
const REGION_FLOATS: usize = 16;

/// Float counts of every region, in arena order.
pub(crate) struct ArenaLayout {
    pub state: usize,
    pub hidden: usize,
    pub branch: usize,
    pub query: usize,
    pub key: usize,
    pub value: usize,
    pub attended: usize,
    pub ffn: usize,
    /// int8 models: quantized activations, `T × widest matrix input` bytes plus a
    /// scale per row.
    pub quant: usize,
    /// Random-feature maps: φ(q) and φ(k), `T × H·F` each, the projections
    /// `u = x'·Ω`, `T·H × M`, and M zeros (the projection's bias). Empty otherwise:
    /// elu+1 and relu apply in place.
    pub q_features: usize,
    pub k_features: usize,
    pub projected: usize,
    pub zeros: usize,
}

impl ArenaLayout {
    pub fn new(cfg: &ModelConfig, int8: bool, opts: SessionOptions) -> Result<Self, Error> {
        if opts.max_chunk == 0 {
            return Err(Error::BadChunkLength { len: 0, max: 0 });
        }
        let t = opts.max_chunk;
        let rows = |width: usize| -> Result<usize, Error> {
            let n = t.checked_mul(width).ok_or(Error::SizeOverflow)?;
            n.checked_next_multiple_of(REGION_FLOATS).ok_or(Error::SizeOverflow)
        };
        let d = cfg.d_model as usize;
        let random = cfg.feature_map.has_omega();
        let omega_cols = cfg.omega_cols();
        let heads = cfg.n_heads as usize;
        let if_random = |n: Result<usize, Error>| if random { n } else { Ok(0) };
        Ok(ArenaLayout {
            state: cfg.state_floats()?.checked_next_multiple_of(REGION_FLOATS).ok_or(Error::SizeOverflow)?,
            hidden: rows(d)?,
            branch: rows(d)?,
            query: rows(cfg.qk_width())?,
            key: rows(cfg.qk_width())?,
            value: rows(cfg.v_width())?,
            attended: rows(cfg.v_width())?,
            ffn: rows(cfg.d_ff as usize)?,
            quant: if int8 { rows(max_matrix_cols(cfg).div_ceil(4) + 1)? } else { 0 },
            q_features: if_random(rows(cfg.feature_width()))?,
            k_features: if_random(rows(cfg.feature_width()))?,
            projected: if_random(rows(heads.checked_mul(omega_cols).ok_or(Error::SizeOverflow)?))?,
            zeros: if_random(omega_cols.checked_next_multiple_of(REGION_FLOATS).ok_or(Error::SizeOverflow))?,
        })
    }

    pub fn total_floats(&self) -> Result<usize, Error> {
        [
            self.hidden,
            self.branch,
            self.query,
            self.key,
            self.value,
            self.attended,
            self.ffn,
            self.quant,
            self.q_features,
            self.k_features,
            self.projected,
            self.zeros,
        ]
        .iter()
        .try_fold(self.state, |acc, &n| acc.checked_add(n))
        .ok_or(Error::SizeOverflow)
    }
}

/// The widest input any matrix of the model reads.
fn max_matrix_cols(cfg: &ModelConfig) -> usize {
    let input = if cfg.input_projection { cfg.input_dim as usize } else { 0 };
    [cfg.d_model as usize, cfg.v_width(), cfg.d_ff as usize, input].into_iter().max().unwrap_or(0)
}

impl Model<'_> {
    /// Exact arena size in bytes for a session with `opts`:
    /// `4 · (state + T·(2·d_model + 2·H·Dk + 2·H·Dv + d_ff) + T·(⌈max_cols/4⌉ + 1))` with
    /// T = `max_chunk`, the last term only for int8 models (max_cols = the widest
    /// matrix input), and every term rounded up to a multiple of 16 floats; a
    /// random-feature map adds `4 · (2·T·H·F + T·H·M + M)`.
    pub fn arena_bytes(&self, opts: SessionOptions) -> Result<usize, Error> {
        ArenaLayout::new(self.config(), self.has_int8(), opts)?
            .total_floats()?
            .checked_mul(4)
            .ok_or(Error::SizeOverflow)
    }
}
