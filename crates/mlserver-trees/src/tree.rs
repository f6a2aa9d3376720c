//! Trees, validated once at load and laid out flat for prediction.
//!
//! All trees share one `Vec<Node>` of 12-byte nodes (children as absolute
//! indices), so a prediction walks one contiguous allocation. As in XGBoost
//! the right child is always `left + 1` (checked at load), so a node stores
//! only its left child; a leaf keeps its value in the split-condition slot,
//! and its "left child" is itself.
//!
//! A walk one tree at a time is a chain of dependent loads and
//! unpredictable branches. [`Forest::leaves`] walks eight trees in lockstep
//! instead, each step computed without branches and a leaf stepping onto
//! itself, for as many steps as the deepest of the eight: eight independent
//! chains the CPU overlaps. It reaches the same leaves; the caller still
//! adds them in tree order. Trees with categorical splits are walked one at
//! a time.
//!
//! Shallow trees (XGBoost's default depth is 6) are also laid out complete
//! ([`crate::complete`]), which takes a fixed number of steps with no test
//! for leaves; that layout is what predictions walk when it exists.
//!
//! Validation walks each tree from the root once, marking nodes: a child out
//! of range, a node reached twice (cycle or shared subtree), a parent link
//! that disagrees, a feature out of range... all become a [`LoadError`] naming
//! the tree and node. Nodes the root cannot reach (XGBoost keeps pruned,
//! "deleted" nodes in the arrays) are never read and so not validated.

use crate::complete::{Complete, NodeKind, Trees};
use crate::error::{LoadError, NodeDefect, TreeDefect};
use crate::node::{goes_right, CATEGORICAL, DEFAULT_LEFT, FEATURE_MASK, LANES, LEAF};
use crate::value::Value;

/// One node. `payload` holds the bits of the threshold (numerical split) or
/// of the leaf value (leaf), or the index of the categorical split's span in
/// [`Forest::cat_spans`]; kept as raw bits so an index is never a float.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node {
    payload: u32,
    /// The left child's index in `nodes`; a leaf's own index.
    left: u32,
    /// Feature index (0 for a leaf), plus the default-left, categorical and
    /// leaf flags.
    meta: u32,
}

impl Node {
    fn is_leaf(self) -> bool {
        self.meta & LEAF != 0
    }
}

/// Every tree of a model, flattened.
#[derive(Debug, Clone, Default)]
pub(crate) struct Forest {
    nodes: Vec<Node>,
    /// Index of each tree's root in `nodes`, in tree order.
    roots: Vec<u32>,
    /// Each tree's depth: the steps from its root to its deepest leaf.
    depths: Vec<u32>,
    /// Whether each tree has a categorical split (walked one at a time).
    categorical: Vec<bool>,
    /// Sorted categories of every categorical split, back to back.
    cat_values: Vec<u32>,
    /// `(start, len)` in `cat_values` per categorical split.
    cat_spans: Vec<(u32, u32)>,
    /// The same trees laid out complete, when they are shallow (see
    /// [`Complete`]); set by [`Forest::finish`].
    complete: Option<Complete>,
}

impl Forest {
    pub(crate) fn len(&self) -> usize {
        self.roots.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// Highest split feature + 1 over all trees (0 with no splits).
    pub(crate) fn features_used(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| !n.is_leaf())
            .map(|n| (n.meta & FEATURE_MASK) as usize + 1)
            .max()
            .unwrap_or(0)
    }

    /// Called once every tree is in: lays them out complete when that pays.
    pub(crate) fn finish(&mut self) {
        self.complete = Complete::build(self);
    }

    /// Whether predictions walk the complete layout.
    #[cfg(test)]
    pub(crate) fn has_complete_layout(&self) -> bool {
        self.complete.is_some()
    }

    /// Nodes of all trees together.
    pub(crate) fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Tree `tree`'s root node and depth.
    pub(crate) fn root_and_depth(&self, tree: usize) -> (usize, u32) {
        (self.roots[tree] as usize, self.depths[tree])
    }

    /// What node `i` is.
    pub(crate) fn kind(&self, i: usize) -> NodeKind {
        let n = self.nodes[i];
        if n.is_leaf() {
            NodeKind::Leaf(f32::from_bits(n.payload))
        } else if n.meta & CATEGORICAL != 0 {
            NodeKind::Categorical
        } else {
            NodeKind::Split {
                meta: n.meta & (FEATURE_MASK | DEFAULT_LEFT),
                threshold: f32::from_bits(n.payload),
                left: n.left as usize,
            }
        }
    }

