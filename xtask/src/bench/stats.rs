//! Latency percentiles, and medians across repeated rounds.

use std::time::Duration;

use super::loadgen::Outcome;

/// The nearest-rank percentile `p` (0..=100) of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median (the lower middle one for an even count).
pub fn median<T: Copy + PartialOrd>(values: &[T]) -> Option<T> {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v.get(v.len().saturating_sub(1) / 2).copied()
}

/// One scenario's outcomes over several rounds: each figure is the median
/// of the rounds' figures (so one disturbed round moves nothing); failures
/// add up; memory is the largest seen.
pub fn median_outcome(rounds: &[Outcome]) -> Outcome {
    let m =
        |f: fn(&Outcome) -> f64| median(&rounds.iter().map(f).collect::<Vec<_>>()).unwrap_or(0.0);
    let d = |f: fn(&Outcome) -> Duration| {
        median(&rounds.iter().map(f).collect::<Vec<_>>()).unwrap_or_default()
    };
    Outcome {
        requests: rounds.iter().map(|o| o.requests).sum(),
        errors: rounds.iter().map(|o| o.errors).sum(),
        invalid: rounds.iter().map(|o| o.invalid).sum(),
        first_problem: rounds.iter().find_map(|o| o.first_problem.clone()),
        rps: m(|o| o.rps),
        p50: d(|o| o.p50),
        p99: d(|o| o.p99),
        cpu_us_per_req: m(|o| o.cpu_us_per_req),
        peak_rss: rounds.iter().map(|o| o.peak_rss).max().unwrap_or(0),
        instructions_per_req: median(
            &rounds
                .iter()
                .filter_map(|o| o.instructions_per_req)
                .collect::<Vec<_>>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_rounds() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4, 1, 3, 2]), Some(2));
        assert_eq!(median::<f64>(&[]), None);
        let round = |rps: f64, p99_us: u64, errors: u64| Outcome {
            requests: 100,
            errors,
            rps,
            p99: Duration::from_micros(p99_us),
            cpu_us_per_req: rps / 100.0,
            peak_rss: rps as u64,
            ..Default::default()
        };
        let m = median_outcome(&[
            round(900.0, 5000, 0),
            round(1000.0, 250, 1),
            round(1100.0, 300, 0),
        ]);
        assert_eq!(m.rps, 1000.0);
        assert_eq!(m.p99, Duration::from_micros(300));
        assert_eq!(m.cpu_us_per_req, 10.0);
        assert_eq!((m.requests, m.errors, m.peak_rss), (300, 1, 1100));
        assert_eq!(m.instructions_per_req, None);
    }

    #[test]
    fn nearest_rank() {
        let ms = |v: u64| Duration::from_millis(v);
        let samples: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&samples, 50.0), ms(50));
        assert_eq!(percentile(&samples, 99.0), ms(99));
        assert_eq!(percentile(&samples, 100.0), ms(100));
        assert_eq!(percentile(&samples, 0.0), ms(1));
        assert_eq!(percentile(&[ms(7)], 99.0), ms(7));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }
}
