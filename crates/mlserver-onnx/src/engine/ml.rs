//! The `ai.onnx.ml` operators tract lacks, so the gradient-boosted models
//! scikit-learn, XGBoost and LightGBM export run in the default (pure
//! Rust) build: `TreeEnsembleRegressor` and `Scaler`.
//! (`TreeEnsembleClassifier` is tract's own.)
//!
//! Written from the operators' specification; the tests compare their
//! outputs with onnxruntime's on models those libraries export.

use std::collections::{BTreeMap, HashMap};

use tract_hir::internal::*;
use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::{NodeProto, TensorProto};

/// Adds the operators to tract's ONNX parser.
pub(crate) fn register(register: &mut OnnxOpRegister) {
    register.insert("TreeEnsembleRegressor", tree_ensemble_regressor);
    register.insert("Scaler", scaler);
}

/// How a node compares its feature with its threshold (`nodes_modes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

impl Mode {
    fn parse(s: &str) -> TractResult<Mode> {
        Ok(match s {
            "BRANCH_LEQ" => Mode::Leq,
            "BRANCH_LT" => Mode::Lt,
            "BRANCH_GTE" => Mode::Gte,
            "BRANCH_GT" => Mode::Gt,
            "BRANCH_EQ" => Mode::Eq,
            "BRANCH_NEQ" => Mode::Neq,
            "LEAF" => Mode::Leaf,
            other => bail!("TreeEnsembleRegressor: unsupported node mode {other}"),
        })
    }
}

/// One node of a tree, its children as indices into the tree's nodes.
#[derive(Debug, Clone, PartialEq)]
struct Node {
    mode: Mode,
    feature: usize,
    threshold: f32,
    true_child: usize,
    false_child: usize,
    /// A missing (NaN) feature takes the true branch.
    missing_true: bool,
    /// `(target, weight)` of a leaf.
    leaf: Vec<(usize, f32)>,
}

/// How the trees' values combine (`aggregate_function`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

/// What is applied to the aggregated scores (`post_transform`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PostTransform {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
}

/// One tree: its nodes, and where traversal starts.
#[derive(Debug, Clone, PartialEq)]
struct Tree {
    root: usize,
    nodes: Vec<Node>,
}

/// A parsed `TreeEnsembleRegressor`.
#[derive(Debug, Clone, PartialEq)]
struct TreeRegressor {
    trees: Vec<Tree>,
    n_targets: usize,
    base_values: Vec<f32>,
    aggregate: Aggregate,
    post_transform: PostTransform,
    /// The largest feature index a node reads.
    max_feature: usize,
}

/// A float list attribute, or its `_as_tensor` form (ai.onnx.ml opset 3,
/// where values may be doubles).
fn floats(ctx: &ParsingContext, node: &NodeProto, name: &str) -> TractResult<Option<Vec<f32>>> {
    if let Some(values) = node.get_attr_opt_vec::<f32>(name)? {
        return Ok(Some(values));
    }
    match node.get_attr_opt::<&TensorProto>(&format!("{name}_as_tensor"))? {
        Some(proto) => {
            let tensor = ctx.load_tensor(proto)?.cast_to::<f32>()?.into_owned();
            Ok(Some(tensor.try_as_plain_ram()?.as_slice::<f32>()?.to_vec()))
        }
        None => Ok(None),
    }
}

