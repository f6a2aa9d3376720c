//! Linear models: `LinearRegression`, `Ridge`, `Lasso`, `ElasticNet`,
//! `SGDRegressor`, `LogisticRegression`, `SGDClassifier`.
//!
//! All of them predict from `X @ coef_.T + intercept_` with `X` cast to
//! float64 (numpy promotes float32 and int64 inputs against the float64
//! coefficients); the product's rounding is OpenBLAS's and is reproduced by
//! [`crate::blas`], which also decides which batch shapes can be.
//! Classifiers choose `classes_[scores > 0]` (one score column) or the
//! row's argmax; probabilities are
//! - `expit`: `_predict_proba_lr`, scipy's `expit` (binary), or `expit` per
//!   class normalized by the row's sum (one-vs-rest multiclass);
//! - `softmax`: multiclass `LogisticRegression`, whose numpy `exp` is not
//!   reproduced (its probes fail, so it is never served natively; the
//!   exporter refuses those models anyway for their Fortran-order `coef_`);
//! - `modified_huber`: `SGDClassifier(loss="modified_huber")`'s clipped
//!   scores.

use serde::Deserialize;

use crate::array::{Array, ArrayData, Matrix, WireArray};
use crate::blas;
use crate::error::{HandoverError, Result};
use crate::forest::parse_classes;
use crate::input::{check_float_input, to_f64};
use crate::labels::{argmax_rows, Classes};
use crate::link;
use crate::Method;

#[derive(Debug, Deserialize)]
pub(crate) struct WireLinear {
    n_features: usize,
    /// float64 `[k, n_features]`.
    coef: WireArray,
    /// float64 `[k]` (a scalar intercept broadcast).
    intercept: WireArray,
    /// Regressors: `predict` returns `[n, k]` (2-d `coef_`) instead of `[n]`.
    #[serde(default)]
    output_2d: bool,
    #[serde(default)]
    classes: Option<WireArray>,
    /// `expit`, `softmax` or `modified_huber`; absent without `predict_proba`.
    #[serde(default)]
    proba: Option<String>,
}

/// How `predict_proba` turns scores into probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proba {
    Expit,
    Softmax,
    ModifiedHuber,
}

#[derive(Debug, Clone)]
pub(crate) struct Linear {
    n_features: usize,
    /// `k` outputs (score columns).
    k: usize,
    coef: Vec<f64>,
    intercept: Vec<f64>,
    output_2d: bool,
    classes: Option<Classes>,
    proba: Option<Proba>,
}

impl Linear {
    pub(crate) fn parse(w: &WireLinear, at: &str) -> Result<Self> {
        let classes = parse_classes(w.classes.is_some(), w.classes.as_ref(), at)?;
        let coef_at = format!("{at}.coef");
        let coef = w.coef.decode(&coef_at)?;
        let k = match coef.shape[..] {
            [k, d] if d == w.n_features && k > 0 => k,
            _ => {
                return Err(HandoverError::invalid(
                    &coef_at,
                    format!("shape {:?}, expected [k, {}]", coef.shape, w.n_features),
                ))
            }
        };
        let coef = coef.finite_f64s(&coef_at, &[k, w.n_features])?;
        let int_at = format!("{at}.intercept");
        let intercept = w.intercept.decode(&int_at)?.finite_f64s(&int_at, &[k])?;
        let proba = match w.proba.as_deref() {
            None => None,
            Some("expit") => Some(Proba::Expit),
            Some("softmax") => Some(Proba::Softmax),
            Some("modified_huber") => Some(Proba::ModifiedHuber),
            Some(other) => {
                return Err(HandoverError::invalid(
                    &format!("{at}.proba"),
                    format!("unknown probability link {other:?}"),
                ))
            }
        };
        match &classes {
            Some(c) => {
                let expected = if c.len() == 2 { 1 } else { c.len() };
                if c.len() < 2 || k != expected || w.output_2d {
                    return Err(HandoverError::invalid(
                        &coef_at,
                        format!("{k} score columns for {} classes", c.len()),
                    ));
                }
            }
            None => {
                if proba.is_some() || (k > 1 && !w.output_2d) {
                    return Err(HandoverError::invalid(
                        at,
                        "a regressor with probabilities or several outputs in one column",
                    ));
                }
            }
        }
        Ok(Self {
            n_features: w.n_features,
            k,
            coef,
            intercept,
            output_2d: w.output_2d,
            classes,
            proba,
        })
    }

