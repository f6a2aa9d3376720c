//! The served model: one estimator or a `Pipeline` of them, and the walk
//! that hands each step's output to the next as `Pipeline` does.

use serde::Deserialize;

use crate::array::{Array, Matrix, MatrixData};
use crate::error::{HandoverError, PredictError, Result};
use crate::forest::{Forest, WireForest};
use crate::gbdt::{GradientBoosting, WireGb};
use crate::hgb::{Hgb, WireHgb};
use crate::linear::{Linear, WireLinear};
use crate::scalers::{Scaler, WireMinMax, WireRobust, WireStandard};

/// A method scikit-learn estimators expose.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Method {
    /// `predict`.
    Predict,
    /// `predict_proba`.
    PredictProba,
    /// `transform`.
    Transform,
}

impl Method {
    /// Every method, in the order probes list them.
    pub const ALL: [Method; 3] = [Method::Predict, Method::PredictProba, Method::Transform];

    /// The Python method name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Predict => "predict",
            Self::PredictProba => "predict_proba",
            Self::Transform => "transform",
        }
    }

    /// Whether a predictor (a tree ensemble) has this method: `predict`
    /// always, `predict_proba` when it is a classifier, `transform` never.
    pub(crate) fn of_predictor(self, classifier: bool) -> bool {
        match self {
            Method::Predict => true,
            Method::PredictProba => classifier,
            Method::Transform => false,
        }
    }

    /// The method of a Python method name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// One node of the payload's `model`.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind")]
pub(crate) enum WireNode {
    Pipeline {
        steps: Vec<WireNode>,
    },
    #[serde(rename = "passthrough")]
    Passthrough,
    StandardScaler(WireStandard),
    MinMaxScaler(Box<WireMinMax>),
    RobustScaler(WireRobust),
    Forest(Box<WireForest>),
    GradientBoosting(Box<WireGb>),
    HistGradientBoosting(Box<WireHgb>),
    Linear(Box<WireLinear>),
}

#[derive(Debug, Clone)]
enum Step {
    Passthrough,
    Pipeline(Vec<Step>),
    Scaler(Scaler),
    Forest(Forest),
    Gb(GradientBoosting),
    Hgb(Hgb),
    Linear(Linear),
}

impl Step {
    fn parse(w: &WireNode, at: &str) -> Result<Self> {
        let step = Self::parse_node(w, at)?;
        // scikit-learn refuses inputs without features (ensure_min_features).
        if step.n_features() == Some(0) {
            return Err(HandoverError::invalid(at, "an estimator of 0 features"));
        }
        Ok(step)
    }

    fn parse_node(w: &WireNode, at: &str) -> Result<Self> {
        Ok(match w {
            WireNode::Passthrough => Self::Passthrough,
            WireNode::Pipeline { steps } => {
                if steps.is_empty() {
                    return Err(HandoverError::invalid(at, "an empty Pipeline"));
                }
                let steps = steps
                    .iter()
                    .enumerate()
                    .map(|(i, s)| Self::parse(s, &format!("{at}.steps[{i}]")))
                    .collect::<Result<Vec<_>>>()?;
                Self::Pipeline(steps)
            }
            WireNode::StandardScaler(s) => Self::Scaler(Scaler::standard(s, at)?),
            WireNode::MinMaxScaler(s) => Self::Scaler(Scaler::min_max(s, at)?),
            WireNode::RobustScaler(s) => Self::Scaler(Scaler::robust(s, at)?),
            WireNode::Forest(f) => Self::Forest(Forest::parse(f, at)?),
            WireNode::GradientBoosting(g) => Self::Gb(GradientBoosting::parse(g, at)?),
            WireNode::HistGradientBoosting(h) => Self::Hgb(Hgb::parse(h, at)?),
            WireNode::Linear(l) => Self::Linear(Linear::parse(l, at)?),
        })
    }

