//! LightGBM tree models, read from the text format of `Booster.save_model`
//! and evaluated with LightGBM's own double-precision arithmetic. See the
//! crate documentation for what is read, refused and guaranteed.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use mlserver_trees::lightgbm::{Model, PredictOptions};
//!
//! let text = std::fs::read(concat!(
//!     env!("CARGO_MANIFEST_DIR"),
//!     "/tests/fixtures/lightgbm/binary.txt"
//! ))?;
//! let model = Model::from_text(&text)?;
//! let row = vec![f64::NAN; model.num_features()];
//! let p = model.predict(&row, 1)?;
//! assert!(p[0] > 0.0 && p[0] < 1.0);
//! let first_two = PredictOptions {
//!     num_iteration: Some(2),
//!     ..PredictOptions::default()
//! };
//! let _ = model.predict_with(&row, 1, &first_two)?;
//! # Ok(())
//! # }
//! ```

mod error;
mod lockstep;
mod objective;
mod predict;
mod text;
mod tree;

pub use error::{LoadError, NodeDefect, TreeDefect};
pub use predict::PredictOptions;

use objective::Objective;
use tree::Forest;

/// A loaded, validated LightGBM model, ready to predict.
#[derive(Debug, Clone)]
pub struct Model {
    version: Option<String>,
    /// Outputs per row; also the trees per iteration.
    num_class: usize,
    /// `max_feature_idx + 1`.
    n_features: usize,
    objective: Objective,
    average_output: bool,
    feature_names: Vec<String>,
    feature_infos: Vec<String>,
    forest: Forest,
}

impl Model {
    /// Reads a model in LightGBM's text format (`model.txt`, or an MLServer
    /// `model.bst`, which is the same text).
    pub fn from_text(bytes: &[u8]) -> Result<Self, LoadError> {
        let doc = text::parse(bytes)?;
        let int = |key: &str| -> Result<i64, LoadError> {
            let raw = doc.header(key).ok_or_else(|| field(key, "missing"))?;
            std::str::from_utf8(raw)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| field(key, "not an integer"))
        };
        let num_class = int("num_class")?;
        // LightGBM defaults it to num_class for old files.
        let per_iteration = match doc.header("num_tree_per_iteration") {
            Some(_) => int("num_tree_per_iteration")?,
            None => num_class,
        };
        int("label_index")?;
        let max_feature_idx = int("max_feature_idx")?;
        if num_class < 1 {
            return Err(field("num_class", "not a positive count"));
        }
        // LightGBM writes `num_tree_per_iteration` outputs into a row of
        // `num_class`; they are equal for every objective it has.
        if per_iteration != num_class {
            return Err(field(
                "num_tree_per_iteration",
                "differs from num_class (unsupported layout)",
            ));
        }
        if max_feature_idx < 0 {
            return Err(field("max_feature_idx", "negative"));
        }
        let words = |key: &str| -> Result<Vec<String>, LoadError> {
            let raw = doc.header(key).ok_or_else(|| field(key, "missing"))?;
            let names: Vec<String> = text::parse_tokens(raw)
                .map_err(|t| field(key, &format!("not UTF-8 near `{t}`")))?;
            // Compared as i64: a count the text cannot hold is refused
            // without allocating for it.
            if names.len() as i64 != max_feature_idx + 1 {
                return Err(field(key, "not one entry per feature"));
            }
            Ok(names)
        };
        let feature_names = words("feature_names")?;
        let feature_infos = words("feature_infos")?;
        let n_features = feature_names.len();
        if u32::try_from(n_features).is_err() {
            return Err(LoadError::Unsupported("more than 2^32 features".into()));
        }

        let objective_line = doc
            .header("objective")
            .map(|raw| std::str::from_utf8(raw).map_err(|_| field("objective", "not UTF-8")))
            .transpose()?;
        // num_class >= 1 and, below, <= the number of trees: bounded by the input.
        let num_class = num_class as usize;
        if doc.trees.is_empty() {
            return Err(LoadError::Unsupported("a model without trees".into()));
        }
        if doc.trees.len() % num_class != 0 {
            return Err(field(
                "num_tree_per_iteration",
                "the number of trees is not a multiple of it",
            ));
        }
        let objective = Objective::parse(objective_line, num_class)?;
        let mut forest = Forest::default();
        for (i, block) in doc.trees.iter().enumerate() {
            forest.push_tree(i, block, n_features)?;
        }
        forest.finish();
        let version = doc
            .header("version")
            .map(|v| String::from_utf8_lossy(v).into_owned());
        Ok(Model {
            version,
            num_class,
            n_features,
            objective,
            average_output: doc.header("average_output").is_some(),
            feature_names,
            feature_infos,
            forest,
        })
    }

    /// Values each input row must have (`max_feature_idx + 1`).
    pub fn num_features(&self) -> usize {
        self.n_features
    }

    /// Values per output row: `num_class` (1 except for multiclass models).
    pub fn num_outputs(&self) -> usize {
        self.num_class
    }

    /// Trees in the model.
    pub fn num_trees(&self) -> usize {
        self.forest.len()
    }

    /// Boosting iterations (trees / outputs).
    pub fn num_iterations(&self) -> usize {
        self.forest.len() / self.num_class
    }

    /// The `objective=` line as written (e.g. `binary sigmoid:1`); `None`
    /// for a model trained with a custom objective, which predicts raw
    /// scores.
    pub fn objective(&self) -> Option<&str> {
        self.objective.line.as_deref()
    }

    /// Whether the default prediction averages over iterations
    /// (`average_output`, written for `boosting=rf`).
    pub fn average_output(&self) -> bool {
        self.average_output
    }

    /// `feature_names` (LightGBM's `Column_<i>` when none were given).
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// `feature_infos`: per feature `[min:max]`, the categories seen
    /// (`1:4:7`) or `none`; informational only.
    pub fn feature_infos(&self) -> &[String] {
        &self.feature_infos
    }

    /// The `version=` header (`v4` for LightGBM 4.x), when present.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }
}

fn field(key: &str, reason: &str) -> LoadError {
    LoadError::Field {
        field: key.to_owned(),
        reason: reason.to_owned(),
    }
}