    /// The leaf value tree `tree` gives `row` (NaN = missing). The walk ends:
    /// every step goes to a strictly deeper node of a validated tree.
    #[inline]
    pub(crate) fn leaf_value(&self, tree: usize, row: &[f32]) -> f32 {
        let mut i = self.roots[tree] as usize;
        loop {
            let n = self.nodes[i];
            if n.is_leaf() {
                return f32::from_bits(n.payload);
            }
            let x = row[(n.meta & FEATURE_MASK) as usize];
            let go_left = if x.is_nan() {
                n.meta & DEFAULT_LEFT != 0
            } else if n.meta & CATEGORICAL != 0 {
                !self.in_category_set(n.payload as usize, x)
            } else {
                x < f32::from_bits(n.payload)
            };
            i = n.left as usize + usize::from(!go_left);
        }
    }

    /// The leaf value of every tree in `trees` for `row`, passed to `leaf`
    /// in tree order: what [`Forest::leaf_value`] gives each, found eight
    /// trees at a time when `lockstep` (see the module documentation).
    #[inline]
    pub(crate) fn leaves(
        &self,
        trees: std::ops::Range<usize>,
        row: &[f32],
        lockstep: bool,
        mut leaf: impl FnMut(usize, f32),
    ) {
        if let Some(complete) = self
            .complete
            .as_ref()
            .filter(|_| lockstep && !row.is_empty())
        {
            return complete.leaves(trees, row, leaf);
        }
        let mut t = trees.start;
        // A leaf reads feature 0: only rows with features step branch-free.
        if lockstep && !row.is_empty() {
            while t + LANES <= trees.end {
                let chunk = t..t + LANES;
                if self.categorical[chunk.clone()].iter().any(|&c| c) {
                    for t in chunk {
                        leaf(t, self.leaf_value(t, row));
                    }
                } else {
                    let depth = self.depths[chunk].iter().copied().max().unwrap_or(0);
                    let mut at = [0u32; LANES];
                    at.copy_from_slice(&self.roots[t..t + LANES]);
                    // Until every lane is on its leaf (a leaf steps onto
                    // itself), at most the deepest tree's depth.
                    for _ in 0..depth {
                        let mut moved = false;
                        for i in at.iter_mut() {
                            let next = self.step(*i, row);
                            moved |= next != *i;
                            *i = next;
                        }
                        if !moved {
                            break;
                        }
                    }
                    for (k, i) in at.iter().enumerate() {
                        leaf(t + k, f32::from_bits(self.nodes[*i as usize].payload));
                    }
                }
                t += LANES;
            }
        }
        for t in t..trees.end {
            leaf(t, self.leaf_value(t, row));
        }
    }

    /// One step of a numerical walk, without branches: to the child the
    /// row's value picks (the default one for NaN), or from a leaf onto
    /// itself.
    #[inline(always)]
    fn step(&self, i: u32, row: &[f32]) -> u32 {
        let n = self.nodes[i as usize];
        let x = row[(n.meta & FEATURE_MASK) as usize];
        // Plain `&` and `|`, not `if`: the compiler keeps them as data, not
        // branches. A number goes right iff not `x < threshold` (XGBoost's
        // test for left: a NaN threshold sends every number right).
        let nan = x.is_nan();
        let default_right = n.meta & DEFAULT_LEFT == 0;
        let right = (nan & default_right) | (!nan & goes_right(x, f32::from_bits(n.payload)));
        n.left + u32::from(right & !n.is_leaf())
    }

    /// XGBoost's `common::Decision` inverted: a value goes right iff it is a
    /// valid category (`0 <= x < 2^24`, truncated to an integer) in the set.
    fn in_category_set(&self, span: usize, x: f32) -> bool {
        // (`x` is never NaN here: missing values took the default branch.)
        if !(0.0..16_777_216.0).contains(&x) {
            return false;
        }
        let (start, len) = self.cat_spans[span];
        let set = &self.cat_values[start as usize..(start + len) as usize];
        set.binary_search(&(x as u32)).is_ok()
    }

