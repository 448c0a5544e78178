//! Streaming band-limited resampling between any two integer sample rates.
//!
//! Output sample n is the input signal, low-pass filtered, evaluated at input time
//! n·from/to: a Kaiser-windowed sinc centred on that instant, so the output has no
//! delay relative to the input (the filter's group delay is compensated by waiting
//! for the samples after that instant instead of shifting the output). The cutoff
//! is 0.45 of the lower rate: downsampling removes what would alias, upsampling
//! adds no images. With 32 zero crossings each side and β = 8.6 the stopband is
//! about −86 dB and the transition band ends below the lower rate's Nyquist.
//!
//! The weights for one output sample depend only on its fractional position, one
//! of `to/gcd` phases. Where that bank of phases is small (every usual pair:
//! 44100→16000 has 160 phases, 48000→16000 one) it is precomputed exactly. Coprime
//! rates such as 44101→16000 would need 16000 phases × 200 taps, so for those each
//! output's weights are interpolated linearly from a finely sampled kernel (1024
//! points per zero crossing, error about −100 dB), at some cost per sample. That
//! kernel is the same for every pair of rates once measured in zero crossings, so
//! one table serves every resampler of the process.
//!
//! Positions are kept as an integer sample index and a phase numerator over
//! `to/gcd`, and the input history is indexed absolutely, so every output sample is
//! computed from the same input samples with the same arithmetic however the input
//! is split into `process` calls: the output is bit-identical.

use std::f64::consts::PI;
use std::sync::OnceLock;

/// Zero crossings of the sinc on each side of the centre.
const ZERO_CROSSINGS: f64 = 32.0;
/// Kaiser window shape: about 86 dB of stopband attenuation.
const KAISER_BETA: f64 = 8.6;
/// Cutoff as a fraction of the lower rate.
const CUTOFF: f64 = 0.45;
/// Kernel table resolution for rates without a small phase bank.
const TABLE_POINTS_PER_ZERO_CROSSING: f64 = 1024.0;
/// The largest exact phase bank (in weights, 1 MiB) worth building.
const MAX_BANK_WEIGHTS: usize = 1 << 18;

/// Converts a stream of samples from one rate to another; see the module comment.
pub struct Resampler {
    from_hz: u32,
    to_hz: u32,
    /// to / gcd: the number of output phases.
    up: u64,
    /// from / gcd: how far (in input samples × up) each output sample advances.
    down: u64,
    /// Taps on each side of an output instant; 2 × half weights per output sample.
    half: usize,
    weights: Weights,
    /// Weights of the current output sample when they come from the table.
    scratch: Vec<f32>,
    /// Input samples still needed, starting at absolute index `base`. Absolute index
    /// `half + i` is input sample i; the `half` before it are the zeros before the stream.
    history: Vec<f32>,
    base: u64,
    /// The next output sample sits at absolute index `center` + `phase` / `up`.
    center: u64,
    phase: u64,
    /// Input samples received since the stream started.
    received: u64,
}

enum Weights {
    /// Equal rates: samples are copied, not filtered.
    PassThrough,
    /// `up` rows of 2 × half weights, one per phase.
    Bank(Vec<f32>),
    /// The kernel from 0 to its end (`unit_kernel_table`), at `points_per_sample`
    /// points per input sample.
    Table { kernel: &'static [f64], points_per_sample: f64 },
}

impl Resampler {
    /// A resampler from `from_hz` to `to_hz`.
    ///
    /// # Panics
    /// If either rate is 0 (callers check rates when they read them).
    pub fn new(from_hz: u32, to_hz: u32) -> Self {
        Self::build(from_hz, to_hz, true)
    }

    /// `allow_bank: false` forces the interpolated table, to test it against the bank.
    fn build(from_hz: u32, to_hz: u32, allow_bank: bool) -> Self {
        assert!(from_hz > 0 && to_hz > 0, "resampling rates must be positive, got {from_hz} → {to_hz} Hz");
        let gcd = gcd(from_hz, to_hz);
        let (up, down) = (u64::from(to_hz / gcd), u64::from(from_hz / gcd));
        let (half, weights) = if from_hz == to_hz {
            (0, Weights::PassThrough)
        } else {
            let kernel = Kernel::new(from_hz, to_hz);
            let half = kernel.half_width.ceil() as usize + 1;
            let bank_size = usize::try_from(up).unwrap_or(usize::MAX).saturating_mul(2 * half);
            let weights = if allow_bank && bank_size <= MAX_BANK_WEIGHTS {
                Weights::bank(&kernel, up, half)
            } else {
                Weights::table(&kernel)
            };
            (half, weights)
        };
        let mut resampler = Resampler {
            from_hz,
            to_hz,
            up,
            down,
            half,
            weights,
            scratch: Vec::new(),
            history: Vec::new(),
            base: 0,
            center: 0,
            phase: 0,
            received: 0,
        };
        resampler.restart();
        resampler
    }

