//! A small log-linear latency histogram in microseconds: 8 linear sub-buckets per power of two,
//! so any recorded value is reported within 12.5 %. Mergeable across worker processes and
//! serialised sparsely. (hdrhistogram does more, but its wire format needs extra crates; this
//! needs 40 lines and 2 KiB.)

use serde::{Deserialize, Serialize};

const SUB: u32 = 8;
const BUCKETS: usize = 64 * SUB as usize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<u64>,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            max: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < u64::from(SUB) {
        return usize::try_from(v).unwrap_or(0);
    }
    let power = 63 - v.leading_zeros(); // >= 3
    let shift = power - 3;
    let sub = (v >> shift) - u64::from(SUB); // 0..SUB
    usize::try_from(u64::from((power - 2) * SUB) + sub).unwrap_or(BUCKETS - 1)
}

/// The largest value that falls in bucket `i`.
fn upper(i: usize) -> u64 {
    let i = u64::try_from(i).unwrap_or(0);
    let sub = u64::from(SUB);
    if i < sub {
        return i;
    }
    let power = i / sub + 2;
    let shift = power - 3;
    ((sub + i % sub + 1) << shift) - 1
}

impl Histogram {
    pub fn record(&mut self, micros: u64) {
        let i = index(micros).min(BUCKETS - 1);
        self.counts[i] += 1;
        self.max = self.max.max(micros);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.max = self.max.max(other.max);
    }

    #[must_use]
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    #[must_use]
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1), as the upper edge of its bucket.
    #[must_use]
    pub fn quantile(&self, q: f64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max);
            }
        }
        self.max
    }

    /// Non-empty buckets as (upper edge in µs, count), for plots and JSON.
    #[must_use]
    pub fn buckets(&self) -> Vec<(u64, u64)> {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| (upper(i), *c))
            .collect()
    }
}

/// Sparse wire form: (bucket index, count) pairs and the max.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Wire {
    pub buckets: Vec<(u32, u64)>,
    pub max: u64,
}

impl From<&Histogram> for Wire {
    fn from(h: &Histogram) -> Self {
        Wire {
            buckets: h
                .counts
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| (u32::try_from(i).unwrap_or(0), *c))
                .collect(),
            max: h.max,
        }
    }
}

impl From<&Wire> for Histogram {
    fn from(w: &Wire) -> Self {
        let mut h = Histogram::default();
        for &(i, c) in &w.buckets {
            if let Some(slot) = h.counts.get_mut(i as usize) {
                *slot += c;
            }
        }
        h.max = w.max;
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_bound_values_within_an_eighth() {
        for v in [
            0, 1, 7, 8, 9, 15, 16, 100, 999, 1000, 123_456, 1_000_000, 3_000_000,
        ] {
            let i = index(v);
            assert!(upper(i) >= v, "{v}: upper {}", upper(i));
            if v >= 8 {
                assert!(upper(i) <= v + v / 8, "{v}: upper {}", upper(i));
            }
            if i > 0 {
                assert!(upper(i - 1) < v, "{v}");
            }
        }
    }

    #[test]
    fn quantiles_and_merge() {
        let mut a = Histogram::default();
        for v in 1..=90 {
            a.record(v);
        }
        let mut b = Histogram::default();
        for _ in 0..10 {
            b.record(1_000_000);
        }
        a.merge(&Histogram::from(&Wire::from(&b)));
        assert_eq!(a.count(), 100);
        assert!((45..=52).contains(&a.quantile(0.5)), "{}", a.quantile(0.5));
        assert!(a.quantile(0.99) >= 1_000_000);
        assert_eq!(a.max(), 1_000_000);
    }
}
