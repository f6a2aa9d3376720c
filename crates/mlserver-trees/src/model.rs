//! The model: reading a learner document into validated, flat form.

use crate::error::{Format, LoadError};
use crate::json;
use crate::objective::Objective;
use crate::tree::Forest;
use crate::ubjson;
use crate::value::Value;

/// Upper bound on `num_feature`: feature indices share a `u32` with two
/// flag bits in the node layout.
const MAX_FEATURES: usize = 1 << 30;

/// The most outputs (classes, targets) a model may have: far past any real
/// model, and a bound on what a forged count can make us allocate.
const MAX_GROUPS: usize = 1 << 16;

/// The gradient booster a model was trained with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Booster {
    /// Plain gradient-boosted trees.
    GbTree,
    /// DART: each tree's output is scaled by its `weight_drop` entry.
    Dart,
}

/// A loaded, validated XGBoost tree model, ready to predict.
#[derive(Debug, Clone)]
pub struct Model {
    pub(crate) objective: Objective,
    pub(crate) booster: Booster,
    /// `num_feature` as declared (0 when the file says 0).
    num_feature: usize,
    /// Columns each input row must have.
    pub(crate) n_columns: usize,
    num_class: usize,
    num_target: usize,
    /// Margin columns: `max(num_class, num_target, 1)`.
    pub(crate) n_groups: usize,
    /// `base_score` as stored (output space), one per group.
    base_score: Vec<f32>,
    /// `base_score` through the objective's link, one per group.
    pub(crate) base_margin: Vec<f32>,
    pub(crate) forest: Forest,
    /// Output group of each tree (`tree_info`).
    pub(crate) tree_group: Vec<u32>,
    /// DART tree weights; empty for gbtree.
    pub(crate) weight_drop: Vec<f32>,
    /// Trees `iteration_indptr[r]..iteration_indptr[r + 1]` form round `r`.
    pub(crate) iteration_indptr: Vec<usize>,
    best_iteration: Option<usize>,
    attributes: Vec<(String, String)>,
    feature_names: Option<Vec<String>>,
    feature_types: Option<Vec<String>>,
    version: Option<[i64; 3]>,
}

impl Model {
    /// Reads a model saved as JSON (`Booster.save_model("model.json")`).
    pub fn from_json(bytes: &[u8]) -> Result<Self, LoadError> {
        let doc = json::parse(bytes).map_err(|e| syntax(Format::Json, e))?;
        Self::from_document(&doc)
    }

    /// Reads a model saved as UBJSON (`Booster.save_model("model.ubj")`).
    pub fn from_ubjson(bytes: &[u8]) -> Result<Self, LoadError> {
        let doc = ubjson::parse(bytes).map_err(|e| syntax(Format::Ubjson, e))?;
        Self::from_document(&doc)
    }