    /// The features this step reads; `None` for a passthrough.
    fn n_features(&self) -> Option<usize> {
        match self {
            Self::Passthrough => None,
            Self::Pipeline(steps) => steps.iter().find_map(Self::n_features),
            Self::Scaler(s) => Some(s.n_features()),
            Self::Forest(f) => Some(f.n_features()),
            Self::Gb(g) => Some(g.n_features()),
            Self::Hgb(h) => Some(h.n_features()),
            Self::Linear(l) => Some(l.n_features()),
        }
    }

    /// The features this step writes (its transform's width).
    fn n_outputs(&self) -> Option<usize> {
        match self {
            Self::Pipeline(steps) => steps.iter().rev().find_map(Self::n_outputs),
            other => other.n_features(),
        }
    }

    fn has(&self, method: Method) -> bool {
        match self {
            Self::Passthrough => method == Method::Transform,
            Self::Pipeline(steps) => match steps.split_last() {
                Some((last, rest)) => {
                    last.has(method) && rest.iter().all(|s| s.has(Method::Transform))
                }
                None => false,
            },
            Self::Scaler(s) => s.has(method),
            Self::Forest(f) => f.has(method),
            Self::Gb(g) => g.has(method),
            Self::Hgb(h) => h.has(method),
            Self::Linear(l) => l.has(method),
        }
    }

    /// Runs `method` (when `Some`) after the checks scikit-learn makes;
    /// with `None`, only the checks (through every transform of a
    /// pipeline, since a transform may produce what the next step refuses).
    fn walk(&self, method: Option<Method>, x: &Matrix<'_>) -> Result<Option<Array>, PredictError> {
        let leaf = |check: Result<(), String>, run: &dyn Fn(Method) -> Option<Array>| {
            check.map_err(PredictError::Declined)?;
            match method {
                None => Ok(None),
                Some(m) => run(m).map(Some).ok_or(PredictError::NoMethod(m)),
            }
        };
        match self {
            Self::Passthrough => match method {
                None => Ok(None),
                Some(Method::Transform) => Ok(Some(copy(x))),
                Some(m) => Err(PredictError::NoMethod(m)),
            },
            Self::Pipeline(steps) => {
                // Parsing refuses empty pipelines and transforms return
                // matrices: the errors below are never expected.
                let not_matrix = || PredictError::Declined("a step did not return a matrix".into());
                let (last, rest) = steps.split_last().ok_or_else(not_matrix)?;
                let mut owned: Option<Array> = None;
                for step in rest {
                    let input = match &owned {
                        Some(a) => a.as_matrix().ok_or_else(not_matrix)?,
                        None => *x,
                    };
                    let out = step.walk(Some(Method::Transform), &input)?;
                    owned = Some(out.ok_or_else(not_matrix)?);
                }
                let input = match &owned {
                    Some(a) => a.as_matrix().ok_or_else(not_matrix)?,
                    None => *x,
                };
                last.walk(method, &input)
            }
            Self::Scaler(s) => leaf(s.check(x), &|m| s.run(m, x)),
            Self::Forest(f) => leaf(f.check(x), &|m| f.run(m, x)),
            Self::Gb(g) => leaf(g.check(x), &|m| g.run(m, x)),
            Self::Hgb(h) => leaf(h.check(x), &|m| h.run(m, x)),
            Self::Linear(l) => leaf(l.check(x), &|m| l.run(m, x)),
        }
    }
}

fn copy(x: &Matrix<'_>) -> Array {
    use crate::array::ArrayData;
    Array {
        shape: vec![x.rows, x.cols],
        data: match x.data {
            MatrixData::F64(v) => ArrayData::F64(v.to_vec()),
            MatrixData::F32(v) => ArrayData::F32(v.to_vec()),
            MatrixData::I64(v) => ArrayData::I64(v.to_vec()),
            MatrixData::I32(v) => ArrayData::I32(v.to_vec()),
        },
    }
}

/// A fitted estimator or pipeline, ready to compute as scikit-learn does.
#[derive(Debug, Clone)]
pub struct Model {
    root: Step,
    n_features: usize,
}