fn tree_ensemble_regressor(
    ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let n_targets: usize = node
        .get_attr_opt::<i64>("n_targets")?
        .unwrap_or(1)
        .try_into()?;
    node.expect_attr("n_targets", n_targets > 0, "at least one target")?;
    let tree_ids = node.get_attr_vec::<i64>("nodes_treeids")?;
    let n = tree_ids.len();
    node.expect_attr("nodes_treeids", n > 0, "at least one node")?;
    let same_length = |name: &str, len: usize| {
        node.expect_attr(name, len == n, || {
            format!("{n} entries (one per node), not {len}")
        })
    };
    let node_ids = node.get_attr_vec::<i64>("nodes_nodeids")?;
    same_length("nodes_nodeids", node_ids.len())?;
    let features = node.get_attr_vec::<i64>("nodes_featureids")?;
    same_length("nodes_featureids", features.len())?;
    let modes = node.get_attr_vec::<&str>("nodes_modes")?;
    same_length("nodes_modes", modes.len())?;
    let true_ids = node.get_attr_vec::<i64>("nodes_truenodeids")?;
    same_length("nodes_truenodeids", true_ids.len())?;
    let false_ids = node.get_attr_vec::<i64>("nodes_falsenodeids")?;
    same_length("nodes_falsenodeids", false_ids.len())?;
    let thresholds = floats(ctx, node, "nodes_values")?.unwrap_or_else(|| vec![0.0; n]);
    same_length("nodes_values", thresholds.len())?;
    let missing = node
        .get_attr_opt_vec::<i64>("nodes_missing_value_tracks_true")?
        .unwrap_or_else(|| vec![0; n]);
    same_length("nodes_missing_value_tracks_true", missing.len())?;

    let target_trees = node.get_attr_vec::<i64>("target_treeids")?;
    let leaves = target_trees.len();
    let target_nodes = node.get_attr_vec::<i64>("target_nodeids")?;
    let target_ids = node.get_attr_vec::<i64>("target_ids")?;
    let weights = floats(ctx, node, "target_weights")?.unwrap_or_default();
    for (name, len) in [
        ("target_nodeids", target_nodes.len()),
        ("target_ids", target_ids.len()),
        ("target_weights", weights.len()),
    ] {
        node.expect_attr(name, len == leaves, || {
            format!("{leaves} entries (as target_treeids), not {len}")
        })?;
    }

    // Trees in id order; each tree's nodes in node id order.
    let mut by_tree: BTreeMap<i64, BTreeMap<i64, usize>> = BTreeMap::new();
    for (i, (&tree, &id)) in tree_ids.iter().zip(&node_ids).enumerate() {
        if by_tree.entry(tree).or_default().insert(id, i).is_some() {
            bail!("TreeEnsembleRegressor: tree {tree} has node {id} twice");
        }
    }
    // (tree id, node id) -> (tree index, node index): where leaves go.
    let mut place: HashMap<(i64, i64), (usize, usize)> = HashMap::new();
    let mut trees = Vec::with_capacity(by_tree.len());
    let mut max_feature = 0;
    for (t, (tree, ids)) in by_tree.iter().enumerate() {
        for (pos, id) in ids.keys().enumerate() {
            place.insert((*tree, *id), (t, pos));
        }
        let child = |id: i64| -> TractResult<usize> {
            place
                .get(&(*tree, id))
                .map(|&(_, pos)| pos)
                .with_context(|| format!("TreeEnsembleRegressor: tree {tree} has no node {id}"))
        };
        let mut nodes = Vec::with_capacity(ids.len());
        let mut is_child = vec![false; ids.len()];
        for &i in ids.values() {
            let mode = Mode::parse(modes[i])?;
            let (true_child, false_child) = if mode == Mode::Leaf {
                (0, 0)
            } else {
                let (t, f) = (child(true_ids[i])?, child(false_ids[i])?);
                is_child[t] = true;
                is_child[f] = true;
                (t, f)
            };
            let feature = usize::try_from(features[i])?;
            if mode != Mode::Leaf {
                max_feature = max_feature.max(feature);
            }
            nodes.push(Node {
                mode,
                feature,
                threshold: thresholds[i],
                true_child,
                false_child,
                missing_true: missing[i] != 0,
                leaf: Vec::new(),
            });
        }
        // The root: the one node no other node points to.
        let roots: Vec<usize> = (0..nodes.len()).filter(|&p| !is_child[p]).collect();
        if roots.len() != 1 {
            bail!(
                "TreeEnsembleRegressor: tree {tree} has {} roots, not one",
                roots.len()
            );
        }
        trees.push(Tree {
            root: roots[0],
            nodes,
        });
    }
    for j in 0..leaves {
        let target = usize::try_from(target_ids[j])?;
        node.expect_attr("target_ids", target < n_targets, || {
            format!("targets below n_targets ({n_targets}), not {target}")
        })?;
        let Some(&(t, pos)) = place.get(&(target_trees[j], target_nodes[j])) else {
            bail!(
                "TreeEnsembleRegressor: a weight names node {} of tree {}, which does not exist",
                target_nodes[j],
                target_trees[j]
            );
        };
        trees[t].nodes[pos].leaf.push((target, weights[j]));
    }

    let base_values = floats(ctx, node, "base_values")?.unwrap_or_else(|| vec![0.0; n_targets]);
    node.expect_attr("base_values", base_values.len() == n_targets, || {
        format!(
            "{n_targets} values (one per target), not {}",
            base_values.len()
        )
    })?;
    let aggregate = match node
        .get_attr_opt::<&str>("aggregate_function")?
        .unwrap_or("SUM")
    {
        "SUM" => Aggregate::Sum,
        "AVERAGE" => Aggregate::Average,
        "MIN" => Aggregate::Min,
        "MAX" => Aggregate::Max,
        other => bail!("TreeEnsembleRegressor: unknown aggregate_function {other}"),
    };
    let post_transform = match node
        .get_attr_opt::<&str>("post_transform")?
        .unwrap_or("NONE")
    {
        "NONE" => PostTransform::None,
        "LOGISTIC" => PostTransform::Logistic,
        "SOFTMAX" => PostTransform::Softmax,
        "SOFTMAX_ZERO" => PostTransform::SoftmaxZero,
        other => bail!("TreeEnsembleRegressor: post_transform {other} is not supported"),
    };
    Ok((
        expand(TreeRegressor {
            trees,
            n_targets,
            base_values,
            aggregate,
            post_transform,
            max_feature,
        }),
        vec![],
    ))
}

