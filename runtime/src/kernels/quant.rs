//! Symmetric int8 quantization: weights per row (or block) at conversion time,
//! activations per vector at run time, so the dot products run as i8 × i8 → i32.

/// Quantizes `x` into `q` (same length) and returns the scale: `x ≈ q · scale`,
/// `q ∈ [-127, 127]`. An all-zero vector gets scale 0.
pub fn quantize(x: &[f32], q: &mut [i8]) -> f32 {
    let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    if max == 0.0 {
        q.fill(0);
        return 0.0;
    }
    let inv = 127.0 / max;
    for (qi, &v) in q.iter_mut().zip(x) {
        // |v·inv| ≤ 127 by construction; round half away from zero.
        *qi = libm::roundf(v * inv) as i8;
    }
    max / 127.0
}
