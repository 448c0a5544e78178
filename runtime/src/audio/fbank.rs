//! Log-mel filterbank features, computed as kaldi-native-fbank computes them (the
//! front-end sherpa-onnx uses): per frame remove DC, pre-emphasise, window, FFT,
//! power spectrum, mel filters, log. Samples stream in through [`Fbank::accept`] in
//! chunks of any size; a frame is produced as soon as its last sample arrives, and
//! [`Fbank::finish`] produces the last frames, which reach past the end of the
//! audio, by reflecting it (Kaldi's `snip_edges = false`).
//!
//! A frame is processed in f64 from its f32 samples: a loud tone leaves its quiet
//! bins 100 dB and more below it, where f32 arithmetic (kaldi-native-fbank's) is
//! only noise; in f64 every bin is right, and on speech the two agree to 1e-4.

use super::fft::{RealFft, MAX_FFT};
use super::mel::{MelBanks, MAX_BINS};
use crate::Error;

/// Longest frame: 1,024 samples (64 ms at 16 kHz).
pub const MAX_FRAME_SAMPLES: usize = MAX_FFT;
/// Most mel filters.
pub const MAX_MEL_BINS: usize = MAX_BINS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Kaldi's default: `(0.5 − 0.5 cos(2πi/(N−1)))^0.85`.
    Povey,
    Hann,
    Hamming,
    Rectangular,
}

/// Front-end parameters. `Default` is kaldi-native-fbank as sherpa-onnx configures
/// it: 16 kHz, 80 bins, 25 ms frames every 10 ms, povey window, 20 Hz to
/// Nyquist − 400 Hz, no dither, `snip_edges = false`, samples in the int16 range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FbankOptions {
    pub sample_rate: u32,
    pub num_bins: usize,
    pub frame_length_ms: f32,
    pub frame_shift_ms: f32,
    pub low_freq: f32,
    /// ≤ 0 means that much below Nyquist (Kaldi's convention).
    pub high_freq: f32,
    pub preemph_coeff: f32,
    pub remove_dc_offset: bool,
    pub window: Window,
    /// false: frames centred every shift, the first and last reflected at the edges.
    /// true: only frames that fit inside the audio.
    pub snip_edges: bool,
    /// Samples arrive in [-1, 1]; Kaldi features of int16 audio need 32768.
    pub sample_scale: f32,
    /// Standard deviation of a deterministic noise floor added to every scaled
    /// sample ([`floor_noise`]; 0: none). A model trained on audio that always had
    /// some floor never saw digital silence, whose log-mel energies are far below
    /// anything it heard; 1.0 at the int16 scale is -90 dBFS, Kaldi's dither level,
    /// without its random generator.
    pub noise_floor: f32,
}

impl FbankOptions {
    /// Samples in `ms` milliseconds as Kaldi counts them: `(int32)(samp_freq * 0.001f
    /// * ms)`, in f32 and truncated (0 for negative or NaN durations).
    pub fn samples(&self, ms: f32) -> usize {
        (self.sample_rate as f32 * 0.001 * ms) as usize
    }
}

impl Default for FbankOptions {
    fn default() -> Self {
        FbankOptions {
            sample_rate: 16000,
            num_bins: 80,
            frame_length_ms: 25.0,
            frame_shift_ms: 10.0,
            low_freq: 20.0,
            high_freq: -400.0,
            preemph_coeff: 0.97,
            remove_dc_offset: true,
            window: Window::Povey,
            snip_edges: false,
            sample_scale: 32768.0,
            noise_floor: 0.0,
        }
    }
}

/// Noise of mean 0 and variance 1 for sample `n` of a stream, a function of `n`
/// alone, so that it is the same whatever the chunking: the 64-bit splitmix64 hash
/// of `n` as four 16-bit uniforms, summed (Irwin-Hall, nearly Gaussian) and scaled
/// by √3. Every operation is exact in f32 but the last product, so a numpy twin
/// (models/asr-commands/data.py) gives the same bits.
pub fn floor_noise(n: u64) -> f32 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let u = |k: u32| (((z >> (16 * k)) & 0xFFFF) as f32 + 0.5) / 65536.0;
    (u(0) + u(1) + u(2) + u(3) - 2.0) * 1.732_050_8
}

