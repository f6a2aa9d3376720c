//! `HistGradientBoostingClassifier` / `HistGradientBoostingRegressor`:
//! predictors on raw (not binned) float64 data, missing values, and
//! categorical features.
//!
//! With categorical features, scikit-learn 1.9 always puts a
//! `ColumnTransformer` first: an `OrdinalEncoder` of the categorical
//! columns (a category's index in `categories_`; unknown values and NaN
//! become NaN), then the numerical columns, as float64. Raw predictions
//! are `0 + baseline`, then each iteration adds each of its predictors'
//! leaf value, in order.

use serde::Deserialize;

use crate::array::{Array, ArrayData, Matrix, MatrixData, WireArray};
use crate::encoder::{Encoder, WireEncoder};
use crate::error::{index, HandoverError, Result};
use crate::forest::parse_classes;
use crate::gbdt::{check_k, classifier_answer};
use crate::input::{check_shape, to_f64};
use crate::labels::Classes;
use crate::Method;

#[derive(Debug, Deserialize)]
pub(crate) struct WireHgb {
    n_features: usize,
    classifier: bool,
    link: String,
    baseline: WireArray,
    n_trees_per_iteration: usize,
    predictors: Vec<WirePredictor>,
    known_cat_bitsets: WireArray,
    f_idx_map: WireArray,
    #[serde(default)]
    encoder: Option<WireEncoder>,
    #[serde(default)]
    classes: Option<WireArray>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WirePredictor {
    value: WireArray,
    feature_idx: WireArray,
    num_threshold: WireArray,
    missing_go_to_left: WireArray,
    left: WireArray,
    right: WireArray,
    is_leaf: WireArray,
    is_categorical: WireArray,
    bitset_idx: WireArray,
    raw_left_cat_bitsets: WireArray,
}

/// A 256-bit set of small category codes.
type Bitset = [u32; 8];

fn in_bitset(set: &Bitset, value: f64) -> bool {
    // Cython casts the float64 to uint8; the codes are small integers here
    // (the encoder makes them), the cast truncates as C's does.
    let v = (value as i32) as u8;
    set[usize::from(v / 32)] >> (v % 32) & 1 == 1
}

#[derive(Debug, Clone, Copy)]
struct Node {
    value: f64,
    threshold: f64,
    feature: u32,
    left: u32,
    right: u32,
    /// For categorical splits, the index in the predictor's bitsets.
    bitset: u32,
    leaf: bool,
    categorical: bool,
    missing_go_to_left: bool,
}

#[derive(Debug, Clone)]
struct Predictor {
    nodes: Vec<Node>,
    raw_left_cat_bitsets: Vec<Bitset>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Link {
    Identity,
    Log,
}

#[derive(Debug, Clone)]
pub(crate) struct Hgb {
    n_features: usize,
    link: Link,
    baseline: Vec<f64>,
    k: usize,
    predictors: Vec<Predictor>,
    known_cat_bitsets: Vec<Bitset>,
    f_idx_map: Vec<usize>,
    encoder: Option<Encoder>,
    classes: Option<Classes>,
}

fn bitsets(w: &WireArray, at: &str) -> Result<Vec<Bitset>> {
    let d = w.decode(at)?;
    let rows = match d.shape[..] {
        [r, 8] => r,
        _ => return Err(HandoverError::invalid(at, "bitsets must be [n, 8]")),
    };
    let v = d.u32s(at)?;
    let mut out = Vec::with_capacity(rows);
    for c in v.chunks_exact(8) {
        let mut b = [0u32; 8];
        b.copy_from_slice(c);
        out.push(b);
    }
    Ok(out)
}

impl Predictor {
    fn parse(
        w: &WirePredictor,
        at: &str,
        n_features: usize,
        f_idx_map: &[usize],
        n_known: usize,
    ) -> Result<Self> {
        let value_at = format!("{at}.value");
        let value = w.value.decode(&value_at)?;
        let n = match value.shape[..] {
            [n] if n > 0 => n,
            _ => {
                return Err(HandoverError::invalid(
                    &value_at,
                    "must be a non-empty 1-d array",
                ))
            }
        };
        let value = value.f64s(&value_at, &[n])?;
        let field = |a: &WireArray, name: &str| {
            let at = format!("{at}.{name}");
            a.decode(&at).and_then(|d| d.i64s(&at, &[n]))
        };
        let flags = |a: &WireArray, name: &str| {
            let at = format!("{at}.{name}");
            a.decode(&at).and_then(|d| d.flags(&at, &[n]))
        };
        let feature = field(&w.feature_idx, "feature_idx")?;
        let left = field(&w.left, "left")?;
        let right = field(&w.right, "right")?;
        let bitset_idx = field(&w.bitset_idx, "bitset_idx")?;
        let leaf = flags(&w.is_leaf, "is_leaf")?;
        let categorical = flags(&w.is_categorical, "is_categorical")?;
        let mgl = flags(&w.missing_go_to_left, "missing_go_to_left")?;
        let thr_at = format!("{at}.num_threshold");
        let threshold = w.num_threshold.decode(&thr_at)?.f64s(&thr_at, &[n])?;
        let raw_left_cat_bitsets = bitsets(
            &w.raw_left_cat_bitsets,
            &format!("{at}.raw_left_cat_bitsets"),
        )?;
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let node_at = format!("{at}.nodes[{i}]");
            if leaf[i] {
                if value[i].is_nan() {
                    return Err(HandoverError::invalid(&node_at, "a NaN leaf value"));
                }
                nodes.push(Node {
                    value: value[i],
                    threshold: 0.0,
                    feature: 0,
                    left: 0,
                    right: 0,
                    bitset: 0,
                    leaf: true,
                    categorical: false,
                    missing_go_to_left: false,
                });
                continue;
            }
            let child = |c: i64| match usize::try_from(c) {
                Ok(c) if c > i && c < n => Ok(c as u32),
                _ => Err(HandoverError::invalid(
                    &node_at,
                    format!("child {c} is not a node after this one (of {n})"),
                )),
            };
            let f = index(feature[i], n_features, &node_at, "feature")?;
            let bitset = if categorical[i] {
                index(
                    f_idx_map[f as usize] as i64,
                    n_known,
                    &node_at,
                    "known categories",
                )?;
                index(
                    bitset_idx[i],
                    raw_left_cat_bitsets.len(),
                    &node_at,
                    "bitset",
                )?
            } else {
                if threshold[i].is_nan() {
                    return Err(HandoverError::invalid(&node_at, "a NaN threshold"));
                }
                0
            };
            nodes.push(Node {
                value: value[i],
                threshold: threshold[i],
                feature: f,
                left: child(left[i])?,
                right: child(right[i])?,
                bitset,
                leaf: false,
                categorical: categorical[i],
                missing_go_to_left: mgl[i],
            });
        }
        Ok(Self {
            nodes,
            raw_left_cat_bitsets,
        })
    }

