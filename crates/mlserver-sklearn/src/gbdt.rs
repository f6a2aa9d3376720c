//! `GradientBoostingClassifier` / `GradientBoostingRegressor` (the
//! classic, exact-split boosting), default or `"zero"` init only.
//!
//! Raw predictions start at the init estimator's constant (computed by
//! scikit-learn itself in the exporter) and each stage adds
//! `learning_rate * leaf value` per tree, stage by stage and within a
//! stage class by class, as `predict_stages` does: a product rounded, then
//! a sum rounded (the wheels are built without FMA contraction).

use serde::Deserialize;

use crate::array::{Array, ArrayData, Matrix, WireArray};
use crate::error::{HandoverError, Result};
use crate::forest::parse_classes;
use crate::input::{check_f32_input, to_f32};
use crate::labels::{argmax_rows, Classes};
use crate::link;
use crate::tree::{Tree, WireTree};
use crate::Method;

#[derive(Debug, Deserialize)]
pub(crate) struct WireGb {
    n_features: usize,
    classifier: bool,
    learning_rate: WireArray,
    init: WireArray,
    n_trees_per_iteration: usize,
    trees: Vec<WireTree>,
    #[serde(default)]
    classes: Option<WireArray>,
}

#[derive(Debug, Clone)]
pub(crate) struct GradientBoosting {
    n_features: usize,
    learning_rate: f64,
    init: Vec<f64>,
    k: usize,
    /// Stage-major: tree `stage * k + class`.
    trees: Vec<Tree>,
    classes: Option<Classes>,
}

/// Checks that `k` trees per iteration fit the classes: one raw value for
/// regressors and binary classifiers, one per class otherwise.
pub(crate) fn check_k(k: usize, classes: Option<&Classes>, at: &str) -> Result<()> {
    let expected = match classes.map(Classes::len) {
        None | Some(2) => 1,
        Some(n) if n >= 3 => n,
        Some(n) => {
            return Err(HandoverError::invalid(
                at,
                format!("a boosted classifier of {n} class"),
            ))
        }
    };
    if k != expected {
        return Err(HandoverError::invalid(
            at,
            format!("{k} trees per iteration, expected {expected}"),
        ));
    }
    Ok(())
}

impl GradientBoosting {
    pub(crate) fn parse(w: &WireGb, at: &str) -> Result<Self> {
        let classes = parse_classes(w.classifier, w.classes.as_ref(), at)?;
        let k = w.n_trees_per_iteration;
        check_k(k, classes.as_ref(), &format!("{at}.n_trees_per_iteration"))?;
        let lr_at = format!("{at}.learning_rate");
        let learning_rate = w.learning_rate.decode(&lr_at)?.finite_f64s(&lr_at, &[])?[0];
        let init_at = format!("{at}.init");
        let init = w.init.decode(&init_at)?.finite_f64s(&init_at, &[k])?;
        if !w.trees.len().is_multiple_of(k) {
            return Err(HandoverError::invalid(
                &format!("{at}.trees"),
                format!("{} trees are not whole stages of {k}", w.trees.len()),
            ));
        }
        let trees = w
            .trees
            .iter()
            .enumerate()
            .map(|(i, t)| Tree::parse(t, &format!("{at}.trees[{i}]"), w.n_features, 1))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            n_features: w.n_features,
            learning_rate,
            init,
            k,
            trees,
            classes,
        })
    }

    pub(crate) fn n_features(&self) -> usize {
        self.n_features
    }

    pub(crate) fn has(&self, method: Method) -> bool {
        method.of_predictor(self.classes.is_some())
    }

    /// Gradient boosting validates with `ensure_all_finite=True`: no NaN.
    pub(crate) fn check(&self, x: &Matrix<'_>) -> Result<(), String> {
        check_f32_input(x, self.n_features, false)
    }

    /// `_raw_predict`: `n x k`.
    fn raw(&self, x: &Matrix<'_>) -> Vec<f64> {
        let x = to_f32(x);
        let k = self.k;
        let mut out = Vec::with_capacity(x.len() / self.n_features.max(1) * k);
        for row in x.chunks_exact(self.n_features.max(1)) {
            let start = out.len();
            out.extend_from_slice(&self.init);
            let acc = &mut out[start..];
            for stage in self.trees.chunks_exact(k) {
                for (a, t) in acc.iter_mut().zip(stage) {
                    *a += self.learning_rate * t.predict(row)[0];
                }
            }
        }
        out
    }

    pub(crate) fn run(&self, method: Method, x: &Matrix<'_>) -> Option<Array> {
        let raw = self.raw(x);
        let n = x.rows;
        match (method, &self.classes) {
            (Method::Predict, None) => Some(Array {
                shape: vec![n],
                data: ArrayData::F64(raw),
            }),
            // GradientBoostingClassifier's binary decision: `raw >= 0`.
            (method, Some(c)) => classifier_answer(method, &raw, n, self.k, c, |r| r >= 0.0),
            (_, None) => None,
        }
    }
}

/// A boosted classifier's answer from its raw scores (`n x k`): `predict`'s
/// labels (binary: `positive(raw)`, which the two gradient boostings draw
/// differently; else the row's argmax) or `predict_proba` (expit for one
/// score, softmax for several), as scikit-learn's losses compute them.
pub(crate) fn classifier_answer(
    method: Method,
    raw: &[f64],
    n: usize,
    k: usize,
    classes: &Classes,
    positive: fn(f64) -> bool,
) -> Option<Array> {
    match method {
        Method::Predict => {
            let idx: Vec<usize> = if k == 1 {
                raw.iter().map(|&r| usize::from(positive(r))).collect()
            } else {
                argmax_rows(raw, k)
            };
            Some(Array {
                shape: vec![n],
                data: classes.take(&idx),
            })
        }
        Method::PredictProba => Some(Array {
            shape: vec![n, classes.len()],
            data: ArrayData::F64(if k == 1 {
                link::binary_proba(raw)
            } else {
                link::softmax(raw, k)
            }),
        }),
        Method::Transform => None,
    }
}
