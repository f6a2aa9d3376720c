//! `StandardScaler`, `MinMaxScaler`, `RobustScaler`: `transform` only.
//!
//! Inputs are converted as `check_array(dtype=FLOAT_DTYPES)` does (float32
//! kept, everything else float64) and NaN passes through. The arithmetic
//! is numpy's in-place operators, whose rounding differs by scaler for
//! float32 input:
//! - `StandardScaler` casts its parameters to the input's dtype first
//!   (`X -= xp.astype(mean_, X.dtype)`): float32 arithmetic;
//! - `MinMaxScaler` and `RobustScaler` use the float64 parameters
//!   directly: each operation runs in float64 and is rounded back to
//!   float32 when stored, operation by operation.

use serde::Deserialize;

use crate::array::{Array, ArrayData, Matrix, WireArray};
use crate::error::{HandoverError, Result};
use crate::input::{check_float_input, to_floats, Floats};
use crate::Method;

#[derive(Debug, Deserialize)]
pub(crate) struct WireStandard {
    n_features: usize,
    mean: Option<WireArray>,
    scale: Option<WireArray>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireMinMax {
    n_features: usize,
    scale: WireArray,
    min: WireArray,
    clip: bool,
    feature_range: WireArray,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireRobust {
    n_features: usize,
    center: Option<WireArray>,
    scale: Option<WireArray>,
}

/// How a scaler's parameters act on float32 input.
#[derive(Debug, Clone, Copy, PartialEq)]
enum F32Mode {
    /// Parameters cast to float32, float32 arithmetic.
    CastParams,
    /// float64 arithmetic, rounded to float32 after each operation.
    Widen,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Sub,
    Div,
    Mul,
    Add,
}

impl Op {
    fn f64(self, a: f64, b: f64) -> f64 {
        match self {
            Self::Sub => a - b,
            Self::Div => a / b,
            Self::Mul => a * b,
            Self::Add => a + b,
        }
    }

    fn f32(self, a: f32, b: f32) -> f32 {
        match self {
            Self::Sub => a - b,
            Self::Div => a / b,
            Self::Mul => a * b,
            Self::Add => a + b,
        }
    }
}

/// A column-wise affine scaler: operations applied in order, then maybe a
/// clip to `feature_range`.
#[derive(Debug, Clone)]
pub(crate) struct Scaler {
    n_features: usize,
    mode: F32Mode,
    ops: Vec<(Op, Vec<f64>)>,
    clip: Option<(f64, f64)>,
}

fn param(w: &WireArray, at: &str, n: usize) -> Result<Vec<f64>> {
    w.decode(at)?.finite_f64s(at, &[n])
}

fn nonzero(v: Vec<f64>, at: &str) -> Result<Vec<f64>> {
    if v.contains(&0.0) {
        return Err(HandoverError::invalid(at, "a scale of zero"));
    }
    Ok(v)
}

impl Scaler {
    pub(crate) fn standard(w: &WireStandard, at: &str) -> Result<Self> {
        let center = w.mean.as_ref().map(|m| (m, format!("{at}.mean")));
        let scale = w.scale.as_ref().map(|s| (s, format!("{at}.scale")));
        Self::center_and_scale(w.n_features, center, scale, F32Mode::CastParams)
    }

    pub(crate) fn robust(w: &WireRobust, at: &str) -> Result<Self> {
        let center = w.center.as_ref().map(|c| (c, format!("{at}.center")));
        let scale = w.scale.as_ref().map(|s| (s, format!("{at}.scale")));
        Self::center_and_scale(w.n_features, center, scale, F32Mode::Widen)
    }

    /// `X -= center; X /= scale`, each step when the scaler has it (and
    /// where it is in the payload, for errors).
    fn center_and_scale(
        n_features: usize,
        center: Option<(&WireArray, String)>,
        scale: Option<(&WireArray, String)>,
        mode: F32Mode,
    ) -> Result<Self> {
        let mut ops = Vec::new();
        if let Some((c, at)) = center {
            ops.push((Op::Sub, param(c, &at, n_features)?));
        }
        if let Some((s, at)) = scale {
            ops.push((Op::Div, nonzero(param(s, &at, n_features)?, &at)?));
        }
        Ok(Self {
            n_features,
            mode,
            ops,
            clip: None,
        })
    }

    pub(crate) fn min_max(w: &WireMinMax, at: &str) -> Result<Self> {
        let scale = param(&w.scale, &format!("{at}.scale"), w.n_features)?;
        let min = param(&w.min, &format!("{at}.min"), w.n_features)?;
        let range_at = format!("{at}.feature_range");
        let range = param(&w.feature_range, &range_at, 2)?;
        if range[0] >= range[1] {
            return Err(HandoverError::invalid(&range_at, "an empty range"));
        }
        Ok(Self {
            n_features: w.n_features,
            mode: F32Mode::Widen,
            ops: vec![(Op::Mul, scale), (Op::Add, min)],
            clip: w.clip.then_some((range[0], range[1])),
        })
    }

    pub(crate) fn n_features(&self) -> usize {
        self.n_features
    }

    pub(crate) fn has(&self, method: Method) -> bool {
        method == Method::Transform
    }

    pub(crate) fn check(&self, x: &Matrix<'_>) -> Result<(), String> {
        check_float_input(x, self.n_features, true)
    }

    pub(crate) fn run(&self, method: Method, x: &Matrix<'_>) -> Option<Array> {
        if method != Method::Transform {
            return None;
        }
        let n = self.n_features.max(1);
        let data = match to_floats(x) {
            Floats::F64(mut v) => {
                for (op, p) in &self.ops {
                    for row in v.chunks_exact_mut(n) {
                        for (a, &b) in row.iter_mut().zip(p) {
                            *a = op.f64(*a, b);
                        }
                    }
                }
                if let Some((lo, hi)) = self.clip {
                    v.iter_mut().for_each(|a| *a = clip(*a, lo, hi));
                }
                ArrayData::F64(v)
            }
            Floats::F32(mut v) => {
                for (op, p) in &self.ops {
                    for row in v.chunks_exact_mut(n) {
                        for (a, &b) in row.iter_mut().zip(p) {
                            *a = match self.mode {
                                F32Mode::CastParams => op.f32(*a, b as f32),
                                F32Mode::Widen => op.f64(f64::from(*a), b) as f32,
                            };
                        }
                    }
                }
                if let Some((lo, hi)) = self.clip {
                    // The bounds become arrays of the input's dtype.
                    let (lo, hi) = (lo as f32, hi as f32);
                    v.iter_mut().for_each(|a| *a = clip(*a, lo, hi));
                }
                ArrayData::F32(v)
            }
        };
        Some(Array {
            shape: vec![x.rows, x.cols],
            data,
        })
    }
}

/// numpy's clip: `min(max(x, lo), hi)` with NaN propagated.
fn clip<T: PartialOrd + Copy>(x: T, lo: T, hi: T) -> T {
    #[allow(clippy::eq_op)]
    if x != x {
        return x;
    }
    let x = if x < lo { lo } else { x };
    if x > hi {
        hi
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::MatrixData;

    fn scaler(ops: Vec<(Op, Vec<f64>)>, mode: F32Mode) -> Scaler {
        Scaler {
            n_features: 2,
            mode,
            ops,
            clip: Some((0.0, 1.0)),
        }
    }

    #[test]
    fn clips_and_keeps_nan() {
        let s = scaler(vec![(Op::Mul, vec![1.0, 1.0])], F32Mode::Widen);
        let x = [2.0, f64::NAN];
        let out = s
            .run(
                Method::Transform,
                &Matrix {
                    rows: 1,
                    cols: 2,
                    data: MatrixData::F64(&x),
                },
            )
            .unwrap();
        let ArrayData::F64(v) = out.data else {
            panic!()
        };
        assert_eq!(v[0], 1.0);
        assert!(v[1].is_nan());
    }

    #[test]
    fn float32_stays_float32_ints_become_float64() {
        let s = scaler(vec![(Op::Sub, vec![0.5, 0.5])], F32Mode::CastParams);
        let x = [1.0f32, 2.0];
        let out = s
            .run(
                Method::Transform,
                &Matrix {
                    rows: 1,
                    cols: 2,
                    data: MatrixData::F32(&x),
                },
            )
            .unwrap();
        assert!(matches!(out.data, ArrayData::F32(_)));
        let x = [1i64, 2];
        let out = s
            .run(
                Method::Transform,
                &Matrix {
                    rows: 1,
                    cols: 2,
                    data: MatrixData::I64(&x),
                },
            )
            .unwrap();
        assert!(matches!(out.data, ArrayData::F64(_)));
        assert!(s
            .run(
                Method::Predict,
                &Matrix {
                    rows: 1,
                    cols: 2,
                    data: MatrixData::I64(&x)
                }
            )
            .is_none());
    }
}
