//! Inverse links from raw predictions to probabilities, as scikit-learn's
//! loss objects compute them.
//!
//! Binary: `scipy.special.expit`, which is `1 / (1 + exp(-x))` with the C
//! library's `exp`; Rust's `f64::exp` calls the same glibc function on
//! Linux, so the probabilities match bit for bit. Multiclass:
//! `sklearn.utils.extmath.softmax`, whose `np.exp` is numpy's own SIMD
//! code (not the C library's) and is not replicated: glibc's `exp` agrees
//! with it on most but not all inputs.

/// `proba[:, 1] = expit(raw)`, `proba[:, 0] = 1 - proba[:, 1]`: `n x 2`.
pub(crate) fn binary_proba(raw: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(raw.len() * 2);
    for &r in raw {
        let p = expit(r);
        out.push(1.0 - p);
        out.push(p);
    }
    out
}

/// scipy's `expit`.
pub(crate) fn expit(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `softmax` of each row of `n x k` values: minus the row's max, `exp`,
/// divided by the row's sum (numpy's pairwise sum).
pub(crate) fn softmax(raw: &[f64], k: usize) -> Vec<f64> {
    let mut out = raw.to_vec();
    for row in out.chunks_exact_mut(k) {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, nan_max);
        for v in row.iter_mut() {
            *v = (*v - max).exp();
        }
        let sum = reduce_sum(row);
        for v in row.iter_mut() {
            *v /= sum;
        }
    }
    out
}

fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if b > a {
        b
    } else {
        a
    }
}

/// `np.sum` of a contiguous row: the first element plus the pairwise sum
/// of the rest (numpy's reduction seeds the accumulator with the first
/// element).
pub(crate) fn reduce_sum(v: &[f64]) -> f64 {
    match v.split_first() {
        None => 0.0,
        Some((first, rest)) => first + pairwise_sum(rest),
    }
}

/// numpy's `pairwise_sum`: plain below 8 values, 8 accumulators up to 128,
/// halves (rounded to multiples of 8) above.
pub(crate) fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &v in a {
            res += v;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let whole = n - n % 8;
        let mut i = 8;
        while i < whole {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &a[whole..] {
            res += v;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_rows_sum_to_one_ish() {
        let p = binary_proba(&[0.0, 40.0]);
        assert_eq!(p[..2], [0.5, 0.5]);
        assert_eq!(p[3], 1.0);
    }

    #[test]
    fn pairwise_sum_blocks() {
        let v: Vec<f64> = (0..300).map(f64::from).collect();
        assert_eq!(pairwise_sum(&v), 44850.0);
        assert_eq!(reduce_sum(&[1.0, 2.0, 3.0]), 6.0);
    }

    #[test]
    fn softmax_rows() {
        let p = softmax(&[0.0, 0.0], 2);
        assert_eq!(p, [0.5, 0.5]);
    }
}
