//! Kernel throughput per dtype and path: `cargo bench -p linrt --bench kernels`.
//! Throughput is reported in multiply-adds (×2 for FLOP/s or OP/s). Matrix sizes are
//! the small model's: 256×256 (attention projections), 1024×256 and 256×1024 (FFN),
//! and the base model's FFN, 2048×512 and 512×2048;
//! matrix-matrix runs 64 columns (a 64-position chunk). The attention group times one
//! head's recurrent step (state elements per second), the layer-norm and gelu groups
//! one row.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use linrt::kernels::{pack_rows, packed_len, quant, Matrix, Weights, ALL_PATHS};
use linrt::Kernels;

/// One matrix in the three stored forms, and a bias.
struct Data {
    w: Vec<f32>,
    w16: Vec<u16>,
    /// int8 in the packed 4-row layout `linrt convert` writes.
    w8: Vec<i8>,
    scales: Vec<f32>,
    b: Vec<f32>,
}

fn data(rows: usize, cols: usize) -> Data {
    let w: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0).collect();
    let w16 = w.iter().map(|&v| half::f16::from_f32(v).to_bits()).collect();
    let mut q = vec![0i8; rows * cols];
    let scales = w.chunks(cols).zip(q.chunks_mut(cols)).map(|(r, q)| quant::quantize(r, q)).collect();
    let mut w8 = vec![0i8; packed_len(rows, cols)];
    pack_rows(&q, rows, cols, &mut w8);
    Data { w, w16, w8, scales, b: vec![0.1; rows] }
}

fn bench(c: &mut Criterion) {
    for (rows, cols) in [(256, 256), (1024, 256), (256, 1024), (2048, 512), (512, 2048)] {
        let Data { w, w16, w8, scales, b } = data(rows, cols);
        for t in [1usize, 64] {
            let x: Vec<f32> = (0..t * cols).map(|i| ((i * 31) % 17) as f32 / 8.0 - 1.0).collect();
            let mut y = vec![0f32; t * rows];
            let mut scratch = vec![0f32; t * (cols.div_ceil(4) + 1)];
            let mut group = c.benchmark_group(format!("matmul {rows}x{cols}, {t} column(s)"));
            group.throughput(Throughput::Elements((rows * cols * t) as u64));
            for path in ALL_PATHS.iter().copied().filter(|p| p.is_supported()) {
                let k = Kernels::with_path(path).expect("supported path");
                for (dtype, weights) in [
                    ("f32", Weights::F32(&w)),
                    ("f16", Weights::F16(&w16)),
                    ("int8", Weights::I8Packed { q: &w8, scales: &scales }),
                ] {
                    let m = Matrix::new(weights, rows, cols);
                    // Quantizing the input is part of an int8 matmul's cost: measured inside.
                    group.bench_function(BenchmarkId::new(dtype, path.name()), |bench| {
                        bench.iter(|| {
                            let a = k.activations(&x, t, cols, m.is_int8(), &mut scratch);
                            k.matmul(&m, &b, &a, &mut y)
                        })
                    });
                }
            }
            group.finish();
        }
    }
}

/// One head's recurrent step (state update, readout, normaliser) at the head sizes of
/// the bench models: 16 (tiny), 32 (small), 64 (base) key and value dimensions.
fn attention(c: &mut Criterion) {
    for d in [16usize, 32, 64] {
        let vals = |n: usize, seed: usize| -> Vec<f32> {
            (0..n).map(|i| ((i * 31 + seed) % 17) as f32 / 17.0 + 0.01).collect()
        };
        let (q, k, v) = (vals(d, 1), vals(d, 2), vals(d, 3));
        let (mut s, mut z, mut out) = (vals(d * d, 4), vals(d, 5), vec![0f32; d]);
        let mut group = c.benchmark_group(format!("attention step {d}x{d}"));
        group.throughput(Throughput::Elements((d * d) as u64));
        for path in ALL_PATHS.iter().copied().filter(|p| p.is_supported()) {
            let k8 = Kernels::with_path(path).expect("supported path");
            group.bench_function(path.name(), |bench| {
                bench.iter(|| k8.attention_head_step(&mut s, &mut z, &q, &k, &v, &mut out, 1e-6))
            });
        }
        group.finish();
    }
}

/// An in-place operation on one row, per path, at each width: the row is refilled
/// from the same values before every call.
fn row_op(c: &mut Criterion, name: &str, widths: [usize; 3], op: impl Fn(&Kernels, &mut [f32], &[f32])) {
    for d in widths {
        let vals = |seed: usize| -> Vec<f32> { (0..d).map(|i| ((i * 31 + seed) % 17) as f32 / 4.0 - 2.0).collect() };
        let (x, params) = (vals(1), vals(2));
        let mut row = x.clone();
        let mut group = c.benchmark_group(format!("{name} {d}"));
        group.throughput(Throughput::Elements(d as u64));
        for path in ALL_PATHS.iter().copied().filter(|p| p.is_supported()) {
            let k = Kernels::with_path(path).expect("supported path");
            group.bench_function(path.name(), |bench| {
                bench.iter(|| {
                    row.copy_from_slice(&x);
                    op(&k, &mut row, &params)
                })
            });
        }
        group.finish();
    }
}

/// LayerNorm at the models' widths, gelu at their feed-forward widths.
fn row_ops(c: &mut Criterion) {
    row_op(c, "layer norm", [64, 256, 512], |k, row, p| k.layer_norm(row, p, p, 1e-5));
    row_op(c, "gelu", [256, 1024, 2048], |k, row, _| k.gelu(row));
}

criterion_group!(benches, bench, attention, row_ops);
criterion_main!(benches);