impl Model {
    pub(crate) fn parse(w: &WireNode) -> Result<Self> {
        let root = Step::parse(w, "model")?;
        let n_features = root.n_features().ok_or_else(|| {
            HandoverError::invalid("model", "a pipeline of passthrough steps only")
        })?;
        check_widths(&root, "model")?;
        Ok(Self { root, n_features })
    }

    /// The number of input features (columns).
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Whether the estimator (the pipeline's last step) has `method`.
    pub fn has(&self, method: Method) -> bool {
        self.root.has(method)
    }

    /// Why this input would not be computed here as scikit-learn computes
    /// it (scikit-learn would raise: a NaN for an estimator that rejects
    /// NaN, an infinity, a value too large for float32, the wrong number of
    /// columns, no rows), `None` if fine.
    pub fn declines(&self, x: &Matrix<'_>) -> Option<String> {
        match self.validate(x).and_then(|()| self.root.walk(None, x)) {
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    /// `method` of the estimator on `x`: the array scikit-learn returns, of
    /// its dtype and shape.
    pub fn run(&self, method: Method, x: &Matrix<'_>) -> Result<Array, PredictError> {
        if !self.has(method) {
            return Err(PredictError::NoMethod(method));
        }
        self.validate(x)?;
        self.root
            .walk(Some(method), x)?
            .ok_or(PredictError::NoMethod(method))
    }

    fn validate(&self, x: &Matrix<'_>) -> Result<(), PredictError> {
        if Some(x.data.len()) != x.rows.checked_mul(x.cols) {
            return Err(PredictError::Shape {
                rows: x.rows,
                cols: x.cols,
                len: x.data.len(),
            });
        }
        Ok(())
    }
}

/// Each pipeline step must read as many features as the step before writes
/// (scikit-learn checks this at predict time; checking it once here keeps
/// every step's indexing in range).
fn check_widths(step: &Step, at: &str) -> Result<()> {
    let Step::Pipeline(steps) = step else {
        return Ok(());
    };
    let mut width: Option<usize> = None;
    for (i, s) in steps.iter().enumerate() {
        let at = format!("{at}.steps[{i}]");
        check_widths(s, &at)?;
        if let (Some(w), Some(n)) = (width, s.n_features()) {
            if w != n {
                return Err(HandoverError::invalid(
                    &at,
                    format!("reads {n} features, the step before writes {w}"),
                ));
            }
        }
        if let Some(n) = s.n_outputs() {
            width = Some(n);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::ArrayData;
    use crate::tree::tests::tree_json;
    use base64::Engine as _;

    fn f8(v: &[f64]) -> String {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        format!(
            r#"{{"dtype":"<f8","shape":[{}],"data":"{}"}}"#,
            v.len(),
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )
    }

    fn model(json: &str) -> Result<Model> {
        Model::parse(&serde_json::from_str(json).unwrap())
    }

    fn scaler(mean: &[f64], scale: &[f64]) -> String {
        format!(
            r#"{{"kind":"StandardScaler","n_features":{},"mean":{},"scale":{}}}"#,
            mean.len(),
            f8(mean),
            f8(scale)
        )
    }

    fn classifier_tree() -> String {
        let tree = tree_json(
            &[1, -1, -1],
            &[2, -1, -1],
            &[1, -2, -2],
            &[0.0, -2.0, -2.0],
            &[0.5, 0.5, 1.0, 0.0, 0.0, 1.0],
        );
        format!(
            r#"{{"kind":"Forest","n_features":2,"classifier":true,"averaged":false,"trees":[{tree}],
                "classes":{{"dtype":"str","shape":[2],"items":["no","yes"]}}}}"#
        )
    }

    #[test]
    fn pipeline_scales_then_predicts() {
        let json = format!(
            r#"{{"kind":"Pipeline","steps":[{},{{"kind":"passthrough"}},{}]}}"#,
            scaler(&[0.0, 10.0], &[1.0, 2.0]),
            classifier_tree()
        );
        let m = model(&json).unwrap();
        assert_eq!(m.n_features(), 2);
        assert!(m.has(Method::Predict) && m.has(Method::PredictProba));
        assert!(!m.has(Method::Transform));
        let x = [0.0, 9.0, 0.0, 11.0];
        let x = Matrix {
            rows: 2,
            cols: 2,
            data: MatrixData::F64(&x),
        };
        let out = m.run(Method::Predict, &x).unwrap();
        assert_eq!(out.shape, [2]);
        assert_eq!(out.data, ArrayData::Str(vec!["no".into(), "yes".into()]));
        let p = m.run(Method::PredictProba, &x).unwrap();
        assert_eq!(p.shape, [2, 2]);
        assert_eq!(p.data, ArrayData::F64(vec![1.0, 0.0, 0.0, 1.0]));
        assert_eq!(
            m.run(Method::Transform, &x),
            Err(PredictError::NoMethod(Method::Transform))
        );
    }

    #[test]
    fn declines_what_sklearn_rejects() {
        let json = format!(
            r#"{{"kind":"Pipeline","steps":[{},{}]}}"#,
            scaler(&[0.0, 0.0], &[1.0, 1e-300]),
            classifier_tree()
        );
        let m = model(&json).unwrap();
        let ok = [1.0, f64::NAN];
        assert_eq!(
            m.declines(&Matrix {
                rows: 1,
                cols: 2,
                data: MatrixData::F64(&ok)
            }),
            None
        );
        // The scaler accepts 1e10, its output (1e310) is infinite: the tree refuses it.
        let big = [1.0, 1e10];
        let big = Matrix {
            rows: 1,
            cols: 2,
            data: MatrixData::F64(&big),
        };
        assert!(m.declines(&big).is_some());
        assert!(matches!(
            m.run(Method::Predict, &big),
            Err(PredictError::Declined(_))
        ));
        let inf = [f64::INFINITY, 0.0];
        assert!(m
            .declines(&Matrix {
                rows: 1,
                cols: 2,
                data: MatrixData::F64(&inf)
            })
            .is_some());
        let wide = [1i64, 2, 3];
        assert!(m
            .declines(&Matrix {
                rows: 1,
                cols: 3,
                data: MatrixData::I64(&wide)
            })
            .is_some());
        assert!(m
            .declines(&Matrix {
                rows: 0,
                cols: 2,
                data: MatrixData::I64(&[])
            })
            .is_some());
        let short = Matrix {
            rows: 2,
            cols: 2,
            data: MatrixData::I64(&wide),
        };
        assert!(matches!(
            m.run(Method::Predict, &short),
            Err(PredictError::Shape { .. })
        ));
        assert!(m.declines(&short).is_some());
    }

    #[test]
    fn refuses_bad_parameters() {
        assert!(model(&scaler(&[f64::NAN], &[1.0])).is_err());
        assert!(model(&scaler(&[0.0], &[0.0])).is_err());
        assert!(model(&scaler(&[0.0], &[f64::INFINITY])).is_err());
        assert!(model(&scaler(&[0.0, 1.0], &[1.0])).is_err());
        assert!(model(r#"{"kind":"Pipeline","steps":[]}"#).is_err());
        assert!(model(r#"{"kind":"passthrough"}"#).is_err());
        assert!(model(&scaler(&[], &[])).is_err());
        assert!(serde_json::from_str::<WireNode>(r#"{"kind":"SVC"}"#).is_err());
        // A 3-feature scaler before a 2-feature tree.
        let json = format!(
            r#"{{"kind":"Pipeline","steps":[{},{}]}}"#,
            scaler(&[0.0; 3], &[1.0; 3]),
            classifier_tree()
        );
        assert!(model(&json).is_err());
        // A tree whose classes do not match its values' width.
        let bad = classifier_tree()
            .replace(r#"["no","yes"]"#, r#"["a","b","c"]"#)
            .replace("[2]", "[3]");
        assert!(model(&bad).is_err());
    }
}
