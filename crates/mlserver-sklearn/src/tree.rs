//! One fitted `sklearn.tree._tree.Tree`: the node arrays and the descent
//! `Tree._apply_dense` does.

use serde::Deserialize;

use crate::array::WireArray;
use crate::error::{HandoverError, Result};

/// A tree as the payload writes it (`tree_`'s arrays; `value` reshaped to
/// `[n_nodes, n_values]`).
#[derive(Debug, Deserialize)]
pub(crate) struct WireTree {
    children_left: WireArray,
    children_right: WireArray,
    feature: WireArray,
    threshold: WireArray,
    missing_go_to_left: WireArray,
    value: WireArray,
}

/// A validated tree: every internal node's children lie after it (as
/// scikit-learn's builders number them), so a descent ends after at most
/// `n_nodes` steps whatever the payload holds.
#[derive(Debug, Clone)]
pub(crate) struct Tree {
    nodes: Vec<Node>,
    /// `[n_nodes, n_values]`.
    value: Vec<f64>,
    n_values: usize,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    /// Children indices; `left == 0` marks a leaf (no child is the root).
    left: u32,
    right: u32,
    feature: u32,
    threshold: f64,
    missing_go_to_left: bool,
}

impl Tree {
    /// Validates a tree over `n_features` features whose nodes hold
    /// `n_values` values each.
    pub(crate) fn parse(
        w: &WireTree,
        at: &str,
        n_features: usize,
        n_values: usize,
    ) -> Result<Self> {
        let left_at = format!("{at}.children_left");
        let left = w.children_left.decode(&left_at)?;
        let n = match left.shape[..] {
            [n] if n > 0 => n,
            _ => {
                return Err(HandoverError::invalid(
                    &left_at,
                    "must be a non-empty 1-d array",
                ))
            }
        };
        if n > u32::MAX as usize {
            return Err(HandoverError::invalid(&left_at, "too many nodes"));
        }
        let left = left.i64s(&left_at, &[n])?;
        let right_at = format!("{at}.children_right");
        let right = w.children_right.decode(&right_at)?.i64s(&right_at, &[n])?;
        let feature_at = format!("{at}.feature");
        let feature = w.feature.decode(&feature_at)?.i64s(&feature_at, &[n])?;
        let threshold_at = format!("{at}.threshold");
        let threshold = w
            .threshold
            .decode(&threshold_at)?
            .f64s(&threshold_at, &[n])?;
        let mgl_at = format!("{at}.missing_go_to_left");
        let mgl = w.missing_go_to_left.decode(&mgl_at)?.flags(&mgl_at, &[n])?;
        let value_at = format!("{at}.value");
        let value = w.value.decode(&value_at)?.f64s(&value_at, &[n, n_values])?;
        if let Some(i) = value.iter().position(|v| v.is_nan()) {
            return Err(HandoverError::invalid(
                &value_at,
                format!("value {i} is NaN"),
            ));
        }
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let node_at = || format!("{at}.nodes[{i}]");
            let (l, r) = (left[i], right[i]);
            if l == -1 || r == -1 {
                if l != r {
                    return Err(HandoverError::invalid(&node_at(), "one child only"));
                }
                nodes.push(Node {
                    left: 0,
                    right: 0,
                    feature: 0,
                    threshold: 0.0,
                    missing_go_to_left: false,
                });
                continue;
            }
            let child = |c: i64| -> Result<u32> {
                match usize::try_from(c) {
                    Ok(c) if c > i && c < n => Ok(c as u32),
                    _ => Err(HandoverError::invalid(
                        &node_at(),
                        format!("child {c} is not a node after this one (of {n})"),
                    )),
                }
            };
            let (l, r) = (child(l)?, child(r)?);
            let f = match usize::try_from(feature[i]) {
                Ok(f) if f < n_features => f as u32,
                _ => {
                    return Err(HandoverError::invalid(
                        &node_at(),
                        format!("feature {} is not one of {n_features}", feature[i]),
                    ))
                }
            };
            if threshold[i].is_nan() {
                return Err(HandoverError::invalid(&node_at(), "threshold is NaN"));
            }
            nodes.push(Node {
                left: l,
                right: r,
                feature: f,
                threshold: threshold[i],
                missing_go_to_left: mgl[i],
            });
        }
        Ok(Self {
            nodes,
            value,
            n_values,
        })
    }

    /// The leaf a float32 row falls in: `x <= threshold` compared in
    /// float64 (the float32 value widened; thresholds are float64), NaN
    /// going where the node's `missing_go_to_left` says.
    pub(crate) fn leaf(&self, row: &[f32]) -> usize {
        let mut i = 0usize;
        loop {
            let node = &self.nodes[i];
            if node.left == 0 {
                return i;
            }
            let x = row[node.feature as usize];
            let go_left = if x.is_nan() {
                node.missing_go_to_left
            } else {
                f64::from(x) <= node.threshold
            };
            i = if go_left { node.left } else { node.right } as usize;
        }
    }

    /// The values of the leaf `row` falls in.
    pub(crate) fn predict(&self, row: &[f32]) -> &[f64] {
        let leaf = self.leaf(row);
        &self.value[leaf * self.n_values..(leaf + 1) * self.n_values]
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use base64::Engine as _;

    fn arr(dtype: &str, shape: &[usize], bytes: Vec<u8>) -> String {
        format!(
            r#"{{"dtype":"{dtype}","shape":{shape:?},"data":"{}"}}"#,
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )
    }

    /// A tree's JSON from its arrays.
    pub(crate) fn tree_json(
        left: &[i64],
        right: &[i64],
        feature: &[i64],
        threshold: &[f64],
        value: &[f64],
    ) -> String {
        let n = left.len();
        let ints = |v: &[i64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let floats = |v: &[f64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        format!(
            r#"{{"children_left":{},"children_right":{},"feature":{},"threshold":{},"missing_go_to_left":{},"value":{}}}"#,
            arr("<i8", &[n], ints(left)),
            arr("<i8", &[n], ints(right)),
            arr("<i8", &[n], ints(feature)),
            arr("<f8", &[n], floats(threshold)),
            arr("|u1", &[n], vec![1; n]),
            arr("<f8", &[n, value.len() / n], floats(value)),
        )
    }

    fn parse(json: &str, n_features: usize) -> Result<Tree> {
        let w: WireTree = serde_json::from_str(json).unwrap();
        Tree::parse(&w, "t", n_features, 1)
    }

    #[test]
    fn descends_with_float64_comparisons() {
        // 0.1f32 widened is above the float64 0.1 threshold: goes right.
        let t = parse(
            &tree_json(
                &[1, -1, -1],
                &[2, -1, -1],
                &[0, -2, -2],
                &[0.1, -2.0, -2.0],
                &[0.0, 1.0, 2.0],
            ),
            1,
        )
        .unwrap();
        assert_eq!(t.predict(&[0.1f32]), &[2.0]);
        assert_eq!(t.predict(&[0.09f32]), &[1.0]);
        assert_eq!(t.predict(&[f32::NAN]), &[1.0]);
    }

    #[test]
    fn refuses_cycles_and_bad_indices() {
        let cyc = tree_json(&[0, -1], &[1, -1], &[0, -2], &[0.5, -2.0], &[0.0, 1.0]);
        assert!(parse(&cyc, 1).is_err());
        let back = tree_json(
            &[1, 0, -1],
            &[2, 2, -1],
            &[0, 0, -2],
            &[0.5, 0.5, -2.0],
            &[0.0; 3],
        );
        assert!(parse(&back, 1).is_err());
        let out = tree_json(
            &[1, -1, -1],
            &[3, -1, -1],
            &[0, -2, -2],
            &[0.5, -2.0, -2.0],
            &[0.0; 3],
        );
        assert!(parse(&out, 1).is_err());
        let feat = tree_json(
            &[1, -1, -1],
            &[2, -1, -1],
            &[1, -2, -2],
            &[0.5, -2.0, -2.0],
            &[0.0; 3],
        );
        assert!(parse(&feat, 1).is_err());
        let half = tree_json(
            &[1, -1, -1],
            &[-1, -1, -1],
            &[0, -2, -2],
            &[0.5, -2.0, -2.0],
            &[0.0; 3],
        );
        assert!(parse(&half, 1).is_err());
        let nan = tree_json(
            &[1, -1, -1],
            &[2, -1, -1],
            &[0, -2, -2],
            &[f64::NAN, -2.0, -2.0],
            &[0.0; 3],
        );
        assert!(parse(&nan, 1).is_err());
    }

    #[test]
    fn value_shape_must_match() {
        let t = tree_json(&[-1], &[-1], &[-2], &[-2.0], &[0.0, 1.0]);
        assert!(parse(&t, 1).is_err());
    }
}
