//! Shallow trees laid out complete: every tree of the model padded to the
//! same depth `d`, its `2^d - 1` splits in breadth-first order (the
//! children of split `i` are `2i + 1` and `2i + 2`) and its `2^d` leaves
//! after them. A leaf above depth `d` becomes splits whose two sides lead
//! to copies of it, so either answer of their test reaches the same value.
//!
//! A walk is then exactly `d` steps of `i = 2i + 1 + right`: no child
//! index to load, no test for a leaf, no check that a lane has arrived.
//! Eight trees are walked in lockstep as in [`crate::tree`]. Rows without
//! a missing value (checked once per row) compare with one instruction;
//! rows with one also test NaN and the split's default direction.
//!
//! Padding costs memory when trees are much shallower than the deepest:
//! the layout is built only for depths up to [`MAX_DEPTH`] and while it
//! takes at most [`MAX_GROWTH`] times the nodes of the trees as read.
//! Trees with categorical splits are never laid out this way.

use std::ops::Range;

use crate::node::{goes_right, DEFAULT_LEFT, FEATURE_MASK, LANES};

/// Deepest trees laid out complete (256 leaves each).
const MAX_DEPTH: u32 = 8;
/// Entries of the complete layout per node of the trees as read, at most
/// (beyond a small allowance for tiny models).
const MAX_GROWTH: usize = 4;

/// The trees as read, as [`Complete::build`] walks them.
pub(crate) trait Trees {
    /// How many trees.
    fn len(&self) -> usize;
    /// Nodes of all trees together.
    fn node_count(&self) -> usize;
    /// Tree `tree`'s root node and depth.
    fn root_and_depth(&self, tree: usize) -> (usize, u32);
    /// What node `node` is.
    fn kind(&self, node: usize) -> NodeKind;
}

/// What one node is, for [`Complete`] to lay the trees out again.
pub(crate) enum NodeKind {
    Leaf(f32),
    /// A numerical split: the feature index with [`DEFAULT_LEFT`], the
    /// threshold, the left child (the right one is next to it).
    Split {
        meta: u32,
        threshold: f32,
        left: usize,
    },
    Categorical,
}

/// The complete layout of every tree of a model.
#[derive(Debug, Clone)]
pub(crate) struct Complete {
    depth: u32,
    /// `2^depth - 1` splits per tree: the feature index with
    /// [`DEFAULT_LEFT`], and the threshold (left iff `x < threshold`).
    splits: Vec<(u32, f32)>,
    /// `2^depth` leaf values per tree, left to right.
    leaves: Vec<f32>,
}

impl Complete {
    /// The layout of `forest`'s trees, or `None` when it would not pay (see
    /// the module documentation).
    pub(crate) fn build(forest: &impl Trees) -> Option<Complete> {
        let depth = (0..forest.len())
            .map(|t| forest.root_and_depth(t).1)
            .max()?;
        if depth > MAX_DEPTH {
            return None;
        }
        let n_leaves = 1usize << depth;
        let n_splits = n_leaves - 1;
        let size = forest.len() * (n_leaves + n_splits);
        if size > MAX_GROWTH * forest.node_count() + (1 << 12) {
            return None;
        }
        let mut splits = vec![(0u32, 0.0f32); forest.len() * n_splits];
        let mut leaves = vec![0.0f32; forest.len() * n_leaves];
        let mut stack = Vec::new();
        for t in 0..forest.len() {
            let tree_splits = &mut splits[t * n_splits..(t + 1) * n_splits];
            let tree_leaves = &mut leaves[t * n_leaves..(t + 1) * n_leaves];
            // (position in the complete tree, its level, node as read)
            stack.push((0usize, 0u32, forest.root_and_depth(t).0));
            while let Some((pos, level, node)) = stack.pop() {
                let kind = forest.kind(node);
                if level == depth {
                    // No path is longer than `depth`: this is a leaf.
                    let NodeKind::Leaf(value) = kind else {
                        return None;
                    };
                    tree_leaves[pos - n_splits] = value;
                    continue;
                }
                let (left, right) = match kind {
                    NodeKind::Categorical => return None,
                    // Padding: the test reads feature 0, both sides agree.
                    NodeKind::Leaf(_) => (node, node),
                    NodeKind::Split {
                        meta,
                        threshold,
                        left,
                    } => {
                        tree_splits[pos] = (meta, threshold);
                        (left, left + 1)
                    }
                };
                stack.push((2 * pos + 1, level + 1, left));
                stack.push((2 * pos + 2, level + 1, right));
            }
        }
        Some(Complete {
            depth,
            splits,
            leaves,
        })
    }