/// Samples kept: the history `drop_consumed` keeps (under two frame lengths) and
/// room for at least one more frame length of input per pass.
const BUFFER: usize = 3 * MAX_FRAME_SAMPLES;

/// A streaming log-mel front-end with fixed buffers.
pub struct Fbank {
    opts: FbankOptions,
    frame_length: usize,
    frame_shift: usize,
    window: [f64; MAX_FRAME_SAMPLES],
    fft: RealFft,
    mel: MelBanks,
    /// `buffer[..buffered]` holds samples `first_buffered..` of the stream, scaled.
    buffer: [f32; BUFFER],
    buffered: usize,
    first_buffered: u64,
    /// Samples accepted since the start (or the last `finish`/`reset`).
    received: u64,
    /// Frames produced so far.
    frames: u64,
    // Per-frame scratch.
    frame: [f64; MAX_FRAME_SAMPLES],
    spectrum: [f64; MAX_FFT],
    power: [f32; MAX_FFT / 2 + 1],
    out: [f32; MAX_MEL_BINS],
}

impl Fbank {
    /// Checks the options and precomputes the window and the mel filters.
    pub fn new(opts: FbankOptions) -> Result<Fbank, Error> {
        let bad = |field, value: f32| Error::BadFrontend { field, value };
        let rate = opts.sample_rate as f64;
        if !(1000..=768_000).contains(&opts.sample_rate) {
            return Err(bad("sample_rate", opts.sample_rate as f32));
        }
        let (frame_length, frame_shift) = (opts.samples(opts.frame_length_ms), opts.samples(opts.frame_shift_ms));
        if !(4..=MAX_FRAME_SAMPLES).contains(&frame_length) {
            return Err(bad("frame_length_ms", opts.frame_length_ms));
        }
        if !(1..=frame_length).contains(&frame_shift) {
            return Err(bad("frame_shift_ms", opts.frame_shift_ms));
        }
        if opts.num_bins == 0 || opts.num_bins > MAX_MEL_BINS {
            return Err(bad("num_bins", opts.num_bins as f32));
        }
        let nyquist = rate / 2.0;
        let high = if opts.high_freq <= 0.0 { nyquist + opts.high_freq as f64 } else { opts.high_freq as f64 };
        let low = opts.low_freq as f64;
        if !(low >= 0.0 && low < nyquist) {
            return Err(bad("low_freq", opts.low_freq));
        }
        if !(high > low && high <= nyquist) {
            return Err(bad("high_freq", opts.high_freq));
        }
        if !(opts.preemph_coeff.is_finite() && (0.0..=1.0).contains(&opts.preemph_coeff)) {
            return Err(bad("preemph_coeff", opts.preemph_coeff));
        }
        if !(opts.sample_scale.is_finite() && opts.sample_scale > 0.0) {
            return Err(bad("sample_scale", opts.sample_scale));
        }
        if !(opts.noise_floor.is_finite() && opts.noise_floor >= 0.0) {
            return Err(bad("noise_floor", opts.noise_floor));
        }
        let fft_len = frame_length.next_power_of_two();
        let mut window = [0f64; MAX_FRAME_SAMPLES];
        let a = 2.0 * core::f64::consts::PI / (frame_length - 1) as f64;
        for (i, w) in window[..frame_length].iter_mut().enumerate() {
            let cos = libm::cos(a * i as f64);
            *w = match opts.window {
                Window::Povey => libm::pow(0.5 - 0.5 * cos, 0.85),
                Window::Hann => 0.5 - 0.5 * cos,
                Window::Hamming => 0.54 - 0.46 * cos,
                Window::Rectangular => 1.0,
            };
        }
        Ok(Fbank {
            opts,
            frame_length,
            frame_shift,
            window,
            fft: RealFft::new(fft_len),
            mel: MelBanks::new(opts.num_bins, fft_len, rate, low, high).ok_or(Error::BadFrontend {
                field: "num_bins (a mel filter covers no FFT bin)",
                value: opts.num_bins as f32,
            })?,
            buffer: [0.0; BUFFER],
            buffered: 0,
            first_buffered: 0,
            received: 0,
            frames: 0,
            frame: [0.0; MAX_FRAME_SAMPLES],
            spectrum: [0.0; MAX_FFT],
            power: [0.0; MAX_FFT / 2 + 1],
            out: [0.0; MAX_MEL_BINS],
        })
    }

