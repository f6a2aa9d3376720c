//! LightGBM trees, validated once at load, and the walk that maps a row to a
//! leaf with LightGBM's own decision rules (`Tree::GetLeaf` and the
//! `NumericalDecision` / `CategoricalDecision` it calls, as of 4.x).
//!
//! A tree with `n` leaves has `n - 1` internal nodes. A child `c >= 0` is an
//! internal node, `c < 0` is the leaf `!c`. All trees share one vector of
//! splits, one of leaf values and one of categorical bitset words; a tree
//! keeps its offsets into them, so children stay in LightGBM's encoding.
//!
//! Validation walks each tree from the root once: a child out of range, or
//! reached twice (a cycle or a shared subtree), a feature above
//! `max_feature_idx`, an unknown `decision_type`, a categorical split whose
//! bitset does not exist... all become a [`LoadError`] naming tree and node.
//! After that every walk ends, and every index it takes is in range.
//!
//! This walk is the reference; predictions walk the same trees relaid by
//! [`super::lockstep`], eight at a time, unless asked not to.

use super::error::{LoadError, NodeDefect, TreeDefect};
use super::lockstep::Lockstep;
use super::text::{tree_array, tree_int, Block};

/// `decision_type` bit: categorical split.
const CATEGORICAL: u8 = 1;
/// `decision_type` bit: missing values go left.
const DEFAULT_LEFT: u8 = 2;
/// Missing types, `(decision_type >> 2) & 3`.
const MISSING_ZERO: u8 = 1;
const MISSING_NAN: u8 = 2;

/// LightGBM's `kZeroThreshold`: declared `double` but initialised from the
/// float literal `1e-35f`, so it is the float nearest 1e-35, widened.
pub(crate) const ZERO_THRESHOLD: f64 = 1e-35f32 as f64;

#[derive(Debug, Clone, Copy)]
pub(super) struct Split {
    /// Numerical threshold (`fval <= threshold` goes left); unused for a
    /// categorical split.
    pub(super) threshold: f64,
    /// Children: `>= 0` a split of the same tree, `< 0` the leaf `!c`.
    pub(super) left: i32,
    pub(super) right: i32,
    pub(super) feature: u32,
    decision: u8,
    /// The categorical split's bitset in [`Forest::cat_bits`].
    cat_start: u32,
    cat_len: u32,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct TreeRef {
    split_start: u32,
    /// 0 for a single-leaf tree.
    pub(super) split_count: u32,
    leaf_start: u32,
}

impl Split {
    pub(super) const MISSING_ZERO: u8 = MISSING_ZERO;
    pub(super) const MISSING_NAN: u8 = MISSING_NAN;

    pub(super) fn is_categorical(&self) -> bool {
        self.decision & CATEGORICAL != 0
    }

    pub(super) fn default_left(&self) -> bool {
        self.decision & DEFAULT_LEFT != 0
    }

    /// 0 (None), [`Split::MISSING_ZERO`] or [`Split::MISSING_NAN`].
    pub(super) fn missing_type(&self) -> u8 {
        (self.decision >> 2) & 3
    }
}

/// Every tree of a model, flattened.
#[derive(Debug, Clone, Default)]
pub(crate) struct Forest {
    splits: Vec<Split>,
    leaves: Vec<f64>,
    cat_bits: Vec<u32>,
    trees: Vec<TreeRef>,
    /// The same trees relaid for walking eight at a time; set by
    /// [`Forest::finish`].
    lockstep: Option<Lockstep>,
}

impl Forest {
    pub(crate) fn len(&self) -> usize {
        self.trees.len()
    }

    /// Called once every tree is in.
    pub(crate) fn finish(&mut self) {
        self.lockstep = Lockstep::build(self);
    }

    #[cfg(test)]
    pub(super) fn lockstep_layout(&self) -> Option<&Lockstep> {
        self.lockstep.as_ref()
    }

    /// Each tree with its splits and leaf values.
    pub(super) fn parts(&self) -> impl Iterator<Item = (TreeRef, &[Split], &[f64])> {
        self.trees.iter().map(|t| {
            let splits = t.split_start as usize..(t.split_start + t.split_count) as usize;
            let first_leaf = t.leaf_start as usize;
            let n_leaves = t.split_count as usize + 1;
            (
                *t,
                &self.splits[splits],
                &self.leaves[first_leaf..first_leaf + n_leaves],
            )
        })
    }

    /// The output of every tree in `trees` for `row`, passed to `leaf` in
    /// tree order: eight trees at a time when `lockstep` (see
    /// [`super::lockstep`]), else one at a time.
    #[inline]
    pub(crate) fn outputs(
        &self,
        trees: std::ops::Range<usize>,
        row: &[f64],
        lockstep: bool,
        mut leaf: impl FnMut(usize, f64),
    ) {
        match self.lockstep.as_ref().filter(|_| lockstep) {
            Some(layout) => layout.leaves(trees, row, |t| self.predict(t, row), leaf),
            None => {
                for t in trees {
                    leaf(t, self.predict(t, row));
                }
            }
        }
    }