    /// The leaf value of every tree in `trees` for `row`, passed to `leaf`
    /// in tree order.
    pub(crate) fn leaves(
        &self,
        trees: Range<usize>,
        row: &[f32],
        mut leaf: impl FnMut(usize, f32),
    ) {
        let missing = row.iter().any(|x| x.is_nan());
        let mut t = trees.start;
        while t + LANES <= trees.end {
            match missing {
                false => self.walk::<LANES, false>(t, row, &mut leaf),
                true => self.walk::<LANES, true>(t, row, &mut leaf),
            }
            t += LANES;
        }
        for t in t..trees.end {
            match missing {
                false => self.walk::<1, false>(t, row, &mut leaf),
                true => self.walk::<1, true>(t, row, &mut leaf),
            }
        }
    }

    /// Walks trees `first..first + N` together.
    #[inline(always)]
    fn walk<const N: usize, const MISSING: bool>(
        &self,
        first: usize,
        row: &[f32],
        leaf: &mut impl FnMut(usize, f32),
    ) {
        let n_splits = (1usize << self.depth) - 1;
        let mut at = [0usize; N];
        for _ in 0..self.depth {
            for (k, i) in at.iter_mut().enumerate() {
                let (meta, threshold) = self.splits[(first + k) * n_splits + *i];
                let x = row[(meta & FEATURE_MASK) as usize];
                // XGBoost goes left iff `x < threshold`; NaN goes the
                // default way. `&`, not `&&`: data, not branches.
                let right = if MISSING {
                    let nan = x.is_nan();
                    (nan & (meta & DEFAULT_LEFT == 0)) | (!nan & goes_right(x, threshold))
                } else {
                    goes_right(x, threshold)
                };
                *i = 2 * *i + 1 + usize::from(right);
            }
        }
        for (k, i) in at.iter().enumerate() {
            let tree = first + k;
            leaf(tree, self.leaves[tree * (n_splits + 1) + *i - n_splits]);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Model, PredictOptions};

    fn fixture(name: &str) -> Model {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        Model::from_bytes(&std::fs::read(path).expect("fixture")).expect("loads")
    }

    /// Rows with and without missing values, some beyond every threshold.
    fn rows(model: &Model, n: usize) -> Vec<f32> {
        let width = model.num_features();
        (0..n * width)
            .map(|i| match (i / width) % 4 {
                // Every fourth row has a NaN in every third column.
                0 if i % 3 == 0 => f32::NAN,
                _ => ((i * 7919) % 97) as f32 / 12.0 - 4.0,
            })
            .collect()
    }

    #[test]
    fn shallow_models_are_laid_out_complete_and_agree_with_the_walk() {
        for name in [
            "binary_logistic.json",
            "softprob.json",
            "dart.json",
            "gamma.ubj",
        ] {
            let model = fixture(name);
            assert!(model.forest.has_complete_layout(), "{name}");
            let n = 37;
            let data = rows(&model, n);
            let fast = model
                .predict_with(&data, n, &PredictOptions::default())
                .expect("predicts");
            let reference = PredictOptions {
                one_tree_at_a_time: true,
                ..PredictOptions::default()
            };
            let slow = model.predict_with(&data, n, &reference).expect("predicts");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&slow), "{name}");
        }
    }

    #[test]
    fn categorical_models_are_not() {
        assert!(!fixture("categorical.json").forest.has_complete_layout());
    }
}
