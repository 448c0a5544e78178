//! Real FFT of a power-of-two length up to [`MAX_FFT`], in f64 like
//! kaldi-native-fbank's (its float interface computes in double): the power of
//! quiet bins next to loud ones would otherwise lose digits that the log shows.

/// Largest transform: 1,024 points (64 ms at 16 kHz).
pub const MAX_FFT: usize = 1024;

/// Twiddle factors for one length, computed once.
pub struct RealFft {
    n: usize,
    /// `cos(2πk/n)` and `sin(2πk/n)` for k < n/2.
    cos: [f64; MAX_FFT / 2],
    sin: [f64; MAX_FFT / 2],
}

impl RealFft {
    /// `n` must be a power of two in 4..=MAX_FFT (checked by the caller's config).
    pub fn new(n: usize) -> RealFft {
        debug_assert!(n.is_power_of_two() && (4..=MAX_FFT).contains(&n));
        let mut fft = RealFft { n, cos: [0.0; MAX_FFT / 2], sin: [0.0; MAX_FFT / 2] };
        for k in 0..n / 2 {
            let angle = 2.0 * core::f64::consts::PI * k as f64 / n as f64;
            fft.cos[k] = libm::cos(angle);
            fft.sin[k] = libm::sin(angle);
        }
        fft
    }

    /// Points per transform.
    pub fn points(&self) -> usize {
        self.n
    }

    /// Power spectrum |X[k]|² for k in 0..=n/2 of the real signal `x` (length n),
    /// written to `power[..=n/2]`. `x` is used as scratch.
    pub fn power_spectrum(&self, x: &mut [f64], power: &mut [f32]) {
        let n = self.n;
        let half = n / 2;
        // The n real samples as n/2 complex ones (even = real, odd = imaginary),
        // one complex FFT of half the size, then untangle the two halves.
        self.complex_fft(&mut x[..n]);
        let (re0, im0) = (x[0], x[1]);
        // Saturated, so that absurdly loud input stays finite in f32.
        let to_f32 = |p: f64| p.min(f32::MAX as f64) as f32;
        power[0] = to_f32((re0 + im0) * (re0 + im0));
        power[half] = to_f32((re0 - im0) * (re0 - im0));
        for k in 1..half {
            let (zr, zi) = (x[2 * k], x[2 * k + 1]);
            let (cr, ci) = (x[2 * (half - k)], -x[2 * (half - k) + 1]); // conj(Z[n/2 − k])
            let (er, ei) = (0.5 * (zr + cr), 0.5 * (zi + ci)); // even samples' spectrum
            let (or, oi) = (0.5 * (zi - ci), -0.5 * (zr - cr)); // odd samples' spectrum
                                                                // X[k] = E[k] + e^{−2πik/n} O[k]
            let (c, s) = (self.cos[k], -self.sin[k]);
            let (xr, xi) = (er + c * or - s * oi, ei + c * oi + s * or);
            power[k] = to_f32(xr * xr + xi * xi);
        }
    }

    /// In-place radix-2 FFT of `data.len() / 2` interleaved complex values.
    fn complex_fft(&self, data: &mut [f64]) {
        let m = data.len() / 2;
        // Bit-reversal permutation.
        let mut j = 0;
        for i in 1..m {
            let mut bit = m >> 1;
            while j & bit != 0 {
                j ^= bit;
                bit >>= 1;
            }
            j |= bit;
            if i < j {
                data.swap(2 * i, 2 * j);
                data.swap(2 * i + 1, 2 * j + 1);
            }
        }
        let mut len = 2;
        while len <= m {
            // e^{−2πi t/len} = table entry t · (n / len) of e^{−2πik/n}.
            let stride = self.n / len;
            for start in (0..m).step_by(len) {
                for t in 0..len / 2 {
                    let (c, s) = (self.cos[t * stride], -self.sin[t * stride]);
                    let (a, b) = (start + t, start + t + len / 2);
                    let (br, bi) = (data[2 * b], data[2 * b + 1]);
                    let (tr, ti) = (br * c - bi * s, br * s + bi * c);
                    let (ar, ai) = (data[2 * a], data[2 * a + 1]);
                    data[2 * a] = ar + tr;
                    data[2 * a + 1] = ai + ti;
                    data[2 * b] = ar - tr;
                    data[2 * b + 1] = ai - ti;
                }
            }
            len *= 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_direct_dft() {
        // Under Miri the direct DFT of 1024 points alone takes many minutes; the
        // fbank test there runs the 512-point FFT the front-end uses.
        let sizes: &[usize] = if cfg!(miri) { &[4, 8, 64] } else { &[4, 8, 64, 512, 1024] };
        for &n in sizes {
            let signal: [f64; MAX_FFT] = core::array::from_fn(|i| libm::sin(i as f64 * 0.37) + (i % 7) as f64 * 0.1);
            let mut x = signal;
            let mut power = [0f32; MAX_FFT / 2 + 1];
            RealFft::new(n).power_spectrum(&mut x, &mut power);
            for (k, got) in power[..=n / 2].iter().enumerate() {
                let (mut re, mut im) = (0f64, 0f64);
                for (t, v) in signal[..n].iter().enumerate() {
                    let a = -2.0 * core::f64::consts::PI * (k * t) as f64 / n as f64;
                    re += v * libm::cos(a);
                    im += v * libm::sin(a);
                }
                let expected = re * re + im * im;
                assert!((*got as f64 - expected).abs() <= 1e-6 * (1.0 + expected), "n {n} k {k}: {got} vs {expected}");
            }
        }
    }
}
