//! Counters and a lock-free latency histogram shared by every connection task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// Microseconds since the load generator started. Publisher and subscribers share the process, so
/// a send time written into an event's data can be compared with the receive time directly.
pub(crate) fn now_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// 10 µs buckets up to 100 ms, then 1 ms buckets up to ~10 s; anything slower lands in the last.
const FINE_BUCKETS: usize = 10_000;
const COARSE_BUCKETS: usize = 9_900;

#[derive(Debug)]
pub(crate) struct Histogram {
    buckets: Vec<AtomicU64>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..FINE_BUCKETS + COARSE_BUCKETS)
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }
}

impl Histogram {
    pub(crate) fn record(&self, micros: u64) {
        let index = if micros < 100_000 {
            (micros / 10) as usize
        } else {
            (FINE_BUCKETS + ((micros - 100_000) / 1000) as usize).min(self.buckets.len() - 1)
        };
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
    }

    fn bucket_middle_us(index: usize) -> f64 {
        if index < FINE_BUCKETS {
            index as f64 * 10.0 + 5.0
        } else {
            100_000.0 + (index - FINE_BUCKETS) as f64 * 1000.0 + 500.0
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The `q`-quantile (0..=1) in milliseconds, or `None` with no samples.
    pub(crate) fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Ordering::Relaxed);
            if seen >= rank {
                return Some(Self::bucket_middle_us(index) / 1000.0);
            }
        }
        None
    }

    pub(crate) fn max_ms(&self) -> Option<f64> {
        self.buckets
            .iter()
            .rposition(|b| b.load(Ordering::Relaxed) > 0)
            .map(|index| Self::bucket_middle_us(index) / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Histogram;

    #[test]
    fn quantiles_follow_the_samples() {
        let histogram = Histogram::default();
        for micros in 1..=1000u64 {
            histogram.record(micros * 100);
        }
        let p50 = histogram.quantile_ms(0.5).unwrap();
        let p99 = histogram.quantile_ms(0.99).unwrap();
        assert!((p50 - 50.0).abs() < 0.1, "{p50}");
        assert!((p99 - 99.0).abs() < 0.1, "{p99}");
        assert!(histogram.max_ms().unwrap() > 99.0);
    }
}