    pub(crate) fn n_features(&self) -> usize {
        self.n_features
    }

    pub(crate) fn has(&self, method: Method) -> bool {
        match method {
            Method::Predict => true,
            Method::PredictProba => self.proba.is_some(),
            Method::Transform => false,
        }
    }

    /// `validate_data` refuses NaN and infinities; shapes whose product
    /// OpenBLAS would thread are declined.
    pub(crate) fn check(&self, x: &Matrix<'_>) -> Result<(), String> {
        check_float_input(x, self.n_features, false)?;
        blas::plan(x.rows, self.n_features, self.k).map(|_| ())
    }

    /// `X @ coef_.T + intercept_`: `n x k`.
    fn scores(&self, x: &Matrix<'_>) -> Option<Vec<f64>> {
        let path = blas::plan(x.rows, self.n_features, self.k).ok()?;
        let xf = to_f64(x);
        let mut out = blas::matmul(path, &xf, x.rows, self.n_features, &self.coef, self.k);
        for row in out.chunks_exact_mut(self.k) {
            for (v, b) in row.iter_mut().zip(&self.intercept) {
                *v += b;
            }
        }
        Some(out)
    }

    pub(crate) fn run(&self, method: Method, x: &Matrix<'_>) -> Option<Array> {
        let scores = self.scores(x)?;
        let n = x.rows;
        match (method, &self.classes) {
            (Method::Predict, None) => Some(Array {
                shape: if self.output_2d {
                    vec![n, self.k]
                } else {
                    vec![n]
                },
                data: ArrayData::F64(scores),
            }),
            (Method::Predict, Some(c)) => {
                let idx: Vec<usize> = if self.k == 1 {
                    scores.iter().map(|&s| usize::from(s > 0.0)).collect()
                } else {
                    argmax_rows(&scores, self.k)
                };
                Some(Array {
                    shape: vec![n],
                    data: c.take(&idx),
                })
            }
            (Method::PredictProba, Some(c)) => {
                let proba = self.proba?;
                let p = match (proba, self.k) {
                    (Proba::Expit, 1) => link::binary_proba(&scores),
                    (Proba::Expit, k) => {
                        normalized(scores.into_iter().map(link::expit).collect(), k)
                    }
                    (Proba::Softmax, 1) => {
                        let two: Vec<f64> = scores.iter().flat_map(|&s| [-s, s]).collect();
                        link::softmax(&two, 2)
                    }
                    (Proba::Softmax, k) => link::softmax(&scores, k),
                    (Proba::ModifiedHuber, 1) => scores
                        .iter()
                        .flat_map(|&s| {
                            let p = huber(s);
                            [1.0 - p, p]
                        })
                        .collect(),
                    (Proba::ModifiedHuber, k) => {
                        normalized(scores.into_iter().map(huber).collect(), k)
                    }
                };
                Some(Array {
                    shape: vec![n, c.len()],
                    data: ArrayData::F64(p),
                })
            }
            _ => None,
        }
    }
}

/// `(clip(s, -1, 1) + 1) / 2`, NaN kept (numpy's `clip` propagates it).
fn huber(s: f64) -> f64 {
    let c = if s.is_nan() { s } else { s.clamp(-1.0, 1.0) };
    (c + 1.0) / 2.0
}

/// `prob.sum(axis=1)` of one row: numpy starts the reduction from the
/// identity (zero) and adds the row's pairwise sum.
fn row_sum(row: &[f64]) -> f64 {
    0.0 + link::pairwise_sum(row)
}

