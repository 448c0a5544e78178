//! Choosing the next token from logits: greedy, or sampling with a temperature,
//! top-k and top-p (nucleus), from a seeded generator so that runs repeat. No heap:
//! the caller lends a scratch buffer of one entry per vocabulary symbol.

use crate::rng::Rng;
use crate::Error;

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// The highest logit (the first one on ties).
    Greedy,
    /// Softmax of logits / temperature, restricted to the `top_k` most likely
    /// symbols (0: all) and then to the smallest set whose probability reaches
    /// `top_p` (1: all).
    Random { temperature: f32, top_k: usize, top_p: f32 },
}

impl Sampling {
    /// Checks the parameters: temperature > 0 and finite, 0 < top_p ≤ 1.
    pub fn validate(&self) -> Result<(), Error> {
        if let Sampling::Random { temperature, top_p, .. } = *self {
            if !(temperature.is_finite() && temperature > 0.0) {
                return Err(Error::BadSampling { what: "temperature must be positive and finite" });
            }
            if !(top_p > 0.0 && top_p <= 1.0) {
                return Err(Error::BadSampling { what: "top_p must be in (0, 1]" });
            }
        }
        Ok(())
    }
}

/// A seeded sampler ([`Rng`]: the same tokens for a seed on every target).
pub struct Sampler {
    sampling: Sampling,
    rng: Rng,
}

impl Sampler {
    pub fn new(sampling: Sampling, seed: u64) -> Result<Sampler, Error> {
        sampling.validate()?;
        Ok(Sampler { sampling, rng: Rng::seeded(seed) })
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f32 {
        self.rng.next_f32()
    }

    /// The next token. `scratch` must hold at least `logits.len()` entries.
    pub fn sample(&mut self, logits: &[f32], scratch: &mut [(f32, u32)]) -> Result<u32, Error> {
        if logits.is_empty() || logits.iter().any(|x| !x.is_finite()) {
            return Err(Error::BadSampling { what: "logits are empty, NaN or infinite" });
        }
        let greedy = || logits.iter().enumerate().fold(0, |b, (i, v)| if *v > logits[b] { i } else { b }) as u32;
        let (temperature, top_k, top_p) = match self.sampling {
            Sampling::Greedy => return Ok(greedy()),
            Sampling::Random { temperature, top_k, top_p } => (temperature, top_k, top_p),
        };
        if scratch.len() < logits.len() {
            return Err(Error::BadLength { what: "sampling scratch", expected: logits.len(), found: scratch.len() });
        }
        // Probabilities (unnormalised, max-shifted so exp never overflows), most likely first.
        let max = logits.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
        let entries = &mut scratch[..logits.len()];
        for (i, (e, l)) in entries.iter_mut().zip(logits).enumerate() {
            *e = (libm::expf((l - max) / temperature), i as u32);
        }
        entries.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let k = if top_k == 0 { entries.len() } else { top_k.min(entries.len()) };
        let total: f32 = entries[..k].iter().map(|e| e.0).sum();
        // The nucleus: the first entries whose share reaches top_p.
        let mut kept = 0;
        let mut mass = 0.0;
        for e in &entries[..k] {
            kept += 1;
            mass += e.0;
            if mass >= top_p * total {
                break;
            }
        }
        let target = self.uniform() * mass;
        let mut acc = 0.0;
        for e in &entries[..kept] {
            acc += e.0;
            if target < acc {
                return Ok(e.1);
            }
        }
        Ok(entries[kept - 1].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGITS: [f32; 5] = [0.0, 2.0, 1.0, -1.0, 2.0];

    fn counts(sampling: Sampling, draws: usize) -> [usize; 5] {
        let mut s = Sampler::new(sampling, 7).unwrap();
        let mut scratch = [(0f32, 0u32); 5];
        let mut c = [0; 5];
        for _ in 0..draws {
            c[s.sample(&LOGITS, &mut scratch).unwrap() as usize] += 1;
        }
        c
    }

    #[test]
    fn greedy_takes_the_first_best() {
        assert_eq!(counts(Sampling::Greedy, 10), [0, 10, 0, 0, 0]);
    }

    #[test]
    fn temperature_follows_the_softmax() {
        let n = 100_000;
        let c = counts(Sampling::Random { temperature: 1.0, top_k: 0, top_p: 1.0 }, n);
        let z: f32 = LOGITS.iter().map(|l| libm::expf(*l)).sum();
        for (i, l) in LOGITS.iter().enumerate() {
            let p = libm::expf(*l) / z;
            let got = c[i] as f32 / n as f32;
            assert!((got - p).abs() < 0.01, "symbol {i}: {got} vs {p}");
        }
        // A low temperature concentrates on the two best (tied) symbols.
        let c = counts(Sampling::Random { temperature: 0.05, top_k: 0, top_p: 1.0 }, 1000);
        assert_eq!(c[1] + c[4], 1000);
        assert!(c[1] > 400 && c[4] > 400);
    }

    #[test]
    fn top_k_and_top_p_cut_the_tail() {
        let c = counts(Sampling::Random { temperature: 1.0, top_k: 2, top_p: 1.0 }, 10_000);
        assert_eq!(c[0] + c[2] + c[3], 0);
        // p ≈ [.07, .39, .14, .03, .39]: 0.5 needs the two best, 0.8 adds symbol 2.
        let c = counts(Sampling::Random { temperature: 1.0, top_k: 0, top_p: 0.5 }, 10_000);
        assert_eq!(c[0] + c[2] + c[3], 0);
        let c = counts(Sampling::Random { temperature: 1.0, top_k: 0, top_p: 0.8 }, 10_000);
        assert!(c[2] > 0 && c[0] + c[3] == 0);
    }

    #[test]
    fn same_seed_same_draws_and_bad_parameters_are_errors() {
        let random = Sampling::Random { temperature: 1.0, top_k: 0, top_p: 1.0 };
        assert_eq!(counts(random, 500), counts(random, 500));
        assert!(Sampler::new(Sampling::Random { temperature: 0.0, top_k: 0, top_p: 1.0 }, 1).is_err());
        assert!(Sampler::new(Sampling::Random { temperature: 1.0, top_k: 0, top_p: 0.0 }, 1).is_err());
        let mut s = Sampler::new(random, 1).unwrap();
        assert!(s.sample(&LOGITS, &mut [(0.0, 0); 2]).is_err());
        assert!(s.sample(&[f32::NAN], &mut [(0.0, 0); 1]).is_err());
        assert!(s.sample(&[0.0, f32::INFINITY], &mut [(0.0, 0); 2]).is_err());
    }
}
