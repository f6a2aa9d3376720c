//! LightGBM's trees laid out again for walking eight at a time without
//! branches, as [`crate::tree`] walks XGBoost's.
//!
//! LightGBM's own walk ([`Forest::predict`]) is a chain of dependent loads
//! and branches the CPU mispredicts about every other split: in a server,
//! where other work runs between predictions, that was two thirds of a
//! 64-row request's time. Here every tree is relaid breadth-first with the
//! two children of a split side by side, so a node keeps only its left
//! child, and a leaf is a node whose step lands on itself. Eight trees are
//! stepped together, each step computed as data, for as many steps as the
//! deepest of the eight needs; they reach the leaves LightGBM's walk
//! reaches, and the caller adds them in tree order as before.
//!
//! LightGBM's missing-value rules come down to two directions per split,
//! fixed at load: where NaN goes and where zero goes (a value within
//! `kZeroThreshold` of 0 counts as 0). With missing type None both are
//! where 0 compares (`0 <= threshold` goes left); with Zero both take the
//! default direction; with NaN, NaN takes the default and zero compares.
//! Rows without NaN or zero (checked once per row) skip those tests. Trees
//! with a categorical split are walked by LightGBM's rules one at a time.

use super::tree::{Forest, Split, ZERO_THRESHOLD};

/// Flags in [`Node::meta`], above the feature index.
const NAN_RIGHT: u32 = 1 << 30;
const ZERO_RIGHT: u32 = 1 << 29;
const FEATURE_MASK: u32 = ZERO_RIGHT - 1;
/// Trees walked together.
const LANES: usize = 8;

/// A split, or a leaf: a split on feature 0 at `+inf` whose left child is
/// itself, so that every value (NaN and zero by their flags, both clear)
/// steps onto it again.
#[derive(Debug, Clone, Copy)]
struct Node {
    /// Left iff `x <= threshold`.
    threshold: f64,
    /// Index of the left child (the right one is next to it).
    left: u32,
    /// Feature index and the flags.
    meta: u32,
}

/// Every tree, relaid (see the module documentation).
#[derive(Debug, Clone, Default)]
pub(crate) struct Lockstep {
    nodes: Vec<Node>,
    /// The value of each leaf in `nodes`, at its index (0 for splits).
    values: Vec<f64>,
    /// Per tree: its root in `nodes` and the steps to its deepest leaf;
    /// `None` for a tree with a categorical split.
    trees: Vec<Option<(u32, u32)>>,
}

impl Lockstep {
    /// The layout of `forest`'s trees, or `None` when they have more nodes
    /// than `u32` indexes or a feature index beyond the flags.
    pub(crate) fn build(forest: &Forest) -> Option<Lockstep> {
        let mut layout = Lockstep::default();
        let mut queue = std::collections::VecDeque::new();
        for (tree, splits, leaves) in forest.parts() {
            if splits.iter().any(Split::is_categorical) {
                layout.trees.push(None);
                continue;
            }
            let root = u32::try_from(layout.nodes.len()).ok()?;
            let mut depth = 0;
            // (slot, child as LightGBM encodes it: >= 0 split, < 0 leaf !c,
            // level); a single-leaf tree is its leaf 0.
            let first = if tree.split_count == 0 { -1 } else { 0 };
            layout.nodes.push(placeholder());
            layout.values.push(0.0);
            queue.push_back((root as usize, first, 0u32));
            while let Some((slot, child, level)) = queue.pop_front() {
                depth = depth.max(level);
                if child < 0 {
                    layout.nodes[slot] = Node {
                        threshold: f64::INFINITY,
                        left: slot as u32,
                        meta: 0,
                    };
                    layout.values[slot] = leaves[!child as usize];
                    continue;
                }
                let s = &splits[child as usize];
                if s.feature > FEATURE_MASK {
                    return None;
                }
                let left = layout.nodes.len();
                u32::try_from(left + 1).ok()?;
                layout.nodes.extend([placeholder(), placeholder()]);
                layout.values.extend([0.0, 0.0]);
                layout.nodes[slot] = Node {
                    threshold: s.threshold,
                    left: left as u32,
                    meta: s.feature | directions(s),
                };
                queue.push_back((left, s.left, level + 1));
                queue.push_back((left + 1, s.right, level + 1));
            }
            layout.trees.push(Some((root, depth)));
        }
        Some(layout)
    }

