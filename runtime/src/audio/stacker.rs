//! Log-mel frames → encoder step inputs: each frame normalised with the model's
//! feature statistics, and every `stack` frames one step input made of the last
//! `context` frames, oldest first. Frames before the stream's first are zeros (the
//! mean, once normalised), and so are the missing frames of a last, partial step.
//! Only past frames are used: the step never waits for audio after its own.

use crate::Error;

/// Most frames one step input can hold.
pub const MAX_CONTEXT_FRAMES: usize = 32;
const MAX_BINS: usize = super::MAX_MEL_BINS;

pub struct FrameStacker {
    bins: usize,
    stack: usize,
    context: usize,
    mean: [f32; MAX_BINS],
    std: [f32; MAX_BINS],
    /// The last `context` normalised frames, a ring indexed by frame number.
    history: [f32; MAX_CONTEXT_FRAMES * MAX_BINS],
    /// Frames pushed since the start (or the last `reset`).
    frames: u64,
    step: [f32; MAX_CONTEXT_FRAMES * MAX_BINS],
}

impl FrameStacker {
    /// `mean` and `std` hold one value per bin; every std must be positive and finite.
    pub fn new(bins: usize, stack: usize, context: usize, mean: &[f32], std: &[f32]) -> Result<Self, Error> {
        let bad = |field, value: usize| Error::BadConfig { field, value: value as u64 };
        if bins == 0 || bins > MAX_BINS {
            return Err(bad("frontend.num_bins", bins));
        }
        if stack == 0 || context < stack || context > MAX_CONTEXT_FRAMES {
            return Err(bad("frontend.context", context));
        }
        if mean.len() != bins || std.len() != bins {
            return Err(Error::BadLength {
                what: "feature statistics",
                expected: bins,
                found: mean.len().min(std.len()),
            });
        }
        if std.iter().any(|s| !(s.is_finite() && *s > 0.0)) || mean.iter().any(|m| !m.is_finite()) {
            return Err(bad("frontend.feature_std", bins));
        }
        let mut stacker = FrameStacker {
            bins,
            stack,
            context,
            mean: [0.0; MAX_BINS],
            std: [0.0; MAX_BINS],
            history: [0.0; MAX_CONTEXT_FRAMES * MAX_BINS],
            frames: 0,
            step: [0.0; MAX_CONTEXT_FRAMES * MAX_BINS],
        };
        stacker.mean[..bins].copy_from_slice(mean);
        stacker.std[..bins].copy_from_slice(std);
        Ok(stacker)
    }

    /// Length of one step input: `bins · context`.
    pub fn step_len(&self) -> usize {
        self.bins * self.context
    }

    /// New frames per step.
    pub fn stack(&self) -> usize {
        self.stack
    }

    /// Frames pushed since the start of the stream.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Starts a new stream: the history becomes zeros again.
    pub fn reset(&mut self) {
        self.frames = 0;
        self.history.fill(0.0);
    }

    /// Adds one frame; when it completes a step, `on_step` receives the step input.
    pub fn push(&mut self, frame: &[f32], on_step: impl FnOnce(&[f32])) {
        let bins = self.bins;
        let slot = (self.frames % self.context as u64) as usize;
        let dst = &mut self.history[slot * bins..(slot + 1) * bins];
        for (d, ((x, m), s)) in dst.iter_mut().zip(frame.iter().zip(&self.mean).zip(&self.std)) {
            *d = (x - m) / s;
        }
        self.frames += 1;
        if self.frames.is_multiple_of(self.stack as u64) {
            on_step(self.assemble(0));
        }
    }

    /// Ends the stream: a last partial step (fewer than `stack` new frames) is
    /// produced with zeros for the frames that never came. Then starts a new stream.
    pub fn finish(&mut self, on_step: impl FnOnce(&[f32])) {
        let missing = (self.stack as u64 - self.frames % self.stack as u64) % self.stack as u64;
        if missing > 0 {
            on_step(self.assemble(missing as usize));
        }
        self.reset();
    }

    /// The step input ending `missing` frames after the last pushed one.
    fn assemble(&mut self, missing: usize) -> &[f32] {
        let (bins, context) = (self.bins, self.context);
        for k in 0..context {
            // Frame number of slot k, counted so that "end" is one past the step's last frame.
            let end = self.frames + missing as u64;
            let dst = &mut self.step[k * bins..(k + 1) * bins];
            match (end + k as u64).checked_sub(context as u64) {
                Some(f) if f < self.frames => {
                    let slot = (f % context as u64) as usize;
                    dst.copy_from_slice(&self.history[slot * bins..(slot + 1) * bins]);
                }
                _ => dst.fill(0.0),
            }
        }
        &self.step[..bins * context]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_hold_past_frames_only() {
        // 7 frames of 2 bins, hop 3, window 5: steps end after frames 2, 5 and (partial) 8.
        let frames: [f32; 14] = core::array::from_fn(|v| v as f32);
        let mut s = FrameStacker::new(2, 3, 5, &[1.0, 0.0], &[1.0, 2.0]).unwrap();
        let mut steps = [[0f32; 10]; 3];
        let mut n = 0;
        for f in frames.chunks_exact(2) {
            s.push(f, |x| {
                steps[n].copy_from_slice(x);
                n += 1;
            });
        }
        s.finish(|x| {
            steps[n].copy_from_slice(x);
            n += 1;
        });
        assert_eq!(n, 3);
        let norm = |f: usize| [frames[2 * f] - 1.0, frames[2 * f + 1] / 2.0];
        // Step 0: two zero frames, then frames 0, 1, 2.
        assert_eq!(&steps[0][..4], &[0.0; 4]);
        assert_eq!(&steps[0][4..6], &norm(0));
        assert_eq!(&steps[0][8..10], &norm(2));
        // Step 1: frames 1..=5.
        assert_eq!(&steps[1][..2], &norm(1));
        assert_eq!(&steps[1][8..10], &norm(5));
        // Step 2: frames 4, 5, 6, then two zero frames past the end.
        assert_eq!(&steps[2][..2], &norm(4));
        assert_eq!(&steps[2][4..6], &norm(6));
        assert_eq!(&steps[2][6..10], &[0.0; 4]);
        // finish() started a new stream: the history is zeros again.
        assert_eq!(s.frames(), 0);
    }

    #[test]
    fn rejects_bad_statistics() {
        assert!(FrameStacker::new(2, 3, 5, &[0.0, 0.0], &[1.0, 0.0]).is_err());
        assert!(FrameStacker::new(2, 3, 2, &[0.0, 0.0], &[1.0, 1.0]).is_err());
        assert!(FrameStacker::new(2, 1, 1, &[0.0], &[1.0]).is_err());
    }
}