    /// Reads a model in whichever of the two formats `bytes` holds (a file
    /// named `model.bst` may hold either), using the same rule as XGBoost:
    /// after the opening `{`, a `"` means JSON and a letter (a UBJSON type
    /// marker) means UBJSON. Anything else, XGBoost's legacy binary format
    /// in particular, is refused as [`LoadError::Unsupported`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LoadError> {
        match detect_format(bytes)? {
            Format::Json => Self::from_json(bytes),
            Format::Ubjson => Self::from_ubjson(bytes),
        }
    }

    fn from_document(doc: &Value) -> Result<Self, LoadError> {
        let learner = doc
            .get("learner")
            .ok_or_else(|| field("learner", "missing"))?;
        let version = doc
            .get("version")
            .and_then(Value::to_ints)
            .and_then(|v| <[i64; 3]>::try_from(v.as_slice()).ok());

        let objective_name = learner
            .get("objective")
            .and_then(|o| o.get("name"))
            .and_then(Value::as_str)
            .ok_or_else(|| field("learner.objective.name", "missing or not a string"))?;
        let objective = Objective::from_name(objective_name)?;

        let params = learner
            .get("learner_model_param")
            .ok_or_else(|| field("learner.learner_model_param", "missing"))?;
        let num_feature = count_param(params, "num_feature", None)?;
        let num_class = count_param(params, "num_class", Some(0))?;
        let num_target = count_param(params, "num_target", Some(1))?;
        if num_feature > MAX_FEATURES {
            return Err(LoadError::Unsupported(format!(
                "num_feature {num_feature} exceeds {MAX_FEATURES}"
            )));
        }
        if num_class > 1 && num_target > 1 {
            return Err(field(
                "learner.learner_model_param",
                "both num_class and num_target exceed 1",
            ));
        }
        let n_groups = num_class.max(num_target).max(1);
        // Outputs are allocated per group before any tree is read: a
        // forged count must not decide an allocation (found by fuzzing).
        if n_groups > MAX_GROUPS {
            return Err(LoadError::Unsupported(format!(
                "{n_groups} outputs (num_class / num_target) exceed {MAX_GROUPS}"
            )));
        }
        let base_score = read_base_score(params, n_groups)?;
        let base_margin: Vec<f32> = base_score.iter().map(|&b| objective.to_margin(b)).collect();
        if base_margin.iter().any(|m| !m.is_finite()) {
            return Err(field(
                "learner.learner_model_param.base_score",
                "not finite in margin space for this objective",
            ));
        }

        let gb = learner
            .get("gradient_booster")
            .ok_or_else(|| field("learner.gradient_booster", "missing"))?;
        let gb_name = gb
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| field("learner.gradient_booster.name", "missing"))?;
        let (booster, gbtree) = match gb_name {
            "gbtree" => (Booster::GbTree, gb),
            "dart" => (
                Booster::Dart,
                gb.get("gbtree")
                    .ok_or_else(|| field("learner.gradient_booster.gbtree", "missing"))?,
            ),
            "gblinear" => {
                return Err(LoadError::Unsupported(
                    "the gblinear booster (only tree boosters are implemented)".into(),
                ))
            }
            other => return Err(LoadError::Unsupported(format!("booster `{other}`"))),
        };
        let trees_model = gbtree
            .get("model")
            .ok_or_else(|| field("gradient_booster.model", "missing"))?;
        let (forest, tree_group) = read_trees(trees_model, num_feature, n_groups)?;
        if forest.is_empty() {
            // With no tree XGBoost falls back to training-time defaults for the
            // intercept; refuse rather than guess.
            return Err(LoadError::Unsupported("a model without trees".into()));
        }
        let iteration_indptr = read_indptr(trees_model, &tree_group, forest.len())?;
        let weight_drop = match booster {
            Booster::GbTree => Vec::new(),
            Booster::Dart => {
                let w = gb
                    .get("weight_drop")
                    .and_then(Value::to_f32s)
                    .ok_or_else(|| field("learner.gradient_booster.weight_drop", "missing"))?;
                if w.len() != forest.len() {
                    return Err(field(
                        "learner.gradient_booster.weight_drop",
                        "one weight per tree expected",
                    ));
                }
                w
            }
        };

        let attributes: Vec<(String, String)> = learner
            .get("attributes")
            .and_then(Value::as_object)
            .map(|members| {
                members
                    .iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let best_iteration = match attributes.iter().find(|(k, _)| k == "best_iteration") {
            Some((_, v)) => Some(
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| field("learner.attributes.best_iteration", "not an integer"))?,
            ),
            None => None,
        };

        let n_columns = if num_feature > 0 {
            num_feature
        } else {
            forest.features_used()
        };
        Ok(Model {
            objective,
            booster,
            num_feature,
            n_columns,
            num_class,
            num_target,
            n_groups,
            base_score,
            base_margin,
            forest,
            tree_group,
            weight_drop,
            iteration_indptr,
            best_iteration,
            attributes,
            feature_names: string_list(learner, "feature_names")?,
            feature_types: string_list(learner, "feature_types")?,
            version,
        })
    }

    /// Columns each input row must have (`num_feature`, or the highest split
    /// feature + 1 in the rare file that declares 0).
    pub fn num_features(&self) -> usize {
        self.n_columns
    }

    /// `learner_model_param.num_feature` as declared.
    pub fn declared_num_feature(&self) -> usize {
        self.num_feature
    }

    /// `num_class` (0 for anything but multi-class classification).
    pub fn num_class(&self) -> usize {
        self.num_class
    }

    /// `num_target` (e.g. the number of quantiles for `reg:quantileerror`).
    pub fn num_target(&self) -> usize {
        self.num_target
    }

    /// Margin columns per row: `max(num_class, num_target, 1)`.
    pub fn num_groups(&self) -> usize {
        self.n_groups
    }

    /// Columns per row of [`Model::predict`]: 1 for `multi:softmax` (the
    /// class index), otherwise [`Model::num_groups`].
    pub fn output_columns(&self, output_margin: bool) -> usize {
        if output_margin {
            self.n_groups
        } else {
            self.objective.output_columns(self.n_groups)
        }
    }

    /// The objective's name, e.g. `binary:logistic`.
    pub fn objective(&self) -> &str {
        &self.objective.name
    }

    /// gbtree or DART.
    pub fn booster(&self) -> Booster {
        self.booster
    }

    /// The number of trees.
    pub fn num_trees(&self) -> usize {
        self.forest.len()
    }

    /// Boosting rounds (what `Booster.num_boosted_rounds()` reports).
    pub fn rounds(&self) -> usize {
        self.iteration_indptr.len() - 1
    }

    /// `attributes.best_iteration` (set by early stopping): applying it is
    /// the caller's choice, as it is in XGBoost's sklearn wrapper, by
    /// predicting rounds `0..best + 1`.
    pub fn best_iteration(&self) -> Option<usize> {
        self.best_iteration
    }

    /// The booster's string attributes (`best_iteration`, `best_score`...).
    pub fn attributes(&self) -> &[(String, String)] {
        &self.attributes
    }

    /// `base_score` per output group, in output space, as stored.
    pub fn base_score(&self) -> &[f32] {
        &self.base_score
    }

    /// Feature names, when the model was trained with them.
    pub fn feature_names(&self) -> Option<&[String]> {
        self.feature_names.as_deref()
    }

    /// Feature types (`q`, `c`, `int`, `float`...), when recorded.
    pub fn feature_types(&self) -> Option<&[String]> {
        self.feature_types.as_deref()
    }

    /// The XGBoost version that wrote the file, when recorded.
    pub fn version(&self) -> Option<[i64; 3]> {
        self.version
    }
}

