//! The payload document: header checks, the model, and the probes that
//! prove this crate computes what scikit-learn computed.

use serde::Deserialize;

use crate::array::{Array, ArrayData, WireArray};
use crate::error::{HandoverError, Result};
use crate::model::{Method, Model, WireNode};

/// The `format` field every payload carries.
pub const FORMAT: &str = "mlserver-rs/sklearn-handover";
/// The payload version this reader knows.
pub const VERSION: u64 = 1;

#[derive(Debug, Deserialize)]
struct WireDoc {
    format: String,
    version: u64,
    #[serde(default)]
    sklearn: String,
    final_type: String,
    model: WireNode,
    probes: Vec<WireProbe>,
}

#[derive(Debug, Deserialize)]
struct WireProbe {
    method: String,
    input: WireArray,
    output: WireArray,
}

/// One recorded call of a scikit-learn method: its input and what it
/// returned.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The method called.
    pub method: Method,
    /// The input matrix (`[rows, cols]`, float64, float32 or int64).
    pub input: Array,
    /// scikit-learn's output.
    pub output: Array,
}

/// A parsed and validated payload.
#[derive(Debug, Clone)]
pub struct Handover {
    /// The estimator or pipeline.
    pub model: Model,
    /// The probes scikit-learn recorded.
    pub probes: Vec<Probe>,
    final_type: String,
    sklearn: String,
}

/// Parses and validates a payload. Never panics: the payload is untrusted.
pub fn read(payload: &[u8]) -> Result<Handover> {
    let doc: WireDoc = serde_json::from_slice(payload)?;
    if doc.format != FORMAT {
        return Err(HandoverError::Format(doc.format));
    }
    if doc.version != VERSION {
        return Err(HandoverError::Version(doc.version));
    }
    let model = Model::parse(&doc.model)?;
    let mut probes = Vec::with_capacity(doc.probes.len());
    for (i, p) in doc.probes.iter().enumerate() {
        let at = format!("probes[{i}]");
        let method = Method::from_name(&p.method)
            .ok_or_else(|| HandoverError::invalid(&at, format!("unknown method {:?}", p.method)))?;
        if !model.has(method) {
            return Err(HandoverError::invalid(
                &at,
                format!("the model has no {} method", method.name()),
            ));
        }
        let input = p.input.decode(&format!("{at}.input"))?.into_array(&at)?;
        if input.as_matrix().is_none() || matches!(input.data, ArrayData::Bool(_)) {
            return Err(HandoverError::invalid(
                &format!("{at}.input"),
                "a probe input must be a 2-d numeric array",
            ));
        }
        let output = p.output.decode(&format!("{at}.output"))?.into_array(&at)?;
        probes.push(Probe {
            method,
            input,
            output,
        });
    }
    Ok(Handover {
        model,
        probes,
        final_type: doc.final_type,
        sklearn: doc.sklearn,
    })
}

impl Handover {
    /// `str(type(final estimator))`: the pipeline's last step.
    pub fn final_type(&self) -> &str {
        &self.final_type
    }

    /// The scikit-learn version that wrote the payload.
    pub fn sklearn_version(&self) -> &str {
        &self.sklearn
    }

    /// Runs every probe; per method (in the order probes first name them),
    /// `Ok` or the first disagreement: method, input dtype, row, and the
    /// expected and computed values as bits.
    pub fn verify(&self) -> Vec<(Method, std::result::Result<(), String>)> {
        let mut results: Vec<(Method, std::result::Result<(), String>)> = Vec::new();
        for p in &self.probes {
            let outcome = check_probe(&self.model, p);
            match results.iter_mut().find(|(m, _)| *m == p.method) {
                Some((_, r)) => {
                    if r.is_ok() {
                        *r = outcome;
                    }
                }
                None => results.push((p.method, outcome)),
            }
        }
        results
    }
}

fn check_probe(model: &Model, p: &Probe) -> std::result::Result<(), String> {
    let Some(x) = p.input.as_matrix() else {
        return Err("the probe input is not a matrix".to_owned());
    };
    let dtype = x.data.dtype();
    let name = p.method.name();
    let got = model
        .run(p.method, &x)
        .map_err(|e| format!("{name} on {dtype} input: {e}"))?;
    compare(&p.output, &got).map_err(|e| format!("{name} on {dtype} input: {e}"))
}

/// Bit-for-bit comparison of scikit-learn's output with ours; the first
/// difference names its row.
pub(crate) fn compare(expected: &Array, got: &Array) -> std::result::Result<(), String> {
    if expected.shape != got.shape {
        return Err(format!(
            "shape {:?} expected, got {:?}",
            expected.shape, got.shape
        ));
    }
    let width = expected.shape.iter().skip(1).product::<usize>().max(1);
    let row = |i: usize| i / width;
    macro_rules! bits {
        ($a:expr, $b:expr, $to:expr) => {
            for (i, (x, y)) in $a.iter().zip($b.iter()).enumerate() {
                if $to(x) != $to(y) {
                    return Err(format!(
                        "row {}: expected {:?} ({:#x}), got {:?} ({:#x})",
                        row(i),
                        x,
                        $to(x),
                        y,
                        $to(y)
                    ));
                }
            }
        };
    }
    match (&expected.data, &got.data) {
        (ArrayData::F64(a), ArrayData::F64(b)) => bits!(a, b, |v: &f64| v.to_bits()),
        (ArrayData::F32(a), ArrayData::F32(b)) => bits!(a, b, |v: &f32| v.to_bits()),
        (ArrayData::I64(a), ArrayData::I64(b)) => bits!(a, b, |v: &i64| *v as u64),
        (ArrayData::I32(a), ArrayData::I32(b)) => bits!(a, b, |v: &i32| *v as u32),
        (ArrayData::Bool(a), ArrayData::Bool(b)) => bits!(a, b, |v: &bool| u8::from(*v)),
        (ArrayData::Str(a), ArrayData::Str(b)) => {
            if let Some(i) = a.iter().zip(b).position(|(x, y)| x != y) {
                return Err(format!(
                    "row {}: expected {:?}, got {:?}",
                    row(i),
                    a[i],
                    b[i]
                ));
            }
        }
        (a, b) => return Err(format!("dtype {} expected, got {}", a.dtype(), b.dtype())),
    }
    Ok(())
}
