//! The metric values: atomics that many threads update without locking.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Adds `v` to an `f64` stored as bits in an `AtomicU64`.
fn add_f64(cell: &AtomicU64, v: f64) {
    let mut current = cell.load(Ordering::Relaxed);
    loop {
        let next = (f64::from_bits(current) + v).to_bits();
        match cell.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(seen) => current = seen,
        }
    }
}

/// Formats a sample value the way Prometheus clients do.
pub(crate) fn fmt_value(out: &mut String, v: f64) {
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.is_nan() {
        out.push_str("NaN");
    } else {
        go_float(out, v);
    }
}

/// A finite float as Python's `prometheus_client` writes values and bucket
/// bounds (`floatToGoString`): Python's `repr` (the shortest digits that
/// read back, in fixed notation from 1e-4 up to 1e16, else `1.5e-05`), and
/// positive values of 1e6 and more in exponent form, as Go writes them
/// (`1234567.0` is `1.234567e+06`).
pub(crate) fn go_float(out: &mut String, v: f64) {
    // `{:e}`: the shortest round-trip digits, `d.ddde<exp>`.
    let sci = format!("{:e}", v.abs());
    let (mantissa, exp) = sci.split_once('e').expect("{:e} writes an exponent");
    let exp: i32 = exp.parse().expect("an integer exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if v.is_sign_negative() && v != 0.0 {
        out.push('-');
    }
    let go_exponent = v > 0.0 && exp >= 6;
    if go_exponent || !(-4..16).contains(&exp) {
        out.push_str(&digits[..1]);
        let rest = digits[1..].trim_end_matches('0');
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    } else if exp < 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', int_len - digits.len()));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
}

/// A value that only goes up.
#[derive(Debug, Default)]
pub struct Counter {
    bits: AtomicU64,
}

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.inc_by(1.0);
    }

    /// Adds `v`; negative values are ignored (a counter never goes down).
    pub fn inc_by(&self, v: f64) {
        if v > 0.0 {
            add_f64(&self.bits, v);
        }
    }

    /// The current total.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge {
    value: AtomicI64,
}

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.value.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts one.
    pub fn dec(&self) {
        self.value.fetch_sub(1, Ordering::Relaxed);
    }

    /// Sets the value to `v`.
    pub fn set(&self, v: i64) {
        self.value.store(v, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }
}

/// Observations counted in cumulative buckets, with their count and sum.
#[derive(Debug)]
pub struct Histogram {
    bounds: Box<[f64]>,
    /// One per bound plus the `+Inf` bucket; not cumulative (rendering sums).
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl Histogram {
    pub(crate) fn new(bounds: &[f64]) -> Self {
        Histogram {
            bounds: bounds.into(),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// Counts `v` in the first bucket whose upper bound is at least `v`, and
    /// adds it to the sum.
    pub fn observe(&self, v: f64) {
        let i = self.bounds.partition_point(|&b| b < v);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        add_f64(&self.sum, v);
    }

    /// How many values have been observed.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The sum of the observed values.
    pub fn sum(&self) -> f64 {
        f64::from_bits(self.sum.load(Ordering::Relaxed))
    }

    /// `(upper bound, cumulative count)` per bucket, `+Inf` last.
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        self.counts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                total += c.load(Ordering::Relaxed);
                (self.bounds.get(i).copied().unwrap_or(f64::INFINITY), total)
            })
            .collect()
    }
}

/// Observations reduced to their count and sum (Prometheus' summary without
/// quantiles, which is what Python's `prometheus_client` exposes).
#[derive(Debug, Default)]
pub struct Summary {
    count: AtomicU64,
    sum: AtomicU64,
}

impl Summary {
    /// Records `v`: one more in the count, `v` more in the sum.
    pub fn observe(&self, v: f64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        add_f64(&self.sum, v);
    }

    /// How many values have been observed.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The sum of the observed values.
    pub fn sum(&self) -> f64 {
        f64::from_bits(self.sum.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_prometheus_client_prints_them() {
        for (v, python) in [
            (0.0, "0.0"),
            (1.0, "1.0"),
            (-2.0, "-2.0"),
            (0.5, "0.5"),
            (2.4246999601018615e-05, "2.4246999601018615e-05"),
            (0.0001, "0.0001"),
            (1e-5, "1e-05"),
            (123.25, "123.25"),
            (999999.0, "999999.0"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (-1234567.0, "-1234567.0"),
            (1e16, "1e+16"),
            (0.004829225999856135, "0.004829225999856135"),
            (f64::INFINITY, "+Inf"),
            (f64::NAN, "NaN"),
        ] {
            let mut out = String::new();
            fmt_value(&mut out, v);
            assert_eq!(out, python, "{v}");
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_upper_inclusive() {
        let h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 3.0] {
            h.observe(v);
        }
        assert_eq!(h.buckets(), vec![(1.0, 2), (2.0, 3), (f64::INFINITY, 4)]);
        assert_eq!(h.count(), 4);
        assert_eq!(h.sum(), 6.0);
    }

    #[test]
    fn counters_ignore_negative_increments() {
        let c = Counter::default();
        c.inc();
        c.inc_by(-5.0);
        c.inc_by(0.5);
        assert_eq!(c.get(), 1.5);
    }

    #[test]
    fn concurrent_updates_are_not_lost() {
        let s = std::sync::Arc::new(Summary::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || (0..10_000).for_each(|_| s.observe(0.5)))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(s.count(), 40_000);
        assert_eq!(s.sum(), 20_000.0);
    }

    #[test]
    fn values_print_like_prometheus_clients() {
        let mut out = String::new();
        for v in [1.0, 0.25, f64::INFINITY, 0.0] {
            fmt_value(&mut out, v);
            out.push(' ');
        }
        assert_eq!(out, "1.0 0.25 +Inf 0.0 ");
    }
}
