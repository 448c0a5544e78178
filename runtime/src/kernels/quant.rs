//! Symmetric int8 quantization: weights per row (or block) at conversion time,
//! activations per vector at run time, so the dot products run as i8 × i8 → i32.

const ROUNDER: f32 = 12_582_912.0;
const ROUNDER_BITS: i32 = 0x4B40_0000;

/// Quantizes `x` into `q` (same length) and returns the scale: `x ≈ q · scale`,
/// `q ∈ [-127, 127]`. An all-zero vector gets scale 0.
pub fn quantize(x: &[f32], q: &mut [i8]) -> f32 {
    // A comparison, not f32::max: where the FPU has no max instruction (Cortex-M4)
    // max is a libm call per value. NaN is skipped either way.
    let max = x.iter().fold(0f32, |m, v| if v.abs() > m { v.abs() } else { m });
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
        // |v·inv| ≤ 127 by construction. Adding 1.5·2²³ rounds to the nearest
        // integer (ties to even), where a libm call costs dozens; the sum then lies
        // in [2²³, 2²⁴), where one unit is one ulp, so its low mantissa bits are the
        // integer plus 2²²: no float-to-int conversion (and its saturation) needed.
        *qi = ((v * inv + ROUNDER).to_bits() as i32 - ROUNDER_BITS) as i8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bit_trick_is_the_add_and_subtract_rounding() {
        // Every quarter step over the range, ties included, and values just off them
        // (|v·inv| ≤ 127 up to an ulp, so 127.5 is never reached).
        for i in -510..=510 {
            for y in [i as f32 / 4.0, f32::from_bits((i as f32 / 4.0).to_bits() + 1), (i as f32 / 4.0).next_down()] {
                if y.abs() >= 127.5 {
                    continue;
                }
                let mut q = [0i8];
                quantize_with(&[y], &mut q, 1.0);
                assert_eq!(q[0], ((y + ROUNDER) - ROUNDER) as i8, "{y}");
            }
        }
    }

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
