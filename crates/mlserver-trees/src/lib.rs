//! XGBoost tree models, read from their saved files and evaluated with
//! XGBoost's own float32 arithmetic, without XGBoost; and LightGBM tree
//! models, likewise, in [`lightgbm`] (see [LightGBM](#lightgbm) below).
//!
//! # What it reads
//!
//! The two formats of `Booster.save_model`: JSON and UBJSON (the default
//! since XGBoost 2.1; a `model.bst` may hold either, [`Model::from_bytes`]
//! tells them apart by content as XGBoost does). From the learner it takes
//! `learner_model_param` (`base_score`, scalar or the per-output vector
//! string of XGBoost >= 3.1, `num_class`, `num_feature`, `num_target`), the
//! objective's name, the `gbtree` or `dart` booster (with `weight_drop`),
//! every tree with numerical and categorical splits, `tree_info`,
//! `iteration_indptr` (derived from `tree_info` for older files), and
//! `attributes.best_iteration`, `feature_names`, `feature_types`.
//!
//! Supported objectives: `reg:squarederror` (and its old alias
//! `reg:linear`), `reg:squaredlogerror`, `reg:pseudohubererror`,
//! `reg:absoluteerror`, `reg:quantileerror` (one output per quantile),
//! `binary:logitraw`, `rank:pairwise`, `rank:ndcg`, `rank:map` (identity);
//! `reg:logistic`, `binary:logistic` (sigmoid); `count:poisson`,
//! `reg:gamma`, `reg:tweedie` (exp); `multi:softprob` (softmax),
//! `multi:softmax` (class index), `binary:hinge` (0/1).
//!
//! # What it refuses, and why
//!
//! Everything is a typed [`LoadError`], never a panic:
//!
//! - XGBoost's legacy binary format (removed from XGBoost in 3.1; guessing
//!   its layout would risk silently wrong predictions): `Unsupported`.
//! - `gblinear`, vector-leaf (`multi_output_tree`) trees, objectives not
//!   listed above (`survival:*`...), models with no tree: `Unsupported`.
//! - Malformed files: truncated or forged documents, a child index out of
//!   range, a cycle or shared subtree, a right child that is not
//!   `left + 1` (which XGBoost's predictor assumes), inconsistent parents,
//!   a split feature `>= num_feature`, per-node arrays of different
//!   lengths, inconsistent categorical tables. Declared UBJSON counts are
//!   checked against the input length before any allocation.
//!
//! # Arithmetic guarantees
//!
//! For the objectives above, [`Model::predict_margin`] and
//! [`Model::predict`] return the same bits as `Booster.predict` with
//! `output_margin=True` / `False` on the CPU, for gbtree and DART, checked
//! against XGBoost 3.2.0 fixtures for both file formats (committed) and
//! against the same cases written by XGBoost 2.1.4, whose files use the
//! older scalar `base_score`: numbers are parsed
//! straight to float32; the margin starts at `base_score` mapped through
//! the objective's link (logit with XGBoost's clamping, or log) and sums
//! leaf values in tree order in float32; a missing value (NaN) takes the
//! default direction, otherwise a row goes left iff `value < threshold`, or
//! for a categorical split iff the value is not one of the split's
//! categories; sigmoid, softmax and exp are XGBoost's formulas operation by
//! operation. `exp`/`ln` come from the platform's libm, the same functions
//! XGBoost's build calls (glibc on Linux); with a different libm the
//! transformed outputs can differ in the last bit, margins cannot.
//!
//! # How trees are walked
//!
//! Rows are independent and each output adds its trees' leaves in tree
//! order, so how a leaf is found changes no bit. By default trees are
//! walked eight at a time, each step computed without branches: XGBoost
//! models of depth up to 8 on a complete layout (`src/complete.rs`),
//! deeper ones on their node arrays (`src/tree.rs`), LightGBM models on a
//! layout of their own (`src/lightgbm/lockstep.rs`); trees with categorical
//! splits one at a time. `one_tree_at_a_time` in [`PredictOptions`] and
//! [`lightgbm::PredictOptions`] walks every
//! tree alone by the library's rules: the reference the tests compare the
//! lockstep walks with, bit for bit.
//!
//! # Not done
//!
//! - `base_margin` inputs, SHAP contributions, leaf indices, interaction
//!   values; GPU-specific behaviour.
//! - Re-coding of categorical inputs: since 3.1 XGBoost can store a
//!   training dataframe's category names (`cats`) and re-code string
//!   categories at predict time; here a categorical feature's value must
//!   already be the category code, as with a numpy input.
//! - Applying `best_iteration` automatically: pass
//!   `rounds: Some(0..best + 1)` in [`PredictOptions`].
//!
//! # LightGBM
//!
//! [`lightgbm::Model::from_text`] reads the text format of LightGBM's
//! `Booster.save_model` (`model.txt`; an MLServer `model.bst` is the same
//! text): the header (`num_class`, `num_tree_per_iteration`, `label_index`,
//! `max_feature_idx`, the `objective` line with its parameters,
//! `average_output`, `feature_names`, `feature_infos`, `tree_sizes`,
//! `version`) and every `Tree=` block (`num_leaves`, `num_cat`,
//! `split_feature`, `threshold`, `decision_type`, `left_child`,
//! `right_child`, `leaf_value`, `cat_boundaries`, `cat_threshold`,
//! `is_linear`), up to `end of trees`. What follows (feature importances,
//! `parameters:`, Python's `pandas_categorical:`) is not read at all.
//! `dart`, `goss` and `rf` models are plain tree sums in this format.
//!
//! Objectives: `regression` (with `sqrt`: signed square), `regression_l1`,
//! `huber`, `fair`, `quantile`, `mape`, `lambdarank`, `rank_xendcg` and
//! models without objective line (identity); `poisson`, `gamma`, `tweedie`
//! (exp); `binary` (sigmoid with the model's `sigmoid:`), `multiclass`
//! (softmax), `multiclassova` (per-class sigmoid), `cross_entropy`
//! (logistic), `cross_entropy_lambda` (`log1p(exp(x))`); LightGBM's whole-line
//! aliases (`mse`, `xentropy`...) are accepted.
//!
//! Refused, each a typed [`lightgbm::LoadError`] naming the tree and node,
//! never a panic: linear trees (`is_linear=1`) and unknown objectives
//! (`Unsupported`); a first line other than `tree`, a truncated file (the
//! `end of trees` line is required), a child index out of range, a node or
//! leaf reached twice (cycle, shared subtree), a split feature beyond
//! `max_feature_idx`, array lengths other than `num_leaves - 1` /
//! `num_leaves` / `num_cat + 1`, `cat_boundaries` not starting at 0,
//! decreasing or not ending at the length of `cat_threshold`, a categorical
//! split whose bitset does not exist, undefined `decision_type` bits,
//! `tree_sizes` disagreeing with the trees, `num_tree_per_iteration` other
//! than `num_class`, a tree count that is not a whole number of iterations,
//! a model without trees. Every count is checked against the values
//! actually present in the text before anything of that size is allocated.
//!
//! Guarantee: [`lightgbm::Model::predict_raw`] and
//! [`lightgbm::Model::predict`] return the same bits as `Booster.predict`
//! with `raw_score=True` / the default, on float64 numpy input, checked
//! against LightGBM 4.7.0 fixtures for every objective above (plus
//! `reg_sqrt`, a non-default `sigmoid`, `dart`, `rf` regression and binary,
//! `zero_as_missing=True`, `use_missing=False`; the list is in
//! `tests/fixtures/lightgbm/make_fixtures.py`), with and without an
//! iteration window; models without objective line (custom objectives)
//! are raw scores by construction and have no fixture. As in LightGBM:
//! inputs are doubles, and a value with
//! `|x| <= kZeroThreshold` (the float `1e-35f`, widened) is passed on as 0;
//! each output starts at `+0.0` and adds the trees' double leaf values in
//! file order; a numerical split sends NaN to 0 unless its missing type is
//! NaN, sends missing values (zero for missing type Zero, NaN for NaN) the
//! default direction, and otherwise goes left iff `x <= threshold`; a
//! categorical split goes left iff the value truncated to an integer is a
//! non-negative category whose bit is set (NaN, negative and out-of-range
//! values go right); `average_output` divides the default prediction (not
//! the raw scores) by the number of iterations used; the transforms are
//! LightGBM's formulas operation by operation, with the platform's
//! `exp`/`log1p`; the `sigmoid:` parameter is read with LightGBM's own
//! (not correctly rounded) decimal parser. Iteration windows
//! ([`lightgbm::PredictOptions`]) clamp like `start_iteration` /
//! `num_iteration` there.
//!
//! Not done for LightGBM: the binary model format is not read (LightGBM
//! saves text only); `best_iteration` is not in the text format
//! (`save_model` already keeps only the trees up to it; a caller that knows
//! it passes `num_iteration`); `pandas_categorical` re-coding (category
//! values must already be the integer codes); leaf indices, SHAP
//! contributions, prediction early stopping; CSR/sparse input.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bytes = std::fs::read(concat!(
//!     env!("CARGO_MANIFEST_DIR"),
//!     "/tests/fixtures/binary_logistic.ubj"
//! ))?;
//! let model = mlserver_trees::Model::from_bytes(&bytes)?;
//! let row = vec![f32::NAN; model.num_features()];
//! let p = model.predict(&row, 1)?;
//! assert!(p[0] > 0.0 && p[0] < 1.0);
//! # Ok(())
//! # }
//! ```

mod complete;
mod error;
mod json;
pub mod lightgbm;
mod model;
mod node;
mod objective;
mod predict;
mod tree;
mod ubjson;
mod value;

pub use error::{Format, LoadError, NodeDefect, PredictError, TreeDefect};
pub use model::{detect_format, Booster, Model};
pub use predict::PredictOptions;
