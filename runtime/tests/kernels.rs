//! One harness for every kernel path this CPU can run: each is checked against the
//! scalar twin on odd sizes and misaligned slices, for f32, f16 and int8 weights.
//! `LINRT_EXPECT_KERNELS=<path>` makes the run fail unless that path is detected
//! (CI sets it under qemu for each emulated CPU, so a missing path is never skipped).

mod common;

use common::{Draw, Rng};
use linrt::kernels::{pack_rows, packed_len, quant, scalar, Matrix, Weights, ALL_PATHS};
use linrt::{Error, KernelPath, Kernels};

const SIZES: [usize; 8] = [1, 3, 17, 63, 64, 65, 255, 1000];

struct Case {
    rows: usize,
    cols: usize,
    w: Vec<f32>,
    w16: Vec<u16>,
    w8: Vec<i8>,
    /// `w8` in the packed 4-row layout.
    p8: Vec<i8>,
    s8: Vec<f32>,
    b: Vec<f32>,
    x: Vec<f32>,
}

fn case(rows: usize, cols: usize, seed: u64) -> Case {
    let mut rng = Rng::from_state(seed);
    let w: Vec<f32> = (0..rows * cols).map(|_| rng.unit()).collect();
    let w16 = w.iter().map(|&v| half::f16::from_f32(v).to_bits()).collect();
    let mut w8 = vec![0i8; rows * cols];
    let s8 = w.chunks(cols).zip(w8.chunks_mut(cols)).map(|(r, q)| quant::quantize(r, q)).collect();
    let mut p8 = vec![0i8; packed_len(rows, cols)];
    pack_rows(&w8, rows, cols, &mut p8);
    let b = (0..rows).map(|_| rng.unit()).collect();
    // One extra leading value so the kernels also see a misaligned slice.
    let x = (0..cols + 1).map(|_| 3.0 * rng.unit()).collect();
    Case { rows, cols, w, w16, w8, p8, s8, b, x }
}

fn run(k: &Kernels, c: &Case, weights: Weights, x: &[f32]) -> Vec<f32> {
    let m = Matrix::new(weights, c.rows, c.cols);
    let mut y = vec![0f32; c.rows];
    let mut scratch = vec![0f32; c.cols.div_ceil(4) + 1];
    let a = k.activations(x, 1, c.cols, m.is_int8(), &mut scratch);
    k.matmul(&m, &c.b, &a, &mut y);
    y
}

fn close(a: &[f32], b: &[f32], cols: usize) -> bool {
    // Different summation orders: allow a few ulps per term.
    let tol = 1e-6 * (cols as f32).sqrt() * 8.0;
    a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
}

#[test]
fn every_supported_path_matches_scalar() {
    let scalar = Kernels::with_path(KernelPath::Scalar).unwrap();
    let paths: Vec<KernelPath> = ALL_PATHS.iter().copied().filter(|p| p.is_supported()).collect();
    eprintln!("paths on this CPU: {:?}", paths.iter().map(|p| p.name()).collect::<Vec<_>>());
    for &path in &paths {
        let k = Kernels::with_path(path).unwrap();
        for (i, &cols) in SIZES.iter().enumerate() {
            for rows in [1, 5, 33] {
                let c = case(rows, cols, 7 + i as u64 * 31 + rows as u64);
                for x in [&c.x[..cols], &c.x[1..]] {
                    let (a, b) = (run(&k, &c, Weights::F32(&c.w), x), run(&scalar, &c, Weights::F32(&c.w), x));
                    assert!(close(&a, &b, cols), "{} f32 {rows}x{cols}: {a:?} vs {b:?}", path.name());
                    let (a, b) = (run(&k, &c, Weights::F16(&c.w16), x), run(&scalar, &c, Weights::F16(&c.w16), x));
                    assert!(close(&a, &b, cols), "{} f16 {rows}x{cols}", path.name());
                    let q = Weights::I8 { q: &c.w8, scales: &c.s8, block: 0 };
                    // Integer dot products are exact: every path gives the same bits,
                    // row-major or packed.
                    let want = run(&scalar, &c, q, x);
                    assert_eq!(run(&k, &c, q, x), want, "{} int8 {rows}x{cols}", path.name());
                    let packed = Weights::I8Packed { q: &c.p8, scales: &c.s8 };
                    assert_eq!(run(&k, &c, packed, x), want, "{} packed int8 {rows}x{cols}", path.name());
                }
            }
        }
    }
}

