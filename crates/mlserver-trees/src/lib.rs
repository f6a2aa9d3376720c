//! XGBoost tree models, read from their saved files and evaluated with
//! XGBoost's own float32 arithmetic, without XGBoost.
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

mod error;
mod json;
mod model;
mod objective;
mod predict;
mod tree;
mod ubjson;
mod value;

pub use error::{Format, LoadError, NodeDefect, PredictError, TreeDefect};
pub use model::{detect_format, Booster, Model};
pub use predict::PredictOptions;