    /// `_predict_one_from_raw_data`.
    fn predict(&self, row: &[f64], known: &[Bitset], f_idx_map: &[usize]) -> f64 {
        let mut i = 0usize;
        loop {
            let node = &self.nodes[i];
            if node.leaf {
                return node.value;
            }
            let x = row[node.feature as usize];
            let left = if x.is_nan() {
                node.missing_go_to_left
            } else if node.categorical {
                if x < 0.0 {
                    node.missing_go_to_left
                } else if in_bitset(&self.raw_left_cat_bitsets[node.bitset as usize], x) {
                    true
                } else if in_bitset(&known[f_idx_map[node.feature as usize]], x) {
                    false
                } else {
                    node.missing_go_to_left
                }
            } else {
                x <= node.threshold
            };
            i = if left { node.left } else { node.right } as usize;
        }
    }
}

impl Hgb {
    pub(crate) fn parse(w: &WireHgb, at: &str) -> Result<Self> {
        let classes = parse_classes(w.classifier, w.classes.as_ref(), at)?;
        let k = w.n_trees_per_iteration;
        check_k(k, classes.as_ref(), &format!("{at}.n_trees_per_iteration"))?;
        let link = match (w.link.as_str(), w.classifier) {
            ("identity", _) => Link::Identity,
            ("log", false) => Link::Log,
            (other, _) => {
                return Err(HandoverError::invalid(
                    &format!("{at}.link"),
                    format!("unknown link {other:?}"),
                ))
            }
        };
        let base_at = format!("{at}.baseline");
        let baseline = w.baseline.decode(&base_at)?.finite_f64s(&base_at, &[k])?;
        let known_cat_bitsets = bitsets(&w.known_cat_bitsets, &format!("{at}.known_cat_bitsets"))?;
        let map_at = format!("{at}.f_idx_map");
        let f_idx_map = w
            .f_idx_map
            .decode(&map_at)?
            .i64s(&map_at, &[w.n_features])?
            .into_iter()
            // Entries of numerical features are unused: any value is kept
            // out of range and checked where a categorical split uses it.
            .map(|v| usize::try_from(v).unwrap_or(usize::MAX))
            .collect::<Vec<_>>();
        if !w.predictors.len().is_multiple_of(k) {
            return Err(HandoverError::invalid(
                &format!("{at}.predictors"),
                format!(
                    "{} predictors are not whole iterations of {k}",
                    w.predictors.len()
                ),
            ));
        }
        let predictors = w
            .predictors
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Predictor::parse(
                    p,
                    &format!("{at}.predictors[{i}]"),
                    w.n_features,
                    &f_idx_map,
                    known_cat_bitsets.len(),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let encoder = w
            .encoder
            .as_ref()
            .map(|e| Encoder::parse(e, &format!("{at}.encoder"), w.n_features))
            .transpose()?;
        Ok(Self {
            n_features: w.n_features,
            link,
            baseline,
            k,
            predictors,
            known_cat_bitsets,
            f_idx_map,
            encoder,
            classes,
        })
    }

    pub(crate) fn n_features(&self) -> usize {
        self.n_features
    }

    pub(crate) fn has(&self, method: Method) -> bool {
        method.of_predictor(self.classes.is_some())
    }

    /// Checked as float64 with `ensure_all_finite=False` (NaN and infinities
    /// pass), except the `OrdinalEncoder`'s columns, which refuse infinities.
    pub(crate) fn check(&self, x: &Matrix<'_>) -> Result<(), String> {
        check_shape(x, self.n_features)?;
        let Some(enc) = &self.encoder else {
            return Ok(());
        };
        let inf = |r: usize, c: usize| match x.data {
            MatrixData::F64(v) => v[r * x.cols + c].is_infinite(),
            MatrixData::F32(v) => v[r * x.cols + c].is_infinite(),
            _ => false,
        };
        for r in 0..x.rows {
            if enc.categorical.iter().any(|&c| inf(r, c)) {
                return Err(
                    "Input X contains infinity or a value too large for dtype('float64')."
                        .to_owned(),
                );
            }
        }
        Ok(())
    }

    fn raw(&self, x: &Matrix<'_>) -> Vec<f64> {
        let x = to_f64(x);
        let n = self.n_features.max(1);
        let mut out = Vec::with_capacity(x.len() / n * self.k);
        let mut encoded = Vec::with_capacity(n);
        for row in x.chunks_exact(n) {
            let row = match &self.encoder {
                Some(e) => {
                    encoded.clear();
                    e.encode(row, &mut encoded);
                    &encoded[..]
                }
                None => row,
            };
            let start = out.len();
            out.extend(self.baseline.iter().map(|b| 0.0 + b));
            let acc = &mut out[start..];
            for iteration in self.predictors.chunks_exact(self.k) {
                for (a, p) in acc.iter_mut().zip(iteration) {
                    *a += p.predict(row, &self.known_cat_bitsets, &self.f_idx_map);
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
                data: ArrayData::F64(match self.link {
                    Link::Identity => raw,
                    // numpy's exp, not replicated (see `link`).
                    Link::Log => raw.into_iter().map(f64::exp).collect(),
                }),
            }),
            // HistGradientBoostingClassifier's binary decision: `raw > 0`.
            (method, Some(c)) => classifier_answer(method, &raw, n, self.k, c, |r| r > 0.0),
            (_, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitset_membership() {
        let mut b = [0u32; 8];
        b[1] = 1 << 3; // 35
        assert!(in_bitset(&b, 35.0));
        assert!(!in_bitset(&b, 34.0));
        assert!(in_bitset(&b, 35.9));
    }
}