    pub fn options(&self) -> &FbankOptions {
        &self.opts
    }

    pub fn num_bins(&self) -> usize {
        self.opts.num_bins
    }

    /// Samples between frame starts.
    pub fn frame_shift(&self) -> usize {
        self.frame_shift
    }

    /// Frames produced since the start of the stream.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Samples accepted since the start of the stream.
    pub fn samples(&self) -> u64 {
        self.received
    }

    /// Starts a new stream: buffered samples are dropped, counters return to zero.
    pub fn reset(&mut self) {
        self.buffered = 0;
        self.first_buffered = 0;
        self.received = 0;
        self.frames = 0;
    }

    /// First sample of frame `m` (negative before the start with `snip_edges` off).
    fn frame_start(&self, m: u64) -> i64 {
        let start = (m * self.frame_shift as u64) as i64;
        if self.opts.snip_edges {
            start
        } else {
            start + (self.frame_shift / 2) as i64 - (self.frame_length / 2) as i64
        }
    }

    /// Feeds samples (in [-1, 1]); `on_frame` receives each completed frame's
    /// `num_bins` log-mel values, in order.
    pub fn accept(&mut self, mut samples: &[f32], mut on_frame: impl FnMut(&[f32])) {
        while !samples.is_empty() {
            let room = BUFFER - self.buffered;
            let take = room.min(samples.len());
            let (scale, floor) = (self.opts.sample_scale, self.opts.noise_floor);
            let first = self.received;
            for (i, (b, s)) in
                self.buffer[self.buffered..self.buffered + take].iter_mut().zip(&samples[..take]).enumerate()
            {
                *b = s * scale;
                if floor != 0.0 {
                    *b += floor * floor_noise(first + i as u64);
                }
            }
            self.buffered += take;
            self.received += take as u64;
            samples = &samples[take..];
            // Every frame whose last sample has arrived.
            while self.frame_start(self.frames) + self.frame_length as i64 <= self.received as i64 {
                self.compute_frame(self.frames, &mut on_frame);
                self.frames += 1;
            }
            self.drop_consumed();
        }
    }

    /// Ends the stream: with `snip_edges` off, the frames that reach past the last
    /// sample are produced with the audio reflected at its end, as Kaldi does. The
    /// front-end is then ready for a new stream.
    pub fn finish(&mut self, mut on_frame: impl FnMut(&[f32])) {
        if !self.opts.snip_edges {
            let total = (self.received + (self.frame_shift / 2) as u64) / self.frame_shift as u64;
            while self.frames < total {
                self.compute_frame(self.frames, &mut on_frame);
                self.frames += 1;
            }
        }
        self.reset();
    }

    /// Forgets samples that no future frame needs. A frame that starts before the
    /// stream reflects its first samples, and one that ends past it (in `finish`)
    /// reflects up to a frame length back from the end: keeping one frame length
    /// before the next frame's start covers both.
    fn drop_consumed(&mut self) {
        let keep_from = (self.frame_start(self.frames) - self.frame_length as i64).max(0) as u64;
        if keep_from <= self.first_buffered {
            return;
        }
        let drop = ((keep_from - self.first_buffered) as usize).min(self.buffered);
        self.buffer.copy_within(drop..self.buffered, 0);
        self.buffered -= drop;
        self.first_buffered += drop as u64;
    }