    /// Validates one tree's JSON object and appends it.
    pub(crate) fn push_tree(
        &mut self,
        tree: usize,
        json: &Value,
        num_feature: usize,
    ) -> Result<(), LoadError> {
        let raw = RawTree::read(tree, json)?;
        let n = raw.n_nodes;
        let base = self.nodes.len();
        let cats = raw.categories(tree)?;
        if base + n > u32::MAX as usize {
            return Err(LoadError::Unsupported(
                "more than 2^32 - 2 nodes in total".into(),
            ));
        }
        let node_err = |node: usize, defect: NodeDefect| LoadError::Node { tree, node, defect };
        let feature_limit = if num_feature > 0 {
            num_feature
        } else {
            FEATURE_MASK as usize
        };

        // Unreachable nodes stay as harmless zero leaves.
        let mut nodes: Vec<Node> = (0..n)
            .map(|i| Node {
                payload: 0,
                left: (base + i) as u32,
                meta: LEAF,
            })
            .collect();
        let mut seen = vec![false; n];
        let mut depth_of = vec![0u32; n];
        let mut depth = 0;
        let mut categorical = false;
        let mut stack = vec![0usize];
        seen[0] = true;
        while let Some(i) = stack.pop() {
            depth = depth.max(depth_of[i]);
            let left = raw.left[i];
            if left == -1 {
                nodes[i].payload = raw.cond[i].to_bits();
                continue;
            }
            let right = raw.right[i];
            for child in [left, right] {
                if child < 0 || child >= n as i64 {
                    return Err(node_err(i, NodeDefect::ChildOutOfRange(child)));
                }
            }
            if right != left + 1 {
                return Err(node_err(i, NodeDefect::ChildrenNotAdjacent { left, right }));
            }
            for child in [left as usize, right as usize] {
                if seen[child] {
                    return Err(node_err(child, NodeDefect::ReachedTwice));
                }
                seen[child] = true;
                if raw.parents[child] != i as i64 {
                    return Err(node_err(
                        i,
                        NodeDefect::ParentMismatch {
                            child,
                            recorded: raw.parents[child],
                        },
                    ));
                }
                depth_of[child] = depth_of[i] + 1;
                stack.push(child);
            }
            let feature = raw.split_indices[i];
            if feature < 0 || feature >= feature_limit as i64 {
                return Err(node_err(
                    i,
                    NodeDefect::FeatureOutOfRange {
                        index: feature,
                        num_feature: feature_limit,
                    },
                ));
            }
            let mut meta = feature as u32;
            meta |= match raw.default_left[i] {
                0 => 0,
                1 => DEFAULT_LEFT,
                other => return Err(node_err(i, NodeDefect::DefaultLeft(other))),
            };
            let mut payload = raw.cond[i].to_bits();
            match raw.split_type.get(i).copied().unwrap_or(0) {
                0 => {}
                1 => {
                    let entry = cats
                        .binary_search_by_key(&i, |c| c.node)
                        .map(|j| &cats[j])
                        .map_err(|_| node_err(i, NodeDefect::MissingCategories))?;
                    let set = &raw.categories[entry.start..entry.start + entry.len];
                    payload = self.push_categories(set, tree, i)?;
                    meta |= CATEGORICAL;
                    categorical = true;
                }
                other => return Err(node_err(i, NodeDefect::SplitType(other))),
            }
            nodes[i] = Node {
                payload,
                left: (base + left as usize) as u32,
                meta,
            };
        }
        for c in &cats {
            if raw.split_type.get(c.node).copied() != Some(1) {
                return Err(node_err(c.node, NodeDefect::UnexpectedCategories));
            }
        }
        self.roots.push(base as u32);
        self.depths.push(depth);
        self.categorical.push(categorical);
        self.nodes.extend(nodes);
        Ok(())
    }

    /// Stores one split's category set (sorted, deduplicated) and returns
    /// the index of its span.
    fn push_categories(
        &mut self,
        values: &[i64],
        tree: usize,
        node: usize,
    ) -> Result<u32, LoadError> {
        let mut set = Vec::with_capacity(values.len());
        for &c in values {
            let c = u32::try_from(c).map_err(|_| LoadError::Node {
                tree,
                node,
                defect: NodeDefect::NegativeCategory(c),
            })?;
            set.push(c);
        }
        set.sort_unstable();
        set.dedup();
        let too_many = || LoadError::Unsupported("more than 2^32 categorical entries".into());
        let start = u32::try_from(self.cat_values.len()).map_err(|_| too_many())?;
        let len = u32::try_from(set.len()).map_err(|_| too_many())?;
        self.cat_values.extend(set);
        let span = u32::try_from(self.cat_spans.len()).map_err(|_| too_many())?;
        self.cat_spans.push((start, len));
        Ok(span)
    }
}

/// One categorical split's slice of the tree's `categories` array.
struct CatEntry {
    node: usize,
    start: usize,
    len: usize,
}

/// A tree's arrays as read, lengths already checked against `num_nodes`.
struct RawTree {
    n_nodes: usize,
    left: Vec<i64>,
    right: Vec<i64>,
    parents: Vec<i64>,
    split_indices: Vec<i64>,
    cond: Vec<f32>,
    default_left: Vec<i64>,
    /// Empty when the model predates categorical support.
    split_type: Vec<i64>,
    categories: Vec<i64>,
    categories_nodes: Vec<i64>,
    categories_segments: Vec<i64>,
    categories_sizes: Vec<i64>,
}

