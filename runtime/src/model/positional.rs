//! The sinusoidal position encoding (see [`crate::Positional::Sinusoidal`]).

/// Adds the encoding of positions `first, first + 1, …` to the rows of `x`
/// (`d` values each). Angles are computed in f64 and each term rounded to f32, the
/// way the exporter builds its table, so both sides add the same values.
pub fn add_sinusoidal(x: &mut [f32], d: usize, first: u64) {
    for (row, hidden) in x.chunks_exact_mut(d).enumerate() {
        let p = first.saturating_add(row as u64) as f64;
        for (pair, cols) in hidden.chunks_mut(2).enumerate() {
            let omega = libm::pow(10000.0, -((2 * pair) as f64) / d as f64);
            let angle = p * omega;
            cols[0] += libm::sin(angle) as f32;
            if let Some(c) = cols.get_mut(1) {
                *c += libm::cos(angle) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let mut x = [0f32; 4];
        add_sinusoidal(&mut x, 4, 0);
        assert_eq!(x, [0.0, 1.0, 0.0, 1.0]);
        let mut x = [0f32; 8]; // positions 1 and 2, d = 4: ω = 1 and 1/100
        add_sinusoidal(&mut x, 4, 1);
        let want = [1f64.sin(), 1f64.cos(), 0.01f64.sin(), 0.01f64.cos(), 2f64.sin(), 2f64.cos(), 0.02f64.sin()];
        for (got, want) in x.iter().zip(want) {
            assert!((*got as f64 - want).abs() < 1e-7, "{got} vs {want}");
        }
    }

    #[test]
    fn odd_width_gets_a_last_sine() {
        let mut x = [0f32; 3];
        add_sinusoidal(&mut x, 3, 5);
        assert_eq!(x[0], libm::sin(5.0) as f32);
        assert_eq!(x[2], libm::sin(5.0 * libm::pow(10000.0, -2.0 / 3.0)) as f32);
    }
}
