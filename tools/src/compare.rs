//! How far an output is from a reference: the one measure every check here uses.

/// `max |got − want|` and that divided by the reference's scale `max |want|`.
/// Different lengths or any NaN count as infinitely far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Distance {
    pub max_abs: f32,
    pub max_rel: f32,
}

/// The smallest cosine similarity between matching rows of `width` values (1 when a
/// pair of rows is all zeros, 0 when only one is).
pub fn min_cosine(got: &[f32], want: &[f32], width: usize) -> f32 {
    if got.len() != want.len() || width == 0 {
        return 0.0;
    }
    got.chunks(width)
        .zip(want.chunks(width))
        .map(|(a, b)| {
            let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
            let na: f64 = a.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
            let nb: f64 = b.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
            match (na == 0.0, nb == 0.0) {
                (true, true) => 1.0,
                (false, false) => (dot / (na * nb)) as f32,
                _ => 0.0,
            }
        })
        .fold(1.0f32, |m, c| if c.is_nan() { f32::NAN } else { m.min(c) })
}

pub fn distance(got: &[f32], want: &[f32]) -> Distance {
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let mut max_abs = if got.len() == want.len() { 0f32 } else { f32::INFINITY };
    for (a, b) in got.iter().zip(want) {
        let d = (a - b).abs();
        max_abs = if d.is_nan() { f32::INFINITY } else { max_abs.max(d) };
    }
    Distance { max_abs, max_rel: max_abs / scale.max(f32::MIN_POSITIVE) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_to_the_reference_scale() {
        let d = distance(&[1.0, 2.5], &[1.0, -2.0]);
        assert_eq!(d.max_abs, 4.5);
        assert_eq!(d.max_rel, 2.25);
        assert_eq!(distance(&[f32::NAN], &[1.0]).max_rel, f32::INFINITY);
        assert_eq!(distance(&[1.0], &[1.0, 2.0]).max_abs, f32::INFINITY);
    }

    #[test]
    fn cosine_per_row() {
        let c = min_cosine(&[1.0, 0.0, 0.0, 2.0], &[2.0, 0.0, 1.0, 0.0], 2);
        assert_eq!(c, 0.0);
        assert!((min_cosine(&[1.0, 1.0], &[1.0, 1.01], 2) - 1.0).abs() < 1e-4);
        assert_eq!(min_cosine(&[0.0, 0.0], &[0.0, 0.0], 2), 1.0);
        assert!(min_cosine(&[f32::NAN, 1.0], &[1.0, 1.0], 2).is_nan());
    }
}
