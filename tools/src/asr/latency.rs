//! Per-chunk latencies for `linrt asr --stats` in fixed memory: a day-long stream
//! has millions of chunks (8.6 million of 10 ms in 24 h), and keeping each one to
//! sort at the end grew the process by 140 MB (the soak of issue 19).
//!
//! A histogram of log-spaced bins, 1 % wide, from 100 ns to 1000 s: a percentile is
//! the bin's geometric centre, within 0.5 % of the exact value; the sum and the
//! maximum are exact.

const BINS_PER_DECADE: f64 = 230.0; // 10^(1/230) = 1.0101: 1 % wide
const LOWEST: f64 = 1e-7;
const DECADES: usize = 10;
const BINS: usize = DECADES * BINS_PER_DECADE as usize;

pub struct Latencies {
    counts: Vec<u64>,
    count: u64,
    sum: f64,
    max: f64,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies { counts: vec![0; BINS], count: 0, sum: 0.0, max: 0.0 }
    }
}

impl Latencies {
    pub fn add(&mut self, seconds: f64) {
        let seconds = if seconds.is_finite() { seconds.max(0.0) } else { 0.0 };
        self.counts[bin(seconds)] += 1;
        self.count += 1;
        self.sum += seconds;
        self.max = self.max.max(seconds);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    pub fn max(&self) -> f64 {
        self.max
    }

    /// The `p` quantile (0 to 1), nearest rank, as its bin's centre (0 when empty).
    pub fn quantile(&self, p: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = ((self.count - 1) as f64 * p.clamp(0.0, 1.0)).round() as u64;
        if rank == self.count - 1 {
            return self.max;
        }
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen > rank {
                return centre(i).min(self.max);
            }
        }
        self.max
    }
}

fn bin(seconds: f64) -> usize {
    if seconds <= LOWEST {
        return 0;
    }
    let i = ((seconds / LOWEST).log10() * BINS_PER_DECADE).floor();
    (i as usize).min(BINS - 1)
}

fn centre(i: usize) -> f64 {
    LOWEST * 10f64.powf((i as f64 + 0.5) / BINS_PER_DECADE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_half_a_percent_of_the_exact_ones() {
        let mut h = Latencies::default();
        let mut exact = Vec::new();
        let mut x = 12345u64;
        for _ in 0..100_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            // Latencies from 5 µs to 50 ms, log-uniform, like chunks with rebuilds.
            let v = 5e-6 * 10f64.powf((x >> 11) as f64 / (1u64 << 53) as f64 * 4.0);
            h.add(v);
            exact.push(v);
        }
        exact.sort_by(f64::total_cmp);
        for p in [0.5, 0.95, 0.99] {
            let want = exact[((exact.len() - 1) as f64 * p).round() as usize];
            let got = h.quantile(p);
            assert!((got / want - 1.0).abs() < 0.006, "p{p}: {got} vs {want}");
        }
        assert_eq!(h.max(), *exact.last().unwrap());
        assert_eq!(h.count(), 100_000);
        assert!((h.sum() - exact.iter().sum::<f64>()).abs() < 1e-9);
    }

    #[test]
    fn edges_and_empty() {
        let mut h = Latencies::default();
        assert_eq!(h.quantile(0.5), 0.0);
        h.add(0.0);
        h.add(f64::NAN);
        h.add(5000.0);
        assert_eq!(h.count(), 3);
        assert_eq!(h.max(), 5000.0);
        assert_eq!(h.quantile(1.0), 5000.0);
        assert!(h.quantile(0.0) <= LOWEST * 1.02);
    }
}