    /// The output of tree `t` for `row` (one value per feature, as the
    /// caller gave it). As LightGBM's C API does for dense input, a value
    /// with `|x| <= kZeroThreshold` is not passed on, so the tree sees 0.
    #[inline]
    pub(crate) fn predict(&self, t: usize, row: &[f64]) -> f64 {
        let tree = self.trees[t];
        let leaf_start = tree.leaf_start as usize;
        if tree.split_count == 0 {
            return self.leaves[leaf_start];
        }
        let start = tree.split_start as usize;
        let splits = &self.splits[start..start + tree.split_count as usize];
        let mut node: i32 = 0;
        while node >= 0 {
            let s = &splits[node as usize];
            let x = row[s.feature as usize];
            let x = if x.is_nan() || x.abs() > ZERO_THRESHOLD {
                x
            } else {
                0.0
            };
            node = if self.goes_left(s, x) {
                s.left
            } else {
                s.right
            };
        }
        self.leaves[leaf_start + !node as usize]
    }

    #[inline]
    fn goes_left(&self, s: &Split, x: f64) -> bool {
        if s.decision & CATEGORICAL != 0 {
            return self.in_bitset(s, x);
        }
        let missing = (s.decision >> 2) & 3;
        // Outside a NaN-aware split, NaN is treated as 0.
        let x = if x.is_nan() && missing != MISSING_NAN {
            0.0
        } else {
            x
        };
        let is_zero = (-ZERO_THRESHOLD..=ZERO_THRESHOLD).contains(&x);
        if (missing == MISSING_ZERO && is_zero) || (missing == MISSING_NAN && x.is_nan()) {
            s.decision & DEFAULT_LEFT != 0
        } else {
            x <= s.threshold
        }
    }

    /// Left iff the value, truncated to an `int`, is a non-negative
    /// category whose bit is set. NaN and negatives go right; so do values
    /// beyond `int` (x86 converts them to `INT_MIN`, other targets
    /// saturate to `INT_MAX`, whose word is past any bitset).
    fn in_bitset(&self, s: &Split, x: f64) -> bool {
        let c = x.trunc();
        // `-0.0 >= 0.0`: values in (-1, 0) are category 0, as in C++.
        if !(0.0..2_147_483_648.0).contains(&c) {
            return false;
        }
        let c = c as u32;
        let word = c / 32;
        if word >= s.cat_len {
            return false;
        }
        let bits = self.cat_bits[(s.cat_start + word) as usize];
        (bits >> (c % 32)) & 1 == 1
    }