    /// The output of every tree in `trees` for `row`, passed to `leaf` in
    /// tree order; `one` walks a tree the layout does not hold.
    #[inline]
    pub(crate) fn leaves(
        &self,
        trees: std::ops::Range<usize>,
        row: &[f64],
        one: impl Fn(usize) -> f64,
        mut leaf: impl FnMut(usize, f64),
    ) {
        // Only the exceptional values need the tests for them.
        let special = row.iter().any(|x| x.is_nan() || x.abs() <= ZERO_THRESHOLD);
        let mut t = trees.start;
        while t + LANES <= trees.end && !row.is_empty() {
            let mut at = [0u32; LANES];
            let mut depth = 0;
            let mut whole = true;
            for (k, slot) in at.iter_mut().enumerate() {
                match self.trees[t + k] {
                    Some((root, d)) => {
                        *slot = root;
                        depth = depth.max(d);
                    }
                    None => whole = false,
                }
            }
            if whole {
                match special {
                    false => self.walk::<false>(&mut at, depth, row),
                    true => self.walk::<true>(&mut at, depth, row),
                }
                for (k, i) in at.iter().enumerate() {
                    leaf(t + k, self.values[*i as usize]);
                }
            } else {
                for t in t..t + LANES {
                    leaf(t, one(t));
                }
            }
            t += LANES;
        }
        for t in t..trees.end {
            leaf(t, one(t));
        }
    }

    /// Steps the lanes until every one is on its leaf (`depth` at most).
    #[inline(always)]
    fn walk<const SPECIAL: bool>(&self, at: &mut [u32; LANES], depth: u32, row: &[f64]) {
        for _ in 0..depth {
            let mut moved = false;
            for i in at.iter_mut() {
                let n = self.nodes[*i as usize];
                let x = row[(n.meta & FEATURE_MASK) as usize];
                // `&` and `|`, not `&&` and `if`: data, not branches.
                let right = if SPECIAL {
                    let nan = x.is_nan();
                    let zero = x.abs() <= ZERO_THRESHOLD;
                    (nan & (n.meta & NAN_RIGHT != 0))
                        | (zero & (n.meta & ZERO_RIGHT != 0))
                        | (!nan & !zero & goes_right(x, n.threshold))
                } else {
                    goes_right(x, n.threshold)
                };
                let next = n.left + u32::from(right);
                moved |= next != *i;
                *i = next;
            }
            if !moved {
                break;
            }
        }
    }
}

/// Whether `x` goes right at a numerical split: not `x <= threshold`,
/// LightGBM's test for left, which a NaN threshold fails for every value.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
#[inline(always)]
fn goes_right(x: f64, threshold: f64) -> bool {
    !(x <= threshold)
}

fn placeholder() -> Node {
    Node {
        threshold: f64::INFINITY,
        left: 0,
        meta: 0,
    }
}

/// Where NaN and zero go at a numerical split (see the module
/// documentation), as flags.
fn directions(s: &Split) -> u32 {
    let zero_compares_right = goes_right(0.0, s.threshold);
    let default_right = !s.default_left();
    let (nan_right, zero_right) = match s.missing_type() {
        Split::MISSING_ZERO => (default_right, default_right),
        Split::MISSING_NAN => (default_right, zero_compares_right),
        _ => (zero_compares_right, zero_compares_right),
    };
    (if nan_right { NAN_RIGHT } else { 0 }) | (if zero_right { ZERO_RIGHT } else { 0 })
}

#[cfg(test)]
mod tests {
    use crate::lightgbm::{Model, PredictOptions};

    fn fixture(name: &str) -> Model {
        let path = format!(
            "{}/tests/fixtures/lightgbm/{name}.txt",
            env!("CARGO_MANIFEST_DIR")
        );
        Model::from_text(&std::fs::read(path).expect("fixture")).expect("loads")
    }

    /// Rows mixing ordinary values with NaN, zeros of both signs, values
    /// inside the zero threshold and infinities.
    fn rows(width: usize, n: usize) -> Vec<f64> {
        const SPECIAL: [f64; 6] = [f64::NAN, 0.0, -0.0, 1e-40, f64::INFINITY, -f64::INFINITY];
        (0..n * width)
            .map(|i| match (i / width) % 3 {
                0 if i % 5 == 0 => SPECIAL[(i / 5) % SPECIAL.len()],
                _ => ((i * 7919) % 101) as f64 / 10.0 - 5.0,
            })
            .collect()
    }