    fn compute_frame(&mut self, m: u64, on_frame: &mut impl FnMut(&[f32])) {
        let n = self.frame_length;
        let total = self.received as i64;
        let start = self.frame_start(m);
        for (i, f) in self.frame[..n].iter_mut().enumerate() {
            // Reflect around the edges: −1 → 0, −2 → 1; total → total − 1.
            let mut s = start + i as i64;
            while s < 0 || s >= total {
                s = if s < 0 { -s - 1 } else { 2 * total - 1 - s };
            }
            *f = self.buffer[(s as u64 - self.first_buffered) as usize] as f64;
        }
        let frame = &mut self.frame[..n];
        if self.opts.remove_dc_offset {
            let mean = frame.iter().sum::<f64>() / n as f64;
            frame.iter_mut().for_each(|x| *x -= mean);
        }
        let c = self.opts.preemph_coeff as f64;
        if c != 0.0 {
            for i in (1..n).rev() {
                frame[i] -= c * frame[i - 1];
            }
            frame[0] -= c * frame[0];
        }
        let fft_len = self.fft.points();
        for (s, (x, w)) in self.spectrum.iter_mut().zip(frame.iter().zip(&self.window)) {
            *s = x * w;
        }
        self.spectrum[n..fft_len].fill(0.0);
        self.fft.power_spectrum(&mut self.spectrum[..fft_len], &mut self.power);
        let bins = self.opts.num_bins;
        self.mel.log_energies(&self.power, &mut self.out[..bins]);
        on_frame(&self.out[..bins]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_noise_is_unit_variance_noise_that_depends_on_the_index_alone() {
        let n = 200_000u64;
        let (mut sum, mut sq) = (0f64, 0f64);
        for i in 0..n {
            let x = floor_noise(i) as f64;
            sum += x;
            sq += x * x;
        }
        let mean = sum / n as f64;
        let var = sq / n as f64 - mean * mean;
        assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.01, "mean {mean}, variance {var}");
        assert_eq!(floor_noise(12_345).to_bits(), floor_noise(12_345).to_bits());
        // Pinned: models/asr-commands/data.py's numpy twin gives these bits.
        let bits = [floor_noise(0), floor_noise(1), floor_noise(1 << 40)].map(f32::to_bits);
        assert_eq!(bits, [1068948737, 3206419806, 1056447940]);
    }

    /// Small enough for Miri: six frames of a chirp, fed in pieces of 1, 7 and all.
    #[test]
    fn a_few_frames_are_the_same_whatever_the_chunking() {
        let chirp: std::vec::Vec<f32> =
            (0..1200).map(|i| 0.5 * libm::sinf(i as f32 * (0.01 + i as f32 * 1e-4))).collect();
        let frames = |chunk: usize| {
            let mut fb = Fbank::new(FbankOptions::default()).unwrap();
            let mut out = std::vec::Vec::new();
            for piece in chirp.chunks(chunk) {
                fb.accept(piece, |f| out.extend_from_slice(f));
            }
            fb.finish(|f| out.extend_from_slice(f));
            out
        };
        let whole = frames(chirp.len());
        assert!(!whole.is_empty() && whole.iter().all(|v| v.is_finite()));
        for chunk in [1, 7] {
            let got = frames(chunk);
            assert!(got.len() == whole.len() && got.iter().zip(&whole).all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }

    #[test]
    fn a_noise_floor_lifts_digital_silence_whatever_the_chunking() {
        let frames = |opts: FbankOptions, chunk: usize| {
            let silence = [0f32; 8000];
            let mut fb = Fbank::new(opts).unwrap();
            let mut out = std::vec::Vec::new();
            for piece in silence.chunks(chunk) {
                fb.accept(piece, |f| out.extend_from_slice(f));
            }
            fb.finish(|f| out.extend_from_slice(f));
            out
        };
        let floored = FbankOptions { noise_floor: 1.0, ..FbankOptions::default() };
        let whole = frames(floored, 8000);
        for chunk in [1, 7, 160] {
            let got = frames(floored, chunk);
            assert!(got.iter().zip(&whole).all(|(a, b)| a.to_bits() == b.to_bits()) && got.len() == whole.len());
        }
        // Without it, digital silence is the log of nothing: far below a 1-LSB floor.
        let bare = frames(FbankOptions::default(), 8000);
        let (lowest_floored, highest_bare) =
            (whole.iter().fold(f32::MAX, |m, v| m.min(*v)), bare.iter().fold(f32::MIN, |m, v| m.max(*v)));
        assert!(lowest_floored > highest_bare + 5.0, "{lowest_floored} vs {highest_bare}");
        let bad = FbankOptions { noise_floor: -1.0, ..FbankOptions::default() };
        assert!(Fbank::new(bad).is_err());
    }
}
