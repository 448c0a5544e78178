//! Shared helpers: deterministic random models built with the writer.
#![allow(dead_code)]

use linrt::format::{expected_tensor, tensor_count};
use linrt::{LrtWriter, ModelConfig, TensorRole};

/// The runtime's generator (`linrt::rng`), started from a raw state
/// (`Rng::from_state`) as these tests always were.
pub use linrt::rng::Rng;

/// What the tests draw.
pub trait Draw {
    fn next(&mut self) -> u64;
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32;
}

impl Draw for Rng {
    fn next(&mut self) -> u64 {
        self.next_u64()
    }
    fn unit(&mut self) -> f32 {
        self.next_f32() * 2.0 - 1.0
    }
}

/// A model with weights scaled like PyTorch's default init and LayerNorm gains near 1.
pub fn random_model(cfg: &ModelConfig, seed: u64) -> Vec<u8> {
    random_model_dtype(cfg, seed, linrt::DType::F32)
}

/// The same with matrices stored as `dtype`.
pub fn random_model_dtype(cfg: &ModelConfig, seed: u64, dtype: linrt::DType) -> Vec<u8> {
    let mut rng = Rng::from_state(seed | 1);
    let mut w = LrtWriter::new(*cfg);
    for i in 0..tensor_count(cfg) {
        let spec = expected_tensor(cfg, i).expect("index inside count");
        let n = spec.dims[0] as usize * spec.dims[1] as usize;
        let is_gain =
            matches!(spec.role, TensorRole::Norm1Weight | TensorRole::Norm2Weight | TensorRole::FinalNormWeight);
        let bound = if spec.role == TensorRole::Embedding { 1.0 } else { 1.0 / (spec.dims[1] as f32).sqrt() };
        let values = (0..n)
            .map(|_| {
                if is_gain {
                    1.0 + 0.2 * rng.unit()
                } else if spec.rank == 1 {
                    0.1 * rng.unit()
                } else {
                    bound * rng.unit()
                }
            })
            .collect();
        w.tensor(spec.role, spec.layer, values);
    }
    w.metadata("purpose", "test");
    w.weight_dtype(dtype, 0);
    w.to_bytes().expect("valid model")
}

/// Arena memory with the 4-byte alignment sessions need whatever the allocator gives
/// bytes (Miri gives `Vec<u8>` any alignment): `u32` words seen as bytes.
pub struct Arena(Vec<u32>);

impl Arena {
    pub fn new(bytes: usize) -> Arena {
        Arena(vec![0; bytes.div_ceil(4)])
    }
    pub fn bytes(&mut self) -> &mut [u8] {
        bytemuck::cast_slice_mut(&mut self.0)
    }
}