#[test]
fn matrix_matrix_matches_matrix_vector() {
    // t positions at once (the chunk path) give the same bits as one at a time.
    let scalar = Kernels::with_path(KernelPath::Scalar).unwrap();
    for (rows, cols) in [(1, 1), (5, 63), (8, 64), (13, 130), (33, 255), (20, 1030), (35, 2100)] {
        let c = case(rows, cols, rows as u64 * 7 + cols as u64);
        for t in [1, 2, 3, 4, 5, 9, 16, 17, 21, 70] {
            let mut rng = Rng::from_state(t as u64);
            let x: Vec<f32> = (0..t * cols).map(|_| 2.0 * rng.unit()).collect();
            // The same matrix rearranged into panels (what the CPU backend prepares
            // for the AVX-512 kernel; paths without a panel kernel ignore them).
            let mut panels = vec![0u8; linrt::kernels::panels::panels_len(rows, cols)];
            linrt::kernels::panels::write_panels(&c.p8, rows, cols, &mut panels);
            for path in ALL_PATHS.iter().copied().filter(|p| p.is_supported()) {
                let k = Kernels::with_path(path).unwrap();
                let packed = Weights::I8Packed { q: &c.p8, scales: &c.s8 };
                for prepared in [None, Some(&panels[..])] {
                    let m = Matrix { panels: prepared, ..Matrix::new(packed, rows, cols) };
                    let mut scratch = vec![0f32; t * (cols.div_ceil(4) + 1)];
                    let a = k.activations(&x, t, cols, true, &mut scratch);
                    let mut y = vec![0f32; t * rows];
                    k.matmul(&m, &c.b, &a, &mut y);
                    for p in 0..t {
                        let one = run(&scalar, &c, packed, &x[p * cols..(p + 1) * cols]);
                        assert_eq!(
                            &y[p * rows..(p + 1) * rows],
                            &one[..],
                            "{} t={t} {rows}x{cols} position {p}, panels {}",
                            path.name(),
                            prepared.is_some()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn float_matrix_matrix_matches_scalar_matrix_vector() {
    // Chunks and batches of positions with f32 and f16 weights (every SIMD path: four
    // per pass over the weights) against the scalar twin one position at a time; the
    // sums run in another order, so to f32 rounding. x starts one float in, misaligned.
    let scalar = Kernels::with_path(KernelPath::Scalar).unwrap();
    for (rows, cols) in [(1, 1), (3, 17), (5, 63), (8, 64), (13, 130), (33, 255), (7, 1000)] {
        let c = case(rows, cols, rows as u64 * 11 + cols as u64);
        for t in [1, 3, 4, 5, 8, 9, 17] {
            let mut rng = Rng::from_state(t as u64 + 40);
            let x: Vec<f32> = (0..t * cols + 1).map(|_| 2.0 * rng.unit()).collect();
            let x = &x[1..];
            for (dtype, weights) in [("f32", Weights::F32(&c.w)), ("f16", Weights::F16(&c.w16))] {
                let m = Matrix::new(weights, rows, cols);
                for path in ALL_PATHS.iter().copied().filter(|p| p.is_supported()) {
                    let k = Kernels::with_path(path).unwrap();
                    let a = k.activations(x, t, cols, false, &mut []);
                    let mut y = vec![0f32; t * rows];
                    k.matmul(&m, &c.b, &a, &mut y);
                    for p in 0..t {
                        let xp = &x[p * cols..(p + 1) * cols];
                        let one = run(&scalar, &c, weights, xp);
                        let scale: f32 = xp.iter().map(|v| v.abs()).sum::<f32>() + 1.0;
                        for (r, (got, want)) in y[p * rows..(p + 1) * rows].iter().zip(&one).enumerate() {
                            assert!(
                                (got - want).abs() <= 1e-6 * scale,
                                "{} {dtype} t={t} {rows}x{cols} position {p} row {r}: {got} vs {want}",
                                path.name()
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn activation_quantization_is_identical_on_every_path() {
    for (i, &n) in SIZES.iter().enumerate() {
        let mut rng = Rng::from_state(100 + i as u64);
        let x: Vec<f32> = (0..n + 1).map(|_| 5.0 * rng.unit()).collect();
        // Halves exactly (the scale is 1 when the largest value is 127): rounding
        // ties go to even on every path. And all zeros: scale 0.
        let ties: Vec<f32> = (0..n).map(|j| if j == 0 { 127.0 } else { (j % 9) as f32 - 4.5 }).collect();
        let zeros = vec![0f32; n];
        for x in [&x[..n], &x[1..], &ties[..], &zeros[..]] {
            let mut want = vec![0i8; n];
            let s = quant::quantize(x, &mut want);
            for path in ALL_PATHS.iter().copied().filter(|p| p.is_supported()) {
                let mut got = vec![0i8; n];
                assert_eq!(Kernels::with_path(path).unwrap().quantize(x, &mut got), s, "{}", path.name());
                assert_eq!(got, want, "{} quantize n={n}", path.name());
            }
        }
    }
}

#[test]
fn feature_map_is_identical_on_every_path() {
    for (i, &n) in SIZES.iter().enumerate() {
        let mut rng = Rng::from_state(300 + i as u64);
        // Wide enough to reach the clamp at -87, with exact zeros and both signs of zero.
        let mut x: Vec<f32> = (0..n + 1).map(|_| 40.0 * rng.unit() - 20.0 * rng.unit().abs()).collect();
        for (j, special) in [0.0, -0.0, -87.0, -87.5, -1e-30, 1e-30, -200.0].into_iter().enumerate() {
            if let Some(v) = x.get_mut(j * 7) {
                *v = special;
            }
        }
        for x in [&x[..n], &x[1..]] {
            let mut want = x.to_vec();
            scalar::elu_plus_one(&mut want);
            assert!(want.iter().all(|v| *v >= 0.0 && v.is_finite()));
            for path in ALL_PATHS.iter().copied().filter(|p| p.is_supported()) {
                let mut got = x.to_vec();
                Kernels::with_path(path).unwrap().elu_plus_one(&mut got);
                let (g, w): (Vec<u32>, Vec<u32>) =
                    (got.iter().map(|v| v.to_bits()).collect(), want.iter().map(|v| v.to_bits()).collect());
                assert_eq!(g, w, "{} elu+1 n={n}", path.name());
            }
        }
    }
}

#[test]
fn attention_step_is_identical_on_every_path() {
    for (dk, dv) in [(1, 1), (5, 3), (16, 16), (32, 32), (7, 40), (64, 17)] {
        let mut rng = Rng::from_state(dk as u64 * 131 + dv as u64);
        let mut gen = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.unit().abs() + 0.01).collect() };
        let (q, k, v, s0, z0) = (gen(dk), gen(dk), gen(dv), gen(dk * dv), gen(dk));
        let (mut s_want, mut z_want, mut o_want) = (s0.clone(), z0.clone(), vec![0f32; dv]);
        linrt::kernels::scalar::attention_head_step(&mut s_want, &mut z_want, &q, &k, &v, &mut o_want, 1e-6);
        for path in ALL_PATHS.iter().copied().filter(|p| p.is_supported()) {
            let (mut s, mut z, mut o) = (s0.clone(), z0.clone(), vec![0f32; dv]);
            Kernels::with_path(path).unwrap().attention_head_step(&mut s, &mut z, &q, &k, &v, &mut o, 1e-6);
            assert_eq!((&s, &z, &o), (&s_want, &z_want, &o_want), "{} dk={dk} dv={dv}", path.name());
        }
    }
}

#[test]
fn layer_norm_is_identical_on_every_path() {
    // Odd sizes around the 16-lane sums and the vector widths, misaligned too.
    for n in [1, 3, 4, 8, 15, 16, 17, 31, 63, 64, 65, 255, 1000] {
        let mut rng = Rng::from_state(n as u64 + 11);
        let mut gen = |len: usize, shift: f32| -> Vec<f32> { (0..len).map(|_| 2.0 * rng.unit() + shift).collect() };
        let (x0, gamma, beta) = (gen(n + 1, 0.7), gen(n + 1, 1.0), gen(n + 1, 0.0));
        for offset in [0, 1] {
            let (g, b) = (&gamma[offset..offset + n], &beta[offset..offset + n]);
            let mut want = x0[offset..offset + n].to_vec();
            linrt::kernels::scalar::layer_norm(&mut want, g, b, 1e-5);
            // The twin against a float64 LayerNorm.
            let xs = &x0[offset..offset + n];
            let mean = xs.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            let var = xs.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
            for (i, w) in want.iter().enumerate() {
                let exact = (xs[i] as f64 - mean) / (var + 1e-5).sqrt() * g[i] as f64 + b[i] as f64;
                assert!((*w as f64 - exact).abs() < 1e-5 * (1.0 + exact.abs()), "n={n}: {w} vs {exact}");
            }
            for path in ALL_PATHS.iter().copied().filter(|p| p.is_supported()) {
                let mut buf = x0.clone();
                let got = &mut buf[offset..offset + n];
                Kernels::with_path(path).unwrap().layer_norm(got, g, b, 1e-5);
                assert_eq!(got, &want[..], "{} n={n} offset {offset}", path.name());
            }
        }
    }
}

#[test]
fn gelu_is_identical_on_every_path_and_close_to_exact() {
    use linrt::kernels::scalar;
    // The twin's erf against float64 erf on a dense grid, beyond the clamp too.
    for i in -60_000..=60_000 {
        let x = i as f32 * 1e-4;
        let err = (scalar::erf(x) as f64 - libm::erf(x as f64)).abs();
        assert!(err <= 5e-7, "erf({x}): off by {err}");
    }
    // Every path gives the twin's bits, on odd lengths, NaN and infinities included.
    let mut rng = Rng::from_state(99);
    let specials =
        [0.0, -0.0, 1e-30, -1e-30, 4.0 * std::f32::consts::SQRT_2, -6.0, 9.0, f32::INFINITY, f32::NEG_INFINITY];
    for n in [1, 3, 7, 8, 9, 17, 64, 1000] {
        let x: Vec<f32> =
            (0..n).map(|i| if i % 5 == 4 { specials[i % specials.len()] } else { 6.0 * rng.unit() }).collect();
        let mut want = x.clone();
        scalar::gelu(&mut want);
        for (&xi, &w) in x.iter().zip(&want) {
            let exact = 0.5 * xi as f64 * (1.0 + libm::erf(xi as f64 / std::f64::consts::SQRT_2));
            if xi.is_finite() {
                assert!((w as f64 - exact).abs() <= 1e-6 * (1.0 + xi.abs() as f64), "gelu({xi}) = {w}, exact {exact}");
            }
        }
        for path in ALL_PATHS.iter().copied().filter(|p| p.is_supported()) {
            let mut got = x.clone();
            Kernels::with_path(path).unwrap().gelu(&mut got);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{} n={n}", path.name());
        }
    }
    let mut nan = [f32::NAN; 9];
    for path in ALL_PATHS.iter().copied().filter(|p| p.is_supported()) {
        Kernels::with_path(path).unwrap().gelu(&mut nan);
        assert!(nan.iter().all(|v| v.is_nan()), "{}: NaN must stay NaN", path.name());
    }
}

#[test]
fn int8_weights_also_take_unquantized_inputs() {
    // A mixed file (an int8 matrix fed by inputs prepared without quantization) still
    // computes W·x, with the weights dequantized.
    let c = case(9, 70, 5);
    let k = Kernels::detect();
    for weights in [Weights::I8 { q: &c.w8, scales: &c.s8, block: 0 }, Weights::I8Packed { q: &c.p8, scales: &c.s8 }] {
        let m = Matrix::new(weights, c.rows, c.cols);
        let mut y = vec![0f32; c.rows];
        let a = k.activations(&c.x[..c.cols], 1, c.cols, false, &mut []);
        k.matmul(&m, &c.b, &a, &mut y);
        for (r, yr) in y.iter().enumerate() {
            let want: f32 = (0..c.cols).map(|j| c.w8[r * c.cols + j] as f32 * c.s8[r] * c.x[j]).sum::<f32>() + c.b[r];
            assert!((yr - want).abs() < 1e-4, "row {r}: {yr} vs {want}");
        }
    }
}

#[test]
fn wide_rows_match_scalar() {
    // Kernels may prepare x differently for short and long rows (AVX-512 packed int8
    // switches at 2048 columns): both sides of each such edge, every path.
    let scalar = Kernels::with_path(KernelPath::Scalar).unwrap();
    for path in ALL_PATHS.iter().copied().filter(|p| p.is_supported()) {
        let k = Kernels::with_path(path).unwrap();
        for cols in [2047, 2048, 2049, 4100] {
            let c = case(6, cols, cols as u64);
            let x = &c.x[1..];
            let (a, b) = (run(&k, &c, Weights::F32(&c.w), x), run(&scalar, &c, Weights::F32(&c.w), x));
            assert!(close(&a, &b, cols), "{} f32 6x{cols}", path.name());
            let want = run(&scalar, &c, Weights::I8 { q: &c.w8, scales: &c.s8, block: 0 }, x);
            let packed = Weights::I8Packed { q: &c.p8, scales: &c.s8 };
            assert_eq!(run(&k, &c, packed, x), want, "{} packed int8 6x{cols}", path.name());
        }
    }
}

#[test]
fn int8_extremes_do_not_saturate() {
    // All weights and activations at ±127: the largest products the format allows.
    let cols = 1000;
    let w8 = vec![-127i8; cols];
    let xq: Vec<f32> = (0..cols).map(|i| if i % 2 == 0 { -1.0 } else { 1.0 }).collect();
    let mut p8 = vec![0i8; packed_len(1, cols)];
    pack_rows(&w8, 1, cols, &mut p8);
    let c = Case { rows: 1, cols, w: vec![], w16: vec![], w8, p8, s8: vec![1.0], b: vec![0.0], x: xq };
    let q = Weights::I8 { q: &c.w8, scales: &c.s8, block: 0 };
    let packed = Weights::I8Packed { q: &c.p8, scales: &c.s8 };
    let scalar = Kernels::with_path(KernelPath::Scalar).unwrap();
    let want = run(&scalar, &c, q, &c.x);
    for path in ALL_PATHS.iter().copied().filter(|p| p.is_supported()) {
        let k = Kernels::with_path(path).unwrap();
        assert_eq!(run(&k, &c, q, &c.x), want, "{}", path.name());
        assert_eq!(run(&k, &c, packed, &c.x), want, "{} packed", path.name());
    }
}

#[test]
fn the_expected_path_is_detected() {
    let detected = Kernels::detect().path();
    assert!(detected.is_supported());
    if let Ok(expected) = std::env::var("LINRT_EXPECT_KERNELS") {
        assert_eq!(detected.name(), expected, "this CPU should run the {expected} kernels");
    }
}

#[test]
fn forcing_an_unsupported_path_is_an_error() {
    for path in ALL_PATHS.iter().copied() {
        match Kernels::with_path(path) {
            Ok(k) => assert!(path.is_supported() && k.path() == path),
            Err(e) => assert_eq!(e, Error::KernelUnavailable { path: path.name() }),
        }
    }
    assert_eq!(KernelPath::from_name("scalar"), Some(KernelPath::Scalar));
    assert_eq!(KernelPath::from_name("sse9"), None);
}
