//! Symmetric int8 quantization: weights per row (or block) at conversion time,
//! activations per vector at run time, so the dot products run as i8 × i8 → i32.

const ROUNDER: f32 = 12_582_912.0;

/// Quantizes `x` into `q` (same length) and returns the scale: `x ≈ q · scale`,
/// `q ∈ [-127, 127]`. An all-zero vector gets scale 0.
pub fn quantize(x: &[f32], q: &mut [i8]) -> f32 {
    let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let inv = 127.0 / max;
    // All zeros, or so small that 127 / max overflows: nothing to keep.
    if !inv.is_finite() {
        q.fill(0);
        return 0.0;
    }
    quantize_with(x, q, inv);
    max / 127.0
}

/// `q = round(x · inv)`, ties to even: the second half of [`quantize`], which the SIMD
/// versions also use for their last values.
pub(crate) fn quantize_with(x: &[f32], q: &mut [i8], inv: f32) {
    for (qi, &v) in q.iter_mut().zip(x) {
        // |v·inv| ≤ 127 by construction. Adding and removing 1.5·2²³ rounds to the
        // nearest integer (ties to even) in two adds, where a libm call costs dozens.
        *qi = ((v * inv + ROUNDER) - ROUNDER) as i8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_nearest_and_spans_the_range() {
        let x = [1.0f32, -1.0, 0.5 / 127.0, 1.5 / 127.0, -0.3, 0.0];
        let mut q = [0i8; 6];
        let s = quantize(&x, &mut q);
        assert_eq!(s, 1.0 / 127.0);
        assert_eq!(q, [127, -127, 0, 2, -38, 0]);
        assert_eq!(quantize(&[0.0; 3], &mut q[..3]), 0.0);
        assert_eq!(&q[..3], &[0, 0, 0]);
        // Too small to scale: zeros, never -128.
        assert_eq!(quantize(&[1e-38, -1e-38, 0.0], &mut q[..3]), 0.0);
        assert_eq!(&q[..3], &[0, 0, 0]);
    }
}
