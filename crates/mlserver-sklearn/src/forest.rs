//! Decision trees and forests of them (random forests, extra trees),
//! classifiers and regressors, single-output.
//!
//! A tree predicts the values of the leaf a row lands in (class fractions
//! for classifiers: `tree_.value` holds fractions since scikit-learn 1.4,
//! and `predict_proba` returns them as they are). A forest adds its trees'
//! predictions to zeros, one tree after the other in `estimators_` order
//! (joblib's sequential run with `n_jobs=None`), then divides by the number
//! of trees.

use serde::Deserialize;

use crate::array::{Array, ArrayData, Matrix, WireArray};
use crate::error::{HandoverError, Result};
use crate::input::{check_f32_input, to_f32};
use crate::labels::{argmax_rows, Classes};
use crate::tree::{Tree, WireTree};
use crate::Method;

#[derive(Debug, Deserialize)]
pub(crate) struct WireForest {
    n_features: usize,
    classifier: bool,
    averaged: bool,
    trees: Vec<WireTree>,
    #[serde(default)]
    classes: Option<WireArray>,
}

#[derive(Debug, Clone)]
pub(crate) struct Forest {
    n_features: usize,
    averaged: bool,
    classes: Option<Classes>,
    n_values: usize,
    trees: Vec<Tree>,
}

impl Forest {
    pub(crate) fn parse(w: &WireForest, at: &str) -> Result<Self> {
        let classes = parse_classes(w.classifier, w.classes.as_ref(), at)?;
        let n_values = classes.as_ref().map_or(1, Classes::len);
        if w.trees.is_empty() || (!w.averaged && w.trees.len() != 1) {
            return Err(HandoverError::invalid(
                &format!("{at}.trees"),
                "a forest needs trees, a single tree exactly one",
            ));
        }
        let trees = w
            .trees
            .iter()
            .enumerate()
            .map(|(i, t)| Tree::parse(t, &format!("{at}.trees[{i}]"), w.n_features, n_values))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            n_features: w.n_features,
            averaged: w.averaged,
            classes,
            n_values,
            trees,
        })
    }

    pub(crate) fn n_features(&self) -> usize {
        self.n_features
    }

    pub(crate) fn has(&self, method: Method) -> bool {
        method.of_predictor(self.classes.is_some())
    }

    pub(crate) fn check(&self, x: &Matrix<'_>) -> Result<(), String> {
        check_f32_input(x, self.n_features, true)
    }

    /// `n x n_values`: the tree's leaf values, or the forest's average.
    fn values(&self, x: &Matrix<'_>) -> Vec<f64> {
        let x = to_f32(x);
        let k = self.n_values;
        let mut out = Vec::with_capacity(x.len() / self.n_features.max(1) * k);
        for row in x.chunks_exact(self.n_features.max(1)) {
            if !self.averaged {
                out.extend_from_slice(self.trees[0].predict(row));
                continue;
            }
            let start = out.len();
            out.resize(start + k, 0.0);
            let acc = &mut out[start..];
            for t in &self.trees {
                for (a, v) in acc.iter_mut().zip(t.predict(row)) {
                    *a += v;
                }
            }
            let n = self.trees.len() as f64;
            for a in acc.iter_mut() {
                *a /= n;
            }
        }
        out
    }

    pub(crate) fn run(&self, method: Method, x: &Matrix<'_>) -> Option<Array> {
        let values = self.values(x);
        match (method, &self.classes) {
            (Method::Predict, None) => Some(Array {
                shape: vec![x.rows],
                data: ArrayData::F64(values),
            }),
            (Method::Predict, Some(c)) => Some(Array {
                shape: vec![x.rows],
                data: c.take(&argmax_rows(&values, self.n_values)),
            }),
            (Method::PredictProba, Some(_)) => Some(Array {
                shape: vec![x.rows, self.n_values],
                data: ArrayData::F64(values),
            }),
            _ => None,
        }
    }
}

/// `classes` must be there exactly for classifiers.
pub(crate) fn parse_classes(
    classifier: bool,
    classes: Option<&WireArray>,
    at: &str,
) -> Result<Option<Classes>> {
    let at = format!("{at}.classes");
    match (classifier, classes) {
        (true, Some(c)) => Ok(Some(Classes::parse(c.decode(&at)?, &at)?)),
        (false, None) => Ok(None),
        (true, None) => Err(HandoverError::invalid(&at, "a classifier without classes")),
        (false, Some(_)) => Err(HandoverError::invalid(&at, "a regressor with classes")),
    }
}
