//! Input conversion as scikit-learn's `check_array` does it for each kind
//! of estimator: the dtype an estimator computes in, and the values it
//! refuses (scikit-learn raises; here the model declines).

use crate::array::{Matrix, MatrixData};

/// What scikit-learn would raise for a matrix of the wrong size: no rows,
/// or another number of features than the estimator was fitted with.
pub(crate) fn check_shape(x: &Matrix<'_>, n_features: usize) -> Result<(), String> {
    if x.rows == 0 {
        return Err(format!(
            "Found array with 0 sample(s) (shape=(0, {})) while a minimum of 1 is required.",
            x.cols
        ));
    }
    if x.cols != n_features {
        return Err(format!(
            "X has {} features, but the estimator is expecting {n_features} features as input.",
            x.cols
        ));
    }
    Ok(())
}

/// `X.astype(np.float32)`: each value rounded to the nearest float32 (ties
/// to even), as numpy's casts do; Rust's `as` rounds the same way, for
/// integers too.
pub(crate) fn to_f32(x: &Matrix<'_>) -> Vec<f32> {
    match x.data {
        MatrixData::F64(v) => v.iter().map(|&a| a as f32).collect(),
        MatrixData::F32(v) => v.to_vec(),
        MatrixData::I64(v) => v.iter().map(|&a| a as f32).collect(),
        MatrixData::I32(v) => v.iter().map(|&a| a as f32).collect(),
    }
}

/// `X.astype(np.float64)`.
pub(crate) fn to_f64(x: &Matrix<'_>) -> Vec<f64> {
    match x.data {
        MatrixData::F64(v) => v.to_vec(),
        MatrixData::F32(v) => v.iter().map(|&a| f64::from(a)).collect(),
        MatrixData::I64(v) => v.iter().map(|&a| a as f64).collect(),
        MatrixData::I32(v) => v.iter().map(|&a| f64::from(a)).collect(),
    }
}

/// `check_array(X, dtype=FLOAT_DTYPES)`: float32 stays float32, float64
/// stays, integers become float64.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Floats {
    F64(Vec<f64>),
    F32(Vec<f32>),
}

pub(crate) fn to_floats(x: &Matrix<'_>) -> Floats {
    match x.data {
        MatrixData::F32(v) => Floats::F32(v.to_vec()),
        _ => Floats::F64(to_f64(x)),
    }
}

/// `_assert_all_finite` on the converted array: infinities always raise
/// (values too large for float32 became infinities in the conversion),
/// NaN raises unless the estimator accepts missing values.
pub(crate) fn check_finite<T: Copy + Into<f64>>(
    values: &[T],
    allow_nan: bool,
    dtype: &str,
) -> Result<(), String> {
    for &v in values {
        let v: f64 = v.into();
        if v.is_infinite() {
            return Err(format!(
                "Input X contains infinity or a value too large for dtype('{dtype}')."
            ));
        }
        if v.is_nan() && !allow_nan {
            return Err("Input X contains NaN.".to_owned());
        }
    }
    Ok(())
}

/// The checks of an estimator that converts to float32 (the trees).
pub(crate) fn check_f32_input(
    x: &Matrix<'_>,
    n_features: usize,
    allow_nan: bool,
) -> Result<(), String> {
    check_shape(x, n_features)?;
    match x.data {
        MatrixData::I64(_) | MatrixData::I32(_) => Ok(()),
        MatrixData::F32(v) => check_finite(v, allow_nan, "float32"),
        MatrixData::F64(v) => {
            for &a in v {
                let f = a as f32;
                if f.is_infinite() {
                    return Err(
                        "Input X contains infinity or a value too large for dtype('float32')."
                            .to_owned(),
                    );
                }
                if f.is_nan() && !allow_nan {
                    return Err("Input X contains NaN.".to_owned());
                }
            }
            Ok(())
        }
    }
}

/// The checks of an estimator that keeps float32 and converts the rest to
/// float64 (scalers, linear models).
pub(crate) fn check_float_input(
    x: &Matrix<'_>,
    n_features: usize,
    allow_nan: bool,
) -> Result<(), String> {
    check_shape(x, n_features)?;
    match x.data {
        MatrixData::I64(_) | MatrixData::I32(_) => Ok(()),
        MatrixData::F32(v) => check_finite(v, allow_nan, "float32"),
        MatrixData::F64(v) => check_finite(v, allow_nan, "float64"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(data: MatrixData<'_>, rows: usize, cols: usize) -> Matrix<'_> {
        Matrix { rows, cols, data }
    }

    #[test]
    fn float32_conversion_rounds_to_nearest() {
        let big = [16_777_217i64, -16_777_217, (1 << 53) + 1];
        let v = to_f32(&m(MatrixData::I64(&big), 1, 3));
        assert_eq!(v, [16_777_216.0, -16_777_216.0, 9_007_199_254_740_992.0]);
        let v = to_f32(&m(MatrixData::F64(&[0.1]), 1, 1));
        assert_eq!(v[0], 0.1f32);
    }

    #[test]
    fn too_large_for_float32_is_declined() {
        let x = [1e300, 1.0];
        let err = check_f32_input(&m(MatrixData::F64(&x), 1, 2), 2, true).unwrap_err();
        assert!(err.contains("float32"), "{err}");
        assert!(check_float_input(&m(MatrixData::F64(&x), 1, 2), 2, true).is_ok());
    }

    #[test]
    fn nan_only_where_allowed() {
        let x = [f64::NAN];
        assert!(check_f32_input(&m(MatrixData::F64(&x), 1, 1), 1, true).is_ok());
        assert!(check_f32_input(&m(MatrixData::F64(&x), 1, 1), 1, false).is_err());
    }

    #[test]
    fn shape_mismatch_and_empty() {
        assert!(check_shape(&m(MatrixData::F64(&[]), 0, 2), 2).is_err());
        assert!(check_shape(&m(MatrixData::F64(&[1.0]), 1, 1), 2).is_err());
    }
}