/// Which format `bytes` holds (see [`Model::from_bytes`]).
pub fn detect_format(bytes: &[u8]) -> Result<Format, LoadError> {
    if bytes.starts_with(b"binf") {
        return Err(legacy_binary());
    }
    let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let Some(open) = bytes.iter().position(|b| !is_ws(b)) else {
        return Err(LoadError::Syntax {
            format: Format::Json,
            offset: bytes.len(),
            reason: "empty input",
        });
    };
    if bytes[open] != b'{' {
        return Err(legacy_binary());
    }
    match bytes[open + 1..].iter().find(|b| !is_ws(b)) {
        Some(b'"' | b'}') => Ok(Format::Json),
        Some(b) if open == 0 && b.is_ascii_alphabetic() => Ok(Format::Ubjson),
        _ => Err(legacy_binary()),
    }
}

fn legacy_binary() -> LoadError {
    LoadError::Unsupported(
        "not a JSON or UBJSON model; XGBoost's legacy binary format (removed in XGBoost 3.1) \
         is not read, re-save the model with Booster.save_model(\"model.json\" or \"model.ubj\")"
            .into(),
    )
}

fn syntax(format: Format, e: json::SyntaxError) -> LoadError {
    LoadError::Syntax {
        format,
        offset: e.offset,
        reason: e.reason,
    }
}

fn field(path: &str, reason: &str) -> LoadError {
    LoadError::Field {
        field: path.to_owned(),
        reason: reason.to_owned(),
    }
}

/// A non-negative integer parameter, stored by XGBoost as a decimal string.
fn count_param(params: &Value, key: &str, default: Option<usize>) -> Result<usize, LoadError> {
    let path = format!("learner.learner_model_param.{key}");
    match (params.get(key), default) {
        (None, Some(d)) => Ok(d),
        (None, None) => Err(field(&path, "missing")),
        (Some(v), _) => v
            .as_str()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .ok_or_else(|| field(&path, "not a non-negative integer string")),
    }
}

/// `base_score`: a string holding one number (`"5E-1"`, XGBoost < 3.1) or a
/// JSON array of them (`"[5E-1]"`, one per group since 3.1). One value is
/// broadcast to every group, as XGBoost does for old models.
fn read_base_score(params: &Value, n_groups: usize) -> Result<Vec<f32>, LoadError> {
    const PATH: &str = "learner.learner_model_param.base_score";
    let text = params
        .get("base_score")
        .and_then(Value::as_str)
        .ok_or_else(|| field(PATH, "missing or not a string"))?
        .trim();
    // XGBoost also accepts a tuple notation.
    let text = match (text.strip_prefix('('), text.ends_with(')')) {
        (Some(rest), true) => format!("[{}]", &rest[..rest.len() - 1]),
        _ => text.to_owned(),
    };
    let parsed = json::parse(text.as_bytes()).map_err(|_| field(PATH, "not a number or list"))?;
    let values: Vec<f32> = match &parsed {
        Value::Array(_) => parsed.to_f32s(),
        scalar => scalar.as_f32().map(|v| vec![v]),
    }
    .ok_or_else(|| field(PATH, "not a number or list of numbers"))?;
    if values.iter().any(|v| !v.is_finite()) {
        return Err(field(PATH, "not finite"));
    }
    match values.len() {
        1 => Ok(vec![values[0]; n_groups]),
        n if n == n_groups => Ok(values),
        _ => Err(field(PATH, "length differs from the number of outputs")),
    }
}