impl Tree {
    /// The leaf `row` reaches.
    fn leaf(&self, row: &[f32]) -> &Node {
        let mut node = &self.nodes[self.root];
        loop {
            if node.mode == Mode::Leaf {
                return node;
            }
            let (x, v) = (row[node.feature], node.threshold);
            let go_true = if x.is_nan() {
                node.missing_true
            } else {
                match node.mode {
                    Mode::Leq => x <= v,
                    Mode::Lt => x < v,
                    Mode::Gte => x >= v,
                    Mode::Gt => x > v,
                    Mode::Eq => x == v,
                    Mode::Neq => x != v,
                    Mode::Leaf => unreachable!("leaves returned above"),
                }
            };
            node = &self.nodes[if go_true {
                node.true_child
            } else {
                node.false_child
            }];
        }
    }
}

impl TreeRegressor {
    /// The scores of one row into `out` (`n_targets` of them).
    fn score(&self, row: &[f32], out: &mut [f32], seen: &mut [bool]) {
        out.fill(0.0);
        seen.fill(false);
        for tree in &self.trees {
            for &(target, weight) in &tree.leaf(row).leaf {
                let (o, s) = (&mut out[target], &mut seen[target]);
                *o = match self.aggregate {
                    Aggregate::Sum | Aggregate::Average => *o + weight,
                    Aggregate::Min if *s => o.min(weight),
                    Aggregate::Max if *s => o.max(weight),
                    Aggregate::Min | Aggregate::Max => weight,
                };
                *s = true;
            }
        }
        for (t, o) in out.iter_mut().enumerate() {
            if self.aggregate == Aggregate::Average {
                *o /= self.trees.len() as f32;
            }
            *o += self.base_values[t];
        }
        match self.post_transform {
            PostTransform::None => {}
            PostTransform::Logistic => {
                for o in out.iter_mut() {
                    *o = 1.0 / (1.0 + (-*o).exp());
                }
            }
            PostTransform::Softmax | PostTransform::SoftmaxZero => {
                let zero = self.post_transform == PostTransform::SoftmaxZero;
                let max = out.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0;
                for o in out.iter_mut() {
                    *o = if zero && *o == 0.0 {
                        0.0
                    } else {
                        (*o - max).exp()
                    };
                    sum += *o;
                }
                if sum > 0.0 {
                    for o in out.iter_mut() {
                        *o /= sum;
                    }
                }
            }
        }
    }
}

impl Expansion for TreeRegressor {
    fn name(&self) -> StaticName {
        "TreeEnsembleRegressor".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        matrix_rules(s, inputs, outputs)?;
        s.equals(&outputs[0].shape[1], self.n_targets.to_dim())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let x = as_f32_matrix(prefix, model, inputs[0])?;
        model.wire_node(prefix, TreeRegressorOp(Arc::new(self.clone())), &[x])
    }
}

/// One input, one FP32 matrix out with a row per input row: what both
/// operators promise (each adds what its columns are).
fn matrix_rules<'r, 'p: 'r>(
    s: &mut Solver<'r>,
    inputs: &'p [TensorProxy],
    outputs: &'p [TensorProxy],
) -> InferenceResult {
    check_input_arity(inputs, 1)?;
    check_output_arity(outputs, 1)?;
    s.equals(&outputs[0].datum_type, DatumType::F32)?;
    s.equals(&outputs[0].rank, 2)?;
    s.equals(&outputs[0].shape[0], &inputs[0].shape[0])
}

