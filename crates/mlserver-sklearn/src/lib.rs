//! scikit-learn estimators handed over by a Python worker, predicting with
//! scikit-learn's own arithmetic, bit for bit.
//!
//! The Python side (`mlserver_rs_worker.sklearn_handover.handover`) turns a
//! fitted estimator into a payload: its fitted parameters plus *probes*,
//! inputs it ran through scikit-learn's own methods with the outputs
//! scikit-learn returned. [`read`] parses and validates a payload (it is
//! untrusted: every size, index and count is checked, and nothing panics);
//! [`Handover::verify`] recomputes every probe and compares bit for bit,
//! so the caller serves natively only the methods that agree.
//!
//! # Payload, version 1
//!
//! UTF-8 JSON:
//!
//! ```text
//! {"format": "mlserver-rs/sklearn-handover", "version": 1, "sklearn": "1.9.1",
//!  "final_type": "<class 'sklearn.ensemble._forest.RandomForestClassifier'>",
//!  "model": <node>,
//!  "probes": [{"method": "predict" | "predict_proba" | "transform",
//!              "input": <array [rows, cols]>, "output": <array>}, ...]}
//! ```
//!
//! An `<array>` is `{"dtype", "shape", "data"}` with `data` the base64 of
//! the C-order little-endian bytes and `dtype` one of `<f8 <f4 <i8 <i4 <u4
//! |u1 |b1`, or `{"dtype": "str", "shape": [n], "items": [...]}` for
//! string labels. Every float is in an array (NaN and infinities survive).
//! A scalar is shape `[]`. Nodes (`kind` tags them; every estimator node
//! has `n_features`):
//!
//! - `{"kind": "Pipeline", "steps": [<node>...]}`, `{"kind": "passthrough"}`;
//! - `StandardScaler {mean?: f8[n], scale?: f8[n]}` (absent when
//!   `with_mean` / `with_std` is off); `RobustScaler {center?, scale?}`;
//!   `MinMaxScaler {scale, min: f8[n], clip: bool, feature_range: f8[2]}`;
//! - `Forest {classifier, averaged, trees: [<tree>], classes?}`: a
//!   decision tree (`averaged: false`, one tree) or a random forest /
//!   extra trees. A `<tree>` is `tree_`'s arrays: `children_left`,
//!   `children_right`, `feature` (i8 `[nodes]`), `threshold` (f8),
//!   `missing_go_to_left` (u1), `value` (f8 `[nodes, n_classes or 1]`);
//! - `GradientBoosting {classifier, learning_rate: f8[], init: f8[k],
//!   n_trees_per_iteration: k, trees: [<tree>] stage-major, classes?}`;
//! - `HistGradientBoosting {classifier, link, baseline: f8[k],
//!   n_trees_per_iteration, predictors: [{value, feature_idx,
//!   num_threshold, missing_go_to_left, left, right, is_leaf,
//!   is_categorical, bitset_idx, raw_left_cat_bitsets: u4[m, 8]}],
//!   known_cat_bitsets: u4[f, 8], f_idx_map: i8[n_features],
//!   encoder: null | {categorical: i8[c], categories: [f8[..]; c]},
//!   classes?}`, `link` being `identity` or (regressors) `log`.
//!
//! - `Linear {coef: f8[k, n_features], intercept: f8[k], output_2d?,
//!   classes?, proba?}`: `X @ coef.T + intercept` (`LinearRegression`,
//!   `Ridge`, `Lasso`, `ElasticNet`, `SGDRegressor`, `LogisticRegression`,
//!   `SGDClassifier`); `output_2d` when a regressor's `coef_` is 2-d (its
//!   `predict` returns `[n, k]`), `proba` one of `expit`, `softmax`,
//!   `modified_huber` when the classifier has `predict_proba`.
//!
//! `classes` is `classes_` in its own dtype (int64, str, float64, bool),
//! which is the dtype `predict` returns.

mod array;
mod blas;
#[cfg(test)]
mod blas_sweep;
mod encoder;
mod error;
mod forest;
mod gbdt;
mod handover;
mod hgb;
mod input;
mod labels;
mod linear;
mod link;
mod model;
mod scalers;
mod tree;

pub use array::{Array, ArrayData, Matrix, MatrixData};
pub use error::{HandoverError, PredictError};
pub use handover::{read, Handover, Probe, FORMAT, VERSION};
pub use model::{Method, Model};

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn model_is_send_and_sync() {
        assert_send_sync::<Model>();
        assert_send_sync::<Handover>();
    }

    #[test]
    fn refuses_other_formats_and_versions() {
        let doc = |format: &str, version: u64| {
            format!(
                r#"{{"format":"{format}","version":{version},"final_type":"x","model":{{"kind":"passthrough"}},"probes":[]}}"#
            )
        };
        assert!(matches!(
            read(doc("other", 1).as_bytes()),
            Err(HandoverError::Format(_))
        ));
        assert!(matches!(
            read(doc(FORMAT, 2).as_bytes()),
            Err(HandoverError::Version(2))
        ));
        assert!(read(doc(FORMAT, 1).as_bytes()).is_err());
        assert!(read(b"\xff\xfe").is_err());
        assert!(read(b"").is_err());
    }

    #[test]
    fn method_names_roundtrip() {
        for m in Method::ALL {
            assert_eq!(Method::from_name(m.name()), Some(m));
        }
        assert_eq!(Method::from_name("decision_function"), None);
    }
}
