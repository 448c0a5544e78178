//! How far an output is from a reference: the one measure every check here uses.

/// `max |got − want|` and that divided by the reference's scale `max |want|`.
/// Different lengths or any NaN count as infinitely far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Distance {
    pub max_abs: f32,
    pub max_rel: f32,
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
}