    pub fn from_hz(&self) -> u32 {
        self.from_hz
    }

    pub fn to_hz(&self) -> u32 {
        self.to_hz
    }

    /// Takes the next input samples and appends every output sample they complete.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        if matches!(self.weights, Weights::PassThrough) {
            out.extend_from_slice(input);
            return;
        }
        self.history.extend_from_slice(input);
        self.received += input.len() as u64;
        self.emit(out, u64::MAX);
        self.forget_consumed();
    }

    /// Ends the stream: appends the remaining output samples, computed as if zeros
    /// followed the input, up to the last one before the input's end. The resampler
    /// is then ready for a new stream.
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        if matches!(self.weights, Weights::PassThrough) {
            return;
        }
        self.history.resize(self.history.len() + self.half, 0.0);
        // Output instants before the end of input: center − half < received.
        self.emit(out, self.received + self.half as u64);
        self.restart();
    }

    fn restart(&mut self) {
        self.history.clear();
        self.history.resize(self.half, 0.0);
        self.base = 0;
        self.center = self.half as u64;
        self.phase = 0;
        self.received = 0;
    }

    /// Appends each output sample whose taps are all in `history`, while `center < stop`.
    fn emit(&mut self, out: &mut Vec<f32>, stop: u64) {
        let (half, taps) = (self.half as u64, 2 * self.half);
        let end = self.base + self.history.len() as u64;
        while self.center + half < end && self.center < stop {
            // Taps run from center − half + 1 to center + half; `forget_consumed` keeps them.
            let first = (self.center + 1 - half - self.base) as usize;
            let row = self.weights.row(self.phase, self.up, self.half, &mut self.scratch);
            let window = &self.history[first..first + taps];
            out.push(window.iter().zip(row).map(|(x, w)| x * w).sum());
            self.phase += self.down;
            self.center += self.phase / self.up;
            self.phase %= self.up;
        }
    }

    /// Drops history no future output sample needs, so memory stays bounded on endless
    /// streams. Only when at least half of it can go, so the copying stays linear.
    fn forget_consumed(&mut self) {
        let needed_from = self.center + 1 - self.half as u64;
        let unneeded = usize::try_from(needed_from - self.base).unwrap_or(usize::MAX).min(self.history.len());
        if unneeded > 0 && unneeded >= self.history.len() - unneeded {
            self.history.drain(..unneeded);
            self.base += unneeded as u64;
        }
    }
}

impl Weights {
    fn bank(kernel: &Kernel, up: u64, half: usize) -> Weights {
        let mut bank = Vec::new();
        let mut row = Vec::new();
        for phase in 0..up {
            fill_row(&mut row, half, phase as f64 / up as f64, |d| kernel.at(d));
            bank.extend_from_slice(&row);
        }
        Weights::Bank(bank)
    }

    fn table(kernel: &Kernel) -> Weights {
        // Zero crossings lie 1 / (2·cutoff) input samples apart.
        let points_per_sample = TABLE_POINTS_PER_ZERO_CROSSING * 2.0 * kernel.cutoff;
        Weights::Table { kernel: unit_kernel_table(), points_per_sample }
    }

    /// The weights of phase `phase` (of `up`), from the bank or computed into `scratch`.
    fn row<'a>(&'a self, phase: u64, up: u64, half: usize, scratch: &'a mut Vec<f32>) -> &'a [f32] {
        match self {
            Weights::PassThrough => &[],
            Weights::Bank(bank) => {
                let start = phase as usize * 2 * half;
                bank.get(start..start + 2 * half).unwrap_or(&[])
            }
            Weights::Table { kernel, points_per_sample } => {
                fill_row(scratch, half, phase as f64 / up as f64, |d| lerp(kernel, d.abs() * points_per_sample));
                scratch
            }
        }
    }
}

