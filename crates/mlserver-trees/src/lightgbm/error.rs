//! Typed load errors for LightGBM text models. Like the XGBoost side, a
//! model file is untrusted input: every way it can be wrong has a name, and
//! the tree and node it concerns when there is one. Prediction errors are
//! the crate's shared [`crate::PredictError`].

use thiserror::Error;

/// Why a LightGBM model could not be loaded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The text is not laid out as `Booster.save_model` writes it (a missing
    /// `tree` first line, a stray line, a truncated file...).
    #[error("malformed LightGBM model: line {line}: {reason}")]
    Syntax {
        /// 1-based line number where reading stopped (one past the last
        /// line when the text ended too early).
        line: usize,
        /// What was wrong there.
        reason: String,
    },
    /// A well-formed model this crate deliberately does not handle (linear
    /// trees, an unknown objective, a model without trees...).
    #[error("unsupported LightGBM model: {0}")]
    Unsupported(String),
    /// A header field is missing, unparsable or inconsistent.
    #[error("invalid LightGBM model: `{field}`: {reason}")]
    Field {
        /// The header key, e.g. `num_class`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A tree block is inconsistent as a whole.
    #[error("invalid LightGBM model: tree {tree}: {defect}")]
    Tree {
        /// Position of the tree in the file (0-based).
        tree: usize,
        /// What is wrong.
        defect: TreeDefect,
    },
    /// One internal node of a tree is invalid.
    #[error("invalid LightGBM model: tree {tree}, node {node}: {defect}")]
    Node {
        /// Position of the tree in the file (0-based).
        tree: usize,
        /// Index of the internal (split) node inside the tree.
        node: usize,
        /// What is wrong.
        defect: NodeDefect,
    },
}

/// A defect of a tree block as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TreeDefect {
    /// A field the tree needs is absent.
    #[error("field `{0}` is missing")]
    MissingField(&'static str),
    /// A value of a field is not a number of the expected kind.
    #[error("field `{field}`: cannot parse `{token}`")]
    BadToken {
        /// The field's key.
        field: &'static str,
        /// The offending token (cut to 40 characters).
        token: String,
    },
    /// An array does not have the length `num_leaves` / `num_cat` imply.
    #[error("`{field}` has {found} values, expected {expected}")]
    ArrayLength {
        /// The field's key.
        field: &'static str,
        /// The length implied by `num_leaves` or `num_cat`.
        expected: usize,
        /// Its actual length.
        found: usize,
    },
    /// `num_leaves` is not a positive count.
    #[error("`num_leaves` = {0} is not a positive count")]
    LeafCount(i64),
    /// `num_cat` is negative.
    #[error("`num_cat` = {0} is negative")]
    CatCount(i64),
    /// `cat_boundaries` does not start at 0, decreases, or does not end at
    /// the length of `cat_threshold`.
    #[error("inconsistent categorical bitsets: {0}")]
    CatBoundaries(&'static str),
    /// More `key=value` lines than any tree LightGBM writes (it stops
    /// reading after 22, so the rest would be silently ignored there).
    #[error("more than {0} lines in the tree block")]
    TooManyLines(usize),
    /// A line of the block is not `key=value`.
    #[error("line without `=` in the tree block")]
    NotKeyValue,
}

/// A defect of one internal node.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum NodeDefect {
    /// A child index (LightGBM's encoding: `>= 0` a node, `< 0` the leaf
    /// `!child`) is out of range.
    #[error("child index {0} is out of range")]
    ChildOutOfRange(i64),
    /// A child (node or leaf, same encoding) is reached a second time from
    /// the root: a cycle or a shared subtree.
    #[error("child {0} is reachable twice from the root (cycle or shared subtree)")]
    ChildReachedTwice(i64),
    /// The split feature is negative or above `max_feature_idx`.
    #[error("split feature {index} is out of range (max_feature_idx = {max_feature_idx})")]
    FeatureOutOfRange {
        /// The feature index.
        index: i64,
        /// The model's `max_feature_idx`.
        max_feature_idx: usize,
    },
    /// `decision_type` has bits LightGBM does not define, or missing type 3.
    #[error("unknown decision_type {0}")]
    DecisionType(i64),
    /// A categorical split whose threshold is not an index into the tree's
    /// `num_cat` bitsets.
    #[error("categorical split refers to bitset {0}, outside 0..num_cat")]
    CategoryIndex(f64),
}