/// Each row divided by its sum (`prob.sum(axis=1)`); a row summing to
/// zero becomes uniform, as scikit-learn's one-vs-rest normalization does.
fn normalized(mut p: Vec<f64>, k: usize) -> Vec<f64> {
    for row in p.chunks_exact_mut(k) {
        let mut sum = row_sum(row);
        if sum == 0.0 {
            row.fill(1.0);
            sum = k as f64;
        }
        for v in row.iter_mut() {
            *v /= sum;
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::MatrixData;
    use base64::Engine as _;

    fn f8(v: &[f64], shape: &[usize]) -> String {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        format!(
            r#"{{"dtype":"<f8","shape":{shape:?},"data":"{}"}}"#,
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )
    }

    fn linear(extra: &str, coef: &[f64], k: usize, intercept: &[f64]) -> Result<Linear> {
        let d = coef.len() / k.max(1);
        let json = format!(
            r#"{{"n_features":{d},"coef":{},"intercept":{}{extra}}}"#,
            f8(coef, &[k, d]),
            f8(intercept, &[intercept.len()])
        );
        Linear::parse(&serde_json::from_str(&json).unwrap(), "model")
    }

    fn m(x: &[f64], rows: usize) -> Matrix<'_> {
        Matrix {
            rows,
            cols: x.len() / rows,
            data: MatrixData::F64(x),
        }
    }

    #[test]
    fn regression_adds_the_intercept() {
        let l = linear("", &[1.0, 2.0], 1, &[0.5]).unwrap();
        let out = l
            .run(Method::Predict, &m(&[1.0, 1.0, 2.0, -1.0], 2))
            .unwrap();
        assert_eq!(out.shape, [2]);
        assert_eq!(out.data, ArrayData::F64(vec![3.5, 0.5]));
        assert!(!l.has(Method::PredictProba));
        let two = linear(
            r#","output_2d":true"#,
            &[1.0, 0.0, 0.0, 1.0],
            2,
            &[0.0, 1.0],
        )
        .unwrap();
        let out = two.run(Method::Predict, &m(&[3.0, 4.0], 1)).unwrap();
        assert_eq!(out.shape, [1, 2]);
        assert_eq!(out.data, ArrayData::F64(vec![3.0, 5.0]));
    }

    #[test]
    fn binary_classifier_thresholds_at_zero() {
        let cls = r#","classes":{"dtype":"str","shape":[2],"items":["a","b"]},"proba":"expit""#;
        let l = linear(cls, &[1.0], 1, &[0.0]).unwrap();
        let x = [-1.0, 0.0, 2.0];
        let out = l.run(Method::Predict, &m(&x, 3)).unwrap();
        assert_eq!(
            out.data,
            ArrayData::Str(vec!["a".into(), "a".into(), "b".into()])
        );
        let p = l.run(Method::PredictProba, &m(&x, 3)).unwrap();
        assert_eq!(p.shape, [3, 2]);
        let ArrayData::F64(p) = p.data else { panic!() };
        assert_eq!(p[2..4], [0.5, 0.5]);
    }

    #[test]
    fn modified_huber_and_ovr_rows_sum_to_one() {
        let cls = format!(r#","classes":{}"#, f8(&[0.0, 1.0, 2.0], &[3]));
        let coef = [1.0, -1.0, 0.5];
        for proba in ["modified_huber", "expit"] {
            let l = linear(&format!(r#"{cls},"proba":"{proba}""#), &coef, 3, &[0.0; 3]).unwrap();
            let p = l.run(Method::PredictProba, &m(&[0.3, -5.0], 2)).unwrap();
            let ArrayData::F64(p) = p.data else { panic!() };
            for row in p.chunks(3) {
                assert!(
                    (row.iter().sum::<f64>() - 1.0).abs() < 1e-12,
                    "{proba}: {row:?}"
                );
            }
        }
        assert_eq!(huber(5.0), 1.0);
        assert_eq!(huber(-5.0), 0.0);
        assert!(huber(f64::NAN).is_nan());
        assert_eq!(normalized(vec![0.0, 0.0], 2), [0.5, 0.5]);
    }

    #[test]
    fn refuses_inconsistent_parameters() {
        assert!(linear("", &[1.0, f64::NAN], 1, &[0.0]).is_err());
        assert!(linear("", &[1.0, 2.0], 1, &[0.0, 1.0]).is_err());
        // Two outputs without a 2-d output.
        assert!(linear("", &[1.0, 2.0], 2, &[0.0, 1.0]).is_err());
        assert!(linear(r#","proba":"expit""#, &[1.0], 1, &[0.0]).is_err());
        let two = r#","classes":{"dtype":"str","shape":[2],"items":["a","b"]}"#;
        assert!(linear(two, &[1.0, 2.0], 2, &[0.0, 0.0]).is_err());
        assert!(linear(&format!(r#"{two},"proba":"probit""#), &[1.0], 1, &[0.0]).is_err());
    }

    #[test]
    fn declines_nan_and_threaded_shapes() {
        let l = linear("", &[1.0; 8], 1, &[0.0]).unwrap();
        assert!(l.check(&m(&[f64::NAN; 8], 1)).is_err());
        assert!(l.check(&m(&[1.0; 8], 1)).is_ok());
        let big = vec![1.0; 8 * 100_000];
        assert!(l.check(&m(&big, 100_000)).is_err());
    }
}