impl RawTree {
    fn read(tree: usize, json: &Value) -> Result<Self, LoadError> {
        let defect = |d: TreeDefect| LoadError::Tree { tree, defect: d };
        let param = json
            .get("tree_param")
            .ok_or(defect(TreeDefect::BadField("tree_param")))?;
        let leaf_vector = match param.get("size_leaf_vector").and_then(Value::as_str) {
            Some(s) => s
                .parse::<i64>()
                .map_err(|_| defect(TreeDefect::BadField("tree_param.size_leaf_vector")))?,
            None => 1,
        };
        if leaf_vector > 1 {
            return Err(LoadError::Unsupported(format!(
                "tree {tree} has vector leaves (multi_strategy=multi_output_tree)"
            )));
        }
        let n_nodes = param
            .get("num_nodes")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .ok_or(defect(TreeDefect::NodeCount))?;

        let checked = |name: &'static str, len: Option<usize>| match len {
            None => Err(defect(TreeDefect::BadField(name))),
            Some(found) if found != n_nodes => Err(defect(TreeDefect::ArrayLength {
                field: name,
                expected: n_nodes,
                found,
            })),
            Some(_) => Ok(()),
        };
        // Check lengths before converting, so nothing is copied for nothing.
        let ints = |name: &'static str| -> Result<Vec<i64>, LoadError> {
            let v = json.get(name);
            checked(name, v.and_then(Value::array_len))?;
            v.and_then(Value::to_ints)
                .ok_or(defect(TreeDefect::BadField(name)))
        };
        let floats = |name: &'static str| -> Result<Vec<f32>, LoadError> {
            let v = json.get(name);
            checked(name, v.and_then(Value::array_len))?;
            v.and_then(Value::to_f32s)
                .ok_or(defect(TreeDefect::BadField(name)))
        };
        let left = ints("left_children")?;
        let right = ints("right_children")?;
        let parents = ints("parents")?;
        let split_indices = ints("split_indices")?;
        let cond = floats("split_conditions")?;
        let default_left = ints("default_left")?;
        // Not needed to predict, but part of a consistent tree.
        checked(
            "base_weights",
            json.get("base_weights").and_then(Value::array_len),
        )?;
        let has_cats = json.get("split_type").is_some();
        let optional = |name: &'static str| -> Result<Vec<i64>, LoadError> {
            if !has_cats {
                return Ok(Vec::new());
            }
            json.get(name)
                .and_then(Value::to_ints)
                .ok_or(defect(TreeDefect::BadField(name)))
        };
        let split_type = if has_cats {
            ints("split_type")?
        } else {
            Vec::new()
        };
        Ok(RawTree {
            n_nodes,
            left,
            right,
            parents,
            split_indices,
            cond,
            default_left,
            split_type,
            categories: optional("categories")?,
            categories_nodes: optional("categories_nodes")?,
            categories_segments: optional("categories_segments")?,
            categories_sizes: optional("categories_sizes")?,
        })
    }

    /// Checks the CSR-like `categories_*` tables: one entry per categorical
    /// node, nodes ascending, every slice non-empty and inside `categories`.
    fn categories(&self, tree: usize) -> Result<Vec<CatEntry>, LoadError> {
        let bad = |why: &'static str| LoadError::Tree {
            tree,
            defect: TreeDefect::Categories(why),
        };
        let k = self.categories_nodes.len();
        if self.categories_segments.len() != k || self.categories_sizes.len() != k {
            return Err(bad("node, segment and size arrays differ in length"));
        }
        let mut out = Vec::with_capacity(k);
        let mut previous: Option<usize> = None;
        for j in 0..k {
            let node = usize::try_from(self.categories_nodes[j])
                .ok()
                .filter(|&nd| nd < self.n_nodes)
                .ok_or(bad("categorical node index out of range"))?;
            if previous.is_some_and(|p| p >= node) {
                return Err(bad("categorical nodes are not strictly ascending"));
            }
            previous = Some(node);
            let start = usize::try_from(self.categories_segments[j])
                .map_err(|_| bad("negative segment start"))?;
            let len = usize::try_from(self.categories_sizes[j])
                .map_err(|_| bad("negative segment size"))?;
            if len == 0 {
                return Err(LoadError::Node {
                    tree,
                    node,
                    defect: NodeDefect::MissingCategories,
                });
            }
            if start
                .checked_add(len)
                .is_none_or(|end| end > self.categories.len())
            {
                return Err(bad("segment outside the categories array"));
            }
            out.push(CatEntry { node, start, len });
        }
        Ok(out)
    }
}

impl Trees for Forest {
    fn len(&self) -> usize {
        Forest::len(self)
    }

    fn node_count(&self) -> usize {
        Forest::node_count(self)
    }

    fn root_and_depth(&self, tree: usize) -> (usize, u32) {
        Forest::root_and_depth(self, tree)
    }

    fn kind(&self, node: usize) -> NodeKind {
        Forest::kind(self, node)
    }
}