/// Trees (placed by their `id`, as XGBoost does) and `tree_info`.
fn read_trees(
    model: &Value,
    num_feature: usize,
    n_groups: usize,
) -> Result<(Forest, Vec<u32>), LoadError> {
    let trees = model
        .get("trees")
        .and_then(Value::as_array)
        .ok_or_else(|| field("gradient_booster.model.trees", "missing or not an array"))?;
    let declared = model
        .get("gbtree_model_param")
        .and_then(|p| p.get("num_trees"))
        .and_then(Value::as_str)
        .and_then(|s| s.trim().parse::<usize>().ok())
        .ok_or_else(|| field("gbtree_model_param.num_trees", "missing or not an integer"))?;
    if declared != trees.len() {
        return Err(field(
            "gbtree_model_param.num_trees",
            "differs from the number of trees",
        ));
    }
    let info = model
        .get("tree_info")
        .and_then(Value::to_ints)
        .ok_or_else(|| field("gradient_booster.model.tree_info", "missing"))?;
    if info.len() != trees.len() {
        return Err(field("tree_info", "one entry per tree expected"));
    }
    let tree_group = info
        .iter()
        .map(|&g| u32::try_from(g).ok().filter(|&g| (g as usize) < n_groups))
        .collect::<Option<Vec<u32>>>()
        .ok_or_else(|| field("tree_info", "output group out of range"))?;

    // order[id] = position in the `trees` array.
    let mut order: Vec<Option<usize>> = vec![None; trees.len()];
    for (pos, tree) in trees.iter().enumerate() {
        let id = match tree.get("id") {
            None => pos,
            Some(Value::Int(id)) => usize::try_from(*id)
                .ok()
                .filter(|&id| id < trees.len())
                .ok_or(LoadError::Tree {
                    tree: pos,
                    defect: crate::error::TreeDefect::Id,
                })?,
            Some(_) => {
                return Err(LoadError::Tree {
                    tree: pos,
                    defect: crate::error::TreeDefect::Id,
                })
            }
        };
        if order[id].replace(pos).is_some() {
            return Err(LoadError::Tree {
                tree: id,
                defect: crate::error::TreeDefect::Id,
            });
        }
    }
    let mut forest = Forest::default();
    for (id, pos) in order.into_iter().enumerate() {
        // Every slot is filled: n distinct ids below n.
        let pos = pos.ok_or(LoadError::Tree {
            tree: id,
            defect: crate::error::TreeDefect::Id,
        })?;
        forest.push_tree(id, &trees[pos], num_feature)?;
    }
    forest.finish();
    Ok((forest, tree_group))
}

/// `iteration_indptr`, or for older files the layout XGBoost derives from
/// `tree_info` and `num_parallel_tree`.
fn read_indptr(model: &Value, tree_group: &[u32], n_trees: usize) -> Result<Vec<usize>, LoadError> {
    const PATH: &str = "gradient_booster.model.iteration_indptr";
    let indptr: Vec<usize> = match model.get("iteration_indptr") {
        Some(v) => v
            .to_ints()
            .and_then(|v| v.into_iter().map(|i| usize::try_from(i).ok()).collect())
            .ok_or_else(|| field(PATH, "not a list of non-negative integers"))?,
        None => {
            let parallel = model
                .get("gbtree_model_param")
                .and_then(|p| p.get("num_parallel_tree"))
                .and_then(Value::as_str)
                .map_or(Some(1), |s| s.trim().parse::<usize>().ok())
                .filter(|&p| p > 0)
                .ok_or_else(|| field("gbtree_model_param.num_parallel_tree", "not positive"))?;
            let groups = tree_group.iter().max().map_or(1, |&g| g as usize + 1);
            let per_round = parallel.saturating_mul(groups);
            (0..=n_trees / per_round).map(|r| r * per_round).collect()
        }
    };
    let ok = indptr.first() == Some(&0)
        && indptr.last() == Some(&n_trees)
        && indptr.windows(2).all(|w| w[0] <= w[1]);
    if !ok {
        return Err(field(
            PATH,
            "not a 0-based, non-decreasing index ending at the tree count",
        ));
    }
    Ok(indptr)
}

fn string_list(learner: &Value, key: &str) -> Result<Option<Vec<String>>, LoadError> {
    match learner.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_array()
            .and_then(|items| {
                items
                    .iter()
                    .map(|s| s.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
            })
            .map(Some)
            .ok_or_else(|| field(&format!("learner.{key}"), "not a list of strings")),
    }
}