/// The 2 × half tap weights for an output instant `frac` (in [0, 1)) past a sample,
/// normalised to sum to 1 so a constant input gives exactly that constant.
fn fill_row(row: &mut Vec<f32>, half: usize, frac: f64, kernel_at: impl Fn(f64) -> f64) {
    row.clear();
    // Tap j is input sample center − half + 1 + j, at distance (half − 1 − j) + frac.
    row.extend((0..2 * half).map(|j| kernel_at(half as f64 - 1.0 - j as f64 + frac) as f32));
    let sum: f64 = row.iter().map(|&w| f64::from(w)).sum();
    let scale = (1.0 / sum) as f32;
    row.iter_mut().for_each(|w| *w *= scale);
}

/// `table` at fractional index `at`, 0 past its end.
fn lerp(table: &[f64], at: f64) -> f64 {
    let i = at.floor();
    let t = at - i;
    let value = |k: usize| table.get(k).copied().unwrap_or(0.0);
    let i = i as usize;
    value(i) * (1.0 - t) + value(i + 1) * t
}

/// The low-pass interpolation kernel, in units of input samples.
struct Kernel {
    /// Cutoff in cycles per input sample.
    cutoff: f64,
    /// The kernel is 0 at and beyond this distance from its centre.
    half_width: f64,
    /// I0(β), the window's normaliser.
    i0_beta: f64,
}

impl Kernel {
    fn new(from_hz: u32, to_hz: u32) -> Kernel {
        // Relative to the lower rate, so downsampling filters out what would alias.
        let cutoff = CUTOFF * f64::from(from_hz.min(to_hz)) / f64::from(from_hz);
        Kernel { cutoff, half_width: ZERO_CROSSINGS / (2.0 * cutoff), i0_beta: bessel_i0(KAISER_BETA) }
    }

    /// Windowed sinc at distance `d` input samples from the centre.
    fn at(&self, d: f64) -> f64 {
        2.0 * self.cutoff * unit_kernel(2.0 * self.cutoff * d, self.i0_beta)
    }
}

/// The kernel at `u` zero crossings from its centre, without its 2·cutoff gain: the
/// same function for every pair of rates, only stretched.
fn unit_kernel(u: f64, i0_beta: f64) -> f64 {
    let r = u / ZERO_CROSSINGS;
    if r.abs() >= 1.0 {
        return 0.0;
    }
    sinc(u) * bessel_i0(KAISER_BETA * (1.0 - r * r).sqrt()) / i0_beta
}

/// `unit_kernel` from 0 to its end at TABLE_POINTS_PER_ZERO_CROSSING points per zero
/// crossing. Rows are normalised to sum 1, so the missing gain does not matter, and
/// the table serves every pair of rates: it is computed once per process (32,770
/// points, 256 KiB), not per resampler.
fn unit_kernel_table() -> &'static [f64] {
    static TABLE: OnceLock<Vec<f64>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let i0_beta = bessel_i0(KAISER_BETA);
        let points = (ZERO_CROSSINGS * TABLE_POINTS_PER_ZERO_CROSSING) as usize + 2;
        (0..points).map(|i| unit_kernel(i as f64 / TABLE_POINTS_PER_ZERO_CROSSING, i0_beta)).collect()
    })
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        (PI * x).sin() / (PI * x)
    }
}