    /// The lockstep walk and LightGBM's own give the same bits for `options`.
    fn assert_walks_agree(
        model: &Model,
        data: &[f64],
        n: usize,
        options: &PredictOptions,
        what: &str,
    ) {
        let reference = PredictOptions {
            one_tree_at_a_time: true,
            ..options.clone()
        };
        let fast = model.predict_with(data, n, options).expect("predicts");
        let slow = model.predict_with(data, n, &reference).expect("predicts");
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&fast), bits(&slow), "{what} {options:?}");
    }

    #[test]
    fn every_tree_without_categories_is_walked_in_lockstep_with_the_same_outputs() {
        let mut in_lockstep = 0;
        for name in [
            "binary_sigmoid",
            "rf_binary",
            "no_missing",
            "zero_as_missing",
            "multiclass",
        ] {
            let model = fixture(name);
            let layout = model.forest.lockstep_layout().expect("built");
            in_lockstep += layout.trees.iter().filter(|t| t.is_some()).count();
            if name == "binary_sigmoid" || name == "rf_binary" {
                assert!(layout.trees.iter().all(Option::is_some), "{name}");
            }
            let n = 61;
            let data = rows(model.num_features(), n);
            for raw_score in [false, true] {
                let options = PredictOptions {
                    raw_score,
                    ..PredictOptions::default()
                };
                assert_walks_agree(&model, &data, n, &options, name);
            }
        }
        assert!(in_lockstep >= 8, "{in_lockstep} trees walked in lockstep");
    }

    /// A model text of `n_trees` pseudo-random trees on 6 features: shapes
    /// from chains to bushes, every missing type with either default, and
    /// thresholds at 0, at the zero threshold and beyond.
    fn generated_model(n_trees: usize) -> String {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        const THRESHOLDS: [f64; 6] = [
            0.0,
            1.0000000180025095e-35,
            -1.0000000180025095e-35,
            0.5,
            -1.25,
            2.0,
        ];
        let mut text = String::from(
            "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n\
             max_feature_idx=5\nobjective=regression\nfeature_names=a b c d e f\n\
             feature_infos=none none none none none none\n\n",
        );
        for t in 0..n_trees {
            let n_leaves = 1 + next(14) as usize;
            // Grow by splitting a random leaf: split i replaces a leaf.
            // children[i] = (left, right) as LightGBM encodes them.
            let mut children: Vec<(i64, i64)> = Vec::new();
            let mut leaves: Vec<(usize, bool)> = vec![]; // (parent split, is left)
            for i in 0..n_leaves - 1 {
                let leaf = i as i64 + 1;
                if i == 0 {
                    children.push((-1, -2));
                    leaves = vec![(0, true), (0, false)];
                    continue;
                }
                let pick = next(leaves.len() as u64) as usize;
                let (parent, is_left) = leaves[pick];
                let old = if is_left {
                    children[parent].0
                } else {
                    children[parent].1
                };
                if is_left {
                    children[parent].0 = i as i64;
                } else {
                    children[parent].1 = i as i64;
                }
                children.push((old, -(leaf + 1)));
                leaves[pick] = (i, true);
                leaves.push((i, false));
            }
            let n = n_leaves - 1;
            let list = |f: &mut dyn FnMut(usize) -> String, k: usize| {
                (0..k).map(&mut *f).collect::<Vec<_>>().join(" ")
            };
            text += &format!("Tree={t}\nnum_leaves={n_leaves}\nnum_cat=0\n");
            if n > 0 {
                text += &format!("split_feature={}\n", list(&mut |_| next(6).to_string(), n));
                text += &format!(
                    "threshold={}\n",
                    list(&mut |_| format!("{:e}", THRESHOLDS[next(6) as usize]), n)
                );
                // missing type (0, 1, 2) << 2 | default left.
                text += &format!(
                    "decision_type={}\n",
                    list(&mut |_| ((next(3) << 2) | (next(2) << 1)).to_string(), n)
                );
                text += &format!(
                    "left_child={}\n",
                    list(&mut |i| children[i].0.to_string(), n)
                );
                text += &format!(
                    "right_child={}\n",
                    list(&mut |i| children[i].1.to_string(), n)
                );
            }
            text += &format!(
                "leaf_value={}\n\n",
                list(
                    &mut |i| format!("{}", i as f64 * 0.25 - 1.0 + t as f64 * 1e-3),
                    n_leaves
                )
            );
        }
        text + "end of trees\n"
    }

    #[test]
    fn generated_trees_of_every_missing_type_agree_with_lightgbms_walk() {
        let model = Model::from_text(generated_model(203).as_bytes()).expect("loads");
        let layout = model.forest.lockstep_layout().expect("built");
        assert!(layout.trees.iter().all(Option::is_some));
        let n = 97;
        let data = rows(model.num_features(), n);
        let options = PredictOptions {
            raw_score: true,
            ..PredictOptions::default()
        };
        assert_walks_agree(&model, &data, n, &options, "all trees");
        // Windows of eight trees, the walk's unit, at every offset.
        for first in 0..model.num_iterations() - 8 {
            let window = PredictOptions {
                start_iteration: first,
                num_iteration: Some(8),
                ..options.clone()
            };
            assert_walks_agree(&model, &data, n, &window, "a window");
        }
    }
}
