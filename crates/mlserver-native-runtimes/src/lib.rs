//! MLServer's XGBoost, LightGBM and scikit-learn runtimes served natively.
//!
//! Users' settings name `mlserver_xgboost.XGBoostModel` and
//! `mlserver_lightgbm.LightGBMModel` (KServe's `modelClass` does too); these
//! runtimes answer those names with the same outputs, datatypes, shapes,
//! content types, errors and numbers as MLServer 1.7.1's Python runtimes,
//! using [`mlserver_trees`] for the arithmetic, with no Python process.
//!
//! They are registered as native stand-ins
//! ([`mlserver_runtime::RuntimeRegistry::register_native`]): a model they
//! cannot serve exactly (XGBoost's legacy binary format, LightGBM's linear
//! trees, an objective the readers do not know, a `multi:softmax`
//! classifier) is served by MLServer's Python runtime, with a log line and
//! the reason in the repository index; so is a request MLServer would not
//! decode as one numeric numpy array (a pandas or string request). A
//! model's `parameters.extra.native` (`true` / `false`) forces either way.
//!
//! scikit-learn models are pickles, which only Python reads: MLServer's
//! `mlserver_sklearn.SKLearnModel` loads them in a worker, which hands the
//! fitted parameters over ([`mlserver_runtime::RuntimeRegistry::register_handover`]);
//! [`SKLearnModel`] serves them with [`mlserver_sklearn`] from then on,
//! where scikit-learn's own answers on probe rows match bit for bit.

mod lightgbm;
mod request;
mod sklearn;
mod xgboost;

pub use lightgbm::LightGBMModel;
pub use sklearn::SKLearnModel;
pub use xgboost::XGBoostModel;

use mlserver_runtime::RuntimeRegistry;

/// MLServer's implementation name for XGBoost models.
pub const XGBOOST_IMPLEMENTATION: &str = "mlserver_xgboost.XGBoostModel";
/// MLServer's implementation name for LightGBM models.
pub const LIGHTGBM_IMPLEMENTATION: &str = "mlserver_lightgbm.LightGBMModel";
/// MLServer's implementation name for scikit-learn models.
pub const SKLEARN_IMPLEMENTATION: &str = "mlserver_sklearn.SKLearnModel";

/// Registers the runtimes under MLServer's names (and the module-level
/// names `mlserver_xgboost.xgboost.XGBoostModel`, which resolve to the same
/// classes in Python).
pub fn register(runtimes: &mut RuntimeRegistry) {
    runtimes.register_native::<XGBoostModel>(XGBOOST_IMPLEMENTATION);
    runtimes.register_native::<XGBoostModel>("mlserver_xgboost.xgboost.XGBoostModel");
    runtimes.register_native::<LightGBMModel>(LIGHTGBM_IMPLEMENTATION);
    runtimes.register_native::<LightGBMModel>("mlserver_lightgbm.lightgbm.LightGBMModel");
    runtimes.register_handover::<SKLearnModel>(SKLEARN_IMPLEMENTATION);
    runtimes.register_handover::<SKLearnModel>("mlserver_sklearn.sklearn.SKLearnModel");
}
