//! Typed errors: a model file is untrusted input, so every way it can be wrong
//! has a name, and the tree/node it concerns when there is one.

use std::fmt;

use thiserror::Error;

/// The two serialisations of `Booster.save_model` this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON text (`model.json`).
    Json,
    /// Universal Binary JSON (`model.ubj`, XGBoost's default since 2.1).
    Ubjson,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Json => "JSON",
            Format::Ubjson => "UBJSON",
        })
    }
}

/// Why a model could not be loaded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The bytes are not a well-formed document of the format.
    #[error("malformed {format}: {reason} at byte {offset}")]
    Syntax {
        /// The format being parsed.
        format: Format,
        /// Byte offset where parsing stopped.
        offset: usize,
        /// What was wrong there.
        reason: &'static str,
    },
    /// A well-formed model this crate deliberately does not handle (legacy
    /// binary format, `gblinear`, vector-leaf trees, an unknown objective...).
    #[error("unsupported XGBoost model: {0}")]
    Unsupported(String),
    /// A model-level field is missing, of the wrong type or inconsistent.
    #[error("invalid XGBoost model: `{field}`: {reason}")]
    Field {
        /// Dotted path of the field, e.g. `learner.learner_model_param.num_class`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A tree's arrays are inconsistent as a whole.
    #[error("invalid XGBoost model: tree {tree}: {defect}")]
    Tree {
        /// Index of the tree (its `id`).
        tree: usize,
        /// What is wrong.
        defect: TreeDefect,
    },
    /// One node of a tree is invalid.
    #[error("invalid XGBoost model: tree {tree}, node {node}: {defect}")]
    Node {
        /// Index of the tree (its `id`).
        tree: usize,
        /// Index of the node inside the tree.
        node: usize,
        /// What is wrong.
        defect: NodeDefect,
    },
}

/// A defect of a tree as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TreeDefect {
    /// A per-node array does not have `tree_param.num_nodes` elements.
    #[error("`{field}` has {found} elements, expected {expected}")]
    ArrayLength {
        /// The array's name.
        field: &'static str,
        /// `tree_param.num_nodes`.
        expected: usize,
        /// Its actual length.
        found: usize,
    },
    /// A required field is missing or has the wrong type.
    #[error("field `{0}` is missing or has the wrong type")]
    BadField(&'static str),
    /// `tree_param.num_nodes` is zero, negative or not a number.
    #[error("`tree_param.num_nodes` is not a positive integer")]
    NodeCount,
    /// The categorical-split tables (`categories_*`) are inconsistent.
    #[error("inconsistent categorical split tables: {0}")]
    Categories(&'static str),
    /// Two trees claim the same `id`, or an `id` is out of range.
    #[error("tree id out of range or duplicated")]
    Id,
}

/// A defect of one node.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NodeDefect {
    /// A child index is negative (other than the leaf marker) or `>= num_nodes`.
    #[error("child index {0} is out of range")]
    ChildOutOfRange(i64),
    /// The right child is not the left child + 1. XGBoost's predictor walks
    /// to `left + 1` for "not left", so such a tree means different things to
    /// its different code paths; we refuse it instead of guessing.
    #[error("right child {right} is not left child {left} + 1")]
    ChildrenNotAdjacent {
        /// The left child.
        left: i64,
        /// The right child.
        right: i64,
    },
    /// The node is reached a second time from the root: a cycle or a shared subtree.
    #[error("node is reachable twice from the root (cycle or shared subtree)")]
    ReachedTwice,
    /// `parents[child]` does not name this node.
    #[error("child {child} records parent {recorded}")]
    ParentMismatch {
        /// The child.
        child: usize,
        /// What `parents` says.
        recorded: i64,
    },
    /// The split feature is negative or `>= num_feature`.
    #[error("split feature {index} is out of range (num_feature = {num_feature})")]
    FeatureOutOfRange {
        /// The feature index.
        index: i64,
        /// The model's `num_feature` (or the internal limit when that is 0).
        num_feature: usize,
    },
    /// `default_left` is neither 0 nor 1.
    #[error("default_left value {0} is not 0 or 1")]
    DefaultLeft(i64),
    /// `split_type` is neither 0 (numerical) nor 1 (categorical).
    #[error("unknown split type {0}")]
    SplitType(i64),
    /// A categorical split has no category list (or an empty one).
    #[error("categorical split without categories")]
    MissingCategories,
    /// Categories are listed for a node that is not a categorical split.
    #[error("categories listed for a node that is not a categorical split")]
    UnexpectedCategories,
    /// A category value is negative.
    #[error("category {0} is negative")]
    NegativeCategory(i64),
}

/// Why a prediction was refused (nothing about the model: it loaded fine).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PredictError {
    /// `rows.len()` is not `n_rows * num_features()`.
    #[error("expected {n_rows} rows x {n_features} features = {expected} values, got {found}")]
    Shape {
        /// Rows announced by the caller.
        n_rows: usize,
        /// Features the model was trained with.
        n_features: usize,
        /// `n_rows * n_features` (saturating).
        expected: usize,
        /// `rows.len()`.
        found: usize,
    },
    /// The requested boosting rounds are not inside `0..rounds()`.
    #[error("iteration range {begin}..{end} is not within the model's {rounds} boosting rounds")]
    IterationRange {
        /// First round requested.
        begin: usize,
        /// One past the last round requested.
        end: usize,
        /// Rounds in the model.
        rounds: usize,
    },
}