/// An input as a 2-D FP32 matrix (rows of features).
fn as_f32_matrix(prefix: &str, model: &mut TypedModel, x: OutletId) -> TractResult<OutletId> {
    let mut x = x;
    if model.outlet_fact(x)?.rank() == 1 {
        x = model.wire_node(format!("{prefix}.add_batch_axis"), AxisOp::Add(0), &[x])?[0];
    }
    if model.outlet_fact(x)?.datum_type != f32::datum_type() {
        x = model.wire_node(
            format!("{prefix}.to_f32"),
            tract_core::ops::cast::cast(f32::datum_type()),
            &[x],
        )?[0];
    }
    Ok(x)
}

/// The typed operator the expansion wires: scores every row.
#[derive(Debug, Clone)]
struct TreeRegressorOp(Arc<TreeRegressor>);

impl PartialEq for TreeRegressorOp {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

// Thresholds are never NaN (a NaN threshold compares false either way, so
// no exporter writes one): equality is reflexive in practice.
impl Eq for TreeRegressorOp {}

impl Op for TreeRegressorOp {
    fn name(&self) -> StaticName {
        "TreeEnsembleRegressor".into()
    }

    op_as_typed_op!();
}

impl EvalOp for TreeRegressorOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let input = input.cast_to::<f32>()?;
        let shape = input.shape();
        ensure!(
            shape.len() == 2,
            "TreeEnsembleRegressor: input of shape {shape:?}, not 2-D"
        );
        let (rows, width) = (shape[0], shape[1]);
        let model = &self.0;
        ensure!(
            width > model.max_feature,
            "TreeEnsembleRegressor: rows of {width} features, but the trees read feature {}",
            model.max_feature
        );
        let plain = input.try_as_plain_ram()?;
        let data = plain.as_slice::<f32>()?;
        let targets = model.n_targets;
        let mut out = vec![0f32; rows * targets];
        let mut seen = vec![false; targets];
        for (row, scores) in data.chunks_exact(width).zip(out.chunks_exact_mut(targets)) {
            model.score(row, scores, &mut seen);
        }
        Ok(tvec!(
            Tensor::from_shape(&[rows, targets], &out)?.into_tvalue()
        ))
    }
}

impl TypedOp for TreeRegressorOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let rows = inputs[0].shape[0].clone();
        Ok(tvec!(f32::fact([rows, self.0.n_targets.to_dim()])))
    }

    as_op!();
}

/// `Scaler`: `(x - offset) * scale`, per feature (or one value for all).
#[derive(Debug, Clone, PartialEq)]
struct Scaler {
    offset: Vec<f32>,
    scale: Vec<f32>,
}

fn scaler(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let offset = node
        .get_attr_opt_vec::<f32>("offset")?
        .unwrap_or_else(|| vec![0.0]);
    let scale = node
        .get_attr_opt_vec::<f32>("scale")?
        .unwrap_or_else(|| vec![1.0]);
    node.expect_attr("offset", !offset.is_empty(), "at least one value")?;
    node.expect_attr("scale", !scale.is_empty(), "at least one value")?;
    Ok((expand(Scaler { offset, scale }), vec![]))
}

impl Expansion for Scaler {
    fn name(&self) -> StaticName {
        "Scaler".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        matrix_rules(s, inputs, outputs)?;
        s.equals(&outputs[0].shape[1], &inputs[0].shape[1])
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let x = as_f32_matrix(prefix, model, inputs[0])?;
        let row = |values: &[f32]| -> TractResult<Arc<Tensor>> {
            Ok(tensor1(values)
                .into_shape(&[1, values.len()])?
                .into_arc_tensor())
        };
        let offset = model.add_const(format!("{prefix}.offset"), row(&self.offset)?)?;
        let scale = model.add_const(format!("{prefix}.scale"), row(&self.scale)?)?;
        let shifted = model.wire_node(
            format!("{prefix}.sub"),
            tract_core::ops::math::sub(),
            &[x, offset],
        )?;
        model.wire_node(
            format!("{prefix}.mul"),
            tract_core::ops::math::mul(),
            &[shifted[0], scale],
        )
    }
}
