//! Summaries of repeated measurements: median and spread, in milliseconds.

use std::time::Duration;

use serde::Serialize;

/// The distribution of a set of samples, all in milliseconds. Percentiles are nearest-rank:
/// the p-th percentile is the smallest sample with at least p % of the samples at or below it,
/// so every figure is a value that was really measured.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Summary {
    /// How many samples.
    pub count: usize,
    /// The smallest.
    pub min_ms: f64,
    /// The median (50th percentile).
    pub p50_ms: f64,
    /// The 90th percentile.
    pub p90_ms: f64,
    /// The 99th percentile.
    pub p99_ms: f64,
    /// The largest.
    pub max_ms: f64,
    /// The arithmetic mean, which is what a bill adds up.
    pub mean_ms: f64,
}

impl Summary {
    /// Summarises `samples`; `None` when there are none.
    pub fn of(samples: &[Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let mean_ms = ms.iter().sum::<f64>() / ms.len() as f64;
        Some(Self {
            count: ms.len(),
            min_ms: ms[0],
            p50_ms: nearest_rank(&ms, 50.0),
            p90_ms: nearest_rank(&ms, 90.0),
            p99_ms: nearest_rank(&ms, 99.0),
            max_ms: ms[ms.len() - 1],
            mean_ms,
        })
    }
}

/// The nearest-rank percentile of sorted, non-empty `values`.
fn nearest_rank(values: &[f64], percent: f64) -> f64 {
    let rank = (percent / 100.0 * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_millis(*v)).collect()
    }

    #[test]
    fn percentiles_are_samples_that_were_measured() {
        let summary = Summary::of(&ms(&(1..=20).collect::<Vec<_>>())).unwrap();
        assert_eq!(summary.min_ms, 1.0);
        assert_eq!(summary.p50_ms, 10.0);
        assert_eq!(summary.p90_ms, 18.0);
        assert_eq!(summary.p99_ms, 20.0);
        assert_eq!(summary.max_ms, 20.0);
        assert_eq!(summary.mean_ms, 10.5);
    }

    #[test]
    fn one_sample_is_every_percentile() {
        let summary = Summary::of(&ms(&[7])).unwrap();
        assert_eq!(
            (summary.min_ms, summary.p50_ms, summary.max_ms),
            (7.0, 7.0, 7.0)
        );
    }

    #[test]
    fn no_samples_no_summary() {
        assert!(Summary::of(&[]).is_none());
    }
}