/// Modified Bessel function of the first kind, order 0, by its power series.
fn bessel_i0(x: f64) -> f64 {
    let quarter_x2 = x * x / 4.0;
    let (mut term, mut sum, mut k) = (1.0, 1.0, 1.0);
    while term > sum * 1e-17 {
        term *= quarter_x2 / (k * k);
        sum += term;
        k += 1.0;
    }
    sum
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::Range;

    fn resample(resampler: &mut Resampler, input: &[f32], chunk: usize) -> Vec<f32> {
        let mut out = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            resampler.process(piece, &mut out);
        }
        resampler.finish(&mut out);
        out
    }

    fn sine(hz: f64, rate: u32, len: usize, amplitude: f64) -> Vec<f32> {
        (0..len).map(|n| (amplitude * (2.0 * PI * hz * n as f64 / f64::from(rate)).sin()) as f32).collect()
    }

    /// Pseudo-random noise in [-1, 1).
    fn noise(len: usize) -> Vec<f32> {
        let mut rng = linrt::rng::Rng::seeded(1);
        (0..len).map(|_| rng.next_f32() * 2.0 - 1.0).collect()
    }

    fn db(ratio: f64) -> f64 {
        20.0 * ratio.log10()
    }

    fn rms(values: impl Iterator<Item = f64>) -> f64 {
        let (sum, count) = values.fold((0.0, 0usize), |(s, c), v| (s + v * v, c + 1));
        (sum / count as f64).sqrt()
    }

    /// Least-squares amplitude and phase of a sinusoid of `hz` at `rate` in `y[range]`.
    fn fit(y: &[f32], hz: f64, rate: u32, range: Range<usize>) -> (f64, f64) {
        let w = 2.0 * PI * hz / f64::from(rate);
        let (mut ss, mut cc, mut sc, mut ys, mut yc) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for n in range {
            let (s, c, v) = ((w * n as f64).sin(), (w * n as f64).cos(), f64::from(y[n]));
            (ss, cc, sc, ys, yc) = (ss + s * s, cc + c * c, sc + s * c, ys + v * s, yc + v * c);
        }
        let det = ss * cc - sc * sc;
        let (a, b) = ((ys * cc - yc * sc) / det, (yc * ss - ys * sc) / det);
        (a.hypot(b), b.atan2(a))
    }

    /// Gain (dB), phase (rad) and residual against the exact sine (dB) of a resampled tone,
    /// measured away from the edges.
    fn tone(from: u32, to: u32, hz: f64) -> (f64, f64, f64) {
        let amplitude = 0.5;
        let out = resample(&mut Resampler::new(from, to), &sine(hz, from, from as usize, amplitude), 4096);
        let steady = to as usize / 20..out.len() - to as usize / 20;
        let (gain, phase) = fit(&out, hz, to, steady.clone());
        let exact = sine(hz, to, out.len(), amplitude);
        let error = rms(steady.map(|n| f64::from(out[n]) - f64::from(exact[n])));
        (db(gain / amplitude), phase, db(error / (amplitude / 2f64.sqrt())))
    }

    /// Output level (dB relative to the input's) of a tone the conversion must remove.
    fn rejection(from: u32, to: u32, hz: f64) -> f64 {
        let input = sine(hz, from, from as usize, 0.5);
        let out = resample(&mut Resampler::new(from, to), &input, 4096);
        let steady = to as usize / 20..out.len() - to as usize / 20;
        db(rms(out[steady].iter().map(|&v| f64::from(v))) / rms(input.iter().map(|&v| f64::from(v))))
    }

    #[test]
    fn equal_rates_pass_through_unchanged() {
        let input = noise(5000);
        for chunk in [1, 160, 5000] {
            let out = resample(&mut Resampler::new(16000, 16000), &input, chunk);
            assert_eq!(
                out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                input.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn output_length_matches_the_ratio() {
        for (from, to) in
            [(44100, 16000), (48000, 16000), (8000, 16000), (16000, 44100), (44101, 16000), (22050, 16000)]
        {
            for len in [0usize, 1, 2, 3, 100, 12345, 44100] {
                let out = resample(&mut Resampler::new(from, to), &vec![0.1; len], 1000);
                let expected = (len as f64 * f64::from(to) / f64::from(from)).round();
                assert!((out.len() as f64 - expected).abs() <= 1.0, "{from}→{to}, {len}: {} vs {expected}", out.len());
            }
        }
    }

    #[test]
    fn downsampled_sine_keeps_amplitude_frequency_and_timing() {
        let (gain, phase, error) = tone(44100, 16000, 1000.0);
        eprintln!("44100→16000, 1 kHz: gain {gain:+.5} dB, phase {phase:+.2e} rad, error vs exact sine {error:.1} dB");
        assert!(gain.abs() < 0.1, "gain {gain} dB");
        assert!(phase.abs() < 1e-3, "phase {phase} rad: the output is delayed");
        assert!(error < -60.0, "error {error} dB");
    }

    #[test]
    fn passband_is_flat() {
        let mut worst: f64 = 0.0;
        for (from, to) in [(44100, 16000), (48000, 16000), (8000, 16000), (16000, 44100), (44101, 16000)] {
            let lower = f64::from(from.min(to));
            for fraction in [0.01, 0.1, 0.2, 0.3, 0.4] {
                let (gain, _, error) = tone(from, to, fraction * lower);
                assert!(
                    gain.abs() < 0.01 && error < -60.0,
                    "{from}→{to} at {}: {gain} dB, error {error} dB",
                    fraction * lower
                );
                worst = worst.max(gain.abs());
            }
        }
        eprintln!("passband up to 0.4 × the lower rate: worst gain error {worst:.2e} dB");
    }

    #[test]
    fn tone_above_the_new_nyquist_is_removed() {
        let level = rejection(48000, 16000, 10000.0);
        eprintln!("48000→16000, 10 kHz: {level:.1} dB");
        assert!(level < -60.0, "{level} dB");
        let mut worst = f64::MIN;
        for (from, to) in [(48000, 16000), (44100, 16000), (44101, 16000)] {
            for hz in [8300.0, 9000.0, 12000.0, 15000.0, 20000.0] {
                let level = rejection(from, to, hz);
                assert!(level < -60.0, "{from}→{to} at {hz} Hz: {level} dB");
                worst = worst.max(level);
            }
        }
        eprintln!("alias rejection 8.3-20 kHz into 16 kHz: worst {worst:.1} dB");
    }

    #[test]
    fn upsampled_sine_matches_the_exact_sine() {
        let (gain, phase, error) = tone(8000, 16000, 1000.0);
        eprintln!("8000→16000, 1 kHz: gain {gain:+.5} dB, phase {phase:+.2e} rad, error vs exact sine {error:.1} dB");
        assert!(gain.abs() < 0.1, "gain {gain} dB");
        assert!(error < -50.0, "error {error} dB");
    }

    #[test]
    fn output_does_not_depend_on_chunking() {
        let input = noise(20_000);
        for (from, to) in [(44100, 16000), (48000, 16000), (8000, 16000), (16000, 44100), (44101, 16000)] {
            let whole = resample(&mut Resampler::new(from, to), &input, input.len());
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            for chunk in [1, 160, 1600, 7] {
                let out = resample(&mut Resampler::new(from, to), &input, chunk);
                assert_eq!(bits(&out), bits(&whole), "{from}→{to}, chunks of {chunk}");
            }
            // Uneven pieces, and a resampler reused after finish().
            let mut resampler = Resampler::new(from, to);
            resample(&mut resampler, &input[..999], 100);
            let mut out = Vec::new();
            let mut rest = &input[..];
            for size in (0..).map(|i| (i * 37) % 500) {
                let (piece, tail) = rest.split_at(size.min(rest.len()));
                resampler.process(piece, &mut out);
                rest = tail;
                if rest.is_empty() {
                    break;
                }
            }
            resampler.finish(&mut out);
            assert_eq!(bits(&out), bits(&whole), "{from}→{to}, uneven chunks");
        }
    }

    #[test]
    fn constant_input_stays_constant() {
        for (from, to) in [(44100, 16000), (8000, 16000), (16000, 44100), (44101, 16000), (768_000, 4000)] {
            let out = resample(&mut Resampler::new(from, to), &vec![0.25; from as usize / 2], 1000);
            let margin = out.len() / 5;
            for &v in &out[margin..out.len() - margin] {
                assert!((v - 0.25).abs() < 1e-3, "{from}→{to}: {v}");
            }
        }
    }

    #[test]
    fn table_agrees_with_the_exact_bank() {
        let input = noise(10_000);
        for (from, to) in [(44100, 16000), (8000, 16000), (16000, 22050)] {
            let bank = resample(&mut Resampler::build(from, to, true), &input, 1000);
            let table = resample(&mut Resampler::build(from, to, false), &input, 1000);
            assert!(matches!(Resampler::build(from, to, true).weights, Weights::Bank(_)));
            assert!(matches!(Resampler::build(from, to, false).weights, Weights::Table { .. }));
            let worst = bank.iter().zip(&table).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(bank.len() == table.len() && worst < 1e-5, "{from}→{to}: {worst}");
        }
    }

    #[test]
    fn memory_stays_bounded_on_long_streams() {
        let mut resampler = Resampler::new(48000, 16000);
        let block = noise(1000);
        let mut out = Vec::new();
        for _ in 0..2000 {
            out.clear();
            resampler.process(&block, &mut out);
            assert!(resampler.history.len() <= 2 * (2 * resampler.half + block.len()), "{}", resampler.history.len());
        }
        assert_eq!(resampler.received, 2_000_000);
    }
}
