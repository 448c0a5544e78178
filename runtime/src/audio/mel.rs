//! Triangular mel filters over FFT bins, built as Kaldi's `MelBanks` builds them
//! (mel = 1127 ln(1 + f/700), filters evenly spaced in mel between the low and high
//! frequency, the Nyquist bin left out). Each FFT bin falls under at most two
//! filters, so all the weights fit in one flat array of `2 · MAX_FFT / 2` floats.

use super::fft::MAX_FFT;

pub const MAX_BINS: usize = 256;

pub struct MelBanks {
    num_bins: usize,
    /// Per filter: first FFT bin, number of bins, offset into `weights`.
    ranges: [(u16, u16, u16); MAX_BINS],
    weights: [f32; MAX_FFT],
}

fn mel(freq: f64) -> f64 {
    1127.0 * libm::log(1.0 + freq / 700.0)
}

impl MelBanks {
    /// `low` and `high` are absolute frequencies, 0 ≤ low < high ≤ Nyquist (checked
    /// by the caller), `num_bins ≤ MAX_BINS`. None when a filter covers no FFT bin
    /// (too many bins for the frame length; kaldi-native-fbank refuses it too).
    pub fn new(num_bins: usize, fft_len: usize, sample_rate: f64, low: f64, high: f64) -> Option<MelBanks> {
        let mut banks = MelBanks { num_bins, ranges: [(0, 0, 0); MAX_BINS], weights: [0.0; MAX_FFT] };
        let bin_width = sample_rate / fft_len as f64;
        let (mel_low, mel_high) = (mel(low), mel(high));
        let delta = (mel_high - mel_low) / (num_bins + 1) as f64;
        let mut used = 0;
        for b in 0..num_bins {
            let left = mel_low + b as f64 * delta;
            let center = left + delta;
            let right = center + delta;
            let mut first = None;
            let mut count = 0;
            for i in 0..fft_len / 2 {
                let m = mel(bin_width * i as f64);
                if m > left && m < right {
                    let w = if m <= center { (m - left) / (center - left) } else { (right - m) / (right - center) };
                    first.get_or_insert(i);
                    // Filters overlap only with their neighbours: at most two weights per FFT bin.
                    banks.weights[used + count] = w as f32;
                    count += 1;
                }
            }
            banks.ranges[b] = (first? as u16, count as u16, used as u16);
            used += count;
        }
        Some(banks)
    }

    /// Filter energies of one power spectrum, then `ln(max(e, f32::EPSILON))`.
    pub fn log_energies(&self, power: &[f32], out: &mut [f32]) {
        for (o, &(first, count, offset)) in out.iter_mut().zip(&self.ranges[..self.num_bins]) {
            let (first, count, offset) = (first as usize, count as usize, offset as usize);
            let energy: f32 =
                self.weights[offset..offset + count].iter().zip(&power[first..first + count]).map(|(w, p)| w * p).sum();
            // Absurdly loud input saturates instead of reaching the model as infinity.
            *o = libm::logf(energy.clamp(f32::EPSILON, f32::MAX));
        }
    }
}
