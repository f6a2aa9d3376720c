//! Class labels and the choice among them: `classes_.take(argmax)`, with
//! numpy's argmax (the first maximum; a NaN wins, the first one).

use crate::array::{ArrayData, Decoded};
use crate::error::{HandoverError, Result};

/// A classifier's `classes_`, in its numpy dtype (which is the dtype of
/// `predict`'s output).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Classes(ArrayData);

impl Classes {
    pub(crate) fn parse(d: Decoded, at: &str) -> Result<Self> {
        if d.shape.len() != 1 || d.shape[0] == 0 {
            return Err(HandoverError::invalid(
                at,
                format!("classes must be a non-empty 1-d array, shape {:?}", d.shape),
            ));
        }
        Ok(Self(d.into_array(at)?.data))
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// `classes_.take(indices)`; every index is below [`Self::len`].
    pub(crate) fn take(&self, idx: &[usize]) -> ArrayData {
        fn pick<T: Clone>(v: &[T], idx: &[usize]) -> Vec<T> {
            idx.iter().map(|&i| v[i].clone()).collect()
        }
        match &self.0 {
            ArrayData::F64(v) => ArrayData::F64(pick(v, idx)),
            ArrayData::F32(v) => ArrayData::F32(pick(v, idx)),
            ArrayData::I64(v) => ArrayData::I64(pick(v, idx)),
            ArrayData::I32(v) => ArrayData::I32(pick(v, idx)),
            ArrayData::Bool(v) => ArrayData::Bool(pick(v, idx)),
            ArrayData::Str(v) => ArrayData::Str(pick(v, idx)),
        }
    }
}

/// `np.argmax` of one row: the first maximum; NaN compares as the largest
/// and the first NaN is returned.
pub(crate) fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate().skip(1) {
        let b = row[best];
        if b.is_nan() {
            break;
        }
        if v.is_nan() || v > b {
            best = i;
        }
    }
    best
}

/// Row-wise [`argmax`] of an `n x k` matrix (`k >= 1`).
pub(crate) fn argmax_rows(values: &[f64], k: usize) -> Vec<usize> {
    values.chunks_exact(k).map(argmax).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_is_numpys() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(argmax(&[1.0, f64::NAN, 5.0, f64::NAN]), 1);
        assert_eq!(argmax(&[f64::NAN, 5.0]), 0);
        assert_eq!(argmax(&[-0.0, 0.0]), 0);
        assert_eq!(argmax(&[2.0]), 0);
    }

    #[test]
    fn take_keeps_the_dtype() {
        let c = Classes(ArrayData::Str(vec!["a".into(), "b".into()]));
        assert_eq!(
            c.take(&[1, 0]),
            ArrayData::Str(vec!["b".into(), "a".into()])
        );
    }
}