    /// Validates one `Tree=` block and appends it.
    pub(crate) fn push_tree(
        &mut self,
        tree: usize,
        block: &Block<'_>,
        n_features: usize,
    ) -> Result<(), LoadError> {
        let defect = |d| LoadError::Tree { tree, defect: d };
        let is_linear = match block.get("is_linear") {
            Some(_) => tree_int(tree, block, "is_linear")?,
            None => 0,
        };
        if is_linear != 0 {
            return Err(LoadError::Unsupported(format!(
                "tree {tree} is a linear tree (linear_tree=true)"
            )));
        }
        let num_leaves = tree_int(tree, block, "num_leaves")?;
        let num_cat = tree_int(tree, block, "num_cat")?;
        if num_leaves < 1 {
            return Err(defect(TreeDefect::LeafCount(num_leaves)));
        }
        if num_cat < 0 {
            return Err(defect(TreeDefect::CatCount(num_cat)));
        }
        // Every count below is compared with the number of values actually
        // present before anything of that size is kept.
        let n_leaves =
            usize::try_from(num_leaves).map_err(|_| defect(TreeDefect::LeafCount(num_leaves)))?;
        let leaves: Vec<f64> = tree_array(tree, block, "leaf_value", n_leaves)?;
        let too_big = || LoadError::Unsupported("more than 2^31 nodes or bitset words".into());
        let leaf_start = u32::try_from(self.leaves.len()).map_err(|_| too_big())?;
        let split_start = u32::try_from(self.splits.len()).map_err(|_| too_big())?;
        if n_leaves == 1 {
            // LightGBM reads nothing else of a single-leaf tree.
            self.leaves.extend(leaves);
            self.trees.push(TreeRef {
                split_start,
                split_count: 0,
                leaf_start,
            });
            return Ok(());
        }
        let n = n_leaves - 1;
        let left: Vec<i64> = tree_array(tree, block, "left_child", n)?;
        let right: Vec<i64> = tree_array(tree, block, "right_child", n)?;
        let feature: Vec<i64> = tree_array(tree, block, "split_feature", n)?;
        let threshold: Vec<f64> = tree_array(tree, block, "threshold", n)?;
        let decision: Vec<i64> = match block.get("decision_type") {
            Some(_) => tree_array(tree, block, "decision_type", n)?,
            None => vec![0; n],
        };
        let (boundaries, bits) = read_bitsets(tree, block, num_cat)?;
        if i32::try_from(n_leaves).is_err() {
            return Err(too_big());
        }
        let cat_base = self.cat_bits.len();

        let node_err = |node: usize, defect: NodeDefect| LoadError::Node { tree, node, defect };
        let mut splits = Vec::with_capacity(n);
        for i in 0..n {
            let f = feature[i];
            if f < 0 || f >= n_features as i64 {
                return Err(node_err(
                    i,
                    NodeDefect::FeatureOutOfRange {
                        index: f,
                        max_feature_idx: n_features - 1,
                    },
                ));
            }
            let d = u8::try_from(decision[i])
                .ok()
                .filter(|&d| d < 16 && (d >> 2) & 3 != 3)
                .ok_or(node_err(i, NodeDefect::DecisionType(decision[i])))?;
            let (mut cat_start, mut cat_len) = (0, 0);
            if d & CATEGORICAL != 0 {
                // The threshold of a categorical split is the index of its
                // bitset (`static_cast<int>(threshold)` in LightGBM).
                let t = threshold[i];
                if !(t >= 0.0 && t < boundaries.len().saturating_sub(1) as f64 && t.fract() == 0.0)
                {
                    return Err(node_err(i, NodeDefect::CategoryIndex(t)));
                }
                let k = t as usize;
                let (b0, b1) = (boundaries[k], boundaries[k + 1]);
                cat_start = u32::try_from(cat_base + b0).map_err(|_| too_big())?;
                cat_len = u32::try_from(b1 - b0).map_err(|_| too_big())?;
            }
            // Children are checked by the walk below; the casts are exact
            // for every value it accepts.
            splits.push(Split {
                threshold: threshold[i],
                left: left[i].clamp(i32::MIN.into(), i32::MAX.into()) as i32,
                right: right[i].clamp(i32::MIN.into(), i32::MAX.into()) as i32,
                feature: f as u32,
                decision: d,
                cat_start,
                cat_len,
            });
        }
        check_structure(tree, &left, &right, n_leaves)?;
        u32::try_from(cat_base + bits.len()).map_err(|_| too_big())?;
        self.cat_bits.extend(bits);
        self.splits.extend(splits);
        self.leaves.extend(leaves);
        self.trees.push(TreeRef {
            split_start,
            split_count: n as u32,
            leaf_start,
        });
        Ok(())
    }
}

/// `cat_boundaries` (`num_cat + 1` offsets, from 0, non-decreasing, ending at
/// the length of `cat_threshold`) and `cat_threshold` (the bitset words).
fn read_bitsets(
    tree: usize,
    block: &Block<'_>,
    num_cat: i64,
) -> Result<(Vec<usize>, Vec<u32>), LoadError> {
    if num_cat == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let defect = |d| LoadError::Tree { tree, defect: d };
    // `num_cat + 1` values must be present: bounded by the input.
    let n_cat = usize::try_from(num_cat).map_err(|_| defect(TreeDefect::CatCount(num_cat)))?;
    let boundaries: Vec<i64> = tree_array(tree, block, "cat_boundaries", n_cat.saturating_add(1))?;
    let bits: Vec<u32> = match block.get("cat_threshold") {
        Some(raw) => super::text::parse_tokens(raw).map_err(|token| {
            defect(TreeDefect::BadToken {
                field: "cat_threshold",
                token,
            })
        })?,
        None => return Err(defect(TreeDefect::MissingField("cat_threshold"))),
    };
    let bad = |why| defect(TreeDefect::CatBoundaries(why));
    if boundaries[0] != 0 {
        return Err(bad("`cat_boundaries` does not start at 0"));
    }
    if boundaries.windows(2).any(|w| w[1] < w[0]) {
        return Err(bad("`cat_boundaries` decreases"));
    }
    if boundaries[n_cat] != bits.len() as i64 {
        return Err(bad(
            "`cat_boundaries` does not end at the length of `cat_threshold`",
        ));
    }
    // Non-negative and at most `bits.len()` now, so the casts are exact.
    Ok((boundaries.into_iter().map(|b| b as usize).collect(), bits))
}

/// Walks the tree from the root: every child in range, every node and
/// leaf reached at most once. Iterative, so a deep forged tree cannot
/// overflow the stack.
fn check_structure(
    tree: usize,
    left: &[i64],
    right: &[i64],
    n_leaves: usize,
) -> Result<(), LoadError> {
    let n = left.len();
    let mut node_seen = vec![false; n];
    let mut leaf_seen = vec![false; n_leaves];
    node_seen[0] = true;
    let mut stack = vec![0usize];
    while let Some(i) = stack.pop() {
        for child in [left[i], right[i]] {
            let err = |defect| LoadError::Node {
                tree,
                node: i,
                defect,
            };
            let (seen, index) = if child >= 0 {
                (&mut node_seen, child as u64)
            } else {
                (&mut leaf_seen, !child as u64)
            };
            if index >= seen.len() as u64 {
                return Err(err(NodeDefect::ChildOutOfRange(child)));
            }
            if seen[index as usize] {
                return Err(err(NodeDefect::ChildReachedTwice(child)));
            }
            seen[index as usize] = true;
            if child >= 0 {
                stack.push(child as usize);
            }
        }
    }
    Ok(())
}
