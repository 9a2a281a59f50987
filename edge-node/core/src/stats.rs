//! Latency samples and their percentiles, as reported by `bench`, `demo` and `view`.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// p50/p95/p99 in milliseconds, the shape every latency takes in bench JSON.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// Collects latency samples. Bounded: past `capacity` samples it keeps a uniform reservoir so
/// a long run never grows without bound, while a bench run (a few thousand frames) is exact.
#[derive(Clone, Debug)]
pub struct LatencySamples {
    samples_ms: Vec<f64>,
    capacity: usize,
    seen: u64,
    rng_state: u64,
}

impl Default for LatencySamples {
    fn default() -> Self {
        Self::with_capacity(100_000)
    }
}

impl LatencySamples {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            samples_ms: Vec::new(),
            capacity: capacity.max(1),
            seen: 0,
            rng_state: 0x9e37_79b9_7f4a_7c15,
        }
    }

    pub fn record(&mut self, latency: Duration) {
        self.record_ms(latency.as_secs_f64() * 1e3);
    }

    pub fn record_ms(&mut self, ms: f64) {
        self.seen += 1;
        if self.samples_ms.len() < self.capacity {
            self.samples_ms.push(ms);
            return;
        }
        // Reservoir sampling (Algorithm R) with a xorshift generator: deterministic, no deps.
        self.rng_state ^= self.rng_state << 13;
        self.rng_state ^= self.rng_state >> 7;
        self.rng_state ^= self.rng_state << 17;
        let slot = self.rng_state % self.seen;
        if (slot as usize) < self.capacity {
            self.samples_ms[slot as usize] = ms;
        }
    }

    pub fn count(&self) -> u64 {
        self.seen
    }

    pub fn is_empty(&self) -> bool {
        self.seen == 0
    }

    /// Nearest-rank percentiles; zeros when there are no samples.
    pub fn percentiles(&self) -> Percentiles {
        if self.samples_ms.is_empty() {
            return Percentiles::default();
        }
        let mut sorted = self.samples_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            let idx = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            sorted[idx]
        };
        Percentiles {
            p50: rank(0.50),
            p95: rank(0.95),
            p99: rank(0.99),
        }
    }

    pub fn merge(&mut self, other: &LatencySamples) {
        for &s in &other.samples_ms {
            self.record_ms(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut s = LatencySamples::default();
        for i in 1..=100 {
            s.record_ms(i as f64);
        }
        assert_eq!(
            s.percentiles(),
            Percentiles {
                p50: 50.0,
                p95: 95.0,
                p99: 99.0
            }
        );
    }

    #[test]
    fn reservoir_stays_bounded() {
        let mut s = LatencySamples::with_capacity(10);
        for i in 0..1000 {
            s.record_ms(i as f64);
        }
        assert_eq!(s.count(), 1000);
        assert_eq!(s.samples_ms.len(), 10);
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(
            LatencySamples::default().percentiles(),
            Percentiles::default()
        );
    }
}
