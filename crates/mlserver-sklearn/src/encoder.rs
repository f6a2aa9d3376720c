//! The `ColumnTransformer` scikit-learn 1.9 puts before a
//! HistGradientBoosting model's trees when it has categorical features: an
//! `OrdinalEncoder` of the categorical columns (a category's index in
//! `categories_`, compared as float64; unknown values and NaN become NaN),
//! then the numerical columns unchanged, all as float64.

use serde::Deserialize;

use crate::array::WireArray;
use crate::error::{index, HandoverError, Result};

#[derive(Debug, Deserialize)]
pub(crate) struct WireEncoder {
    categorical: WireArray,
    categories: Vec<WireArray>,
}

#[derive(Debug, Clone)]
pub(crate) struct Encoder {
    /// Input column of each categorical feature, ascending.
    pub(crate) categorical: Vec<usize>,
    /// The other input columns, ascending.
    numerical: Vec<usize>,
    categories: Vec<Vec<f64>>,
}

impl Encoder {
    pub(crate) fn parse(w: &WireEncoder, at: &str, n_features: usize) -> Result<Self> {
        let cat_at = format!("{at}.categorical");
        let d = w.categorical.decode(&cat_at)?;
        let c = match d.shape[..] {
            [c] => c,
            _ => return Err(HandoverError::invalid(&cat_at, "must be 1-d")),
        };
        let mut categorical = Vec::with_capacity(c);
        for v in d.i64s(&cat_at, &[c])? {
            let i = index(v, n_features, &cat_at, "column")? as usize;
            if categorical.last().is_some_and(|&p| p >= i) {
                return Err(HandoverError::invalid(&cat_at, "columns must ascend"));
            }
            categorical.push(i);
        }
        if w.categories.len() != c {
            return Err(HandoverError::invalid(
                at,
                "one categories array per categorical column",
            ));
        }
        let categories = w
            .categories
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let at = format!("{at}.categories[{i}]");
                let d = a.decode(&at)?;
                let shape = d.shape.clone();
                if shape.len() != 1 {
                    return Err(HandoverError::invalid(&at, "must be 1-d"));
                }
                d.f64s(&at, &shape)
            })
            .collect::<Result<Vec<_>>>()?;
        let numerical = (0..n_features)
            .filter(|i| !categorical.contains(i))
            .collect();
        Ok(Self {
            categorical,
            numerical,
            categories,
        })
    }

    /// One input row (float64) to the trees' columns.
    pub(crate) fn encode(&self, row: &[f64], out: &mut Vec<f64>) {
        for (&col, cats) in self.categorical.iter().zip(&self.categories) {
            let x = row[col];
            let code = cats.iter().position(|&c| c == x);
            out.push(code.map_or(f64::NAN, |i| i as f64));
        }
        out.extend(self.numerical.iter().map(|&c| row[c]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoder_maps_unknown_to_nan() {
        let e = Encoder {
            categorical: vec![1],
            numerical: vec![0, 2],
            categories: vec![vec![0.0, 2.0, 5.0]],
        };
        let mut out = Vec::new();
        e.encode(&[7.0, 5.0, 8.0], &mut out);
        assert_eq!(out, [2.0, 7.0, 8.0]);
        out.clear();
        e.encode(&[7.0, 4.0, 8.0], &mut out);
        assert!(out[0].is_nan());
    }
}
